//! The seq2seq runtime that the translator and the abstractive summariser share: one loader (the
//! model's configuration and generation settings checked against the weights, a PyTorch `.bin`
//! converted once to safetensors in tolk's cache, the int8 model quantised once and cached) and
//! one batch runner, continuous: inputs sorted by length join a running search as it has room
//! (within a count and a padded-token budget, as CTranslate2 and Marian fill batches), each
//! encoded when it joins, and leave it as soon as they are finished, so the batch stays full;
//! steps run inside the thread pool's hot section. An urgent lane lets short server requests
//! overtake (see `Batcher`).
//!
//! Where the backend computes each row independently (the host backend), an input gets the same
//! tokens, bit for bit, whatever joins beside it and whenever it joins; on the candle backend
//! inputs join only an empty search, so batches follow [`BatchOptions::plan`] one after the
//! other, and padding is masked.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};

use crate::cache;
use crate::config::{GenerationConfig, ModelConfig};
use crate::error::{Error, Result};
use crate::generate::{Hypothesis, Joining, Search};
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
            let fits = fits(
                current.len(),
                longest,
                len,
                self.max_batch_size,
                self.max_batch_tokens,
            );
            if !fits {
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

/// Whether one more sequence of `len` tokens fits a batch of `count` whose longest has
/// `longest`: at most `size` sequences, and the longest times their number within `tokens`. The
/// first always fits (a sequence longer than the budget gets a batch of its own).
fn fits(count: usize, longest: usize, len: usize, size: usize, tokens: usize) -> bool {
    count == 0 || (count < size && longest.max(len.max(1)) * (count + 1) <= tokens)
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

    /// Generates for every input (token ids ending in `</s>`), batched by `batching` (see
    /// [`Batcher`]); `limits` caps each input's decoder length (see
    /// [`generate_limited`](crate::generate::generate_limited)). Returns the hypotheses of every
    /// input, in input order.
    pub(crate) fn generate(
        &self,
        ids: &[Vec<u32>],
        limits: Option<&[usize]>,
        generation: &GenerationConfig,
        batching: &BatchOptions,
    ) -> Result<Vec<Vec<Hypothesis>>> {
        self.generate_with_progress(ids, limits, generation, batching, &mut |_| {})
    }

    /// [`Seq2Seq::generate`], calling `done` with the input indices finished at each step.
    pub(crate) fn generate_with_progress(
        &self,
        ids: &[Vec<u32>],
        limits: Option<&[usize]>,
        generation: &GenerationConfig,
        batching: &BatchOptions,
        done: &mut dyn FnMut(&[usize]),
    ) -> Result<Vec<Vec<Hypothesis>>> {
        let mut batcher = Batcher::new(self, generation, *batching)?;
        for (k, source) in ids.iter().enumerate() {
            let limit = limits.and_then(|l| l.get(k)).copied().unwrap_or(usize::MAX);
            batcher.push(k, source.clone(), limit, 0, false);
        }
        let mut out: Vec<Vec<Hypothesis>> = vec![Vec::new(); ids.len()];
        while !batcher.is_idle() {
            let finished = batcher.step()?;
            let keys: Vec<usize> = finished.iter().map(|(k, _)| *k).collect();
            for (k, hyps) in finished {
                out[k] = hyps;
            }
            if !keys.is_empty() {
                done(&keys);
            }
        }
        Ok(out)
    }
}

/// An input waiting for room in a [`Batcher`].
#[derive(Debug)]
struct Waiting {
    ids: Vec<u32>,
    limit: usize,
    processor: usize,
}

/// Continuous batching over one model: inputs wait, longest first, until the running search has
/// room (at most [`BatchOptions::max_batch_size`] inputs, and the longest times their number
/// within [`BatchOptions::max_batch_tokens`]); they are encoded together and join the search
/// between two decoding steps, and each leaves as soon as it is finished. So a batch stays
/// full.
///
/// Urgent inputs (a server request of a sentence or two, typed into the page) have a lane of
/// their own: a second search of at most a quarter of the batch, which they join at the next
/// step, and which steps first while it has work, the main search waiting, but only until the
/// urgent lane has decoded as many rows as the main search has (so the urgent lane takes at most
/// about half the time while both have work). A step of a few rows costs a fraction of a full
/// batch's, so such an input takes close to its time alone instead of its length times a full
/// batch's step.
///
/// Where the backend's rows are independent ([`Seq2SeqModel::joins`]: the host backend) every
/// input gets the tokens it gets alone. Elsewhere inputs join only an empty search: batches
/// then follow [`BatchOptions::plan`] exactly, one after the other.
pub(crate) struct Batcher<'m> {
    model: &'m Seq2SeqModel,
    /// The main lane and the urgent lane.
    lanes: [Lane<'m>; 2],
    batching: BatchOptions,
    /// Ordered longest first, then by arrival.
    waiting: std::collections::BTreeMap<(std::cmp::Reverse<usize>, u64), (usize, Waiting)>,
    /// Urgent inputs, in arrival order.
    urgent: VecDeque<(usize, Waiting)>,
    arrivals: u64,
    /// Rows the urgent lane decoded since the main lane's last step.
    urgent_rows: usize,
}

/// One search of a [`Batcher`], and the source length of each of its inputs, by key.
struct Lane<'m> {
    search: Search<'m>,
    running: std::collections::HashMap<usize, usize>,
}

