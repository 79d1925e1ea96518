//! Greedy and beam search with the semantics of Hugging Face transformers' `generate()`
//! (transformers 5.x: `_sample` with `do_sample=False`, `_beam_search`, and the logits processors
//! of `_get_logits_processor`), so that the same model and settings give the same tokens.
//!
//! The search owns the decoder state ([`DecoderState`](crate::model::DecoderState)): it reorders beams after each step and drops
//! sources whose result can no longer change, so later steps run on smaller batches. Logits are
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
    let (processor, max_length) = prepare(model, cfg)?;
    let n = encoded.lengths().len();
    let limits: Vec<usize> = match limits {
        Some(l) if l.len() == n => l.iter().map(|&x| x.clamp(2, max_length.max(2))).collect(),
        Some(l) => {
            return Err(Error::option(
                "limits",
                format!("{} limits for {n} sources", l.len()),
            ))
        }
        None => vec![max_length; n],
    };
    if cfg.num_beams == 1 {
        greedy(model, encoded, cfg, &processor, &limits)
    } else {
        beam(model, encoded, cfg, &processor, &limits)
    }
}

/// Checks the settings and resolves the maximum decoder length.
fn prepare(model: &Seq2SeqModel, cfg: &GenerationConfig) -> Result<(LogitsProcessor, usize)> {
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
    Ok((LogitsProcessor::new(cfg), max_length))
}

/// Greedy search (what `generate` runs for `num_beams == 1`): the best token at every step.
pub fn greedy_search(
    model: &Seq2SeqModel,
    encoded: &EncoderOutput,
    cfg: &GenerationConfig,
) -> Result<Vec<Vec<Hypothesis>>> {
    let (processor, max_length) = prepare(model, cfg)?;
    let limits = vec![max_length; encoded.lengths().len()];
    greedy(model, encoded, cfg, &processor, &limits)
}

/// Beam search with `cfg.num_beams` beams, also for a single beam (which transformers never runs:
/// it switches to greedy search). With one beam and `early_stopping = Eager` it returns exactly
/// the greedy result.
pub fn beam_search(
    model: &Seq2SeqModel,
    encoded: &EncoderOutput,
    cfg: &GenerationConfig,
) -> Result<Vec<Vec<Hypothesis>>> {
    let (processor, max_length) = prepare(model, cfg)?;
    let limits = vec![max_length; encoded.lengths().len()];
    beam(model, encoded, cfg, &processor, &limits)
}

