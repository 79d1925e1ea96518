//! The seq2seq runtime that the translator and the abstractive summariser share: one loader (the
//! model's configuration and generation settings checked against the weights, a PyTorch `.bin`
//! converted once to safetensors in tolk's cache, the int8 model quantised once and cached) and
//! one batch runner (length-sorted, token-budgeted batches, each encoded once and searched inside
//! the thread pool's hot section; results in input order).
//!
//! Batching follows CTranslate2 and Marian: inputs are sorted by token length so that a batch
//! holds inputs of similar length (little padding), batches are filled up to a count and a
//! padded-token budget, and each batch is encoded once and decoded with the cross-attention keys
//! and values computed once. Because padding is masked, an input gets the same tokens in any
//! batch.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};

use crate::cache;
use crate::config::{GenerationConfig, ModelConfig};
use crate::error::{Error, Result};
use crate::generate::{generate_limited, Hypothesis};
use crate::model::{BackendChoice, Placement, Quantization, Seq2SeqModel};
use crate::source::ModelFiles;
use crate::weights::Weights;

/// How sentences are grouped into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Most sentences in one batch. Default 32.
    pub max_batch_size: usize,
    /// Most padded source tokens in one batch (sentences x longest sentence). Default 4096.
    pub max_batch_tokens: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_batch_size: 32,
            max_batch_tokens: 4096,
        }
    }
}

impl BatchOptions {
    /// Sets the most sentences per batch (at least 1).
    #[must_use]
    pub fn with_max_batch_size(mut self, n: usize) -> Self {
        self.max_batch_size = n.max(1);
        self
    }

    /// Sets the padded-token budget per batch (at least 1; a longer sentence still gets a batch of
    /// its own).
    #[must_use]
    pub fn with_max_batch_tokens(mut self, n: usize) -> Self {
        self.max_batch_tokens = n.max(1);
        self
    }

    /// Groups sequences of the given lengths into batches: indices sorted by length (longest
    /// first, ties in input order), cut whenever the count or the padded-token budget would be
    /// exceeded.
    pub fn plan(&self, lengths: &[usize]) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
        let mut batches = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        let mut longest = 0;
        for i in order {
            let len = lengths[i].max(1);
            let new_longest = longest.max(len);
            let fits = current.len() < self.max_batch_size
                && new_longest * (current.len() + 1) <= self.max_batch_tokens;
            if !current.is_empty() && !fits {
                batches.push(std::mem::take(&mut current));
                longest = 0;
            }
            longest = longest.max(len);
            current.push(i);
        }
        if !current.is_empty() {
            batches.push(current);
        }
        batches
    }
}

/// Where and in what precision the model runs.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Device. Default CPU.
    pub device: Device,
    /// Weight and activation dtype. Default f32 (the exact path; f16/bf16 are faster on GPUs).
    pub dtype: DType,
    /// Quantise the weights at load time. Default none (exact). [`Quantization::Int8`] and
    /// [`Quantization::Int8Fast`] are CPU only, and their quantised model is cached (see [`crate::cache`]) so the next load is fast.
    pub quantize: Option<Quantization>,
    /// Keep derived files (the int8-quantised model) in tolk's cache directory
    /// ([`crate::cache::cache_dir`]) to load faster next time. Default true.
    pub use_cache: bool,
    /// Where the cache is. Default: [`crate::cache::cache_dir`].
    pub cache_dir: Option<std::path::PathBuf>,
    /// Which backend runs the model. Default: [`BackendChoice::Auto`] (the host backend on the
    /// CPU in float32 and int8, candle on GPUs and in half precision).
    pub backend: BackendChoice,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: Device::Cpu,
            dtype: DType::F32,
            quantize: None,
            use_cache: true,
            cache_dir: None,
            backend: BackendChoice::Auto,
        }
    }
}

impl LoadOptions {
    /// Sets the device.
    #[must_use]
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Sets the dtype.
    #[must_use]
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Sets whether derived files are cached (see [`LoadOptions::use_cache`]).
    #[must_use]
    pub fn with_cache(mut self, on: bool) -> Self {
        self.use_cache = on;
        self
    }

