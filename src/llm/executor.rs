//! The LLM executor: makes the calls of one stage concurrently within the run's limits, and
//! records every outcome durably before anything else happens to it.
//!
//! Calls run on tokio. Finished calls go over a channel to one writer thread that owns the store:
//! results landing within a few milliseconds share one transaction and one fsync (group commit).
//! Only after that commit are the `.txt` and sidecar `.json` files written, by a second thread,
//! whose records come back to the writer. A `kill -9` therefore loses at most the calls in flight.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::Semaphore;

use crate::engine::keys::{Hash, Manifest};
use crate::engine::store::{CallRow, OutputRecord, Store};
use crate::llm::client::{self, CallSpec, Cause, Endpoint, Gate, Limiter, Outcome};
use crate::llm::progress::Progress;
use crate::llm::remote::{RemoteAnswer, Uploader};

use crate::llm::record::{AnswerFile, record_of, write_answer_files};
pub use crate::llm::record::{CallRecord, sidecar_path, task_record};

/// A call to make.
#[derive(Clone, Debug)]
pub struct PendingCall {
    pub task: String,
    pub key: Hash,
    pub manifest: Manifest,
    /// `spec.prompt` is read from the store just before the call starts when this is set (the
    /// prompt's content hash), so the first calls need not wait for every prompt to be read.
    pub prompt_in_store: Option<Hash>,
    pub spec: CallSpec,
    pub path: String,
    /// Other tasks asking exactly the same call (same key). They share its answer.
    pub also: Vec<Sharer>,
    pub materialize: bool,
    /// USD per million tokens (input, output), when known.
    pub price: Option<(f64, f64)>,
    /// The model's context length in tokens, when the models table gives it.
    pub context: Option<u64>,
}

/// A task that shares the answer of another task's call (the local model answers every model
/// name with its one model, so the tasks of one prompt share a call).
#[derive(Clone, Debug)]
pub struct Sharer {
    pub task: String,
    pub path: String,
    /// The model the task names.
    pub model: String,
}

impl PendingCall {
    /// The prompt's estimated tokens, when they are more than the model's context: such a call
    /// is never sent. The prompt alone is compared, not prompt + max_tokens: max_tokens is a cap
    /// on the answer, not a need, and the estimate (4 characters a token) is rough, so only a
    /// prompt that cannot fit whatever the answer fails here.
    pub fn over_context(&self) -> Option<(u64, u64)> {
        let context = self.context?;
        let tokens = estimate_tokens(&self.spec.prompt);
        (tokens > context).then_some((tokens, context))
    }

    /// The most this call can cost: its prompt at ~4 characters a token, and max_tokens out.
    pub fn worst_cost(&self) -> Option<f64> {
        self.price
            .map(|(i, o)| (estimate_tokens(&self.spec.prompt) as f64 * i + self.spec.max_tokens as f64 * o) / 1e6)
    }
}

pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Run-wide limits shared by every LLM stage of a run.
pub struct RunLimits {
    in_flight: Arc<Semaphore>,
    model_in_flight: Option<usize>,
    model_sems: Mutex<HashMap<String, Arc<Semaphore>>>,
    provider_pace: Option<Pacer>,
    free_rpm: u32,
    model_pace: Mutex<HashMap<String, Arc<Pacer>>>,
    stopped: Mutex<Option<String>>,
    stop_flag: AtomicBool,
    stopped_models: Mutex<HashMap<String, (Cause, String)>>,
    budget: Option<f64>,
    money: Arc<Mutex<Money>>,
}

/// Spent and reserved dollars, shared by every provider of a run.
#[derive(Default)]
pub struct Money {
    pub(crate) spent: f64,
    reserved: f64,
}

/// Spaces requests evenly: at most `per_minute`, no bursts.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(per_minute: u32) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(60.0 / f64::from(per_minute.max(1))),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().expect("pacer lock");
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

impl RunLimits {
    pub fn new(p: &crate::engine::providers::Provider, budget: Option<f64>, money: Arc<Mutex<Money>>) -> RunLimits {
        RunLimits {
            in_flight: Arc::new(Semaphore::new(p.max_in_flight)),
            model_in_flight: p.model_max_in_flight,
            model_sems: Mutex::default(),
            provider_pace: p.requests_per_minute.map(Pacer::new),
            free_rpm: p.free_requests_per_minute,
            model_pace: Mutex::default(),
            stopped: Mutex::default(),
            stop_flag: AtomicBool::new(false),
            stopped_models: Mutex::default(),
            budget,
            money,
        }
    }

