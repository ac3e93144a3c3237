//! `daydream schema` prints a JSON Schema of pipeline.yaml that covers every registered kind and
//! every field of each, agrees with the keys daydream accepts elsewhere in the file, and accepts
//! the shipped pipeline and the examples (checked by a validator of the subset of JSON Schema the
//! generator emits).

mod common;

use std::collections::BTreeSet;

use common::{Space, repo};
use serde_json::Value;

fn schema() -> Value {
    let s = Space::empty();
    let out = s.ok(&["schema"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("`daydream schema` is not JSON: {e}\n{out}"))
}

/// The schema of one stage kind, by the `const` of its `kind` property.
fn kinds(schema: &Value) -> Vec<&Value> {
    schema["properties"]["stages"]["additionalProperties"]["oneOf"]
        .as_array()
        .expect("stages are one of the kinds")
        .iter()
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

/// What a JSON value is, in JSON Schema's words (an integer is a number too).
fn is_type(v: &Value, ty: &str) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|x| x.fract() == 0.0),
        "number" => v.is_number(),
        "null" => v.is_null(),
        other => panic!("the validator does not know type {other}"),
    }
}

/// Validates `v` against the subset of JSON Schema the generator emits; every keyword it does
/// not know is a test failure (so the subset cannot grow unseen). Errors name the value's path.
fn validate(s: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(s) = s.as_object() else {
        if s == &Value::Bool(false) {
            errors.push(format!("{at}: not allowed"));
        }
        return;
    };
    for (k, rule) in s {
        match k.as_str() {
            "$schema" | "title" | "description" | "default" | "format" => {}
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                    _ => panic!("bad type {rule}"),
                };
                if !types.iter().any(|t| is_type(v, t)) {
                    errors.push(format!("{at}: {v} is not of type {rule}"));
                }
            }
            "const" if v != rule => errors.push(format!("{at}: {v} is not {rule}")),
            "enum" if !rule.as_array().unwrap().contains(v) => errors.push(format!("{at}: {v} is not one of {rule}")),
            "const" | "enum" => {}
            "minimum" | "maximum" | "exclusiveMinimum" => {
                let (Some(x), Some(bound)) = (v.as_f64(), rule.as_f64()) else {
                    continue;
                };
                let ok = match k.as_str() {
                    "minimum" => x >= bound,
                    "maximum" => x <= bound,
                    _ => x > bound,
                };
                if !ok {
                    errors.push(format!("{at}: {x} breaks {k} {bound}"));
                }
            }
            "pattern" => {
                if let Some(text) = v.as_str()
                    && !regex::Regex::new(rule.as_str().unwrap()).unwrap().is_match(text)
                {
                    errors.push(format!("{at}: {text:?} does not match {rule}"));
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for r in rule.as_array().unwrap() {
                        if !o.contains_key(r.as_str().unwrap()) {
                            errors.push(format!("{at}: `{}` is required", r.as_str().unwrap()));
                        }
                    }
                }
            }
            "minProperties" => {
                if let Some(o) = v.as_object()
                    && (o.len() as u64) < rule.as_u64().unwrap()
                {
                    errors.push(format!("{at}: fewer than {rule} entries"));
                }
            }
            "properties" | "additionalProperties" | "propertyNames" => {
                let Some(o) = v.as_object() else { continue };
                let props = s.get("properties").and_then(Value::as_object);
                for (name, item) in o {
                    let here = format!("{at}.{name}");
                    match (k.as_str(), props.and_then(|p| p.get(name))) {
                        ("properties", Some(sub)) => validate(sub, item, &here, errors),
                        ("additionalProperties", None) => validate(rule, item, &here, errors),
                        ("propertyNames", _) => validate(rule, &Value::String(name.clone()), &here, errors),
                        _ => {}
                    }
                }
            }
            "oneOf" => {
                let branches = rule.as_array().unwrap();
                let results: Vec<Vec<String>> = branches
                    .iter()
                    .map(|b| {
                        let mut e = Vec::new();
                        validate(b, v, at, &mut e);
                        e
                    })
                    .collect();
                match results.iter().filter(|e| e.is_empty()).count() {
                    1 => {}
                    0 => {
                        // the errors of the branch of the stage's own kind, when it names one
                        let own = branches
                            .iter()
                            .position(|b| v.get("kind").is_some_and(|k| b["properties"]["kind"]["const"] == *k));
                        match own {
                            Some(i) => errors.extend(results[i].iter().cloned()),
                            None => errors.push(format!("{at}: matches none of {} kinds", branches.len())),
                        }
                    }
                    n => errors.push(format!("{at}: matches {n} branches of oneOf")),
                }
            }
            other => panic!("the validator does not know the keyword `{other}`"),
        }
    }
}

