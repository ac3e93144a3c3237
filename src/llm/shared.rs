//! The remote answer cache as a run uses it: before calls are made, their answers are looked
//! for in the remote (after the local store); after an answer is committed locally, it is
//! uploaded beside the calls; at the end of the run the uploads are waited for and the store
//! notes what the remote holds, so the next run uploads only what is still missing there.
//!
//! The remote never costs money or data: when it is unreachable, slow, refuses us or holds a
//! corrupt object, the run goes on locally with one warning and a count; a corrupt answer is
//! never used (the call is made, and its upload replaces the broken object).

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use tokio::runtime::Runtime;

use crate::engine::cache::RemoteConfig;
use crate::engine::keys::Hash;
use crate::engine::store::{CallRow, Store};
use crate::llm::executor::PendingCall;
use crate::llm::record::{AnswerFile, CallRecord, sidecar_path, write_answer_files};
use crate::llm::remote::{ErrorKind, Remote, RemoteAnswer, RemoteError, Uploader};

/// Requests in flight when reading answers.
const FETCH_CONCURRENCY: usize = 32;
/// Requests in flight when uploading, beside the calls.
const UPLOAD_CONCURRENCY: usize = 16;
/// Answers waiting for upload at most; more are left for a later run (never a wait).
const UPLOAD_QUEUE: usize = 1 << 20;

/// One run's use of the remote cache.
pub struct SharedCache {
    remote: Remote,
    url: String,
    uploader: Option<Uploader>,
    backlog_queued: bool,
    /// The error that made the run go on without the remote, once it happened.
    stopped: Option<String>,
    /// Answers read from the remote in this run.
    pub fetched: usize,
    /// Answers the remote holds broken (not used: the calls were made).
    corrupt: usize,
    /// Lookups that failed: the calls made without knowing.
    failed_lookups: usize,
    /// Keys read from the remote: it holds them.
    fetched_keys: Vec<Hash>,
}

impl SharedCache {
    /// Opens the remote (no request is sent). A remote that cannot be opened (no credentials…)
    /// is a warning, and the run goes on without it.
    pub fn open(config: &RemoteConfig) -> Option<SharedCache> {
        match Remote::open(config) {
            Ok(remote) => Some(SharedCache::with(remote)),
            Err(e) => {
                eprintln!("warning: {e}; going on without the remote cache (answers stay in this project's store)");
                None
            }
        }
    }

    fn with(remote: Remote) -> SharedCache {
        SharedCache {
            url: remote.url().to_owned(),
            remote,
            uploader: None,
            backlog_queued: false,
            stopped: None,
            fetched: 0,
            corrupt: 0,
            failed_lookups: 0,
            fetched_keys: Vec::new(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn stop(&mut self, e: &RemoteError) {
        if self.stopped.is_none() {
            eprintln!(
                "warning: {e}; going on without the remote cache: calls are made here, answers kept in this project's \
                 store and uploaded by a later run"
            );
            self.stopped = Some(e.message().to_owned());
        }
    }

    /// The answers the remote holds for `keys`, verified. Keys it does not hold, or could not
    /// be read, are left to be called.
    pub fn fetch(&mut self, rt: &Runtime, keys: Vec<Hash>) -> HashMap<Hash, RemoteAnswer> {
        let mut out = HashMap::new();
        if self.stopped.is_some() || keys.is_empty() {
            return out;
        }
        for (key, got) in rt.block_on(self.remote.fetch_many(keys, FETCH_CONCURRENCY)) {
            match got {
                Ok(Some(answer)) => {
                    self.fetched += 1;
                    self.fetched_keys.push(key);
                    out.insert(key, answer);
                }
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    if self.corrupt == 0 {
                        eprintln!(
                            "warning: {e}; that answer is not used: its call is made again, and its upload replaces the object"
                        );
                    }
                    self.corrupt += 1;
                }
                Err(e) => {
                    self.failed_lookups += 1;
                    if e.stops_remote() {
                        self.stop(&e);
                    } else if self.failed_lookups == 1 {
                        eprintln!("warning: {e}; that call is made here");
                    }
                }
            }
        }
        out
    }

    /// Which of `keys` the remote holds (one listing), for a dry run's estimate; why it could
    /// not say, if it could not.
    fn holds(&self, rt: &Runtime, keys: &[Hash]) -> Result<HashSet<Hash>, RemoteError> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let listed: HashSet<Hash> = rt.block_on(self.remote.list())?.into_iter().collect();
        Ok(keys.iter().filter(|k| listed.contains(k)).copied().collect())
    }

    /// The uploader, started on `rt` on first use.
    pub fn uploader(&mut self, rt: &Runtime) -> Option<&Uploader> {
        if self.stopped.is_some() {
            return None;
        }
        if self.uploader.is_none() {
            let _in_runtime = rt.enter();
            self.uploader = Some(Uploader::start(self.remote.clone(), UPLOAD_CONCURRENCY, UPLOAD_QUEUE));
        }
        self.uploader.as_ref()
    }

    /// Queues, once per run, the answers of earlier runs the remote is not known to hold
    /// (a run that was killed, a remote that was down, answers made before the remote was set).
    pub fn queue_backlog(&mut self, rt: &Runtime, store: &Store) -> Result<usize> {
        if self.backlog_queued || self.stopped.is_some() {
            return Ok(0);
        }
        self.backlog_queued = true;
        let keys = store.unshared(&self.url)?;
        if keys.is_empty() {
            return Ok(0);
        }
        let Some(up) = self.uploader(rt) else { return Ok(0) };
        let mut n = 0;
        for key in keys {
            if let Some(a) = store.stored_answer(&key)? {
                let content = String::from_utf8_lossy(&a.content).into_owned();
                up.push(RemoteAnswer::new(a.manifest, a.info, a.created_at, content));
                n += 1;
            }
        }
        Ok(n)
    }

    /// Waits for the uploads (each bounded by the remote's timeouts), notes in the store what
    /// the remote holds, and says what happened.
    pub fn finish(&mut self, rt: &Runtime, store: &mut Store) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        let mut held = std::mem::take(&mut self.fetched_keys);
        let mut why = self.stopped.clone();
        if let Some(up) = self.uploader.take() {
            let report = rt.block_on(up.finish());
            held.extend(&report.done);
            let mut parts = Vec::new();
            if report.uploaded + report.repaired > 0 {
                parts.push(format!("{} uploaded", report.uploaded + report.repaired));
            }
            if report.present > 0 {
                parts.push(format!("{} already there", report.present));
            }
            if report.packs > 0 {
                parts.push(format!("{} written", plural(report.packs, "pack")));
            }
            if !parts.is_empty() {
                notes.push(format!("remote cache {}: {}", self.url, parts.join(", ")));
            }
            why = why.or(report.first_error.map(|e| e.message().to_owned()));
        }
        store.mark_shared(&self.url, &held)?;
        if self.fetched > 0 {
            notes.push(format!(
                "remote cache {}: {} fetched, no request made for them",
                self.url,
                plural(self.fetched, "answer")
            ));
        }
        let missing = store.unshared(&self.url)?.len();
        if missing > 0 {
            notes.push(format!(
                "remote cache {}: {} not uploaded ({}); the next run uploads them",
                self.url,
                plural(missing, "answer"),
                why.as_deref().unwrap_or("not tried")
            ));
        }
        if self.corrupt > 0 {
            notes.push(format!(
                "remote cache {}: {} ignored (their calls were made)",
                self.url,
                plural(self.corrupt, "corrupt object")
            ));
        }
        Ok(notes)
    }
}

