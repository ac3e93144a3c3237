//! Bad inputs give a clear message naming the file, line and what to do, exit code 2, and leave
//! every generated file as it was.

mod common;

use common::{Space, changed};

/// Runs a good build, applies `break_it`, and expects `run` to fail with exit 2 and every
/// `expected` fragment in stderr, without touching a generated file.
fn config_error(break_it: impl FnOnce(&Space), expected: &[&str]) -> String {
    let s = Space::shipped();
    s.ok(&["run"]);
    let generated = |s: &Space| {
        let mut m = s.snapshot("data/2_tasks");
        m.extend(s.snapshot("data/3_generation"));
        m.extend(
            s.snapshot("data")
                .into_iter()
                .filter(|(k, _)| k == "data/combo_mappings.csv"),
        );
        m
    };
    break_it(&s);
    let before = generated(&s);
    let err = s.fails(&["run"], 2);
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        changed(&before, &generated(&s)),
        Vec::<String>::new(),
        "a failed run changed generated files"
    );
    err
}

#[test]
fn malformed_yaml() {
    config_error(
        |s| s.edit("pipeline.yaml", "    k_max: 4", "    k_max: [4"),
        &["error: pipeline.yaml:", "--> pipeline.yaml:65:"],
    );
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let err = config_error(|s| s.edit("pipeline.yaml", "    k_max: 4", "    kmax: 4"), &[]);
    assert_eq!(
        err,
        "error: unknown key `kmax` in stage `content_combinations` (kind `combinations`)
  --> pipeline.yaml:64:5
   |
64 |     kmax: 4
   |     ^^^^^
  = help: did you mean `k_max`?
"
    );
}

#[test]
fn unknown_top_level_key() {
    config_error(
        |s| s.edit("pipeline.yaml", "version: 2\n", "version: 2\nstagez: {}\n"),
        &[
            "unknown key `stagez` at the top of pipeline.yaml",
            "pipeline.yaml:5:1",
            "did you mean `stages`?",
        ],
    );
}

#[test]
fn unknown_stage_kind() {
    config_error(
        |s| s.edit("pipeline.yaml", "kind: combinations", "kind: combination"),
        &[
            "unknown stage kind `combination` in stage `content_combinations`",
            "pipeline.yaml:62:11",
            "did you mean `combinations`?",
        ],
    );
}

#[test]
fn reference_to_a_missing_stage() {
    config_error(
        |s| {
            s.edit(
                "pipeline.yaml",
                "combo: content_combinations",
                "combo: content_combination",
            )
        },
        &[
            "stage `generation_tasks` reads `axes: content_combination`, but there is no stage named `content_combination`",
            "pipeline.yaml:75:14",
            "did you mean `content_combinations`?",
        ],
    );
}

#[test]
fn reference_to_a_stage_of_the_wrong_shape() {
    config_error(
        |s| {
            s.edit(
                "pipeline.yaml",
                "    concepts: concepts\n",
                "    concepts: llm_models\n",
            )
        },
        &[
            "`concepts: llm_models` in stage `content_combinations` needs what a `concepts` stage offers, but `llm_models` is a `table` stage, which does not offer it",
            "pipeline.yaml:63:15",
            "stages that do: concepts",
        ],
    );
}

#[test]
fn a_cycle_is_printed_as_its_path() {
    config_error(
        |s| {
            s.edit(
                "pipeline.yaml",
                "combo: content_combinations",
                "combo: generation_prompt",
            )
        },
        &[
            "the stages form a cycle: generation_tasks -> generation_prompt -> generation_tasks",
            "pipeline.yaml:",
        ],
    );
}

#[test]
fn a_missing_input_file() {
    config_error(
        |s| std::fs::remove_file(s.path("data/1_raw/llm_models.csv")).unwrap(),
        &[
            "input file `data/1_raw/llm_models.csv` of stage `llm_models` does not exist",
            "pipeline.yaml:45:10",
        ],
    );
}

#[test]
fn a_missing_pipeline_file() {
    let s = Space::empty();
    let err = s.fails(&["run"], 2);
    assert!(err.contains("no pipeline.yaml in") && err.contains("-C DIR"), "{err}");
}

#[test]
fn a_missing_template_file_names_the_csv_line() {
    config_error(
        |s| std::fs::remove_file(s.path("templates/generation/gwern_original.txt")).unwrap(),
        &[
            "row `gwern_original` has no file templates/generation/gwern_original.txt, in column `template_id` of data/1_raw/generation_templates.csv line 12",
            "--> data/1_raw/generation_templates.csv:12",
            "create templates/generation/gwern_original.txt, or delete the row",
        ],
    );
}

#[test]
fn an_undefined_template_variable_names_template_line_and_variable() {
    config_error(
        |s| {
            s.edit(
                "templates/generation/creative-synthesis-v6.txt",
                "**{{ concept.name }}**",
                "**{{ concept.concept_id }}**",
            )
        },
        &[
            "undefined variable `concept.concept_id` in template templates/generation/creative-synthesis-v6.txt",
            "--> templates/generation/creative-synthesis-v6.txt:6",
            "undefined: lenient",
        ],
    );
}

#[test]
fn lenient_undefined_renders_empty_as_the_seed() {
    let s = Space::shipped();
    s.edit(
        "templates/generation/creative-synthesis-v6.txt",
        "**{{ concept.name }}**",
        "**{{ concept.concept_id }}**",
    );
    s.edit("pipeline.yaml", "undefined: strict", "undefined: lenient");
    s.ok(&["run"]);
    let p = s.read(
        "data/3_generation/generation_prompts/combo_v1_f0c9d41797ca_creative-synthesis-v6_sonnet-4.txt"
            .replace("sonnet-4", "gemini_25_pro")
            .as_str(),
    );
    assert!(p.contains("\n****  \n"), "{p}");
}

