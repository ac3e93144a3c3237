//! `daydream explain` and `daydream status`: what an output was made from, and whether it is
//! current. Reads the store and the disk; never writes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::fsutil;
use crate::engine::keys::{Hash, Manifest};
use crate::engine::kind::{Artifact, Work};
use crate::engine::run::{Plan, Project, RunError, StagePlan};
use crate::engine::store::Store;

#[derive(Serialize)]
pub struct Explanation {
    pub path: String,
    pub stage: String,
    pub kind: String,
    pub task: Option<String>,
    pub key: Option<Hash>,
    pub made_at: Option<String>,
    pub params: BTreeMap<String, String>,
    pub inputs: Vec<crate::engine::keys::Input>,
    pub output_hash: Option<Hash>,
    /// For LLM responses: the call record (model served, tokens, cost, attempts, ...).
    pub call: Option<serde_json::Value>,
    /// For LLM responses: the prompt file that was sent.
    pub prompt: Option<String>,
    /// For other computed outputs: what is known of how they were made (an essay's parser,
    /// the strategy used and whether it fell back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how: Option<serde_json::Value>,
    pub status: Status,
}

#[derive(Serialize)]
pub struct Change {
    pub input: String,
    pub path: Option<String>,
    pub old: Option<Hash>,
    pub new: Option<Hash>,
}

#[derive(Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// The file is what daydream wrote, and its inputs have not changed.
    Current,
    /// An input changed since the file was made: the next run remakes it.
    Stale { changed: Vec<Change> },
    /// The file's content differs from what daydream wrote.
    EditedByHand { file_hash: Hash, recorded_hash: Hash },
    /// The file is gone; the next run restores it from the store.
    Missing,
    /// The pipeline plans this output but it has not been made yet.
    NotBuilt,
    /// The pipeline no longer produces this file (e.g. its task is gone).
    NotInPipeline,
    /// The last call for this task failed; the next run tries again.
    Failed { cause: String, error: String },
}

fn normalize(project: &Project, target: &str) -> String {
    let p = std::path::Path::new(target);
    let rel = if p.is_absolute() {
        let root = project.root.canonicalize().unwrap_or_else(|_| project.root.clone());
        let abs = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        abs.strip_prefix(&root).map(|r| r.to_path_buf()).unwrap_or(abs)
    } else {
        p.to_path_buf()
    };
    rel.to_string_lossy().trim_start_matches("./").to_owned()
}

/// Explains an output file, or every output of a task id.
pub fn explain(project: &Project, store: &mut Store, target: &str) -> Result<Vec<Explanation>, RunError> {
    let (plan, stages) = crate::engine::run::survey(project, store, &[])?;
    let path = normalize(project, target);
    let mut planned: BTreeMap<String, (&StagePlan, &Artifact)> = BTreeMap::new();
    for (sp, report) in plan.stages.iter().zip(&stages) {
        for (a, _) in &report.artifacts {
            if a.path == path || a.task.as_deref() == Some(target) {
                planned.insert(a.path.clone(), (sp, a));
            }
        }
    }
    let mut records: BTreeMap<String, crate::engine::store::OutputRecord> = BTreeMap::new();
    if let Some(r) = store.output(&path)? {
        records.insert(r.path.clone(), r);
    }
    for r in store.outputs_of_task(target)? {
        records.insert(r.path.clone(), r);
    }
    let mut paths: Vec<String> = planned.keys().chain(records.keys()).cloned().collect();
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    for p in paths {
        out.push(explain_one(
            project,
            store,
            &plan,
            &p,
            planned.get(&p).copied(),
            records.get(&p),
        )?);
    }
    Ok(out)
}

