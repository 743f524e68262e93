//! Frees a graph's input shapes where hrm feeds other sizes than the export recorded. ONNX Runtime
//! checks every input against the shape the graph declares, and YuNet is exported at 640x640 but
//! run at each frame's own size; so, as tract does, the declared sizes give way to the host's: the
//! inputs' dimensions are rewritten (a fixed size, or a named free one), and the shapes recorded
//! for outputs and intermediate values, which would contradict them, are dropped. This walks the
//! protobuf wire format directly, touching only those fields.

use hrm_plugin::{HRM_PLUGIN_DIM_ANY, HRM_PLUGIN_DIM_BATCH};

// Field numbers (onnx.proto).
const MODEL_GRAPH: u32 = 7;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
const GRAPH_VALUE_INFO: u32 = 13;
const VALUE_INFO_NAME: u32 = 1;
const VALUE_INFO_TYPE: u32 = 2;
const TYPE_TENSOR: u32 = 1;
const TENSOR_ELEM_TYPE: u32 = 1;
const TENSOR_SHAPE: u32 = 2;
const SHAPE_DIM: u32 = 1;
const DIM_VALUE: u32 = 1;
const DIM_PARAM: u32 = 2;
const TENSOR_PROTO_NAME: u32 = 8;
const GRAPH_SPARSE_INITIALIZER: u32 = 15;
const SPARSE_VALUES: u32 = 1;

const VARINT: u8 = 0;
const LEN: u8 = 2;

/// One field of a message: its number, wire type, the bytes of the whole field and, for a
/// length-delimited one, of its payload (for a varint, its value).
struct Field<'a> {
    number: u32,
    wire: u8,
    whole: &'a [u8],
    payload: &'a [u8],
    value: u64,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let key = varint(buf, &mut pos)?;
        let (number, wire) = (u32::try_from(key >> 3).ok()?, (key & 7) as u8);
        let (mut payload, mut value) = (&buf[0..0], 0);
        match wire {
            VARINT => value = varint(buf, &mut pos)?,
            1 => pos = pos.checked_add(8)?,
            LEN => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len)?;
                payload = buf.get(pos..end)?;
                pos = end;
            }
            5 => pos = pos.checked_add(4)?,
            _ => return None,
        }
        out.push(Field { number, wire, whole: buf.get(start..pos)?, payload, value });
    }
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_len(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    put_varint(out, u64::from(number) << 3 | u64::from(LEN));
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn put_uint(out: &mut Vec<u8>, number: u32, value: u64) {
    put_varint(out, u64::from(number) << 3);
    put_varint(out, value);
}

fn field<'a, 'b>(fields: &'b [Field<'a>], number: u32) -> Option<&'b Field<'a>> {
    fields.iter().find(|f| f.number == number && f.wire == LEN)
}

/// A tensor value's element type and declared dimensions (a size, or None for a free one).
type TensorType = (u64, Vec<Option<i64>>);

/// A value's name and, when its type is a tensor, its element type (1, float, when not recorded)
/// and declared dimensions.
fn value_info(bytes: &[u8]) -> Option<(&[u8], Option<TensorType>)> {
    let info = fields(bytes)?;
    let name = field(&info, VALUE_INFO_NAME).map_or(&[][..], |f| f.payload);
    let tensor = field(&info, VALUE_INFO_TYPE).and_then(|t| fields(t.payload));
    let tensor = tensor.as_deref().and_then(|t| field(t, TYPE_TENSOR)).and_then(|t| fields(t.payload));
    let Some(tensor) = tensor else { return Some((name, None)) };
    let elem_type = tensor.iter().find(|f| f.number == TENSOR_ELEM_TYPE && f.wire == VARINT).map_or(1, |f| f.value);
    let mut dims = Vec::new();
    if let Some(shape) = field(&tensor, TENSOR_SHAPE).and_then(|s| fields(s.payload)) {
        for dim in shape.iter().filter(|f| f.number == SHAPE_DIM && f.wire == LEN) {
            let dim = fields(dim.payload)?;
            dims.push(dim.iter().find(|f| f.number == DIM_VALUE && f.wire == VARINT).map(|f| f.value as i64));
        }
    }
    Some((name, Some((elem_type, dims))))
}

