//! `daydream gc`: shrinks the store to what the pipeline needs now, the last few versions of each
//! output, and every paid answer (see `engine::store::gc` for the rules). Watch mode runs the same
//! collection between rebuilds (`collect`).

use std::collections::HashMap;
use std::io::Write;

use anyhow::anyhow;

use super::cache::{configured, human_bytes};
use crate::engine::diag::Diag;
use crate::engine::fsutil::ProjectLock;
use crate::engine::keys::Hash;
use crate::engine::run::{self, Project, RunError};
use crate::engine::store::{AnswersGc, GcOptions, GcReport, Store};
use crate::llm::remote::Remote;

/// What `gc` was asked.
pub struct Args {
    pub dry_run: bool,
    pub keep: Option<u32>,
    pub answers: bool,
    pub force: bool,
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn bytes(n: u64) -> String {
    human_bytes(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Every key the current plan names, per stage (what `run --dry-run` plans).
pub fn current_keys(project: &Project, store: &mut Store) -> Result<HashMap<String, Vec<Hash>>, RunError> {
    let (_plan, stages) = run::survey(project, store, &[])?;
    Ok(stages
        .into_iter()
        .map(|s| (s.name, s.artifacts.iter().map(|(a, _)| a.key).collect()))
        .collect())
}

/// Runs one collection with the pipeline's settings; what watch mode calls between rebuilds.
pub fn collect(
    project: &Project,
    store: &mut Store,
    keep: Option<u32>,
    answers: AnswersGc,
    dry_run: bool,
    convert: bool,
    stop: &dyn Fn() -> bool,
) -> Result<GcReport, RunError> {
    let pipeline = project.pipeline()?;
    let current = current_keys(project, store)?;
    let opts = GcOptions {
        current: &current,
        keep: keep.unwrap_or(pipeline.cache.keep_versions),
        answers,
        dry_run,
        convert,
        root: &project.root,
    };
    Ok(store.gc(&opts, stop)?)
}

pub fn gc(project: &Project, args: Args, out: &mut dyn Write) -> Result<i32, RunError> {
    if args.force && !args.answers {
        return Err(Diag::new("--force only goes with --answers")
            .help("`daydream gc --answers --force` removes every paid answer's content; plain `gc` never does")
            .into());
    }
    let answers = match (args.answers, args.force) {
        (false, _) => AnswersGc::Keep,
        (true, true) => AnswersGc::All,
        (true, false) => {
            let config = configured(project).map_err(|e| match e {
                RunError::Config(d) => RunError::Config(Diag::new(format!(
                    "gc --answers removes only answers the remote answer cache holds, and {}",
                    d.message
                ))
                .help("configure the remote (pipeline.yaml `cache: {remote: ...}` or DAYDREAM_REMOTE), or add --force to remove every answer's content")),
                e => e,
            })?;
            let remote = Remote::open(&config).map_err(|e| anyhow!("{e}"))?;
            AnswersGc::Shared(remote.url().to_owned())
        }
    };
    let _lock = ProjectLock::acquire(&project.state_dir())?;
    let mut store = project.open_store()?;
    if answers == AnswersGc::All && !args.dry_run {
        let _ = writeln!(
            out,
            "warning: --answers --force removes the content of every paid LLM answer, also those no remote holds: \
             a run that needs them pays for them again (the call records, with their cost, are kept)"
        );
    }
    let r = collect(
        project,
        &mut store,
        args.keep,
        answers.clone(),
        args.dry_run,
        true,
        &|| false,
    )?;
    print(out, &r, &answers, args.dry_run);
    Ok(0)
}

fn print(out: &mut dyn Write, r: &GcReport, answers: &AnswersGc, dry: bool) {
    let (removes, frees) = if dry {
        ("would remove", "would free")
    } else {
        ("removed", "freed")
    };
    for s in &r.stages {
        let _ = writeln!(
            out,
            "{}: {removes} {} no current output needs ({})",
            s.stage,
            plural(s.versions, "old version"),
            bytes(s.bytes)
        );
    }
    if r.stages.is_empty() {
        let _ = writeln!(out, "no old version beyond those kept");
    }
    if r.loose_blobs > 0 {
        let _ = writeln!(
            out,
            "{removes} {} nothing names ({})",
            plural(r.loose_blobs, "stored content"),
            bytes(r.loose_bytes)
        );
    }
    if r.lost_records > 0 {
        let _ = writeln!(
            out,
            "{removes} {} of files of stages no longer in the pipeline",
            plural(r.lost_records, "record")
        );
    }
    match answers {
        AnswersGc::Keep => {}
        AnswersGc::Shared(url) => {
            let _ = writeln!(
                out,
                "{removes} the content of {} {url} holds ({}); a run fetches them back without a call",
                plural(r.answers_removed, "paid answer"),
                bytes(r.answers_bytes)
            );
        }
        AnswersGc::All => {
            let _ = writeln!(
                out,
                "{removes} the content of {} ({})",
                plural(r.answers_removed, "paid answer"),
                bytes(r.answers_bytes)
            );
        }
    }
    let _ = writeln!(
        out,
        "kept: what the pipeline reads now, earlier versions as cache.keep_versions says, {} (call records are never removed: they are the cost ledger)",
        plural(r.answers_kept, "paid answer")
    );
    if r.converted {
        let _ = writeln!(
            out,
            "the store was converted to incremental vacuum (a one-time full rewrite); later collections give space back in small steps"
        );
    }
    if dry {
        let _ = writeln!(out, "{frees} {} (nothing was changed)", bytes(r.bytes()));
    } else {
        let _ = writeln!(
            out,
            "{frees} {}: .daydream/store.db {} -> {}",
            bytes(r.bytes()),
            bytes(r.file_before),
            bytes(r.file_after)
        );
    }
}
