//! The commands of the command line, above the engine and the kinds.
pub mod schema;
