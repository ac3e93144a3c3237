//! The report's inputs from the committed results fixture (`tests/fixtures/results/`): its
//! expected summary tables, with a run summary written by hand to match its files (the fixture
//! has no store to read one from).
#![allow(dead_code)]

use std::path::PathBuf;

use daydream::seed::report::{Links, ModelCalls, ReportInputs, RunSummary, StageRun, read_table};

pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results")
}

pub fn expected(name: &str) -> String {
    std::fs::read_to_string(fixture().join("expected").join(name)).unwrap()
}

pub fn inputs() -> ReportInputs {
    let table = |name: &str| read_table(&fixture().join("expected").join(name)).unwrap();
    ReportInputs {
        parsed_scores: table("parsed_scores.csv"),
        final_results: table("final_results.csv"),
        generation_pivot: table("generation_scores_pivot.csv"),
        perfect_paths: table("perfect_score_paths.csv"),
        evaluator_agreement: table("evaluator_agreement_analysis.csv"),
        links: Links::default(),
    }
}

/// 4 generation tasks, 24 evaluation tasks of which 18 have a response on disk.
pub fn run() -> RunSummary {
    let stage = |name: &str, kind: &str, done, failed| StageRun {
        name: name.into(),
        kind: kind.into(),
        done,
        cached: 0,
        failed,
        last_ran: Some("2025-07-01T12:00:00.000Z".into()),
    };
    let calls = |stage: &str, model: &str, calls, failed, empty, tokens: (u64, u64), cost| ModelCalls {
        stage: stage.into(),
        model: model.into(),
        calls,
        failed,
        truncated: 0,
        empty,
        prompt_tokens: tokens.0,
        completion_tokens: tokens.1,
        cost_recorded_usd: cost,
        cost_estimated_usd: 0.0,
        served: vec![model.to_owned()],
    };
    RunSummary {
        stages: vec![
            stage("generation_tasks", "generation_tasks", 1, 0),
            stage("evaluation_tasks", "evaluation_tasks", 1, 0),
            stage("generation_prompt", "generation_prompt", 4, 0),
            stage("generation_response", "generation_response", 4, 0),
            stage("parsed_generation_responses", "parsed_generation_responses", 4, 0),
            stage("evaluation_prompt", "evaluation_prompt", 24, 0),
            stage("evaluation_response", "evaluation_response", 18, 6),
            stage("parsed_scores", "parsed_scores", 1, 0),
            stage("summaries", "summaries", 6, 0),
        ],
        calls: vec![
            calls("generation_response", "deepseek_r1_p", 2, 0, 0, (1_840, 6_210), 0.0151),
            calls(
                "generation_response",
                "gemini_2.5_flash",
                2,
                0,
                0,
                (1_840, 3_905),
                0.0104,
            ),
            calls("evaluation_response", "gemini_25_pro", 8, 4, 0, (17_600, 9_120), 0.1132),
            calls("evaluation_response", "sonnet-4", 10, 2, 1, (22_000, 8_450), 0.1928),
        ],
        failures: vec![("timeout".into(), 4), ("server error (5xx)".into(), 2)],
        in_memory: vec![],
        offline: None,
    }
}
