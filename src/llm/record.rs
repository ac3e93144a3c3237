//! What is kept of each call: its record, written as the sidecar beside the response and kept in
//! the store, told to each task the call answered as that task.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::engine::fsutil;
use crate::engine::keys::Hash;
use crate::engine::store::{OutputRecord, Store};
use crate::llm::client::{Cause, Endpoint, Outcome};
use crate::llm::executor::PendingCall;

/// The sidecar written beside a response and kept in the store: what was asked, what came back.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct CallRecord {
    pub task: String,
    pub stage: String,
    pub provider: String,
    pub model_requested: String,
    pub model_served: Option<String>,
    pub response_id: Option<String>,
    pub finish_reason: Option<String>,
    pub status: String,
    pub cause: Option<Cause>,
    pub error: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// As reported by the provider.
    pub cost_usd: Option<f64>,
    /// From the price table, when the provider reports none.
    pub cost_estimated_usd: Option<f64>,
    pub temperature: f64,
    pub max_tokens: u64,
    pub latency_ms: u64,
    pub attempts: u32,
    pub timestamp: String,
    pub key: Hash,
    /// The file this answer was adopted from by `daydream import` (no call was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
    /// The remote cache this answer was read from (the call was made elsewhere, and paid there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_from: Option<String>,
    /// The other tasks this call answered: they asked the very same call (with the local model,
    /// which serves every model name, all tasks of one prompt do). `task` and `model_requested`
    /// are this record's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
}

impl PendingCall {
    /// Every task of the call, the first first: (task, path, model requested).
    pub(crate) fn targets(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        std::iter::once((self.task.as_str(), self.path.as_str(), self.spec.model.as_str())).chain(
            self.also
                .iter()
                .map(|s| (s.task.as_str(), s.path.as_str(), s.model.as_str())),
        )
    }

    /// The call's record as told to each of its tasks: its own task and requested model, and
    /// the other tasks it shares the answer with.
    pub(crate) fn records_per_task<'c>(
        &'c self,
        record: &'c CallRecord,
    ) -> impl Iterator<Item = (&'c str, CallRecord)> {
        self.targets().map(move |(task, path, model)| {
            let mut r = record.clone();
            if !self.also.is_empty() {
                r.task = task.to_owned();
                r.model_requested = model.to_owned();
                r.shared_with = self
                    .targets()
                    .map(|t| t.0)
                    .filter(|t| *t != task)
                    .map(str::to_owned)
                    .collect();
            }
            (path, r)
        })
    }
}

/// One answer file to write: (path, text, sidecar path, sidecar JSON, call key, task).
pub(crate) type AnswerFile = (String, Vec<u8>, String, Vec<u8>, Hash, String);

/// Writes answers and their sidecars (the sidecar first: a response file on disk always has its
/// sidecar), each atomically, and returns the records of the response files for the store.
pub(crate) fn write_answer_files(
    root: &Path,
    tmp: &Path,
    stage: &str,
    batch: Vec<AnswerFile>,
) -> Result<Vec<OutputRecord>> {
    let mut records = Vec::with_capacity(batch.len());
    for (path, text, sidecar_path, sidecar, key, task) in batch {
        let p = root.join(&path);
        fsutil::write_atomic(tmp, &root.join(&sidecar_path), &sidecar, false)?;
        fsutil::write_atomic(tmp, &p, &text, false)?;
        let stat = fsutil::stat(&p).with_context(|| format!("{path} vanished after writing"))?;
        records.push(OutputRecord {
            path,
            stage: stage.to_owned(),
            task: Some(task),
            key,
            hash: Hash::of(&text),
            size: stat.size,
            mtime_ns: stat.mtime_ns,
        });
    }
    Ok(records)
}

pub(crate) fn record_of(call: &PendingCall, o: &Outcome, ep: &Endpoint, stage: &str) -> CallRecord {
    let r = o.reply.as_ref();
    let estimated = match (o.cost, call.price, r) {
        (None, Some((i, out)), Some(r)) => {
            Some((r.prompt_tokens.unwrap_or(0) as f64 * i + r.completion_tokens.unwrap_or(0) as f64 * out) / 1e6)
        }
        _ => None,
    };
    CallRecord {
        task: call.task.clone(),
        stage: stage.to_owned(),
        provider: ep.provider.clone(),
        model_requested: call.spec.model.clone(),
        model_served: r.and_then(|r| r.served_model.clone()),
        response_id: r.and_then(|r| r.response_id.clone()),
        finish_reason: r.and_then(|r| r.finish_reason.clone()),
        status: o.status.clone(),
        cause: o.cause,
        error: o.error.clone(),
        prompt_tokens: r.and_then(|r| r.prompt_tokens),
        completion_tokens: r.and_then(|r| r.completion_tokens),
        cost_usd: o.cost,
        cost_estimated_usd: estimated,
        temperature: call.spec.temperature,
        max_tokens: call.spec.max_tokens,
        latency_ms: o.latency_ms,
        attempts: o.attempts,
        timestamp: crate::engine::clock::now_utc(),
        key: call.key,
        imported_from: None,
        fetched_from: None,
        shared_with: call.also.iter().map(|s| s.task.clone()).collect(),
    }
}

/// The record of `task`'s (of `stage`) answer to the call `key` (JSON): the one written for it
/// when the call was made. A task that came to an answer already in the store (it asks what
/// another task asked) has none, and versions before this one wrote the first task's record for
/// every task of a shared call: then the answer's record, named for this task and its `model`.
pub fn task_record(store: &Store, stage: &str, key: &Hash, task: &str, model: &str) -> Result<Option<String>> {
    let json = match store.answered_call(stage, key, task)? {
        Some(own) => own,
        None => match store.action_info(key)? {
            Some(info) => info,
            None => return Ok(None),
        },
    };
    let Ok(mut r) = serde_json::from_str::<CallRecord>(&json) else {
        return Ok(Some(json));
    };
    if r.task == task {
        return Ok(Some(json));
    }
    let first = std::mem::replace(&mut r.task, task.to_owned());
    r.shared_with.retain(|t| t != task);
    r.shared_with.insert(0, first);
    r.model_requested = model.to_owned();
    Ok(Some(serde_json::to_string(&r).expect("record serializes")))
}

/// The sidecar path beside a response: `<id>.txt` -> `<id>.json`.
pub fn sidecar_path(path: &str) -> String {
    match path.strip_suffix(".txt") {
        Some(stem) => format!("{stem}.json"),
        None => format!("{path}.json"),
    }
}
