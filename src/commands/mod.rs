//! The commands of the command line, above the engine and the kinds.

pub mod cache;
pub mod cli;
pub mod explain;
pub mod gc;
pub mod import;
pub mod rebuild;
pub mod run;
pub mod schema;
pub mod watch;
