//! Model weights from `model.safetensors` or `pytorch_model.bin` (both `torch.save` formats),
//! read without running any pickle code, behind one API and a candle `VarBuilder` backend.
//!
//! # Formats
//!
//! 1. **safetensors**: an 8-byte header length, a JSON header, raw little-endian tensor data.
//!    The file is memory-mapped and only the header is read at [`Weights::open`].
//! 2. **torch zip** (`torch.save` since torch 1.6): a zip archive `<name>/data.pkl` +
//!    `<name>/data/<key>` with one record per storage, plus `byteorder` and `version` records.
//!    The records are stored uncompressed and 64-byte aligned, so they are sliced out of the
//!    memory-mapped file.
//! 3. **torch legacy** (`_use_new_zipfile_serialization=False`, and torch < 1.6): five pickles in a
//!    row -- the magic number, the protocol version, `sys_info`, the state dict (whose storages
//!    are persistent ids), the list of storage keys -- then each storage's raw bytes after an
//!    8-byte element count.
//!
//! The format is told by the file's first bytes, never by its name. Pickles are read by
//! `pickle`, a restricted interpreter that knows a handful of tensor-building globals and
//! refuses every other one: weights are data, never code.
//!
//! # Memory
//!
//! Opening maps the file and reads only the index (header or pickles); [`Weights::tensor`] copies
//! one tensor out of the mapping into a candle tensor. Tensors that share a storage (tied
//! embeddings) share the mapped bytes. Nothing holds a second copy of the file.

mod pickle;
mod safetensors;
#[cfg(test)]
mod tests;
mod torch;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::error::{Error, Result};

/// What to tell a user whose file is damaged.
const REDOWNLOAD_HINT: &str = "the file is damaged or incomplete: delete it and download it again";

/// Tensors may have at most this many dimensions (torch allows 64).
const MAX_RANK: usize = 64;

/// A tensor whose strides overlap (an expanded tensor, stride 0) may grow beyond its storage when
/// made contiguous; past this size (1 GiB) that is refused rather than allocated.
const MAX_EXPANDED_BYTES: usize = 1 << 30;

/// The on-disk layouts [`Weights::open`] understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightsFormat {
    /// `model.safetensors`.
    Safetensors,
    /// `torch.save` zip archive (torch >= 1.6).
    TorchZip,
    /// `torch.save` legacy pickle sequence (torch < 1.6, or `_use_new_zipfile_serialization=False`).
    TorchLegacy,
}

impl fmt::Display for WeightsFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WeightsFormat::Safetensors => "safetensors",
            WeightsFormat::TorchZip => "torch.save (zip)",
            WeightsFormat::TorchLegacy => "torch.save (legacy)",
        })
    }
}

/// Element type of a tensor as stored in the file.
///
/// candle has no `i8` or `bool`: [`Weights::tensor`] returns `i8` tensors widened to
/// [`DType::I16`] and `bool` tensors as [`DType::U8`] zeros and ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoredDtype {
    /// 64-bit float (`torch.float64`).
    F64,
    /// 32-bit float (`torch.float32`).
    F32,
    /// IEEE half (`torch.float16`).
    F16,
    /// bfloat16 (`torch.bfloat16`).
    BF16,
    /// `torch.int64`.
    I64,
    /// `torch.int32`.
    I32,
    /// `torch.int16`.
    I16,
    /// `torch.int8`.
    I8,
    /// `torch.uint8`.
    U8,
    /// `torch.bool`, one byte per element.
    Bool,
}

