//! Where the model's parameters come from while it is built: a candle `VarBuilder` over a weight
//! file (optionally quantising matrices to int8 as they are read), or tolk's own cache of an
//! already quantised model. The same build code runs over both, and a recording wrapper writes the
//! parameters it was given to a new cache file.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use safetensors::tensor::{Dtype, View};

use crate::error::{Error, Result};
use crate::kernels::f32::PackedF32;
use crate::kernels::int8::QMatrix;
use crate::kernels::int8::{Activations, Packed};
use crate::weights::Weights;

/// A weight matrix: full precision (a candle tensor, `out x in`), f32 packed for the host
/// backend, or int8.
#[derive(Debug, Clone)]
pub(crate) enum Matrix {
    /// A candle tensor in the model's dtype.
    Float(Tensor),
    /// f32 packed for the host backend's kernel as it was read, the float copy freed at once (so
    /// that loading holds the model once plus one matrix, not the model and its packed copy).
    Packed(Arc<PackedF32>),
    /// int8, CPU only.
    Int8(Arc<QMatrix>),
}

impl Matrix {
    /// `(outputs, inputs)`.
    fn dims(&self) -> (usize, usize) {
        match self {
            Matrix::Float(t) => match t.dims() {
                &[rows, cols] => (rows, cols),
                _ => (0, 0),
            },
            Matrix::Packed(p) => (p.rows(), p.cols()),
            Matrix::Int8(q) => (q.rows(), q.cols()),
        }
    }
}

/// The matrix `name` already read, if it was; an error if it was read with another shape (a
/// tied weight asked for as two shapes: the same name must give the same matrix).
fn cached(
    matrices: &RefCell<HashMap<String, Matrix>>,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Option<Matrix>> {
    match matrices.borrow().get(name) {
        Some(m) if m.dims() != (rows, cols) => {
            let (r, c) = m.dims();
            Err(Error::Internal(format!(
                "weight `{name}` was read as {r}x{c} and is asked for as {rows}x{cols}"
            )))
        }
        found => Ok(found.cloned()),
    }
}

/// Parameter access while building a model.
pub(crate) trait Store {
    fn contains(&self, name: &str) -> bool;
    /// A parameter in the model's dtype, checked against `shape`.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor>;
    /// A weight matrix (`rows` outputs x `cols` inputs); the same name gives the same matrix.
    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix>;
    fn device(&self) -> &Device;
    fn dtype(&self) -> DType;
}

/// What [`VbStore`] makes of each weight matrix as it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// A candle tensor (the candle backend).
    Tensor,
    /// f32 packed for the host backend ([`Matrix::Packed`]).
    Packed,
    /// int8, its products quantising activations as this says.
    Int8(Activations),
}

/// Parameters from a `VarBuilder`, each matrix made into `form` as it is read.
pub(crate) struct VbStore<'a> {
    pub vb: VarBuilder<'a>,
    pub form: Form,
    pub matrices: RefCell<HashMap<String, Matrix>>,
    /// The weights under `vb`, when packed matrices may be read from their bytes directly.
    raw: Option<Arc<Weights>>,
}

impl<'a> VbStore<'a> {
    pub fn new(vb: VarBuilder<'a>, form: Form) -> Self {
        VbStore {
            vb,
            form,
            matrices: RefCell::new(HashMap::new()),
            raw: None,
        }
    }

    /// A store over `weights` (f32 on the CPU) whose [`Form::Packed`] matrices are packed
    /// straight from the file's bytes when they are stored as float32 (no float tensor in
    /// between: one copy of each matrix, not two), the rest read through a `VarBuilder`.
    pub fn packing(weights: Weights) -> VbStore<'static> {
        let weights = Arc::new(weights);
        VbStore {
            vb: Weights::shared_var_builder(&weights, DType::F32, &Device::Cpu),
            form: Form::Packed,
            matrices: RefCell::new(HashMap::new()),
            raw: Some(weights),
        }
    }
}

