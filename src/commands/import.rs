//! `daydream import DIR`: adopts the generation and evaluation responses a `data/` directory of
//! the original pipeline holds, so that a later run does not pay for them again.
//!
//! Each response is stored under the key of the call that made it: the prompt the original
//! recorded beside it (`generation_prompts/<id>.txt`, `evaluation_prompts/<id>.txt`), the
//! model of the task, and the settings the original sent (temperature 0.7, max_tokens 8192:
//! what this project's stages declare by default), against the remote provider. A run whose
//! rendered prompt is byte-identical then finds the answer in the store and makes no call.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::engine::diag::Diag;
use crate::engine::keys::Hash;
use crate::engine::rows::replicate_id;
use crate::engine::run::{Project, RunError};
use crate::engine::store::{CallRow, Store};
use crate::kinds::llm::LlmStage;
use crate::llm::provider::{CALL_KIND, Env, call_manifest, choose};
use crate::llm::record::CallRecord;

/// What an import did, per LLM stage.
#[derive(Debug, Default)]
pub struct StageImport {
    pub stage: String,
    pub adopted: usize,
    pub already: usize,
    /// Responses left alone, with why.
    pub skipped: Vec<(String, String)>,
}

/// Where the original wrote a stage's files: our pattern's path under `DIR` (a project root
/// holding `data/`, or the `data/` directory itself).
fn original_dir(dir: &Path, pattern: &str) -> PathBuf {
    let rel = Path::new(pattern).parent().unwrap_or(Path::new(""));
    if dir.join("data").is_dir() {
        dir.join(rel)
    } else {
        dir.join(rel.strip_prefix("data").unwrap_or(rel))
    }
}

pub fn import(
    project: &Project,
    store: &mut Store,
    dir: &Path,
    provider: Option<&str>,
) -> Result<Vec<StageImport>, RunError> {
    if !dir.is_dir() {
        return Err(Diag::new(format!("{} is not a directory", dir.display()))
            .help("name the original pipeline's data/ directory (or the project directory holding it)")
            .into());
    }
    let p = project.pipeline()?;
    let provider = match provider {
        Some(name) => name.to_owned(),
        None => p
            .providers
            .iter()
            .find(|x| !x.local)
            .map(|x| x.name.clone())
            .ok_or_else(|| {
                Diag::new("pipeline.yaml declares no remote provider to import the original's answers under")
                    .help("declare the provider the original called (OpenRouter), or pass --provider NAME")
            })?,
    };
    let env = Env::load(&project.root);
    let mut out = Vec::new();
    for spec in &p.stages {
        let Some(st) = spec.stage.as_any().downcast_ref::<LlmStage>() else {
            continue;
        };
        let asks = st.asks();
        let choice = choose(&p, &spec.name, asks.provider, Some(&provider), &env)?;
        if choice.provider.local {
            return Err(Diag::new(format!(
                "provider `{provider}` is the local model; the original's answers came from remote models"
            ))
            .help("pass --provider with the remote provider they came from (e.g. openrouter)")
            .into());
        }
        // row id -> the model name the original sent
        let rows = project
            .value(asks.prompts)?
            .rows
            .clone()
            .expect("a per-row stage has rows");
        let model_col = rows.column(asks.model_column).expect("checked with the value");
        let tasks: std::collections::HashMap<String, String> = (0..rows.len())
            .map(|r| (rows.id(r).to_owned(), rows.get(r, model_col).trim().to_owned()))
            .collect();
        let prompts_pattern = p
            .stage(asks.prompts)
            .and_then(|s| s.stage.row_path("{id}"))
            .unwrap_or_default();
        let responses_dir = original_dir(dir, asks.output);
        let prompts_dir = original_dir(dir, &prompts_pattern);
        let n = asks.replicates;
        let temperature = asks.temperature;
        let max_tokens = choice.max_tokens(asks.max_tokens);
        let st_name = spec.name.clone();
        let known = store.action_outputs_of_kind(CALL_KIND)?;
        let mut report = StageImport {
            stage: st_name.clone(),
            ..Default::default()
        };
        let mut calls = Vec::new();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&responses_dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "txt"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("reading {}", responses_dir.display()))
                    .into());
            }
        };
        files.sort();
        for file in files {
            let id = file.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let shown = file.display().to_string();
            let Some(model) = tasks.get(&id) else {
                report
                    .skipped
                    .push((shown, format!("no task `{id}` in this project's {st_name} stage")));
                continue;
            };
            let prompt_file = prompts_dir.join(format!("{id}.txt"));
            let Ok(prompt) = std::fs::read(&prompt_file) else {
                report
                    .skipped
                    .push((shown, format!("no recorded prompt {}", prompt_file.display())));
                continue;
            };
            let bytes = std::fs::read(&file).with_context(|| format!("reading {shown}"))?;
            let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{shown} is not UTF-8 text"))?;
            if text.trim().is_empty() {
                report.skipped.push((
                    shown,
                    "empty response (the original saved a failed call as an empty file)".into(),
                ));
                continue;
            }
            let m = call_manifest(&choice, model, Hash::of(&prompt), temperature, max_tokens, 1);
            let key = m.key();
            if known.contains_key(&key) {
                report.already += 1;
                continue;
            }
            let modified = std::fs::metadata(&file)
                .and_then(|m| m.modified())
                .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
                .unwrap_or_default();
            let record = CallRecord {
                task: replicate_id(&id, 1, n),
                stage: st_name.clone(),
                provider: choice.provider.name.clone(),
                model_requested: model.clone(),
                model_served: None,
                response_id: None,
                finish_reason: None,
                status: "imported".into(),
                cause: None,
                error: None,
                prompt_tokens: None,
                completion_tokens: None,
                cost_usd: None,
                cost_estimated_usd: None,
                temperature,
                max_tokens,
                latency_ms: 0,
                attempts: 0,
                timestamp: modified,
                key,
                imported_from: Some(shown.clone()),
                fetched_from: None,
                shared_with: Vec::new(),
            };
            calls.push(CallRow {
                key,
                stage: st_name.clone(),
                task: record.task.clone(),
                status: "imported".into(),
                manifest: m,
                response: Some(text),
                record: serde_json::to_string(&record).context("encoding a call record")?,
            });
            report.adopted += 1;
        }
        store.put_calls(&calls, true)?;
        out.push(report);
    }
    Ok(out)
}
