//! Writes f32 tensors in the safetensors layout: an 8-byte header length, a JSON header padded
//! to 8 bytes, then the tensors back to back. The layout is computed first so the ONNX graph can
//! point into the file before it is written.

use crate::onnx::ExternalTensor;
use std::collections::HashMap;
use std::io::Write;

pub struct Layout {
    header: Vec<u8>,
    /// Name, shape and byte range (relative to the data section) of each tensor, in file order.
    entries: Vec<(String, Vec<usize>, u64, u64)>,
}

impl Layout {
    pub fn new(tensors: &[(String, Vec<usize>)], metadata: &[(&str, String)]) -> Layout {
        let mut header = serde_json::Map::new();
        let meta: serde_json::Map<String, serde_json::Value> =
            metadata.iter().map(|(k, v)| (k.to_string(), v.clone().into())).collect();
        header.insert("__metadata__".into(), meta.into());
        let mut entries = Vec::new();
        let mut at = 0u64;
        for (name, shape) in tensors {
            let len = 4 * shape.iter().product::<usize>() as u64;
            header.insert(
                name.clone(),
                serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [at, at + len] }),
            );
            entries.push((name.clone(), shape.clone(), at, at + len));
            at += len;
        }
        let mut header = serde_json::to_vec(&serde_json::Value::Object(header)).expect("a JSON map serialises");
        while !header.len().is_multiple_of(8) {
            header.push(b' ');
        }
        Layout { header, entries }
    }

    fn data_start(&self) -> u64 {
        8 + self.header.len() as u64
    }

    /// Where each tensor lies in the whole file, for ONNX external data.
    pub fn external(&self) -> HashMap<String, ExternalTensor> {
        self.entries
            .iter()
            .map(|(name, shape, begin, end)| {
                (
                    name.clone(),
                    ExternalTensor { shape: shape.clone(), offset: self.data_start() + begin, length: end - begin },
                )
            })
            .collect()
    }

    /// Writes the file, asking `tensor` for each tensor's values in file order.
    pub fn write<W: Write, E>(
        &self,
        out: &mut W,
        mut tensor: impl FnMut(&str) -> Result<Vec<f32>, E>,
        io_error: impl Fn(std::io::Error) -> E,
    ) -> Result<(), E> {
        out.write_all(&(self.header.len() as u64).to_le_bytes()).map_err(&io_error)?;
        out.write_all(&self.header).map_err(&io_error)?;
        for (name, shape, _, _) in &self.entries {
            let values = tensor(name)?;
            debug_assert_eq!(values.len(), shape.iter().product::<usize>());
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.write_all(&bytes).map_err(&io_error)?;
        }
        Ok(())
    }
}
