//! A SentencePiece model (`*.spm` / `*.model`) read from its protobuf file: normalisation,
//! segmentation and piece decoding, matching the `sentencepiece` 0.2 Python package
//! (`encode(text, out_type=str)`, `encode(text)`, `decode_pieces`, `id_to_piece`, `piece_to_id`).
//!
//! Encoding follows `SentencePieceProcessor::Encode`: normalise, segment with the algorithm of
//! the model's type (the unigram Viterbi (`unigram.rs`) for Unigram models, as in
//! Marian's `source.spm`; the merges (`spm_bpe.rs`) for BPE models, as in M2M100's and
//! NLLB's `sentencepiece.bpe.model`), then merge runs of unknown characters into one unknown
//! piece (whose text is the normalised text it covers), or, with byte fallback, spell each
//! unknown character as `<0xXX>` byte pieces. Decoding follows `SentencePieceProcessor::Decode`,
//! the same for both types.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::normalizer::{utf8_char_len, Normalizer, SPACE_SYMBOL};
use super::spm_bpe::Bpe;
use super::trie::Trie;
use super::unigram::{Span, Unigram};
use crate::error::{Error, Result};
use crate::proto::{ModelProto, ModelType, PieceType};

/// What SentencePiece prints for `<unk>` when the model does not say otherwise.
const DEFAULT_UNK_SURFACE: &str = " \u{2047} ";

/// One piece of an encoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'a> {
    /// The piece as SentencePiece's `encode(..., out_type=str)` prints it: the vocabulary entry,
    /// or, for unknown text, the normalised text itself (consecutive unknown characters merged).
    pub text: Cow<'a, str>,
    /// The id in this model's vocabulary (the unknown id for unknown text).
    pub id: u32,
}

impl Piece<'_> {
    /// True when this piece is unknown text rather than a vocabulary entry (the model only ever
    /// borrows vocabulary entries and owns unknown text).
    pub fn is_unknown(&self) -> bool {
        matches!(self.text, Cow::Owned(_))
    }
}

#[derive(Debug, Clone)]
struct Entry {
    piece: String,
    kind: PieceType,
}

/// The segmentation algorithm, chosen by the model's type. (BPE's tables are boxed: they are
/// larger, and this keeps the model, which tokenizers hold two of, as small as before.)
#[derive(Debug, Clone)]
enum Segmenter {
    Unigram(Unigram),
    Bpe(Box<Bpe>),
}

/// A loaded SentencePiece model, Unigram or BPE. Immutable, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct SentencePieceModel {
    path: PathBuf,
    entries: Vec<Entry>,
    /// `PieceToId`: reserved pieces (control, unknown, byte) shadow the others.
    ids: HashMap<String, u32>,
    segmenter: Segmenter,
    normalizer: Normalizer,
    denormalizer: Option<Normalizer>,
    unk_id: u32,
    byte_fallback: bool,
    /// Id of `<0xXX>` for every byte (only with byte fallback).
    byte_ids: Vec<u32>,
    unk_surface: String,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
}

