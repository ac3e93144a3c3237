//! daydream: runs LLM experiment pipelines the way a build system builds code.
//!
//! See README.md, section Architecture, for how the modules fit together.

pub mod calls;
pub mod cli;
pub mod clock;
pub mod combos;
pub mod concepts;
pub mod db;
pub mod diag;
pub mod engine;
pub mod explain;
pub mod fsutil;
pub mod import;
pub mod key;
pub mod llm;
pub mod llmstage;
pub mod local;
pub mod models;
pub mod parsing;
pub mod progress;
pub mod prompt;
pub mod pyfmt;
pub mod rebuild;
pub mod remote;
pub mod report;
pub mod results;
pub mod spec;
pub mod store;
pub mod summaries;
pub mod table;
pub mod tasks;
pub mod templates;
pub mod text;
pub mod watch;
