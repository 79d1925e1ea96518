//! Tokenization for Marian (OPUS-MT) models, in pure Rust and exact to the id against
//! transformers 5.24's `MarianTokenizer` and sentencepiece 0.2; and for BART-family models
//! ([`bpe`]: byte-level BPE on the `tokenizers` crate, exact against `BartTokenizer`).
//!
//! The Marian pipeline, stage by stage:
//! 1. [`moses`] — optional Moses punctuation normalisation (sacremoses' `MosesPunctNormalizer`),
//!    off by default like in transformers;
//! 2. [`marian`] — splitting around special tokens, `>>xx<<` language codes, vocabulary lookup
//!    through `vocab.json`, `</s>`; decoding back to text;
//! 3. [`sentencepiece`] — the SentencePiece model: its protobuf file (`proto`), the normaliser
//!    with its precompiled character map (`normalizer`), and the unigram Viterbi segmentation
//!    (`unigram`), plus piece decoding.

pub mod bpe;
pub mod marian;
pub mod moses;
pub mod nllb;
mod normalizer;
pub mod sentencepiece;
mod spm_bpe;
mod translation;
mod trie;
mod unigram;

pub use crate::proto::{ModelType, PieceType};
pub use bpe::BpeTokenizer;
pub use marian::MarianTokenizer;
pub use moses::MosesPunctNormalizer;
pub use nllb::NllbTokenizer;
pub use sentencepiece::{Piece, SentencePieceModel};
pub use translation::TranslationTokenizer;

#[cfg(test)]
mod tests;
