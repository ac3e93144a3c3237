//! daydream: runs LLM experiment pipelines the way a build system builds code.
//!
//! The layers, each using only those above it in this list (README.md, "Architecture"):
//! - `engine`: reads `pipeline.yaml` into typed stages, plans them with salsa, keeps the store,
//!   writes outputs. It knows no kind.
//! - `llm`: the OpenAI-compatible client, the executor of calls, the local model, providers,
//!   and the remote answer cache on an object store (S3 or a directory).
//! - `seed`: what reproduces the original pipeline byte for byte: its parsers, pandas-compatible
//!   summaries, ledgers, combination ids and the results page.
//! - `kinds`: every stage kind, registered in one place.
//! - `commands`: the command line.

pub mod commands;
pub mod engine;
pub mod kinds;
pub mod llm;
pub mod seed;