fn errors_of(schema: &Value, yaml: &str) -> Vec<String> {
    let doc: Value = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("not YAML: {e}\n{yaml}"));
    let mut errors = Vec::new();
    validate(schema, &doc, "$", &mut errors);
    errors
}

#[test]
fn the_schema_is_json_covering_every_kind_and_every_field() {
    let schema = schema();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let registry = daydream::kinds::registry();
    let listed = kinds(&schema);
    assert_eq!(listed.len(), registry.kinds.len(), "one definition per kind");
    for kind in &registry.kinds {
        let defs: Vec<&&Value> = listed
            .iter()
            .filter(|d| d["properties"]["kind"]["const"] == kind.name())
            .collect();
        assert_eq!(defs.len(), 1, "kind `{}` is defined once", kind.name());
        let def = defs[0];
        let mut fields: BTreeSet<String> = kind.fields().iter().map(|f| f.name.to_owned()).collect();
        fields.insert("kind".into());
        assert_eq!(keys(&def["properties"]), fields, "fields of `{}`", kind.name());
        let mut required: Vec<&str> = kind.fields().iter().filter(|f| f.required).map(|f| f.name).collect();
        required.insert(0, "kind");
        assert_eq!(
            def["required"],
            serde_json::json!(required),
            "required fields of `{}`",
            kind.name()
        );
        assert_eq!(
            def["additionalProperties"],
            false,
            "`{}` takes no other field",
            kind.name()
        );
        for (name, prop) in def["properties"].as_object().unwrap() {
            let doc = prop["description"].as_str().unwrap_or_default();
            assert!(!doc.is_empty(), "`{}.{name}` has no description", kind.name());
        }
    }
}

/// The keys daydream accepts in a part of pipeline.yaml, as its error for an unknown key there
/// lists them ("the keys here are: ..." / "a provider takes: ...").
fn accepted_keys(yaml: &str, listed_after: &str) -> BTreeSet<String> {
    let s = Space::empty();
    s.write("pipeline.yaml", yaml);
    let err = s.fails(&["run", "--dry-run"], 2);
    let list = err
        .lines()
        .find_map(|l| l.split_once(listed_after).map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("no `{listed_after}` in:\n{err}"));
    list.split(", ").map(|k| k.trim().to_owned()).collect()
}

#[test]
fn the_schema_knows_the_keys_daydream_accepts_at_the_top_in_settings_and_in_providers() {
    let schema = schema();
    let stage = "stages:\n  t: {kind: table, csv: t.csv}\n";
    let top = accepted_keys(&format!("version: 2\nzzzzzzzzzzzz: 1\n{stage}"), "the keys here are: ");
    assert_eq!(keys(&schema["properties"]), top);
    let settings = accepted_keys(
        &format!("version: 2\nsettings:\n  zzzzzzzzzzzz: 1\n{stage}"),
        "the keys here are: ",
    );
    assert_eq!(keys(&schema["properties"]["settings"]["properties"]), settings);
    let provider = accepted_keys(
        &format!("version: 2\nproviders:\n  p:\n    zzzzzzzzzzzz: 1\n{stage}"),
        "a provider takes: ",
    );
    let in_schema = &schema["properties"]["providers"]["additionalProperties"]["properties"];
    assert_eq!(keys(in_schema), provider);
}

