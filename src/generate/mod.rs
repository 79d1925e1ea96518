//! Greedy and beam search with the semantics of Hugging Face transformers' `generate()`
//! (transformers 5.x: `_sample` with `do_sample=False`, `_beam_search`, and the logits processors
//! of `_get_logits_processor`), so that the same model and settings give the same tokens.
//!
//! The search owns the decoder state ([`DecoderState`](crate::model::DecoderState)): it reorders
//! beams after each step and drops sources whose result can no longer change, so later steps run
//! on smaller batches; on the host backend new sources join between two steps (`Search`, which
//! the runtime's continuous batches and the server's scheduler drive), each with its own
//! decoder positions, limit and logits processors, and get what they get alone. Logits are
//! processed on the host in f32, in transformers' order: repetition penalty, no-repeat n-grams, bad
//! words, minimum length, forced BOS, forced EOS, then (with `renormalize_logits`) a log-softmax.

mod processors;
pub(crate) mod rows;

use crate::config::{EarlyStopping, GenerationConfig};
use crate::error::{Error, Result};
use crate::model::{EncoderOutput, Seq2SeqModel};

pub use processors::{log_softmax_in_place, LogitsProcessor, Processor, Step};

/// One generated sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Generated token ids, without the decoder start token; ends with end-of-sequence unless the
    /// length limit cut it (which cannot happen when the model forces EOS at the limit).
    pub ids: Vec<u32>,
    /// Beam search: transformers' `sequences_scores` (sum of token log-probabilities divided by
    /// length^length_penalty). Greedy: the mean log-probability of the generated tokens.
    pub score: f32,
    /// With [`GenerationConfig::output_alignments`]: for every generated token, the attention
    /// over the source's tokens when it was chosen (see [`crate::model::DecoderState::step_aligned`]).
    pub alignment: Option<Vec<Vec<f32>>>,
}

/// Row `row`'s alignment of one step: its source's `len` positions.
fn align_row(align: &[f32], width: usize, row: usize, len: usize) -> Vec<f32> {
    align
        .get(row * width..row * width + len.min(width))
        .map(<[f32]>::to_vec)
        .unwrap_or_default()
}

/// transformers marks impossible beams with this score instead of -inf.
const NEG_LARGE: f32 = -1.0e9;

/// Generates for every source of `encoded`; returns `num_return_sequences` hypotheses per source,
/// best first.
pub fn generate(
    model: &Seq2SeqModel,
    encoded: &EncoderOutput,
    cfg: &GenerationConfig,
) -> Result<Vec<Vec<Hypothesis>>> {
    generate_limited(model, encoded, cfg, None)
}

/// Like [`generate`], with a maximum decoder length per source (`limits`, capped by the
/// configuration's own): each source then ends, with the forced end-of-sequence where the model
/// has one, at its own limit, as if generated alone with that `max_length`.
pub fn generate_limited(
    model: &Seq2SeqModel,
    encoded: &EncoderOutput,
    cfg: &GenerationConfig,
    limits: Option<&[usize]>,
) -> Result<Vec<Vec<Hypothesis>>> {
    run(Search::new(model, cfg, cfg.num_beams > 1)?, encoded, limits)
}

/// Greedy search (what `generate` runs for `num_beams == 1`): the best token at every step.
pub fn greedy_search(
    model: &Seq2SeqModel,
    encoded: &EncoderOutput,
    cfg: &GenerationConfig,
) -> Result<Vec<Vec<Hypothesis>>> {
    run(Search::new(model, cfg, false)?, encoded, None)
}

/// Beam search with `cfg.num_beams` beams, also for a single beam (which transformers never runs:
/// it switches to greedy search). With one beam and `early_stopping = Eager` it returns exactly
/// the greedy result.
pub fn beam_search(
    model: &Seq2SeqModel,
    encoded: &EncoderOutput,
    cfg: &GenerationConfig,
) -> Result<Vec<Vec<Hypothesis>>> {
    run(Search::new(model, cfg, true)?, encoded, None)
}

