//! `explain` says what an output was made from, and whether it is current, stale (and exactly
//! why), edited by hand or missing; `status` counts the same per stage.

mod common;

use common::Space;
use daydream::engine::keys::Hash;
use daydream::engine::text::py_strip;

const PROMPT: &str =
    "data/3_generation/generation_prompts/combo_v1_13c725cf02fa_creative-synthesis-v6_deepseek_r1_p.txt";
const TASK: &str = "combo_v1_13c725cf02fa_creative-synthesis-v6_deepseek_r1_p";
const MOAT: &str = "data/1_raw/concepts/descriptions-paragraph/economic-moat.txt";

fn short(text: &str) -> String {
    Hash::of(py_strip(text).as_bytes()).short()
}

#[test]
fn explain_a_prompt_lists_its_inputs_with_hashes_and_paths() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let out = s.ok(&["explain", PROMPT]);
    assert!(
        out.starts_with(&format!(
            "{PROMPT}\n  stage    generation_prompt (kind prompt)\n  task     {TASK}\n  key      "
        )),
        "{out}"
    );
    let template = s.read("templates/generation/creative-synthesis-v6.txt");
    assert!(
        out.contains(&format!(
            "template  {}  templates/generation/creative-synthesis-v6.txt",
            short(&template)
        )) || out.contains(&format!(
            "{}  templates/generation/creative-synthesis-v6.txt",
            short(&template)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "concept:economic-moat.content           {}  {MOAT}",
            short(&s.read(MOAT))
        )),
        "{out}"
    );
    assert!(out.contains("concept:economic-moat.name"), "{out}");
    assert!(out.contains("  params   undefined=strict\n"), "{out}");
    assert!(
        out.contains(&format!("  output   {}\n", Hash::of(s.read(PROMPT).as_bytes()).short())),
        "{out}"
    );
    assert!(out.ends_with("  status   current\n"), "{out}");
    // the same by task id
    assert_eq!(s.ok(&["explain", TASK]), out);
    // and with an absolute path
    assert_eq!(s.ok(&["explain", s.path(PROMPT).to_str().unwrap()]), out);
}

#[test]
fn explain_names_the_input_that_made_an_output_stale() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let old = s.read(MOAT);
    let new = format!("{old} More.");
    s.write(MOAT, &new);
    let out = s.ok(&["explain", PROMPT]);
    let want = format!(
        "  status   stale\n    input concept:economic-moat.content ({MOAT}) changed {} -> {}\n",
        short(&old),
        short(&new)
    );
    assert!(out.ends_with(&want), "{out}\nwanted the end:\n{want}");
    let json: serde_json::Value = serde_json::from_str(&s.ok(&["explain", PROMPT, "--json"])).unwrap();
    let status = &json[0]["status"];
    assert_eq!(status["state"], "stale");
    assert_eq!(status["changed"][0]["input"], "concept:economic-moat.content");
    assert_eq!(status["changed"][0]["path"], MOAT);
    assert_eq!(status["changed"][0]["old"], Hash::of(py_strip(&old).as_bytes()).hex());
    assert_eq!(json[0]["stage"], "generation_prompt");
    assert_eq!(json[0]["inputs"].as_array().unwrap().len(), 9);
    s.ok(&["run"]);
    assert!(s.ok(&["explain", PROMPT]).ends_with("  status   current\n"));
}

#[test]
fn explain_sees_hand_edits_and_deletions() {
    let s = Space::shipped();
    s.ok(&["run"]);
    s.write(PROMPT, "my own prompt");
    let out = s.ok(&["explain", PROMPT]);
    assert!(
        out.contains(&format!(
            "status   edited by hand (file {} != written ",
            Hash::of(b"my own prompt").short()
        )),
        "{out}"
    );
    std::fs::remove_file(s.path(PROMPT)).unwrap();
    assert!(
        s.ok(&["explain", PROMPT])
            .contains("status   missing (deleted; `daydream run` restores it from the store)")
    );
    let json: serde_json::Value = serde_json::from_str(&s.ok(&["explain", "--json", PROMPT])).unwrap();
    assert_eq!(json[0]["status"]["state"], "missing");
}

#[test]
fn explain_a_table_and_an_output_not_built_yet() {
    let s = Space::shipped();
    let out = s.ok(&["explain", "data/2_tasks/generation_tasks.csv"]);
    assert!(out.contains("status   not built yet"), "{out}");
    s.ok(&["run"]);
    let out = s.ok(&["explain", "data/2_tasks/generation_tasks.csv"]);
    for part in [
        "stage    generation_tasks (kind cross)",
        "content_combinations",
        "llm_models",
        "generation_templates",
        "status   current",
    ] {
        assert!(out.contains(part), "{part} missing in:\n{out}");
    }
    s.edit(
        "data/1_raw/llm_models.csv",
        "llama_31_405b,meta-llama/llama-3.1-405b-instruct,meta,\"Llama 3.1 405B Instruct\",true",
        "llama_31_405b,meta-llama/llama-3.1-405b-instruct,meta,\"Llama 3.1 405B Instruct\",false",
    );
    let out = s.ok(&["explain", "data/2_tasks/generation_tasks.csv"]);
    assert!(
        out.contains("status   stale\n    input llm_models (data/1_raw/llm_models.csv) changed"),
        "{out}"
    );
}

#[test]
fn explain_an_unknown_target_is_a_usage_error() {
    let s = Space::shipped();
    s.ok(&["run"]);
    let err = s.fails(&["explain", "no/such/file.txt"], 2);
    assert!(
        err.contains("`no/such/file.txt` is neither an output of this pipeline nor a task id"),
        "{err}"
    );
}

#[test]
fn status_counts_per_stage() {
    let s = Space::shipped();
    let before = s.ok(&["status"]);
    assert!(
        before
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..5] == ["generation_prompt", "0", "0", "25", "0"]),
        "{before}"
    );
    s.ok(&["run"]);
    s.write(MOAT, "changed");
    let after = s.ok(&["status"]);
    assert!(
        after
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[..5] == ["generation_prompt", "5", "20", "0", "0"]),
        "{after}"
    );
    let json: serde_json::Value = serde_json::from_str(&s.ok(&["status", "--json"])).unwrap();
    let prompt = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage"] == "generation_prompt")
        .unwrap();
    assert_eq!(prompt["stale"], 20);
}
