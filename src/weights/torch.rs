//! Reads `torch.save` checkpoints -- the zip archive of torch >= 1.6 and the older sequence of
//! pickles -- into storages and named tensor views, with the restricted pickle reader.
//!
//! Reference: `torch/serialization.py` (`_save`, `_legacy_save`, `_load`, `_legacy_load`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Cursor, Read};
use std::path::Path;

use super::pickle::{self, Obj, Pickle, PickleError, TensorRef};
use super::{Entry, Parsed, StorageBytes, REDOWNLOAD_HINT};
use crate::error::{Error, Result};

/// `torch.serialization.MAGIC_NUMBER`, as the little-endian bytes of its `LONG1` opcode.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// `torch.serialization.PROTOCOL_VERSION`.
const LEGACY_PROTOCOL: i64 = 1001;
/// Largest `data.pkl` we decompress (real ones are tens of kilobytes).
const MAX_PICKLE_BYTES: u64 = 256 << 20;
/// How deep nested dicts of tensors are flattened into dotted names.
const MAX_NESTING: usize = 8;

const REFUSED_HINT: &str = "weights are data, never code: nothing in this file was run; it is \
     corrupt or was made to run code, so get the model from a trusted source, preferably as \
     model.safetensors";

fn corrupt(path: &Path, message: impl Into<String>) -> Error {
    Error::model_file(path, message).with_hint(REDOWNLOAD_HINT)
}

fn pickle_error(path: &Path, what: &str, e: PickleError) -> Error {
    let hint = if e.refused_global.is_some() {
        REFUSED_HINT
    } else {
        REDOWNLOAD_HINT
    };
    Error::model_file(path, format!("{what}: {e}")).with_hint(hint)
}

