//! `daydream cache status|push|pull`: the answers of this project's store and of the remote
//! answer cache, compared and moved explicitly (a run does both on its own; these are for a
//! store that was filled before the remote was set, or a machine that should hold everything
//! before going offline).

use std::collections::HashSet;
use std::io::Write;

use anyhow::{Context, anyhow};

use crate::engine::cache::RemoteConfig;
use crate::engine::diag::Diag;
use crate::engine::fsutil::ProjectLock;
use crate::engine::keys::{Hash, Manifest};
use crate::engine::run::{Project, RunError};
use crate::engine::store::CallRow;
use crate::llm::record::CallRecord;
use crate::llm::remote::{Remote, RemoteAnswer, Uploader};

/// What `cache` was asked to do.
pub enum Action {
    Status,
    Push { dry_run: bool },
    Pull { dry_run: bool },
}

const CONCURRENCY: usize = 32;

/// The remote this project uses, or the error saying how to set one.
pub(crate) fn configured(project: &Project) -> Result<RemoteConfig, RunError> {
    let pipeline = project.pipeline()?;
    let env = crate::llm::provider::Env::load(&project.root);
    let chosen = RemoteConfig::chosen(pipeline.cache.remote.as_ref(), |k| env.get(k))
        .map_err(|e| Diag::new(e.to_string()).help("fix DAYDREAM_REMOTE, or unset it to use pipeline.yaml's"))?;
    chosen.ok_or_else(|| {
        Diag::new("no remote answer cache is configured")
            .help(
                "add `cache: {remote: s3://BUCKET/PREFIX}` (or file:///SHARED/DIR) to pipeline.yaml, or set \
                 DAYDREAM_REMOTE; README, \"Working as a team\"",
            )
            .into()
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn cache(project: &Project, action: Action, out: &mut dyn Write) -> Result<i32, RunError> {
    let config = configured(project)?;
    let remote = Remote::open(&config).map_err(|e| anyhow!("{e}"))?;
    let url = remote.url().to_owned();
    let rt = runtime()?;
    let dry = matches!(
        action,
        Action::Status | Action::Push { dry_run: true } | Action::Pull { dry_run: true }
    );
    // a command that writes the store holds the project lock, as a run does
    let (_lock, mut store) = if dry {
        (None, project.open_store_or_empty()?)
    } else {
        (Some(ProjectLock::acquire(&project.state_dir())?), project.open_store()?)
    };
    let here: HashSet<Hash> = store.answer_keys()?.into_iter().collect();
    let there: HashSet<Hash> = rt
        .block_on(remote.list())
        .map_err(|e| anyhow!("{e}"))?
        .into_iter()
        .collect();
    let here_only: Vec<Hash> = here.difference(&there).copied().collect();
    let there_only: Vec<Hash> = there.difference(&here).copied().collect();
    let both: Vec<Hash> = here.intersection(&there).copied().collect();
    if !dry {
        store.mark_shared(&url, &both)?;
    }
    match action {
        Action::Status => {
            let _ = writeln!(out, "remote cache {url}");
            let _ = writeln!(
                out,
                "  {:>8}  answers here only (`daydream cache push` uploads them)",
                here_only.len()
            );
            let _ = writeln!(
                out,
                "  {:>8}  in the remote only (`daydream cache pull` downloads them)",
                there_only.len()
            );
            let _ = writeln!(out, "  {:>8}  in both", both.len());
        }
        Action::Push { dry_run } => {
            let answers = here_only
                .iter()
                .map(|k| store.stored_answer(k))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let bytes: usize = answers.iter().flatten().map(|a| a.content.len()).sum();
            if dry_run {
                let _ = writeln!(
                    out,
                    "would upload {} answers ({}) to {url}; {} are there already",
                    here_only.len(),
                    human_bytes(bytes),
                    both.len()
                );
                return Ok(0);
            }
            let report = rt.block_on(async {
                let up = Uploader::start(remote.clone(), CONCURRENCY / 2, answers.len().max(1));
                for a in answers.into_iter().flatten() {
                    let content = String::from_utf8_lossy(&a.content).into_owned();
                    up.push(RemoteAnswer::new(a.manifest, a.info, a.created_at, content));
                }
                up.finish().await
            });
            store.mark_shared(&url, &report.done)?;
            let _ = writeln!(
                out,
                "uploaded {} answers ({}) to {url}{}; {} were there already",
                report.uploaded + report.repaired,
                human_bytes(bytes),
                if report.packs > 0 {
                    format!(", and {} packs for fast reading", report.packs)
                } else {
                    String::new()
                },
                both.len() + report.present
            );
            if report.failed + report.pending > 0 {
                let why = report.first_error.map(|e| e.to_string()).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{} answers not uploaded: {why}; run `daydream cache push` again",
                    report.failed + report.pending
                );
                return Ok(1);
            }
        }
        Action::Pull { dry_run } => {
            if dry_run {
                let _ = writeln!(
                    out,
                    "would download {} answers from {url}; {} are here already",
                    there_only.len(),
                    both.len()
                );
                return Ok(0);
            }
            let fetched = rt.block_on(remote.fetch_many(there_only, CONCURRENCY));
            let (mut rows, mut keys, mut failed) = (Vec::new(), Vec::new(), Vec::new());
            for (key, got) in fetched {
                match got {
                    Ok(Some(a)) => match adopted(&a, &url) {
                        Some(row) => {
                            keys.push(key);
                            rows.push(row);
                        }
                        None => failed.push(format!(
                            "answer {}: its manifest or record is not one this daydream reads",
                            key.short()
                        )),
                    },
                    Ok(None) => {}
                    Err(e) => failed.push(e.to_string()),
                }
            }
            store.put_calls(&rows, false)?;
            store.mark_shared(&url, &keys)?;
            let _ = writeln!(
                out,
                "downloaded {} answers from {url}; `daydream run` writes their files without a call",
                rows.len()
            );
            if !failed.is_empty() {
                let _ = writeln!(out, "{} answers not downloaded: {}", failed.len(), failed[0]);
                return Ok(1);
            }
        }
    }
    Ok(0)
}

/// A downloaded answer as a call row of this store (under the stage and task that made it).
fn adopted(a: &RemoteAnswer, url: &str) -> Option<CallRow> {
    let manifest: Manifest = serde_json::from_str(&a.manifest).ok()?;
    if manifest.key() != a.key {
        return None;
    }
    let mut record: CallRecord = a.info.as_deref().and_then(|i| serde_json::from_str(i).ok())?;
    record.fetched_from = Some(url.to_owned());
    Some(CallRow {
        key: a.key,
        stage: record.stage.clone(),
        task: record.task.clone(),
        status: record.status.clone(),
        manifest,
        response: Some(a.content.clone()),
        record: serde_json::to_string(&record).ok()?,
    })
}

pub(crate) fn human_bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} kB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}