    pub fn stopped_reason(&self) -> Option<String> {
        self.stopped.lock().expect("limits lock").clone()
    }

    fn model_stopped(&self, model: &str) -> Option<(Cause, String)> {
        self.stopped_models.lock().expect("limits lock").get(model).cloned()
    }

    /// Reserves the worst case of a call against the budget; false when it would pass it.
    fn reserve(&self, worst: Option<f64>) -> bool {
        let (Some(limit), Some(worst)) = (self.budget, worst) else {
            return true;
        };
        let mut m = self.money.lock().expect("money lock");
        if m.spent + m.reserved + worst > limit {
            return false;
        }
        m.reserved += worst;
        true
    }

    fn settle(&self, worst: Option<f64>, actual: f64) {
        let mut m = self.money.lock().expect("money lock");
        if self.budget.is_some()
            && let Some(w) = worst
        {
            m.reserved -= w;
        }
        m.spent += actual;
    }

    fn model_sem(&self, model: &str) -> Option<Arc<Semaphore>> {
        let n = self.model_in_flight?;
        Some(
            self.model_sems
                .lock()
                .expect("limits lock")
                .entry(model.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(n)))
                .clone(),
        )
    }
}

impl Limiter for RunLimits {
    async fn before_attempt(&self, model: &str) -> Gate {
        if self.stop_flag.load(Ordering::Relaxed) {
            return Gate::Stop(Cause::Stopped);
        }
        if let Some((cause, _)) = self.model_stopped(model) {
            return Gate::Stop(cause);
        }
        if let Some(p) = &self.provider_pace {
            p.wait().await;
        }
        if model.ends_with(":free") {
            let pacer = self
                .model_pace
                .lock()
                .expect("limits lock")
                .entry(model.to_owned())
                .or_insert_with(|| Arc::new(Pacer::new(self.free_rpm)))
                .clone();
            pacer.wait().await;
        }
        Gate::Go
    }

    fn stop_model(&self, model: &str, why: &str) {
        let cause = if why.contains("X-RateLimit") {
            Cause::DailyCap
        } else {
            Cause::ModelNotFound
        };
        self.stopped_models
            .lock()
            .expect("limits lock")
            .entry(model.to_owned())
            .or_insert((cause, why.to_owned()));
    }

    fn stop_all(&self, why: &str) {
        self.stop_flag.store(true, Ordering::Relaxed);
        self.stopped
            .lock()
            .expect("limits lock")
            .get_or_insert_with(|| why.to_owned());
    }
}

/// What happened to the calls of one stage.
#[derive(Debug, Default, Clone)]
pub struct CallsSummary {
    pub ok: usize,
    pub truncated: usize,
    pub failed: BTreeMap<Cause, usize>,
    pub not_started: BTreeMap<Cause, usize>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
    /// Calls whose cost is neither reported nor priced.
    pub unpriced: usize,
    pub requests: u64,
    /// Calls whose answers came from the remote cache (no request, nothing paid here).
    pub fetched: usize,
    /// The tasks those answered.
    pub fetched_tasks: usize,
    /// Tasks left to other shards (`--shard`).
    pub elsewhere: usize,
    /// Content hashes of the answers made in this call of the executor (not fetched).
    pub made: Vec<Hash>,
    /// Tasks answered and tasks failed (a call can serve several tasks).
    pub tasks_answered: usize,
    pub tasks_failed: usize,
}

struct Finished {
    call: PendingCall,
    outcome: Outcome,
    record: CallRecord,
}

enum Msg {
    Finished(Box<Finished>),
    /// Every call has ended: no `Finished` follows.
    DispatchDone,
    /// Files the file thread wrote, to record.
    Written(Vec<OutputRecord>),
}