impl StoredDtype {
    /// Every supported element type.
    pub const ALL: [StoredDtype; 10] = [
        StoredDtype::F64,
        StoredDtype::F32,
        StoredDtype::F16,
        StoredDtype::BF16,
        StoredDtype::I64,
        StoredDtype::I32,
        StoredDtype::I16,
        StoredDtype::I8,
        StoredDtype::U8,
        StoredDtype::Bool,
    ];

    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            StoredDtype::F64 | StoredDtype::I64 => 8,
            StoredDtype::F32 | StoredDtype::I32 => 4,
            StoredDtype::F16 | StoredDtype::BF16 | StoredDtype::I16 => 2,
            StoredDtype::I8 | StoredDtype::U8 | StoredDtype::Bool => 1,
        }
    }

    /// The candle dtype [`Weights::tensor`] returns for it.
    pub fn dtype(self) -> DType {
        match self {
            StoredDtype::F64 => DType::F64,
            StoredDtype::F32 => DType::F32,
            StoredDtype::F16 => DType::F16,
            StoredDtype::BF16 => DType::BF16,
            StoredDtype::I64 => DType::I64,
            StoredDtype::I32 => DType::I32,
            StoredDtype::I16 | StoredDtype::I8 => DType::I16,
            StoredDtype::U8 | StoredDtype::Bool => DType::U8,
        }
    }

    /// torch's name without the `torch.` prefix (`float32`, `bfloat16`, `bool`, ...).
    pub fn name(self) -> &'static str {
        match self {
            StoredDtype::F64 => "float64",
            StoredDtype::F32 => "float32",
            StoredDtype::F16 => "float16",
            StoredDtype::BF16 => "bfloat16",
            StoredDtype::I64 => "int64",
            StoredDtype::I32 => "int32",
            StoredDtype::I16 => "int16",
            StoredDtype::I8 => "int8",
            StoredDtype::U8 => "uint8",
            StoredDtype::Bool => "bool",
        }
    }

    /// The legacy torch storage class (`FloatStorage`, ...).
    pub(crate) fn torch_storage(self) -> &'static str {
        match self {
            StoredDtype::F64 => "DoubleStorage",
            StoredDtype::F32 => "FloatStorage",
            StoredDtype::F16 => "HalfStorage",
            StoredDtype::BF16 => "BFloat16Storage",
            StoredDtype::I64 => "LongStorage",
            StoredDtype::I32 => "IntStorage",
            StoredDtype::I16 => "ShortStorage",
            StoredDtype::I8 => "CharStorage",
            StoredDtype::U8 => "ByteStorage",
            StoredDtype::Bool => "BoolStorage",
        }
    }

    pub(crate) fn from_torch_storage(name: &str) -> Option<StoredDtype> {
        StoredDtype::ALL
            .into_iter()
            .find(|d| d.torch_storage() == name)
    }
}

impl fmt::Display for StoredDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Dtype and shape of one tensor, known without loading it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TensorInfo {
    /// The dtype [`Weights::tensor`] returns.
    pub dtype: DType,
    /// The element type in the file (differs from `dtype` for `int8` and `bool`).
    pub stored: StoredDtype,
    /// Size of each dimension.
    pub shape: Vec<usize>,
}

/// The bytes of the whole file.
enum FileBytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl FileBytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Owned(v) => v,
        }
    }
}

/// Where a storage's bytes are.
enum StorageBytes {
    /// A range of the file.
    File(Range<usize>),
    /// Decompressed from a deflated zip record.
    Owned(Vec<u8>),
}

/// One named tensor: a strided view of a storage.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Entry {
    dtype: StoredDtype,
    shape: Vec<usize>,
    /// In elements.
    strides: Vec<usize>,
    /// In elements.
    offset: usize,
    /// Index into `Weights::storages`.
    storage: usize,
}

