//! tolk's integration tests: one test binary, one module per topic.

mod abstractive;
mod cli;
mod cli_batch;
mod cli_logs;
mod common;
// Runs the deploy scripts with sh and bash.
#[cfg(unix)]
mod deploy;
mod documents;
mod formats;
mod invariants;
mod languages;
mod model_files;
mod multilingual;
mod parity;
mod pipeline;
mod progress;
#[cfg(feature = "hub")]
mod real_model;
mod stream;
mod tokenizer;
// Downloads need the `hub` feature; directories and the catalogue are also covered by unit tests.
#[cfg(feature = "hub")]
mod hub_server;
#[cfg(feature = "serve")]
mod serve;
#[cfg(feature = "hub")]
mod source;