/// `<0x41>` -> 0x41, exactly in SentencePiece's `<0x%02X>` spelling.
fn piece_to_byte(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl SentencePieceModel {
    /// Reads a model file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses a serialized model; `path` only names the file in error messages.
    pub fn from_bytes(bytes: &[u8], path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |msg: String| {
            Error::model_file(path, msg).with_hint(
                "expected a SentencePiece model (the source.spm/target.spm of a Marian model, \
                 the sentencepiece.bpe.model of M2M100 or NLLB)",
            )
        };
        if bytes.is_empty() {
            return Err(bad("the file is empty".into()));
        }
        let proto = ModelProto::parse(bytes)
            .map_err(|e| bad(format!("not a SentencePiece model: {}", e.0)))?;
        if proto.pieces.is_empty() {
            return Err(bad("not a SentencePiece model: it has no pieces".into()));
        }
        let model_type = proto.trainer_spec.model_type;
        if !matches!(model_type, ModelType::Unigram | ModelType::Bpe) {
            return Err(Error::model_file(
                path,
                format!(
                    "SentencePiece model type {model_type:?} is not supported, only Unigram and BPE"
                ),
            )
            .with_hint(
                "translation models use Unigram (Marian/OPUS-MT) or BPE (M2M100, NLLB) \
                 SentencePiece models",
            ));
        }

        let mut entries = Vec::with_capacity(proto.pieces.len());
        let mut normal: HashMap<String, u32> = HashMap::with_capacity(proto.pieces.len());
        let mut reserved: HashMap<String, u32> = HashMap::new();
        let mut unk_id = None;
        let mut byte_ids = vec![u32::MAX; 256];
        let mut user_defined = Vec::new();
        for (i, p) in proto.pieces.iter().enumerate() {
            let id = u32::try_from(i).map_err(|_| bad("too many pieces".into()))?;
            let piece = String::from_utf8(p.piece.clone())
                .map_err(|_| bad(format!("piece {id} is not valid UTF-8")))?;
            if piece.is_empty() {
                return Err(bad(format!("piece {id} is empty")));
            }
            let is_normal = matches!(
                p.kind,
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused
            );
            let map = if is_normal {
                &mut normal
            } else {
                &mut reserved
            };
            if map.insert(piece.clone(), id).is_some() {
                return Err(bad(format!("piece {piece:?} is defined twice")));
            }
            match p.kind {
                PieceType::UserDefined => user_defined.push(id),
                PieceType::Unknown => {
                    if unk_id.is_some() {
                        return Err(bad("more than one unknown piece".into()));
                    }
                    unk_id = Some(id);
                }
                PieceType::Byte => {
                    if !proto.trainer_spec.byte_fallback {
                        return Err(bad(format!(
                            "byte piece {piece} found although byte_fallback is off"
                        )));
                    }
                    match piece_to_byte(&piece) {
                        Some(b) => byte_ids[usize::from(b)] = id,
                        None => return Err(bad(format!("invalid byte piece {piece:?}"))),
                    }
                }
                _ => {}
            }
            entries.push(Entry {
                piece,
                kind: p.kind,
            });
        }
        let unk_id = unk_id.ok_or_else(|| bad("the model has no unknown piece".into()))?;
        let byte_fallback = proto.trainer_spec.byte_fallback;
        if byte_fallback && byte_ids.contains(&u32::MAX) {
            return Err(bad(
                "byte_fallback is on but the model does not have all 256 byte pieces".into(),
            ));
        }
        let mut ids = normal;
        ids.extend(reserved);

        let scored: Vec<(&[u8], f32, PieceType)> = proto
            .pieces
            .iter()
            .map(|p| (p.piece.as_slice(), p.score, p.kind))
            .collect();
        let protected = Trie::new(
            user_defined
                .iter()
                .filter_map(|&id| entries.get(id as usize))
                .map(|e| (e.piece.as_bytes(), 0)),
        );
        let segmenter = if model_type == ModelType::Bpe {
            Segmenter::Bpe(Box::new(Bpe::new(&scored, unk_id, Some(protected.clone()))))
        } else {
            let unigram = Unigram::new(&scored, unk_id);
            if unigram.has_no_pieces() {
                return Err(bad("the model has no normal pieces".into()));
            }
            Segmenter::Unigram(unigram)
        };
        let normalizer = Normalizer::new(
            &proto.normalizer_spec,
            proto.trainer_spec.treat_whitespace_as_suffix,
            Some(protected),
        )
        .map_err(|m| bad(format!("normalizer_spec: {m}")))?;
        let denormalizer = match &proto.denormalizer_spec {
            Some(spec) if !spec.precompiled_charsmap.is_empty() => Some(
                Normalizer::new(spec, false, None)
                    .map_err(|m| bad(format!("denormalizer_spec: {m}")))?,
            ),
            _ => None,
        };
        let unk_surface = match &proto.trainer_spec.unk_surface {
            Some(s) => String::from_utf8_lossy(s).into_owned(),
            None => DEFAULT_UNK_SURFACE.to_string(),
        };
        Ok(SentencePieceModel {
            path: path.to_path_buf(),
            entries,
            ids,
            segmenter,
            normalizer,
            denormalizer,
            unk_id,
            byte_fallback,
            byte_ids: if byte_fallback { byte_ids } else { Vec::new() },
            unk_surface,
            add_dummy_prefix: proto.normalizer_spec.add_dummy_prefix,
            remove_extra_whitespaces: proto.normalizer_spec.remove_extra_whitespaces,
        })
    }

    /// The file this model was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The segmentation algorithm: [`ModelType::Unigram`] or [`ModelType::Bpe`].
    pub fn model_type(&self) -> ModelType {
        match self.segmenter {
            Segmenter::Unigram(_) => ModelType::Unigram,
            Segmenter::Bpe(_) => ModelType::Bpe,
        }
    }

    /// Number of pieces (`get_piece_size()`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for a model without pieces (never the case for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The id of the unknown piece.
    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// `id_to_piece`: the piece with this id, `None` past the end of the vocabulary.
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.entries.get(id as usize).map(|e| e.piece.as_str())
    }

    /// `piece_to_id`: the id of a piece, the unknown id for anything else.
    pub fn piece_to_id(&self, piece: &str) -> u32 {
        self.ids.get(piece).copied().unwrap_or(self.unk_id)
    }

    /// The type of the piece with this id.
    pub fn piece_type(&self, id: u32) -> Option<PieceType> {
        self.entries.get(id as usize).map(|e| e.kind)
    }

    /// SentencePiece's normal form of `text` (`normalize`), e.g. `"▁Hallo▁wereld"`.
    pub fn normalize(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.normalizer.normalize(text.as_bytes())).into_owned()
    }

    /// Segments `text` into pieces, as `encode(text, out_type=str)` and `encode(text)` do.
    pub fn encode(&self, text: &str) -> Vec<Piece<'_>> {
        let mut out = Vec::new();
        self.encode_with(text, |p| out.push(p));
        out
    }

    /// Like [`SentencePieceModel::encode`], but hands each piece to `emit` as soon as it is
    /// final instead of collecting them (memory stays small for very long texts).
    pub fn encode_with<'m>(&'m self, text: &str, mut emit: impl FnMut(Piece<'m>)) {
        let normalized = self.normalizer.normalize(text.as_bytes());
        // A run of unknown characters becomes one piece: collect it until a known piece comes.
        let mut unknown: Vec<u8> = Vec::new();
        let flush = |unknown: &mut Vec<u8>, emit: &mut dyn FnMut(Piece<'m>)| {
            if !unknown.is_empty() {
                let text = match String::from_utf8(std::mem::take(unknown)) {
                    Ok(s) => s,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                };
                emit(Piece {
                    text: Cow::Owned(text),
                    id: self.unk_id,
                });
            }
        };
        let on_span = |span: Span| {
            let surface = normalized.get(span.start..span.end).unwrap_or_default();
            if span.id == self.unk_id && !self.byte_fallback {
                unknown.extend_from_slice(surface);
                return;
            }
            flush(&mut unknown, &mut emit);
            if span.id == self.unk_id {
                for &b in surface {
                    let id = self
                        .byte_ids
                        .get(usize::from(b))
                        .copied()
                        .unwrap_or(self.unk_id);
                    let text = self.id_to_piece(id).unwrap_or_default();
                    emit(Piece {
                        text: Cow::Borrowed(text),
                        id,
                    });
                }
            } else {
                let text = self.id_to_piece(span.id).unwrap_or_default();
                emit(Piece {
                    text: Cow::Borrowed(text),
                    id: span.id,
                });
            }
        };
        match &self.segmenter {
            Segmenter::Unigram(unigram) => unigram.encode(&normalized, on_span),
            Segmenter::Bpe(bpe) => bpe.encode(&normalized, on_span),
        }
        flush(&mut unknown, &mut emit);
    }

    /// The ids of [`SentencePieceModel::encode`].
    pub fn encode_ids(&self, text: &str) -> Vec<u32> {
        self.encode(text).into_iter().map(|p| p.id).collect()
    }

    /// Joins pieces back into text, as `decode_pieces` does: `▁` becomes a space, the leading
    /// space(s) of the dummy prefix go, control pieces vanish, `<unk>` becomes ` ⁇ `, other
    /// unknown strings are copied as they are, and byte pieces are reassembled into UTF-8
    /// (malformed bytes become U+FFFD).
    pub fn decode_pieces<S: AsRef<str>>(&self, pieces: &[S]) -> String {
        let mut text: Vec<u8> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        let mut is_bos_ws = true;
        let mut bos_ws_seen = false;
        for piece in pieces {
            let piece = piece.as_ref();
            let id = self.piece_to_id(piece);
            let kind = self.piece_type(id);
            if kind == Some(PieceType::Byte) {
                bytes.push(piece_to_byte(piece).unwrap_or(0));
                continue;
            }
            flush_bytes(&mut bytes, &mut text);
            if bos_ws_seen || !text.is_empty() {
                is_bos_ws = false;
            }
            bos_ws_seen = self.decode_piece(piece, id, kind, is_bos_ws, &mut text);
        }
        flush_bytes(&mut bytes, &mut text);
        if let Some(d) = &self.denormalizer {
            text = d.normalize(&text);
        }
        match String::from_utf8(text) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// Appends one decoded piece; returns whether it consumed a leading `▁` (`has_bos_ws`).
    fn decode_piece(
        &self,
        piece: &str,
        id: u32,
        kind: Option<PieceType>,
        is_bos_ws: bool,
        text: &mut Vec<u8>,
    ) -> bool {
        match kind {
            Some(PieceType::Control) => return false,
            Some(PieceType::Unknown) => {
                if self.id_to_piece(id) == Some(piece) {
                    text.extend_from_slice(self.unk_surface.as_bytes());
                } else {
                    text.extend_from_slice(piece.as_bytes());
                }
                return false;
            }
            _ => {}
        }
        let mut rest = piece.as_bytes();
        let mut has_bos_ws = false;
        if is_bos_ws && (self.add_dummy_prefix || self.remove_extra_whitespaces) {
            if let Some(r) = rest.strip_prefix(SPACE_SYMBOL) {
                rest = r;
                has_bos_ws = true;
            }
            if self.remove_extra_whitespaces {
                has_bos_ws = false;
            }
        }
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix(SPACE_SYMBOL) {
                text.push(b' ');
                rest = r;
            } else {
                text.push(rest[0]);
                rest = &rest[1..];
            }
        }
        has_bos_ws
    }
}

