//! # tolk — Dutch news articles into English, in pure Rust
//!
//! tolk loads a MarianMT translation model (by default `Helsinki-NLP/opus-mt-nl-en`) from the
//! Hugging Face Hub or a local directory, splits an article into sentences, translates them in
//! length-sorted padded batches with greedy or beam search, and condenses the translation into a
//! summary. Its outputs match Hugging Face transformers token for token.

#![warn(missing_docs)]

pub mod cache;
pub mod config;
pub mod error;
pub mod generate;
pub mod kernels;
pub mod model;
pub mod segment;
pub mod source;
pub mod summarize;
pub mod tokenizer;
pub mod translate;
pub mod weights;

pub use error::{Error, Result};
