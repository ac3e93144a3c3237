//! Hostile inputs: ids from the CSVs, paths in pipeline.yaml and symbolic links on disk may not
//! make daydream read or write outside the project, or over an input, pipeline.yaml or
//! .daydream/. Each is a configuration error (exit 2) found before anything is written.

mod common;

use std::path::Path;

use common::{Space, changed};

/// After a good run, `break_it` then `run` must exit 2 with every `expected` fragment in stderr,
/// leave every file under data/ as it was, and panic nowhere.
fn refused(s: &Space, break_it: impl FnOnce(&Space), expected: &[&str]) -> String {
    s.ok(&["run"]);
    break_it(s);
    let before = s.snapshot("data");
    let err = s.fails(&["run"], 2);
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        changed(&before, &s.snapshot("data")),
        Vec::<String>::new(),
        "a refused run changed data/"
    );
    err
}

/// A directory beside the project (both in the temp directory), and the `..` path to it from a
/// file named after a task id in a stage directory three levels down (`data/x/y/<id>.txt`).
fn beside(s: &Space) -> (tempfile::TempDir, String) {
    let outside = tempfile::tempdir().unwrap();
    assert_eq!(
        outside.path().parent(),
        s.dir.path().parent(),
        "siblings in the temp dir"
    );
    let name = outside.path().file_name().unwrap().to_string_lossy().into_owned();
    (outside, name)
}

