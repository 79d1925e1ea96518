//! The layer structure of the encoder-decoder, written once for both backends: which sub-layers
//! a layer has and in what order, where each one's layer norm sits (after its residual in
//! Marian and BART, before the sub-layer in M2M100/NLLB), and the norm after a pre-norm stack.
//!
//! A backend implements [`Pass`]: the operations of one encoder pass or decoder step over its
//! own hidden states (host buffers, candle tensors), namely a sub-layer's input (normalised or
//! not), the sub-layer itself (attention with the backend's caches, or the feed-forward block),
//! the residual, and the final norm. [`run`] drives them; a family is then a configuration
//! ([`crate::config::ModelConfig`]) and a checkpoint mapping ([`super::checkpoint`]).

use crate::error::Result;

/// A sub-layer of a transformer layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    /// Self-attention (causal, over the cache, in the decoder).
    SelfAttention,
    /// Attention over the encoder's output (decoder only).
    CrossAttention,
    /// The feed-forward block: fc1, the activation, fc2.
    FeedForward,
}

/// An encoder layer's sub-layers, in order.
pub(crate) const ENCODER_LAYER: &[Sub] = &[Sub::SelfAttention, Sub::FeedForward];

/// A decoder layer's sub-layers, in order.
pub(crate) const DECODER_LAYER: &[Sub] =
    &[Sub::SelfAttention, Sub::CrossAttention, Sub::FeedForward];

/// One pass of a stack (the encoder over a batch, or one decoder step) on a backend: the
/// hidden states `x`, the current sub-layer's input and output live in the pass.
pub(crate) trait Pass {
    /// Prepares sub-layer `sub` of layer `layer`'s input: `x` itself, or with `normalize`, `x`
    /// through the sub-layer's layer norm.
    fn input(&mut self, layer: usize, sub: Sub, normalize: bool) -> Result<()>;
    /// Runs the sub-layer on its input into its output (attention includes its output
    /// projection).
    fn sublayer(&mut self, layer: usize, sub: Sub) -> Result<()>;
    /// `x += output`, then with `normalize` `x` through the sub-layer's layer norm.
    fn residual(&mut self, layer: usize, sub: Sub, normalize: bool) -> Result<()>;
    /// The stack's layer norm after its last layer, where it has one.
    fn final_norm(&mut self) -> Result<()>;
}

/// Runs `layers` layers of sub-layers `subs` and the final norm: pre-norm
/// (`x + f(LayerNorm(x))`, M2M100) or post-norm (`LayerNorm(x + f(x))`, Marian, BART).
pub(crate) fn run(pass: &mut impl Pass, layers: usize, subs: &[Sub], pre_norm: bool) -> Result<()> {
    for layer in 0..layers {
        for &sub in subs {
            pass.input(layer, sub, pre_norm)?;
            pass.sublayer(layer, sub)?;
            pass.residual(layer, sub, !pre_norm)?;
        }
    }
    pass.final_norm()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the calls, to pin the order each norm placement gives.
    #[derive(Default)]
    struct Trace(Vec<String>);

    impl Pass for Trace {
        fn input(&mut self, layer: usize, sub: Sub, normalize: bool) -> Result<()> {
            self.0.push(format!(
                "in{layer}{sub:?}{}",
                if normalize { "+norm" } else { "" }
            ));
            Ok(())
        }
        fn sublayer(&mut self, layer: usize, sub: Sub) -> Result<()> {
            self.0.push(format!("f{layer}{sub:?}"));
            Ok(())
        }
        fn residual(&mut self, layer: usize, sub: Sub, normalize: bool) -> Result<()> {
            self.0.push(format!(
                "add{layer}{sub:?}{}",
                if normalize { "+norm" } else { "" }
            ));
            Ok(())
        }
        fn final_norm(&mut self) -> Result<()> {
            self.0.push("final".into());
            Ok(())
        }
    }

    #[test]
    fn norms_go_before_or_after_each_sublayer() {
        let mut post = Trace::default();
        run(&mut post, 1, ENCODER_LAYER, false).unwrap();
        assert_eq!(
            post.0,
            [
                "in0SelfAttention",
                "f0SelfAttention",
                "add0SelfAttention+norm",
                "in0FeedForward",
                "f0FeedForward",
                "add0FeedForward+norm",
                "final"
            ]
        );
        let mut pre = Trace::default();
        run(&mut pre, 2, DECODER_LAYER, true).unwrap();
        assert_eq!(pre.0.len(), 2 * 3 * 3 + 1);
        assert_eq!(
            &pre.0[3..6],
            [
                "in0CrossAttention+norm",
                "f0CrossAttention",
                "add0CrossAttention"
            ]
        );
        assert_eq!(pre.0[9], "in1SelfAttention+norm");
    }
}