/// Collects the tensors of a state dict: the root dict's tensor values, with nested dicts
/// flattened into dotted names (`{"model": {"w": t}}` gives `model.w`). Other values (ints,
/// strings, `_metadata`) are not weights and are skipped.
fn state_dict_tensors(path: &Path, pickle: &Pickle) -> Result<BTreeMap<String, TensorRef>> {
    let root = pickle
        .root()
        .ok_or_else(|| corrupt(path, "the pickle has no value"))?;
    if !matches!(root, Obj::Dict(_)) {
        return Err(corrupt(
            path,
            format!(
                "the checkpoint holds {}, not a state dict of tensors",
                root.kind()
            ),
        ));
    }
    let mut out = BTreeMap::new();
    let mut visited = HashSet::new();
    let mut todo = vec![(String::new(), pickle.root, 0usize)];
    while let Some((prefix, id, depth)) = todo.pop() {
        // Each dict is walked once, so shared or cyclic dicts cost no more than their size.
        if !visited.insert(id) {
            continue;
        }
        let Some(Obj::Dict(items)) = pickle.get(id) else {
            continue;
        };
        for &(key, value) in items {
            let Some(Obj::Str(key)) = pickle.get(key) else {
                continue;
            };
            match pickle.get(value) {
                Some(Obj::Tensor(t)) => {
                    out.insert(format!("{prefix}{key}"), t.clone());
                }
                Some(Obj::Dict(_)) if depth < MAX_NESTING => {
                    todo.push((format!("{prefix}{key}."), value, depth + 1));
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Bytes a storage reference declares: `numel` elements of its dtype.
fn declared_bytes(path: &Path, name: &str, t: &TensorRef) -> Result<usize> {
    usize::try_from(t.storage.numel)
        .ok()
        .and_then(|n| n.checked_mul(t.storage.dtype.size_in_bytes()))
        .ok_or_else(|| {
            corrupt(
                path,
                format!(
                    "tensor `{name}` claims a storage of {} elements",
                    t.storage.numel
                ),
            )
        })
}

fn to_usize(path: &Path, name: &str, v: u64) -> Result<usize> {
    usize::try_from(v)
        .map_err(|_| corrupt(path, format!("tensor `{name}` has an impossible size {v}")))
}

/// Turns a tensor reference into an entry on storage `storage`, with its offset moved by a
/// legacy view offset, and checks it against the `limit` bytes its storage reference declares.
fn entry(
    path: &Path,
    name: &str,
    t: &TensorRef,
    storage: usize,
    extra_offset: u64,
    limit: usize,
) -> Result<Entry> {
    let entry = Entry {
        dtype: t.storage.dtype,
        shape: t
            .shape
            .iter()
            .map(|&d| to_usize(path, name, d))
            .collect::<Result<_>>()?,
        strides: t
            .strides
            .iter()
            .map(|&s| to_usize(path, name, s))
            .collect::<Result<_>>()?,
        offset: t
            .offset
            .checked_add(extra_offset)
            .ok_or_else(|| corrupt(path, format!("tensor `{name}` has an impossible offset")))
            .and_then(|o| to_usize(path, name, o))?,
        storage,
    };
    entry
        .check(limit)
        .map_err(|m| corrupt(path, format!("tensor `{name}` {m}")))?;
    Ok(entry)
}

/// The single `<archive>/data.pkl` of a torch zip checkpoint, as its archive prefix.
fn archive_prefix(path: &Path, names: &[String]) -> Result<String> {
    let mut prefixes = names.iter().filter_map(|n| {
        let prefix = n.strip_suffix("/data.pkl")?;
        (!prefix.is_empty() && !prefix.contains('/')).then(|| prefix.to_string())
    });
    match (prefixes.next(), prefixes.next()) {
        (Some(prefix), None) => Ok(prefix),
        (None, _) => Err(Error::model_file(
            path,
            "a zip archive without `<name>/data.pkl`: not a torch.save checkpoint",
        )),
        (Some(_), Some(_)) => Err(Error::model_file(
            path,
            "a zip archive with several `<name>/data.pkl` records: not a torch.save checkpoint",
        )),
    }
}

fn zip_error(path: &Path, what: &str, e: zip::result::ZipError) -> Error {
    corrupt(path, format!("{what}: {e}"))
}

/// Reads a small record fully.
fn read_record(
    path: &Path,
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
) -> Result<Option<Vec<u8>>> {
    let mut file = match archive.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(zip_error(path, &format!("reading `{name}`"), e)),
    };
    if file.size() > MAX_PICKLE_BYTES {
        return Err(corrupt(
            path,
            format!("record `{name}` is {} bytes, too large", file.size()),
        ));
    }
    let mut out = Vec::new();
    file.by_ref()
        .take(MAX_PICKLE_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(path, format!("reading `{name}`: {e}")))?;
    Ok(Some(out))
}

/// Locates a storage record of at least `needed` bytes: a range of the file when it is stored
/// uncompressed (always, for torch), else its first `needed` bytes decompressed.
fn storage_record(
    path: &Path,
    bytes: &[u8],
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    key: &str,
    needed: usize,
) -> Result<StorageBytes> {
    let mut file = match archive.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(corrupt(
                path,
                format!(
                    "data.pkl refers to storage `{key}`, but the archive has no record `{name}`"
                ),
            ))
        }
        Err(e) => return Err(zip_error(path, &format!("reading `{name}`"), e)),
    };
    if file.encrypted() {
        return Err(Error::model_file(
            path,
            format!("record `{name}` is encrypted"),
        ));
    }
    let short = |have: u64| {
        corrupt(
            path,
            format!("storage record `{name}` has {have} bytes, but its tensors need {needed}"),
        )
    };
    if file.compression() == zip::CompressionMethod::Stored {
        let start = file
            .data_start()
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| corrupt(path, format!("record `{name}` has no data offset")))?;
        let size = file.compressed_size();
        if file.size() != size {
            return Err(corrupt(
                path,
                format!("stored record `{name}` has two different sizes"),
            ));
        }
        let len = usize::try_from(size).map_err(|_| short(size))?;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                corrupt(
                    path,
                    format!("record `{name}` runs past the end of the file (truncated)"),
                )
            })?;
        if len < needed {
            return Err(short(size));
        }
        return Ok(StorageBytes::File(start..end));
    }
    if file.size() < needed as u64 {
        return Err(short(file.size()));
    }
    let mut out = Vec::new();
    file.by_ref()
        .take(needed as u64)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(path, format!("decompressing `{name}`: {e}")))?;
    if out.len() < needed {
        return Err(short(out.len() as u64));
    }
    Ok(StorageBytes::Owned(out))
}

