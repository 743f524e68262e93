//! A pickle reader for PyTorch checkpoints: the opcodes of protocols 0-5, with `torch.save`'s
//! persistent storages and tensor rebuild calls understood, and any other class (argparse's
//! `Namespace`, optimizer state) kept as an inert object. Nothing is ever imported or executed.
//!
//! Objects live in an arena and the stack holds indices, so a container that is memoised and then
//! filled (as pickle always does) is seen filled from every reference, as in Python.

use std::collections::HashMap;

/// A decoded Python value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Tensor(TensorRef),
    /// An instance of a class this reader does not interpret (`argparse.Namespace`, ...).
    Object {
        class: String,
        args: Vec<Value>,
        state: Option<Box<Value>>,
    },
    /// A value too large or too odd to decode (an integer over 64 bits, ...), described in words.
    Opaque(String),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Entries of a dict (or of an object whose state is a dict).
    pub fn entries(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(items) => Some(items),
            Value::Object { state: Some(state), .. } => state.entries(),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// A short description for messages: `dict`, `Tensor`, `argparse.Namespace`, ...
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::List(_) => "list".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::Dict(_) => "dict".into(),
            Value::Tensor(_) => "Tensor".into(),
            Value::Object { class, .. } => class.clone(),
            Value::Opaque(what) => what.clone(),
        }
    }
}

