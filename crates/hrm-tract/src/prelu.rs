//! ONNX's `PRelu` with constant slopes, rewritten as `x + (slope - 1) * min(x, 0)` before tract
//! reads the graph. tract runs `PRelu` as a comparison, a select and a multiplication, each over
//! a temporary of the activation's size: 8 of the 20 ms of MediaPipe's face mesh, which has 69 of
//! them. The rewritten form is element-wise arithmetic that tract fuses. It is `x` for `x >= 0`
//! and `x + (slope - 1) * x` below: `slope * x` up to a few units in the last place (two
//! roundings instead of one; more for slopes near 0), which moves the face mesh's landmarks by
//! under 0.01 % of the face. (`x = -inf` gives NaN; no finite input does.)

use std::collections::HashMap;
use tract_onnx::pb::{GraphProto, NodeProto, TensorProto};

/// ONNX's code for float32.
const FLOAT: i32 = 1;

/// Rewrites every `PRelu` whose slope is a float32 initializer; returns how many. Each distinct
/// slope gets one `slope - 1` initializer, however many nodes share it.
pub(crate) fn rewrite(graph: &mut GraphProto) -> usize {
    let zero = "hrm_prelu_zero".to_string();
    let initializers: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut minus_one: HashMap<String, Option<String>> = HashMap::new();
    let mut added = Vec::new();
    let mut rewritten = 0;
    let mut nodes = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        let slope = match node.input.as_slice() {
            [_, slope] if node.op_type == "PRelu" && node.output.len() == 1 => minus_one
                .entry(slope.clone())
                .or_insert_with(|| {
                    let (dims, values) = initializers.get(slope.as_str()).and_then(|t| float_values(t))?;
                    let name = format!("{slope}__hrm_minus_one");
                    let float_data = values.iter().map(|s| s - 1.0).collect();
                    added.push(TensorProto {
                        name: name.clone(),
                        dims,
                        data_type: FLOAT,
                        float_data,
                        ..TensorProto::default()
                    });
                    Some(name)
                })
                .clone(),
            _ => None,
        };
        let Some(minus_one) = slope else {
            nodes.push(node);
            continue;
        };
        let (x, out) = (&node.input[0], &node.output[0]);
        let (negative, scaled) = (format!("{out}__hrm_negative"), format!("{out}__hrm_scaled"));
        nodes.push(op("Min", &[x, &zero], &negative));
        nodes.push(op("Mul", &[&negative, &minus_one], &scaled));
        nodes.push(op("Add", &[x, &scaled], out));
        rewritten += 1;
    }
    graph.node = nodes;
    if rewritten > 0 {
        added.push(TensorProto { name: zero, data_type: FLOAT, float_data: vec![0.0], ..TensorProto::default() });
        graph.initializer.extend(added);
    }
    rewritten
}

fn op(op_type: &str, inputs: &[&String], output: &str) -> NodeProto {
    NodeProto {
        op_type: op_type.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..NodeProto::default()
    }
}

/// A float32 initializer's dimensions and values, when they are stored in the graph.
fn float_values(tensor: &TensorProto) -> Option<(Vec<i64>, Vec<f32>)> {
    if tensor.data_type != FLOAT || !tensor.external_data.is_empty() {
        return None;
    }
    let count = tensor.dims.iter().try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))?;
    let values: Vec<f32> = if !tensor.raw_data.is_empty() {
        tensor.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        tensor.float_data.clone()
    };
    (values.len() == count).then(|| (tensor.dims.clone(), values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelu_nodes_become_min_mul_add_with_slope_minus_one() {
        let slope = TensorProto {
            name: "a".into(),
            dims: vec![2],
            data_type: FLOAT,
            float_data: vec![0.25, -3.0],
            ..TensorProto::default()
        };
        let mut graph = GraphProto {
            node: vec![op("PRelu", &[&"x".to_string(), &"a".to_string()], "y"), op("Relu", &[&"y".to_string()], "z")],
            initializer: vec![slope],
            ..GraphProto::default()
        };
        assert_eq!(rewrite(&mut graph), 1);
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Min", "Mul", "Add", "Relu"]);
        assert_eq!(graph.node[2].output, ["y"]);
        let minus_one = graph.initializer.iter().find(|t| t.name == "a__hrm_minus_one").unwrap();
        assert_eq!(minus_one.float_data, [-0.75, -4.0]);
        // A slope that is not a stored constant is left alone.
        let mut other =
            GraphProto { node: vec![op("PRelu", &[&"x".to_string(), &"b".to_string()], "y")], ..GraphProto::default() };
        assert_eq!(rewrite(&mut other), 0);
        assert_eq!(other.node[0].op_type, "PRelu");
    }
}
