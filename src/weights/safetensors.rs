//! Reads and writes safetensors files: header validation with clear errors on open, and the
//! atomic, de-duplicating writer behind [`Weights::save_safetensors`].
//!
//! Format: <https://github.com/huggingface/safetensors#format>.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ::safetensors::tensor::{Dtype, SafeTensorError, SafeTensors, View};

use super::{Entry, Parsed, StorageBytes, StoredDtype, Weights, REDOWNLOAD_HINT};
use crate::error::{Error, Result};

/// Metadata key holding `{"alias": "written name", ...}` for tensors written once under another
/// name (tied embeddings).
pub(crate) const ALIASES_KEY: &str = "tolk.aliases";

fn corrupt(path: &Path, message: impl Into<String>) -> Error {
    Error::model_file(path, message).with_hint(REDOWNLOAD_HINT)
}

fn from_safetensors(dtype: Dtype) -> Option<StoredDtype> {
    Some(match dtype {
        Dtype::F64 => StoredDtype::F64,
        Dtype::F32 => StoredDtype::F32,
        Dtype::F16 => StoredDtype::F16,
        Dtype::BF16 => StoredDtype::BF16,
        Dtype::I64 => StoredDtype::I64,
        Dtype::I32 => StoredDtype::I32,
        Dtype::I16 => StoredDtype::I16,
        Dtype::I8 => StoredDtype::I8,
        Dtype::U8 => StoredDtype::U8,
        Dtype::BOOL => StoredDtype::Bool,
        _ => return None,
    })
}

fn to_safetensors(dtype: StoredDtype) -> Dtype {
    match dtype {
        StoredDtype::F64 => Dtype::F64,
        StoredDtype::F32 => Dtype::F32,
        StoredDtype::F16 => Dtype::F16,
        StoredDtype::BF16 => Dtype::BF16,
        StoredDtype::I64 => Dtype::I64,
        StoredDtype::I32 => Dtype::I32,
        StoredDtype::I16 => Dtype::I16,
        StoredDtype::I8 => Dtype::I8,
        StoredDtype::U8 => Dtype::U8,
        StoredDtype::Bool => Dtype::BOOL,
    }
}

/// Explains a header error in terms of the file.
fn header_error(path: &Path, bytes: &[u8], e: &SafeTensorError) -> Error {
    let declared = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes);
    let message = match (e, declared) {
        (SafeTensorError::HeaderTooSmall, _) => format!(
            "the file has {} bytes, too few for a safetensors header (truncated)",
            bytes.len()
        ),
        (SafeTensorError::InvalidHeaderLength, Some(n)) => format!(
            "the header length {n} goes past the end of the {}-byte file (truncated)",
            bytes.len()
        ),
        (SafeTensorError::HeaderTooLarge, Some(n)) => {
            format!("the header length {n} is larger than safetensors allows (corrupt)")
        }
        (SafeTensorError::MetadataIncompleteBuffer, _) => format!(
            "the header's tensor offsets do not end at the end of the {}-byte file (truncated, \
             or extra bytes at the end)",
            bytes.len()
        ),
        (
            SafeTensorError::InvalidHeader(_) | SafeTensorError::InvalidHeaderDeserialization(_),
            _,
        ) => {
            format!("the header is not valid JSON: {e}")
        }
        _ => format!("invalid safetensors header: {e}"),
    };
    corrupt(path, message)
}