/// Element types of torch storages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    fn from_storage_class(name: &str) -> Option<DType> {
        Some(match name {
            "DoubleStorage" => DType::F64,
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it: a view into a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage's key: its data is the archive entry `data/<key>`.
    pub storage: String,
    pub dtype: DType,
    /// Elements in the storage.
    pub storage_len: usize,
    /// Offset in elements.
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

impl TensorRef {
    /// The element count of the view; `usize::MAX` when the shape overflows (no storage holds it).
    pub fn numel(&self) -> usize {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).unwrap_or(usize::MAX)
    }
}

#[derive(Debug)]
pub struct PickleError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

type Id = usize;

#[derive(Debug, Clone)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(String, String),
    Storage { key: String, dtype: DType, len: usize },
    Tensor(TensorRef),
    Object { class: String, args: Vec<Id>, state: Option<Id> },
    Opaque(String),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    arena: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

type Step<T> = Result<T, String>;

/// Decodes one pickle. `data` is the whole of `data.pkl`.
pub fn load(data: &[u8]) -> Result<Value, PickleError> {
    let mut m = Machine { data, pos: 0, arena: Vec::new(), stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() };
    let root = m.run().map_err(|message| PickleError { offset: m.pos, message })?;
    let mut budget = Budget { objects: MAX_OBJECTS, bytes: MAX_BYTES };
    m.materialise(root, 0, &mut budget).map_err(|message| PickleError { offset: m.pos, message })
}

/// What materialising may create: memoised objects are shared in the pickle but copied in the
/// result, so a few KB of pickle can reference one object millions of times.
struct Budget {
    objects: usize,
    bytes: usize,
}

const MAX_OBJECTS: usize = 5_000_000;
/// Strings and bytes in all, after copying shared ones (a checkpoint's pickle holds names and
/// small values; its tensors live in other entries).
const MAX_BYTES: usize = 512 << 20;

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Step<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("the pickle ends in the middle of an opcode")?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Step<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Step<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Step<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Step<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn line(&mut self) -> Step<String> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or("a text opcode has no end of line")?;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(text)
    }

    fn len_prefixed(&mut self, len: u64) -> Step<Vec<u8>> {
        let len = usize::try_from(len).map_err(|_| "a length does not fit in memory")?;
        Ok(self.take(len)?.to_vec())
    }

    fn utf8(bytes: Vec<u8>) -> Step<String> {
        String::from_utf8(bytes).map_err(|_| "a string is not valid UTF-8".to_string())
    }

    fn push(&mut self, node: Node) {
        self.arena.push(node);
        self.stack.push(self.arena.len() - 1);
    }

    fn pop(&mut self) -> Step<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("the stack underflows".into());
        }
        Ok(self.stack.pop().unwrap())
    }

    fn top(&self) -> Step<Id> {
        self.stack.last().copied().ok_or_else(|| "the stack is empty".to_string())
    }

    fn pop_mark(&mut self) -> Step<Vec<Id>> {
        let mark = self.marks.pop().ok_or("an opcode needs a MARK that is not there")?;
        Ok(self.stack.split_off(mark))
    }

    /// The memo key of GET / PUT (text), BINGET / BINPUT (one byte), LONG_BINGET / LONG_BINPUT (four).
    fn memo_index(&mut self, op: u8) -> Step<u64> {
        match op {
            b'g' | b'p' => self.line()?.trim().parse().map_err(|_| "a memo index that is not a number".into()),
            b'h' | b'q' => Ok(self.u8()? as u64),
            _ => Ok(self.u32()? as u64),
        }
    }

    fn memo_get(&mut self, key: u64) -> Step<()> {
        let id = *self.memo.get(&key).ok_or_else(|| format!("memo entry {key} is read before it is written"))?;
        self.stack.push(id);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Step<()> {
        let id = self.top()?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn run(&mut self) -> Step<Id> {
        loop {
            let op = self.u8()?;
            if op == b'.' {
                return self.pop();
            }
            match self.literal(op)? {
                Some(node) => self.push(node),
                None => self.structure(op)?,
            }
        }
    }

    /// The value an opcode that pushes a literal (a number, a string, bytes, an empty container)
    /// reads from the stream; None for every other opcode.
    fn literal(&mut self, op: u8) -> Step<Option<Node>> {
        Ok(Some(match op {
            b'N' => Node::None,
            0x88 => Node::Bool(true),
            0x89 => Node::Bool(false),
            b'J' => {
                let v = self.u32()? as i32;
                Node::Int(v as i64)
            }
            b'K' => {
                let v = self.u8()?;
                Node::Int(v as i64)
            }
            b'M' => {
                let v = self.u16()?;
                Node::Int(v as i64)
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a { self.u8()? as u64 } else { self.u32()? as u64 };
                long(&self.len_prefixed(n)?)
            }
            b'I' | b'L' => {
                let text = self.line()?;
                match text.trim_end_matches('L') {
                    "01" => Node::Bool(true),
                    "00" => Node::Bool(false),
                    text => text.parse().map(Node::Int).unwrap_or_else(|_| Node::Opaque(format!("integer {text}"))),
                }
            }
            b'G' => {
                let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                Node::Float(v)
            }
            b'F' => {
                let text = self.line()?;
                let v = text.trim().parse().map_err(|_| format!("bad float literal {text:?}"))?;
                Node::Float(v)
            }
            b'X' => {
                let n = self.u32()? as u64;
                let s = Self::utf8(self.len_prefixed(n)?)?;
                Node::Str(s)
            }
            0x8c => {
                let n = self.u8()? as u64;
                let s = Self::utf8(self.len_prefixed(n)?)?;
                Node::Str(s)
            }
            0x8d => {
                let n = self.u64()?;
                let s = Self::utf8(self.len_prefixed(n)?)?;
                Node::Str(s)
            }
            b'V' => {
                let s = self.line()?;
                Node::Str(s)
            }
            b'T' | b'U' => {
                let n = if op == b'T' { self.u32()? as u64 } else { self.u8()? as u64 };
                let bytes = self.len_prefixed(n)?;
                Node::Str(String::from_utf8_lossy(&bytes).into_owned())
            }
            b'S' => {
                let s = self.line()?;
                Node::Str(s.trim_matches(|c| c == '\'' || c == '"').to_string())
            }
            b'B' | b'C' | 0x8e | 0x96 => {
                let n = match op {
                    b'B' => self.u32()? as u64,
                    b'C' => self.u8()? as u64,
                    _ => self.u64()?,
                };
                let bytes = self.len_prefixed(n)?;
                Node::Bytes(bytes)
            }
            b')' => Node::Tuple(Vec::new()),
            b']' => Node::List(Vec::new()),
            b'}' => Node::Dict(Vec::new()),
            0x8f => Node::List(Vec::new()), // EMPTY_SET: a set reads as a list
            _ => return Ok(None),
        }))
    }

    /// Every other opcode: the stack and its marks, containers filled, the memo, globals, calls
    /// and persistent ids; an opcode torch.save never writes is an error that names it.
    fn structure(&mut self, op: u8) -> Step<()> {
        match op {
            0x80 => {
                let proto = self.u8()?;
                if proto > 5 {
                    return Err(format!("pickle protocol {proto} is newer than 5"));
                }
            }
            0x95 => {
                self.u64()?; // FRAME: a size hint only
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let id = self.top()?;
                self.stack.push(id);
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items))
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(Node::Tuple(items))
            }
            b'l' | 0x91 => {
                let items = self.pop_mark()?;
                self.push(Node::List(items))
            }
            b'd' => {
                let items = self.pop_mark()?;
                let pairs = pairs(items)?;
                self.push(Node::Dict(pairs))
            }
            b'a' => {
                let item = self.pop()?;
                let list = self.top()?;
                self.extend(list, vec![item])?;
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                let list = self.top()?;
                self.extend(list, items)?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                let dict = self.top()?;
                self.set_items(dict, vec![(key, value)])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                let dict = self.top()?;
                self.set_items(dict, pairs(items)?)?;
            }
            b'g' | b'h' | b'j' => {
                let key = self.memo_index(op)?;
                self.memo_get(key)?
            }
            b'p' | b'q' | b'r' => {
                let key = self.memo_index(op)?;
                self.memo_put(key)?
            }
            0x94 => {
                let key = self.memo.len() as u64;
                self.memo_put(key)?
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.arena.push(Node::Global(module, name));
                self.stack.push(self.arena.len() - 1);
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (&self.arena[module], &self.arena[name]) {
                    (Node::Str(m), Node::Str(n)) => {
                        let node = Node::Global(m.clone(), n.clone());
                        self.push(node)
                    }
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let node = self.call(callable, args)?;
                self.push(node)
            }
            0x81 => {
                let args = self.pop()?;
                let class = self.pop()?;
                let node = self.call(class, args)?;
                self.push(node)
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let class = self.pop()?;
                let node = self.call(class, args)?;
                self.push(node)
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.top()?;
                if let Node::Object { state: slot, .. } = &mut self.arena[target] {
                    *slot = Some(state);
                } // state on dicts (OrderedDict's _metadata) and tensors carries nothing we need
            }
            b'Q' => {
                let pid = self.pop()?;
                let node = self.persistent(pid)?;
                self.push(node)
            }
            b'P' => return Err("text persistent ids are not used by torch.save".into()),
            0x82..=0x84 => return Err("the extension registry (EXT opcodes) is not supported".into()),
            b'i' | b'o' => return Err("protocol-0 instance opcodes (INST/OBJ) are not supported".into()),
            0x97 | 0x98 => return Err("out-of-band buffers are not supported".into()),
            other => return Err(format!("unknown opcode 0x{other:02x}")),
        }
        Ok(())
    }

    fn extend(&mut self, target: Id, items: Vec<Id>) -> Step<()> {
        match &mut self.arena[target] {
            Node::List(list) => list.extend(items),
            Node::Object { args, .. } => args.extend(items), // list-like objects keep their items as args
            other => return Err(format!("APPEND to a {}", node_kind(other))),
        }
        Ok(())
    }

    fn set_items(&mut self, target: Id, items: Vec<(Id, Id)>) -> Step<()> {
        match &mut self.arena[target] {
            Node::Dict(dict) => dict.extend(items),
            other => return Err(format!("SETITEM on a {}", node_kind(other))),
        }
        Ok(())
    }

    fn tuple(&self, id: Id) -> Step<&[Id]> {
        match &self.arena[id] {
            Node::Tuple(items) => Ok(items),
            other => Err(format!("expected a tuple, found a {}", node_kind(other))),
        }
    }

    fn int(&self, id: Id) -> Step<usize> {
        match self.arena[id] {
            Node::Int(v) if v >= 0 => Ok(v as usize),
            _ => Err(format!("expected a non-negative int, found a {}", node_kind(&self.arena[id]))),
        }
    }

    fn ints(&self, id: Id) -> Step<Vec<usize>> {
        self.tuple(id)?.iter().map(|&i| self.int(i)).collect()
    }

    /// REDUCE / NEWOBJ: interprets torch's rebuild functions and OrderedDict, keeps anything else.
    fn call(&mut self, callable: Id, args: Id) -> Step<Node> {
        let (module, name) = match &self.arena[callable] {
            Node::Global(m, n) => (m.clone(), n.clone()),
            other => return Err(format!("REDUCE calls a {}", node_kind(other))),
        };
        let arg_ids = self.tuple(args)?.to_vec();
        match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") if arg_ids.is_empty() => Ok(Node::Dict(Vec::new())),
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                if arg_ids.len() < 4 {
                    return Err(format!("{name} takes at least 4 arguments, found {}", arg_ids.len()));
                }
                let (storage, storage_dtype, storage_len) = match &self.arena[arg_ids[0]] {
                    Node::Storage { key, dtype, len } => (key.clone(), *dtype, *len),
                    other => return Err(format!("{name} expects a storage, found a {}", node_kind(other))),
                };
                let tensor = TensorRef {
                    storage,
                    dtype: storage_dtype,
                    storage_len,
                    offset: self.int(arg_ids[1])?,
                    shape: self.ints(arg_ids[2])?,
                    stride: self.ints(arg_ids[3])?,
                };
                if tensor.shape.len() != tensor.stride.len() {
                    return Err(format!(
                        "a tensor has {} sizes but {} strides",
                        tensor.shape.len(),
                        tensor.stride.len()
                    ));
                }
                Ok(Node::Tensor(tensor))
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => match arg_ids.first() {
                Some(&data) => Ok(self.arena[data].clone()),
                None => Err("_rebuild_parameter without arguments".into()),
            },
            _ => Ok(Node::Object { class: format!("{module}.{name}"), args: arg_ids, state: None }),
        }
    }

    /// `torch.save` writes storages as `('storage', torch.FloatStorage, key, location, numel)`.
    fn persistent(&mut self, pid: Id) -> Step<Node> {
        let items = self.tuple(pid)?.to_vec();
        let is_storage = matches!(items.first().map(|&i| &self.arena[i]), Some(Node::Str(s)) if s == "storage");
        if !is_storage || items.len() != 5 {
            return Err("a persistent id that is not a torch storage".into());
        }
        let dtype = match &self.arena[items[1]] {
            Node::Global(_, class) => {
                DType::from_storage_class(class).ok_or_else(|| format!("unsupported storage type {class}"))?
            }
            other => return Err(format!("a storage type that is a {}", node_kind(other))),
        };
        let key = match &self.arena[items[2]] {
            Node::Str(s) => s.clone(),
            Node::Int(i) => i.to_string(),
            other => return Err(format!("a storage key that is a {}", node_kind(other))),
        };
        let len = self.int(items[4])?;
        Ok(Node::Storage { key, dtype, len })
    }

    fn materialise(&self, id: Id, depth: usize, budget: &mut Budget) -> Step<Value> {
        if depth > 200 {
            return Err("objects nest more than 200 deep".into());
        }
        budget.objects = budget.objects.checked_sub(1).ok_or("the pickle expands to too many objects")?;
        let bytes = match &self.arena[id] {
            Node::Str(s) => s.len(),
            Node::Bytes(b) => b.len(),
            _ => 0,
        };
        budget.bytes = budget
            .bytes
            .checked_sub(bytes)
            .ok_or_else(|| format!("the pickle expands to more than {MAX_BYTES} bytes of strings and bytes"))?;
        let many = |ids: &[Id], budget: &mut Budget| -> Step<Vec<Value>> {
            ids.iter().map(|&i| self.materialise(i, depth + 1, budget)).collect()
        };
        Ok(match &self.arena[id] {
            Node::None => Value::None,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::Float(f) => Value::Float(*f),
            Node::Str(s) => Value::Str(s.clone()),
            Node::Bytes(b) => Value::Bytes(b.clone()),
            Node::List(items) => Value::List(many(items, budget)?),
            Node::Tuple(items) => Value::Tuple(many(items, budget)?),
            Node::Dict(pairs) => Value::Dict(
                pairs
                    .iter()
                    .map(|&(k, v)| {
                        Ok((self.materialise(k, depth + 1, budget)?, self.materialise(v, depth + 1, budget)?))
                    })
                    .collect::<Step<_>>()?,
            ),
            Node::Global(m, n) => Value::Opaque(format!("{m}.{n}")),
            Node::Storage { .. } => Value::Opaque("torch storage".into()),
            Node::Tensor(t) => Value::Tensor(t.clone()),
            Node::Object { class, args, state } => Value::Object {
                class: class.clone(),
                args: many(args, budget)?,
                state: match state {
                    Some(s) => Some(Box::new(self.materialise(*s, depth + 1, budget)?)),
                    None => None,
                },
            },
            Node::Opaque(what) => Value::Opaque(what.clone()),
        })
    }
}

