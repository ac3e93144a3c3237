//! A run recomputes only what changed, restores what it already knows, and rewrites nothing else.

mod common;

use common::{Space, changed, counts};

const PROMPTS: &str = "data/3_generation/generation_prompts";

#[test]
fn second_run_executes_nothing_and_rewrites_nothing() {
    let s = Space::shipped();
    let first = s.ok(&["run"]);
    assert_eq!(counts(&first, "generation_prompt"), (25, 0, 0));
    let before = s.snapshot("data");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = s.ok(&["run"]);
    for stage in [
        "content_combinations",
        "generation_tasks",
        "evaluation_tasks",
        "generation_prompt",
    ] {
        let (e, r, _) = counts(&second, stage);
        assert_eq!((e, r), (0, 0), "{stage} did something on a no-op run:\n{second}");
    }
    assert!(second.contains("done: executed 0, reused 0, unchanged 29"), "{second}");
    assert_eq!(changed(&before, &s.snapshot("data")), Vec::<String>::new());
}

#[test]
fn editing_one_concept_rerenders_only_its_combinations() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let before = s.snapshot("data");
    // economic-moat is in 4 of the 5 combinations (5 active concepts, k=4)
    let path = "data/1_raw/concepts/descriptions-paragraph/economic-moat.txt";
    let text = s.read(path);
    s.write(path, &format!("{text} An extra sentence."));
    let out = s.ok(&["run"]);
    assert_eq!(counts(&out, "generation_prompt"), (20, 0, 5), "{out}");
    // task tables do not change: nothing downstream of them is rewritten
    assert_eq!(counts(&out, "generation_tasks"), (0, 0, 1));
    let rewritten = changed(&before, &s.snapshot("data"));
    let prompts: Vec<&String> = rewritten.iter().filter(|p| p.contains("generation_prompts")).collect();
    assert_eq!(prompts.len(), 20);
    assert_eq!(
        rewritten.len(),
        21,
        "the edited description plus 20 prompts: {rewritten:?}"
    );
    // the untouched combination is the one without economic-moat
    let untouched: Vec<_> = before
        .keys()
        .filter(|p| p.contains(PROMPTS) && !rewritten.contains(p))
        .collect();
    assert!(
        untouched.iter().all(|p| p.contains("combo_v1_f0c9d41797ca")),
        "{untouched:?}"
    );
    for p in prompts {
        assert!(s.read(p).contains("An extra sentence."), "{p}");
    }
}

#[test]
fn editing_a_template_rerenders_only_its_prompts() {
    let s = Space::shipped();
    s.edit(
        "data/1_raw/generation_templates.csv",
        "creative-synthesis-v5,Creative Synthesis V5,Less empty metaphores,false",
        "creative-synthesis-v5,Creative Synthesis V5,Less empty metaphores,true",
    );
    let out = s.ok(&["run"]);
    assert_eq!(counts(&out, "generation_prompt"), (50, 0, 0));
    let before = s.snapshot("data");
    s.edit(
        "templates/generation/creative-synthesis-v5.txt",
        "Output format",
        "Output layout",
    );
    let out = s.ok(&["run"]);
    assert_eq!(counts(&out, "generation_prompt"), (25, 0, 25), "{out}");
    let rewritten = changed(&before, &s.snapshot("data"));
    assert!(
        rewritten.iter().all(|p| p.contains("creative-synthesis-v5")),
        "{rewritten:?}"
    );
    assert_eq!(rewritten.len(), 25);
}

#[test]
fn touching_or_reformatting_inputs_recomputes_nothing() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let before = s.snapshot("data/2_tasks");
    let prompts_before = s.snapshot(PROMPTS);
    std::thread::sleep(std::time::Duration::from_millis(20));
    // rewrite every raw file and template with the same bytes (new mtimes)
    for dir in ["data/1_raw", "templates"] {
        for (path, (_, bytes)) in s.snapshot(dir) {
            std::fs::write(s.path(&path), bytes).unwrap();
        }
    }
    // a change of bytes that does not change what is read: trailing whitespace in a description
    let d = "data/1_raw/concepts/descriptions-paragraph/economic-moat.txt";
    let text = s.read(d);
    s.write(d, &format!("{text}\n\n   \n"));
    let out = s.ok(&["run"]);
    assert!(out.contains("done: executed 0, reused 0, unchanged 29"), "{out}");
    assert_eq!(changed(&before, &s.snapshot("data/2_tasks")), Vec::<String>::new());
    assert_eq!(changed(&prompts_before, &s.snapshot(PROMPTS)), Vec::<String>::new());
}

#[test]
fn reverting_an_edit_restores_outputs_from_the_store() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let original = s.snapshot(PROMPTS);
    let t = "templates/generation/creative-synthesis-v6.txt";
    let text = s.read(t);
    s.write(t, &text.replace("Role:", "Persona:"));
    let out = s.ok(&["run"]);
    assert_eq!(counts(&out, "generation_prompt"), (25, 0, 0));
    s.write(t, &text);
    let out = s.ok(&["run"]);
    assert_eq!(
        counts(&out, "generation_prompt"),
        (0, 25, 0),
        "restored, not recomputed:\n{out}"
    );
    let now = s.snapshot(PROMPTS);
    for (path, (_, bytes)) in &original {
        assert_eq!(&now[path].1, bytes, "{path}");
    }
}