impl Store for VbStore<'_> {
    fn contains(&self, name: &str) -> bool {
        self.vb.contains_tensor(name)
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        Ok(self.vb.get(shape, name)?)
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        if let Some(m) = cached(&self.matrices, name, rows, cols)? {
            return Ok(m);
        }
        if let (Form::Packed, Some(w)) = (self.form, &self.raw) {
            let packed = w
                .with_f32_bytes(name, &[rows, cols], |b| {
                    PackedF32::pack_le_bytes(b, rows, cols)
                })?
                .transpose()?;
            if let Some(p) = packed {
                let m = Matrix::Packed(Arc::new(p));
                self.matrices
                    .borrow_mut()
                    .insert(name.to_string(), m.clone());
                return Ok(m);
            }
        }
        let t = self.vb.get((rows, cols), name)?;
        let m = match self.form {
            Form::Int8(activations) => {
                let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let q = QMatrix::quantize(&data, rows, cols).with_activations(activations);
                Matrix::Int8(Arc::new(q))
            }
            Form::Packed => Matrix::Packed(Arc::new(PackedF32::from_tensor(&t)?)),
            Form::Tensor => Matrix::Float(t),
        };
        self.matrices
            .borrow_mut()
            .insert(name.to_string(), m.clone());
        Ok(m)
    }

    fn device(&self) -> &Device {
        self.vb.device()
    }

    fn dtype(&self) -> DType {
        self.vb.dtype()
    }
}

/// What a recording store saw, ready to be written as a cache file.
enum Entry {
    Float(Vec<f32>, Vec<usize>),
    Int8(Arc<QMatrix>),
}

/// Wraps a store and remembers every parameter handed out, to save them with [`Recorder::save`].
pub(crate) struct Recorder<S> {
    pub inner: S,
    entries: RefCell<BTreeMap<String, Entry>>,
}

impl<S: Store> Recorder<S> {
    pub fn new(inner: S) -> Self {
        Recorder {
            inner,
            entries: RefCell::new(BTreeMap::new()),
        }
    }

