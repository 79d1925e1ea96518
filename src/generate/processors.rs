//! Logits processors: the small rules that reshape one row of next-token scores before a token is
//! chosen, in the order and with the arithmetic of transformers' `LogitsProcessorList`.

use crate::config::GenerationConfig;

/// The processors a [`GenerationConfig`] asks for, applied together to one row of scores.
#[derive(Debug, Clone)]
pub struct LogitsProcessor {
    repetition_penalty: f32,
    no_repeat_ngram_size: usize,
    /// Single banned tokens.
    banned: Vec<u32>,
    /// Banned sequences longer than one token: (prefix, last token).
    banned_sequences: Vec<(Vec<u32>, u32)>,
    min_length: usize,
    forced_bos: Option<u32>,
    forced_eos: Option<u32>,
    max_length: usize,
    eos: u32,
    renormalize: bool,
}

impl LogitsProcessor {
    /// Builds the processors for `cfg`, with the resolved decoder `max_length`.
    pub fn new(cfg: &GenerationConfig, max_length: usize) -> Self {
        let mut banned = Vec::new();
        let mut banned_sequences = Vec::new();
        for seq in &cfg.bad_words_ids {
            // transformers drops `[eos]` from the bad words: it must stay reachable.
            match seq.as_slice() {
                [] => {}
                [t] if *t == cfg.eos_token_id => {}
                [t] => banned.push(*t),
                [prefix @ .., last] => banned_sequences.push((prefix.to_vec(), *last)),
            }
        }
        LogitsProcessor {
            repetition_penalty: cfg.repetition_penalty,
            no_repeat_ngram_size: cfg.no_repeat_ngram_size,
            banned,
            banned_sequences,
            min_length: cfg.min_decoder_length(),
            forced_bos: cfg.forced_bos_token_id,
            forced_eos: cfg.forced_eos_token_id,
            max_length,
            eos: cfg.eos_token_id,
            renormalize: cfg.renormalize_logits,
        }
    }

    /// Whether the last step is a log-softmax (the processed scores are log-probabilities).
    pub fn renormalizes(&self) -> bool {
        self.renormalize
    }

    /// The tokens this step bans for `seq` (into `out`), when banning is all the processors do at
    /// this step; false when a processor changes scores in another way (repetition penalty, a
    /// forced token), and the full [`process`](Self::process) must run.
    pub fn bans(&self, seq: &[u32], out: &mut Vec<u32>) -> bool {
        out.clear();
        let cur_len = seq.len();
        if self.repetition_penalty != 1.0
            || (self.forced_bos.is_some() && cur_len == 1)
            || (self.forced_eos.is_some() && cur_len + 1 == self.max_length)
        {
            return false;
        }
        let n = self.no_repeat_ngram_size;
        if n > 0 && cur_len >= n {
            let prefix = &seq[cur_len + 1 - n..];
            for w in seq.windows(n) {
                if w[..n - 1] == *prefix {
                    out.push(w[n - 1]);
                }
            }
        }
        out.extend_from_slice(&self.banned);
        for (prefix, last) in &self.banned_sequences {
            if prefix.len() <= cur_len && seq[cur_len - prefix.len()..] == prefix[..] {
                out.push(*last);
            }
        }
        if cur_len < self.min_length {
            out.push(self.eos);
        }
        true
    }

    /// Processes `scores` in place; `seq` is the decoder sequence so far, start token included.
    pub fn process(&self, seq: &[u32], scores: &mut [f32]) {
        let vocab = scores.len();
        let cur_len = seq.len();
        if self.repetition_penalty != 1.0 {
            let p = self.repetition_penalty;
            let mut seen = vec![false; vocab];
            for &t in seq {
                let t = t as usize;
                if t < vocab && !seen[t] {
                    seen[t] = true;
                    let s = scores[t];
                    scores[t] = if s < 0.0 { s * p } else { s / p };
                }
            }
        }
        let n = self.no_repeat_ngram_size;
        if n > 0 && cur_len >= n {
            let prefix = &seq[cur_len + 1 - n..];
            for w in seq.windows(n) {
                if w[..n - 1] == *prefix {
                    if let Some(s) = scores.get_mut(w[n - 1] as usize) {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
        }
        for &t in &self.banned {
            if let Some(s) = scores.get_mut(t as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
        for (prefix, last) in &self.banned_sequences {
            if prefix.len() <= cur_len && seq[cur_len - prefix.len()..] == prefix[..] {
                if let Some(s) = scores.get_mut(*last as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        if cur_len < self.min_length {
            if let Some(s) = scores.get_mut(self.eos as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
        if let Some(bos) = self.forced_bos {
            if cur_len == 1 {
                force(scores, bos);
            }
        }
        if let Some(eos) = self.forced_eos {
            if cur_len + 1 == self.max_length {
                force(scores, eos);
            }
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
        let p = LogitsProcessor::new(&c, 20);
        let mut s = vec![1.0; 10];
        p.process(&[9, 3], &mut s);
        assert_eq!(s[9], f32::NEG_INFINITY);
        assert_eq!(s[0], 1.0);
        assert_eq!(s[4], f32::NEG_INFINITY, "sequence [3, 4] completes after 3");
        let mut s = vec![1.0; 10];
        p.process(&[9, 2], &mut s);
        assert_eq!(s[4], 1.0);
    }

    #[test]
    fn min_length_and_forced_eos() {
        let p = LogitsProcessor::new(&cfg().with_min_new_tokens(2), 5);
        let mut s = vec![1.0; 10];
        p.process(&[9, 1], &mut s);
        assert_eq!(s[0], f32::NEG_INFINITY, "one token generated, two required");
        let mut s = vec![1.0; 10];
        p.process(&[9, 1, 2], &mut s);
        assert_eq!(s[0], 1.0);
        let mut c = cfg();
        c.forced_eos_token_id = Some(0);
        let p = LogitsProcessor::new(&c, 5);
        let mut s = vec![1.0; 10];
        p.process(&[9, 1, 2, 3], &mut s);
        assert_eq!(s[0], 0.0);
        assert!(s[1..].iter().all(|&x| x == f32::NEG_INFINITY));
    }

    #[test]
    fn no_repeat_ngram_and_repetition_penalty() {
        let p = LogitsProcessor::new(&cfg().with_no_repeat_ngram_size(2), 50);
        let mut s = vec![1.0; 10];
        p.process(&[9, 3, 4, 5, 3], &mut s);
        assert_eq!(s[4], f32::NEG_INFINITY, "3 4 already occurred");
        assert_eq!(s[5], 1.0);
        let p = LogitsProcessor::new(&cfg().with_repetition_penalty(2.0), 50);
        let mut s = vec![1.0, -1.0, 4.0, 4.0];
        p.process(&[1, 2, 2], &mut s);
        assert_eq!(s, vec![1.0, -2.0, 2.0, 4.0]);
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
