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

use crate::calls::CallRecord;
use crate::diag::Diag;
use crate::engine::{Project, RunError};
use crate::key::Hash;
use crate::llmstage::{self, CALL_KIND, Env, call_manifest, replicate_id};
use crate::spec::Kind;
use crate::store::{CallRow, Store};

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
    let (plan, _) = crate::engine::survey(project, store, &[])?;
    let p = plan.pipeline.clone();
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
    for sp in plan.stages.iter().filter(|s| s.stage.kind.is_llm()) {
        let st = &sp.stage;
        let choice = llmstage::choose(&p, st, Some(&provider), &env)?;
        if choice.provider.local {
            return Err(Diag::new(format!(
                "provider `{provider}` is the local model; the original's answers came from remote models"
            ))
            .help("pass --provider with the remote provider they came from (e.g. openrouter)")
            .into());
        }
        // task id -> model name the original sent
        let tasks: std::collections::HashMap<String, String> = match st.kind {
            Kind::GenerationResponse => {
                let t = crate::results::generation_tasks(&plan, st);
                t.rows
                    .iter()
                    .map(|r| (r.id.clone(), t.models.models[r.model as usize].model.clone()))
                    .collect()
            }
            _ => {
                let t = crate::results::evaluation_tasks(&plan, st);
                t.rows
                    .iter()
                    .map(|r| (r.id.clone(), t.models.models[r.model as usize].model.clone()))
                    .collect()
            }
        };
        let prompts = p.stage(st.str("prompts")).expect("validated reference");
        let responses_dir = original_dir(dir, st.str("output"));
        let prompts_dir = original_dir(dir, prompts.str("output"));
        let n = st.int("replicates") as u32;
        let temperature = st.float("temperature");
        let max_tokens = choice.max_tokens(st.int("max_tokens") as u64);
        let known = store.action_outputs_of_kind(CALL_KIND)?;
        let mut report = StageImport {
            stage: st.name.clone(),
            ..Default::default()
        };
        let mut rows = Vec::new();
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
                    .push((shown, format!("no task `{id}` in this project's {} stage", st.name)));
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
                stage: st.name.clone(),
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
                shared_with: Vec::new(),
            };
            rows.push(CallRow {
                key,
                stage: st.name.clone(),
                task: record.task.clone(),
                status: "imported".into(),
                manifest: m,
                response: Some(text),
                record: serde_json::to_string(&record).context("encoding a call record")?,
            });
            report.adopted += 1;
        }
        store.put_calls(&rows, true)?;
        out.push(report);
    }
    Ok(out)
}
