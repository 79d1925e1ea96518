//! # tolk — Dutch news articles into English, in pure Rust
//!
//! tolk loads a MarianMT translation model (by default `Helsinki-NLP/opus-mt-nl-en`) from the
//! Hugging Face Hub or a local directory, splits an article into sentences, translates them in
//! length-sorted padded batches with greedy or beam search, and condenses the translation into a
//! summary. Its outputs match Hugging Face transformers token for token.
//!
//! ## The pipeline
//!
//! [`Pipeline`] does the whole job; [`Pipeline::run`]
//! returns an [`Output`] with the English article, its summary, every sentence
//! with its byte span, translation, score and token counts, the model's provenance and timings:
//!
//! 1. [`source`]: the model is found (catalogue name, Hub repository or directory; downloaded
//!    once into the Hugging Face cache) and [`translate::Translator`] loads it, once.
//! 2. [`segment`]: the article is cut into headlines, list items, metadata and sentences;
//!    sentences longer than the model can take are cut at clause boundaries, never truncated.
//! 3. [`translate`]: sentences are translated in length-sorted batches
//!    ([`tokenizer`], [`model`], [`generate`]).
//! 4. The translations are put back into the article's layout, and a
//!    [`summarize::Summarizer`] (extractive by default) summarises them.
//!
//! ```
//! use tolk::pipeline::{GenerationOverrides, Pipeline};
//!
//! // A tiny model with random weights, committed for tests: its English is gibberish, but
//! // everything around it is real. (Without the overrides it would use the model's own
//! // settings, here beam search up to 512 tokens, which random weights take all of.)
//! let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/marian-tiny");
//! let pipeline = Pipeline::builder()
//!     .model_dir(model)
//!     .overrides(GenerationOverrides::default().with_max_new_tokens(20))
//!     .build()?;
//!
//! let article = "Kabinet valt\n\nHet kabinet is gevallen. De premier biedt zijn ontslag aan.";
//! let output = pipeline.run(article)?;
//! assert_eq!(output.sentences.len(), 3); // a headline and two sentences
//! assert_eq!(&article[output.sentences[1].span.clone()], "Het kabinet is gevallen.");
//! assert!(output.sentences.iter().all(|s| s.translation.is_some()));
//! let summary = output.summary.as_ref().expect("summaries are on by default");
//! assert_eq!(summary.sentences.len(), 1);
//! println!("{}\n\nSummary: {}", output.translation, summary.text());
//! # Ok::<(), tolk::Error>(())
//! ```
//!
//! Options go through the builder, and the stages stay usable on their own:
//!
//! ```
//! use tolk::pipeline::{GenerationOverrides, Pipeline, SummarizerChoice};
//! use tolk::segment::SegmentMode;
//! use tolk::summarize::{ExtractiveOptions, SummaryLength};
//! use tolk::translate::BatchOptions;
//!
//! let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/marian-tiny");
//! let pipeline = Pipeline::builder()
//!     .model_dir(model)
//!     .overrides(GenerationOverrides::default().with_num_beams(2).with_max_new_tokens(16))
//!     .batching(BatchOptions::default().with_max_batch_size(8))
//!     .segment_mode(SegmentMode::Lines)
//!     .summarizer(SummarizerChoice::Extractive(
//!         ExtractiveOptions::default().with_length(SummaryLength::Sentences(1)),
//!     ))
//!     .build()?;
//! let output = pipeline.run("Eerste regel\nTweede regel")?;
//! assert_eq!(output.sentences.len(), 2);
//!
//! // The translator alone: one result per input, in order.
//! let translations = pipeline.translator().translate(&["Goedemorgen.", "Tot ziens."])?;
//! assert_eq!(translations.len(), 2);
//! # Ok::<(), tolk::Error>(())
//! ```
//!
//! [`batch::BatchRunner`] processes a directory of articles with one pipeline, [`input`] decodes
//! files (UTF-8, UTF-16, with clear errors for binary and invalid input) and [`output`] renders
//! the output formats. [`stream`] translates inputs too large to hold (over 1 MiB) block by block,
//! in bounded memory.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod align;
pub mod batch;
pub mod cache;
pub mod config;
pub mod corpus;
pub mod document;
pub mod error;
pub mod formats;
pub mod fsutil;
pub mod generate;
pub mod input;
mod kernels;
pub mod model;
pub mod output;
pub mod pipeline;
mod proto;
pub mod record;
pub mod runtime;
pub mod scheduler;
pub mod segment;
#[cfg(feature = "serve")]
pub mod serve;
pub mod source;
pub mod stream;
pub mod summarize;
pub mod tokenizer;
pub mod translate;
pub mod weights;

pub use error::{Error, Result};
pub use pipeline::Pipeline;
pub use record::Output;