/// Makes `calls` and records their outcomes; returns when every call has ended or was not started.
#[allow(clippy::too_many_arguments)]
pub fn execute(
    rt: &tokio::runtime::Runtime,
    store: &mut Store,
    root: &Path,
    tmp: &Path,
    stage: &str,
    ep: &Endpoint,
    limits: &Arc<RunLimits>,
    calls: Vec<PendingCall>,
    truncation_fails: bool,
    refresh: bool,
    progress: &Progress,
    upload: Option<&Uploader>,
) -> Result<CallsSummary> {
    let reader = store.reader()?;
    let (tx, rx) = mpsc::channel::<Msg>();
    let (files_tx, files_rx) = mpsc::channel::<Vec<AnswerFile>>();
    let summary = Mutex::new(CallsSummary::default());
    let writer_failed = AtomicBool::new(false);
    let lost = std::thread::scope(|scope| -> Result<Option<Hash>> {
        // files, after the store has the responses
        let file_tx = tx.clone();
        let root_f = root.to_path_buf();
        let tmp_f = tmp.to_path_buf();
        let stage_f = stage.to_owned();
        let files = scope.spawn(move || -> Result<()> {
            for batch in files_rx {
                let records = write_answer_files(&root_f, &tmp_f, &stage_f, batch)?;
                let _ = file_tx.send(Msg::Written(records));
            }
            Ok(())
        });
        let writer = scope.spawn(|| -> Result<()> {
            let result = writer_loop(
                store,
                rx,
                files_tx,
                stage,
                &summary,
                progress,
                truncation_fails,
                refresh,
                upload,
            );
            if result.is_err() {
                writer_failed.store(true, Ordering::Relaxed);
                limits.stop_all("the store could not be written");
            }
            result
        });
        // a line at least every heartbeat while the calls run, also when none ends
        let (beat_stop, beats) = mpsc::channel::<()>();
        scope.spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                beats.recv_timeout(progress.next_heartbeat().saturating_duration_since(Instant::now()))
            {
                progress.heartbeat();
            }
        });
        let lost = rt.block_on(dispatch(ep, limits, calls, &reader, tx, progress, stage));
        drop(beat_stop);
        let w = writer.join().expect("writer thread");
        let f = files.join().expect("file thread");
        w.and(f)?;
        Ok(lost)
    })?;
    // a prompt the store lost: forget the records that name it, so the next run renders it anew
    if let Some(hash) = lost {
        store.forget_lost(&hash)?;
    }
    let mut s = summary.into_inner().expect("summary lock");
    let unsent = s.failed.get(&Cause::ContextLength).copied().unwrap_or(0);
    s.requests = (s.ok + s.truncated + s.failed.values().sum::<usize>() - unsent) as u64;
    Ok(s)
}

async fn dispatch(
    ep: &Endpoint,
    limits: &Arc<RunLimits>,
    calls: Vec<PendingCall>,
    reader: &crate::engine::store::BlobReader,
    tx: mpsc::Sender<Msg>,
    progress: &Progress,
    stage: &str,
) -> Option<Hash> {
    let _done = DoneOnDrop(tx.clone());
    let mut lost = None;
    // a setup failure stops every call; the loop below then records each as not started
    let setup = client::client()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
        .and_then(|c| ep.prepare().map(|p| (c, Arc::new(p))));
    let (client, prepared) = match setup {
        Ok((c, p)) => (Some(c), Some(p)),
        Err(e) => {
            limits.stop_all(&e);
            (None, None)
        }
    };
    let ep = Arc::new(ep.clone());
    let mut set = tokio::task::JoinSet::new();
    let counters = progress.counters.clone();
    let mut budget_hit = false;
    let mut queue = std::collections::VecDeque::from(calls);
    let mut i = 0usize;
    while let Some(mut call) = queue.pop_front() {
        i += 1;
        // read just before the call (no need once calls were stopped), with the next ones
        if call.prompt_in_store.is_some() && limits.stopped_reason().is_none() {
            lost = read_prompts_ahead(reader, &mut call, &mut queue, limits);
        }
        let end_unsent = |status: &str, cause: Cause, message: String| {
            let outcome = Outcome {
                status: status.into(),
                cause: Some(cause),
                error: Some(message),
                reply: None,
                attempts: 0,
                latency_ms: 0,
                cost: None,
            };
            let record = record_of(&call, &outcome, &ep, stage);
            let _ = tx.send(Msg::Finished(Box::new(Finished {
                call: call.clone(),
                outcome,
                record,
            })));
        };
        let not_started = |cause: Cause, message: String| end_unsent("not_started", cause, message);
        if let Some(why) = limits.stopped_reason() {
            not_started(Cause::Stopped, format!("not started: {why}"));
            continue;
        }
        if let Some((cause, why)) = limits.model_stopped(&call.spec.model) {
            // a bad model name or a used-up daily cap: every task of that model fails
            not_started(cause, why);
            continue;
        }
        if let Some((tokens, context)) = call.over_context() {
            // recorded as failed, so status and explain show it; the next run checks it again
            end_unsent(
                "failed",
                Cause::ContextLength,
                format!(
                    "the prompt (~{tokens} tokens) is longer than the context of {} ({context} tokens, \
                     `context_tokens` of the models table); no request was sent",
                    call.spec.model
                ),
            );
            continue;
        }
        let worst = call.worst_cost();
        if budget_hit || !limits.reserve(worst) {
            budget_hit = true;
            not_started(Cause::Budget, "not started: the budget would be passed".into());
            continue;
        }
        let (Some(client), Some(prepared)) = (&client, &prepared) else {
            not_started(
                Cause::Stopped,
                "not started: the HTTP client could not be set up".into(),
            );
            continue;
        };
        let permit = limits.in_flight.clone().acquire_owned().await.expect("semaphore open");
        let (client, ep, limits, tx, counters, prepared) = (
            client.clone(),
            ep.clone(),
            limits.clone(),
            tx.clone(),
            counters.clone(),
            prepared.clone(),
        );
        let stage = stage.to_owned();
        set.spawn(async move {
            let _model_permit = match limits.model_sem(&call.spec.model) {
                Some(s) => Some(s.acquire_owned().await.expect("semaphore open")),
                None => None,
            };
            counters.call_started(i as u64);
            let outcome = client::call(
                &client,
                &ep,
                &prepared,
                &call.spec,
                &*limits,
                i as u64 ^ 0x5851_f42d_4c95_7f2d,
            )
            .await;
            counters.call_ended(i as u64);
            drop(permit);
            let record = record_of(&call, &outcome, &ep, &stage);
            let actual = record.cost_usd.or(record.cost_estimated_usd).unwrap_or(0.0);
            limits.settle(worst, actual);
            let _ = tx.send(Msg::Finished(Box::new(Finished { call, outcome, record })));
        });
        // reap what finished, so the set stays small
        while set.try_join_next().is_some() {}
        progress.tick();
    }
    while set.join_next().await.is_some() {
        progress.tick();
    }
    lost
}

