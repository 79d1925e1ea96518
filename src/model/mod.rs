//! The encoder-decoder transformer behind MarianMT and BART: one model, two backends.
//!
//! Paper: Vaswani et al., "Attention Is All You Need" (2017); Marian: Junczys-Dowmunt et al.
//! (2018); BART: Lewis et al. (2019). Reference implementation matched here: Hugging Face
//! transformers' `modeling_marian.py` and `modeling_bart.py` (post-norm layers, sinusoidal or
//! learned positions, `final_logits_bias`).
//!
//! - The parameters are read once into structs that mirror the checkpoint (`checkpoint.rs`:
//!   `encoder.layers.N.self_attn.q_proj`, `decoder.layers.N.encoder_attn`, ...), from a weight
//!   file, or from tolk's cache of an int8-quantised model (`store.rs`).
//! - The compute sits behind a crate-private backend, chosen once at load: the **host** backend
//!   (`host/`: CPU, float32 and int8, plain buffers and tolk's own kernels; the default) or the
//!   **candle** backend (`candle.rs`: candle's tensor operations, for GPUs and half precision).
//!   Both run the same search, and both are checked against transformers' outputs by the parity
//!   tests.
//! - The model holds no decoding state: [`Seq2SeqModel::encode`] returns an [`EncoderOutput`],
//!   [`Seq2SeqModel::start_decoding`] turns it into a [`DecoderState`] (cross-attention keys and
//!   values computed once, here), and [`DecoderState::step`] advances it; the search that owns the
//!   state reorders beams and drops finished sources. One loaded model serves many threads.
//!
//! Rows of the decoder are laid out source-major (`source * beams + beam`), and beams share their
//! source's cross-attention keys and values: nothing is copied per beam.
//!
//! Why not `candle-transformers`' Marian, although the engine is built on candle: it has no
//! padding masks (a batch of sentences of different lengths gives different results than each
//! sentence alone), keeps its key-value cache inside the layers behind `&mut self` (so a model
//! cannot serve two generations at once, and beams cannot be reordered or finished sources
//! dropped), recomputes the cross-attention keys and values at every step, and has no BART for the
//! abstractive summariser. tolk needs all of these, and a host backend besides, for speed.

mod candle;
mod checkpoint;
mod host;
mod layers;
mod store;
mod weights_check;

use std::path::PathBuf;

use candle_core::{DType, Device};

pub use checkpoint::sinusoidal_positions;
pub use weights_check::expected_tensors;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::kernels::int8::Activations;
use crate::weights::Weights;
use checkpoint::{Checkpoint, Vb};
use store::{CacheStore, Form, Recorder, VbStore};

/// Quantisation applied to the weight matrices at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantization {
    /// int8 weights (per output row) in every linear layer and the output projection, whose
    /// products quantise each activation row in 8 bits and then its rounding error in 8 more
    /// (about 15 bits, two integer products; with VNNI the output projection gives that
    /// precision to the logits near each row's best and 8-bit products elsewhere); embeddings
    /// are looked up from the same int8 matrix. Close to float32 (on real OPUS-MT weights, the
    /// same text as float32 for 269 of 270 translations of the benchmark set, greedy and beam
    /// 4). CPU only.
    Int8,
    /// [`Quantization::Int8`] with activations in 8 bits only (one integer product): faster in large batches, but the rounding changes the output of
    /// about a third of the sentences on real OPUS-MT weights.
    Int8Fast,
}

impl Quantization {
    /// How the int8 products quantise their activations.
    pub(crate) fn activations(self) -> Activations {
        match self {
            Quantization::Int8 => Activations::Int16,
            Quantization::Int8Fast => Activations::Int8,
        }
    }
}

/// Which backend runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The host backend on the CPU in float32 or int8, the candle backend on GPUs and in half
    /// precision (the default).
    #[default]
    Auto,
    /// The candle backend everywhere (on the CPU: slower; for checking it against the
    /// reference outputs where there is no GPU).
    Candle,
}