impl Entry {
    fn numel(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&dim, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if dim != 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(dim);
        }
        true
    }

    /// Checks that every element lies inside a storage of `storage_len` bytes, and that the
    /// contiguous copy has a sane size. Returns what is wrong.
    fn check(&self, storage_len: usize) -> std::result::Result<(), String> {
        if self.shape.len() > MAX_RANK {
            return Err(format!(
                "has {} dimensions (at most {MAX_RANK} are supported)",
                self.shape.len()
            ));
        }
        if self.shape.len() != self.strides.len() {
            return Err("does not have as many strides as dimensions".into());
        }
        let es = self.dtype.size_in_bytes();
        let numel = self
            .numel()
            .ok_or_else(|| format!("has an impossible shape {:?}", self.shape))?;
        let bytes = numel
            .checked_mul(es)
            .ok_or_else(|| format!("has an impossible shape {:?}", self.shape))?;
        if numel == 0 {
            return Ok(());
        }
        let mut last = self.offset;
        for (&dim, &stride) in self.shape.iter().zip(&self.strides) {
            last = (dim - 1)
                .checked_mul(stride)
                .and_then(|span| last.checked_add(span))
                .ok_or_else(|| "has strides that overflow".to_string())?;
        }
        let needed = last
            .checked_add(1)
            .and_then(|n| n.checked_mul(es))
            .ok_or_else(|| "has strides that overflow".to_string())?;
        if needed > storage_len {
            return Err(format!(
                "needs {needed} bytes of its storage (offset {}, shape {:?}, strides {:?}) but \
                 the storage has only {storage_len}",
                self.offset, self.shape, self.strides
            ));
        }
        if bytes > storage_len && bytes > MAX_EXPANDED_BYTES {
            return Err(format!(
                "would expand {storage_len} bytes of storage into {bytes} bytes"
            ));
        }
        Ok(())
    }
}

/// What a format reader found: the storages and the named views of them.
struct Parsed {
    storages: Vec<StorageBytes>,
    entries: BTreeMap<String, Entry>,
    /// Multi-byte elements are big-endian (a zip checkpoint whose `byteorder` record says so).
    big_endian: bool,
    /// safetensors `__metadata__` (empty for torch files).
    metadata: BTreeMap<String, String>,
}

/// The tensors of one weights file, opened lazily.
///
/// `Weights` is `Send + Sync`: one instance can serve loads from many threads.
pub struct Weights {
    path: PathBuf,
    format: WeightsFormat,
    file: FileBytes,
    storages: Vec<StorageBytes>,
    entries: BTreeMap<String, Entry>,
    big_endian: bool,
    metadata: BTreeMap<String, String>,
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weights")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tensors", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// The format a file's first bytes announce, or why none fits.
fn detect(bytes: &[u8]) -> std::result::Result<WeightsFormat, String> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return Ok(WeightsFormat::TorchZip);
    }
    // Safetensors first: its 8-byte header length can itself start with 0x80, the pickle
    // PROTO opcode. A header that is JSON and fits in the file decides it.
    let header_starts_json = bytes
        .get(8..)
        .and_then(|rest| rest.iter().take(64).find(|b| !b.is_ascii_whitespace()))
        == Some(&b'{');
    let header_fits = bytes
        .get(..8)
        .and_then(|h| h.try_into().ok())
        .map(u64::from_le_bytes)
        .is_some_and(|n| n.saturating_add(8) <= bytes.len() as u64);
    if header_starts_json && header_fits {
        return Ok(WeightsFormat::Safetensors);
    }
    if bytes.first() == Some(&0x80) && bytes.get(1).is_some_and(|p| (2..=5).contains(p)) {
        return Ok(WeightsFormat::TorchLegacy);
    }
    if header_starts_json {
        return Ok(WeightsFormat::Safetensors);
    }
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    if bytes.starts_with(b"version https://git-lfs") {
        return Err("this is a Git LFS pointer, not the weights themselves".into());
    }
    let head = String::from_utf8_lossy(bytes.get(..bytes.len().min(256)).unwrap_or_default())
        .to_ascii_lowercase();
    if head.contains("<html") || head.contains("<!doctype") {
        return Err("this is an HTML page (an error page saved instead of the weights?)".into());
    }
    if bytes.get(257..262) == Some(b"ustar") {
        return Err(
            "this is a tar archive, the torch.save format of torch <= 0.1.10, which is not \
             supported; re-save it with a current torch"
                .into(),
        );
    }
    Err(format!(
        "not a safetensors file, nor a torch.save checkpoint (it starts with {:02x?})",
        bytes.get(..bytes.len().min(8)).unwrap_or_default()
    ))
}

