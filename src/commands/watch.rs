//! `daydream run --watch`: run, then rebuild whenever an input of the pipeline changes.
//!
//! The project (and so the salsa database) lives for the whole session: a change sets the new
//! content of the file's salsa input, and the next run re-executes only the queries that read
//! it. What is watched comes from the pipeline: the directories of every file the queries have
//! read (pipeline.yaml, the CSVs, the concept descriptions, the templates), never `.daydream/`
//! or a stage's outputs, so daydream's own writes never trigger a rebuild. Saves are debounced
//! (an editor's burst of writes, or a write to a temp file and a rename, is one change), and a
//! save that leaves a file's content as it was does nothing.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use notify::{PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use notify_debouncer_full::{DebounceEventResult, Debouncer, FileIdCache, NoCache, RecommendedCache};

use crate::engine::diag::Diag;
use crate::engine::fsutil::ProjectLock;
use crate::engine::kind::DeclKind;
use crate::engine::run::{self as engine, Project, RunError, RunOptions, RunReport};
use crate::engine::spec::STATE_DIR;
use crate::engine::store::AnswersGc;

/// How long a burst of saves may last to count as one change (watchexec also waits 50 ms; an
/// editor's save, even by rename, lands within a few).
const DEBOUNCE: Duration = Duration::from_millis(50);

/// How often `--poll` looks at the files.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Either kind of debounced watcher.
enum Files {
    Native(Debouncer<RecommendedWatcher, RecommendedCache>),
    Poll(Debouncer<PollWatcher, NoCache>),
}

impl Files {
    fn start(poll: bool, tx: mpsc::Sender<DebounceEventResult>) -> Result<Files, notify::Error> {
        Ok(if poll {
            let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
            Files::Poll(notify_debouncer_full::new_debouncer_opt::<_, PollWatcher, NoCache>(
                DEBOUNCE, None, tx, NoCache, config,
            )?)
        } else {
            Files::Native(notify_debouncer_full::new_debouncer(DEBOUNCE, None, tx)?)
        })
    }

    fn watch(&mut self, dir: &Path) -> Result<(), notify::Error> {
        match self {
            Files::Native(d) => watch_with(d, dir),
            Files::Poll(d) => watch_with(d, dir),
        }
    }
}

fn watch_with<T: Watcher, C: FileIdCache>(d: &mut Debouncer<T, C>, dir: &Path) -> Result<(), notify::Error> {
    d.watch(dir, RecursiveMode::NonRecursive)
}

/// The error of a watcher that could not start or add a directory, with the fix.
fn watch_error(e: &notify::Error, dir: Option<&Path>) -> Diag {
    let at = dir.map(|d| format!(" {}", d.display())).unwrap_or_default();
    let errno = match &e.kind {
        notify::ErrorKind::MaxFilesWatch => Some(28),
        notify::ErrorKind::Io(io) => io.raw_os_error().filter(|n| matches!(n, 24 | 28)),
        _ => None,
    };
    match errno {
        Some(n) => Diag::new(format!(
            "cannot watch{at}: the system's limit on inotify {} is reached (errno {n})",
            if n == 28 { "watches" } else { "instances" }
        ))
        .help(
            "raise it (`sudo sysctl fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=1024`), \
             or run `daydream run --watch --poll`, which looks at the files every half second instead",
        ),
        None => Diag::new(format!("cannot watch{at}: {e}"))
            .help("run `daydream run --watch --poll` to look at the files periodically instead"),
    }
}

/// The directories to watch: the project root (pipeline.yaml), the directory of every file the
/// pipeline read (or looked for), and every input a stage declares but reads itself (a command's
/// dependencies), outside `.daydream/` and the stages' outputs.
fn input_dirs(project: &Project, outputs: &Outputs) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    dirs.insert(project.root.clone());
    for rel in project.db.known_files() {
        let dir = Path::new(&rel).parent().unwrap_or(Path::new(""));
        if !outputs.covers(&rel) {
            dirs.insert(nearest_existing(&project.root, dir));
        }
    }
    for d in declared_inputs(project) {
        let dir = match d.what {
            DeclKind::Dir => PathBuf::from(&d.path),
            _ => Path::new(d.path.split('{').next().unwrap_or(&d.path))
                .parent()
                .unwrap_or(Path::new(""))
                .to_path_buf(),
        };
        dirs.insert(nearest_existing(&project.root, &dir));
    }
    dirs
}

/// The inputs the stages declare.
fn declared_inputs(project: &Project) -> Vec<crate::engine::kind::Decl> {
    project
        .pipeline()
        .map(|p| p.stages.iter().flat_map(|s| s.stage.inputs()).collect())
        .unwrap_or_default()
}