/// Every source of `encoded` through `search`, to the end; results in source order.
fn run(
    mut search: Search<'_>,
    encoded: &EncoderOutput,
    limits: Option<&[usize]>,
) -> Result<Vec<Vec<Hypothesis>>> {
    let n = encoded.lengths().len();
    let limits: Vec<usize> = match limits {
        Some(l) if l.len() == n => l.to_vec(),
        Some(l) => {
            return Err(Error::option(
                "limits",
                format!("{} limits for {n} sources", l.len()),
            ))
        }
        None => vec![usize::MAX; n],
    };
    let sources: Vec<Joining> = limits
        .iter()
        .enumerate()
        .map(|(key, &limit)| Joining {
            key,
            limit,
            processor: 0,
        })
        .collect();
    search.add(encoded, &sources)?;
    let mut out = vec![Vec::new(); n];
    while !search.is_empty() {
        for (key, hyps) in search.step()? {
            out[key] = hyps;
        }
    }
    Ok(out)
}

/// A source that joins a [`Search`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Joining {
    /// What the source's result comes back under.
    pub key: usize,
    /// Its maximum decoder length (capped by the configuration's).
    pub limit: usize,
    /// Which of the search's logits processors it uses ([`Search::add_processor`]; 0: the
    /// configuration's).
    pub processor: usize,
}

/// A greedy source's decoder sequence (empty for a beam source).
fn seq_of(s: &Source) -> &[u32] {
    match &s.progress {
        Progress::Greedy { seq, .. } => seq,
        Progress::Beam(_) => &[],
    }
}

/// A beam source's beams (none for a greedy source).
fn item_of(s: &Source) -> Option<&BeamItem> {
    match &s.progress {
        Progress::Beam(item) => Some(item),
        Progress::Greedy { .. } => None,
    }
}

/// One source's search so far.
#[derive(Debug)]
enum Progress {
    Greedy {
        /// The decoder sequence, start token included.
        seq: Vec<u32>,
        logprob_sum: f64,
        alignment: Vec<Vec<f32>>,
    },
    Beam(BeamItem),
}

#[derive(Debug)]
struct Source {
    key: usize,
    limit: usize,
    processor: usize,
    progress: Progress,
}

/// A generation in progress that sources may join between steps ("step-level batching"):
/// greedy or beam search over one [`DecoderState`](crate::model::DecoderState), whose finished
/// sources leave after every step. On backends whose rows are independent
/// ([`Seq2SeqModel::joins`]) a source gets the same tokens and scores whenever it joins and
/// whatever else is in the batch; elsewhere sources join only an empty search.
///
/// [`generate`] is one `add` of a batch and `step`s to the end.
pub(crate) struct Search<'m> {
    model: &'m Seq2SeqModel,
    cfg: GenerationConfig,
    beam: bool,
    max_length: usize,
    processors: Vec<LogitsProcessor>,
    state: Option<crate::model::DecoderState<'m>>,
    /// The sources in the state's order.
    active: Vec<Source>,
    logits: Vec<f32>,
    bans: Vec<u32>,
    align: Vec<f32>,
    cands: Vec<Candidate>,
}

impl std::fmt::Debug for Search<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search")
            .field("beam", &self.beam)
            .field("active", &self.active.len())
            .finish_non_exhaustive()
    }
}

impl<'m> Search<'m> {
    /// A search with `cfg` (beam search when `beam`, with `cfg.num_beams` beams; else greedy),
    /// the settings checked against the model.
    pub(crate) fn new(model: &'m Seq2SeqModel, cfg: &GenerationConfig, beam: bool) -> Result<Self> {
        let vocab = model.config().decoder_vocab_size;
        cfg.validate(vocab, model.max_target_positions())?;
        let max_length = cfg.max_decoder_length(model.max_target_positions());
        if max_length > model.max_target_positions() + 1 {
            return Err(Error::option(
                "max_length",
                format!(
                    "{max_length} is more than the model's {} target positions allow",
                    model.max_target_positions()
                ),
            ));
        }
        Ok(Search {
            model,
            cfg: cfg.clone(),
            beam,
            max_length,
            processors: vec![LogitsProcessor::new(cfg)],
            state: None,
            active: Vec::new(),
            logits: Vec::new(),
            bans: Vec::new(),
            align: Vec::new(),
            cands: Vec::new(),
        })
    }

    /// Adds the logits processors of `cfg` (which should differ from the search's settings only
    /// in them, e.g. `no_repeat_ngram_size`); returns their index for [`Joining::processor`].
    pub(crate) fn add_processor(&mut self, cfg: &GenerationConfig) -> usize {
        self.processors.push(LogitsProcessor::new(cfg));
        self.processors.len() - 1
    }

    /// The longest decoder sequence the settings allow.
    pub(crate) fn max_length(&self) -> usize {
        self.max_length
    }

