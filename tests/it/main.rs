//! tolk's integration tests: one test binary, one module per topic.

mod common;
mod parity;
mod tokenizer;