/// Reads a zip-format checkpoint.
pub(super) fn read_zip(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| zip_error(path, "not a readable zip archive (truncated?)", e))?;
    let names: Vec<String> = archive
        .file_names_raw()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    let prefix = archive_prefix(path, &names)?;
    if archive
        .index_for_name(&format!("{prefix}/constants.pkl"))
        .is_some()
    {
        return Err(Error::model_file(
            path,
            "a TorchScript archive (torch.jit.save), not a state dict saved with torch.save",
        ));
    }

    let big_endian = match read_record(path, &mut archive, &format!("{prefix}/byteorder"))? {
        None => false,
        Some(order) => match order.trim_ascii() {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(corrupt(
                    path,
                    format!("unknown byte order `{}`", String::from_utf8_lossy(other)),
                ))
            }
        },
    };

    let data_pkl = read_record(path, &mut archive, &format!("{prefix}/data.pkl"))?
        .ok_or_else(|| corrupt(path, "data.pkl is missing"))?;
    let pickle = pickle::load(&data_pkl, 0)
        .map_err(|e| pickle_error(path, &format!("{prefix}/data.pkl"), e))?;
    let tensors = state_dict_tensors(path, &pickle)?;

    // Each storage record must hold what every reference to it declares.
    let mut needed: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, t) in &tensors {
        let bytes = declared_bytes(path, name, t)?;
        let slot = needed.entry(t.storage.key.as_str()).or_default();
        *slot = (*slot).max(bytes);
    }
    let mut storages = Vec::with_capacity(needed.len());
    let mut index = HashMap::with_capacity(needed.len());
    for (&key, &n) in &needed {
        let record = format!("{prefix}/data/{key}");
        storages.push(storage_record(path, bytes, &mut archive, &record, key, n)?);
        index.insert(key, storages.len() - 1);
    }

    let mut entries = BTreeMap::new();
    for (name, t) in &tensors {
        let storage = *index
            .get(t.storage.key.as_str())
            .ok_or_else(|| corrupt(path, format!("tensor `{name}` has no storage")))?;
        let limit = declared_bytes(path, name, t)?;
        entries.insert(name.clone(), entry(path, name, t, storage, 0, limit)?);
    }
    Ok(Parsed {
        storages,
        entries,
        big_endian,
        metadata: BTreeMap::new(),
    })
}

/// Reads the next pickle of a legacy file, starting at `*pos`.
fn next_pickle(path: &Path, bytes: &[u8], pos: &mut usize, what: &str) -> Result<Pickle> {
    let rest = bytes.get(*pos..).unwrap_or_default();
    if rest.is_empty() {
        return Err(corrupt(
            path,
            format!("the file ends before {what} (truncated)"),
        ));
    }
    let pickle = pickle::load(rest, *pos).map_err(|e| pickle_error(path, what, e))?;
    *pos += pickle.end;
    Ok(pickle)
}