/// How many prompts `dispatch` reads from the store in one read transaction.
const PROMPTS_AHEAD: usize = 64;

/// Reads the prompt of `call` and those of the next calls waiting in `queue`, up to
/// `PROMPTS_AHEAD` in all, in one read transaction. A prompt the store lacks stops the run when
/// its call comes first, and is returned; a read error stops it at once.
fn read_prompts_ahead(
    reader: &crate::engine::store::BlobReader,
    call: &mut PendingCall,
    queue: &mut std::collections::VecDeque<PendingCall>,
    limits: &RunLimits,
) -> Option<Hash> {
    let mut batch: Vec<&mut PendingCall> = std::iter::once(call)
        .chain(queue.iter_mut().filter(|c| c.prompt_in_store.is_some()))
        .take(PROMPTS_AHEAD)
        .collect();
    let hashes: Vec<Hash> = batch.iter().filter_map(|c| c.prompt_in_store).collect();
    match reader.blobs(&hashes) {
        Ok(texts) => {
            for (c, text) in batch.iter_mut().zip(texts) {
                if let Some(text) = text {
                    c.spec.prompt = Arc::from(crate::engine::text::lossy(&text).as_ref());
                    c.prompt_in_store = None;
                }
            }
            let first = &batch[0];
            let lost = first.prompt_in_store;
            if let Some(hash) = lost {
                limits.stop_all(&format!(
                    "the store lost the prompt ({}) of {}; its records are dropped, so `daydream run` \
                     renders it anew",
                    hash.short(),
                    first.path
                ));
            }
            lost
        }
        Err(e) => {
            limits.stop_all(&format!(
                "cannot read the prompt of {} from the store: {e:#}",
                batch[0].path
            ));
            None
        }
    }
}

/// Tells the writer that no call will finish any more, also when dispatching panics (otherwise
/// the writer and the file thread would wait for each other forever).
struct DoneOnDrop(mpsc::Sender<Msg>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(Msg::DispatchDone);
    }
}

