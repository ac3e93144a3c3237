//! Calling LLMs: the OpenAI-compatible client (`client`), the executor that makes a stage's
//! calls within the run's limits and commits every answer first (`executor`, `record`), the
//! providers and call keys (`provider`), secrets kept out of everything (`secrets`), the local
//! model daydream starts (`local`), and what a run says while it calls (`progress`).

pub mod client;
pub mod executor;
pub mod local;
pub mod progress;
pub mod provider;
pub mod record;
pub mod remote;
pub mod secrets;
pub mod session;
pub mod shared;
