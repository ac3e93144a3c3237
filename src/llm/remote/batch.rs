//! Many requests at once: downloads with bounded concurrency, and uploads from a queue that runs
//! beside the caller and never makes it wait.
//!
//! Both stop asking a remote that has shown itself unusable ([`RemoteError::stops_remote`]: down,
//! slow, refusing us, or missing): the requests not yet sent then fail at once with that error,
//! marked not tried, so an unreachable remote costs one timeout, not one per answer.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{PutOutcome, Remote, RemoteAnswer, RemoteError};
use crate::engine::keys::Hash;

/// The first error that stopped the remote, shared by the requests of one batch.
#[derive(Default)]
struct Stop(Mutex<Option<RemoteError>>);

impl Stop {
    fn get(&self) -> Option<RemoteError> {
        self.0
            .lock()
            .expect("never poisoned: no code panics holding it")
            .clone()
    }

    fn note<T>(&self, result: &Result<T, RemoteError>) {
        if let Err(e) = result
            && e.stops_remote()
        {
            self.0.lock().expect("never poisoned").get_or_insert_with(|| e.clone());
        }
    }
}

/// From this many keys on, `fetch_many` lists the remote's answers (one request per 1,000) rather
/// than asking for each key that may not be there.
const LIST_FIRST: usize = 256;

/// An [`Uploader`] that uploaded this many answers also writes them as packs when it finishes.
pub const PACK_AT_LEAST: usize = 100;