/// Replaces the file or directory `rel` of the project by a symbolic link to `to`.
fn link(s: &Space, rel: &str, to: &Path) {
    let p = s.path(rel);
    if std::fs::symlink_metadata(&p).unwrap().is_dir() {
        std::fs::remove_dir_all(&p).unwrap();
    } else {
        std::fs::remove_file(&p).unwrap();
    }
    std::os::unix::fs::symlink(to, &p).unwrap();
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn a_model_id_holding_a_path_is_refused_and_nothing_outside_is_written() {
    let s = Space::shipped();
    let (outside, name) = beside(&s);
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    // data/3_generation/generation_prompts/combo_..._<template>_x/ then five `..` reach the temp dir
    let id = format!("x/../../../../../{name}/victim");
    let err = refused(
        &s,
        |s| s.edit("data/1_raw/llm_models.csv", "\ndeepseek_r1_p,", &format!("\n{id},")),
        &[
            "invalid id \"x/../../../../../",
            "`/` is not allowed",
            "in column `id` of data/1_raw/llm_models.csv line 22 column 1",
            "--> data/1_raw/llm_models.csv:22:1",
            "1 to 64 characters: ASCII letters, digits, `.`, `_` and `-`",
        ],
    );
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(read(&victim), "keep me");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
}

#[test]
fn a_concept_id_holding_a_path_never_reads_the_file_outside() {
    let s = Space::shipped();
    let (outside, name) = beside(&s);
    std::fs::create_dir_all(outside.path().join("descriptions-paragraph")).unwrap();
    std::fs::write(outside.path().join("descriptions-paragraph/secret.txt"), "THE SECRET").unwrap();
    // data/1_raw/concepts/descriptions-paragraph/<id>.txt: four `..` reach the temp dir
    let id = format!("../../../../{name}/descriptions-paragraph/secret");
    let err = refused(
        &s,
        |s| {
            s.edit(
                "data/1_raw/concepts/concepts_metadata.csv",
                "\ndearth-ai-discoveries,",
                &format!("\n{id},"),
            )
        },
        &[
            "invalid id \"../../../../",
            "`/` is not allowed",
            "in column `concept_id` of data/1_raw/concepts/concepts_metadata.csv line 2 column 1",
        ],
    );
    assert!(!err.contains("THE SECRET"));
    assert!(
        s.snapshot("data")
            .values()
            .all(|(_, bytes)| !String::from_utf8_lossy(bytes).contains("THE SECRET"))
    );
}

#[test]
fn a_template_id_holding_a_path_is_refused() {
    let s = Space::shipped();
    refused(
        &s,
        |s| {
            s.edit(
                "data/1_raw/generation_templates.csv",
                "\ncreative-synthesis-v6,",
                "\n../../../etc/passwd,",
            )
        },
        &[
            "invalid id \"../../../etc/passwd\": `/` is not allowed",
            "in column `template_id` of data/1_raw/generation_templates.csv line 19 column 1",
        ],
    );
}

#[test]
fn ids_with_a_newline_a_nul_or_300_characters_are_refused_before_the_task_tables_are_written() {
    for (bad, expected) in [
        (
            "\"deepseek\nr1\"",
            &[
                "invalid id \"deepseek\\nr1\": a newline is not allowed",
                "line 22 column 1",
            ][..],
        ),
        (
            "deep\0seek",
            &["invalid id \"deep\\0seek\": a NUL character is not allowed"][..],
        ),
        (
            &"d".repeat(300),
            &["... (300 characters): it is 300 characters long (at most 64)"][..],
        ),
        (".", &["invalid id \".\": it starts with `.`"][..]),
        ("a b", &["a space is not allowed"][..]),
        ("/tmp/victim", &["invalid id \"/tmp/victim\": `/` is not allowed"][..]),
    ] {
        let s = Space::shipped();
        refused(
            &s,
            |s| s.edit("data/1_raw/llm_models.csv", "\ndeepseek_r1_p,", &format!("\n{bad},")),
            expected,
        );
    }
}

#[test]
fn every_shipped_id_passes_and_model_names_with_slash_and_colon_are_fine() {
    // the shipped CSVs run (every other test relies on it); a model name with `/` and `:` is
    // only sent to the API, never a path
    let s = Space::shipped();
    s.edit(
        "data/1_raw/llm_models.csv",
        "deepseek_r1_p,deepseek/deepseek-r1,",
        "deepseek_r1_p,deepseek/deepseek-r1:free,",
    );
    s.ok(&["run"]);
    assert!(
        s.read("data/2_tasks/generation_tasks.csv")
            .contains("deepseek/deepseek-r1:free")
    );
}

#[test]
fn task_ids_too_long_for_a_file_name_are_refused_before_anything_is_written() {
    // two ids of 64 characters each are fine alone, but an evaluation task joins both to a
    // generation task id, which holds the model id too: 238 characters
    let s = Space::shipped();
    let (t, m) = ("t".repeat(64), "m".repeat(64));
    let err = refused(
        &s,
        |s| {
            s.edit(
                "data/1_raw/evaluation_templates.csv",
                "\nstyle-coherence,",
                &format!("\n{t},"),
            );
            std::fs::rename(
                s.path("templates/evaluation/style-coherence.txt"),
                s.path(&format!("templates/evaluation/{t}.txt")),
            )
            .unwrap();
            s.edit("data/1_raw/llm_models.csv", "\ngemini_25_pro,", &format!("\n{m},"));
        },
        &[
            "the id of row 20 of stage `evaluation_tasks` would be 238 characters, more than the 200 a task id may have",
            "(64 characters, data/1_raw/evaluation_templates.csv line 9)",
            "data/1_raw/llm_models.csv line",
        ],
    );
    assert!(err.contains(&format!("or template id `{t}`")), "{err}");
}

#[test]
fn a_stray_word_in_a_boolean_column_names_its_cell() {
    let s = Space::shipped();
    let err = refused(
        &s,
        |s| {
            s.edit(
                "data/1_raw/llm_models.csv",
                "\"DeepSeek R1\",true,false,",
                "\"DeepSeek R1\",maybe,false,",
            )
        },
        &[
            "\"maybe\" is not a boolean, in column `for_generation` of data/1_raw/llm_models.csv line 22 column 59",
            "--> data/1_raw/llm_models.csv:22:59",
            "true/false, yes/no or 1/0, in any letter case; an empty cell is false",
        ],
    );
    assert!(err.contains("^^^^^"), "the cell is underlined:\n{err}");
}

#[test]
fn yes_and_1_are_true_and_leave_the_other_rows_alone() {
    // pandas typed a column holding `yes` as text, so no model was selected: 0 tasks, exit 0
    let s = Space::shipped();
    s.ok(&["run"]);
    let tasks = s.read("data/2_tasks/generation_tasks.csv");
    s.edit(
        "data/1_raw/llm_models.csv",
        "\"DeepSeek R1\",true,false,",
        "\"DeepSeek R1\",yes,0,",
    );
    s.edit("data/1_raw/concepts/concepts_metadata.csv", ",True\n", ",1\n");
    let out = s.ok(&["run"]);
    assert!(out.contains("5 of 11 concepts active"), "{out}");
    assert!(out.contains("generation_tasks         25 rows"), "{out}");
    assert_eq!(s.read("data/2_tasks/generation_tasks.csv"), tasks);
}

/// pipeline.yaml of the shipped project (LLM stages included) with one line changed, parsed by
/// `status` (which plans everything and writes nothing).
fn yaml_refused(from: &str, to: &str, expected: &[&str]) {
    let s = Space::shipped_with_llm();
    s.edit("pipeline.yaml", from, to);
    let err = s.fails(&["status"], 2);
    for e in expected {
        assert!(err.contains(e), "{from} -> {to}: expected {e:?} in:\n{err}");
    }
    assert!(!s.path("data/2_tasks").exists());
}

#[test]
fn an_output_may_not_be_the_store_an_input_or_pipeline_yaml() {
    let prompts = "output: data/3_generation/generation_prompts/{id}.txt";
    let scores = "output: data/5_parsing/parsed_scores.csv";
    for (to, expected) in [
        (
            "output: ./.daydream/store.db",
            &[
                "`output: .daydream/store.db` of stage `parsed_scores` is inside .daydream/",
                "pipeline.yaml:177:13",
            ][..],
        ),
        ("output: .daydream", &["is inside .daydream/"][..]),
        (
            "output: data/1_raw/llm_models.csv",
            &["could overwrite an input: `csv: data/1_raw/llm_models.csv` of stage `llm_models` (line 45)"][..],
        ),
        ("output: pipeline.yaml", &["would overwrite pipeline.yaml"][..]),
        ("output: ./pipeline.yaml", &["would overwrite pipeline.yaml"][..]),
        ("output: .env", &["would overwrite .env, which holds API keys"][..]),
        ("output: data/1_raw", &["could overwrite an input"][..]),
        (
            "output: templates/evaluation/scores.txt",
            &[
                "could overwrite an input: `files: templates/evaluation/{template_id}.txt` of stage `evaluation_templates`",
            ][..],
        ),
        (
            "output: data/1_raw/concepts/descriptions-article/x.csv",
            &["is in a directory the pipeline reads: `descriptions: data/1_raw/concepts/descriptions-article`"][..],
        ),
        (
            "output: data//6_summary/./report.html",
            &[
                "`output: data/6_summary/report.html` of stage `report` and `output: data/6_summary/report.html` of \
                 stage `parsed_scores` (line 177) both write `data/6_summary/report.html`",
            ][..],
        ),
        (
            "output: /tmp/scores.csv",
            &["must be a relative path inside the project"][..],
        ),
        (
            "output: data/../../scores.csv",
            &["must be a relative path inside the project"][..],
        ),
    ] {
        yaml_refused(scores, to, expected);
    }
    for (to, expected) in [
        // a prompt named like a response's record: `{id}` can be any id
        (
            "output: data/3_generation/generation_responses/{id}.json",
            &[
                "the `.json` records beside `output: data/3_generation/generation_responses/{id}.txt` of stage \
                 `generation_response` and `output: data/3_generation/generation_responses/{id}.json` of stage \
                 `generation_prompt` (line 112) both write",
            ][..],
        ),
        (
            "output: data/3_generation/generation_responses/{id}.txt",
            &["both write `data/3_generation/generation_responses/{id}.txt`"][..],
        ),
        (
            "output: data/5_parsing/{id}.csv",
            &[
                "could write the same file",
                "`output: data/5_parsing/parsed_scores.csv`",
            ][..],
        ),
        (
            "output: templates/generation/{id}.txt",
            &[
                "could overwrite an input: `files: templates/generation/{template_id}.txt` of stage `generation_templates`",
            ][..],
        ),
        (
            "output: data/{id}/prompt.txt",
            &["`{id}` may appear only in the file name"][..],
        ),
    ] {
        yaml_refused(prompts, to, expected);
    }
}

#[test]
fn the_store_survives_an_output_pointed_at_it() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let store = std::fs::read(s.path(".daydream/store.db")).unwrap();
    s.edit(
        "pipeline.yaml",
        "output: data/2_tasks/generation_tasks.csv",
        "output: ./.daydream/store.db",
    );
    s.fails(&["run"], 2);
    assert_eq!(std::fs::read(s.path(".daydream/store.db")).unwrap(), store);
}