    /// Sets the cache directory (and turns the cache on).
    #[must_use]
    pub fn with_cache_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.use_cache = true;
        self.cache_dir = Some(dir.into());
        self
    }

    /// Sets the load-time quantisation.
    #[must_use]
    pub fn with_quantize(mut self, q: Option<Quantization>) -> Self {
        self.quantize = q;
        self
    }

    /// Sets the backend (see [`LoadOptions::backend`]).
    #[must_use]
    pub fn with_backend(mut self, backend: BackendChoice) -> Self {
        self.backend = backend;
        self
    }

    /// A file derived from the weights at `weights`, of `kind`, in tolk's cache directory (none
    /// when the cache is off or has no place).
    fn derived(&self, weights: &Path, folder: &str, kind: &str) -> Option<std::path::PathBuf> {
        self.cache_dir
            .clone()
            .or_else(cache::cache_dir)
            .filter(|_| self.use_cache)
            .map(|d| d.join(folder).join(cache::derived_name(weights, kind)))
    }
}

/// A loaded model with its generation settings: what the translator and the summariser run.
#[derive(Debug)]
pub(crate) struct Seq2Seq {
    pub model: Seq2SeqModel,
    pub generation: GenerationConfig,
}

impl Seq2Seq {
    /// Loads the model of `files` as `options` say. `generation` gives the model's generation
    /// settings from its configuration (the translator takes the model's own; the summariser
    /// adds its task parameters); they are checked against the model, errors naming the file
    /// they came from.
    #[tracing::instrument(name = "load", skip_all, fields(model = %files.dir.display()))]
    pub(crate) fn load(
        files: &ModelFiles,
        options: &LoadOptions,
        generation: impl FnOnce(&ModelConfig) -> Result<GenerationConfig>,
    ) -> Result<Self> {
        let started = Instant::now();
        let config = ModelConfig::from_file(&files.config)?;
        let generation = generation(&config)?;
        let placement = Placement {
            device: options.device.clone(),
            dtype: options.dtype,
            quantize: options.quantize,
            int8_cache: match options.quantize {
                // Both kinds share the file: it holds the weights, not how activations are
                // quantised.
                Some(Quantization::Int8 | Quantization::Int8Fast) => {
                    options.derived(&files.weights, "quantized", "int8-v1")
                }
                None => None,
            },
            backend: options.backend,
        };
        let model = match options.quantize {
            // The int8 model is read from its cache when it is there: the weights are opened
            // only to quantise them.
            Some(Quantization::Int8 | Quantization::Int8Fast) => {
                Seq2SeqModel::load(config, || Weights::open(&files.weights), &placement)?
            }
            None => {
                Seq2SeqModel::load(config, || open_weights(&files.weights, options), &placement)?
            }
        };
        generation
            .validate(
                model.config().decoder_vocab_size,
                model.max_target_positions(),
            )
            .map_err(|e| match e {
                Error::Option { name, message } => Error::config(
                    files.generation_config.as_deref().unwrap_or(&files.config),
                    name,
                    message,
                ),
                other => other,
            })?;
        tracing::info!(
            backend = %model.backend_name(),
            dtype = ?model.dtype(),
            quantization = ?model.quantization(),
            int8_from_cache = model.loaded_from_cache(),
            "model loaded from {} in {:.2} s",
            files.weights.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(Seq2Seq { model, generation })
    }

    /// Generates for every input (token ids ending in `</s>`), in batches planned by `batching`,
    /// each encoded once and searched inside the thread pool's hot section; `limits` caps each
    /// input's decoder length (see [`generate_limited`]). Returns the hypotheses of every input,
    /// in input order.
    pub(crate) fn generate(
        &self,
        ids: &[Vec<u32>],
        limits: Option<&[usize]>,
        generation: &GenerationConfig,
        batching: &BatchOptions,
    ) -> Result<Vec<Vec<Hypothesis>>> {
        self.generate_with_progress(ids, limits, generation, batching, &mut |_| {})
    }

    /// [`Seq2Seq::generate`], calling `batch_done` with the input indices of each batch once
    /// its hypotheses are ready.
    pub(crate) fn generate_with_progress(
        &self,
        ids: &[Vec<u32>],
        limits: Option<&[usize]>,
        generation: &GenerationConfig,
        batching: &BatchOptions,
        batch_done: &mut dyn FnMut(&[usize]),
    ) -> Result<Vec<Vec<Hypothesis>>> {
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let mut out: Vec<Vec<Hypothesis>> = vec![Vec::new(); ids.len()];
        let plan = batching.plan(&lengths);
        let batches = plan.len();
        for (n, batch) in plan.into_iter().enumerate() {
            let started = Instant::now();
            let longest = batch.iter().map(|&k| lengths[k]).max().unwrap_or(0);
            let sources: Vec<Vec<u32>> = batch.iter().map(|&k| ids[k].clone()).collect();
            let batch_limits: Option<Vec<usize>> =
                limits.map(|l| batch.iter().map(|&k| l[k]).collect());
            let hyps = crate::kernels::pool::hot(|| {
                let encoded = self.model.encode(&sources)?;
                generate_limited(&self.model, &encoded, generation, batch_limits.as_deref())
            })?;
            for (&k, hyps) in batch.iter().zip(hyps) {
                out[k] = hyps;
            }
            tracing::debug!(
                sentences = batch.len(),
                padded_tokens = longest * batch.len(),
                generated_tokens = batch
                    .iter()
                    .map(|&k| out[k].first().map_or(0, |h| h.ids.len()))
                    .sum::<usize>(),
                beams = generation.num_beams,
                "batch {}/{batches} in {:.3} s",
                n + 1,
                started.elapsed().as_secs_f64()
            );
            batch_done(&batch);
        }
        Ok(out)
    }
}

/// Opens a weight file; a PyTorch `.bin` is converted once to safetensors in tolk's cache
/// (when the cache is on), so that later loads are memory-mapped and fast. A failure to write the
/// cache only costs time.
fn open_weights(path: &Path, options: &LoadOptions) -> Result<Weights> {
    let cache = options.derived(path, "converted", "safetensors-v1");
    if let Some(cached) = &cache {
        if cached.is_file() {
            match Weights::open(cached) {
                Ok(w) => {
                    tracing::debug!("converted weights from the cache: {}", cached.display());
                    return Ok(w);
                }
                Err(e) => tracing::info!("converting again: the cached copy is unreadable ({e})"),
            }
        }
    }
    let weights = Weights::open(path)?;
    if weights.format() == crate::weights::WeightsFormat::Safetensors {
        return Ok(weights);
    }
    if let Some(cached) = &cache {
        if let Some(dir) = cached.parent() {
            let started = Instant::now();
            let saved = std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(dir, e))
                .and_then(|()| weights.save_safetensors(cached));
            match saved {
                Ok(()) => {
                    tracing::info!(
                        "converted {} to safetensors in {:.2} s: {}",
                        path.display(),
                        started.elapsed().as_secs_f64(),
                        cached.display()
                    );
                    if let Ok(w) = Weights::open(cached) {
                        return Ok(w);
                    }
                }
                // Only costs time: the next load converts again.
                Err(e) => tracing::info!("the converted weights cannot be cached ({e})"),
            }
        }
    } else {
        tracing::debug!("no cache: {} is read without conversion", path.display());
    }
    Ok(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_sorts_by_length_and_respects_budgets() {
        let b = BatchOptions::default()
            .with_max_batch_size(2)
            .with_max_batch_tokens(100);
        assert_eq!(b.plan(&[3, 10, 5, 10]), vec![vec![1, 3], vec![2, 0]]);
        let b = BatchOptions::default()
            .with_max_batch_size(10)
            .with_max_batch_tokens(20);
        // 10 + 10 = 20 fits; adding the 5 would make 3 x 10 = 30.
        assert_eq!(b.plan(&[3, 10, 5, 10]), vec![vec![1, 3], vec![2, 0]]);
        // A sentence longer than the budget still gets a batch.
        let b = BatchOptions::default().with_max_batch_tokens(4);
        assert_eq!(b.plan(&[9, 1]), vec![vec![0], vec![1]]);
        assert!(b.plan(&[]).is_empty());
        // Every index exactly once.
        let lens: Vec<usize> = (0..50).map(|i| (i * 7919) % 37).collect();
        let mut all: Vec<usize> = BatchOptions::default().plan(&lens).concat();
        all.sort();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
    }
}