    /// Writes the recorded parameters to `path` (all or nothing: [`crate::fsutil::write_atomic_with`]).
    pub fn save(&self, path: &Path, metadata: HashMap<String, String>) -> Result<()> {
        let entries = self.entries.borrow();
        let mut views: Vec<(String, RawView)> = Vec::new();
        for (name, e) in entries.iter() {
            match e {
                Entry::Float(v, shape) => views.push((
                    name.clone(),
                    RawView {
                        dtype: Dtype::F32,
                        shape: shape.clone(),
                        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    },
                )),
                Entry::Int8(q) => {
                    let (packed, scales) = q.parts();
                    views.push((
                        format!("{name}.int8"),
                        RawView {
                            dtype: Dtype::I8,
                            shape: vec![packed.len()],
                            data: packed.iter().map(|&b| b as u8).collect(),
                        },
                    ));
                    views.push((
                        format!("{name}.scale"),
                        RawView {
                            dtype: Dtype::F32,
                            shape: vec![scales.len()],
                            data: scales.iter().flat_map(|x| x.to_le_bytes()).collect(),
                        },
                    ));
                    views.push((
                        format!("{name}.shape"),
                        RawView {
                            dtype: Dtype::I64,
                            shape: vec![2],
                            data: [q.rows() as i64, q.cols() as i64]
                                .iter()
                                .flat_map(|x| x.to_le_bytes())
                                .collect(),
                        },
                    ));
                }
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        crate::fsutil::write_atomic_with(path, |tmp| {
            safetensors::tensor::serialize_to_file(views, Some(metadata), tmp).map_err(|e| {
                Error::model_file(tmp, format!("cannot write the quantised model: {e}"))
            })
        })
    }
}

impl<S: Store> Store for Recorder<S> {
    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.inner.tensor(name, shape)?;
        let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        self.entries
            .borrow_mut()
            .insert(name.to_string(), Entry::Float(v, shape.to_vec()));
        Ok(t)
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        let m = self.inner.matrix(name, rows, cols)?;
        let entry = match &m {
            Matrix::Int8(q) => Entry::Int8(q.clone()),
            Matrix::Float(t) => Entry::Float(
                t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
                vec![rows, cols],
            ),
            Matrix::Packed(_) => {
                return Err(Error::Internal(
                    "packed f32 weights given to the int8 cache recorder".into(),
                ))
            }
        };
        self.entries.borrow_mut().insert(name.to_string(), entry);
        Ok(m)
    }

    fn device(&self) -> &Device {
        self.inner.device()
    }

    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
}

struct RawView {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for RawView {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The whole file in anonymous memory asking for 2 MiB pages: decoding streams all the weights
/// at every step, and with 4 KiB pages (a mapped file's) that is one TLB miss per 4 KiB.
/// Read, not mapped and copied, so that the file's pages never count in the process's memory.
fn read_to_huge_pages(path: &Path) -> Result<memmap2::Mmap> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len() as usize;
    let mut map = memmap2::MmapMut::map_anon(len.max(1)).map_err(|e| Error::io(path, e))?;
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    file.read_exact(&mut map[..len])
        .map_err(|e| Error::io(path, e))?;
    map.make_read_only().map_err(|e| Error::io(path, e))
}

/// A quantised model written by [`Recorder::save`], read back (f32 activations, CPU).
pub(crate) struct CacheStore {
    path: PathBuf,
    map: Arc<memmap2::Mmap>,
    /// name -> (dtype, shape, byte range in `map`)
    index: HashMap<String, (Dtype, Vec<usize>, std::ops::Range<usize>)>,
    device: Device,
    matrices: RefCell<HashMap<String, Matrix>>,
    activations: Activations,
}

impl CacheStore {
    /// The cache file at `path`, its int8 products quantising activations as `activations` says
    /// (the file holds weights only).
    pub fn open(path: &Path, activations: Activations) -> Result<Self> {
        let map = read_to_huge_pages(path)?;
        let st = safetensors::SafeTensors::deserialize(&map)
            .map_err(|e| Error::model_file(path, format!("damaged quantised cache: {e}")))?;
        let base = map.as_ptr() as usize;
        let index = st
            .tensors()
            .into_iter()
            .map(|(name, v)| {
                let start = v.data().as_ptr() as usize - base;
                (
                    name,
                    (v.dtype(), v.shape().to_vec(), start..start + v.data().len()),
                )
            })
            .collect();
        drop(st);
        Ok(CacheStore {
            path: path.to_path_buf(),
            index,
            map: Arc::new(map),
            device: Device::Cpu,
            matrices: RefCell::new(HashMap::new()),
            activations,
        })
    }

    fn view(&self, name: &str) -> Result<(Dtype, Vec<usize>, &[u8])> {
        let (dtype, shape, range) = self
            .index
            .get(name)
            .ok_or_else(|| Error::model_file(&self.path, format!("tensor `{name}` is missing")))?;
        Ok((*dtype, shape.clone(), &self.map[range.clone()]))
    }