/// The status an answer was recorded with where it was made (`ok` when its record does not say).
fn status_of(answer: &RemoteAnswer) -> String {
    answer
        .info
        .as_deref()
        .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
        .and_then(|v| v["status"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "ok".to_owned())
}

/// Whether a fetched answer answers here: not a truncated one where the stage fails those.
pub fn usable(answer: &RemoteAnswer, truncation_fails: bool) -> bool {
    !(truncation_fails && status_of(answer) == "truncated")
}

/// Commits answers read from the remote as this run's answers of their calls (a record that
/// says where each came from), then writes their files. Returns (calls, tasks) answered.
pub fn commit_fetched(
    store: &mut Store,
    root: &std::path::Path,
    tmp: &std::path::Path,
    stage: &str,
    url: &str,
    found: Vec<(PendingCall, RemoteAnswer)>,
) -> Result<(usize, usize)> {
    let mut rows = Vec::new();
    let mut files: Vec<AnswerFile> = Vec::new();
    let mut tasks = 0;
    for (call, answer) in &found {
        let status = status_of(answer);
        let made = answer
            .info
            .as_deref()
            .and_then(|i| serde_json::from_str::<CallRecord>(i).ok());
        let mut record = made.unwrap_or_else(|| CallRecord {
            task: call.task.clone(),
            stage: stage.to_owned(),
            provider: String::new(),
            model_requested: call.spec.model.clone(),
            model_served: None,
            response_id: None,
            finish_reason: None,
            status: status.clone(),
            cause: None,
            error: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost_usd: None,
            cost_estimated_usd: None,
            temperature: call.spec.temperature,
            max_tokens: call.spec.max_tokens,
            latency_ms: 0,
            attempts: 0,
            timestamp: answer.created_at.clone(),
            key: call.key,
            imported_from: None,
            fetched_from: None,
            shared_with: Vec::new(),
        });
        // this project's task, as asked here; the rest (tokens, cost, when) as it was made
        record.task = call.task.clone();
        record.stage = stage.to_owned();
        record.model_requested = call.spec.model.clone();
        record.shared_with = call.also.iter().map(|s| s.task.clone()).collect();
        record.fetched_from = Some(url.to_owned());
        for (i, (path, r)) in call.records_per_task(&record).enumerate() {
            let json = serde_json::to_string(&r)?;
            tasks += 1;
            if call.materialize {
                files.push((
                    path.to_owned(),
                    answer.content.clone().into_bytes(),
                    sidecar_path(path),
                    serde_json::to_vec_pretty(&r)?,
                    call.key,
                    r.task.clone(),
                ));
            }
            rows.push(CallRow {
                key: call.key,
                stage: stage.to_owned(),
                task: r.task.clone(),
                status: status.clone(),
                manifest: call.manifest.clone(),
                response: (i == 0).then(|| answer.content.clone()),
                record: json,
            });
        }
    }
    store.put_calls(&rows, false)?;
    let written = write_answer_files(root, tmp, stage, files)?;
    store.put_outputs(&written)?;
    Ok((found.len(), tasks))
}

/// Which of `keys` the remote of `config` holds, for an estimate (a dry run, or the spending
/// guard's look ahead): one listing. A remote that cannot be reached or opened holds nothing
/// for the estimate, which says why (the run itself warns).
pub fn holds(config: &RemoteConfig, keys: &[Hash]) -> Result<(HashSet<Hash>, Option<String>)> {
    if keys.is_empty() {
        return Ok((HashSet::new(), None));
    }
    let remote = match Remote::open(config) {
        Ok(r) => r,
        Err(e) => return Ok((HashSet::new(), Some(e.to_string()))),
    };
    let shared = SharedCache::with(remote);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(match shared.holds(&rt, keys) {
        Ok(held) => (held, None),
        Err(e) => (HashSet::new(), Some(e.to_string())),
    })
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