/// The files of a batch of events that a stage reads itself (not through the salsa database),
/// relative to the root: a change to one of them calls for a rebuild too.
fn declared_changes(project: &Project, events: &[notify_debouncer_full::DebouncedEvent]) -> Vec<String> {
    let inputs = declared_inputs(project);
    let mut out = BTreeSet::new();
    for e in events
        .iter()
        .filter(|e| !matches!(e.kind, notify::EventKind::Access(_)))
    {
        for p in &e.paths {
            let rel = p
                .strip_prefix(&project.root)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned();
            if inputs
                .iter()
                .any(|d| rel == d.path || rel.starts_with(&format!("{}/", d.path)))
            {
                out.insert(rel);
            }
        }
    }
    out.into_iter().collect()
}

/// `dir` under `root`, or its nearest ancestor that exists (a directory that appears later is
/// then seen being created).
fn nearest_existing(root: &Path, dir: &Path) -> PathBuf {
    let mut d = root.join(dir);
    while !d.is_dir() && d != root {
        d = d.parent().map_or(root.to_path_buf(), Path::to_path_buf);
    }
    d
}

/// What daydream itself writes: `.daydream/`, and every stage's output files and directories.
struct Outputs {
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

impl Outputs {
    fn of(project: &Project) -> Outputs {
        let mut files = BTreeSet::new();
        let mut dirs = BTreeSet::new();
        if let Ok(p) = project.pipeline() {
            for s in &p.stages {
                for o in s.stage.outputs() {
                    let o = o.path;
                    if o.contains("{id}") {
                        dirs.insert(
                            Path::new(&o)
                                .parent()
                                .unwrap_or(Path::new(""))
                                .to_string_lossy()
                                .into_owned(),
                        );
                    } else {
                        files.insert(o);
                    }
                }
            }
        }
        Outputs { files, dirs }
    }

    fn covers(&self, rel: &str) -> bool {
        let dir = Path::new(rel).parent().unwrap_or(Path::new("")).to_string_lossy();
        rel == STATE_DIR
            || rel.starts_with(&format!("{STATE_DIR}/"))
            || self.files.contains(rel)
            || self.dirs.contains(dir.as_ref())
            || rel.ends_with(".tmp")
    }
}

/// Whether a batch of events touches anything but daydream's own writes.
fn relevant(root: &Path, outputs: &Outputs, events: &[notify_debouncer_full::DebouncedEvent]) -> bool {
    events.iter().any(|e| {
        !matches!(e.kind, notify::EventKind::Access(_))
            && e.paths.iter().any(|p| {
                let rel = p.strip_prefix(root).unwrap_or(p).to_string_lossy();
                !outputs.covers(&rel)
            })
    })
}

/// Runs, then rebuilds on every change of an input until Ctrl-C. Returns the exit code.
pub fn watch(
    root: &Path,
    opts: RunOptions,
    poll: bool,
    print: &dyn Fn(&mut dyn Write, &RunReport, bool),
) -> Result<i32, RunError> {
    let mut project = super::cli::project(root)?;
    let _lock = if opts.dry_run {
        None
    } else {
        Some(ProjectLock::acquire(&project.state_dir())?)
    };
    let mut store = if opts.dry_run {
        project.open_store_or_empty()?
    } else {
        project.open_store()?
    };
    if !opts.dry_run {
        // we hold the lock: nothing else writes the store while we watch
        store.keep_in_memory()?;
    }
    let opts = RunOptions { session: true, ..opts };

    // Ctrl-C: a run in progress stops where it is (the store and the files are consistent at
    // every instant: answers are committed before anything else, files renamed into place);
    // an idle watcher just ends.
    let busy = Arc::new(AtomicBool::new(false));
    {
        let busy = busy.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt
                && rt.block_on(tokio::signal::ctrl_c()).is_ok()
            {
                if busy.load(Ordering::SeqCst) {
                    eprintln!(
                        "\ninterrupted: stopped in the middle of a run (answers already received are in the store)"
                    );
                    std::process::exit(130);
                }
                eprintln!("\nstopped watching");
                std::process::exit(0);
            }
        });
    }

    let (tx, rx) = mpsc::channel();
    let mut files = Files::start(poll, tx).map_err(|e| watch_error(&e, None))?;
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    let mut out = std::io::stdout();

    let mut first = true;
    let mut announced = 0;
    // a change that arrived while collecting garbage, to act on first
    let pending = std::cell::RefCell::new(None);
    let mut rebuilds = 0usize;
    // a collection is due every gc_every() rebuilds, and stays due until one ends uninterrupted
    let mut gc_due = false;
    loop {
        // run (the first time), or wait for a change that changes some input's content
        let changed: Vec<String> = if first {
            first = false;
            Vec::new()
        } else {
            let batch = match pending.borrow_mut().take() {
                Some(batch) => batch,
                None => {
                    let Ok(batch) = rx.recv() else { return Ok(0) };
                    batch
                }
            };
            let events = match batch {
                Ok(events) => events,
                Err(errors) => {
                    for e in &errors {
                        eprintln!("warning: {}", watch_error(e, None));
                    }
                    continue;
                }
            };
            // a burst that straddles the debounce window arrives as two batches: take both
            let mut events = events;
            while let Ok(Ok(more)) = rx.recv_timeout(Duration::from_millis(20)) {
                events.extend(more);
            }
            if !relevant(&project.root, &Outputs::of(&project), &events) {
                continue;
            }
            project.db.forget_resolved();
            let mut changed: Vec<String> = project
                .db
                .known_files()
                .into_iter()
                .filter(|rel| project.db.reload(rel))
                .collect();
            for rel in declared_changes(&project, &events) {
                if !changed.contains(&rel) {
                    changed.push(rel);
                }
            }
            if changed.is_empty() {
                continue;
            }
            changed.sort();
            changed
        };
        let start = Instant::now();
        if !changed.is_empty() {
            let _ = writeln!(
                out,
                "\n[{}] changed: {}",
                chrono::Local::now().format("%H:%M:%S"),
                changed.join(", ")
            );
        }
        busy.store(true, Ordering::SeqCst);
        let result = engine::run(&project, &mut store, &opts);
        busy.store(false, Ordering::SeqCst);
        store.checkpoint_in_background();
        match result {
            // a rebuild the spending guard held shows its table, as the first run does
            Ok(report) if changed.is_empty() || report.held.is_some() => print(&mut out, &report, opts.dry_run),
            Ok(report) => summary(&mut out, &report, start.elapsed()),
            Err(RunError::Config(d)) => eprintln!("error: {d}"),
            Err(RunError::Failed(e)) => eprintln!("error: {e:#}"),
        }
        // the pipeline may read other files now: watch their directories too
        let outputs = Outputs::of(&project);
        for dir in input_dirs(&project, &outputs) {
            if watched.contains(&dir) {
                continue;
            }
            match files.watch(&dir) {
                Ok(()) => {
                    watched.insert(dir);
                }
                Err(e) if watched.is_empty() => return Err(watch_error(&e, Some(&dir)).into()),
                Err(e) => eprintln!("warning: {}", watch_error(&e, Some(&dir))),
            }
        }
        if watched.len() != announced {
            announced = watched.len();
            let _ = writeln!(
                out,
                "watching {} director{} for changes (Ctrl-C to stop)",
                announced,
                if announced == 1 { "y" } else { "ies" }
            );
        }
        let _ = out.flush();
        rebuilds += 1;
        gc_due |= rebuilds.is_multiple_of(gc_every());
        if !opts.dry_run && gc_due {
            // between rebuilds, stopping as soon as a change arrives (it is handled next)
            let stop = || match rx.try_recv() {
                Ok(batch) => {
                    *pending.borrow_mut() = Some(batch);
                    true
                }
                Err(_) => false,
            };
            match super::gc::collect(&project, &mut store, None, AnswersGc::Keep, false, false, &stop) {
                Ok(r) => {
                    gc_due = r.interrupted;
                    if r.versions() > 0 && std::env::var_os("DAYDREAM_TIMING").is_some() {
                        eprintln!("gc: {} old versions removed", r.versions())
                    }
                }
                Err(e) => {
                    gc_due = false;
                    match e {
                        RunError::Config(d) => eprintln!("warning: collecting the store's garbage: {d}"),
                        RunError::Failed(e) => eprintln!("warning: collecting the store's garbage failed: {e:#}"),
                    }
                }
            }
        }
    }
}