/// Where and how a model is built: from [`crate::runtime::LoadOptions`].
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub device: Device,
    pub dtype: DType,
    pub quantize: Option<Quantization>,
    /// Where the int8 model is cached (read if it is there, written after quantising).
    pub int8_cache: Option<PathBuf>,
    pub backend: BackendChoice,
}

/// What the encoder produced for a batch of sources.
#[derive(Debug)]
pub struct EncoderOutput {
    lengths: Vec<usize>,
    hidden: Hidden,
}

/// The encoder's hidden states, as the backend that made them keeps them.
#[derive(Debug)]
enum Hidden {
    /// (sources, longest, d_model), and the additive bias hiding padding (sources, 1, 1, longest).
    Candle {
        hidden: candle_core::Tensor,
        bias: candle_core::Tensor,
    },
    /// The sources' rows packed one after another, without padding (sum of lengths x d_model).
    Host(Vec<f32>),
}

impl EncoderOutput {
    /// The number of tokens of each source, `</s>` included.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// The hidden states of source `s` (length x d_model, row-major), without padding.
    pub fn hidden_states(&self, s: usize) -> Result<Vec<f32>> {
        let len = *self
            .lengths
            .get(s)
            .ok_or_else(|| Error::option("source", format!("no source {s} in this batch")))?;
        match &self.hidden {
            Hidden::Candle { hidden, .. } => Ok(hidden
                .get(s)?
                .narrow(0, 0, len)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?),
            Hidden::Host(packed) => {
                let start: usize = self.lengths[..s].iter().sum();
                let d = packed.len() / self.lengths.iter().sum::<usize>().max(1);
                Ok(packed[start * d..(start + len) * d].to_vec())
            }
        }
    }
}

/// A backend: the encoder and the start of decoding.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// Encodes a batch of checked sources (non-empty, ids inside the vocabulary, within the
    /// positions).
    fn encode(&self, sources: &[Vec<u32>]) -> Result<EncoderOutput>;
    /// The decoding state for `encoded` with `beams` rows per source.
    fn start<'a>(&'a self, encoded: &EncoderOutput, beams: usize)
        -> Result<Box<dyn Decoding + 'a>>;
    fn max_source_positions(&self) -> usize;
    fn max_target_positions(&self) -> usize;
    fn name(&self) -> &'static str;
    /// Whether a row's figures are the same whatever rows share its step (each output one sum
    /// in a fixed order): then beam search may run its first step on one row per source.
    fn rows_independent(&self) -> bool;
    /// Whether sources can join a generation in progress ([`Decoding::join`]).
    fn joins(&self) -> bool {
        false
    }
    /// The logits of every position of `seq` for source 0 of `encoded`, decoded at once with a
    /// causal mask and no cache: the oracle that cached decoding is tested against (the candle
    /// backend's).
    #[cfg(test)]
    fn full_logits(&self, _encoded: &EncoderOutput, _seq: &[u32]) -> Result<candle_core::Tensor> {
        Err(Error::Internal(format!(
            "the {} backend has no full forward pass",
            self.name()
        )))
    }
}

/// Where a step writes the cross-attention of one decoder layer, averaged over its heads: row
/// `r`'s probabilities over its source's positions at `probs[r * width..]` (the rest of the row
/// zero).
pub(crate) struct AlignOut<'a> {
    pub layer: usize,
    pub probs: &'a mut [f32],
    pub width: usize,
}

