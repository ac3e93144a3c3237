//! `daydream gc`: old prompt versions go, the last `keep_versions` stay (a revert within them
//! restores without recomputing), paid answers always stay unless `--answers` (then a run gets
//! them back from the remote without a call), `--dry-run` changes nothing, and watch mode keeps
//! the store bounded.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::mock::{MockServer, Reply};
use common::{Space, counts, outputs};

const TEMPLATE: &str = "templates/generation/creative-synthesis-v5.txt";
const TEMPLATES_CSV: &str = "data/1_raw/generation_templates.csv";

fn store(s: &Space) -> rusqlite::Connection {
    rusqlite::Connection::open(s.path(".daydream/store.db")).unwrap()
}

/// Rows per table of the store.
fn rows(s: &Space) -> BTreeMap<String, i64> {
    let c = store(s);
    ["blobs", "actions", "calls", "outputs", "superseded"]
        .iter()
        .map(|t| {
            let n: i64 = c
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap();
            (t.to_string(), n)
        })
        .collect()
}

/// The shipped project with one more template active: 50 prompts.
fn two_templates(s: &Space) {
    s.edit(
        TEMPLATES_CSV,
        "creative-synthesis-v5,Creative Synthesis V5,Less empty metaphores,false",
        "creative-synthesis-v5,Creative Synthesis V5,Less empty metaphores,true",
    );
}

/// Edit number `i` of the template: each makes 25 new prompts, 5 distinct ones (the five
/// generation models of a combination share one prompt): 5 new versions in the store.
fn edit(s: &Space, i: usize) {
    let text = s.read(TEMPLATE);
    let base = text.split("\n<!-- edit").next().unwrap().to_owned();
    if i == 0 {
        s.write(TEMPLATE, &base);
    } else {
        s.write(TEMPLATE, &format!("{base}\n<!-- edit {i} -->"));
    }
}

#[test]
fn gc_frees_old_prompt_versions_and_keeps_the_last_k() {
    let s = Space::shipped();
    two_templates(&s);
    s.write(
        "pipeline.yaml",
        &s.read("pipeline.yaml")
            .replace("\nstages:\n", "\ncache:\n  keep_versions: 2\n\nstages:\n"),
    );
    assert_eq!(counts(&s.ok(&["run"]), "generation_prompt"), (50, 0, 0));
    for i in 1..=5 {
        edit(&s, i);
        assert_eq!(counts(&s.ok(&["run"]), "generation_prompt"), (25, 0, 25));
    }
    let before = rows(&s);
    let out = s.ok(&["gc"]);
    // 50 prompts are 10 distinct ones; 5 edits made 5 x 5 versions beside the current 10: with
    // keep 2, the 2 x 10 most recent stay (edits 1 to 4), the original's 5 go
    assert!(out.contains("generation_prompt: removed 5 old versions"), "{out}");
    let after = rows(&s);
    assert_eq!(before["actions"] - after["actions"], 5, "{before:?} {after:?}");
    assert!(after["blobs"] < before["blobs"], "{before:?} {after:?}");
    // the current state: nothing to do
    let run = s.ok(&["run"]);
    assert!(run.contains("executed 0"), "{run}");
    // edit 4 is within the kept versions: restored, not rendered again
    edit(&s, 4);
    assert_eq!(counts(&s.ok(&["run"]), "generation_prompt"), (0, 25, 25));
    // the original is beyond them: rendered again
    edit(&s, 0);
    assert_eq!(counts(&s.ok(&["run"]), "generation_prompt"), (25, 0, 25));
}

