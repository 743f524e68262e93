//! What an ONNX graph reads and takes, read straight from its protobuf: its inputs and outputs
//! with their shapes, and every tensor it holds or points at in another file (ONNX external data),
//! including those inside node attributes and subgraphs.
//!
//! A package's graph is checked against its manifest with this before a backend sees it, so a
//! graph that reads weights from a file the manifest does not hash, or whose shapes are not the
//! manifest's, is refused whatever backend runs it.

use std::collections::HashSet;
use std::fmt;

/// One dimension of a graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    /// A named, symbolic dimension (`N`), or one left unset.
    Symbolic(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Symbolic(name) if name.is_empty() => write!(f, "?"),
            Dim::Symbolic(name) => write!(f, "{name}"),
        }
    }
}

/// A graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueInfo {
    pub name: String,
    /// None when the graph declares no shape.
    pub shape: Option<Vec<Dim>>,
}

/// A tensor the graph holds (an initializer, or a tensor in a node attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphTensor {
    pub name: String,
    pub dims: Vec<i64>,
    /// The file its data lives in (ONNX external data's `location`), if not in the graph itself.
    pub location: Option<String>,
    /// Where in that file, in bytes (external data's `offset` and `length`).
    pub offset: Option<u64>,
    pub length: Option<u64>,
    /// ONNX's element type (1 is float32).
    pub data_type: u64,
}

/// The parts of an ONNX model that a package check needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphSummary {
    /// Inputs that are not initializers.
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub tensors: Vec<GraphTensor>,
}

/// Subgraphs (If, Loop, Scan bodies) nest; real models nest a few levels.
const MAX_DEPTH: usize = 32;

/// Reads the summary of a serialised `ModelProto`. Errors say what is malformed and where.
pub fn summarise(bytes: &[u8]) -> Result<GraphSummary, String> {
    let mut summary = GraphSummary::default();
    let mut graph = None;
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        if number == 7 {
            // Protobuf merges a repeated message field; a runtime could see what a check of one
            // copy missed, so a second graph is refused.
            if graph.replace(value.bytes("ModelProto.graph")?).is_some() {
                return Err("the model holds more than one graph".into());
            }
        }
    }
    let graph = graph.ok_or("the model has no graph")?;
    let mut initializer_names = HashSet::new();
    read_graph(graph, 0, &mut summary, &mut initializer_names, true)?;
    summary.inputs.retain(|input| !initializer_names.contains(&input.name));
    Ok(summary)
}

fn read_graph(
    bytes: &[u8],
    depth: usize,
    summary: &mut GraphSummary,
    initializer_names: &mut HashSet<String>,
    top: bool,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("subgraphs nest more than {MAX_DEPTH} deep"));
    }
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            // GraphProto: node = 1, initializer = 5, input = 11, output = 12, sparse_initializer = 15
            1 => read_node(value.bytes("NodeProto")?, depth, summary, initializer_names)?,
            5 => {
                let tensor = read_tensor(value.bytes("TensorProto")?)?;
                if top {
                    initializer_names.insert(tensor.name.clone());
                }
                summary.tensors.push(tensor);
            }
            15 => return Err("sparse initializers are not supported".into()),
            11 if top => summary.inputs.push(read_value_info(value.bytes("ValueInfoProto")?)?),
            12 if top => summary.outputs.push(read_value_info(value.bytes("ValueInfoProto")?)?),
            _ => {}
        }
    }
    Ok(())
}

fn read_node(
    bytes: &[u8],
    depth: usize,
    summary: &mut GraphSummary,
    initializer_names: &mut HashSet<String>,
) -> Result<(), String> {
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        // NodeProto: attribute = 5
        if number != 5 {
            continue;
        }
        for field in Fields::new(value.bytes("AttributeProto")?) {
            let (number, value) = field?;
            // AttributeProto: t = 5, g = 6, tensors = 10, graphs = 11
            match number {
                5 | 10 => summary.tensors.push(read_tensor(value.bytes("TensorProto")?)?),
                6 | 11 => read_graph(value.bytes("GraphProto")?, depth + 1, summary, initializer_names, false)?,
                _ => {}
            }
        }
    }
    Ok(())
}

fn read_tensor(bytes: &[u8]) -> Result<GraphTensor, String> {
    let mut tensor =
        GraphTensor { name: String::new(), dims: Vec::new(), location: None, offset: None, length: None, data_type: 0 };
    let mut external = false;
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        // TensorProto: dims = 1, name = 8, external_data = 13, data_location = 14
        match number {
            1 => match value {
                Value::Varint(v) => tensor.dims.push(v as i64),
                Value::Bytes(packed) => {
                    let mut at = 0;
                    while at < packed.len() {
                        tensor.dims.push(varint(packed, &mut at)? as i64);
                    }
                }
                _ => return Err("TensorProto.dims has the wrong wire type".into()),
            },
            2 => {
                if let Value::Varint(v) = value {
                    tensor.data_type = v;
                }
            }
            8 => tensor.name = value.string("TensorProto.name")?,
            13 => {
                let (mut key, mut text) = (String::new(), String::new());
                for field in Fields::new(value.bytes("StringStringEntryProto")?) {
                    match field? {
                        (1, v) => key = v.string("external_data key")?,
                        (2, v) => text = v.string("external_data value")?,
                        _ => {}
                    }
                }
                let number =
                    || text.parse::<u64>().map_err(|_| format!("external data {key} `{text}` is not a number"));
                // Runtimes differ on which of repeated keys counts (tract takes the first): a
                // tensor that gives a key twice is refused rather than guessed at.
                let given_twice = match key.as_str() {
                    "location" => tensor.location.replace(text.clone()).is_some(),
                    "offset" => tensor.offset.replace(number()?).is_some(),
                    "length" => tensor.length.replace(number()?).is_some(),
                    _ => false,
                };
                if given_twice {
                    return Err(format!("tensor `{}` gives its external data `{key}` twice", tensor.name));
                }
            }
            14 => external = matches!(value, Value::Varint(1)),
            _ => {}
        }
    }
    if external && tensor.location.is_none() {
        return Err(format!("tensor `{}` is marked external but names no location", tensor.name));
    }
    Ok(tensor)
}

