//! A minimal ONNX writer: just the protobuf messages a model graph needs, encoded by hand.
//!
//! Weights are not copied into the graph: each initializer points into the package's safetensors
//! file (ONNX external data), so the package stores every weight once.

use std::collections::HashMap;

const OPSET: u64 = 17;
const IR_VERSION: u64 = 8;
const FLOAT: u64 = 1;
const INT64: u64 = 7;

/// One protobuf message being written.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }

    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }

    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn string(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    fn message(&mut self, field: u32, m: &Message) -> &mut Self {
        self.bytes(field, &m.0)
    }

    fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

fn string_pair(key: &str, value: &str) -> Message {
    let mut m = Message::default();
    m.string(1, key).string(2, value);
    m
}

/// A node attribute.
pub enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, &'a [i64]),
    Float(&'a str, f32),
    Str(&'a str, &'a str),
}

impl Attr<'_> {
    fn encode(&self) -> Message {
        // AttributeProto: name = 1, f = 2, i = 3, s = 4, ints = 8, type = 20
        let mut m = Message::default();
        match self {
            Attr::Int(name, v) => {
                m.string(1, name).int(3, *v).int(20, 2);
            }
            Attr::Float(name, v) => {
                m.string(1, name).float(2, *v).int(20, 1);
            }
            Attr::Str(name, v) => {
                m.string(1, name).string(4, v).int(20, 3);
            }
            Attr::Ints(name, vs) => {
                m.string(1, name);
                for v in *vs {
                    m.int(8, *v);
                }
                m.int(20, 7);
            }
        }
        m
    }
}

/// Where a weight lives in the external data file.
#[derive(Debug, Clone)]
pub struct ExternalTensor {
    pub shape: Vec<usize>,
    pub offset: u64,
    pub length: u64,
}

/// A graph under construction. Node outputs get fresh names; weights keep their state-dict names.
pub struct Graph {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    weights: HashMap<String, ExternalTensor>,
    used_weights: std::collections::HashSet<String>,
    data_file: String,
    counter: usize,
}

/// A dimension of a graph input or output.
pub enum Dim<'a> {
    Fixed(usize),
    Symbol(&'a str),
}

impl Graph {
    /// `weights` maps state-dict names to their place in `data_file` (a path relative to the graph).
    pub fn new(data_file: &str, weights: HashMap<String, ExternalTensor>) -> Graph {
        Graph {
            nodes: Vec::new(),
            initializers: Vec::new(),
            weights,
            used_weights: Default::default(),
            data_file: data_file.to_string(),
            counter: 0,
        }
    }

    /// Adds a node and returns the name of its (single) output.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        self.counter += 1;
        let output = format!("{}_{}", op_type.to_lowercase(), self.counter);
        // NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5
        let mut node = Message::default();
        for input in inputs {
            node.string(1, input);
        }
        node.string(2, &output).string(3, &format!("n{}", self.counter)).string(4, op_type);
        for attr in attrs {
            node.message(5, &attr.encode());
        }
        self.nodes.push(node);
        output
    }

    /// A state-dict tensor, stored in the external data file.
    pub fn weight(&mut self, name: &str) -> String {
        if self.used_weights.insert(name.to_string()) {
            let w = self
                .weights
                .get(name)
                .unwrap_or_else(|| panic!("the graph uses `{name}`, which the converter did not lay out"));
            // TensorProto: dims = 1, data_type = 2, name = 8, external_data = 13, data_location = 14
            let mut t = Message::default();
            for &d in &w.shape {
                t.int(1, d as i64);
            }
            t.int(2, FLOAT as i64).string(8, name);
            t.message(13, &string_pair("location", &self.data_file));
            t.message(13, &string_pair("offset", &w.offset.to_string()));
            t.message(13, &string_pair("length", &w.length.to_string()));
            t.int(14, 1);
            self.initializers.push(t);
        }
        name.to_string()
    }

    fn constant(&mut self, data_type: u64, dims: &[usize], raw: Vec<u8>) -> String {
        self.counter += 1;
        let name = format!("const_{}", self.counter);
        let mut t = Message::default();
        for &d in dims {
            t.int(1, d as i64);
        }
        t.int(2, data_type as i64).string(8, &name).bytes(9, &raw);
        self.initializers.push(t);
        name
    }

    /// A 1-D int64 constant (shapes, axes, indices).
    pub fn ints(&mut self, values: &[i64]) -> String {
        self.constant(INT64, &[values.len()], values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// A 0-D int64 constant (a Gather index that drops the axis).
    pub fn scalar_int(&mut self, value: i64) -> String {
        self.constant(INT64, &[], value.to_le_bytes().to_vec())
    }

    /// A 1-D f32 constant (Resize's scales).
    pub fn floats(&mut self, values: &[f32]) -> String {
        self.floats_shaped(&[values.len()], values)
    }

    /// An f32 constant of `dims` (Swin's attention masks).
    pub fn floats_shaped(&mut self, dims: &[usize], values: &[f32]) -> String {
        self.constant(FLOAT, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// A 0-D f32 constant.
    pub fn scalar(&mut self, value: f32) -> String {
        self.constant(FLOAT, &[], value.to_le_bytes().to_vec())
    }

    /// Serialises the model with one f32 input and one f32 output.
    pub fn finish(self, input: (&str, &[Dim]), output: (&str, &str, &[Dim]), doc: &str) -> Vec<u8> {
        let value_info = |name: &str, dims: &[Dim]| {
            let mut shape = Message::default();
            for d in dims {
                let mut dim = Message::default();
                match d {
                    Dim::Fixed(v) => dim.int(1, *v as i64),
                    Dim::Symbol(s) => dim.string(2, s),
                };
                shape.message(1, &dim);
            }
            let mut tensor = Message::default();
            tensor.int(1, FLOAT as i64).message(2, &shape);
            let mut ty = Message::default();
            ty.message(1, &tensor);
            let mut info = Message::default();
            info.string(1, name).message(2, &ty);
            info
        };
        let (out_name, out_node, out_dims) = output;
        let mut nodes = self.nodes;
        // Rename the last node's output to the graph output through an Identity.
        let mut identity = Message::default();
        identity.string(1, out_node).string(2, out_name).string(3, "output").string(4, "Identity");
        nodes.push(identity);

        // GraphProto: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11, output = 12
        let mut graph = Message::default();
        for n in &nodes {
            graph.message(1, n);
        }
        graph.string(2, "hrm");
        for i in &self.initializers {
            graph.message(5, i);
        }
        graph.message(11, &value_info(input.0, input.1));
        graph.message(12, &value_info(out_name, out_dims));

        // ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, doc_string = 6,
        // graph = 7, opset_import = 8
        let mut opset = Message::default();
        opset.string(1, "").int(2, OPSET as i64);
        let mut model = Message::default();
        model
            .int(1, IR_VERSION as i64)
            .string(2, "hrm convert")
            .string(3, env!("CARGO_PKG_VERSION"))
            .string(6, doc)
            .message(7, &graph)
            .message(8, &opset);
        model.0
    }
}