#[test]
fn a_template_syntax_error_names_the_line() {
    config_error(
        |s| {
            s.edit(
                "templates/generation/creative-synthesis-v6.txt",
                "{% endfor %}",
                "{% endfour %}",
            )
        },
        &[
            "syntax error in template templates/generation/creative-synthesis-v6.txt",
            "creative-synthesis-v6.txt:9",
        ],
    );
}

#[test]
fn k_max_larger_than_the_active_concepts() {
    config_error(
        |s| s.edit("pipeline.yaml", "k_max: 4", "k_max: 6"),
        &[
            "k_max is 6 but only 5 concepts are active in data/1_raw/concepts/concepts_metadata.csv",
            "pipeline.yaml:64:12",
            "lower k_max to at most 5",
        ],
    );
}

#[test]
fn a_bad_csv_row_names_file_and_line() {
    config_error(
        |s| {
            s.edit(
                "data/1_raw/concepts/concepts_metadata.csv",
                "economic-moat,Economic Moat,True",
                "economic-moat,Economic, Moat,True",
            )
        },
        &[
            "data/1_raw/concepts/concepts_metadata.csv: a row has 4 fields where the header has 3",
            "concepts_metadata.csv:12",
        ],
    );
}

#[test]
fn a_missing_csv_column() {
    config_error(
        |s| s.edit("data/1_raw/llm_models.csv", "for_generation", "for_gen"),
        &[
            "axis `model` filters on `for_generation`, which the rows of `llm_models` do not have",
            "its columns are: id, model",
        ],
    );
}

#[test]
fn a_combo_registry_collision() {
    config_error(
        |s| {
            s.edit(
                "data/combo_mappings.csv",
                "combo_v1_f0c9d41797ca,v1,dearth-ai-discoveries",
                "combo_v1_f0c9d41797ca,v1,mind-wandering",
            )
        },
        &[
            "combo_id collision detected for combo_v1_f0c9d41797ca: existing params/concepts do not match",
            "data/combo_mappings.csv",
        ],
    );
}

#[test]
fn unsupported_version() {
    config_error(
        |s| s.edit("pipeline.yaml", "version: 2", "version: 7"),
        &[
            "unsupported pipeline version `7`",
            "pipeline.yaml:4:10",
            "this daydream reads `version: 2`",
        ],
    );
}

#[test]
fn a_missing_description_directory_is_not_an_error() {
    let s = Space::shipped();
    std::fs::remove_dir_all(s.path("data/1_raw/concepts/descriptions-article")).unwrap();
    s.edit(
        "pipeline.yaml",
        "description_level: paragraph",
        "description_level: article",
    );
    s.ok(&["run"]);
}

#[test]
fn usage_errors_exit_2() {
    let s = Space::shipped();
    let err = s.fails(&["run", "--no-such-flag"], 2);
    assert!(err.contains("--no-such-flag"), "{err}");
    s.fails(&["frobnicate"], 2);
    let help = s.ok(&["--help"]);
    for cmd in ["run", "status", "explain", "clean", "dag"] {
        assert!(help.contains(cmd), "{help}");
    }
}

/// Every file of the project, and whether `.daydream/` exists.
fn everything(
    s: &Space,
) -> (
    std::collections::BTreeMap<String, (std::time::SystemTime, Vec<u8>)>,
    bool,
) {
    (s.snapshot(""), s.path(".daydream").exists())
}

/// The shipped project whose pipeline.yaml is the last one of version 1 (and, with `store`, the
/// store that version wrote), as a user of that version has it.
fn version_1_project(store: bool) -> Space {
    let s = Space::shipped_with_llm();
    let fixture = common::repo().join("tests/fixtures/upgrade_v1");
    std::fs::copy(fixture.join("pipeline.v1.yaml"), s.path("pipeline.yaml")).unwrap();
    if store {
        std::fs::create_dir_all(s.path(".daydream")).unwrap();
        std::fs::copy(fixture.join("store.db"), s.path(".daydream/store.db")).unwrap();
    }
    s
}

#[test]
fn a_version_1_pipeline_is_told_how_to_migrate_and_nothing_is_written() {
    for store in [false, true] {
        let s = version_1_project(store);
        let before = everything(&s);
        let err = s.fails(&["run"], 2);
        for part in [
            "pipeline.yaml:3:10",
            "written in version 1 of the language",
            "docs/pipeline.md",
            "the shipped pipeline.yaml",
        ] {
            assert!(err.contains(part), "expected {part:?} in:\n{err}");
        }
        assert!(!err.contains("panicked"), "{err}");
        let after = everything(&s);
        assert_eq!(changed(&before.0, &after.0), Vec::<String>::new(), "store: {store}");
        assert_eq!(after.1, store, "a failed run made .daydream/");
    }
}

#[test]
fn a_pipeline_without_a_version_is_refused() {
    let s = version_1_project(false);
    s.edit("pipeline.yaml", "version: 1\n", "");
    let before = everything(&s);
    let err = s.fails(&["run"], 2);
    for part in [
        "pipeline.yaml does not say which version of the language it is written in",
        "add `version: 2` at the top",
    ] {
        assert!(err.contains(part), "expected {part:?} in:\n{err}");
    }
    let after = everything(&s);
    assert_eq!(changed(&before.0, &after.0), Vec::<String>::new());
    assert!(!after.1, "a failed run made .daydream/");
}
