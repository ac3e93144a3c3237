//! What reproduces the original pipeline (`spec/seed-spec.md`) byte for byte, used by the
//! DayDreaming kinds and commands: the score and essay parsers, the concepts and their
//! combination ids, the pandas-compatible summaries and Python number format, the ledgers, and
//! the results page. Pure: no I/O but the page's reading of tables.

pub mod combos;
pub mod concepts;
pub mod ledgers;
pub mod parsing;
pub mod pyfmt;
pub mod report;
pub mod summaries;