    /// Decoder rows of the next step (0 before the first sources joined).
    pub(crate) fn rows(&self) -> usize {
        self.state.as_ref().map_or(0, |s| s.rows())
    }

    /// Whether no source is searching.
    pub(crate) fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Whether sources may be added now (always when it is empty; while it runs, only where the
    /// backend can join without changing results).
    pub(crate) fn can_join(&self) -> bool {
        self.active.is_empty() || self.model.joins()
    }

    /// Adds the sources of `encoded`, described by `sources` (one each, in order); their first
    /// token comes from the next [`Search::step`].
    pub(crate) fn add(&mut self, encoded: &EncoderOutput, sources: &[Joining]) -> Result<()> {
        let n = encoded.lengths().len();
        if sources.len() != n {
            return Err(Error::option(
                "sources",
                format!("{} descriptions for {n} sources", sources.len()),
            ));
        }
        if let Some(bad) = sources
            .iter()
            .find(|j| j.processor >= self.processors.len())
        {
            return Err(Error::Internal(format!(
                "no logits processor {}",
                bad.processor
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let k = if self.beam { self.cfg.num_beams } else { 1 };
        match (&mut self.state, self.active.is_empty()) {
            (Some(state), false) => {
                if !self.model.joins() {
                    return Err(Error::Internal(
                        "sources joined a search in progress on a backend that cannot".into(),
                    ));
                }
                state.join(encoded)?;
            }
            _ => {
                // Every beam of a source starts from the same token with an empty cache, so
                // where rows are computed independently the first step runs one row per source
                // and its logits (and alignments) are copied to the source's other beams: the
                // numbers k rows would give. Sources that join later come with k rows.
                let first = if self.beam && !self.model.rows_independent() {
                    k
                } else {
                    1
                };
                self.state = Some(self.model.start_decoding(encoded, first)?);
            }
        }
        let start = self.cfg.decoder_start_token_id;
        for j in sources {
            let progress = if self.beam {
                Progress::Beam(BeamItem {
                    running: (0..k)
                        .map(|b| Beam {
                            tokens: vec![start],
                            score: if b == 0 { 0.0 } else { NEG_LARGE },
                            align: Vec::new(),
                        })
                        .collect(),
                    slots: vec![
                        Slot {
                            tokens: Vec::new(),
                            score: NEG_LARGE,
                            finished: false,
                            align: Vec::new(),
                        };
                        k
                    ],
                    open: true,
                })
            } else {
                Progress::Greedy {
                    seq: vec![start],
                    logprob_sum: 0.0,
                    alignment: Vec::new(),
                }
            };
            self.active.push(Source {
                key: j.key,
                limit: j.limit.clamp(2, self.max_length.max(2)),
                processor: j.processor,
                progress,
            });
        }
        Ok(())
    }

    /// One decoding step of every source; returns the sources that finished (their key and
    /// `num_return_sequences` hypotheses, best first). They leave the batch.
    pub(crate) fn step(&mut self) -> Result<Vec<(usize, Vec<Hypothesis>)>> {
        if self.active.is_empty() {
            return Ok(Vec::new());
        }
        let keep = if self.beam {
            self.beam_step()?
        } else {
            self.greedy_step()?
        };
        let mut finished = Vec::new();
        if keep.len() != self.active.len() {
            let mut kept = Vec::with_capacity(keep.len());
            let mut next = keep.iter().peekable();
            for (pos, source) in std::mem::take(&mut self.active).into_iter().enumerate() {
                if next.peek() == Some(&&pos) {
                    next.next();
                    kept.push(source);
                } else {
                    finished.push((source.key, self.hypotheses(source.progress)));
                }
            }
            self.active = kept;
            if self.active.is_empty() {
                // The next source starts a new state (and the one-row first step).
                self.state = None;
            } else if let Some(state) = &mut self.state {
                state.keep_sources(&keep)?;
            }
        }
        Ok(finished)
    }

    fn hypotheses(&self, progress: Progress) -> Vec<Hypothesis> {
        let aligned = self.cfg.output_alignments;
        match progress {
            Progress::Greedy {
                seq,
                logprob_sum,
                alignment,
            } => {
                let ids = seq[1..].to_vec();
                let score = if ids.is_empty() {
                    0.0
                } else {
                    (logprob_sum / ids.len() as f64) as f32
                };
                vec![Hypothesis {
                    ids,
                    score,
                    alignment: aligned.then_some(alignment),
                }]
            }
            Progress::Beam(item) => item
                .slots
                .into_iter()
                .take(self.cfg.num_return_sequences)
                .map(|slot| Hypothesis {
                    ids: slot
                        .tokens
                        .get(1..)
                        .map(<[u32]>::to_vec)
                        .unwrap_or_default(),
                    score: slot.score,
                    alignment: aligned.then_some(slot.align),
                })
                .collect(),
        }
    }

    /// A greedy step: the best token of every row. Returns the positions of the sources that go
    /// on.
    fn greedy_step(&mut self) -> Result<Vec<usize>> {
        let Search {
            model,
            cfg,
            processors,
            state,
            active,
            logits,
            bans,
            align,
            ..
        } = self;
        let state = state
            .as_mut()
            .ok_or_else(|| Error::Internal("a search with sources and no state".into()))?;
        let vocab = model.config().decoder_vocab_size;
        let tokens: Vec<u32> = active
            .iter()
            .map(|s| *seq_of(s).last().unwrap_or(&cfg.decoder_start_token_id))
            .collect();
        let width = if cfg.output_alignments {
            state.step_aligned(&tokens, logits, align)?
        } else {
            state.step(&tokens, logits)?;
            0
        };
        // Each row's choice and its log-probability; rows are independent, so in parallel.
        let sources: &[Source] = active;
        let choose = |bans: &mut Vec<u32>, (row, scores): (usize, &mut [f32])| {
            let s = &sources[row];
            let (seq, limit) = (seq_of(s), s.limit);
            let processor = &processors[s.processor];
            // The reported score is the log-probability of the choice under the processed scores.
            if processor.bans(seq, limit, bans) {
                for &b in bans.iter() {
                    if let Some(x) = scores.get_mut(b as usize) {
                        *x = f32::NEG_INFINITY;
                    }
                }
                let (m, next) = rows::max_first(scores);
                let lse = rows::exp_sum(scores, m).ln();
                (next, ((scores[next] - m) - lse) as f64)
            } else {
                processor.process(seq, limit, scores);
                let next = argmax(scores);
                if !processor.renormalizes() {
                    log_softmax_in_place(scores);
                }
                (next, scores[next] as f64)
            }
        };
        let choices = map_rows(&mut logits[..active.len() * vocab], vocab, bans, choose);
        let lengths = state.source_lengths();
        let mut keep = Vec::with_capacity(active.len());
        for (row, (s, (next, lp))) in active.iter_mut().zip(choices).enumerate() {
            let Progress::Greedy {
                seq,
                logprob_sum,
                alignment,
            } = &mut s.progress
            else {
                continue;
            };
            if cfg.output_alignments {
                let len = lengths.get(row).copied().unwrap_or(0);
                alignment.push(align_row(align, width, row, len));
            }
            *logprob_sum += lp;
            seq.push(next as u32);
            let done = next as u32 == cfg.eos_token_id || seq.len() >= s.limit;
            if !done {
                keep.push(row);
            }
        }
        Ok(keep)
    }
    /// A beam search step (transformers' `_beam_search`, one iteration) for every source.
    /// Returns the positions of the sources that go on.
    fn beam_step(&mut self) -> Result<Vec<usize>> {
        let Search {
            model,
            cfg,
            processors,
            state,
            active,
            logits,
            bans,
            align,
            cands,
            ..
        } = self;
        let state = state
            .as_mut()
            .ok_or_else(|| Error::Internal("a search with sources and no state".into()))?;
        let k = cfg.num_beams;
        let vocab = model.config().decoder_vocab_size;
        let keep_k = 2 * k;
        let lp = cfg.length_penalty;
        let rows_per_source = state.beams();
        let tokens: Vec<u32> = active
            .iter()
            .filter_map(item_of)
            .flat_map(|item| {
                item.running
                    .iter()
                    .take(rows_per_source)
                    .map(|b| *b.tokens.last().unwrap_or(&0))
            })
            .collect();
        let width = if cfg.output_alignments {
            state.step_aligned(&tokens, logits, align)?
        } else {
            state.step(&tokens, logits)?;
            0
        };
        if rows_per_source < k {
            widen_rows(logits, tokens.len(), vocab, k);
            widen_rows(align, tokens.len(), width, k);
        }
        let lengths = state.source_lengths().to_vec();
        let mut reorder: Vec<u32> = Vec::with_capacity(active.len() * k);
        // b. log-probabilities, processors, plus the running beam scores; each beam's own top 2k
        //    continuations are enough to find the best 2k overall. Rows are independent, so they
        //    are scored in parallel (each is a few passes over the whole vocabulary).
        let beams_of: Vec<(&Beam, usize, &LogitsProcessor)> = active
            .iter()
            .filter_map(|s| item_of(s).map(|item| (item, s)))
            .flat_map(|(item, s)| {
                let processor = &processors[s.processor];
                item.running.iter().map(move |b| (b, s.limit, processor))
            })
            .collect();
        let rows_n = beams_of.len();
        let row_cands: Vec<Vec<Candidate>> = {
            let score_row = |bans: &mut Vec<u32>, (row, scores): (usize, &mut [f32])| {
                let (beam, max_length, processor) = beams_of[row];
                let mut out = Vec::with_capacity(keep_k);
                score_beam_row(
                    processor,
                    beam,
                    max_length,
                    scores,
                    keep_k,
                    row % k,
                    bans,
                    &mut out,
                );
                out
            };
            map_rows(&mut logits[..rows_n * vocab], vocab, bans, score_row)
        };
        drop(beams_of);
        let mut keep = Vec::with_capacity(active.len());
        for (pos, source) in active.iter_mut().enumerate() {
            let max_length = source.limit;
            let Progress::Beam(item) = &mut source.progress else {
                continue;
            };
            // The source's sequence length so far (start token included).
            let cur_len = item.running.first().map_or(1, |b| b.tokens.len());
            cands.clear();
            for rc in &row_cands[pos * k..(pos + 1) * k] {
                cands.extend_from_slice(rc);
            }
            // c. top 2k overall: highest score first, ties by flattened index (beam, token).
            sort_candidates(cands);
            cands.truncate(keep_k);
            // d. which candidates end here
            let hits: Vec<bool> = cands
                .iter()
                .map(|c| c.token == cfg.eos_token_id || cur_len + 1 >= max_length)
                .collect();
            // e. next running beams: the best k that did not end
            let mut order: Vec<(f32, usize)> = cands
                .iter()
                .zip(&hits)
                .enumerate()
                .map(|(i, (c, &h))| (if h { c.score + NEG_LARGE } else { c.score }, i))
                .collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let next_running: Vec<Beam> = order
                .iter()
                .take(k)
                .map(|&(score, i)| {
                    let c = cands[i];
                    let parent = &item.running[c.beam];
                    let mut tokens = parent.tokens.clone();
                    tokens.push(c.token);
                    let align = extend(&parent.align, align, width, pos * k + c.beam, lengths[pos]);
                    Beam {
                        tokens,
                        score,
                        align,
                    }
                })
                .collect();
            let parents: Vec<usize> = order.iter().take(k).map(|&(_, i)| cands[i].beam).collect();
            // f. finished beams: only the top k candidates may enter, scored with the length penalty.
            let denom = length_denominator(cur_len, lp);
            let full =
                item.slots.iter().all(|s| s.finished) && cfg.early_stopping == EarlyStopping::Eager;
            let mut merged: Vec<(f32, usize, bool)> = item
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| (s.score, i, s.finished))
                .collect();
            for (i, c) in cands.iter().enumerate() {
                let just_finished = hits[i] && i < k;
                let mut score = c.score / denom;
                if full {
                    score += NEG_LARGE;
                }
                if !item.open {
                    score += NEG_LARGE;
                }
                if !just_finished {
                    score += NEG_LARGE;
                }
                merged.push((score, k + i, just_finished));
            }
            merged.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let new_slots: Vec<Slot> = merged
                .iter()
                .take(k)
                .map(|&(score, idx, finished)| {
                    let (tokens, slot_align) = if idx < k {
                        (
                            item.slots[idx].tokens.clone(),
                            item.slots[idx].align.clone(),
                        )
                    } else {
                        let c = cands[idx - k];
                        let parent = &item.running[c.beam];
                        let mut t = parent.tokens.clone();
                        t.push(c.token);
                        let a = extend(&parent.align, align, width, pos * k + c.beam, lengths[pos]);
                        (t, a)
                    };
                    Slot {
                        tokens,
                        score,
                        finished,
                        align: slot_align,
                    }
                })
                .collect();
            item.slots = new_slots;
            item.running = next_running;
            for p in parents {
                // Before widening, every beam continues its source's one row.
                let within = if rows_per_source < k { 0 } else { p };
                reorder.push((pos * rows_per_source + within) as u32);
            }
            // g. can any running beam still beat the worst finished one?
            let cur_len = cur_len + 1;
            let all_hit_max = cur_len >= max_length;
            if item.open {
                let best_len = if cfg.early_stopping == EarlyStopping::Never && lp > 0.0 {
                    max_length - 1
                } else {
                    cur_len - 1
                };
                let best = item.running.first().map(|b| b.score).unwrap_or(NEG_LARGE)
                    / length_denominator(best_len, lp);
                let min_all = item
                    .slots
                    .iter()
                    .map(|s| s.score)
                    .fold(f32::INFINITY, f32::min);
                item.open = item
                    .slots
                    .iter()
                    .any(|s| best > if s.finished { min_all } else { NEG_LARGE });
            }
            let frozen = !item.open
                || (cfg.early_stopping == EarlyStopping::Eager
                    && item.slots.iter().all(|s| s.finished));
            if !frozen && !all_hit_max {
                keep.push(pos);
            }
        }
        state.reorder_rows(&reorder)?;
        Ok(keep)
    }
}

/// First index of the largest value (torch.argmax's tie rule); NaN is never chosen over a number.
fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    let mut seen = false;
    for (i, &v) in xs.iter().enumerate() {
        if !seen || v > best_v {
            if v.is_nan() {
                continue;
            }
            best = i;
            best_v = v;
            seen = true;
        }
    }
    best
}

#[derive(Debug, Clone)]
struct Beam {
    tokens: Vec<u32>,
    score: f32,
    /// One attention row per generated token (with alignments only).
    align: Vec<Vec<f32>>,
}

#[derive(Debug, Clone)]
struct Slot {
    tokens: Vec<u32>,
    score: f32,
    finished: bool,
    align: Vec<Vec<f32>>,
}

#[derive(Debug)]
struct BeamItem {
    running: Vec<Beam>,
    slots: Vec<Slot>,
    /// transformers' `is_early_stop_heuristic_unsatisfied`: the finished set may still improve.
    open: bool,
}

/// A candidate continuation: parent beam, token, accumulated score.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    beam: usize,
    token: u32,
    score: f32,
}

/// Repeats each of the first `rows` rows (of `width` values) `times` times in place: rows
/// `[a, b]` become `[a, a, .., b, b, ..]`.
fn widen_rows(values: &mut Vec<f32>, rows: usize, width: usize, times: usize) {
    values.resize(rows * width * times, 0.0);
    for r in (0..rows).rev() {
        for c in (0..times).rev() {
            let dst = (r * times + c) * width;
            if dst != r * width {
                values.copy_within(r * width..(r + 1) * width, dst);
            }
        }
    }
}

fn length_denominator(len: usize, length_penalty: f32) -> f32 {
    // transformers computes `int ** float` in Python (f64) and divides an f32 tensor by it.
    (len as f64).powf(length_penalty as f64) as f32
}

/// A beam's alignment extended by one step: `row`'s attention over its source's `len` positions
/// (nothing when alignments are not kept: `width` 0).
fn extend(
    parent: &[Vec<f32>],
    align: &[f32],
    width: usize,
    row: usize,
    len: usize,
) -> Vec<Vec<f32>> {
    if width == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(parent.len() + 1);
    out.extend_from_slice(parent);
    out.push(align_row(align, width, row, len));
    out
}

/// `f` on every row (`width` long) of `rows` with its index, in parallel when there are several
/// rows (each is a few passes over a vocabulary); `f` gets a scratch vector of its own thread
/// (`scratch` when it runs here).
fn map_rows<T: Send>(
    rows: &mut [f32],
    width: usize,
    scratch: &mut Vec<u32>,
    f: impl Fn(&mut Vec<u32>, (usize, &mut [f32])) -> T + Sync + Send,
) -> Vec<T> {
    if rows.len() > width {
        use rayon::prelude::*;
        rows.par_chunks_mut(width)
            .enumerate()
            .map_init(Vec::new, f)
            .collect()
    } else {
        rows.chunks_mut(width)
            .enumerate()
            .map(|x| f(scratch, x))
            .collect()
    }
}

/// One beam's row of logits: its best `keep` continuations as candidates (processed
/// log-probability plus the beam's score), best first.
#[allow(clippy::too_many_arguments)]
fn score_beam_row(
    processor: &LogitsProcessor,
    beam: &Beam,
    max_length: usize,
    scores: &mut [f32],
    keep: usize,
    b: usize,
    bans: &mut Vec<u32>,
    out: &mut Vec<Candidate>,
) {
    if processor.bans(&beam.tokens, max_length, bans) {
        // log_softmax, bans, (log_softmax): per-row shifts of the raw logits, so the best raw
        // entries are the best candidates; only those are normalised.
        let mut banned_mass = 0f32;
        let mut banned_max = f32::NEG_INFINITY;
        let mut saved = Vec::with_capacity(bans.len());
        for &t in bans.iter() {
            if let Some(x) = scores.get_mut(t as usize) {
                if *x != f32::NEG_INFINITY {
                    saved.push(*x);
                    banned_max = banned_max.max(*x);
                }
                *x = f32::NEG_INFINITY;
            }
        }
        // The best candidates first: their first is the row's maximum (one pass fewer).
        let mut top = Vec::with_capacity(keep);
        rows::top_k(scores, keep, &mut top);
        let max_kept = top.first().map_or(f32::NEG_INFINITY, |t| t.0);
        let m1 = max_kept.max(banned_max);
        let kept = rows::exp_sum(scores, m1);
        for x in &saved {
            banned_mass += (x - m1).exp();
        }
        let lse1 = (kept + banned_mass).ln();
        // After renormalising: max (max_kept - m1 - lse1), sum over kept entries.
        let m2 = (max_kept - m1) - lse1;
        let lse2 = kept.ln() + (m1 - max_kept);
        for &(v, t) in &top {
            let mut z = (v - m1) - lse1;
            if processor.renormalizes() {
                z = (z - m2) - lse2;
            }
            out.push(Candidate {
                beam: b,
                token: t,
                score: z + beam.score,
            });
        }
    } else {
        log_softmax_in_place(scores);
        processor.process(&beam.tokens, max_length, scores);
        for v in scores.iter_mut() {
            *v += beam.score;
        }
        top_k_into(scores, keep, b, out);
    }
}

/// Appends the `k` best entries of `scores` (as candidates of `beam`) to `out`.
fn top_k_into(scores: &[f32], k: usize, beam: usize, out: &mut Vec<Candidate>) {
    let start = out.len();
    for (t, &v) in scores.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        let have = out.len() - start;
        if have < k {
            out.push(Candidate {
                beam,
                token: t as u32,
                score: v,
            });
            if have + 1 == k {
                sort_candidates(&mut out[start..]);
            }
            continue;
        }
        // Compare with the current worst (last after sorting); equal scores keep the lower token.
        if v > out[out.len() - 1].score {
            let mut i = out.len() - 1;
            out[i] = Candidate {
                beam,
                token: t as u32,
                score: v,
            };
            while i > start && out[i].score > out[i - 1].score {
                out.swap(i, i - 1);
                i -= 1;
            }
        }
    }
    if out.len() - start < k {
        sort_candidates(&mut out[start..]);
    }
}

fn sort_candidates(c: &mut [Candidate]) {
    c.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.beam.cmp(&b.beam))
            .then(a.token.cmp(&b.token))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_prefers_first_of_equal_values() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
    }

    #[test]
    fn widen_rows_repeats_each_row_in_place() {
        // Longer than the rows (a buffer reused from a bigger step): the tail is not a row.
        let mut v = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0, 9.0];
        widen_rows(&mut v, 3, 2, 3);
        let want = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 3.0, 4.0];
        assert_eq!(v[..12], want);
        assert_eq!(v[12..], [5.0, 6.0, 5.0, 6.0, 5.0, 6.0]);
        let mut empty = Vec::new();
        widen_rows(&mut empty, 4, 0, 3);
        assert!(empty.is_empty());
    }

    #[test]
    fn top_k_keeps_best_in_order() {
        let mut out = Vec::new();
        top_k_into(&[0.1, 0.5, -1.0, 0.5, 0.9, 0.0], 3, 2, &mut out);
        let got: Vec<(u32, f32)> = out.iter().map(|c| (c.token, c.score)).collect();
        assert_eq!(got, vec![(4, 0.9), (1, 0.5), (3, 0.5)]);
        let mut out = Vec::new();
        top_k_into(&[0.1, 0.2], 4, 0, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].token, 1);
    }
}