/// A ValueInfoProto of `name` and `elem_type`, with `dims` when given (a size, or a free
/// dimension named by `param`), or of unknown shape.
fn encode_value_info(name: &[u8], elem_type: u64, dims: Option<&[i64]>, param: &str) -> Vec<u8> {
    let mut tensor = Vec::new();
    put_uint(&mut tensor, TENSOR_ELEM_TYPE, elem_type);
    if let Some(dims) = dims {
        let mut shape = Vec::new();
        for (i, &d) in dims.iter().enumerate() {
            let mut dim = Vec::new();
            match d {
                HRM_PLUGIN_DIM_BATCH => put_len(&mut dim, DIM_PARAM, b"batch"),
                HRM_PLUGIN_DIM_ANY => put_len(&mut dim, DIM_PARAM, format!("{param}_{i}").as_bytes()),
                n => put_uint(&mut dim, DIM_VALUE, n as u64),
            }
            put_len(&mut shape, SHAPE_DIM, &dim);
        }
        put_len(&mut tensor, TENSOR_SHAPE, &shape);
    }
    let mut ty = Vec::new();
    put_len(&mut ty, TYPE_TENSOR, &tensor);
    let mut info = Vec::new();
    put_len(&mut info, VALUE_INFO_NAME, name);
    put_len(&mut info, VALUE_INFO_TYPE, &ty);
    info
}

/// Whether a declared dimension agrees with the one hrm feeds.
fn agrees(declared: Option<i64>, fed: i64) -> bool {
    match (declared, fed) {
        (None, _) => true,
        (Some(_), HRM_PLUGIN_DIM_BATCH | HRM_PLUGIN_DIM_ANY) => false,
        (Some(d), n) => d == n,
    }
}