    fn f32s(&self, name: &str) -> Result<Vec<f32>> {
        let (dtype, _, bytes) = self.view(name)?;
        if dtype != Dtype::F32 {
            return Err(Error::model_file(
                &self.path,
                format!("`{name}` is not f32"),
            ));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

impl Store for CacheStore {
    fn contains(&self, name: &str) -> bool {
        self.view(name).is_ok() || self.view(&format!("{name}.int8")).is_ok()
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let v = self.f32s(name)?;
        if v.len() != shape.iter().product::<usize>() {
            return Err(Error::model_file(
                &self.path,
                format!("`{name}` does not have shape {shape:?}"),
            ));
        }
        Ok(Tensor::from_vec(v, shape, &self.device)?)
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        if let Some(m) = cached(&self.matrices, name, rows, cols)? {
            return Ok(m);
        }
        let m = if self.view(&format!("{name}.int8")).is_ok() {
            let key = format!("{name}.int8");
            let range = self
                .index
                .get(&key)
                .map(|(_, _, r)| r.clone())
                .unwrap_or_default();
            let scales = self.f32s(&format!("{name}.scale"))?;
            let packed = Packed::Mapped {
                map: self.map.clone(),
                range,
            };
            let q = QMatrix::from_parts(rows, cols, packed, scales).ok_or_else(|| {
                Error::model_file(
                    &self.path,
                    format!("`{name}` does not have shape [{rows}, {cols}]"),
                )
            })?;
            Matrix::Int8(Arc::new(q.with_activations(self.activations)))
        } else {
            Matrix::Float(self.tensor(name, &[rows, cols])?)
        };
        self.matrices
            .borrow_mut()
            .insert(name.to_string(), m.clone());
        Ok(m)
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        DType::F32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(form: Form) -> VbStore<'static> {
        let w: Vec<f32> = (0..70 * 5).map(|i| i as f32 * 0.25 - 3.0).collect();
        let t = Tensor::from_vec(w, (70, 5), &Device::Cpu).unwrap();
        let tensors = [("m".to_string(), t)].into_iter().collect();
        VbStore::new(
            VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
            form,
        )
    }

    #[test]
    fn each_form_gives_its_kind_of_matrix_with_the_same_values() {
        let Matrix::Float(t) = store(Form::Tensor).matrix("m", 70, 5).unwrap() else {
            panic!("Form::Tensor gives a tensor");
        };
        let want = t.to_vec2::<f32>().unwrap();
        let packed_store = store(Form::Packed);
        let Matrix::Packed(p) = packed_store.matrix("m", 70, 5).unwrap() else {
            panic!("Form::Packed gives packed weights");
        };
        let mut row = vec![0f32; 5];
        for (j, w) in want.iter().enumerate() {
            p.row(j, &mut row).unwrap();
            assert_eq!(&row, w, "row {j}");
        }
        // The same name gives the same packed copy (tied embeddings are packed once).
        let Matrix::Packed(again) = packed_store.matrix("m", 70, 5).unwrap() else {
            panic!("Form::Packed gives packed weights");
        };
        assert!(Arc::ptr_eq(&p, &again));
        let int8 = store(Form::Int8(Activations::Int16));
        assert!(matches!(int8.matrix("m", 70, 5).unwrap(), Matrix::Int8(_)));
        // A wrong shape is an error, not a panic.
        assert!(store(Form::Packed).matrix("m", 5, 70).is_err());
    }

    #[test]
    fn packing_from_the_file_gives_the_values_the_tensor_path_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let w: Vec<f32> = (0..70 * 5).map(|i| i as f32 * 0.25 - 3.0).collect();
        let m = Tensor::from_vec(w, (70, 5), &Device::Cpu).unwrap();
        // Stored as f16: packed from a converted tensor instead (the bytes are not float32).
        let h = m.to_dtype(DType::F16).unwrap();
        let b = Tensor::arange(0f32, 5.0, &Device::Cpu).unwrap();
        let tensors: HashMap<String, Tensor> = [("m", &m), ("h", &h), ("b", &b)]
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        candle_core::safetensors::save(&tensors, &path).unwrap();
        let store = VbStore::packing(Weights::open(&path).unwrap());
        for (name, want) in [("m", &m), ("h", &h)] {
            let want = want.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap();
            let Matrix::Packed(p) = store.matrix(name, 70, 5).unwrap() else {
                panic!("a packing store gives packed weights");
            };
            let mut row = vec![0f32; 5];
            for (j, w) in want.iter().enumerate() {
                p.row(j, &mut row).unwrap();
                assert_eq!(&row, w, "{name} row {j}");
            }
            let Matrix::Packed(again) = store.matrix(name, 70, 5).unwrap() else {
                panic!("a packing store gives packed weights");
            };
            assert!(Arc::ptr_eq(&p, &again), "{name} is packed once");
        }
        // Vectors still come through the VarBuilder; a wrong shape or name is an error.
        assert_eq!(
            store.tensor("b", &[5]).unwrap().to_vec1::<f32>().unwrap(),
            [0.0, 1.0, 2.0, 3.0, 4.0]
        );
        let fresh = VbStore::packing(Weights::open(&path).unwrap());
        let err = fresh.matrix("m", 5, 70).unwrap_err().to_string();
        assert!(err.contains("[70, 5]"), "{err}");
        assert!(fresh.matrix("missing", 70, 5).is_err());
        // A matrix already read, asked for with another shape, is an error too.
        let err = store.matrix("m", 5, 70).unwrap_err().to_string();
        assert!(err.contains("70x5") && err.contains("5x70"), "{err}");
    }
}