/// Watch mode collects the store's garbage after every this many rebuilds (DAYDREAM_GC_EVERY
/// overrides; 0 never): often enough that a long session's store stays within a few versions
/// of each output, rarely enough that the plan it takes costs little beside the rebuilds.
fn gc_every() -> usize {
    match std::env::var("DAYDREAM_GC_EVERY")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        Some(0) => usize::MAX,
        Some(n) => n,
        None => 5,
    }
}

/// One short summary of a rebuild: what was re-run per stage, time, calls and cost.
fn summary(out: &mut dyn Write, report: &RunReport, took: Duration) {
    let mut parts = Vec::new();
    let mut calls = 0;
    for s in &report.stages {
        if s.executed + s.reused + s.failed == 0 {
            continue;
        }
        let mut p = format!("{} {}", s.name, s.executed);
        if s.reused > 0 {
            p.push_str(&format!(" (+{} restored)", s.reused));
        }
        if s.failed > 0 {
            p.push_str(&format!(" ({} failed)", s.failed));
        }
        calls += s.detail.as_ref().filter(|d| !d.estimate).map_or(0, |d| d.made);
        parts.push(p);
    }
    if parts.is_empty() {
        parts.push("nothing to redo".into());
    }
    let _ = writeln!(out, "  re-ran: {}", parts.join(", "));
    for s in &report.stages {
        for n in &s.notes {
            let _ = writeln!(out, "  note: {n}");
        }
    }
    let _ = writeln!(
        out,
        "  rebuilt in {:.2}s; {calls} call{}, ${:.4}{}",
        took.as_secs_f64(),
        if calls == 1 { "" } else { "s" },
        report.spent,
        match &report.stopped {
            Some(why) => format!("; calls were stopped: {why}"),
            None => String::new(),
        }
    );
}