#[test]
fn an_output_directory_linked_out_of_the_project_is_refused_not_followed() {
    let s = Space::shipped();
    let (outside, _) = beside(&s);
    let err = refused(
        &s,
        |s| link(s, "data/3_generation/generation_prompts", outside.path()),
        &[
            "`output: data/3_generation/generation_prompts/{id}.txt` of stage `generation_prompt`",
            "data/3_generation/generation_prompts leads to",
            "outside the project, through a symbolic link",
            "--> pipeline.yaml:",
        ],
    );
    assert!(err.contains(&outside.path().display().to_string()), "{err}");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written there"
    );
    // a link that stays inside the project is followed
    std::fs::create_dir_all(s.path("data/prompts-real")).unwrap();
    link(&s, "data/3_generation/generation_prompts", Path::new("../prompts-real"));
    s.ok(&["run"]);
    assert_eq!(std::fs::read_dir(s.path("data/prompts-real")).unwrap().count(), 25);
}

#[test]
fn a_single_output_file_linked_out_of_the_project_is_refused() {
    // the registry is read before it is appended to: through the link it would read the victim
    let s = Space::shipped();
    let (outside, _) = beside(&s);
    let victim = outside.path().join("victim.csv");
    std::fs::write(
        &victim,
        "combo_id,version,concept_id,description_level,k_max,created_at\n",
    )
    .unwrap();
    refused(
        &s,
        |s| link(s, "data/combo_mappings.csv", &victim),
        &[
            "`registry: data/combo_mappings.csv`",
            "outside the project, through a symbolic link",
        ],
    );
    assert_eq!(
        read(&victim),
        "combo_id,version,concept_id,description_level,k_max,created_at\n"
    );
}

