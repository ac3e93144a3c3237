//! The LLM side of one run: the tokio runtime, the local model's servers when a stage uses
//! them, the limits of each provider and the budget, shared by every LLM stage of the run, and
//! the remote answer cache (looked up before the calls, uploaded to beside them).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::engine::store::Store;
use crate::llm::client::Endpoint;
use crate::llm::executor::{CallsSummary, Money, PendingCall, RunLimits, execute};
use crate::llm::progress::Progress;
use crate::llm::shared::SharedCache;

/// The LLM side of one run: the tokio runtime, the local server if one is needed, the limits of
/// each provider, and the budget, shared by every LLM stage of the run.
pub struct Session {
    rt: Option<tokio::runtime::Runtime>,
    /// The local model's servers, when a stage uses it (started once per run).
    local: Vec<crate::llm::local::LocalServer>,
    limits: HashMap<String, Arc<RunLimits>>,
    budget: Option<f64>,
    money: Arc<Mutex<Money>>,
    /// The remote answer cache, when the run has one.
    shared: Option<SharedCache>,
}

impl Session {
    pub fn new(budget: Option<f64>, remote: Option<&crate::engine::cache::RemoteConfig>) -> Session {
        Session {
            rt: None,
            local: Vec::new(),
            limits: HashMap::new(),
            budget,
            money: Arc::default(),
            shared: remote.and_then(SharedCache::open),
        }
    }

    fn runtime(&mut self) -> Result<&tokio::runtime::Runtime> {
        if self.rt.is_none() {
            self.rt = Some(
                // one thread: the calls are I/O, and a second worker only adds wake-ups between
                // threads (about 20 µs of CPU per call here, `benches/bare_client.rs`)
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the async runtime")?,
            );
        }
        Ok(self.rt.as_ref().expect("made above"))
    }

    /// Waits for the uploads to the remote cache, and says what the remote did in this run.
    pub fn finish_shared(&mut self, store: &mut Store) -> Result<Vec<String>> {
        if self.shared.is_none() {
            return Ok(Vec::new());
        }
        self.runtime()?;
        let (Some(shared), Some(rt)) = (&mut self.shared, &self.rt) else {
            return Ok(Vec::new());
        };
        shared.queue_backlog(rt, store)?;
        let notes = shared.finish(rt, store)?;
        self.shared = None;
        Ok(notes)
    }

    pub fn stopped(&self) -> Option<String> {
        self.limits.values().find_map(|l| l.stopped_reason())
    }

    pub fn spent(&self) -> f64 {
        self.money.lock().expect("money lock").spent
    }

    /// Makes the calls of one LLM stage (`stage` names it in records and progress);
    /// `cached` is how many of its tasks the store already answered.
    #[allow(clippy::too_many_arguments)]
    pub fn run_calls(
        &mut self,
        root: &Path,
        store: &mut Store,
        tmp: &Path,
        stage: &str,
        truncation_fails: bool,
        choice: &crate::llm::provider::Choice,
        calls: Vec<PendingCall>,
        cached: usize,
        refresh: bool,
        shard: Option<&dyn Fn(&PendingCall) -> bool>,
    ) -> Result<CallsSummary> {
        self.runtime()?;
        let mut calls = calls;
        let mut fetched = (0, 0);
        if let (Some(shared), Some(rt)) = (&mut self.shared, &self.rt) {
            shared.queue_backlog(rt, store)?;
            if !refresh {
                let keys = calls.iter().map(|c| c.key).collect();
                let mut hits = shared.fetch(rt, keys);
                hits.retain(|_, a| crate::llm::shared::usable(a, truncation_fails));
                if !hits.is_empty() {
                    let (found, rest): (Vec<PendingCall>, Vec<PendingCall>) =
                        calls.into_iter().partition(|c| hits.contains_key(&c.key));
                    calls = rest;
                    let found = found
                        .into_iter()
                        .map(|c| {
                            let a = hits.remove(&c.key).expect("partitioned by it");
                            (c, a)
                        })
                        .collect();
                    fetched = crate::llm::shared::commit_fetched(store, root, tmp, stage, shared.url(), found)?;
                }
            }
        }
        // a sharded run makes only its part of what the remote did not answer
        let mut elsewhere = 0;
        if let Some(mine) = shard {
            let (kept, left): (Vec<PendingCall>, Vec<PendingCall>) = calls.into_iter().partition(|c| mine(c));
            elsewhere = left.iter().map(|c| 1 + c.also.len()).sum();
            calls = kept;
        }
        let mut base_urls = vec![choice.base_url.clone()];
        if choice.provider.local && choice.base_url.is_empty() && !calls.is_empty() {
            if self.local.is_empty() {
                let opts = crate::llm::local::LocalOptions {
                    alias: crate::llm::provider::LOCAL_MODEL.to_owned(),
                    ..Default::default()
                };
                let servers = choice
                    .provider
                    .max_in_flight
                    .min(crate::engine::providers::local_servers());
                self.local = crate::llm::local::LocalServer::start_many(&opts, servers, &|msg| eprintln!("{msg}"))?;
            }
            base_urls = self.local.iter().map(|s| s.base_url().to_owned()).collect();
        }
        let p = &choice.provider;
        let ep = Endpoint {
            provider: p.name.clone(),
            base_urls,
            key: choice.key.clone(),
            key_env: p.api_key_env.clone(),
            headers: p.headers.clone(),
            timeout: Duration::from_secs_f64(p.timeout_s.0),
            max_attempts: p.max_attempts,
            max_retry_time: Duration::from_secs_f64(p.max_retry_time_s.0),
            backoff_base: Duration::from_millis(p.backoff_base_ms),
            backoff_max: Duration::from_secs_f64(p.backoff_max_s.0),
            empty_retries: p.empty_retries,
            redactor: choice.redactor.clone(),
        };
        let limits = self
            .limits
            .entry(p.name.clone())
            .or_insert_with(|| Arc::new(RunLimits::new(p, self.budget, self.money.clone())))
            .clone();
        let progress = Progress::new(stage, calls.len() as u64, (cached + fetched.1) as u64);
        let upload = match (&mut self.shared, &self.rt) {
            (Some(shared), Some(rt)) => shared.uploader(rt),
            _ => None,
        };
        let rt = self.rt.as_ref().expect("runtime");
        let summary = execute(
            rt,
            store,
            root,
            tmp,
            stage,
            &ep,
            &limits,
            calls,
            truncation_fails,
            refresh,
            &progress,
            upload,
        );
        progress.finish();
        let mut summary = summary?;
        summary.fetched = fetched.0;
        summary.fetched_tasks = fetched.1;
        summary.elsewhere = elsewhere;
        summary.tasks_answered += fetched.1;
        Ok(summary)
    }
}
