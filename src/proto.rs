//! A minimal protobuf (proto2) wire-format reader for SentencePiece's `ModelProto`
//! (`sentencepiece_model.proto`): only the fields that encoding and decoding need are kept; every
//! other field is skipped the way protobuf's own parser skips unknown fields.
//!
//! The reader never panics: truncated varints, lengths past the end of the buffer, bad wire types
//! and runaway group nesting come back as [`WireError`]s, which the caller turns into
//! [`crate::Error::ModelFile`] naming the file.

/// What went wrong while reading protobuf bytes (without the file name, which the caller adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError(pub String);

type WireResult<T> = std::result::Result<T, WireError>;

fn err<T>(msg: impl Into<String>) -> WireResult<T> {
    Err(WireError(msg.into()))
}

/// Groups nested deeper than this are refused (protobuf's own limit is 100).
const MAX_DEPTH: usize = 100;

/// One field value as it appears on the wire.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    /// A 64-bit fixed field (no field of `ModelProto` that tolk reads has this type).
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
    /// A (deprecated) group: skipped whole, its contents are not needed.
    Group,
}

/// Iterates over the `(field number, value)` pairs of one message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Which message is being read, for error messages.
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    fn varint(&mut self) -> WireResult<u64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return err(format!(
                    "{}: truncated varint at byte {}",
                    self.what, self.pos
                ));
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        err(format!(
            "{}: varint longer than 10 bytes at byte {}",
            self.what, self.pos
        ))
    }

    fn take(&mut self, n: usize) -> WireResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        match end {
            Some(end) => {
                let out = &self.buf[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => err(format!(
                "{}: field of {n} bytes at byte {} runs past the end ({} bytes)",
                self.what,
                self.pos,
                self.buf.len()
            )),
        }
    }

    /// Skips the rest of a group that was opened with `field`, including nested groups.
    fn skip_group(&mut self, field: u32, depth: usize) -> WireResult<()> {
        if depth > MAX_DEPTH {
            return err(format!("{}: groups nested too deeply", self.what));
        }
        loop {
            if self.pos >= self.buf.len() {
                return err(format!("{}: group {field} is not closed", self.what));
            }
            let key = self.varint()?;
            let (inner, wire) = split_key(key, self.what)?;
            match wire {
                4 if inner == field => return Ok(()),
                4 => return err(format!("{}: mismatched end of group", self.what)),
                3 => self.skip_group(inner, depth + 1)?,
                _ => {
                    self.value(wire)?;
                }
            }
        }
    }

    fn value(&mut self, wire: u32) -> WireResult<Value<'a>> {
        Ok(match wire {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| {
                    WireError(format!(
                        "{}: length {len} does not fit in memory",
                        self.what
                    ))
                })?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                Value::Fixed32(u32::from_le_bytes(a))
            }
            other => return err(format!("{}: invalid wire type {other}", self.what)),
        })
    }

    /// The next field, or `None` at the end of the message.
    fn next_field(&mut self) -> WireResult<Option<(u32, Value<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (field, wire) = split_key(key, self.what)?;
        match wire {
            3 => {
                self.skip_group(field, 1)?;
                Ok(Some((field, Value::Group)))
            }
            4 => err(format!(
                "{}: end of group without a start at byte {}",
                self.what, self.pos
            )),
            _ => Ok(Some((field, self.value(wire)?))),
        }
    }
}

/// Walks the top-level fields of a message without keeping them: a message cut short anywhere
/// (a varint or a field running past the end, a bad wire type, an unclosed group) is an error.
pub(crate) fn check_message(buf: &[u8], what: &'static str) -> WireResult<()> {
    let mut reader = Reader::new(buf, what);
    while reader.next_field()?.is_some() {}
    Ok(())
}

fn split_key(key: u64, what: &str) -> WireResult<(u32, u32)> {
    let field = key >> 3;
    let wire = (key & 7) as u32;
    if field == 0 || field > (1 << 29) - 1 {
        return err(format!("{what}: invalid field number {field}"));
    }
    Ok((field as u32, wire))
}

/// The type of a vocabulary entry (`ModelProto.SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    /// An ordinary piece.
    Normal,
    /// The unknown piece (`<unk>`).
    Unknown,
    /// A control symbol (`<s>`, `</s>`): never produced from text, decoded as nothing.
    Control,
    /// A user-defined symbol: matched before normalisation and always preferred.
    UserDefined,
    /// A byte piece `<0xXX>` (byte fallback).
    Byte,
    /// A piece that exists but is never produced.
    Unused,
}