/// Reads a legacy (pre-zip) checkpoint.
pub(super) fn read_legacy(path: &Path, bytes: &[u8]) -> Result<Parsed> {
    let mut pos = 0;
    let magic = next_pickle(path, bytes, &mut pos, "pickle 1 (torch magic number)")?;
    if !matches!(magic.root(), Some(Obj::BigInt(b)) if b.as_slice() == LEGACY_MAGIC) {
        return Err(Error::model_file(
            path,
            "a Python pickle, but not a checkpoint written by torch.save (no torch magic number)",
        ));
    }
    let version = next_pickle(path, bytes, &mut pos, "pickle 2 (protocol version)")?;
    match version.root() {
        Some(Obj::Int(LEGACY_PROTOCOL)) => {}
        Some(Obj::Int(v)) => {
            return Err(Error::model_file(
                path,
                format!("unsupported torch.save legacy protocol version {v}"),
            ))
        }
        _ => return Err(corrupt(path, "the protocol version is not an int")),
    }
    let sys_info = next_pickle(path, bytes, &mut pos, "pickle 3 (sys_info)")?;
    if let Some(Obj::Dict(items)) = sys_info.root() {
        for &(k, v) in items {
            if matches!(sys_info.get(k), Some(Obj::Str(k)) if k == "little_endian")
                && matches!(sys_info.get(v), Some(Obj::Bool(false)))
            {
                return Err(Error::model_file(
                    path,
                    "saved on a big-endian machine in the legacy torch.save format, which is \
                     not supported",
                )
                .with_hint("re-save it with a current torch (zip format) or as safetensors"));
            }
        }
    }
    let main = next_pickle(path, bytes, &mut pos, "pickle 4 (state dict)")?;
    let tensors = state_dict_tensors(path, &main)?;
    let keys_pickle = next_pickle(path, bytes, &mut pos, "pickle 5 (storage keys)")?;
    let Some(Obj::List(key_ids)) = keys_pickle.root() else {
        return Err(corrupt(path, "the storage key list is not a list"));
    };

    // The element size of each storage, from the tensors that use it: the data section
    // counts elements, not bytes.
    let mut dtypes = HashMap::new();
    for (name, t) in &tensors {
        if let Some(previous) = dtypes.insert(t.storage.key.as_str(), t.storage.dtype) {
            if previous != t.storage.dtype {
                return Err(corrupt(
                    path,
                    format!(
                        "storage `{}` is used as both {previous} and {} (tensor `{name}`)",
                        t.storage.key, t.storage.dtype
                    ),
                ));
            }
        }
    }

    let mut storages = Vec::with_capacity(key_ids.len());
    let mut index = HashMap::with_capacity(key_ids.len());
    for &id in key_ids {
        let Some(Obj::Str(key)) = keys_pickle.get(id) else {
            return Err(corrupt(path, "a storage key is not a string"));
        };
        let dtype = *dtypes.get(key.as_str()).ok_or_else(|| {
            corrupt(
                path,
                format!("storage `{key}` is listed but no tensor uses it"),
            )
        })?;
        let header = pos
            .checked_add(8)
            .and_then(|end| bytes.get(pos..end))
            .ok_or_else(|| {
                corrupt(
                    path,
                    format!("the file ends before storage `{key}` at byte {pos} (truncated)"),
                )
            })?;
        let mut count = [0u8; 8];
        count.copy_from_slice(header);
        let numel = u64::from_le_bytes(count);
        let start = pos + 8;
        let end = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(dtype.size_in_bytes()))
            .and_then(|n| n.checked_add(start))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| {
                corrupt(
                    path,
                    format!(
                        "storage `{key}` at byte {pos} claims {numel} elements of {dtype}, more \
                         than the {} bytes left in the file (truncated)",
                        bytes.len().saturating_sub(start)
                    ),
                )
            })?;
        if index.insert(key.as_str(), storages.len()).is_some() {
            return Err(corrupt(path, format!("storage `{key}` is listed twice")));
        }
        storages.push((StorageBytes::File(start..end), numel));
        pos = end;
    }

    let mut entries = BTreeMap::new();
    for (name, t) in &tensors {
        let key = t.storage.key.as_str();
        let &storage = index.get(key).ok_or_else(|| {
            corrupt(
                path,
                format!("tensor `{name}` uses storage `{key}`, which the file does not contain"),
            )
        })?;
        let numel_in_file = storages.get(storage).map_or(0, |s| s.1);
        let es = t.storage.dtype.size_in_bytes();
        let (extra_offset, limit_elems) = match &t.storage.view {
            None => {
                if numel_in_file != t.storage.numel {
                    return Err(corrupt(
                        path,
                        format!(
                            "storage `{key}` holds {numel_in_file} elements, but tensor `{name}` \
                             expects {}",
                            t.storage.numel
                        ),
                    ));
                }
                (0, t.storage.numel)
            }
            // Old torch pickled views of storages as (view_key, offset, size) into the root.
            Some((_, offset, size)) => {
                let end = offset.checked_add(*size).filter(|&e| e <= numel_in_file);
                let Some(end) = end else {
                    return Err(corrupt(
                        path,
                        format!("tensor `{name}` uses a storage view outside storage `{key}`"),
                    ));
                };
                (*offset, end)
            }
        };
        let limit = usize::try_from(limit_elems)
            .ok()
            .and_then(|n| n.checked_mul(es))
            .ok_or_else(|| corrupt(path, format!("tensor `{name}` has an impossible storage")))?;
        entries.insert(
            name.clone(),
            entry(path, name, t, storage, extra_offset, limit)?,
        );
    }
    Ok(Parsed {
        storages: storages.into_iter().map(|(s, _)| s).collect(),
        entries,
        big_endian: false,
        metadata: BTreeMap::new(),
    })
}
