//! The engine: reads pipeline.yaml into typed stages (`yaml`, `fields`, `spec`, `providers`, `cache`),
//! computes their values with salsa (`db`, `cx`), plans and prepares their artifacts against the
//! store (`plan`), writes them (`write`) and drives a run (`run`). It knows no kind: every stage
//! is reached through the traits of `kind`, and the kinds a pipeline may use are handed to it.
//! Beneath: action keys (`keys`), the store (`store`), atomic writes and the lock (`fsutil`),
//! diagnostics, CSV tables, Python text rules and timestamps.

pub mod cache;
pub mod clock;
pub mod cx;
pub mod db;
pub mod diag;
pub mod fields;
pub mod fsutil;
pub mod keys;
pub mod kind;
pub mod paths;
pub mod plan;
pub mod providers;
pub mod rows;
pub mod run;
pub mod spec;
pub mod store;
pub mod table;
pub mod text;
pub mod write;
pub mod yaml;
