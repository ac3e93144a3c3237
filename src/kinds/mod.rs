//! Every stage kind, registered in one place. Generic kinds build any pipeline; the DayDreaming
//! kinds (concepts, combinations, summaries, ledgers, report) hold what is truly that
//! experiment's, and read other stages by shape, not by kind.

use crate::engine::spec::Registry;

pub mod collect;
pub mod combinations;
pub mod command;
pub mod concepts;
pub mod cross;
pub mod jinja;
pub mod ledgers;
pub mod llm;
pub mod lookup;
pub mod parse;
pub mod prompt;
pub mod report;
pub mod summaries;
pub mod table;

pub fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        kinds: vec![
            &table::TableKind,
            &cross::CrossKind,
            &prompt::PromptKind,
            &llm::LlmKind,
            &parse::ParseKind,
            &collect::CollectKind,
            &command::CommandKind,
            &concepts::ConceptsKind,
            &combinations::CombinationsKind,
            &summaries::SummariesKind,
            &ledgers::LedgersKind,
            &report::ReportKind,
        ],
        upgrades: vec![crate::llm::provider::upgrade_store],
    })
}