/// Turns a run of byte pieces into text: valid UTF-8 characters as they are, each byte of a
/// malformed sequence as U+FFFD.
fn flush_bytes(bytes: &mut Vec<u8>, text: &mut Vec<u8>) {
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        match utf8_char_len(rest) {
            Some(n) => {
                text.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            None => {
                text.extend_from_slice("\u{FFFD}".as_bytes());
                rest = &rest[1..];
            }
        }
    }
    bytes.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_pieces_spelling() {
        assert_eq!(piece_to_byte("<0x41>"), Some(0x41));
        assert_eq!(piece_to_byte("<0xFF>"), Some(0xFF));
        assert_eq!(piece_to_byte("<0xff>"), None);
        assert_eq!(piece_to_byte("<0x4>"), None);
        assert_eq!(piece_to_byte("<0x+4>"), None);
        assert_eq!(piece_to_byte("0x41"), None);
    }

    #[test]
    fn non_models_are_refused_with_the_file_name() {
        for bytes in [&b""[..], b"{\"a\": 1}", b"\x0a\x05abc", b"\x08\x01"] {
            let e = SentencePieceModel::from_bytes(bytes, "x/source.spm").unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("x/source.spm"), "{msg}");
            assert!(matches!(e, Error::ModelFile { .. }), "{msg}");
        }
    }
}