#[test]
fn the_shipped_pipeline_and_the_examples_validate() {
    let schema = schema();
    let mut files = vec![repo().join("pipeline.yaml")];
    for e in std::fs::read_dir(repo().join("examples")).unwrap() {
        let p = e.unwrap().path().join("pipeline.yaml");
        if p.is_file() {
            files.push(p);
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let yaml = std::fs::read_to_string(&f).unwrap();
        assert_eq!(errors_of(&schema, &yaml), Vec::<String>::new(), "{}", f.display());
    }
    let (_, scratch) = common::from_scratch_files()
        .into_iter()
        .find(|(p, _)| p == "pipeline.yaml")
        .expect("the docs' pipeline from scratch");
    assert_eq!(
        errors_of(&schema, &scratch),
        Vec::<String>::new(),
        "docs: a pipeline from scratch"
    );
    // the settings the shipped pipeline shows in comments are in the schema too
    let shipped = std::fs::read_to_string(repo().join("pipeline.yaml")).unwrap();
    let uncommented = shipped
        .replace("  # max_cost_usd: 5.00", "  max_cost_usd: 5.00")
        .replace("  # confirm_above_usd: 5.00", "  confirm_above_usd: 5.00");
    assert_ne!(uncommented, shipped);
    assert_eq!(errors_of(&schema, &uncommented), Vec::<String>::new());
}

#[test]
fn the_schema_rejects_mistakes() {
    let schema = schema();
    let shipped = std::fs::read_to_string(repo().join("pipeline.yaml")).unwrap();
    let broken = |from: &str, to: &str| -> Vec<String> {
        assert!(shipped.contains(from), "{from}");
        errors_of(&schema, &shipped.replacen(from, to, 1))
    };
    let has = |errors: Vec<String>, part: &str| {
        assert!(
            errors.iter().any(|e| e.contains(part)),
            "expected {part:?} in {errors:?}"
        );
    };
    // a misspelt field, in the errors of its own kind
    has(broken("    k_max: 4", "    kmax: 4"), "`k_max` is required");
    has(
        broken("    k_max: 4", "    k_max: 4\n    kmax: 4"),
        "$.stages.content_combinations.kmax: not allowed",
    );
    // an unknown kind, a bad choice, a number out of range, a wrong type
    has(broken("kind: cross", "kind: crosss"), "matches none of");
    has(broken("undefined: strict", "undefined: loose"), "is not one of");
    has(
        broken(
            "temperature: 0.7        # what the seed",
            "temperature: -1        # what",
        ),
        "breaks minimum",
    );
    has(broken("k_max: 4", "k_max: four"), "is not of type");
    // an output per row without `{id}`, a stage name that is no name, the version
    has(
        broken(
            "output: data/3_generation/generation_prompts/{id}.txt",
            "output: data/p.txt",
        ),
        "does not match",
    );
    has(broken("  concepts:\n", "  con cepts:\n"), "does not match");
    has(broken("version: 2", "version: 1"), "is not 2");
}

#[test]
fn the_stage_examples_of_the_language_reference_validate() {
    let schema = schema();
    let doc = std::fs::read_to_string(repo().join("docs/pipeline.md")).unwrap();
    let mut checked = BTreeSet::new();
    for block in doc.split("```yaml\n").skip(1) {
        let block = block.split("```").next().unwrap();
        // a stage as it stands under `stages:`: its name, then its `kind`
        let mut lines = block.lines();
        let (Some(name), Some(kind)) = (lines.next(), lines.next()) else {
            continue;
        };
        let Some(kind) = kind.trim().strip_prefix("kind: ") else {
            continue;
        };
        if !name.starts_with("  ") || name.starts_with("   ") {
            continue;
        }
        let yaml = format!("version: 2\nstages:\n{block}");
        assert_eq!(errors_of(&schema, &yaml), Vec::<String>::new(), "{block}");
        checked.insert(kind.to_owned());
    }
    for kind in &daydream::kinds::registry().kinds {
        assert!(
            checked.contains(kind.name()),
            "no example of `{}` in docs/pipeline.md",
            kind.name()
        );
    }
}