#[test]
fn a_descriptions_directory_linked_out_of_the_project_is_never_read() {
    let s = Space::shipped();
    let (outside, _) = beside(&s);
    for f in std::fs::read_dir(s.path("data/1_raw/concepts/descriptions-paragraph")).unwrap() {
        let f = f.unwrap();
        std::fs::write(outside.path().join(f.file_name()), "THE SECRET").unwrap();
    }
    let err = refused(
        &s,
        |s| link(s, "data/1_raw/concepts/descriptions-paragraph", outside.path()),
        &[
            "cannot read data/1_raw/concepts/descriptions-paragraph/",
            "data/1_raw/concepts/descriptions-paragraph leads to",
            "outside the project, through a symbolic link",
        ],
    );
    assert!(!err.contains("THE SECRET"));
}

#[test]
fn a_description_file_linked_out_of_the_project_is_never_read() {
    let s = Space::shipped();
    let (outside, _) = beside(&s);
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "THE SECRET").unwrap();
    let file = "data/1_raw/concepts/descriptions-paragraph/economic-moat.txt";
    refused(
        &s,
        |s| link(s, file, &secret),
        &[&format!("{file} leads to"), "outside the project"],
    );
}

#[test]
fn rebuild_results_refuses_task_ids_holding_paths() {
    let fixture = common::repo().join("tests/fixtures/results");
    let s = Space::empty();
    s.copy_in(&fixture.join("data"), "data");
    s.edit(
        "data/2_tasks/evaluation_tasks.csv",
        "\ncombo_v1_f0c9d41797ca_creative-synthesis-v6_gemini_2.5_flash_daydreaming-verification_sonnet-4,",
        "\n../../../../etc/passwd,",
    );
    let before = s.snapshot("data");
    let err = s.fails(&["rebuild-results"], 2);
    assert!(
        err.contains("invalid id \"../../../../etc/passwd\"")
            && err.contains("in column `evaluation_task_id` of data/2_tasks/evaluation_tasks.csv line 2 column 1"),
        "{err}"
    );
    assert_eq!(changed(&before, &s.snapshot("data")), Vec::<String>::new());
}
