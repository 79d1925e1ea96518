//! A restricted pickle reader: interprets the opcodes that `torch.save` state dicts use and builds
//! inert values, never running code.
//!
//! Python's `pickle` is a small stack machine whose `GLOBAL` + `REDUCE` opcodes call any importable
//! function, which is why loading an untrusted `.bin` with Python can run arbitrary code. This
//! reader names only a short allow-list of globals (see [`Global`]) and "calls" them by building a
//! description of a tensor (storage key, dtype, offset, shape, strides); any other global is
//! refused at the `GLOBAL` opcode, before anything could use it.
//!
//! Values live in an arena and refer to each other by index, as Python objects refer to each other
//! by reference: the memo (`BINPUT`/`BINGET`) shares values instead of copying them, so a "billion
//! laughs" pickle costs one slot per opcode, and dropping a deeply nested value cannot overflow
//! the stack. The format is described in CPython's `Lib/pickletools.py`.

use std::collections::HashMap;
use std::fmt;

use super::StoredDtype;

/// Most values on the stack at once. Torch batches `SETITEMS`/`APPENDS` in groups of 1000, so
/// real state dicts stay far below this.
const MAX_STACK: usize = 100_000;
/// Most open `MARK`s at once (the nesting depth of tuples, lists and dicts being built).
const MAX_MARKS: usize = 1_000;
/// Most memo entries.
const MAX_MEMO: usize = 1_000_000;
/// Most values one pickle may create. A 6+6-layer Marian state dict needs a few thousand.
const MAX_OBJECTS: usize = 4_000_000;
/// Longest module or attribute name in a `GLOBAL` opcode.
const MAX_GLOBAL_NAME: usize = 256;

/// Index of a value in [`Pickle::objs`].
pub(crate) type Id = usize;

/// The callables and classes a weights pickle may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Global {
    /// `collections.OrderedDict`: the state dict itself, its `_metadata`, and the (always empty)
    /// backward-hook dicts of each tensor.
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[,
    /// metadata])`: every tensor since torch 0.4.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter(data, requires_grad, hooks)`: an `nn.Parameter` around a
    /// tensor.
    RebuildParameter,
    /// `torch.FloatStorage` and friends: only ever an argument of a persistent id, never called.
    Storage(StoredDtype),
}

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Global> {
        match (module, name) {
            ("collections", "OrderedDict") => Some(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
            ("torch", storage) => StoredDtype::from_torch_storage(storage).map(Global::Storage),
            _ => None,
        }
    }
}