impl Weights {
    /// Opens a weights file, telling the format from its content.
    ///
    /// The file is memory-mapped; only its index is read here. Every tensor's offsets are
    /// checked against the data actually present, so a truncated or corrupt file fails here,
    /// with an error naming it. A pickle that names any global outside the allow-list fails here
    /// too, before anything is built from it.
    ///
    /// The mapping assumes the file is not changed while `Weights` lives (as every mmap-based
    /// loader does); replace cached files by renaming, as [`Weights::save_safetensors`] does.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let bytes = if len == 0 {
            FileBytes::Owned(Vec::new())
        } else {
            // SAFETY: the mapping is read-only and private to this process; like candle's and
            // safetensors' own loaders we rely on the file not being modified while mapped.
            // Every access goes through bounds-checked slices of the mapping.
            #[allow(unsafe_code)]
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            FileBytes::Mapped(map)
        };
        Self::from_file_bytes(path.to_path_buf(), bytes)
    }

    /// Reads weights from bytes in memory; `path` only names them in errors and [`Weights::path`].
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_file_bytes(path.into(), FileBytes::Owned(bytes))
    }

    fn from_file_bytes(path: PathBuf, file: FileBytes) -> Result<Self> {
        let bytes = file.as_slice();
        let format =
            detect(bytes).map_err(|m| Error::model_file(&path, m).with_hint(REDOWNLOAD_HINT))?;
        let parsed = match format {
            WeightsFormat::Safetensors => safetensors::read(&path, bytes)?,
            WeightsFormat::TorchZip => torch::read_zip(&path, bytes)?,
            WeightsFormat::TorchLegacy => torch::read_legacy(&path, bytes)?,
        };
        let weights = Weights {
            path,
            format,
            storages: parsed.storages,
            entries: parsed.entries,
            big_endian: parsed.big_endian,
            metadata: parsed.metadata,
            file,
        };
        for (name, entry) in &weights.entries {
            let len = weights.storage(entry.storage).map_or(0, <[u8]>::len);
            entry.check(len).map_err(|m| {
                Error::model_file(&weights.path, format!("tensor `{name}` {m}"))
                    .with_hint(REDOWNLOAD_HINT)
            })?;
        }
        Ok(weights)
    }

    /// The format the file is in.
    pub fn format(&self) -> WeightsFormat {
        self.format
    }

    /// The file the weights came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Number of named tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the file holds no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The safetensors `__metadata__` (empty for torch files).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Dtype and shape of a tensor, without loading it.
    pub fn info(&self, name: &str) -> Option<TensorInfo> {
        self.entries.get(name).map(|e| TensorInfo {
            dtype: e.dtype.dtype(),
            stored: e.dtype,
            shape: e.shape.clone(),
        })
    }

    /// An [`Error::ModelFile`] naming the tensor, this file, and both shapes, unless the tensor
    /// has shape `expected`.
    pub fn check_shape(&self, name: &str, expected: &[usize]) -> Result<()> {
        let entry = self.entry(name)?;
        if entry.shape == expected {
            return Ok(());
        }
        Err(Error::model_file(
            &self.path,
            format!(
                "tensor `{name}` has shape {:?}, but the model expects {expected:?}",
                entry.shape
            ),
        )
        .with_hint("the weights do not match the model's config.json"))
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries
            .get(name)
            .ok_or_else(|| Error::model_file(&self.path, format!("has no tensor named `{name}`")))
    }

    fn storage(&self, index: usize) -> Option<&[u8]> {
        match self.storages.get(index)? {
            StorageBytes::File(range) => self.file.as_slice().get(range.clone()),
            StorageBytes::Owned(bytes) => Some(bytes),
        }
    }

    /// The tensor's elements, contiguous, in the file's byte order: borrowed from the file when
    /// they already are contiguous, copied otherwise.
    fn contiguous_bytes(&self, name: &str, entry: &Entry) -> Result<Cow<'_, [u8]>> {
        let corrupt = || {
            Error::model_file(
                &self.path,
                format!("tensor `{name}` lies outside its storage"),
            )
            .with_hint(REDOWNLOAD_HINT)
        };
        let storage = self.storage(entry.storage).ok_or_else(corrupt)?;
        let es = entry.dtype.size_in_bytes();
        let numel = entry.numel().ok_or_else(corrupt)?;
        if numel == 0 {
            return Ok(Cow::Borrowed(&[][..]));
        }
        if entry.is_contiguous() {
            let start = entry.offset.checked_mul(es).ok_or_else(corrupt)?;
            let end = numel
                .checked_mul(es)
                .and_then(|n| n.checked_add(start))
                .ok_or_else(corrupt)?;
            Ok(Cow::Borrowed(storage.get(start..end).ok_or_else(corrupt)?))
        } else {
            Ok(Cow::Owned(gather(storage, es, entry).ok_or_else(corrupt)?))
        }
    }

    /// Like [`Weights::contiguous_bytes`], but always little-endian (for writing safetensors).
    fn contiguous_le_bytes(&self, name: &str, entry: &Entry) -> Result<Cow<'_, [u8]>> {
        let mut bytes = self.contiguous_bytes(name, entry)?;
        let es = entry.dtype.size_in_bytes();
        if self.big_endian && es > 1 {
            for element in bytes.to_mut().chunks_exact_mut(es) {
                element.reverse();
            }
        }
        Ok(bytes)
    }

    /// Loads a tensor onto `device` in its stored dtype (see [`StoredDtype::dtype`]), copied
    /// out of the file and made contiguous.
    ///
    /// The elements are decoded from the file's byte order in one pass into the tensor's own
    /// buffer, whatever the alignment of the data in the file.
    pub fn tensor(&self, name: &str, device: &Device) -> Result<Tensor> {
        let entry = self.entry(name)?;
        let bytes = self.contiguous_bytes(name, entry)?;
        self.releasing(bytes, |bytes| self.decoded(entry, bytes, device))
    }

    /// `bytes` (one tensor's, in the file's byte order) decoded into a tensor on `device`.
    fn decoded(&self, entry: &Entry, bytes: &[u8], device: &Device) -> Result<Tensor> {
        let be = self.big_endian;
        let shape = entry.shape.as_slice();
        let tensor = match entry.dtype {
            StoredDtype::F64 => Tensor::from_vec(
                decode(bytes, be, f64::from_le_bytes, f64::from_be_bytes),
                shape,
                device,
            ),
            StoredDtype::F32 => Tensor::from_vec(
                decode(bytes, be, f32::from_le_bytes, f32::from_be_bytes),
                shape,
                device,
            ),
            StoredDtype::F16 => Tensor::from_vec(
                decode(
                    bytes,
                    be,
                    half::f16::from_le_bytes,
                    half::f16::from_be_bytes,
                ),
                shape,
                device,
            ),
            StoredDtype::BF16 => Tensor::from_vec(
                decode(
                    bytes,
                    be,
                    half::bf16::from_le_bytes,
                    half::bf16::from_be_bytes,
                ),
                shape,
                device,
            ),
            StoredDtype::I64 => Tensor::from_vec(
                decode(bytes, be, i64::from_le_bytes, i64::from_be_bytes),
                shape,
                device,
            ),
            StoredDtype::I32 => Tensor::from_vec(
                decode(bytes, be, i32::from_le_bytes, i32::from_be_bytes),
                shape,
                device,
            ),
            StoredDtype::I16 => Tensor::from_vec(
                decode(bytes, be, i16::from_le_bytes, i16::from_be_bytes),
                shape,
                device,
            ),
            StoredDtype::I8 => {
                let values: Vec<i16> = bytes
                    .iter()
                    .map(|&b| i16::from(i8::from_le_bytes([b])))
                    .collect();
                Tensor::from_vec(values, shape, device)
            }
            StoredDtype::U8 => Tensor::from_vec(bytes.to_vec(), shape, device),
            StoredDtype::Bool => {
                let values: Vec<u8> = bytes.iter().map(|&b| u8::from(b != 0)).collect();
                Tensor::from_vec(values, shape, device)
            }
        }?;
        Ok(tensor)
    }

    /// Runs `f` on a tensor's `bytes`, then, when they were borrowed from the mapped file, hands
    /// those pages back ([`Weights::release`]): what `f` made is the tensor's only copy.
    fn releasing<R>(&self, bytes: Cow<'_, [u8]>, f: impl FnOnce(&[u8]) -> R) -> R {
        let mapped = match (&self.file, &bytes) {
            (FileBytes::Mapped(map), Cow::Borrowed(b)) if !b.is_empty() => {
                Some((b.as_ptr() as usize - map.as_ptr() as usize, b.len()))
            }
            _ => None,
        };
        let out = f(&bytes);
        drop(bytes);
        if let Some((offset, len)) = mapped {
            self.release(offset, len);
        }
        out
    }

    /// Hands the pages of a mapped range back once its tensor is copied out, so that loading does
    /// not hold the file's pages and the model's copy at once (peak memory: the model, not twice
    /// it). A later read of the range faults the same bytes in again from the file.
    fn release(&self, offset: usize, len: usize) {
        #[cfg(unix)]
        if let FileBytes::Mapped(map) = &self.file {
            const PAGE: usize = 4096;
            let start = offset.next_multiple_of(PAGE);
            let end = (offset + len) / PAGE * PAGE;
            if end > start {
                // SAFETY: the mapping is read-only and backed by the file; MADV_DONTNEED drops the
                // process's copies of those pages, and any later access reads the unchanged file
                // again. No reference into the range is invalidated (it stays mapped).
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }

    /// Writes all tensors to a safetensors file, atomically: into a temporary file in the same
    /// directory, synced, checked by reopening, then renamed over `out`.
    ///
    /// Tensors that are the same view of the same storage (tied embeddings) are written once;
    /// the other names are recorded in the `tolk.aliases` metadata entry (a JSON object from
    /// alias to written name), which [`Weights::open`] resolves. `int8` and `bool` tensors keep
    /// their types. The metadata entry `format` is `pt`, as transformers expects.
    pub fn save_safetensors(&self, out: &Path) -> Result<()> {
        safetensors::save(self, out)
    }

    /// A candle `VarBuilder` over these weights that converts every tensor to `dtype` on load.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }

    /// A candle `VarBuilder` over shared weights (as [`Weights::into_var_builder`]), for a
    /// reader that also takes some tensors' bytes directly ([`Weights::with_f32_bytes`]).
    pub(crate) fn shared_var_builder(
        weights: &Arc<Weights>,
        dtype: DType,
        device: &Device,
    ) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Shared(Arc::clone(weights))), dtype, device.clone())
    }

    /// Calls `f` with the little-endian bytes of the float32 tensor `name` of shape `shape`
    /// (borrowed from the file when they lie there contiguous and in that order), then hands the
    /// file's pages of it back as [`Weights::tensor`] does; `None` if it is stored in another
    /// dtype. Errors: no such tensor, another shape, bytes outside the file.
    pub(crate) fn with_f32_bytes<R>(
        &self,
        name: &str,
        shape: &[usize],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        self.check_shape(name, shape)?;
        let entry = self.entry(name)?;
        if entry.dtype != StoredDtype::F32 {
            return Ok(None);
        }
        let bytes = self.contiguous_le_bytes(name, entry)?;
        Ok(Some(self.releasing(bytes, f)))
    }
}