#[test]
fn a_deleted_output_is_restored_from_the_store() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let victim = format!("{PROMPTS}/combo_v1_13c725cf02fa_creative-synthesis-v6_deepseek_r1_p.txt");
    let content = s.read(&victim);
    std::fs::remove_file(s.path(&victim)).unwrap();
    std::fs::remove_file(s.path("data/2_tasks/evaluation_tasks.csv")).unwrap();
    let evals_gone = s.run(&["status"]).stdout;
    assert!(
        evals_gone
            .lines()
            .any(|l| l.starts_with("evaluation_tasks") && l.split_whitespace().nth(3) == Some("1")),
        "{evals_gone}"
    );
    let out = s.ok(&["run"]);
    assert_eq!(counts(&out, "generation_prompt"), (0, 1, 24));
    assert_eq!(counts(&out, "evaluation_tasks"), (0, 1, 0));
    assert_eq!(s.read(&victim), content);
}

#[test]
fn a_hand_edited_output_is_reported_and_restored() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let victim = format!("{PROMPTS}/combo_v1_13c725cf02fa_creative-synthesis-v6_deepseek_r1_p.txt");
    let content = s.read(&victim);
    s.write(&victim, "scribbled over");
    let status = s.ok(&["status"]);
    let line = status.lines().find(|l| l.starts_with("generation_prompt")).unwrap();
    assert_eq!(
        line.split_whitespace().take(5).collect::<Vec<_>>(),
        ["generation_prompt", "24", "0", "0", "1"],
        "{status}"
    );
    let out = s.ok(&["run"]);
    assert!(out.contains("1 hand-edited file restored"), "{out}");
    assert_eq!(s.read(&victim), content);
}

#[test]
fn changing_k_max_makes_new_combo_ids_and_keeps_old_registry_rows() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let registry = s.read("data/combo_mappings.csv");
    assert_eq!(registry.lines().count(), 21);
    s.edit("pipeline.yaml", "k_max: 4", "k_max: 3");
    let out = s.ok(&["run"]);
    assert_eq!(counts(&out, "generation_prompt").0, 50);
    let after = s.read("data/combo_mappings.csv");
    assert!(after.starts_with(&registry), "old rows stay first and unchanged");
    assert_eq!(after.lines().count(), 21 + 30, "10 new combos x 3 concepts appended");
    let new_ids: std::collections::BTreeSet<&str> = s
        .read("data/2_tasks/content_combinations_csv.csv")
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .iter()
        .map(|x| &*x.clone().leak())
        .collect();
    assert_eq!(new_ids.len(), 10);
    assert!(new_ids.iter().all(|id| !registry.contains(id)), "k=3 ids are new");
    // back to k=4: the registry already knows those ids; nothing is appended, and the k=4 prompt
    // files (never deleted, as in the seed) are still current
    s.edit("pipeline.yaml", "k_max: 3", "k_max: 4");
    let out = s.ok(&["run"]);
    assert_eq!(counts(&out, "generation_prompt"), (0, 0, 25), "{out}");
    assert_eq!(s.read("data/combo_mappings.csv"), after);
}

#[test]
fn a_deleted_registry_is_restored_with_its_history() {
    let s = Space::shipped();
    s.ok(&["run"]);
    s.edit("pipeline.yaml", "k_max: 4", "k_max: 3");
    s.ok(&["run"]);
    let full = s.read("data/combo_mappings.csv");
    std::fs::remove_file(s.path("data/combo_mappings.csv")).unwrap();
    s.ok(&["run"]);
    assert_eq!(s.read("data/combo_mappings.csv"), full);
}

#[test]
fn run_named_stages_only_builds_what_they_need() {
    let s = Space::shipped();
    let out = s.ok(&["run", "generation_tasks"]);
    assert!(!out.contains("generation_prompt"), "{out}");
    assert!(!out.contains("evaluation_tasks"), "{out}");
    assert!(s.path("data/2_tasks/generation_tasks.csv").exists());
    assert!(!s.path("data/2_tasks/evaluation_tasks.csv").exists());
    let err = s.fails(&["run", "generation_task"], 2);
    assert!(
        err.contains("no stage named `generation_task`") && err.contains("did you mean `generation_tasks`?"),
        "{err}"
    );
}

#[test]
fn dry_run_writes_nothing() {
    let s = Space::shipped();
    let out = s.ok(&["run", "--dry-run"]);
    assert!(out.contains("dry run, nothing written: would execute 29"), "{out}");
    assert!(!s.path("data/2_tasks").exists());
    let entries: Vec<_> = std::fs::read_dir(s.path("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["1_raw"]);
}

#[test]
fn clean_removes_outputs_and_the_next_run_recomputes() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let registry = s.read("data/combo_mappings.csv");
    let out = s.ok(&["clean", "generation_prompt"]);
    assert!(out.contains("generation_prompt        removed 25 files"), "{out}");
    assert!(std::fs::read_dir(s.path(PROMPTS)).unwrap().next().is_none());
    let out = s.ok(&["run"]);
    assert_eq!(counts(&out, "generation_prompt"), (25, 0, 0));
    s.ok(&["clean"]);
    assert_eq!(
        s.read("data/combo_mappings.csv"),
        registry,
        "the registry is a ledger: clean keeps it"
    );
    assert!(!s.path("data/2_tasks/generation_tasks.csv").exists());
}

#[test]
fn dag_prints_the_stage_graph() {
    let s = Space::shipped();
    let text = s.ok(&["dag"]);
    assert!(
        text.contains(
            "generation_prompt (prompt)\n  <- generation_tasks (rows)\n  <- content_combinations (context)\n  \
             <- templates/generation/{generation_template}.txt\n  -> data/3_generation/generation_prompts/{id}.txt"
        ),
        "{text}"
    );
    let dot = s.ok(&["dag", "--dot"]);
    assert!(dot.starts_with("digraph daydream {"), "{dot}");
    assert!(
        dot.contains("\"content_combinations\" -> \"generation_tasks\";"),
        "{dot}"
    );
}
