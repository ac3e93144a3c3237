//! The pipeline language under construction: a generic engine and the kinds it runs.
pub mod commands;
pub mod engine;
pub mod kinds;