/// One generation on a backend (the arguments are checked by [`DecoderState`]).
pub(crate) trait Decoding: Send {
    /// Feeds one token per row; writes the logits of the next position (rows x target vocab,
    /// f32, `final_logits_bias` included) into `out`, and the alignment where it is asked for.
    fn step(
        &mut self,
        tokens: &[u32],
        out: &mut Vec<f32>,
        align: Option<AlignOut<'_>>,
    ) -> Result<()>;
    /// New row `i` continues old row `parents[i]` (within its source); afterwards each source
    /// has `beams` rows (`parents.len() / sources`).
    fn reorder(&mut self, parents: &[u32], beams: usize) -> Result<()>;
    /// Keeps only these sources, in this order, with all their rows.
    fn keep(&mut self, sources: &[usize]) -> Result<()>;
    /// Adds the sources of `encoded` after the others, each with as many rows as the others
    /// have, at decoder position 0 (only where [`Backend::joins`]).
    fn join(&mut self, encoded: &EncoderOutput) -> Result<()> {
        let _ = encoded;
        Err(Error::Internal(
            "this backend cannot add sources to a generation in progress".into(),
        ))
    }
}

/// The decoder's state during generation: cross-attention keys and values per layer (computed
/// once per source), self-attention caches per row, and the positions each source consumed.
///
/// Rows are source-major: row `s * beams + b` is beam `b` of source `s`. Where the backend
/// allows it ([`Seq2SeqModel::joins`]), sources join a generation in progress
/// ([`DecoderState::join`]) and start at position 0 while the others go on.
pub struct DecoderState<'m> {
    run: Box<dyn Decoding + 'm>,
    beams: usize,
    sources: usize,
    /// Each remaining source's length.
    lengths: Vec<usize>,
    /// The decoder layer whose cross-attention is the alignment.
    align_layer: usize,
    /// Decoder positions consumed by each remaining source.
    positions: Vec<usize>,
    max_positions: usize,
    vocab: usize,
}

impl std::fmt::Debug for DecoderState<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoderState")
            .field("beams", &self.beams)
            .field("sources", &self.sources)
            .field("positions", &self.positions)
            .finish_non_exhaustive()
    }
}