impl std::fmt::Debug for Batcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("waiting", &self.waiting.len())
            .field("urgent", &self.urgent.len())
            .field("running", &self.lanes[0].running.len())
            .field("running_urgent", &self.lanes[1].running.len())
            .finish_non_exhaustive()
    }
}

impl<'m> Batcher<'m> {
    /// A batcher generating with `generation` (greedy or beam search by its `num_beams`).
    pub(crate) fn new(
        runtime: &'m Seq2Seq,
        generation: &GenerationConfig,
        batching: BatchOptions,
    ) -> Result<Self> {
        let lane = || -> Result<Lane<'m>> {
            Ok(Lane {
                search: Search::new(&runtime.model, generation, generation.num_beams > 1)?,
                running: Default::default(),
            })
        };
        Ok(Batcher {
            model: &runtime.model,
            lanes: [lane()?, lane()?],
            batching,
            waiting: Default::default(),
            urgent: VecDeque::new(),
            arrivals: 0,
            urgent_rows: 0,
        })
    }

    /// Adds the logits processors of `cfg` for [`Batcher::push`] (see
    /// [`Search::add_processor`]).
    pub(crate) fn add_processor(&mut self, cfg: &GenerationConfig) -> usize {
        let [main, urgent] = &mut self.lanes;
        urgent.search.add_processor(cfg);
        main.search.add_processor(cfg)
    }

    /// The longest decoder sequence the settings allow.
    pub(crate) fn max_length(&self) -> usize {
        self.lanes[0].search.max_length()
    }

    /// Queues an input (token ids ending in `</s>`) under `key`, with its maximum decoder
    /// length and logits processors (0: the generation settings'); `urgent`: in the urgent lane.
    pub(crate) fn push(
        &mut self,
        key: usize,
        ids: Vec<u32>,
        limit: usize,
        processor: usize,
        urgent: bool,
    ) {
        let w = Waiting {
            ids,
            limit,
            processor,
        };
        if urgent {
            self.urgent.push_back((key, w));
            return;
        }
        let at = (std::cmp::Reverse(w.ids.len()), self.arrivals);
        self.arrivals += 1;
        self.waiting.insert(at, (key, w));
    }

    /// Whether nothing is queued or running.
    pub(crate) fn is_idle(&self) -> bool {
        self.waiting.is_empty()
            && self.urgent.is_empty()
            && self.lanes.iter().all(|l| l.running.is_empty())
    }

    /// Inputs that would join the main lane at the next step if queued now.
    pub(crate) fn room(&self) -> usize {
        let main = &self.lanes[0];
        if !main.search.can_join() {
            return 0;
        }
        self.batching
            .max_batch_size
            .saturating_sub(main.running.len() + self.waiting.len())
    }

    /// Admits what fits into each lane, then runs one decoding step of one lane (the urgent one
    /// while it has inputs, see [`Batcher`]) inside the thread pool's hot section; returns the
    /// inputs finished, with their hypotheses.
    pub(crate) fn step(&mut self) -> Result<Vec<(usize, Vec<Hypothesis>)>> {
        let size = self.batching.max_batch_size;
        let tokens = self.batching.max_batch_tokens;
        let reserve = (size / 4).max(1);
        let main = admissible(&mut self.waiting, &self.lanes[0], size, tokens);
        let urgent = admissible(
            &mut self.urgent,
            &self.lanes[1],
            reserve,
            (tokens / size.max(1) * reserve).max(1),
        );
        let main_busy = !self.lanes[0].running.is_empty() || !main.is_empty();
        let urgent_busy = !self.lanes[1].running.is_empty() || !urgent.is_empty();
        let main_rows = self.lanes[0].search.rows().max(1);
        let lane = if urgent_busy && (!main_busy || self.urgent_rows < main_rows) {
            if main_busy {
                self.urgent_rows += self.lanes[1].search.rows().max(urgent.len());
            }
            1
        } else {
            self.urgent_rows = 0;
            0
        };
        let model = self.model;
        let [l0, l1] = &mut self.lanes;
        crate::kernels::pool::hot(|| -> Result<Vec<(usize, Vec<Hypothesis>)>> {
            for (l, admitted) in [(&mut *l0, main), (&mut *l1, urgent)] {
                if !admitted.is_empty() {
                    l.admit(model, admitted)?;
                }
            }
            let l = if lane == 1 { l1 } else { l0 };
            let finished = l.search.step()?;
            for (key, _) in &finished {
                l.running.remove(key);
            }
            Ok(finished)
        })
    }
}