impl Remote {
    /// Downloads and verifies the answers of `keys`, `concurrency` requests at a time, in no
    /// particular order: for each key its answer, `None` if the remote has none, or why it could
    /// not be had. Packs are read first (a few requests for thousands of answers), then, for many
    /// keys, the listing tells which of the others exist; those are read one by one.
    pub async fn fetch_many(
        &self,
        keys: Vec<Hash>,
        concurrency: usize,
    ) -> Vec<(Hash, Result<Option<RemoteAnswer>, RemoteError>)> {
        let mut out = Vec::with_capacity(keys.len());
        let mut rest = keys;
        let from_packs = match self.pack_index(concurrency).await {
            Ok(index) if index.is_empty() => Ok(Vec::new()),
            Ok(index) => self.read_packs(&index, &rest, concurrency).await,
            Err(e) => Err(e),
        };
        match from_packs {
            Ok(found) => {
                let found_keys: HashSet<Hash> = found.iter().map(|a| a.key).collect();
                rest.retain(|k| !found_keys.contains(k));
                out.extend(found.into_iter().map(|a| (a.key, Ok(Some(a)))));
            }
            Err(e) if e.stops_remote() => return fail_all(out, rest, e),
            Err(_) => {} // packs only speed things up
        }
        if rest.len() >= LIST_FIRST {
            match self.list().await {
                Ok(listed) => {
                    let listed: HashSet<Hash> = listed.into_iter().collect();
                    let (present, absent): (Vec<Hash>, Vec<Hash>) = rest.into_iter().partition(|k| listed.contains(k));
                    out.extend(absent.into_iter().map(|k| (k, Ok(None))));
                    rest = present;
                }
                Err(e) if e.stops_remote() => return fail_all(out, rest, e),
                Err(_) => {}
            }
        }
        let stop = Stop::default();
        let stop = &stop;
        let one_by_one: Vec<_> = futures_util::stream::iter(rest)
            .map(|key| async move {
                if let Some(e) = stop.get() {
                    return (key, Err(e.not_tried()));
                }
                let got = self.get(&key).await;
                stop.note(&got);
                (key, got)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        out.extend(one_by_one);
        out
    }
}

/// `out`, and `e` for each of `rest` (sent for none of them).
fn fail_all(
    mut out: Vec<(Hash, Result<Option<RemoteAnswer>, RemoteError>)>,
    rest: Vec<Hash>,
    e: RemoteError,
) -> Vec<(Hash, Result<Option<RemoteAnswer>, RemoteError>)> {
    out.extend(rest.into_iter().map(|k| (k, Err(e.not_tried()))));
    out
}

/// What an [`Uploader`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Written now.
    pub uploaded: usize,
    /// The remote had them already.
    pub present: usize,
    /// A corrupt object of theirs was found and replaced.
    pub repaired: usize,
    /// Tried, and failed.
    pub failed: usize,
    /// Not tried: the queue was full, or the remote had stopped answering; a later upload of
    /// what is missing brings them.
    pub pending: usize,
    /// Packs written at the end, copies of the new answers that a fresh clone reads in a few
    /// requests (when at least [`PACK_AT_LEAST`] were uploaded).
    pub packs: usize,
    /// The first failure, for the one warning a run prints.
    pub first_error: Option<RemoteError>,
    /// The keys the remote holds now (uploaded, present or repaired), so the store can note them.
    pub done: Vec<Hash>,
}

impl UploadReport {
    fn tally(&mut self, key: Hash, result: Result<PutOutcome, RemoteError>) {
        if result.is_ok() {
            self.done.push(key);
        }
        match result {
            Ok(PutOutcome::Uploaded) => self.uploaded += 1,
            Ok(PutOutcome::Present) => self.present += 1,
            Ok(PutOutcome::Repaired) => self.repaired += 1,
            Err(e) => {
                if e.was_tried() {
                    self.failed += 1;
                } else {
                    self.pending += 1;
                }
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// Uploads answers in the background of the runtime it was started on, `concurrency` at a time,
/// from a queue of at most `capacity` answers; [`Uploader::push`] never waits.
pub struct Uploader {
    queue: mpsc::Sender<RemoteAnswer>,
    task: tokio::task::JoinHandle<UploadReport>,
    /// Answers refused because the queue was full (or the task had ended).
    refused: AtomicUsize,
    pushed: AtomicUsize,
}

impl Uploader {
    /// Starts the upload task on the current tokio runtime (a current-thread one runs it
    /// whenever the caller awaits).
    pub fn start(remote: Remote, concurrency: usize, capacity: usize) -> Uploader {
        let (queue, mut rx) = mpsc::channel::<RemoteAnswer>(capacity.max(1));
        let task = tokio::spawn(async move {
            let stop = Stop::default();
            let stop = &stop;
            let remote = &remote;
            let mut report = UploadReport::default();
            let mut new = Vec::new();
            futures_util::stream::poll_fn(|cx| rx.poll_recv(cx))
                .map(|answer| async move {
                    if let Some(e) = stop.get() {
                        return (answer, Err(e.not_tried()));
                    }
                    let put = remote.put(&answer).await;
                    stop.note(&put);
                    (answer, put)
                })
                .buffer_unordered(concurrency.max(1))
                .for_each(|(answer, result)| {
                    let key = answer.key;
                    if matches!(result, Ok(PutOutcome::Uploaded | PutOutcome::Repaired)) {
                        new.push(answer);
                    }
                    report.tally(key, result);
                    std::future::ready(())
                })
                .await;
            if new.len() >= PACK_AT_LEAST && stop.get().is_none() {
                match remote.put_packs(&new).await {
                    Ok(n) => report.packs = n,
                    Err(e) => {
                        report.first_error.get_or_insert(e);
                    }
                }
            }
            report
        });
        Uploader {
            queue,
            task,
            refused: AtomicUsize::new(0),
            pushed: AtomicUsize::new(0),
        }
    }

    /// Queues an answer for upload; false (and counted as pending) if the queue is full.
    pub fn push(&self, answer: RemoteAnswer) -> bool {
        self.pushed.fetch_add(1, Ordering::Relaxed);
        let queued = self.queue.try_send(answer).is_ok();
        if !queued {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// Waits until every queued answer is uploaded or has failed (each request is bounded by the
    /// remote's timeouts), and says what happened.
    pub async fn finish(self) -> UploadReport {
        let Uploader {
            queue,
            task,
            refused,
            pushed,
        } = self;
        drop(queue);
        let refused = refused.into_inner();
        let mut report = task.await.unwrap_or_else(|_| UploadReport {
            // the task died (it does not panic, but a runtime shutting down cancels it)
            pending: pushed.into_inner() - refused,
            ..UploadReport::default()
        });
        report.pending += refused;
        report
    }
}