impl DecoderState<'_> {
    /// Number of decoder rows (sources x beams).
    pub fn rows(&self) -> usize {
        self.sources * self.beams
    }

    /// Number of sources still in the state.
    pub fn sources(&self) -> usize {
        self.sources
    }

    /// Rows per source.
    pub fn beams(&self) -> usize {
        self.beams
    }

    /// Decoder positions consumed so far: the most of any source (they differ only when
    /// sources joined later).
    pub fn position(&self) -> usize {
        self.positions.iter().max().copied().unwrap_or(0)
    }

    /// Adds the sources of `encoded` (encoded by the same model) after the others, with
    /// [`DecoderState::beams`] rows each, all at position 0: their next step feeds the decoder
    /// start token while the other sources go on. Every row's results are what it would get
    /// without them. Fails on backends that cannot ([`Seq2SeqModel::joins`]).
    pub fn join(&mut self, encoded: &EncoderOutput) -> Result<()> {
        if encoded.lengths.is_empty() {
            return Ok(());
        }
        self.run.join(encoded)?;
        self.sources += encoded.lengths.len();
        self.lengths.extend_from_slice(&encoded.lengths);
        self.positions
            .extend(std::iter::repeat_n(0, encoded.lengths.len()));
        Ok(())
    }

    /// Feeds one token per row and writes the logits of the next position into `out` (resized to
    /// rows x target vocabulary; f32, `final_logits_bias` included). The search reuses `out` at
    /// every step, so no large buffer is allocated per step.
    pub fn step(&mut self, tokens: &[u32], out: &mut Vec<f32>) -> Result<()> {
        self.step_inner(tokens, out, None)
    }

    /// Like [`DecoderState::step`], also writing each row's alignment: the cross-attention of
    /// the next-to-last decoder layer, averaged over its heads, over its source's positions (what
    /// the token being predicted looks at), into `align` (resized to rows x the longest remaining
    /// source; row `r` from `r * width`, zero past its source's length). Returns the width.
    pub fn step_aligned(
        &mut self,
        tokens: &[u32],
        out: &mut Vec<f32>,
        align: &mut Vec<f32>,
    ) -> Result<usize> {
        let width = self.lengths.iter().copied().max().unwrap_or(0);
        align.clear();
        align.resize(self.rows() * width, 0.0);
        let layer = self.align_layer;
        self.step_inner(
            tokens,
            out,
            Some(AlignOut {
                layer,
                probs: align,
                width,
            }),
        )?;
        Ok(width)
    }

    /// Each remaining source's length, in row order of sources.
    pub fn source_lengths(&self) -> &[usize] {
        &self.lengths
    }

    fn step_inner(
        &mut self,
        tokens: &[u32],
        out: &mut Vec<f32>,
        align: Option<AlignOut<'_>>,
    ) -> Result<()> {
        if tokens.len() != self.rows() {
            return Err(Error::option(
                "tokens",
                format!(
                    "{} tokens for a decoder state of {} rows",
                    tokens.len(),
                    self.rows()
                ),
            ));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(Error::option(
                "tokens",
                format!(
                    "token id {bad} is outside the target vocabulary ({})",
                    self.vocab
                ),
            ));
        }
        if self.position() >= self.max_positions {
            return Err(Error::option(
                "max_length",
                format!(
                    "decoding past the model's {} target positions",
                    self.max_positions
                ),
            ));
        }
        self.run.step(tokens, out, align)?;
        for p in &mut self.positions {
            *p += 1;
        }
        Ok(())
    }

    /// Reorders rows: new row `i` continues old row `rows[i]`. Every row must stay with its source
    /// (beam search picks among the beams of the same source), so only self-attention caches move.
    ///
    /// `rows` may also change the number of beams: with `sources x b` indices the state has `b`
    /// rows per source afterwards. Beam search uses this to run its first step on one row per
    /// source (all beams start alike) and then widen to its beams.
    pub fn reorder_rows(&mut self, rows: &[u32]) -> Result<()> {
        let n = self.rows();
        let old = self.beams;
        let new = rows.len().checked_div(self.sources).unwrap_or(old);
        let inside = rows
            .iter()
            .enumerate()
            .all(|(i, &r)| (r as usize) < n && r as usize / old == i / new.max(1));
        if new == 0 || rows.len() != self.sources * new || !inside {
            return Err(Error::option(
                "rows",
                format!(
                    "{} row indices for a state of {} sources of {old} rows: a multiple of \
                     the sources, each row within its source",
                    rows.len(),
                    self.sources
                ),
            ));
        }
        if new == old && rows.iter().enumerate().all(|(i, &r)| r as usize == i) {
            return Ok(());
        }
        self.run.reorder(rows, new)?;
        self.beams = new;
        Ok(())
    }

    /// Keeps only the given sources (in this order) with all their rows: finished sources leave the
    /// batch so that later steps cost less.
    pub fn keep_sources(&mut self, sources: &[usize]) -> Result<()> {
        let n = self.sources;
        if sources.len() == n && sources.iter().enumerate().all(|(i, &s)| s == i) {
            return Ok(());
        }
        if sources.iter().any(|&s| s >= n) {
            return Err(Error::option("sources", "source index out of range"));
        }
        self.run.keep(sources)?;
        self.lengths = sources.iter().map(|&s| self.lengths[s]).collect();
        self.positions = sources.iter().map(|&s| self.positions[s]).collect();
        self.sources = sources.len();
        Ok(())
    }
}

/// A loaded encoder-decoder model (Marian or BART family).
#[derive(Debug)]
pub struct Seq2SeqModel {
    config: ModelConfig,
    backend: Box<dyn Backend>,
    quantization: Option<Quantization>,
    from_cache: bool,
    device: Device,
    dtype: DType,
}