fn explain_one(
    project: &Project,
    store: &Store,
    plan: &Plan,
    path: &str,
    planned: Option<(&StagePlan, &Artifact)>,
    record: Option<&crate::engine::store::OutputRecord>,
) -> Result<Explanation, RunError> {
    let current: Option<Manifest> = planned.map(|(sp, a)| sp.spec.stage.manifest(&sp.value, &sp.planned, a));
    let recorded = match record {
        Some(r) => store.action(&r.key)?,
        None => None,
    };
    let stage = planned
        .map(|(sp, _)| sp.spec.name.clone())
        .or_else(|| record.map(|r| r.stage.clone()))
        .unwrap_or_default();
    let task = planned
        .and_then(|(_, a)| a.task.clone())
        .or_else(|| record.and_then(|r| r.task.clone()));
    let shown: Option<&Manifest> = recorded.as_ref().map(|r| &r.manifest).or(current.as_ref());
    let file = project.root.join(path);
    let materialized = planned.is_none_or(|(_, a)| a.materialize);
    let status = match (record, planned) {
        (None, None) => Status::NotInPipeline,
        (None, Some((sp, a))) => {
            let known = match sp.spec.stage.shared_actions() {
                Some(_) => store.action(&a.key)?.is_some(),
                None => store.action_outputs(&sp.spec.name)?.contains_key(&a.key),
            };
            let last_call = match (&a.task, sp.spec.stage.paid()) {
                (Some(t), true) => store.latest_calls(&sp.spec.name)?.remove(t),
                _ => None,
            };
            match (known, last_call) {
                (true, _) if !materialized => Status::Current,
                (false, Some((st, rec))) if st != "ok" && st != "truncated" => {
                    let v: serde_json::Value = serde_json::from_str(&rec).unwrap_or_default();
                    Status::Failed {
                        cause: v["cause"].as_str().unwrap_or(&st).to_owned(),
                        error: v["error"].as_str().unwrap_or("").to_owned(),
                    }
                }
                _ => Status::NotBuilt,
            }
        }
        (Some(r), planned) => {
            let on_disk = std::fs::read(&file).ok();
            match on_disk {
                None if materialized => Status::Missing,
                Some(bytes) if Hash::of(&bytes) != r.hash => Status::EditedByHand {
                    file_hash: Hash::of(&bytes),
                    recorded_hash: r.hash,
                },
                _ => match (planned, &current, &recorded) {
                    (None, _, _) => Status::NotInPipeline,
                    (Some((_, a)), Some(cur), Some(old)) if a.key != r.key => Status::Stale {
                        changed: cur
                            .changed_inputs(&old.manifest)
                            .into_iter()
                            .map(|(name, o, n)| Change {
                                input: name.to_owned(),
                                path: n.or(o).and_then(|i| i.path.clone()),
                                old: o.map(|i| i.hash),
                                new: n.map(|i| i.hash),
                            })
                            .collect(),
                    },
                    (Some((_, a)), _, _) if a.key != r.key => Status::Stale { changed: Vec::new() },
                    _ => Status::Current,
                },
            }
        }
    };
    // how it was made: an answer's call record (or the last failed attempt's), a parse's or a
    // command's notes
    let record_json: Option<serde_json::Value> = match planned {
        Some((sp, a)) => {
            let mut shown = a.clone();
            if let Some(r) = record {
                shown.key = r.key;
            }
            sp.spec
                .stage
                .record(store, &sp.spec.name, &shown)?
                .and_then(|r| serde_json::from_str(&r).ok())
        }
        None => None,
    };
    let is_call = record_json.as_ref().is_some_and(|v| v.get("model_requested").is_some());
    let (call, how) = if is_call {
        (record_json, None)
    } else {
        (None, record_json)
    };
    let prompt = planned.and_then(|(sp, a)| sp.spec.stage.made_from(&sp.planned, a));
    let _ = plan;
    Ok(Explanation {
        call,
        how,
        prompt,
        path: path.to_owned(),
        kind: shown
            .map(|m| m.kind.clone())
            .unwrap_or_else(|| planned.map_or("", |(sp, _)| sp.spec.kind).to_owned()),
        stage,
        task,
        key: record.map(|r| r.key).or(planned.map(|(_, a)| a.key)),
        made_at: recorded.as_ref().map(|r| r.created_at.clone()),
        params: shown.map(|m| m.params.clone()).unwrap_or_default(),
        inputs: shown.map(|m| m.inputs.clone()).unwrap_or_default(),
        output_hash: record.map(|r| r.hash),
        status,
    })
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.path)?;
        writeln!(f, "  stage    {} (kind {})", self.stage, self.kind)?;
        if let Some(t) = &self.task {
            writeln!(f, "  task     {t}")?;
        }
        if let Some(k) = &self.key {
            writeln!(f, "  key      {k}")?;
        }
        if let Some(m) = &self.made_at {
            writeln!(f, "  made     {m}")?;
        }
        if !self.params.is_empty() {
            let ps: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "  params   {}", ps.join(" "))?;
        }
        if !self.inputs.is_empty() {
            writeln!(f, "  inputs")?;
            let w = self.inputs.iter().map(|i| i.name.len()).max().unwrap_or(0);
            for i in &self.inputs {
                writeln!(
                    f,
                    "    {:w$}  {}  {}",
                    i.name,
                    i.hash.short(),
                    i.path.as_deref().unwrap_or("-")
                )?;
            }
        }
        if let Some(p) = &self.prompt {
            writeln!(f, "  prompt   {p}")?;
        }
        if let Some(serde_json::Value::Object(how)) = &self.how {
            let parts: Vec<String> = how
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    v => format!("{k}={v}"),
                })
                .collect();
            writeln!(f, "  how      {}", parts.join(" "))?;
        }
        if let Some(c) = &self.call
            && let Some(from) = c["imported_from"].as_str()
        {
            writeln!(
                f,
                "  call     imported from {from}: {} via {} (the original pipeline's answer; no tokens or cost recorded)",
                c["model_requested"].as_str().unwrap_or("?"),
                c["provider"].as_str().unwrap_or("?"),
            )?;
        } else if let Some(c) = &self.call {
            let num = |k: &str| c[k].as_u64().map_or("?".into(), |n| n.to_string());
            let cost = match (c["cost_usd"].as_f64(), c["cost_estimated_usd"].as_f64()) {
                (Some(x), _) => format!("cost ${x:.6}"),
                (None, Some(x)) => format!("cost ~${x:.6} (from the price table)"),
                _ => "cost unknown".into(),
            };
            writeln!(
                f,
                "  call     {} via {}, served {}, finish {}, tokens {} in, {} out, {cost}, {} attempt(s), {} ms, at {}",
                c["model_requested"].as_str().unwrap_or("?"),
                c["provider"].as_str().unwrap_or("?"),
                c["model_served"].as_str().unwrap_or("?"),
                c["finish_reason"].as_str().unwrap_or("-"),
                num("prompt_tokens"),
                num("completion_tokens"),
                num("attempts"),
                num("latency_ms"),
                c["timestamp"].as_str().unwrap_or("?"),
            )?;
            if let Some(id) = c["response_id"].as_str() {
                writeln!(f, "  response {id}")?;
            }
            if let Some(remote) = c["fetched_from"].as_str() {
                writeln!(
                    f,
                    "  remote   fetched from the remote cache {remote}: the call above was made and paid elsewhere, \
                     no request from here"
                )?;
            }
        }
        if let Some(c) = &self.call
            && let Some(others) = c["shared_with"].as_array().filter(|o| !o.is_empty())
        {
            let names: Vec<&str> = others.iter().filter_map(|t| t.as_str()).collect();
            writeln!(
                f,
                "  shared   one answer for this task and {} other{} asking the very same call: {}",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            )?;
        }
        if let Some(h) = &self.output_hash {
            writeln!(f, "  output   {}", h.short())?;
        }
        match &self.status {
            Status::Current => writeln!(f, "  status   current"),
            Status::Missing => writeln!(
                f,
                "  status   missing (deleted; `daydream run` restores it from the store)"
            ),
            Status::NotBuilt => writeln!(f, "  status   not built yet (`daydream run` makes it)"),
            Status::NotInPipeline => writeln!(f, "  status   no longer produced by the pipeline (kept on disk)"),
            Status::Failed { cause, error } => {
                writeln!(f, "  status   failed: {cause} ({error}); the next run tries again")
            }
            Status::EditedByHand {
                file_hash,
                recorded_hash,
            } => writeln!(
                f,
                "  status   edited by hand (file {} != written {}; `daydream run` restores it)",
                file_hash.short(),
                recorded_hash.short()
            ),
            Status::Stale { changed } => {
                writeln!(f, "  status   stale")?;
                for c in changed {
                    if c.old.is_some() && c.old == c.new {
                        writeln!(
                            f,
                            "    input {} is read from {} now (its content is the same)",
                            c.input,
                            c.path.as_deref().unwrap_or("elsewhere")
                        )?;
                        continue;
                    }
                    writeln!(
                        f,
                        "    input {}{} changed {} -> {}",
                        c.input,
                        c.path.as_deref().map(|p| format!(" ({p})")).unwrap_or_default(),
                        c.old.map_or("(none)".into(), |h| h.short()),
                        c.new.map_or("(none)".into(), |h| h.short())
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// One stage's standing, for `daydream status`.
#[derive(Default, Serialize)]
pub struct StageStatus {
    pub stage: String,
    pub kind: String,
    pub summary: String,
    pub up_to_date: usize,
    pub stale: usize,
    pub missing: usize,
    pub edited: usize,
    /// LLM tasks whose last call failed (the next run tries again).
    pub failed: usize,
    /// Tasks that wait for an upstream output (e.g. a failed generation).
    pub waiting: usize,
}

pub fn status(project: &Project, store: &mut Store, targets: &[String]) -> Result<Vec<StageStatus>, RunError> {
    let (plan, stages) = crate::engine::run::survey(project, store, targets)?;
    let mut out = Vec::new();
    for (sp, report) in plan.stages.iter().zip(&stages) {
        let name = &sp.spec.name;
        let records = store.outputs_of_stage(name)?;
        let paid = sp.spec.stage.paid();
        let known = match sp.spec.stage.shared_actions() {
            Some(kind) => store.action_outputs_of_kind(kind)?,
            None => store.action_outputs(name)?,
        };
        let calls = if paid {
            store.latest_calls(name)?
        } else {
            Default::default()
        };
        let artifacts: Vec<Artifact> = report.artifacts.iter().map(|(a, _)| a.clone()).collect();
        let mut s = StageStatus {
            stage: name.clone(),
            kind: sp.spec.kind.to_owned(),
            summary: report.summary.clone() + &sp.spec.stage.status_note(&artifacts, &known),
            waiting: report.blocked,
            ..Default::default()
        };
        for (a, _) in &report.artifacts {
            if paid
                && !known.contains_key(&a.key)
                && a.task
                    .as_ref()
                    .and_then(|t| calls.get(t))
                    .is_some_and(|(st, _)| st != "ok" && st != "truncated")
            {
                s.failed += 1;
                continue;
            }
            if !a.materialize {
                if known.contains_key(&a.key) {
                    s.up_to_date += 1
                } else {
                    s.missing += 1
                }
                continue;
            }
            let rec = records.get(&a.path);
            let stat = fsutil::stat(&project.root.join(&a.path));
            match (rec, stat) {
                (_, None) => s.missing += 1,
                (None, Some(_)) => s.stale += 1,
                (Some(r), Some(st)) => {
                    let same_file = (st.size == r.size && st.mtime_ns == r.mtime_ns)
                        || std::fs::read(project.root.join(&a.path)).is_ok_and(|b| Hash::of(&b) == r.hash);
                    if !same_file {
                        s.edited += 1;
                    } else if r.key != a.key && !matches!(a.work, Work::Merge(_)) {
                        s.stale += 1;
                    } else {
                        s.up_to_date += 1;
                    }
                }
            }
        }
        out.push(s);
    }
    Ok(out)
}
