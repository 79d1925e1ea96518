//! tolk's integration tests: one test binary, one module per topic.

mod common;
mod invariants;
mod parity;
mod tokenizer;