impl Seq2SeqModel {
    /// Builds the model as `placement` says: int8 weights from the cache when it holds them,
    /// else quantised from `weights` (and then cached; a failure to write the cache only costs
    /// time on the next load), or float weights in `placement.dtype` on `placement.device`. The
    /// weights are checked against `config` first (every tensor present with the right shape,
    /// reported with the weight file's name).
    pub(crate) fn load(
        config: ModelConfig,
        weights: impl FnOnce() -> Result<Weights>,
        placement: &Placement,
    ) -> Result<Self> {
        let Some(activations) = placement.quantize.map(Quantization::activations) else {
            let weights = weights()?;
            check_weights(&config, &weights)?;
            let host = placement.device.is_cpu()
                && placement.dtype == DType::F32
                && placement.backend == BackendChoice::Auto;
            // The host backend's matrices are packed as they are read (the largest, the
            // embeddings, first), from the file's bytes; the candle backend's are tensors.
            let store = if host {
                VbStore::packing(weights)
            } else {
                VbStore::new(
                    weights.into_var_builder(placement.dtype, &placement.device),
                    Form::Tensor,
                )
            };
            let ckpt = Checkpoint::new(&config, &Vb::root(&store))?;
            return Self::build(config, ckpt, placement, host, false);
        };
        if !placement.device.is_cpu()
            || placement.dtype != DType::F32
            || placement.backend != BackendChoice::Auto
        {
            return Err(Error::option(
                "quantize",
                "int8 runs on the CPU with f32 activations, on the host backend",
            ));
        }
        if let Some(path) = placement.int8_cache.as_deref().filter(|p| p.is_file()) {
            let cached = CacheStore::open(path, activations)
                .and_then(|store| Checkpoint::new(&config, &Vb::root(&store)));
            match cached {
                Ok(ckpt) => {
                    tracing::info!("int8 model from the cache: {}", path.display());
                    return Self::build(config, ckpt, placement, true, true);
                }
                Err(e) => {
                    tracing::info!("quantising again: the cached int8 model is unusable ({e})")
                }
            }
        }
        let started = std::time::Instant::now();
        let weights = weights()?;
        check_weights(&config, &weights)?;
        let vb = weights.into_var_builder(DType::F32, &Device::Cpu);
        let recorder = Recorder::new(VbStore::new(vb, Form::Int8(activations)));
        let ckpt = Checkpoint::new(&config, &Vb::root(&recorder))?;
        tracing::info!(
            "quantised to int8 in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        if let Some(path) = &placement.int8_cache {
            let meta = [("tolk.format".to_string(), "int8-v1".to_string())]
                .into_iter()
                .collect();
            match recorder.save(path, meta) {
                Ok(()) => tracing::info!("int8 model cached: {}", path.display()),
                // Only costs time: the next load quantises again.
                Err(e) => tracing::info!("the int8 model cannot be cached ({e})"),
            }
        } else {
            tracing::debug!("no cache: the int8 model is quantised at every load");
        }
        Self::build(config, ckpt, placement, true, false)
    }

    fn build(
        config: ModelConfig,
        ckpt: Checkpoint,
        placement: &Placement,
        host: bool,
        from_cache: bool,
    ) -> Result<Self> {
        let backend: Box<dyn Backend> = if host {
            Box::new(host::HostBackend::new(&config, ckpt)?)
        } else {
            Box::new(candle::CandleBackend::new(
                &config,
                ckpt,
                &placement.device,
                placement.dtype,
            )?)
        };
        Ok(Seq2SeqModel {
            config,
            backend,
            quantization: placement.quantize,
            from_cache,
            device: placement.device.clone(),
            dtype: placement.dtype,
        })
    }

    /// Whether the weights were read from tolk's cache of a quantised model.
    pub fn loaded_from_cache(&self) -> bool {
        self.from_cache
    }

    /// Whether the weights are quantised.
    pub fn quantization(&self) -> Option<Quantization> {
        self.quantization
    }

    /// The backend that runs the model: `host` or `candle`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Whether sources can join a generation in progress ([`DecoderState::join`]) with every
    /// row's results unchanged: the host backend (caches per row, positions per source, rows
    /// independent); not candle.
    pub fn joins(&self) -> bool {
        self.backend.joins() && self.backend.rows_independent()
    }