/// Reads a safetensors header and maps every tensor to its bytes in the file.
pub(super) fn read(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| header_error(path, bytes, &e))?;
    let data_start = header_len
        .checked_add(8)
        .ok_or_else(|| corrupt(path, "impossible header length"))?;
    let mut storages = Vec::new();
    let mut entries = BTreeMap::new();
    for (name, info) in metadata.tensors() {
        let dtype = from_safetensors(info.dtype).ok_or_else(|| {
            Error::model_file(
                path,
                format!(
                    "tensor `{name}` has dtype {:?}, which tolk does not support",
                    info.dtype
                ),
            )
        })?;
        let (start, end) = info.data_offsets;
        let range = start
            .checked_add(data_start)
            .zip(end.checked_add(data_start))
            .filter(|&(s, e)| s <= e && e <= bytes.len())
            .map(|(s, e)| s..e)
            .ok_or_else(|| corrupt(path, format!("tensor `{name}` lies outside the file")))?;
        let shape = info.shape.clone();
        let mut strides = vec![0usize; shape.len()];
        let mut stride = 1usize;
        for (s, &d) in strides.iter_mut().zip(&shape).rev() {
            *s = stride;
            stride = stride.saturating_mul(d);
        }
        storages.push(StorageBytes::File(range));
        entries.insert(
            name,
            Entry {
                dtype,
                shape,
                strides,
                offset: 0,
                storage: storages.len() - 1,
            },
        );
    }
    let metadata: BTreeMap<String, String> = metadata
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(aliases) = metadata.get(ALIASES_KEY) {
        let aliases: BTreeMap<String, String> = serde_json::from_str(aliases).map_err(|e| {
            corrupt(
                path,
                format!("metadata `{ALIASES_KEY}` is not a JSON object of strings: {e}"),
            )
        })?;
        for (alias, target) in aliases {
            let entry = entries.get(&target).cloned().ok_or_else(|| {
                corrupt(
                    path,
                    format!("metadata `{ALIASES_KEY}` names `{alias}` after `{target}`, which is not in the file"),
                )
            })?;
            if entries.insert(alias.clone(), entry).is_some() {
                return Err(corrupt(
                    path,
                    format!("metadata `{ALIASES_KEY}` redefines tensor `{alias}`"),
                ));
            }
        }
    }
    Ok(Parsed {
        storages,
        entries,
        big_endian: false,
        metadata,
    })
}

/// One tensor to write; its bytes are made contiguous only when the writer asks for them, so
/// at most one converted tensor is in memory at a time.
struct Out<'a> {
    weights: &'a Weights,
    name: &'a str,
    entry: &'a Entry,
}

impl View for Out<'_> {
    fn dtype(&self) -> Dtype {
        to_safetensors(self.entry.dtype)
    }

    fn shape(&self) -> &[usize] {
        &self.entry.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        // Every entry was checked against its storage when the file was opened, so this cannot
        // fail; if it somehow did, the short write is caught when the result is reopened.
        self.weights
            .contiguous_le_bytes(self.name, self.entry)
            .unwrap_or_default()
    }

    fn data_len(&self) -> usize {
        self.entry
            .numel()
            .unwrap_or(0)
            .saturating_mul(self.entry.dtype.size_in_bytes())
    }
}

/// Writes `weights` to `out` (see [`Weights::save_safetensors`]).
pub(super) fn save(weights: &Weights, out: &Path) -> Result<()> {
    // Identical views of one storage are written once, under the first name in sorted order.
    let mut written: HashMap<&Entry, &str> = HashMap::new();
    let mut aliases = BTreeMap::new();
    let mut views = Vec::new();
    for (name, entry) in &weights.entries {
        match written.get(entry) {
            Some(&first) => {
                aliases.insert(name.as_str(), first);
            }
            None => {
                written.insert(entry, name.as_str());
                views.push((
                    name.as_str(),
                    Out {
                        weights,
                        name,
                        entry,
                    },
                ));
            }
        }
    }
    let mut metadata: HashMap<String, String> = weights
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != ALIASES_KEY)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata
        .entry("format".into())
        .or_insert_with(|| "pt".into());
    if !aliases.is_empty() {
        let json = serde_json::to_string(&aliases)
            .map_err(|e| Error::model_file(out, format!("cannot encode aliases: {e}")))?;
        metadata.insert(ALIASES_KEY.into(), json);
    }

    crate::fsutil::write_atomic_with(out, |tmp| write_checked(tmp, views, metadata))
}

fn write_checked(
    tmp: &Path,
    views: Vec<(&str, Out<'_>)>,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let expected = views.len();
    ::safetensors::tensor::serialize_to_file(views, Some(metadata), tmp).map_err(|e| match e {
        SafeTensorError::IoError(io) => Error::io(tmp, io),
        other => Error::model_file(tmp, format!("cannot write safetensors: {other}")),
    })?;
    let check = Weights::open(tmp)?;
    let written = check.storages.len();
    if written != expected {
        return Err(Error::model_file(
            tmp,
            format!("wrote {written} tensors instead of {expected}"),
        ));
    }
    Ok(())
}