#[test]
fn keep_zero_keeps_only_what_the_pipeline_reads_and_a_run_after_it_does_nothing() {
    let s = Space::shipped();
    two_templates(&s);
    s.ok(&["run"]);
    for i in 1..=3 {
        edit(&s, i);
        s.ok(&["run"]);
    }
    let before = std::fs::metadata(s.path(".daydream/store.db")).unwrap().len();
    let out = s.ok(&["gc", "--keep", "0"]);
    assert!(out.contains("removed 15 old versions"), "{out}");
    assert!(
        out.contains("converted to incremental vacuum") || out.contains("freed"),
        "{out}"
    );
    let after = std::fs::metadata(s.path(".daydream/store.db")).unwrap().len();
    assert!(after <= before, "{before} -> {after}");
    let snap = s.snapshot("data");
    let run = s.ok(&["run"]);
    assert!(run.contains("executed 0, reused 0"), "{run}");
    assert_eq!(common::changed(&snap, &s.snapshot("data")), Vec::<String>::new());
    // the store is consistent
    let ok: String = store(&s).query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn dry_run_changes_nothing() {
    let s = Space::shipped();
    two_templates(&s);
    s.ok(&["run"]);
    edit(&s, 1);
    s.ok(&["run"]);
    // a checkpoint first, so that the file alone holds the store
    store(&s)
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let bytes = std::fs::read(s.path(".daydream/store.db")).unwrap();
    let before = rows(&s);
    let out = s.ok(&["gc", "--dry-run", "--keep", "0"]);
    assert!(out.contains("would remove 5 old versions"), "{out}");
    assert!(out.contains("nothing was changed"), "{out}");
    assert_eq!(rows(&s), before);
    assert!(
        std::fs::read(s.path(".daydream/store.db")).unwrap() == bytes,
        "the store file changed"
    );
}

/// The shipped project with its LLM stages on a mock: 10 calls.
fn paid(mock: &MockServer, remote: Option<&str>) -> Space {
    let s = Space::shipped_with_llm();
    s.use_mock(&mock.base_url());
    s.use_models(&["vendor/a"]);
    s.use_rubrics(&["style-coherence"]);
    if let Some(remote) = remote {
        s.edit(
            "pipeline.yaml",
            "\nstages:\n",
            &format!("\ncache:\n  remote: \"{remote}\"\n\nstages:\n"),
        );
    }
    s
}

fn answers(s: &Space) -> i64 {
    store(s)
        .query_row(
            "SELECT count(*) FROM actions WHERE key IN (SELECT key FROM calls)",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn paid_answers_survive_gc_even_with_keep_zero_and_old_prompts() {
    let mock = MockServer::start(Reply::echo);
    let s = paid(&mock, None);
    s.ok(&["run"]);
    assert_eq!(mock.count(), 10);
    let paid = answers(&s);
    assert!(paid >= 10);
    // a generation template edit: new prompts, new answers; the old answers are no current output's
    let path = "templates/generation/creative-synthesis-v7.txt";
    if s.path(path).exists() {
        s.write(path, &format!("{}\nedited", s.read(path)));
    }
    s.ok(&["run"]);
    let paid = answers(&s);
    mock.clear();
    let out = s.ok(&["gc", "--keep", "0"]);
    assert!(out.contains(&format!("{paid} paid answers")), "{out}");
    assert_eq!(answers(&s), paid);
    let before = outputs(&s);
    s.ok(&["run"]);
    assert_eq!(mock.count(), 0);
    assert_eq!(outputs(&s), before);
    // and every answer is still there after a gc: the calls ledger is whole
    let calls: i64 = store(&s)
        .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))
        .unwrap();
    assert!(calls >= 10);
}

#[test]
fn answers_without_a_remote_is_an_error_saying_what_to_do() {
    let mock = MockServer::start(Reply::echo);
    let s = paid(&mock, None);
    s.ok(&["run"]);
    let paid = answers(&s);
    let err = s.fails(&["gc", "--answers"], 2);
    assert!(err.contains("remote") && err.contains("--force"), "{err}");
    assert_eq!(answers(&s), paid);
    let err = s.fails(&["gc", "--force"], 2);
    assert!(err.contains("--answers"), "{err}");
}

#[test]
fn answers_the_remote_holds_go_and_a_run_fetches_them_back_without_a_call() {
    let shared = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", shared.path().display());
    let mock = MockServer::start(Reply::echo);
    let s = paid(&mock, Some(&remote));
    s.ok(&["run"]);
    assert_eq!(mock.count(), 10);
    let before = outputs(&s);
    let calls = rows(&s)["calls"];
    let out = s.ok(&["gc", "--answers"]);
    assert!(out.contains("the content of 10 paid answers"), "{out}");
    assert_eq!(answers(&s), 0);
    assert_eq!(rows(&s)["calls"], calls, "call records are never removed");
    // the files under data/ go too: the run must restore them from the remote
    std::fs::remove_dir_all(s.path("data/3_generation")).unwrap();
    std::fs::remove_dir_all(s.path("data/4_evaluation")).unwrap();
    mock.clear();
    let run = s.ok(&["run"]);
    assert_eq!(mock.count(), 0, "{run}");
    assert_eq!(outputs(&s), before);
}

#[test]
fn answers_force_removes_every_answer_with_a_warning() {
    let mock = MockServer::start(Reply::echo);
    let s = paid(&mock, None);
    s.ok(&["run"]);
    let out = s.ok(&["gc", "--answers", "--force"]);
    assert!(out.contains("warning:") && out.contains("pays for them again"), "{out}");
    assert_eq!(answers(&s), 0);
    assert!(rows(&s)["calls"] >= 10, "call records stay");
}

fn db_size(root: &Path) -> u64 {
    ["store.db", "store.db-wal"]
        .iter()
        .map(|f| {
            std::fs::metadata(root.join(".daydream").join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn watch_mode_collects_between_rebuilds() {
    let s = Space::shipped();
    two_templates(&s);
    s.write(
        "pipeline.yaml",
        &s.read("pipeline.yaml")
            .replace("\nstages:\n", "\ncache:\n  keep_versions: 1\n\nstages:\n"),
    );
    let _child = Killed(
        s.command(&["run", "--watch"])
            .env("DAYDREAM_GC_EVERY", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let actions = |s: &Space| -> i64 {
        store(s)
            .query_row(
                "SELECT count(*) FROM actions WHERE stage='generation_prompt'",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0)
    };
    let wait = |what: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !what() {
            assert!(start.elapsed().as_secs() < 60, "timed out");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait(&|| s.path("data/3_generation/generation_prompts").exists() && actions(&s) >= 10);
    for i in 1..=6 {
        edit(&s, i);
        wait(&|| s.read(&first_prompt(&s)).contains(&format!("edit {i} -->")));
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // the current 10 distinct prompts and 1 earlier version of each: at most 20 (6 edits made 40).
    // A collection stopped by an event that needs no rebuild waits for the next rebuild (known,
    // in the issue-19 note): under load, one more save brings it
    let start = std::time::Instant::now();
    let mut i: usize = 7;
    while actions(&s) > 20 {
        assert!(start.elapsed().as_secs() < 90, "timed out: {} actions", actions(&s));
        if start.elapsed().as_secs() > 10 * (i as u64 - 6) {
            edit(&s, i);
            i += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(db_size(&s.path("")) > 0);
}

/// A child process killed when the test ends, passed or failed.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn first_prompt(s: &Space) -> String {
    let dir = s.path("data/3_generation/generation_prompts");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    format!("data/3_generation/generation_prompts/{}", names[0])
}