/// Weights shared between a `VarBuilder` and a direct reader.
struct Shared(Arc<Weights>);

impl SimpleBackend for Shared {
    fn get(
        &self,
        shape: candle_core::Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.get(shape, name, init, dtype, device)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.get_unchecked(name, dtype, device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// Decodes packed `N`-byte elements with `le` (or `be` for big-endian files).
fn decode<T: AnyBits, const N: usize>(
    bytes: &[u8],
    big_endian: bool,
    le: fn([u8; N]) -> T,
    be: fn([u8; N]) -> T,
) -> Vec<T> {
    let n = bytes.len() / N;
    if big_endian == cfg!(target_endian = "big") && std::mem::size_of::<T>() == N {
        // The file's byte order is the machine's: the elements are the bytes as they stand
        // (one copy; element by element this was a quarter of loading a model).
        let mut out = Vec::<T>::with_capacity(n);
        // SAFETY: `out` has room for `n` elements of `N` bytes, which the copy fills from
        // `n * N <= bytes.len()` bytes; every bit pattern is a `T` (`AnyBits`), and the source is
        // read byte-wise, so its alignment does not matter.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), n * N);
            out.set_len(n);
        }
        return out;
    }
    let convert = if big_endian { be } else { le };
    bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut element = [0u8; N];
            element.copy_from_slice(chunk);
            convert(element)
        })
        .collect()
}

