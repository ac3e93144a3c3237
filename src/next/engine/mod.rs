//! The engine: reads pipeline.yaml into typed stages (`spec`, `fields`, `yaml`), computes their
//! values with salsa (`db`, `cx`), plans and prepares their artifacts against the store
//! (`plan`), writes them (`write`) and drives a run (`run`). It knows no kind: every stage is
//! reached through the traits of `kind`, and the kinds a pipeline may use are handed to it.

pub mod cx;
pub mod db;
pub mod fields;
pub mod kind;
pub mod plan;
pub mod providers;
pub mod rows;
pub mod run;
pub mod spec;
pub mod write;
pub mod yaml;