/// A queue of waiting inputs, in the order they should join.
trait Queue {
    fn first_n(&self, fits: &mut dyn FnMut(usize) -> bool) -> usize;
    fn take(&mut self, n: usize) -> Vec<(usize, Waiting)>;
    fn is_empty(&self) -> bool;
}

impl Queue for std::collections::BTreeMap<(std::cmp::Reverse<usize>, u64), (usize, Waiting)> {
    fn first_n(&self, fits: &mut dyn FnMut(usize) -> bool) -> usize {
        self.values().take_while(|(_, w)| fits(w.ids.len())).count()
    }
    fn take(&mut self, n: usize) -> Vec<(usize, Waiting)> {
        (0..n)
            .filter_map(|_| self.pop_first().map(|(_, v)| v))
            .collect()
    }
    fn is_empty(&self) -> bool {
        std::collections::BTreeMap::is_empty(self)
    }
}

impl Queue for VecDeque<(usize, Waiting)> {
    fn first_n(&self, fits: &mut dyn FnMut(usize) -> bool) -> usize {
        self.iter().take_while(|(_, w)| fits(w.ids.len())).count()
    }
    fn take(&mut self, n: usize) -> Vec<(usize, Waiting)> {
        self.drain(..n.min(self.len())).collect()
    }
    fn is_empty(&self) -> bool {
        VecDeque::is_empty(self)
    }
}

/// The first inputs of `queue` that fit into `lane` now: at most `size` inputs in the lane, the
/// longest times their number within `tokens` (the first one always, into an empty lane).
fn admissible(
    queue: &mut dyn Queue,
    lane: &Lane<'_>,
    size: usize,
    tokens: usize,
) -> Vec<(usize, Waiting)> {
    if queue.is_empty() || !lane.search.can_join() {
        return Vec::new();
    }
    let mut count = lane.running.len();
    let mut longest = lane.running.values().copied().max().unwrap_or(0);
    let n = queue.first_n(&mut |len| {
        let ok = fits(count, longest, len, size, tokens);
        if ok {
            count += 1;
            longest = longest.max(len.max(1));
        }
        ok
    });
    queue.take(n)
}

impl Lane<'_> {
    fn admit(&mut self, model: &Seq2SeqModel, admitted: Vec<(usize, Waiting)>) -> Result<()> {
        let started = Instant::now();
        let sources: Vec<Vec<u32>> = admitted.iter().map(|(_, w)| w.ids.clone()).collect();
        let joining: Vec<Joining> = admitted
            .iter()
            .map(|(key, w)| Joining {
                key: *key,
                limit: w.limit,
                processor: w.processor,
            })
            .collect();
        let encoded = model.encode(&sources)?;
        self.search.add(&encoded, &joining)?;
        for (key, w) in &admitted {
            self.running.insert(*key, w.ids.len());
        }
        tracing::debug!(
            sentences = admitted.len(),
            source_tokens = sources.iter().map(Vec::len).sum::<usize>(),
            running = self.running.len(),
            "encoded in {:.3} s and joined the search",
            started.elapsed().as_secs_f64()
        );
        Ok(())
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