fn pairs(items: Vec<Id>) -> Step<Vec<(Id, Id)>> {
    if !items.len().is_multiple_of(2) {
        return Err("a dict has a key without a value".into());
    }
    Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// LONG1 / LONG4: little-endian two's complement.
fn long(bytes: &[u8]) -> Node {
    if bytes.len() > 8 {
        return Node::Opaque(format!("{}-byte integer", bytes.len()));
    }
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xFF; 8] } else { [0; 8] };
    buf[..bytes.len()].copy_from_slice(bytes);
    Node::Int(i64::from_le_bytes(buf))
}

fn node_kind(node: &Node) -> &'static str {
    match node {
        Node::None => "None",
        Node::Bool(_) => "bool",
        Node::Int(_) => "int",
        Node::Float(_) => "float",
        Node::Str(_) => "str",
        Node::Bytes(_) => "bytes",
        Node::List(_) => "list",
        Node::Tuple(_) => "tuple",
        Node::Dict(_) => "dict",
        Node::Global(..) => "global",
        Node::Storage { .. } => "storage",
        Node::Tensor(_) => "tensor",
        Node::Object { .. } => "object",
        Node::Opaque(_) => "opaque value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    #[test]
    fn a_memoised_container_is_seen_filled_from_every_reference() {
        // pickle.dumps([d, d], protocol=2) with d = {'x': 1}
        let bytes = b"\x80\x02]q\x00(}q\x01X\x01\x00\x00\x00xq\x02K\x01sh\x01e.";
        let one = Value::Dict(vec![(s("x"), Value::Int(1))]);
        assert_eq!(load(bytes).unwrap(), Value::List(vec![one.clone(), one]));
    }

    #[test]
    fn scalars_bytes_tuples_and_namespaces() {
        // {'big': 2**70, 'neg': -5, 'f': 1.5, 't': (1, 2, 3), 'n': None, 'b': b'ab',
        //  'args': argparse.Namespace(lr=0.1, model='vit')}, protocol 2
        let bytes = b"\x80\x02}q\x00(X\x03\x00\x00\x00bigq\x01\x8a\t\x00\x00\x00\x00\x00\x00\x00\x00@X\x03\x00\x00\x00negq\x02J\xfb\xff\xff\xffX\x01\x00\x00\x00fq\x03G?\xf8\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00tq\x04K\x01K\x02K\x03\x87q\x05X\x01\x00\x00\x00nq\x06NX\x01\x00\x00\x00bq\x07c_codecs\nencode\nq\x08X\x02\x00\x00\x00abq\tX\x06\x00\x00\x00latin1q\n\x86q\x0bRq\x0cX\x04\x00\x00\x00argsq\rcargparse\nNamespace\nq\x0e)\x81q\x0f}q\x10(X\x02\x00\x00\x00lrq\x11G?\xb9\x99\x99\x99\x99\x99\x9aX\x05\x00\x00\x00modelq\x12X\x03\x00\x00\x00vitq\x13ubu.";
        let value = load(bytes).unwrap();
        assert_eq!(value.get("big"), Some(&Value::Opaque("9-byte integer".into())));
        assert_eq!(value.get("neg"), Some(&Value::Int(-5)));
        assert_eq!(value.get("f"), Some(&Value::Float(1.5)));
        assert_eq!(value.get("t"), Some(&Value::Tuple(vec![Value::Int(1), Value::Int(2), Value::Int(3)])));
        assert_eq!(value.get("n"), Some(&Value::None));
        let args = value.get("args").unwrap();
        assert_eq!(args.kind(), "argparse.Namespace");
        assert_eq!(args.get("model"), Some(&s("vit")));
        assert_eq!(args.get("lr"), Some(&Value::Float(0.1)));
    }

    #[test]
    fn protocol_4_frames_and_memoize() {
        let bytes = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01x\x94]\x94(K\x01K\x02es.";
        assert_eq!(load(bytes).unwrap(), Value::Dict(vec![(s("x"), Value::List(vec![Value::Int(1), Value::Int(2)]))]));
    }

    #[test]
    fn malformed_pickles_are_errors_with_an_offset() {
        for (bytes, needle) in [
            (&b"\x80\x02}q\x00(X\x03\x00"[..], "ends in the middle"),
            (&b"\x80\x02h\x05."[..], "memo entry 5"),
            (&b"\x80\x02\xff"[..], "unknown opcode 0xff"),
            (&b"\x80\x02."[..], "underflows"),
            (&b"\x80\x02))\x81."[..], "REDUCE calls a tuple"),
        ] {
            let err = load(bytes).unwrap_err();
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn self_similar_pickles_cannot_explode_memory() {
        // l0 = []; l1 = [l0, l0]; l2 = [l1, l1] ... 40 levels share one object per level, which
        // unshared would be 2^40 nodes: the expansion budget stops it.
        let mut bytes = b"\x80\x02]q\x00".to_vec();
        for level in 1..=40u8 {
            bytes.extend_from_slice(&[b'h', level - 1, b'h', level - 1, 0x86, b'q', level]);
        }
        bytes.push(b'.');
        let err = load(&bytes).unwrap_err();
        assert!(err.message.contains("too many objects"), "{err}");
    }

    #[test]
    fn one_large_bytes_object_referenced_many_times_is_refused() {
        // b = bytes(1 MB); [b, b, ...] 1000 times: 1 MB of pickle that would copy to 1 GB.
        let bytes = hrm_testkit::shared_bytes_pickle(1 << 20, 1000);
        let err = load(&bytes).unwrap_err();
        assert!(err.message.contains("bytes of strings and bytes"), "{err}");
    }
}