/// Numbers whose every bit pattern is a value and that hold no padding: decoded by copying
/// their bytes.
///
/// # Safety
/// Only for such plain numbers.
unsafe trait AnyBits: Copy {}
// SAFETY: IEEE floats and two's-complement integers: every bit pattern is a value, no padding.
unsafe impl AnyBits for f64 {}
// SAFETY: as above.
unsafe impl AnyBits for f32 {}
// SAFETY: as above.
unsafe impl AnyBits for half::f16 {}
// SAFETY: as above.
unsafe impl AnyBits for half::bf16 {}
// SAFETY: as above.
unsafe impl AnyBits for i64 {}
// SAFETY: as above.
unsafe impl AnyBits for i32 {}
// SAFETY: as above.
unsafe impl AnyBits for i16 {}

/// Copies a strided view into contiguous bytes; `None` if an element lies outside `storage`.
fn gather(storage: &[u8], es: usize, entry: &Entry) -> Option<Vec<u8>> {
    let numel = entry.numel()?;
    let mut out = Vec::with_capacity(numel.checked_mul(es)?);
    if numel == 0 {
        return Some(out);
    }
    let Some((&inner_len, outer_shape)) = entry.shape.split_last() else {
        let start = entry.offset.checked_mul(es)?;
        out.extend_from_slice(storage.get(start..start.checked_add(es)?)?);
        return Some(out);
    };
    let (&inner_stride, outer_strides) = entry.strides.split_last()?;
    let mut index = vec![0usize; outer_shape.len()];
    loop {
        let mut base = entry.offset;
        for (&i, &stride) in index.iter().zip(outer_strides) {
            base = base.checked_add(i.checked_mul(stride)?)?;
        }
        if inner_stride == 1 {
            let start = base.checked_mul(es)?;
            let end = base.checked_add(inner_len)?.checked_mul(es)?;
            out.extend_from_slice(storage.get(start..end)?);
        } else {
            for j in 0..inner_len {
                let start = base
                    .checked_add(j.checked_mul(inner_stride)?)?
                    .checked_mul(es)?;
                out.extend_from_slice(storage.get(start..start.checked_add(es)?)?);
            }
        }
        // Advance the outer index like an odometer; done when it wraps around.
        let mut dim = outer_shape.len();
        loop {
            if dim == 0 {
                return Some(out);
            }
            dim -= 1;
            let (i, &size) = (index.get_mut(dim)?, outer_shape.get(dim)?);
            *i += 1;
            if *i < size {
                break;
            }
            *i = 0;
        }
    }
}

impl SimpleBackend for Weights {
    fn get(
        &self,
        shape: candle_core::Shape,
        name: &str,
        _init: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        if !self.contains(name) {
            return Err(candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            }
            .bt());
        }
        self.check_shape(name, shape.dims())
            .map_err(candle_core::Error::wrap)?;
        self.get_unchecked(name, dtype, device)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        if !self.contains(name) {
            return Err(candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            }
            .bt());
        }
        self.tensor(name, device)
            .map_err(candle_core::Error::wrap)?
            .to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}