    /// Whether a row's logits are bit for bit the same whatever other rows share its step (the
    /// host backend's kernels; candle's matrix products block by the number of rows).
    pub fn rows_independent(&self) -> bool {
        self.backend.rows_independent()
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the weights and activations.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Longest source (in tokens, `</s>` included) the encoder can take.
    pub fn max_source_positions(&self) -> usize {
        self.backend.max_source_positions()
    }

    /// Longest decoder sequence (start token included) the decoder can take.
    pub fn max_target_positions(&self) -> usize {
        self.backend.max_target_positions()
    }

    /// Encodes a batch of token id sequences (each ending in `</s>`); padding never changes a
    /// source's result.
    pub fn encode(&self, sources: &[Vec<u32>]) -> Result<EncoderOutput> {
        let max_len = sources.iter().map(Vec::len).max().unwrap_or(0);
        if sources.iter().any(Vec::is_empty) || max_len == 0 {
            return Err(Error::option(
                "sources",
                "nothing to encode (empty batch or empty source)",
            ));
        }
        if max_len > self.max_source_positions() {
            return Err(Error::option(
                "sources",
                format!(
                    "a source of {max_len} tokens is longer than the model's {} positions; split it first",
                    self.max_source_positions()
                ),
            ));
        }
        let vocab = self.config.vocab_size;
        if let Some(&bad) = sources.iter().flatten().find(|&&t| t as usize >= vocab) {
            return Err(Error::option(
                "sources",
                format!("token id {bad} is outside the source vocabulary ({vocab})"),
            ));
        }
        self.backend.encode(sources)
    }

    /// Prepares decoding with `beams` rows per source: computes every layer's cross-attention keys
    /// and values once.
    pub fn start_decoding(
        &self,
        encoded: &EncoderOutput,
        beams: usize,
    ) -> Result<DecoderState<'_>> {
        if beams == 0 {
            return Err(Error::option("num_beams", "must be at least 1"));
        }
        Ok(DecoderState {
            run: self.backend.start(encoded, beams)?,
            beams,
            sources: encoded.lengths.len(),
            lengths: encoded.lengths.clone(),
            align_layer: alignment_layer(self.config.decoder_layers),
            positions: vec![0; encoded.lengths.len()],
            max_positions: self.max_target_positions(),
            vocab: self.config.decoder_vocab_size,
        })
    }
}

/// The decoder layer whose cross-attention (averaged over its heads) aligns target words to source
/// words: the penultimate one (as Garg et al. 2019 found for Transformers, and as measured on the
/// real OPUS-MT zh->en weights: digits and Latin names all aligned to their own source word, and the
/// content words best), or the last when there are at most two (a two-layer copy model aligns
/// every word to itself with its last layer, one word late with the first).
fn alignment_layer(decoder_layers: usize) -> usize {
    if decoder_layers <= 2 {
        decoder_layers.saturating_sub(1)
    } else {
        decoder_layers - 2
    }
}

/// Every tensor `config` needs is in `weights` with the right shape (errors name the file).
fn check_weights(config: &ModelConfig, weights: &Weights) -> Result<()> {
    let prefix = if weights.contains("model.encoder.layers.0.fc1.weight") {
        "model."
    } else {
        ""
    };
    for t in expected_tensors(config, prefix) {
        match t.names.iter().find(|n| weights.contains(n)) {
            Some(name) => weights.check_shape(name, &t.shape).map_err(|e| match e {
                Error::ModelFile { path, message, .. } => Error::ModelFile {
                    path,
                    message,
                    hint: "the weights do not match config.json (wrong model, or a config edited by hand)"
                        .into(),
                },
                other => other,
            })?,
            None if t.required => {
                return Err(Error::ModelFile {
                    path: weights.path().to_path_buf(),
                    message: format!(
                        "tensor `{}` is missing (config.json describes a {:?} model with {} encoder and {} decoder layers)",
                        t.names.join("` or `"),
                        config.architecture,
                        config.encoder_layers,
                        config.decoder_layers
                    ),
                    hint: "the file is incomplete or belongs to another model".into(),
                })
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