/// The model with its inputs (those that are not initializers, in order) given `shapes`, or None
/// when the graph already declares shapes that agree with them (it is then used as it is).
/// An error when the bytes are not an ONNX model or have another number of inputs.
pub fn free_input_shapes(model: &[u8], shapes: &[Vec<i64>]) -> Result<Option<Vec<u8>>, String> {
    let malformed = || "the file is not a well-formed ONNX model".to_string();
    let top = fields(model).ok_or_else(malformed)?;
    let graph_field = field(&top, MODEL_GRAPH).ok_or_else(|| "the ONNX model has no graph".to_string())?;
    let graph = fields(graph_field.payload).ok_or_else(malformed)?;
    // Initializers may also be listed as inputs (older exports): their names, dense and sparse.
    let mut initializers = std::collections::HashSet::new();
    for init in graph.iter().filter(|f| f.wire == LEN) {
        let tensor = match init.number {
            GRAPH_INITIALIZER => Some(init.payload),
            GRAPH_SPARSE_INITIALIZER => {
                let sparse = fields(init.payload).ok_or_else(malformed)?;
                field(&sparse, SPARSE_VALUES).map(|v| v.payload)
            }
            _ => None,
        };
        if let Some(tensor) = tensor {
            let tensor = fields(tensor).ok_or_else(malformed)?;
            initializers.extend(field(&tensor, TENSOR_PROTO_NAME).map(|f| f.payload));
        }
    }
    // The graph's inputs that hrm feeds, with their field's index.
    let mut inputs = Vec::new();
    for (i, f) in graph.iter().enumerate().filter(|(_, f)| f.number == GRAPH_INPUT && f.wire == LEN) {
        let (name, tensor) = value_info(f.payload).ok_or_else(malformed)?;
        if !initializers.contains(name) {
            let (elem_type, dims) = tensor.unwrap_or((1, Vec::new()));
            inputs.push((i, name, elem_type, dims));
        }
    }
    if inputs.len() != shapes.len() {
        return Err(format!("the graph has {} inputs, {} expected", inputs.len(), shapes.len()));
    }
    let agree = inputs.iter().zip(shapes).all(|((_, _, _, declared), fed)| {
        declared.len() == fed.len() && declared.iter().zip(fed).all(|(&d, &f)| agrees(d, f))
    });
    if agree {
        return Ok(None);
    }
    let mut new_graph = Vec::with_capacity(graph_field.payload.len());
    for (i, f) in graph.iter().enumerate() {
        match (f.number, f.wire) {
            (GRAPH_INPUT, LEN) => match inputs.iter().position(|input| input.0 == i) {
                Some(k) => {
                    let (_, name, elem_type, _) = inputs[k];
                    let info = encode_value_info(name, elem_type, Some(&shapes[k]), &format!("input{k}"));
                    put_len(&mut new_graph, GRAPH_INPUT, &info);
                }
                None => new_graph.extend_from_slice(f.whole),
            },
            (GRAPH_OUTPUT, LEN) => match value_info(f.payload).ok_or_else(malformed)? {
                (name, Some((elem_type, _))) => {
                    put_len(&mut new_graph, GRAPH_OUTPUT, &encode_value_info(name, elem_type, None, ""))
                }
                // Not a tensor (a sequence, a map): kept as it is.
                (_, None) => new_graph.extend_from_slice(f.whole),
            },
            (GRAPH_VALUE_INFO, LEN) => {}
            _ => new_graph.extend_from_slice(f.whole),
        }
    }
    let mut out = Vec::with_capacity(model.len());
    for f in &top {
        match f.number == MODEL_GRAPH && f.wire == LEN {
            true => put_len(&mut out, MODEL_GRAPH, &new_graph),
            false => out.extend_from_slice(f.whole),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model of one graph: inputs `x` (fixed 1x3x640x640) and the initializer `w` (also listed
    /// as an input, as older exports do), one output with a recorded shape, one value_info.
    fn model() -> Vec<u8> {
        let mut init = Vec::new();
        put_len(&mut init, TENSOR_PROTO_NAME, b"w");
        let mut graph = Vec::new();
        put_len(&mut graph, GRAPH_INITIALIZER, &init);
        put_len(&mut graph, GRAPH_INPUT, &encode_value_info(b"x", 1, Some(&[1, 3, 640, 640]), ""));
        put_len(&mut graph, GRAPH_INPUT, &encode_value_info(b"w", 1, Some(&[3]), ""));
        put_len(&mut graph, GRAPH_OUTPUT, &encode_value_info(b"y", 1, Some(&[1, 6400]), ""));
        put_len(&mut graph, GRAPH_VALUE_INFO, &encode_value_info(b"t", 1, Some(&[1, 8]), ""));
        let mut model = Vec::new();
        put_uint(&mut model, 1, 7); // ir_version
        put_len(&mut model, MODEL_GRAPH, &graph);
        model
    }

    fn graph_values(model: &[u8], number: u32) -> Vec<(Vec<u8>, Vec<Option<i64>>)> {
        let top = fields(model).unwrap();
        let graph = fields(field(&top, MODEL_GRAPH).unwrap().payload).unwrap();
        let infos = graph.iter().filter(|f| f.number == number);
        infos.map(|f| value_info(f.payload).map(|(n, t)| (n.to_vec(), t.map_or(vec![], |t| t.1))).unwrap()).collect()
    }

    #[test]
    fn fixed_input_sizes_give_way_to_free_ones_and_recorded_shapes_are_dropped() {
        let rewritten = free_input_shapes(&model(), &[vec![1, 3, HRM_PLUGIN_DIM_ANY, HRM_PLUGIN_DIM_ANY]]).unwrap();
        let rewritten = rewritten.expect("640x640 does not agree with any size");
        let inputs = graph_values(&rewritten, GRAPH_INPUT);
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[0], (b"x".to_vec(), vec![Some(1), Some(3), None, None]));
        assert_eq!(inputs[1], (b"w".to_vec(), vec![Some(3)]), "the initializer's entry is kept as it was");
        assert_eq!(graph_values(&rewritten, GRAPH_OUTPUT), [(b"y".to_vec(), vec![])]);
        assert!(graph_values(&rewritten, GRAPH_VALUE_INFO).is_empty());
        let top = fields(&rewritten).unwrap();
        assert_eq!((top.len(), top[0].value), (2, 7), "the other fields are kept");
    }

    #[test]
    fn shapes_that_agree_leave_the_model_alone_and_wrong_input_counts_are_errors() {
        assert_eq!(free_input_shapes(&model(), &[vec![1, 3, 640, 640]]), Ok(None));
        let batch = free_input_shapes(&model(), &[vec![HRM_PLUGIN_DIM_BATCH, 3, 640, 640]]).unwrap().unwrap();
        assert_eq!(graph_values(&batch, GRAPH_INPUT)[0].1, [None, Some(3), Some(640), Some(640)]);
        let err = free_input_shapes(&model(), &[vec![1], vec![2]]).unwrap_err();
        assert!(err.contains("1 inputs, 2 expected"), "{err}");
        assert!(free_input_shapes(b"\xff\xff", &[]).unwrap_err().contains("not a well-formed ONNX model"));
    }
}
