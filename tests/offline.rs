//! The offline default end to end: with no API key, `daydream run` uses the local provider, which
//! starts a real small model (SmolLM2-135M on llama.cpp, installed on first use) and stops it.
//! A tiny experiment keeps this to seconds; the shipped one takes minutes (README).

mod common;

use common::{Space, counts};

fn tiny() -> Space {
    let s = Space::shipped_with_llm();
    s.write(
        "data/1_raw/concepts/concepts_metadata.csv",
        "concept_id,name,active\ndefault-mode-network,Default Mode Network,True\neconomic-moat,Economic Moat,True\n",
    );
    s.edit("pipeline.yaml", "k_max: 4", "k_max: 2");
    s.edit(
        "pipeline.yaml",
        "description_level: paragraph",
        "description_level: sentence",
    );
    s.write(
        "data/1_raw/generation_templates.csv",
        "template_id,template_name,description,active\ntiny,Tiny,one sentence,true\n",
    );
    s.write(
        "templates/generation/tiny.txt",
        "Write one sentence that links these ideas.\n{% for concept in concepts %}\n- {{ concept.name }}: {{ concept.content }}\n{% endfor %}",
    );
    s.write(
        "data/1_raw/evaluation_templates.csv",
        "template_id,template_name,description,active\njudge,Judge,score it,true\n",
    );
    s.write(
        "templates/evaluation/judge.txt",
        "Text:\n{{ response }}\n\nRate the text from 0 to 9. End with a line SCORE: <digit>.",
    );
    s.write(
        "data/1_raw/llm_models.csv",
        "id,model,for_generation,for_evaluation\nwriter,vendor/writer,true,false\njudge,vendor/judge,false,true\n",
    );
    s.edit("pipeline.yaml", "    max_tokens_cap: 128", "    max_tokens_cap: 24");
    s
}

#[test]
fn with_no_key_the_run_uses_the_real_local_model() {
    let s = tiny();
    let r = s.run(&["run"]);
    assert_eq!(r.code, 0, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("note: OPENROUTER_API_KEY is not set: using the local model"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("local model ready on http://127.0.0.1:"),
        "{}",
        r.stderr
    );
    assert_eq!(counts(&r.stdout, "generation_response"), (1, 0, 0), "{}", r.stdout);
    assert_eq!(counts(&r.stdout, "evaluation_response"), (1, 0, 0), "{}", r.stdout);
    let id = "combo_v1_6d4d1a1b8ae3_tiny_writer";
    let names: Vec<String> = std::fs::read_dir(s.path("data/3_generation/generation_responses"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let txt = names
        .iter()
        .find(|n| n.ends_with(".txt"))
        .unwrap_or_else(|| panic!("{names:?} ({id})"));
    let essay = s.read(&format!("data/3_generation/generation_responses/{txt}"));
    assert!(!essay.trim().is_empty());
    let meta: serde_json::Value = serde_json::from_str(&s.read(&format!(
        "data/3_generation/generation_responses/{}",
        txt.replace(".txt", ".json")
    )))
    .unwrap();
    assert_eq!(meta["provider"], "local");
    assert_eq!(meta["model_served"], "smollm2-135m-instruct-q4_1");
    assert!(
        meta["completion_tokens"].as_u64().unwrap() <= 24,
        "the local cap: {meta}"
    );
    assert!(meta["prompt_tokens"].as_u64().unwrap() > 20, "{meta}");
    // the evaluation judged that essay
    let evals: Vec<String> = std::fs::read_dir(s.path("data/4_evaluation/evaluation_prompts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(evals.len(), 1);
    assert!(
        s.read(&format!("data/4_evaluation/evaluation_prompts/{}", evals[0]))
            .contains(essay.trim())
    );
    // held to its grammar, the answer ends in its score line within the 24-token cap
    let answers: Vec<String> = std::fs::read_dir(s.path("data/4_evaluation/evaluation_responses"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    let answer = s.read(&format!("data/4_evaluation/evaluation_responses/{}", answers[0]));
    let last = answer.lines().last().unwrap_or_default();
    // the judge template declares no range: 0-10
    let score = last.strip_prefix("SCORE: ").and_then(|n| n.parse::<u32>().ok());
    assert!(score.is_some_and(|n| n <= 10), "{answer:?}");
    let scores = s.read("data/5_parsing/parsed_scores.csv");
    assert!(!scores.contains("Parse error"), "{scores}");
    // nothing left running, nothing asked twice
    let again = s.ok(&["run"]);
    assert!(again.contains("done: executed 0, reused 0"), "{again}");
    assert!(
        !again.contains("local model ready"),
        "no server is started when nothing is asked"
    );
}