impl PieceType {
    fn from_wire(v: i32) -> Option<Self> {
        Some(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// One vocabulary entry as stored in the model file.
#[derive(Debug, Clone)]
pub(crate) struct ProtoPiece {
    pub piece: Vec<u8>,
    pub score: f32,
    pub kind: PieceType,
}

/// The segmentation algorithm (`TrainerSpec.ModelType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    /// Unigram language model (what OPUS-MT uses).
    Unigram,
    /// Byte-pair encoding.
    Bpe,
    /// Whitespace-delimited words.
    Word,
    /// Characters.
    Char,
}

/// The fields of `TrainerSpec` that matter after training.
#[derive(Debug, Clone)]
pub(crate) struct TrainerSpec {
    pub model_type: ModelType,
    pub treat_whitespace_as_suffix: bool,
    pub byte_fallback: bool,
    pub unk_piece: Vec<u8>,
    pub unk_surface: Option<Vec<u8>>,
}

impl Default for TrainerSpec {
    fn default() -> Self {
        TrainerSpec {
            model_type: ModelType::Unigram,
            treat_whitespace_as_suffix: false,
            byte_fallback: false,
            unk_piece: Vec::new(),
            unk_surface: None,
        }
    }
}

/// `NormalizerSpec` (also used for the denormaliser).
#[derive(Debug, Clone)]
pub(crate) struct NormalizerSpec {
    pub name: Vec<u8>,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
}

impl Default for NormalizerSpec {
    fn default() -> Self {
        // proto2 defaults from sentencepiece_model.proto.
        NormalizerSpec {
            name: Vec::new(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }
}

/// The parts of a SentencePiece `ModelProto` that tolk uses.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelProto {
    pub pieces: Vec<ProtoPiece>,
    pub trainer_spec: TrainerSpec,
    pub normalizer_spec: NormalizerSpec,
    /// Present only when the file has a `denormalizer_spec` field.
    pub denormalizer_spec: Option<NormalizerSpec>,
}

fn as_bool(v: u64) -> bool {
    v != 0
}

/// proto2 `int32`/enum fields hold the low 32 bits of the varint.
fn as_i32(v: u64) -> i32 {
    v as u32 as i32
}

impl ModelProto {
    /// Parses a serialized `ModelProto`.
    pub(crate) fn parse(buf: &[u8]) -> WireResult<Self> {
        let mut model = ModelProto::default();
        let mut r = Reader::new(buf, "ModelProto");
        while let Some((field, value)) = r.next_field()? {
            match (field, value) {
                (1, Value::Bytes(b)) => model.pieces.push(parse_piece(b)?),
                // Embedded messages that appear more than once are merged, as protobuf does.
                (2, Value::Bytes(b)) => parse_trainer_spec(b, &mut model.trainer_spec)?,
                (3, Value::Bytes(b)) => parse_normalizer_spec(b, &mut model.normalizer_spec)?,
                (5, Value::Bytes(b)) => {
                    let spec = model.denormalizer_spec.get_or_insert_with(Default::default);
                    parse_normalizer_spec(b, spec)?;
                }
                // Field 4 (self-test data) and unknown fields, and known fields with an unexpected
                // wire type, are skipped like protobuf's unknown fields.
                _ => {}
            }
        }
        Ok(model)
    }
}

fn parse_piece(buf: &[u8]) -> WireResult<ProtoPiece> {
    let mut p = ProtoPiece {
        piece: Vec::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    let mut r = Reader::new(buf, "SentencePiece");
    while let Some((field, value)) = r.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => p.piece = b.to_vec(),
            (2, Value::Fixed32(bits)) => p.score = f32::from_bits(bits),
            // An enum value this version does not know is kept aside by protobuf (as an unknown
            // field), leaving the previous value.
            (3, Value::Varint(v)) => {
                if let Some(kind) = PieceType::from_wire(as_i32(v)) {
                    p.kind = kind;
                }
            }
            _ => {}
        }
    }
    Ok(p)
}

fn parse_trainer_spec(buf: &[u8], spec: &mut TrainerSpec) -> WireResult<()> {
    let mut r = Reader::new(buf, "TrainerSpec");
    while let Some((field, value)) = r.next_field()? {
        match (field, value) {
            (3, Value::Varint(v)) => {
                spec.model_type = match as_i32(v) {
                    1 => ModelType::Unigram,
                    2 => ModelType::Bpe,
                    3 => ModelType::Word,
                    4 => ModelType::Char,
                    _ => spec.model_type,
                }
            }
            (24, Value::Varint(v)) => spec.treat_whitespace_as_suffix = as_bool(v),
            (35, Value::Varint(v)) => spec.byte_fallback = as_bool(v),
            (44, Value::Bytes(b)) => spec.unk_surface = Some(b.to_vec()),
            (45, Value::Bytes(b)) => spec.unk_piece = b.to_vec(),
            _ => {}
        }
    }
    Ok(())
}

fn parse_normalizer_spec(buf: &[u8], spec: &mut NormalizerSpec) -> WireResult<()> {
    let mut r = Reader::new(buf, "NormalizerSpec");
    while let Some((field, value)) = r.next_field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => spec.name = b.to_vec(),
            (2, Value::Bytes(b)) => spec.precompiled_charsmap = b.to_vec(),
            (3, Value::Varint(v)) => spec.add_dummy_prefix = as_bool(v),
            (4, Value::Varint(v)) => spec.remove_extra_whitespaces = as_bool(v),
            (5, Value::Varint(v)) => spec.escape_whitespaces = as_bool(v),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(field: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }

    fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut p = Vec::new();
        bytes_field(1, text.as_bytes(), &mut p);
        varint(2 << 3 | 5, &mut p);
        p.extend_from_slice(&score.to_le_bytes());
        varint(3 << 3, &mut p);
        varint(kind, &mut p);
        p
    }

    #[test]
    fn parses_pieces_specs_and_skips_unknown_fields() {
        let mut buf = Vec::new();
        bytes_field(1, &piece("<unk>", 0.0, 2), &mut buf);
        bytes_field(1, &piece("▁de", -2.5, 1), &mut buf);
        // Unknown field 9 (varint), a group (field 10) and a fixed64 field 11.
        varint(9 << 3, &mut buf);
        varint(300, &mut buf);
        varint(10 << 3 | 3, &mut buf);
        varint(1 << 3, &mut buf);
        varint(5, &mut buf);
        varint(10 << 3 | 4, &mut buf);
        varint(11 << 3 | 1, &mut buf);
        buf.extend_from_slice(&[0; 8]);
        let mut trainer = Vec::new();
        varint(35 << 3, &mut trainer);
        varint(1, &mut trainer);
        bytes_field(2, &trainer, &mut buf);
        let mut norm = Vec::new();
        varint(3 << 3, &mut norm);
        varint(0, &mut norm);
        bytes_field(3, &norm, &mut buf);

        let m = ModelProto::parse(&buf).unwrap();
        assert_eq!(m.pieces.len(), 2);
        assert_eq!(m.pieces[1].piece, "▁de".as_bytes());
        assert_eq!(m.pieces[1].score, -2.5);
        assert_eq!(m.pieces[0].kind, PieceType::Unknown);
        assert!(m.trainer_spec.byte_fallback);
        assert!(!m.normalizer_spec.add_dummy_prefix);
        assert!(m.normalizer_spec.remove_extra_whitespaces);
        assert!(m.denormalizer_spec.is_none());
    }

    #[test]
    fn truncated_and_corrupt_input_is_an_error() {
        let mut buf = Vec::new();
        bytes_field(1, &piece("abc", -1.0, 1), &mut buf);
        for cut in 1..buf.len() {
            assert!(ModelProto::parse(&buf[..cut]).is_err(), "cut at {cut}");
        }
        assert!(ModelProto::parse(&[0x0f]).is_err(), "wire type 7");
        assert!(ModelProto::parse(&[0xff; 11]).is_err(), "overlong varint");
        assert!(ModelProto::parse(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(
            ModelProto::parse(&[0x0c]).is_err(),
            "end group without start"
        );
        assert!(ModelProto::parse(&[0x0b]).is_err(), "unclosed group");
        let deep: Vec<u8> = std::iter::repeat_n(0x0b, 200).collect();
        assert!(ModelProto::parse(&deep).is_err(), "deep groups");
    }
}