#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn writer_loop(
    store: &mut Store,
    rx: mpsc::Receiver<Msg>,
    files_tx: mpsc::Sender<Vec<AnswerFile>>,
    stage: &str,
    summary: &Mutex<CallsSummary>,
    progress: &Progress,
    truncation_fails: bool,
    refresh: bool,
    upload: Option<&Uploader>,
) -> Result<()> {
    let mut files_tx = Some(files_tx);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + Duration::from_millis(3);
        while batch.len() < 2048 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut finished = Vec::new();
        let mut written = Vec::new();
        let mut dispatch_done = false;
        for m in batch {
            match m {
                Msg::Finished(f) => finished.push(*f),
                Msg::Written(r) => written.extend(r),
                Msg::DispatchDone => dispatch_done = true,
            }
        }
        if !finished.is_empty() {
            let rows: Vec<CallRow> = finished
                .iter()
                .filter(|f| f.outcome.status != "not_started")
                .flat_map(|f| {
                    let success = matches!(f.outcome.status.as_str(), "ok")
                        || (f.outcome.status == "truncated" && !truncation_fails);
                    let response =
                        success.then(|| f.outcome.reply.as_ref().map(|r| r.text.clone()).unwrap_or_default());
                    f.call
                        .records_per_task(&f.record)
                        .enumerate()
                        .map(move |(i, (_, record))| CallRow {
                            key: f.call.key,
                            stage: stage.to_owned(),
                            task: record.task.clone(),
                            status: f.outcome.status.clone(),
                            manifest: f.call.manifest.clone(),
                            // one answer per key: the other tasks share it
                            response: if i == 0 { response.clone() } else { None },
                            record: serde_json::to_string(&record).expect("record serializes"),
                        })
                })
                .collect();
            // the durable point: nothing else happens to a response before this commit
            store.put_calls(&rows, refresh)?;
            summary.lock().expect("summary lock").made.extend(
                rows.iter()
                    .filter_map(|r| r.response.as_deref())
                    .map(|t| Hash::of(t.as_bytes())),
            );
            if let Some(up) = upload {
                // shared only once committed here; the upload never delays the calls
                for r in rows.iter().filter(|r| r.response.is_some()) {
                    up.push(RemoteAnswer::new(
                        r.manifest.to_json(),
                        Some(r.record.clone()),
                        crate::engine::clock::now_utc(),
                        r.response.clone().unwrap_or_default(),
                    ));
                }
            }
            let mut to_write = Vec::new();
            {
                let mut s = summary.lock().expect("summary lock");
                for f in &finished {
                    let o = &f.outcome;
                    let r = &f.record;
                    s.prompt_tokens += r.prompt_tokens.unwrap_or(0);
                    s.completion_tokens += r.completion_tokens.unwrap_or(0);
                    let cost = r.cost_usd.or(r.cost_estimated_usd);
                    s.cost += cost.unwrap_or(0.0);
                    if cost.is_none() && o.status != "not_started" {
                        s.unpriced += 1;
                    }
                    progress.counters.tokens.fetch_add(
                        r.prompt_tokens.unwrap_or(0) + r.completion_tokens.unwrap_or(0),
                        Ordering::Relaxed,
                    );
                    progress.counters.add_cost(cost.unwrap_or(0.0));
                    let success = o.status == "ok" || (o.status == "truncated" && !truncation_fails);
                    match o.status.as_str() {
                        "ok" => s.ok += 1,
                        "truncated" if !truncation_fails => s.truncated += 1,
                        "not_started" => *s.not_started.entry(o.cause.unwrap_or(Cause::Stopped)).or_default() += 1,
                        _ => *s.failed.entry(o.cause.unwrap_or(Cause::Connection)).or_default() += 1,
                    }
                    let targets = 1 + f.call.also.len();
                    if success {
                        s.tasks_answered += targets;
                    } else {
                        s.tasks_failed += targets;
                    }
                    if success {
                        progress.counters.done.fetch_add(1, Ordering::Relaxed);
                        if f.call.materialize {
                            let text = o
                                .reply
                                .as_ref()
                                .map(|r| r.text.clone())
                                .unwrap_or_default()
                                .into_bytes();
                            for (path, record) in f.call.records_per_task(&f.record) {
                                to_write.push((
                                    path.to_owned(),
                                    text.clone(),
                                    sidecar_path(path),
                                    serde_json::to_vec_pretty(&record).expect("record serializes"),
                                    f.call.key,
                                    record.task,
                                ));
                            }
                        }
                    } else {
                        progress.counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if !to_write.is_empty()
                && let Some(t) = &files_tx
            {
                let _ = t.send(to_write);
            }
        }
        if !written.is_empty() {
            store.put_outputs(&written)?;
        }
        progress.tick();
        if dispatch_done {
            // the file thread finishes what it has, sends its last records, and hangs up
            files_tx = None;
        }
    }
    Ok(())
}
