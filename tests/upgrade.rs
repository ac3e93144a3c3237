//! A store written by daydream before the pipeline language (version 1 of pipeline.yaml, the
//! DayDreaming stages as kinds: tests/fixtures/upgrade_v1, see its README) keeps its paid answers
//! under today's shipped pipeline: a run makes no call, and writes the very bytes it wrote.
//!
//! The fixture's answers were recorded with both providers pointed at 127.0.0.1:47311, and an
//! answer's key holds its endpoint, so the runs here point there too; nothing listens on that
//! port, so a call the store does not answer fails the run's counts below.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{Space, counts, repo};

const ENDPOINT: &str = "http://127.0.0.1:47311/v1";
const CALL_STAGES: [&str; 2] = ["generation_response", "evaluation_response"];

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/upgrade_v1")
}

/// The shipped project with the fixture's trimmed CSVs and outputs over it, and its store.
fn project() -> Space {
    let s = Space::shipped_with_llm();
    s.copy_in(&fixture().join("data"), "data");
    std::fs::create_dir_all(s.path(".daydream")).unwrap();
    std::fs::copy(fixture().join("store.db"), s.path(".daydream/store.db")).unwrap();
    s
}

/// Every file under the fixture's data/, by its path in the project.
fn fixture_files() -> BTreeMap<String, Vec<u8>> {
    let root = fixture();
    walkdir::WalkDir::new(root.join("data"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Removes every output but the combo registry (a ledger `clean` keeps too): what is left to
/// come back is the store's.
fn delete_outputs(s: &Space) {
    for e in std::fs::read_dir(s.path("data")).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "1_raw" && e.file_type().unwrap().is_dir() {
            std::fs::remove_dir_all(e.path()).unwrap();
        }
    }
}

/// Runs and checks that no call was made or failed: every answer came from the store.
fn run_without_calls(s: &Space) -> String {
    let out = s.ok(&["run"]);
    for stage in CALL_STAGES {
        let (executed, reused, unchanged) = counts(&out, stage);
        assert_eq!(executed, 0, "{stage} asked again:\n{out}");
        assert_eq!(reused + unchanged, 5, "{stage}:\n{out}");
    }
    assert!(!out.contains("failed"), "{out}");
    assert!(!out.contains("requests:"), "{out}");
    out
}

/// The fixture's files that differ in the project (all, but those `skip` says).
fn differing(s: &Space, skip: impl Fn(&str) -> bool) -> Vec<String> {
    let files = fixture_files();
    assert!(files.len() > 40, "the fixture has its outputs");
    files
        .into_iter()
        .filter(|(rel, _)| !skip(rel))
        .filter(|(rel, bytes)| std::fs::read(s.path(rel)).ok().as_ref() != Some(bytes))
        .map(|(rel, _)| rel)
        .collect()
}

fn openrouter(s: &Space) {
    s.set_env("OPENROUTER_BASE_URL", ENDPOINT);
    s.set_env("OPENROUTER_API_KEY", "sk-test-SECRET-0123456789");
}

fn local(s: &Space) {
    s.set_env("DAYDREAM_PROVIDER", "local");
    s.set_env("LOCAL_BASE_URL", ENDPOINT);
}

#[test]
fn openrouter_answers_of_a_version_1_store_are_kept_with_their_outputs_in_place() {
    let s = project();
    openrouter(&s);
    run_without_calls(&s);
    assert_eq!(differing(&s, |_| false), Vec::<String>::new());
    // and the next run has nothing to do
    let out = s.ok(&["run"]);
    assert!(out.contains("done: executed 0, reused 0,"), "{out}");
}

#[test]
fn openrouter_answers_of_a_version_1_store_come_back_byte_for_byte() {
    let s = project();
    openrouter(&s);
    delete_outputs(&s);
    let out = run_without_calls(&s);
    for stage in CALL_STAGES {
        assert_eq!(counts(&out, stage).1, 5, "{stage} restored:\n{out}");
    }
    assert_eq!(differing(&s, |_| false), Vec::<String>::new());
}

/// The local model's call records the fixture's store holds, by task.
fn local_records() -> BTreeMap<String, serde_json::Value> {
    // a copy: SQLite writes beside a database in WAL mode even to read it
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture().join("store.db"), dir.path().join("store.db")).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    let mut q = db.prepare("SELECT task, record FROM calls").unwrap();
    let rows = q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .map(|(task, record)| (task, serde_json::from_str::<serde_json::Value>(&record).unwrap()))
        .filter(|(_, r)| r["provider"] == "local")
        .collect::<BTreeMap<_, _>>();
    assert_eq!(rows.len(), 10, "5 generations and 5 evaluations");
    rows
}

/// The answers are the local model's: each call record beside an answer is the one the local
/// run recorded, and the ledgers list those calls.
fn assert_local_answers(s: &Space) {
    let records = local_records();
    for (task, record) in &records {
        let dir = if record["stage"] == "generation_response" {
            "data/3_generation/generation_responses"
        } else {
            "data/4_evaluation/evaluation_responses"
        };
        let side: serde_json::Value = serde_json::from_str(&s.read(&format!("{dir}/{task}.json"))).unwrap();
        assert_eq!(&side, record, "{task}");
    }
    for phase in ["generation", "evaluation"] {
        let ledger = format!("data/7_cross_experiment/{phase}_results.csv");
        let rows = common::read_csv(s, &ledger);
        assert_eq!(rows.len(), 5, "{ledger}");
        for row in rows {
            let task = &row[&format!("{phase}_task_id")];
            let record = records
                .get(task)
                .unwrap_or_else(|| panic!("{ledger}: no local call for {task}"));
            assert_eq!(
                record["timestamp"],
                row[&format!("{phase}_timestamp")],
                "{ledger} {task}"
            );
            assert_eq!(row["cost_usd"], "0.0", "the local model is free: {ledger} {task}");
        }
    }
}

/// The files of the local answers differ from the fixture's (an OpenRouter run) only in their
/// call records and the ledgers listing them: the mock answered both alike.
fn of_the_openrouter_run(rel: &str) -> bool {
    rel.ends_with(".json") || rel.starts_with("data/7_cross_experiment/")
}

#[test]
fn local_answers_of_a_version_1_store_are_kept_with_their_outputs_in_place() {
    let s = project();
    local(&s);
    run_without_calls(&s);
    assert_eq!(differing(&s, of_the_openrouter_run), Vec::<String>::new());
    assert_local_answers(&s);
}

#[test]
fn local_answers_of_a_version_1_store_come_back() {
    let s = project();
    local(&s);
    delete_outputs(&s);
    let out = run_without_calls(&s);
    for stage in CALL_STAGES {
        assert_eq!(counts(&out, stage).1, 5, "{stage} restored:\n{out}");
    }
    assert_eq!(differing(&s, of_the_openrouter_run), Vec::<String>::new());
    assert_local_answers(&s);
}