fn greedy(
    model: &Seq2SeqModel,
    encoded: &EncoderOutput,
    cfg: &GenerationConfig,
    processor: &LogitsProcessor,
    limits: &[usize],
) -> Result<Vec<Vec<Hypothesis>>> {
    let n = encoded.lengths().len();
    let vocab = model.config().decoder_vocab_size;
    let mut state = model.start_decoding(encoded, 1)?;
    // Decoder sequences (start token included) and summed log-probabilities, per source.
    let mut seqs: Vec<Vec<u32>> = vec![vec![cfg.decoder_start_token_id]; n];
    let mut logprob_sums = vec![0f64; n];
    let mut active: Vec<usize> = (0..n).collect();
    let mut logits = Vec::new();
    let mut bans = Vec::new();
    let mut align = Vec::new();
    let mut alignments: Vec<Vec<Vec<f32>>> = vec![Vec::new(); n];
    while !active.is_empty() {
        let tokens: Vec<u32> = active
            .iter()
            .map(|&s| *seqs[s].last().unwrap_or(&cfg.decoder_start_token_id))
            .collect();
        if cfg.output_alignments {
            let width = state.step_aligned(&tokens, &mut logits, &mut align)?;
            for (row, &s) in active.iter().enumerate() {
                let len = state.source_lengths().get(row).copied().unwrap_or(0);
                alignments[s].push(align_row(&align, width, row, len));
            }
        } else {
            state.step(&tokens, &mut logits)?;
        }

        // Each row's choice and its log-probability; rows are independent, so in parallel.
        let choose = |bans: &mut Vec<u32>, (row, scores): (usize, &mut [f32])| {
            let s = active[row];
            // The reported score is the log-probability of the choice under the processed scores.
            if processor.bans(&seqs[s], limits[s], bans) {
                for &b in bans.iter() {
                    if let Some(x) = scores.get_mut(b as usize) {
                        *x = f32::NEG_INFINITY;
                    }
                }
                let (m, next) = rows::max_first(scores);
                let lse = rows::exp_sum(scores, m).ln();
                (next, ((scores[next] - m) - lse) as f64)
            } else {
                processor.process(&seqs[s], limits[s], scores);
                let next = argmax(scores);
                if !processor.renormalizes() {
                    log_softmax_in_place(scores);
                }
                (next, scores[next] as f64)
            }
        };
        let choices = map_rows(
            &mut logits[..active.len() * vocab],
            vocab,
            &mut bans,
            choose,
        );
        let mut keep = Vec::with_capacity(active.len());
        let mut still = Vec::with_capacity(active.len());
        for (row, (&s, (next, lp))) in active.iter().zip(choices).enumerate() {
            logprob_sums[s] += lp;
            seqs[s].push(next as u32);
            let done = next as u32 == cfg.eos_token_id || seqs[s].len() >= limits[s];
            if !done {
                keep.push(row);
                still.push(s);
            }
        }
        if still.len() != active.len() {
            state.keep_sources(&keep)?;
        }
        active = still;
    }
    Ok(seqs
        .into_iter()
        .zip(logprob_sums)
        .zip(alignments)
        .map(|((seq, sum), alignment)| {
            let ids = seq[1..].to_vec();
            let score = if ids.is_empty() {
                0.0
            } else {
                (sum / ids.len() as f64) as f32
            };
            vec![Hypothesis {
                ids,
                score,
                alignment: cfg.output_alignments.then_some(alignment),
            }]
        })
        .collect())
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

fn beam(
    model: &Seq2SeqModel,
    encoded: &EncoderOutput,
    cfg: &GenerationConfig,
    processor: &LogitsProcessor,
    limits: &[usize],
) -> Result<Vec<Vec<Hypothesis>>> {
    let k = cfg.num_beams;
    let n = encoded.lengths().len();
    let vocab = model.config().decoder_vocab_size;
    let keep_k = 2 * k;
    let lp = cfg.length_penalty;
    let start = vec![cfg.decoder_start_token_id];
    let mut items: Vec<BeamItem> = (0..n)
        .map(|_| BeamItem {
            running: (0..k)
                .map(|b| Beam {
                    tokens: start.clone(),
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
        .collect();
    // Every beam of a source starts from the same token with an empty cache, so where rows are
    // computed independently the first step runs one row per source and its logits (and
    // alignments) are copied to the source's other beams: the numbers k rows would give.
    let first = if model.rows_independent() { 1 } else { k };
    let mut state = model.start_decoding(encoded, first)?;
    let mut active: Vec<usize> = (0..n).collect();
    let mut cur_len = 1usize;
    let mut logits = Vec::new();
    let mut bans = Vec::new();
    let mut cands: Vec<Candidate> = Vec::with_capacity(k * keep_k);
    let mut align = Vec::new();
    while !active.is_empty() {
        let rows_per_source = state.beams();
        let tokens: Vec<u32> = active
            .iter()
            .flat_map(|&s| {
                items[s]
                    .running
                    .iter()
                    .take(rows_per_source)
                    .map(|b| *b.tokens.last().unwrap_or(&0))
            })
            .collect();
        let width = if cfg.output_alignments {
            state.step_aligned(&tokens, &mut logits, &mut align)?
        } else {
            state.step(&tokens, &mut logits)?;
            0
        };
        if rows_per_source < k {
            widen_rows(&mut logits, tokens.len(), vocab, k);
            widen_rows(&mut align, tokens.len(), width, k);
        }
        let lengths = state.source_lengths().to_vec();
        let mut reorder: Vec<u32> = Vec::with_capacity(active.len() * k);
        // b. log-probabilities, processors, plus the running beam scores; each beam's own top 2k
        //    continuations are enough to find the best 2k overall. Rows are independent, so they
        //    are scored in parallel (each is a few passes over the whole vocabulary).
        let beams_of: Vec<(&Beam, usize)> = active
            .iter()
            .flat_map(|&s| items[s].running.iter().map(move |b| (b, limits[s])))
            .collect();
        let rows_n = beams_of.len();
        let row_cands: Vec<Vec<Candidate>> = {
            let score_row = |bans: &mut Vec<u32>, (row, scores): (usize, &mut [f32])| {
                let (beam, max_length) = beams_of[row];
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
            map_rows(&mut logits[..rows_n * vocab], vocab, &mut bans, score_row)
        };
        drop(beams_of);
        for (pos, &s) in active.iter().enumerate() {
            let item = &mut items[s];
            let max_length = limits[s];
            cands.clear();
            for rc in &row_cands[pos * k..(pos + 1) * k] {
                cands.extend_from_slice(rc);
            }
            // c. top 2k overall: highest score first, ties by flattened index (beam, token).
            sort_candidates(&mut cands);
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
                    let align =
                        extend(&parent.align, &align, width, pos * k + c.beam, lengths[pos]);
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
                        let a =
                            extend(&parent.align, &align, width, pos * k + c.beam, lengths[pos]);
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
        }
        state.reorder_rows(&reorder)?;
        cur_len += 1;
        // g. can any running beam still beat the worst finished one?
        let mut keep = Vec::with_capacity(active.len());
        let mut still = Vec::with_capacity(active.len());
        for (pos, &s) in active.iter().enumerate() {
            let item = &mut items[s];
            let max_length = limits[s];
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
                still.push(s);
            }
        }
        if still.is_empty() {
            break;
        }
        if still.len() != active.len() {
            state.keep_sources(&keep)?;
        }
        active = still;
    }
    Ok(items
        .into_iter()
        .map(|item| {
            item.slots
                .into_iter()
                .take(cfg.num_return_sequences)
                .map(|slot| Hypothesis {
                    ids: slot
                        .tokens
                        .get(1..)
                        .map(<[u32]>::to_vec)
                        .unwrap_or_default(),
                    score: slot.score,
                    alignment: cfg.output_alignments.then_some(slot.align),
                })
                .collect()
        })
        .collect())
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