/// The globals that [`Global::resolve`] accepts, for error messages.
pub(crate) const ALLOWED_GLOBALS: &str = "collections.OrderedDict, \
     torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the torch.<Type>Storage \
     classes of supported dtypes";

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel)`,
/// with a sixth element, `None` or `(view_key, offset, size)`, in the legacy format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StorageRef {
    /// The record name in a zip checkpoint, or the key in the legacy storage list.
    pub key: String,
    /// The element type of the storage.
    pub dtype: StoredDtype,
    /// Number of elements the writer declared.
    pub numel: u64,
    /// Legacy storage views: `(view_key, offset, size)` in elements of the root storage.
    pub view: Option<(String, u64, u64)>,
}

/// What `_rebuild_tensor_v2` would have built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TensorRef {
    /// Where the elements are.
    pub storage: StorageRef,
    /// Offset of the first element, in elements.
    pub offset: u64,
    /// Size of each dimension.
    pub shape: Vec<u64>,
    /// Stride of each dimension, in elements.
    pub strides: Vec<u64>,
}

/// An inert pickle value.
#[derive(Debug)]
pub(crate) enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits: its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// A float; weights never need its value.
    Float,
    Str(String),
    /// A bytes object; weights never need its content.
    Bytes,
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Keys and values in insertion order; a later duplicate key wins, as in Python.
    Dict(Vec<(Id, Id)>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl Obj {
    /// A short name for error messages (never the value: values may be huge or cyclic).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "a bool",
            Obj::Int(_) | Obj::BigInt(_) => "an int",
            Obj::Float => "a float",
            Obj::Str(_) => "a str",
            Obj::Bytes => "bytes",
            Obj::Tuple(_) => "a tuple",
            Obj::List(_) => "a list",
            Obj::Dict(_) => "a dict",
            Obj::Global(_) => "a class or function",
            Obj::Storage(_) => "a storage",
            Obj::Tensor(_) => "a tensor",
        }
    }
}

/// The result of reading one pickle: its values and which one `STOP` returned.
#[derive(Debug)]
pub(crate) struct Pickle {
    objs: Vec<Obj>,
    /// The value the pickle evaluates to.
    pub root: Id,
    /// Byte offset just past the `STOP` opcode, relative to the start of the input slice.
    pub end: usize,
}

impl Pickle {
    /// The value with index `id` (`None` for an index that no opcode produced).
    pub(crate) fn get(&self, id: Id) -> Option<&Obj> {
        self.objs.get(id)
    }

    /// The root value.
    pub(crate) fn root(&self) -> Option<&Obj> {
        self.get(self.root)
    }
}

/// Why a pickle was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PickleError {
    /// Byte offset of the failing opcode, counted from the start of the file.
    pub offset: usize,
    /// The failing opcode, if the error happened at one.
    pub opcode: Option<u8>,
    /// What went wrong.
    pub message: String,
    /// `module.name` of a global outside the allow-list.
    pub refused_global: Option<String>,
    /// True when the input ended in the middle of the pickle.
    pub truncated: bool,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.opcode {
            Some(op) => write!(
                f,
                "pickle opcode {} at byte {}: {}",
                opcode_name(op),
                self.offset,
                self.message
            ),
            None => write!(f, "pickle at byte {}: {}", self.offset, self.message),
        }
    }
}

/// The name of an opcode as `pickletools` prints it, with its byte value.
pub(crate) fn opcode_name(op: u8) -> String {
    let name = match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "",
    };
    if name.is_empty() {
        format!("0x{op:02x}")
    } else {
        format!("{name} (0x{op:02x})")
    }
}

/// Reads one pickle from the start of `data` and stops at its `STOP` opcode.
///
/// `file_offset` is where `data` starts in the file, so that errors report file offsets.
pub(crate) fn load(data: &[u8], file_offset: usize) -> Result<Pickle, PickleError> {
    let mut machine = Machine {
        data,
        pos: 0,
        op_pos: 0,
        op: None,
        file_offset,
        objs: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = machine.run()?;
    Ok(Pickle {
        objs: machine.objs,
        root,
        end: machine.pos,
    })
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the current opcode started.
    op_pos: usize,
    op: Option<u8>,
    file_offset: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
}

type Step<T> = Result<T, PickleError>;

impl<'a> Machine<'a> {
    fn error(&self, message: impl Into<String>) -> PickleError {
        PickleError {
            offset: self.file_offset.saturating_add(self.op_pos),
            opcode: self.op,
            message: message.into(),
            refused_global: None,
            truncated: false,
        }
    }

    fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        let data = self.data;
        let remaining = data.len().saturating_sub(self.pos);
        match self
            .pos
            .checked_add(n)
            .and_then(|end| data.get(self.pos..end))
        {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => {
                let mut e = self.error(format!(
                    "needs {n} more bytes but only {remaining} remain (truncated)"
                ));
                e.truncated = true;
                Err(e)
            }
        }
    }

    fn take_array<const N: usize>(&mut self) -> Step<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn take_u8(&mut self) -> Step<u8> {
        Ok(self.take_array::<1>()?[0])
    }

    /// A length read from the file, checked against what is left of the input before anything
    /// is allocated for it.
    fn take_len(&mut self, len: u64) -> Step<&'a [u8]> {
        let remaining = self.data.len().saturating_sub(self.pos);
        match usize::try_from(len) {
            Ok(n) if n <= remaining => self.take(n),
            _ => {
                let mut e = self.error(format!(
                    "declares a length of {len} bytes but only {remaining} remain (truncated?)"
                ));
                e.truncated = true;
                Err(e)
            }
        }
    }

    fn alloc(&mut self, obj: Obj) -> Step<Id> {
        if self.objs.len() >= MAX_OBJECTS {
            return Err(self.error(format!(
                "more than {MAX_OBJECTS} values: not a state dict (a pickle bomb?)"
            )));
        }
        self.objs.push(obj);
        Ok(self.objs.len() - 1)
    }

    fn push(&mut self, id: Id) -> Step<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.error(format!(
                "more than {MAX_STACK} values on the stack: not a state dict (a pickle bomb?)"
            )));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, obj: Obj) -> Step<()> {
        let id = self.alloc(obj)?;
        self.push(id)
    }

    fn pop(&mut self) -> Step<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.error("the stack is empty"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.error("the stack is empty"))
    }

    fn top(&self) -> Step<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(&id) if self.stack.len() > floor => Ok(id),
            _ => Err(self.error("the stack is empty")),
        }
    }

    /// Pops everything down to the last `MARK`, and the mark.
    fn pop_mark(&mut self) -> Step<Vec<Id>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.error("no MARK to pop to"))?;
        if mark > self.stack.len() {
            return Err(self.error("the MARK is above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn obj(&self, id: Id) -> Step<&Obj> {
        self.objs
            .get(id)
            .ok_or_else(|| self.error("refers to a value that does not exist"))
    }

    fn memo_put(&mut self, index: u32) -> Step<()> {
        let id = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(self.error(format!(
                "more than {MAX_MEMO} memo entries: not a state dict (a pickle bomb?)"
            )));
        }
        self.memo.insert(index, id);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Step<()> {
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| self.error(format!("memo entry {index} was never stored")))?;
        self.push(id)
    }

    fn utf8(&self, bytes: &[u8]) -> Step<String> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| self.error(format!("string is not valid UTF-8: {e}")))
    }

    /// Reads a `GLOBAL` argument line (up to `\n`).
    fn line(&mut self) -> Step<String> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let limit = rest.len().min(MAX_GLOBAL_NAME + 1);
        let Some(len) = rest.iter().take(limit).position(|&b| b == b'\n') else {
            let mut e = self.error(if rest.len() <= MAX_GLOBAL_NAME {
                "the name is cut off (the file is truncated)".to_owned()
            } else {
                format!("a name longer than {MAX_GLOBAL_NAME} bytes")
            });
            e.truncated = rest.len() <= MAX_GLOBAL_NAME;
            return Err(e);
        };
        let bytes = self.take(len + 1)?;
        let name = bytes.get(..len).unwrap_or_default();
        self.utf8(name)
    }

    fn global(&mut self, module: &str, name: &str) -> Step<()> {
        match Global::resolve(module, name) {
            Some(global) => self.push_new(Obj::Global(global)),
            None if module == "torch" && name.ends_with("Storage") => Err(self.error(format!(
                "tensors stored as torch.{name} are not supported (supported element types: {})",
                StoredDtype::ALL
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            None => {
                let qualified = format!("{module}.{name}");
                let mut e = self.error(format!(
                    "refused to load: the pickle asks for the Python global `{qualified}`, which \
                     is not one of {ALLOWED_GLOBALS}"
                ));
                e.refused_global = Some(qualified);
                Err(e)
            }
        }
    }

    fn int_from_le(&mut self, bytes: &[u8]) -> Step<Obj> {
        if bytes.len() <= 8 {
            let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
            let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
            buf.get_mut(..bytes.len())
                .ok_or_else(|| self.error("integer too long"))?
                .copy_from_slice(bytes);
            Ok(Obj::Int(i64::from_le_bytes(buf)))
        } else {
            Ok(Obj::BigInt(bytes.to_vec()))
        }
    }

    fn run(&mut self) -> Step<Id> {
        loop {
            self.op_pos = self.pos;
            self.op = None;
            let op = self.take_u8().map_err(|mut e| {
                e.message = "the pickle ends without a STOP opcode (the file is truncated)".into();
                e
            })?;
            self.op = Some(op);
            match op {
                0x80 => {
                    let version = self.take_u8()?;
                    if version > 5 {
                        return Err(self.error(format!("unknown pickle protocol {version}")));
                    }
                }
                0x95 => {
                    // FRAME only announces how many bytes follow; it changes nothing here.
                    let len = u64::from_le_bytes(self.take_array()?);
                    let remaining = self.data.len().saturating_sub(self.pos);
                    if usize::try_from(len).map_or(true, |n| n > remaining) {
                        let mut e = self.error(format!(
                            "announces a {len}-byte frame but only {remaining} bytes remain \
                             (the file is truncated)"
                        ));
                        e.truncated = true;
                        return Err(e);
                    }
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(root);
                }
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(self.error(format!(
                            "more than {MAX_MARKS} nested MARKs: not a state dict (a pickle bomb?)"
                        )));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'N' => self.push_new(Obj::None)?,
                0x88 => self.push_new(Obj::Bool(true))?,
                0x89 => self.push_new(Obj::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.take_array()?);
                    self.push_new(Obj::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.take_u8()?;
                    self.push_new(Obj::Int(i64::from(v)))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take_array()?);
                    self.push_new(Obj::Int(i64::from(v)))?;
                }
                0x8a => {
                    let n = self.take_u8()?;
                    let bytes = self.take(usize::from(n))?.to_vec();
                    let obj = self.int_from_le(&bytes)?;
                    self.push_new(obj)?;
                }
                0x8b => {
                    let n = u32::from_le_bytes(self.take_array()?);
                    let bytes = self.take_len(u64::from(n))?.to_vec();
                    let obj = self.int_from_le(&bytes)?;
                    self.push_new(obj)?;
                }
                b'G' => {
                    self.take(8)?;
                    self.push_new(Obj::Float)?;
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.take_array()?);
                    let bytes = self.take_len(u64::from(n))?;
                    let s = self.utf8(bytes)?;
                    self.push_new(Obj::Str(s))?;
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.take_array()?);
                    let bytes = self.take_len(n)?;
                    let s = self.utf8(bytes)?;
                    self.push_new(Obj::Str(s))?;
                }
                0x8c => {
                    let n = self.take_u8()?;
                    let bytes = self.take(usize::from(n))?;
                    let s = self.utf8(bytes)?;
                    self.push_new(Obj::Str(s))?;
                }
                b'C' => {
                    let n = self.take_u8()?;
                    self.take(usize::from(n))?;
                    self.push_new(Obj::Bytes)?;
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.take_array()?);
                    self.take_len(u64::from(n))?;
                    self.push_new(Obj::Bytes)?;
                }
                0x8e => {
                    let n = u64::from_le_bytes(self.take_array()?);
                    self.take_len(n)?;
                    self.push_new(Obj::Bytes)?;
                }
                b')' => self.push_new(Obj::Tuple(Vec::new()))?,
                b']' => self.push_new(Obj::List(Vec::new()))?,
                b'}' => self.push_new(Obj::Dict(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_new(Obj::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_new(Obj::Tuple(items))?;
                }
                b'a' => {
                    let value = self.pop()?;
                    let list = self.top()?;
                    self.extend_list(list, vec![value])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.extend_list(list, items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.extend_dict(dict, vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.extend_dict(dict, items)?;
                }
                b'q' => {
                    let index = self.take_u8()?;
                    self.memo_put(u32::from(index))?;
                }
                b'r' => {
                    let index = u32::from_le_bytes(self.take_array()?);
                    self.memo_put(index)?;
                }
                0x94 => {
                    let index = u32::try_from(self.memo.len())
                        .map_err(|_| self.error("too many memo entries"))?;
                    self.memo_put(index)?;
                }
                b'h' => {
                    let index = self.take_u8()?;
                    self.memo_get(u32::from(index))?;
                }
                b'j' => {
                    let index = u32::from_le_bytes(self.take_array()?);
                    self.memo_get(index)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (self.obj(module)?, self.obj(name)?) {
                        (Obj::Str(module), Obj::Str(name)) => {
                            let (module, name) = (module.clone(), name.clone());
                            self.global(&module, &name)?;
                        }
                        (m, n) => {
                            return Err(self.error(format!(
                                "needs two strings, found {} and {}",
                                m.kind(),
                                n.kind()
                            )))
                        }
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let result = self.call(callable, args)?;
                    self.push(result)?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let args_empty =
                        matches!(self.obj(args)?, Obj::Tuple(items) if items.is_empty());
                    match self.obj(class)? {
                        Obj::Global(Global::OrderedDict) if args_empty => {
                            self.push_new(Obj::Dict(Vec::new()))?;
                        }
                        other => {
                            return Err(self
                                .error(format!("cannot create an instance of {}", other.kind())))
                        }
                    }
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    self.build(target, state)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent_storage(pid)?;
                    self.push_new(Obj::Storage(storage))?;
                }
                _ => {
                    return Err(self.error(
                        "is not an opcode that torch.save state dicts use, so it is not supported",
                    ))
                }
            }
        }
    }

    fn extend_list(&mut self, list: Id, items: Vec<Id>) -> Step<()> {
        let kind = self.obj(list)?.kind();
        match self.objs.get_mut(list) {
            Some(Obj::List(existing)) => {
                existing.extend(items);
                Ok(())
            }
            _ => Err(self.error(format!("can only append to a list, not to {kind}"))),
        }
    }

    fn extend_dict(&mut self, dict: Id, items: Vec<Id>) -> Step<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.error("needs key/value pairs, found an odd number of values"));
        }
        let kind = self.obj(dict)?.kind();
        match self.objs.get_mut(dict) {
            Some(Obj::Dict(existing)) => {
                existing.extend(items.chunks_exact(2).filter_map(|pair| match pair {
                    &[key, value] => Some((key, value)),
                    _ => None,
                }));
                Ok(())
            }
            _ => Err(self.error(format!("can only set items of a dict, not of {kind}"))),
        }
    }

    /// `BUILD` sets instance attributes from a state. The only instances here are
    /// `OrderedDict`s, whose attribute (`_metadata`, the modules' versions) the weights do not
    /// need; anything else has no business being built.
    fn build(&mut self, target: Id, state: Id) -> Step<()> {
        match (self.obj(target)?, self.obj(state)?) {
            (Obj::Dict(_), Obj::Dict(_) | Obj::None) => Ok(()),
            (Obj::Dict(_), Obj::Tuple(parts)) if parts.len() == 2 => Ok(()),
            (t, s) => Err(self.error(format!(
                "cannot set the state of {} from {}",
                t.kind(),
                s.kind()
            ))),
        }
    }

    fn call(&mut self, callable: Id, args: Id) -> Step<Id> {
        let Obj::Tuple(args) = self.obj(args)? else {
            return Err(self.error(format!(
                "needs a tuple of arguments, found {}",
                self.obj(args)?.kind()
            )));
        };
        let args = args.clone();
        match self.obj(callable)? {
            Obj::Global(Global::OrderedDict) => {
                if !args.is_empty() {
                    return Err(self.error("OrderedDict() takes no arguments here"));
                }
                self.alloc(Obj::Dict(Vec::new()))
            }
            Obj::Global(Global::RebuildTensorV2) => {
                let tensor = self.rebuild_tensor(&args)?;
                self.alloc(Obj::Tensor(tensor))
            }
            Obj::Global(Global::RebuildParameter) => {
                // _rebuild_parameter(data, requires_grad, backward_hooks): the data is the tensor.
                match args.as_slice() {
                    [data, requires_grad, hooks]
                        if matches!(self.obj(*data)?, Obj::Tensor(_))
                            && matches!(self.obj(*requires_grad)?, Obj::Bool(_))
                            && matches!(self.obj(*hooks)?, Obj::Dict(_)) =>
                    {
                        Ok(*data)
                    }
                    _ => Err(self.error(
                        "_rebuild_parameter needs (tensor, requires_grad, hooks) arguments",
                    )),
                }
            }
            Obj::Global(Global::Storage(dtype)) => Err(self.error(format!(
                "torch.{} cannot be called here",
                dtype.torch_storage()
            ))),
            other => Err(self.error(format!("cannot call {}", other.kind()))),
        }
    }

    fn int_arg(&self, id: Id, what: &str) -> Step<u64> {
        match self.obj(id)? {
            Obj::Int(v) => {
                u64::try_from(*v).map_err(|_| self.error(format!("{what} is negative ({v})")))
            }
            Obj::Bool(b) => Ok(u64::from(*b)),
            other => Err(self.error(format!("{what} should be an int, found {}", other.kind()))),
        }
    }

    fn int_tuple(&self, id: Id, what: &str) -> Step<Vec<u64>> {
        match self.obj(id)? {
            Obj::Tuple(items) => items.iter().map(|&i| self.int_arg(i, what)).collect(),
            other => Err(self.error(format!("{what} should be a tuple, found {}", other.kind()))),
        }
    }

    fn rebuild_tensor(&self, args: &[Id]) -> Step<TensorRef> {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        let (storage, offset, size, stride, requires_grad) = match args {
            [storage, offset, size, stride, requires_grad, _hooks]
            | [storage, offset, size, stride, requires_grad, _hooks, _] => {
                (*storage, *offset, *size, *stride, *requires_grad)
            }
            _ => {
                return Err(self.error(format!(
                    "_rebuild_tensor_v2 needs 6 or 7 arguments, found {}",
                    args.len()
                )))
            }
        };
        let Obj::Storage(storage) = self.obj(storage)? else {
            return Err(self.error(format!(
                "_rebuild_tensor_v2 needs a storage, found {}",
                self.obj(storage)?.kind()
            )));
        };
        if !matches!(self.obj(requires_grad)?, Obj::Bool(_)) {
            return Err(self.error("_rebuild_tensor_v2: requires_grad should be a bool"));
        }
        let offset = self.int_arg(offset, "the storage offset")?;
        let shape = self.int_tuple(size, "a tensor size")?;
        let strides = self.int_tuple(stride, "a tensor stride")?;
        if shape.len() != strides.len() {
            return Err(self.error(format!(
                "the tensor has {} sizes but {} strides",
                shape.len(),
                strides.len()
            )));
        }
        Ok(TensorRef {
            storage: storage.clone(),
            offset,
            shape,
            strides,
        })
    }

    fn string_arg(&self, id: Id, what: &str) -> Step<String> {
        match self.obj(id)? {
            Obj::Str(s) => Ok(s.clone()),
            other => Err(self.error(format!("{what} should be a str, found {}", other.kind()))),
        }
    }

    fn persistent_storage(&self, pid: Id) -> Step<StorageRef> {
        let Obj::Tuple(items) = self.obj(pid)? else {
            return Err(self.error(format!(
                "a persistent id should be a tuple, found {}",
                self.obj(pid)?.kind()
            )));
        };
        let Some(&tag) = items.first() else {
            return Err(self.error("empty persistent id"));
        };
        let tag = self.string_arg(tag, "the persistent id's type")?;
        if tag == "module" {
            return Err(self.error(
                "the file pickles a whole nn.Module (with its source code), not a state dict; \
                 save `model.state_dict()` instead",
            ));
        }
        if tag != "storage" {
            return Err(self.error(format!("unknown persistent id type `{tag}`")));
        }
        let (storage_type, key, location, numel, view) = match items.as_slice() {
            [_, t, k, l, n] => (*t, *k, *l, *n, None),
            [_, t, k, l, n, v] => (*t, *k, *l, *n, Some(*v)),
            _ => {
                return Err(self.error(format!(
                    "a storage id has 5 or 6 fields, found {}",
                    items.len()
                )))
            }
        };
        let dtype = match self.obj(storage_type)? {
            Obj::Global(Global::Storage(dtype)) => *dtype,
            other => {
                return Err(self.error(format!(
                    "a storage type should be torch.<Type>Storage, found {}",
                    other.kind()
                )))
            }
        };
        let key = self.string_arg(key, "the storage key")?;
        // The location ('cpu', 'cuda:0') only says where the tensor lived when it was saved.
        self.string_arg(location, "the storage location")?;
        let numel = self.int_arg(numel, "the storage size")?;
        let view = match view.map(|v| self.obj(v)).transpose()? {
            None | Some(Obj::None) => None,
            Some(Obj::Tuple(parts)) => match parts.as_slice() {
                [view_key, offset, size] => Some((
                    self.string_arg(*view_key, "a storage view key")?,
                    self.int_arg(*offset, "a storage view offset")?,
                    self.int_arg(*size, "a storage view size")?,
                )),
                _ => return Err(self.error("a storage view needs (key, offset, size)")),
            },
            Some(other) => {
                return Err(self.error(format!(
                    "a storage view should be a tuple, found {}",
                    other.kind()
                )))
            }
        };
        Ok(StorageRef {
            key,
            dtype,
            numel,
            view,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Pickle, PickleError> {
        load(bytes, 100)
    }

    #[test]
    fn reads_scalars_and_containers() {
        // {'a': [1, -2, 3.5, True, None], 'b': ('x', 70000)} at protocol 2
        let mut p = vec![
            0x80, 2, b'}', b'q', 0, b'(', b'X', 1, 0, 0, 0, b'a', b']', b'(',
        ];
        p.extend([b'K', 1, b'J']);
        p.extend((-2i32).to_le_bytes());
        p.push(b'G');
        p.extend(3.5f64.to_be_bytes());
        p.extend([0x88, b'N', b'e', 0x8c, 1, b'b', 0x8c, 1, b'x', b'J']);
        p.extend(70000i32.to_le_bytes());
        p.extend([0x86, b'u', b'.']);
        let pickle = run(&p).unwrap();
        let Some(Obj::Dict(items)) = pickle.root() else {
            panic!("not a dict")
        };
        assert_eq!(items.len(), 2);
        let Some(Obj::List(list)) = pickle.get(items[0].1) else {
            panic!("not a list")
        };
        assert_eq!(list.len(), 5);
        assert!(matches!(pickle.get(list[1]), Some(Obj::Int(-2))));
        assert!(matches!(pickle.get(list[2]), Some(Obj::Float)));
        let Some(Obj::Tuple(t)) = pickle.get(items[1].1) else {
            panic!("not a tuple")
        };
        assert!(matches!(pickle.get(t[1]), Some(Obj::Int(70000))));
        assert_eq!(pickle.end, p.len());
    }

    #[test]
    fn long1_handles_sign_and_width() {
        for (bytes, want) in [
            (vec![0xff], -1i64),
            (vec![0x00, 0x01], 256),
            (vec![], 0),
            (vec![0x80], -128),
        ] {
            let mut p = vec![0x80, 2, 0x8a, bytes.len() as u8];
            p.extend(&bytes);
            p.push(b'.');
            let pickle = run(&p).unwrap();
            assert!(
                matches!(pickle.root(), Some(Obj::Int(v)) if *v == want),
                "{bytes:?}"
            );
        }
        // The torch magic number needs 10 bytes.
        let p = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.";
        let pickle = run(p).unwrap();
        assert!(matches!(pickle.root(), Some(Obj::BigInt(b)) if b.len() == 10));
    }

    #[test]
    fn refuses_globals_outside_the_allow_list_at_the_global_opcode() {
        for (module, name) in [
            ("os", "system"),
            ("posix", "system"),
            ("builtins", "eval"),
            ("builtins", "getattr"),
            ("torch", "load"),
            ("torch._utils", "_rebuild_from_type_v2"),
            ("collections", "defaultdict"),
        ] {
            let mut p = vec![0x80, 2, b'c'];
            p.extend(format!("{module}\n{name}\n").bytes());
            p.extend(b"X\x04\x00\x00\x00echo\x85R.");
            let err = run(&p).unwrap_err();
            assert_eq!(
                err.refused_global.as_deref(),
                Some(format!("{module}.{name}").as_str())
            );
            assert_eq!(err.offset, 102, "{err}");
            assert_eq!(err.opcode, Some(b'c'));
            assert!(err.to_string().contains("GLOBAL"), "{err}");
        }
        // STACK_GLOBAL too.
        let p = b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93.";
        let err = run(p).unwrap_err();
        assert_eq!(err.refused_global.as_deref(), Some("builtins.exec"));
    }

    #[test]
    fn storage_classes_cannot_be_called() {
        let p = b"\x80\x02ctorch\nFloatStorage\n)R.";
        let err = run(p).unwrap_err();
        assert!(err.message.contains("cannot be called"), "{err}");
        // A storage class torch has but tolk does not read is unsupported, not hostile.
        let p = b"\x80\x02ctorch\nComplexFloatStorage\n.";
        let err = run(p).unwrap_err();
        assert!(err.refused_global.is_none(), "{err}");
        assert!(err.message.contains("not supported"), "{err}");
        let p = b"\x80\x02ctorch\nFloatStorageX\n.";
        assert!(run(p).unwrap_err().refused_global.is_some());
        let p = b"\x80\x02ctorch\nsave\n.";
        assert!(run(p).unwrap_err().refused_global.is_some());
    }

    #[test]
    fn limits_stop_bombs() {
        let mut marks = vec![0x80, 2];
        marks.extend(std::iter::repeat_n(b'(', MAX_MARKS + 1));
        marks.push(b'.');
        assert!(run(&marks).unwrap_err().message.contains("MARK"));

        let mut wide = vec![0x80, 2];
        wide.extend(std::iter::repeat_n(b']', MAX_STACK + 1));
        wide.push(b'.');
        assert!(run(&wide).unwrap_err().message.contains("stack"));

        // A deep tuple is cheap in the arena, and dropping it does not recurse.
        let mut deep = vec![0x80, 2, b')'];
        deep.extend(std::iter::repeat_n(0x85, 200_000));
        deep.push(b'.');
        let pickle = run(&deep).unwrap();
        assert!(matches!(pickle.root(), Some(Obj::Tuple(_))));
        drop(pickle);

        // A string claiming 2**62 bytes is refused before anything is allocated.
        let mut huge = vec![0x80, 4, 0x8d];
        huge.extend((1u64 << 62).to_le_bytes());
        huge.extend(b"abc.");
        let err = run(&huge).unwrap_err();
        assert!(err.truncated && err.message.contains("length"), "{err}");

        // FRAME with a length past the end.
        let mut frame = vec![0x80, 4, 0x95];
        frame.extend(1000u64.to_le_bytes());
        frame.push(b'.');
        assert!(run(&frame).unwrap_err().truncated);
    }

    #[test]
    fn memo_shares_values() {
        // l = []; [l, l] with l appended to after memoisation: both see the change.
        let p = b"\x80\x02]q\x00(h\x00h\x00eh\x00K\x07a0.";
        // ']' l, BINPUT 0, MARK, BINGET 0, BINGET 0, APPENDS -> l = [l, l]; BINGET 0; BININT1 7;
        // APPEND -> l.append(7); POP; STOP returns l.
        let pickle = run(p).unwrap();
        let Some(Obj::List(items)) = pickle.root() else {
            panic!("not a list")
        };
        assert_eq!(items.len(), 3);
        assert_eq!(items[0], pickle.root);
    }

    #[test]
    fn errors_name_the_opcode_and_offset() {
        let err = run(b"\x80\x02X\x10\x00\x00\x00ab").unwrap_err();
        assert!(err.truncated);
        assert_eq!(err.offset, 102);
        assert!(
            err.to_string().contains("BINUNICODE (0x58) at byte 102"),
            "{err}"
        );

        let err = run(b"\x80\x02K\x01").unwrap_err();
        assert!(err.to_string().contains("without a STOP"), "{err}");

        let err = run(b"\x80\x02i__main__\nX\n.").unwrap_err();
        assert!(err.to_string().contains("INST"), "{err}");

        let err = run(b"\x80\x02h\x05.").unwrap_err();
        assert!(err.message.contains("memo entry 5"), "{err}");

        let err = run(b"\x80\x02.").unwrap_err();
        assert!(err.message.contains("empty"), "{err}");

        // An APPEND to a dict.
        let err = run(b"\x80\x02}K\x01a.").unwrap_err();
        assert!(err.message.contains("append"), "{err}");
    }

    #[test]
    fn rebuilds_tensors_and_parameters() {
        // _rebuild_parameter(_rebuild_tensor_v2(storage, 2, (3,), (1,), False, OrderedDict()), True, OrderedDict())
        let mut p = b"\x80\x02ctorch._utils\n_rebuild_parameter\n".to_vec();
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.extend(b"(X\x07\x00\x00\x00storagectorch\nHalfStorage\nX\x01\x00\x00\x003X\x03\x00\x00\x00cpuK\x05tQ");
        p.extend(b"K\x02K\x03\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR");
        p.extend(b"\x88ccollections\nOrderedDict\n)R\x87R.");
        let pickle = run(&p).unwrap();
        let Some(Obj::Tensor(t)) = pickle.root() else {
            panic!("not a tensor: {:?}", pickle.root().map(Obj::kind))
        };
        assert_eq!(t.storage.key, "3");
        assert_eq!(t.storage.dtype, StoredDtype::F16);
        assert_eq!(t.storage.numel, 5);
        assert_eq!(
            (t.offset, t.shape.clone(), t.strides.clone()),
            (2, vec![3], vec![1])
        );
    }
}
