//! Logits processors: the small rules that reshape one row of next-token scores before a token is
//! chosen, in the order and with the arithmetic of transformers' `LogitsProcessorList`.
//!
//! Each rule is one [`Processor`] and is defined once. Most rules only forbid tokens at a step;
//! they say which through [`Processor::bans`], and their full form ([`Processor::apply`]) is
//! derived from it. The search uses that: when every rule of a step only bans, it picks its
//! candidates on the raw logits with the banned tokens left out, instead of processing the whole
//! row (see [`crate::generate`]). A rule that changes scores otherwise (the repetition penalty, a
//! forced token) says so for that step and has its own `apply`.

use std::fmt;

use crate::config::GenerationConfig;

/// What one step of one row looks like to a processor.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// The decoder sequence so far, start token included.
    pub seq: &'a [u32],
    /// The length at which this sequence must end.
    pub max_length: usize,
}

/// One rule of the list.
pub trait Processor: Send + Sync + fmt::Debug {
    /// When at this step the rule only forbids tokens: pushes them onto `out` and returns true.
    /// Returns false when it changes the scores in another way, and [`Processor::apply`] must run.
    fn bans(&self, step: Step<'_>, out: &mut Vec<u32>) -> bool;

    /// Applies the rule to one row of scores. By default: every token [`Processor::bans`] lists
    /// becomes -inf, so that a banning rule has one definition; rules that rescore override it.
    fn apply(&self, step: Step<'_>, scores: &mut [f32], scratch: &mut Vec<u32>) {
        scratch.clear();
        self.bans(step, scratch);
        for &t in scratch.iter() {
            if let Some(s) = scores.get_mut(t as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// `repetition_penalty`: scores of tokens already in the sequence divided by the penalty
/// (multiplied when negative).
#[derive(Debug)]
struct RepetitionPenalty(f32);

impl Processor for RepetitionPenalty {
    fn bans(&self, _: Step<'_>, _: &mut Vec<u32>) -> bool {
        false
    }

    fn apply(&self, step: Step<'_>, scores: &mut [f32], _: &mut Vec<u32>) {
        let vocab = scores.len();
        let mut seen = vec![false; vocab];
        for &t in step.seq {
            let t = t as usize;
            if t < vocab && !seen[t] {
                seen[t] = true;
                let s = scores[t];
                scores[t] = if s < 0.0 { s * self.0 } else { s / self.0 };
            }
        }
    }
}

/// `no_repeat_ngram_size`: a token that would repeat an n-gram of the sequence is banned.
#[derive(Debug)]
struct NoRepeatNgram(usize);

impl Processor for NoRepeatNgram {
    fn bans(&self, step: Step<'_>, out: &mut Vec<u32>) -> bool {
        let (n, seq) = (self.0, step.seq);
        if seq.len() >= n {
            let prefix = &seq[seq.len() + 1 - n..];
            for w in seq.windows(n) {
                if w[..n - 1] == *prefix {
                    out.push(w[n - 1]);
                }
            }
        }
        true
    }
}

/// `bad_words_ids`: single tokens always banned, longer sequences banned as their last token
/// once the rest has been generated.
#[derive(Debug)]
struct BadWords {
    single: Vec<u32>,
    /// (prefix, last token)
    sequences: Vec<(Vec<u32>, u32)>,
}

impl Processor for BadWords {
    fn bans(&self, step: Step<'_>, out: &mut Vec<u32>) -> bool {
        out.extend_from_slice(&self.single);
        let (seq, len) = (step.seq, step.seq.len());
        for (prefix, last) in &self.sequences {
            if prefix.len() <= len && seq[len - prefix.len()..] == prefix[..] {
                out.push(*last);
            }
        }
        true
    }
}

/// `min_length` / `min_new_tokens`: the end of sequence is banned until the sequence is long
/// enough.
#[derive(Debug)]
struct MinLength {
    min_length: usize,
    eos: u32,
}

impl Processor for MinLength {
    fn bans(&self, step: Step<'_>, out: &mut Vec<u32>) -> bool {
        if step.seq.len() < self.min_length {
            out.push(self.eos);
        }
        true
    }
}

/// `forced_bos_token_id` (the first generated token) and `forced_eos_token_id` (the last one, at
/// the length limit): at their step every other token is impossible.
#[derive(Debug)]
enum Forced {
    Bos(u32),
    Eos(u32),
}

impl Forced {
    fn token_at(&self, step: Step<'_>) -> Option<u32> {
        match *self {
            Forced::Bos(t) if step.seq.len() == 1 => Some(t),
            Forced::Eos(t) if step.seq.len() + 1 == step.max_length => Some(t),
            _ => None,
        }
    }
}

impl Processor for Forced {
    fn bans(&self, step: Step<'_>, _: &mut Vec<u32>) -> bool {
        self.token_at(step).is_none()
    }

    fn apply(&self, step: Step<'_>, scores: &mut [f32], _: &mut Vec<u32>) {
        if let Some(token) = self.token_at(step) {
            force(scores, token);
        }
    }
}

/// The processors a [`GenerationConfig`] asks for, in transformers' order (repetition penalty,
/// no-repeat n-grams, bad words, minimum length, forced BOS, forced EOS), then, with
/// `renormalize_logits`, a log-softmax.
#[derive(Debug)]
pub struct LogitsProcessor {
    rules: Vec<Box<dyn Processor>>,
    renormalize: bool,
}

impl LogitsProcessor {
    /// Builds the processors for `cfg`.
    pub fn new(cfg: &GenerationConfig) -> Self {
        let mut rules: Vec<Box<dyn Processor>> = Vec::new();
        if cfg.repetition_penalty != 1.0 {
            rules.push(Box::new(RepetitionPenalty(cfg.repetition_penalty)));
        }
        if cfg.no_repeat_ngram_size > 0 {
            rules.push(Box::new(NoRepeatNgram(cfg.no_repeat_ngram_size)));
        }
        let mut single = Vec::new();
        let mut sequences = Vec::new();
        for seq in &cfg.bad_words_ids {
            // transformers drops `[eos]` from the bad words: it must stay reachable.
            match seq.as_slice() {
                [] => {}
                [t] if *t == cfg.eos_token_id => {}
                [t] => single.push(*t),
                [prefix @ .., last] => sequences.push((prefix.to_vec(), *last)),
            }
        }
        if !single.is_empty() || !sequences.is_empty() {
            rules.push(Box::new(BadWords { single, sequences }));
        }
        let min_length = cfg.min_decoder_length();
        if min_length > 0 {
            rules.push(Box::new(MinLength {
                min_length,
                eos: cfg.eos_token_id,
            }));
        }
        if let Some(t) = cfg.forced_bos_token_id {
            rules.push(Box::new(Forced::Bos(t)));
        }
        if let Some(t) = cfg.forced_eos_token_id {
            rules.push(Box::new(Forced::Eos(t)));
        }
        LogitsProcessor {
            rules,
            renormalize: cfg.renormalize_logits,
        }
    }

    /// Whether the last step is a log-softmax (the processed scores are log-probabilities).
    pub fn renormalizes(&self) -> bool {
        self.renormalize
    }

    /// The tokens this step bans for `seq` (into `out`), when banning is all the processors do at
    /// this step; false when one changes scores in another way, and the full
    /// [`process`](Self::process) must run.
    pub fn bans(&self, seq: &[u32], max_length: usize, out: &mut Vec<u32>) -> bool {
        out.clear();
        let step = Step { seq, max_length };
        self.rules.iter().all(|r| r.bans(step, out))
    }

    /// Processes `scores` in place; `seq` is the decoder sequence so far, start token included, and
    /// `max_length` the length at which this sequence must end.
    pub fn process(&self, seq: &[u32], max_length: usize, scores: &mut [f32]) {
        let step = Step { seq, max_length };
        let mut scratch = Vec::new();
        for rule in &self.rules {
            rule.apply(step, scores, &mut scratch);
        }
        if self.renormalize {
            log_softmax_in_place(scores);
        }
    }
}

fn force(scores: &mut [f32], token: u32) {
    for s in scores.iter_mut() {
        *s = f32::NEG_INFINITY;
    }
    if let Some(s) = scores.get_mut(token as usize) {
        *s = 0.0;
    }
}

/// In-place log-softmax of one row: x - max - ln(sum(exp(x - max))).
pub fn log_softmax_in_place(xs: &mut [f32]) {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return;
    }
    let sum: f32 = xs.iter().map(|&x| (x - max).exp()).sum();
    let lse = sum.ln();
    for x in xs.iter_mut() {
        *x = *x - max - lse;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAXLEN: usize = 50;

    fn cfg() -> GenerationConfig {
        GenerationConfig {
            eos_token_id: 0,
            pad_token_id: 9,
            decoder_start_token_id: 9,
            ..GenerationConfig::default()
        }
    }

    #[test]
    fn bad_words_ban_pad_but_never_eos() {
        let mut c = cfg();
        c.bad_words_ids = vec![vec![9], vec![0], vec![3, 4]];
        let p = LogitsProcessor::new(&c);
        let mut s = vec![1.0; 10];
        p.process(&[9, 3], MAXLEN, &mut s);
        assert_eq!(s[9], f32::NEG_INFINITY);
        assert_eq!(s[0], 1.0);
        assert_eq!(s[4], f32::NEG_INFINITY, "sequence [3, 4] completes after 3");
        let mut s = vec![1.0; 10];
        p.process(&[9, 2], MAXLEN, &mut s);
        assert_eq!(s[4], 1.0);
    }

    #[test]
    fn min_length_and_forced_eos() {
        let p = LogitsProcessor::new(&cfg().with_min_new_tokens(2));
        let mut s = vec![1.0; 10];
        p.process(&[9, 1], MAXLEN, &mut s);
        assert_eq!(s[0], f32::NEG_INFINITY, "one token generated, two required");
        let mut s = vec![1.0; 10];
        p.process(&[9, 1, 2], MAXLEN, &mut s);
        assert_eq!(s[0], 1.0);
        let mut c = cfg();
        c.forced_eos_token_id = Some(0);
        let p = LogitsProcessor::new(&c);
        let mut s = vec![1.0; 10];
        p.process(&[9, 1, 2, 3], 5, &mut s);
        assert_eq!(s[0], 0.0);
        assert!(s[1..].iter().all(|&x| x == f32::NEG_INFINITY));
    }

    #[test]
    fn no_repeat_ngram_and_repetition_penalty() {
        let p = LogitsProcessor::new(&cfg().with_no_repeat_ngram_size(2));
        let mut s = vec![1.0; 10];
        p.process(&[9, 3, 4, 5, 3], MAXLEN, &mut s);
        assert_eq!(s[4], f32::NEG_INFINITY, "3 4 already occurred");
        assert_eq!(s[5], 1.0);
        let p = LogitsProcessor::new(&cfg().with_repetition_penalty(2.0));
        let mut s = vec![1.0, -1.0, 4.0, 4.0];
        p.process(&[1, 2, 2], MAXLEN, &mut s);
        assert_eq!(s, vec![1.0, -2.0, 2.0, 4.0]);
    }

    /// Wherever `bans` says a step only bans, `process` does exactly that: the fast form and the
    /// full form are the same rule.
    #[test]
    fn the_ban_form_equals_the_full_form() {
        let mut c = cfg().with_no_repeat_ngram_size(2).with_min_new_tokens(3);
        c.bad_words_ids = vec![vec![9], vec![3, 4], vec![5, 6, 7]];
        c.forced_eos_token_id = Some(0);
        c.forced_bos_token_id = Some(8);
        for renormalize in [false, true] {
            c.renormalize_logits = renormalize;
            let p = LogitsProcessor::new(&c);
            let seqs: [&[u32]; 5] = [&[9], &[9, 3], &[9, 5, 6], &[9, 1, 2, 1], &[9, 3, 4, 3, 4]];
            let mut fast_steps = 0;
            for seq in seqs {
                for max_length in [seq.len() + 1, seq.len() + 5] {
                    let row: Vec<f32> =
                        (0..10).map(|i| ((i * 7) % 10) as f32 * 0.3 - 1.0).collect();
                    let mut full = row.clone();
                    p.process(seq, max_length, &mut full);
                    let mut bans = Vec::new();
                    if !p.bans(seq, max_length, &mut bans) {
                        continue;
                    }
                    fast_steps += 1;
                    let mut fast = row;
                    for &t in &bans {
                        fast[t as usize] = f32::NEG_INFINITY;
                    }
                    if renormalize {
                        log_softmax_in_place(&mut fast);
                    }
                    assert_eq!(fast, full, "{seq:?} {max_length}");
                }
            }
            assert_eq!(fast_steps, 4, "forced tokens leave four pure-ban steps");
        }
    }

    #[test]
    fn log_softmax_sums_to_one() {
        let mut s = vec![1.0, 2.0, 3.0, f32::NEG_INFINITY];
        log_softmax_in_place(&mut s);
        let total: f32 = s.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(s[3], f32::NEG_INFINITY);
    }
}