fn read_value_info(bytes: &[u8]) -> Result<ValueInfo, String> {
    let mut info = ValueInfo { name: String::new(), shape: None };
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            // ValueInfoProto: name = 1, type = 2
            1 => info.name = value.string("ValueInfoProto.name")?,
            2 => {
                // TypeProto: tensor_type = 1; TypeProto.Tensor: shape = 2; TensorShapeProto: dim = 1
                for (number, tensor_type) in Fields::new(value.bytes("TypeProto")?).collect::<Result<Vec<_>, _>>()? {
                    if number != 1 {
                        continue;
                    }
                    for (number, shape) in
                        Fields::new(tensor_type.bytes("TypeProto.Tensor")?).collect::<Result<Vec<_>, _>>()?
                    {
                        if number == 2 {
                            info.shape = Some(read_shape(shape.bytes("TensorShapeProto")?)?);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

fn read_shape(bytes: &[u8]) -> Result<Vec<Dim>, String> {
    let mut dims = Vec::new();
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        if number != 1 {
            continue;
        }
        // Dimension: dim_value = 1, dim_param = 2
        let mut dim = Dim::Symbolic(String::new());
        for field in Fields::new(value.bytes("TensorShapeProto.Dimension")?) {
            match field? {
                (1, Value::Varint(v)) => dim = Dim::Fixed(v as i64),
                (2, v) => dim = Dim::Symbolic(v.string("dim_param")?),
                _ => {}
            }
        }
        dims.push(dim);
    }
    Ok(dims)
}

/// A field's value by wire type.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed,
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    fn bytes(self, what: &str) -> Result<&'a [u8], String> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(format!("{what} has the wrong wire type")),
        }
    }

    fn string(self, what: &str) -> Result<String, String> {
        String::from_utf8(self.bytes(what)?.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}

/// The fields of one protobuf message, in order.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields { bytes, at: 0, failed: false }
    }

    fn field(&mut self) -> Result<(u64, Value<'a>), String> {
        let key = varint(self.bytes, &mut self.at)?;
        let value = match key & 7 {
            0 => Value::Varint(varint(self.bytes, &mut self.at)?),
            1 => {
                self.skip(8)?;
                Value::Fixed
            }
            2 => {
                let len = usize::try_from(varint(self.bytes, &mut self.at)?).map_err(|_| "a length overflows")?;
                let start = self.at;
                self.skip(len)?;
                Value::Bytes(&self.bytes[start..self.at])
            }
            5 => {
                self.skip(4)?;
                Value::Fixed
            }
            wire => return Err(format!("unsupported protobuf wire type {wire} at byte {}", self.at)),
        };
        Ok((key >> 3, value))
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        match self.at.checked_add(n) {
            Some(end) if end <= self.bytes.len() => {
                self.at = end;
                Ok(())
            }
            _ => Err("the protobuf data is truncated".into()),
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.bytes.len() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or("the protobuf data is truncated")?;
        *at += 1;
        value |= ((byte & 0x7F) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint runs past 10 bytes".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A serialised message: (field number, bytes) pairs, each length-delimited.
    fn message(fields: &[(u8, &[u8])]) -> Vec<u8> {
        fields.iter().flat_map(|(n, b)| [&[n << 3 | 2, b.len() as u8][..], b].concat()).collect()
    }

    #[test]
    fn repeated_locations_and_graphs_are_refused() {
        let entry = |k: &[u8], v: &[u8]| message(&[(1, k), (2, v)]);
        let tensor = message(&[
            (8, b"w"),
            (13, &entry(b"location", b"extra.bin")),
            (13, &entry(b"location", b"model.safetensors")),
        ]);
        let model = message(&[(7, &message(&[(5, &tensor)]))]);
        assert!(summarise(&model).unwrap_err().contains("`location` twice"));
        let once = message(&[(5, &message(&[(8, b"w"), (13, &entry(b"location", b"model.safetensors"))]))]);
        let summary = summarise(&message(&[(7, &once)])).unwrap();
        assert_eq!(summary.tensors.len(), 1);
        assert_eq!(summary.tensors[0].location.as_deref(), Some("model.safetensors"));
        assert!(summarise(&message(&[(7, &once), (7, &once)])).unwrap_err().contains("more than one graph"));
    }

    #[test]
    fn malformed_bytes_are_errors() {
        assert!(summarise(&[]).unwrap_err().contains("no graph"));
        assert!(summarise(&[0x3A, 0x10, 0x01]).unwrap_err().contains("truncated"));
        assert!(summarise(&[0xFF; 12]).unwrap_err().contains("varint"));
    }
}
