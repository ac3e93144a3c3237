//! The deterministic stages reproduce the seed byte for byte (goldens in tests/golden/, made by
//! a Python restatement of the seed and checked against the seed's own code).

mod common;

use common::{Space, repo};

fn golden(rel: &str) -> String {
    std::fs::read_to_string(repo().join("tests/golden").join(rel)).unwrap()
}

/// combo_mappings.csv with created_at blanked (the goldens hold the literal CREATED_AT).
fn without_created_at(s: &str) -> String {
    s.lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_owned() + "\n")
        .collect()
}

fn assert_matches_golden(space: &Space, golden_dir: &str) {
    for table in ["content_combinations_csv", "generation_tasks", "evaluation_tasks"] {
        let got = space.read(&format!("data/2_tasks/{table}.csv"));
        assert_eq!(
            got,
            golden(&format!("{golden_dir}/{table}.csv")),
            "{table}.csv differs from the seed"
        );
    }
    assert_eq!(
        without_created_at(&space.read("data/combo_mappings.csv")),
        without_created_at(&golden(&format!("{golden_dir}/combo_mappings.csv")))
    );
    let created: Vec<String> = space
        .read("data/combo_mappings.csv")
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().to_owned())
        .collect();
    assert!(
        created.iter().all(|c| c.len() == 19 && c.as_bytes()[10] == b'T'),
        "created_at is local ISO to the second: {created:?}"
    );
    let dir = repo().join("tests/golden").join(golden_dir).join("generation_prompts");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let got = space.read(&format!("data/3_generation/generation_prompts/{name}"));
        assert_eq!(
            got,
            golden(&format!("{golden_dir}/generation_prompts/{name}")),
            "prompt {name} differs from the seed"
        );
        n += 1;
    }
    let ours = std::fs::read_dir(space.path("data/3_generation/generation_prompts"))
        .unwrap()
        .count();
    assert_eq!(ours, n, "same set of prompt files");
}

#[test]
fn shipped_data_matches_the_seed() {
    let s = Space::shipped();
    s.ok(&["run"]);
    assert_matches_golden(&s, "shipped");
    let combos: Vec<String> = s
        .read("data/2_tasks/content_combinations_csv.csv")
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    let mut unique = combos.clone();
    unique.dedup();
    assert_eq!(
        unique,
        [
            "combo_v1_f0c9d41797ca",
            "combo_v1_13c725cf02fa",
            "combo_v1_b18da90419b7",
            "combo_v1_4750c69d9e61",
            "combo_v1_832e64e55de3"
        ]
    );
}

#[test]
fn k3_sentence_matches_the_seed() {
    let s = Space::shipped();
    s.edit("pipeline.yaml", "k_max: 4", "k_max: 3");
    s.edit(
        "pipeline.yaml",
        "description_level: paragraph",
        "description_level: sentence",
    );
    s.ok(&["run"]);
    assert_matches_golden(&s, "k3_sentence");
}

/// Synthetic raw data covering every fallback, Python's strip, universal newlines, CSV quoting.
#[test]
fn edge_cases_match_the_seed() {
    let s = Space::empty();
    s.copy_in(&repo().join("tests/golden/fixtures/edge_raw"), "raw");
    s.write(
        "pipeline.yaml",
        "version: 2
stages:
  concepts: {kind: concepts, metadata: raw/concepts/concepts_metadata.csv, descriptions: raw/concepts}
  models: {kind: table, csv: raw/llm_models.csv, id: id}
  gen_templates: {kind: table, csv: raw/generation_templates.csv, id: template_id, files: 'raw/generation_templates/{template_id}.txt'}
  eval_templates: {kind: table, csv: raw/evaluation_templates.csv, id: template_id, files: 'raw/evaluation_templates/{template_id}.txt'}
  combos:
    kind: combinations
    concepts: concepts
    k_max: 2
    description_level: article
    registry: data/combo_mappings.csv
    output: data/2_tasks/content_combinations_csv.csv
  gen_tasks:
    kind: cross
    axes:
      combo: combos
      template: {from: gen_templates, where: {active: true}}
      model: {from: models, where: {for_generation: true}}
    id: '{combo.id}_{template.id}_{model.id}'
    columns:
      generation_task_id: id
      combo_id: combo.id
      generation_template: template.id
      generation_model: model.id
      generation_model_name: model.model
    output: data/2_tasks/generation_tasks.csv
  eval_tasks:
    kind: cross
    axes:
      generation: gen_tasks
      template: {from: eval_templates, where: {active: true}}
      model: {from: models, where: {for_evaluation: true}}
    id: '{generation.id}_{template.id}_{model.id}'
    columns:
      evaluation_task_id: id
      generation_task_id: generation.id
      evaluation_template: template.id
      evaluation_model: model.id
      evaluation_model_name: model.model
    output: data/2_tasks/evaluation_tasks.csv
  prompts:
    kind: prompt
    rows: gen_tasks
    template: 'raw/generation_templates/{generation_template}.txt'
    context:
      concepts: {from: combos, by: combo_id, take: concepts}
    undefined: lenient
    output: 'data/3_generation/generation_prompts/{id}.txt'
",
    );
    s.ok(&["run"]);
    assert_matches_golden(&s, "edge_k2_article");
}

/// Every generation template of the seed, active or not, renders as Jinja2 rendered it.
#[test]
fn every_seed_template_renders_as_jinja2() {
    let s = Space::shipped();
    let csv = s
        .read("data/1_raw/generation_templates.csv")
        .replace(",false,", ",true,");
    s.write("data/1_raw/generation_templates.csv", &csv);
    s.write(
        "data/1_raw/llm_models.csv",
        "id,model,for_generation,for_evaluation\nm,vendor/m,true,false\n",
    );
    s.ok(&["run", "generation_prompt"]);
    let dir = repo().join("tests/golden/all_templates");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.starts_with("eval__") {
            continue;
        }
        let id = name.trim_end_matches(".txt");
        let got = s.read(&format!(
            "data/3_generation/generation_prompts/combo_v1_f0c9d41797ca_{id}_m.txt"
        ));
        assert_eq!(got, golden(&format!("all_templates/{name}")), "template {id}");
        n += 1;
    }
    assert_eq!(n, 18);
}

#[test]
fn every_seed_evaluation_template_renders_as_jinja2() {
    use daydream::kinds::jinja::{Renderer, Undefined};
    let dir = repo().join("tests/golden/all_templates");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Some(id) = name.strip_prefix("eval__").and_then(|n| n.strip_suffix(".txt")) else {
            continue;
        };
        let raw = std::fs::read_to_string(repo().join(format!("templates/evaluation/{id}.txt"))).unwrap();
        let text = daydream::engine::text::py_strip(&raw);
        let mut r = Renderer::new(Undefined::Strict);
        r.load(id, text).unwrap();
        let vars = minijinja::context! { response => "<essay text>\nsecond line\n\n  indented" };
        assert_eq!(
            r.render(id, text, vars).unwrap(),
            golden(&format!("all_templates/{name}")),
            "{id}"
        );
        n += 1;
    }
    assert_eq!(n, 11);
}
