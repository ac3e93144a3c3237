//! The command line: parses arguments, dispatches, prints, and maps outcomes to exit codes
//! (0 success, 1 a failed stage or action, 2 a usage or configuration error).

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::engine::{self, Project, RunError, RunOptions, StageReport};
use crate::estimate::{Estimate, Held};
use crate::explain;
use crate::fsutil::ProjectLock;
use crate::spec::Kind;
use crate::store::Store;

#[derive(Parser)]
#[command(
    name = "daydream",
    version,
    about = "Run LLM experiment pipelines like a build system: content-hashed, cached, incremental",
    long_about = "daydream reads pipeline.yaml, computes what every output is made from, and remakes only what \
                  changed. Outputs are cached in .daydream/ by the hash of everything they read, so reverting an \
                  edit restores earlier results without recomputing them."
)]
struct Cli {
    /// Run as if started in DIR (the directory holding pipeline.yaml)
    #[arg(short = 'C', value_name = "DIR", global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring outputs up to date (all stages, or the named ones and what they need)
    Run {
        /// Stages to bring up to date (default: all)
        stages: Vec<String>,
        /// Print what would be done (calls per model, cached, estimated tokens and cost); write nothing, call nothing
        #[arg(long)]
        dry_run: bool,
        /// Ask the calls of this LLM stage again (the old answers stay in the store); repeatable
        #[arg(long, value_name = "STAGE")]
        refresh: Vec<String>,
        /// Stop starting calls once recorded cost plus the worst case of calls in flight would pass USD
        /// (at or above the run's worst case, it also answers the spending question)
        #[arg(long, value_name = "USD")]
        max_cost: Option<f64>,
        /// Make the paid calls even when they could cost more than settings.confirm_above_usd (default $5);
        /// without it such a run prints what it would do and stops before its first call
        #[arg(long, short = 'y')]
        yes: bool,
        /// Call this provider (from pipeline.yaml `providers:`) in every LLM stage; also DAYDREAM_PROVIDER
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        /// Stay running and rebuild whenever pipeline.yaml or a file it reads changes (Ctrl-C to stop)
        #[arg(long)]
        watch: bool,
        /// With --watch: look at the files every half second instead of asking the OS to report changes
        /// (for network filesystems, or when the inotify limits are reached)
        #[arg(long, requires = "watch")]
        poll: bool,
    },
    /// Per stage: how many outputs are up to date, stale, missing or edited by hand
    Status {
        /// Stages to report (default: all)
        stages: Vec<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show what an output file (or every output of a task id) was made from, and whether it is current
    Explain {
        /// An output path (e.g. data/2_tasks/generation_tasks.csv) or a task id
        target: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete stage outputs and forget their cached results (the combo registry is kept; LLM answers only when their stage is named)
    Clean {
        /// Stages to clean (default: all)
        stages: Vec<String>,
    },
    /// Print the stage graph
    Dag {
        /// Graphviz dot format
        #[arg(long)]
        dot: bool,
    },
    /// Parse the score of one evaluation response, to check a rubric's output format by hand
    #[command(name = "parse-score")]
    ParseScore {
        /// in_last_line (the active rubrics) or complex (the legacy ones)
        #[arg(long, default_value = "in_last_line", value_name = "STRATEGY")]
        strategy: String,
        /// The valid score range, inclusive
        #[arg(long, default_value = "0-10", value_name = "MIN-MAX")]
        range: String,
        /// The response text (`-` for standard input)
        #[arg(default_value = "-")]
        file: PathBuf,
    },
    /// Rewrite every results table (scores, analyses, summaries, ledgers) from the task tables and response files on disk; no call, no store
    #[command(name = "rebuild-results")]
    RebuildResults,
    /// Write the results page now (data/6_summary/report.html) from the tables on disk and the store's records; no stage runs, no call
    Report {
        /// Write the page here instead of the report stage's output
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Open the page in the default browser
        #[arg(long)]
        open: bool,
    },
    /// Adopt the responses a data/ directory of the original pipeline holds, so that no run pays for them again
    Import {
        /// The original's data/ directory (or the project directory holding it)
        #[arg(value_name = "DIR")]
        from: PathBuf,
        /// The provider the original called (default: the first remote provider of pipeline.yaml)
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
    },
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let root = cli.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    match dispatch(&root, cli.command) {
        Ok(code) => code,
        Err(RunError::Config(d)) => {
            eprintln!("error: {d}");
            2
        }
        Err(RunError::Failed(e)) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// A project and its store, for commands that only read: a missing store is read as empty.
fn open(root: &std::path::Path) -> Result<(Project, Store), RunError> {
    let project = Project::open(root)?;
    let store = Store::open_or_empty(&project.state_dir())?;
    Ok((project, store))
}

fn dispatch(root: &std::path::Path, command: Command) -> Result<i32, RunError> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Run {
            stages,
            dry_run,
            refresh,
            max_cost,
            provider,
            yes,
            watch,
            poll,
        } => {
            let opts = RunOptions {
                targets: stages,
                dry_run,
                refresh,
                max_cost,
                provider,
                yes,
                ..Default::default()
            };
            if watch {
                return crate::watch::watch(root, opts, poll, &|out, report, dry_run| {
                    print_run(out, report, dry_run)
                });
            }
            run_command(root, opts)
        }
        Command::Status { stages, json } => {
            let (project, mut store) = open(root)?;
            let rows = explain::status(&project, &mut store, &stages)?;
            if json {
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&rows).expect("serializable"));
            } else {
                let _ = writeln!(
                    out,
                    "{:<24} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
                    "stage", "up to date", "stale", "missing", "edited", "failed", "waiting"
                );
                for r in &rows {
                    let _ = writeln!(
                        out,
                        "{:<24} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}   {}",
                        r.stage, r.up_to_date, r.stale, r.missing, r.edited, r.failed, r.waiting, r.summary
                    );
                }
            }
            Ok(0)
        }
        Command::Explain { target, json } => {
            let (project, mut store) = open(root)?;
            let found = explain::explain(&project, &mut store, &target)?;
            if found.is_empty() {
                return Err(RunError::Config(
                    crate::diag::Diag::new(format!(
                        "`{target}` is neither an output of this pipeline nor a task id"
                    ))
                    .help("give a path such as data/2_tasks/generation_tasks.csv, or a task id from the task tables"),
                ));
            }
            if json {
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&found).expect("serializable"));
            } else {
                for (i, e) in found.iter().enumerate() {
                    if i > 0 {
                        let _ = writeln!(out);
                    }
                    let _ = write!(out, "{e}");
                }
            }
            Ok(0)
        }
        Command::Clean { stages } => {
            let project = Project::open(root)?;
            let _lock = ProjectLock::acquire(&project.state_dir())?;
            let mut store = Store::open(&project.state_dir())?;
            let p = project.pipeline()?;
            let names: Vec<String> = if stages.is_empty() {
                {
                    // paid answers go only when their stage is named
                    let kept: Vec<&str> = p
                        .stages
                        .iter()
                        .filter(|s| s.kind.is_llm())
                        .map(|s| s.name.as_str())
                        .collect();
                    if !kept.is_empty() {
                        let _ = writeln!(
                            out,
                            "keeping the paid LLM answers of {} (name a stage to clean it)",
                            kept.join(", ")
                        );
                    }
                    p.stages
                        .iter()
                        .filter(|s| !s.kind.is_llm())
                        .map(|s| s.name.clone())
                        .collect()
                }
            } else {
                for s in &stages {
                    p.closure(std::slice::from_ref(s))?;
                }
                stages
            };
            for name in &names {
                let stage = p.stage(name).expect("validated");
                // ledgers (the combo registry, the cross-experiment results) hold other runs' rows
                let ledgers = &crate::results::CROSS_TABLES[..3];
                let keep: Vec<&str> = stage
                    .kind
                    .fields()
                    .iter()
                    .filter(|f| {
                        f.name == "registry" || (stage.kind == Kind::CrossExperiment && ledgers.contains(&f.name))
                    })
                    .map(|f| stage.str(f.name))
                    .collect();
                let paths = store.forget_stage(name, &keep)?;
                let mut removed = 0;
                let sidecars: Vec<String> = if stage.kind.is_llm() {
                    paths.iter().map(|p| crate::calls::sidecar_path(p)).collect()
                } else {
                    Vec::new()
                };
                for path in sidecars.iter().chain(&paths) {
                    match std::fs::remove_file(project.root.join(path)) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(anyhow::Error::new(e).context(format!("removing {path}")).into()),
                    }
                }
                if !paths.is_empty() {
                    let _ = writeln!(
                        out,
                        "{name:<24} removed {removed} file{}",
                        if removed == 1 { "" } else { "s" }
                    );
                }
            }
            let blobs = store.collect_garbage()?;
            let _ = writeln!(
                out,
                "dropped {blobs} cached result{} no longer used",
                if blobs == 1 { "" } else { "s" }
            );
            Ok(0)
        }
        // a relative FILE is relative to -C DIR, like every path daydream reads
        Command::ParseScore { strategy, range, file } if file.as_os_str() != "-" => {
            parse_score(&mut out, &strategy, &range, &root.join(file))
        }
        Command::ParseScore { strategy, range, file } => parse_score(&mut out, &strategy, &range, &file),
        Command::RebuildResults => {
            let r = crate::rebuild::rebuild(root)?;
            let _ = writeln!(
                out,
                "{} evaluation responses: {} scored, {} unparseable, {} missing; {} generation responses",
                r.evaluation_tasks, r.scored, r.unparseable, r.missing, r.generation_responses
            );
            if r.written.is_empty() {
                let _ = writeln!(out, "every results table is already up to date");
            }
            for w in &r.written {
                let _ = writeln!(out, "wrote {w}");
            }
            Ok(0)
        }
        Command::Report { output, open } => {
            let project = Project::open(root)?;
            let p = project.pipeline()?;
            let st = p.stages.iter().find(|s| s.kind == Kind::Report).ok_or_else(|| {
                crate::diag::Diag::new("pipeline.yaml declares no `report` stage")
                    .in_file(crate::db::PIPELINE_FILE)
                    .help("add one: `report: {kind: report, summaries: summaries, output: data/6_summary/report.html}`")
            })?;
            let mut links = crate::results::report_links(&p, st);
            if let Some(o) = &output {
                links.page = o.to_string_lossy().into_owned();
            }
            let summaries = p.stage(st.str("summaries")).expect("validated reference");
            let scores = p.stage(summaries.str("scores")).expect("validated reference");
            let read = |rel: &str| {
                crate::report::read_table(&project.root.join(rel)).with_context(|| format!("reading {rel}"))
            };
            let inputs = crate::report::ReportInputs {
                parsed_scores: read(scores.str("output"))?,
                evaluator_agreement: read(summaries.str("evaluator_agreement"))?,
                generation_pivot: read(summaries.str("generation_pivot"))?,
                final_results: read(summaries.str("final_results"))?,
                perfect_paths: read(summaries.str("perfect_paths"))?,
                links: links.clone(),
            };
            let store = Store::open(&project.state_dir())?;
            let run = crate::results::run_summary(&store, &p)?;
            let page = crate::report::render(&crate::report::report_data(&inputs, run));
            let path = project.root.join(&links.page);
            let dir = path.parent().unwrap_or(&project.root).to_path_buf();
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            crate::fsutil::write_atomic(&dir, &path, page.as_bytes(), false)?;
            let _ = writeln!(out, "wrote {}", links.page);
            if open {
                let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
                if let Err(e) = std::process::Command::new(opener).arg(&path).spawn() {
                    eprintln!(
                        "note: could not start {opener} ({e}); open {} in a browser",
                        path.display()
                    );
                }
            }
            Ok(0)
        }
        Command::Import { from, provider } => {
            let project = Project::open(root)?;
            let _lock = ProjectLock::acquire(&project.state_dir())?;
            let mut store = Store::open(&project.state_dir())?;
            let stages = crate::import::import(&project, &mut store, &root.join(from), provider.as_deref())?;
            for s in &stages {
                let _ = writeln!(
                    out,
                    "{:<24} adopted {}, already in the store {}, left alone {}",
                    s.stage,
                    s.adopted,
                    s.already,
                    s.skipped.len()
                );
                for (file, why) in &s.skipped {
                    let _ = writeln!(out, "    {file}: {why}");
                }
            }
            Ok(0)
        }
        Command::Dag { dot } => {
            let project = Project::open(root)?;
            let p = project.pipeline()?;
            if dot {
                let _ = writeln!(out, "digraph daydream {{\n  rankdir=TB;\n  node [shape=box];");
                for s in &p.stages {
                    let _ = writeln!(out, "  \"{}\" [label=\"{}\\n({})\"];", s.name, s.name, s.kind.name());
                    for (_, r) in s.refs() {
                        let _ = writeln!(out, "  \"{r}\" -> \"{}\";", s.name);
                    }
                }
                let _ = writeln!(out, "}}");
            } else {
                for s in &p.stages {
                    let _ = writeln!(out, "{} ({})", s.name, s.kind.name());
                    for (field, r) in s.refs() {
                        let _ = writeln!(out, "  <- {r} ({field})");
                    }
                    for i in s.input_paths() {
                        let _ = writeln!(out, "  <- {i}");
                    }
                    for o in s.outputs() {
                        let _ = writeln!(out, "  -> {o}");
                    }
                }
            }
            Ok(0)
        }
    }
}

fn parse_score(out: &mut impl Write, strategy: &str, range: &str, file: &std::path::Path) -> Result<i32, RunError> {
    use crate::diag::Diag;
    use crate::parsing::{ScoreRange, ScoreStrategy};
    let strategy = ScoreStrategy::from_name(strategy).ok_or_else(|| {
        Diag::new(format!("unknown --strategy `{strategy}`")).help("the strategies are in_last_line and complex")
    })?;
    let range = ScoreRange::parse(range).map_err(|e| {
        Diag::new(format!("bad --range `{range}`: {e}")).help("write the inclusive range as MIN-MAX, e.g. 0-9")
    })?;
    let bytes = if file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).context("reading standard input")?;
        b
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
    };
    let text = crate::text::universal_newlines(String::from_utf8_lossy(&bytes).into_owned());
    match crate::parsing::parse_score(&text, strategy, range) {
        Ok(score) => {
            let _ = writeln!(out, "{}", crate::pyfmt::float_repr(score));
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            Ok(1)
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Prints a run as it goes: each stage's line as soon as the stage is done, each note once.
#[derive(Default)]
struct Printer {
    noted: Mutex<HashSet<String>>,
    /// Stages whose line is printed.
    printed: Mutex<HashSet<String>>,
    /// The spending guard's table and reason are printed (they were shown before asking).
    held_shown: AtomicBool,
}

impl Printer {
    fn stage(&self, out: &mut dyn Write, s: &StageReport, dry_run: bool) {
        let mut noted = self.noted.lock().expect("printer lock");
        for n in &s.notes {
            if noted.insert(n.clone()) {
                let _ = writeln!(out, "note: {n}");
            }
        }
        self.printed.lock().expect("printer lock").insert(s.name.clone());
        print_stage(out, s, dry_run);
    }

    /// The table of what a held run would still do, and why it stopped.
    fn held(&self, out: &mut dyn Write, held: &Held) {
        if self.held_shown.swap(true, Ordering::Relaxed) {
            return;
        }
        let printed = self.printed.lock().expect("printer lock").clone();
        for s in held.preview.stages.iter().filter(|s| !printed.contains(&s.name)) {
            self.stage(out, s, true);
        }
        let capped = match held.budget {
            Some(b) if b < held.worst => format!(" (the budget stops them at ${b:.2})"),
            _ => String::new(),
        };
        let unpriced = if held.unpriced > 0 {
            format!("; {} of unpriced models not counted", plural(held.unpriced, "call"))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "the calls of this run could cost up to ${:.2}{capped}, more than settings.confirm_above_usd \
             (${:.2}){unpriced}; worst case: prompts as estimated, every answer max_tokens long",
            held.worst, held.threshold
        );
    }

    /// What follows the stage lines: the total, why calls stopped, what a dry run would cost.
    fn tail(&self, out: &mut dyn Write, report: &engine::RunReport, dry_run: bool) {
        if let Some(held) = &report.held {
            self.held(out, held);
            let _ = writeln!(
                out,
                "no call was made: run again with --yes to make them, or with --max-cost {:.2} (which also stops \
                 starting calls before more is spent)",
                (held.worst * 100.0).ceil() / 100.0
            );
        }
        print_total(out, report, dry_run);
    }
}

fn print_run(out: &mut dyn Write, report: &engine::RunReport, dry_run: bool) {
    let printer = Printer::default();
    for s in &report.stages {
        printer.stage(out, s, dry_run);
    }
    printer.tail(out, report, dry_run);
}

/// The run command: stages printed as they are done; on a terminal the spending guard asks.
fn run_command(root: &std::path::Path, opts: RunOptions) -> Result<i32, RunError> {
    let dry_run = opts.dry_run;
    let printer = Arc::new(Printer::default());
    let on_stage: engine::StageHook = {
        let printer = printer.clone();
        Arc::new(move |s: &StageReport| printer.stage(&mut std::io::stdout().lock(), s, dry_run))
    };
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let confirm: Option<engine::ConfirmHook> = interactive.then(|| {
        let printer = printer.clone();
        Arc::new(move |held: &Held| {
            printer.held(&mut std::io::stdout().lock(), held);
            eprint!("make these calls? [y/N] ");
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer).is_ok()
                && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
        }) as engine::ConfirmHook
    });
    let opts = RunOptions {
        on_stage: Some(on_stage),
        confirm,
        ..opts
    };
    let project = Project::open(root)?;
    let (_lock, mut store) = if dry_run {
        // a dry run writes nothing, not even an empty store
        (None, Store::open_or_empty(&project.state_dir())?)
    } else {
        (
            Some(ProjectLock::acquire(&project.state_dir())?),
            Store::open(&project.state_dir())?,
        )
    };
    let report = engine::run(&project, &mut store, &opts)?;
    printer.tail(&mut std::io::stdout().lock(), &report, dry_run);
    Ok(
        if report.failed() > 0 || report.stopped.is_some() || report.held.is_some() {
            1
        } else {
            0
        },
    )
}

fn print_stage(out: &mut dyn Write, s: &StageReport, dry_run: bool) {
    let (e, r) = if dry_run {
        ("would execute", "would restore")
    } else {
        ("executed", "reused")
    };
    if s.executed + s.reused + s.unchanged + s.blocked == 0 && s.llm.is_none() && s.calls.is_none() {
        let _ = writeln!(out, "{:<24} {}", s.name, s.summary);
        return;
    }
    let _ = write!(
        out,
        "{:<24} {}: {e} {}, {r} {}, unchanged {}",
        s.name, s.summary, s.executed, s.reused, s.unchanged
    );
    if s.failed > 0 {
        let _ = write!(out, ", failed {}", s.failed);
    }
    if s.blocked > 0 {
        let _ = write!(out, ", waiting for upstream {}", s.blocked);
    }
    if s.computed > 0 && s.computed < s.executed && s.kind.ends_with("_prompt") {
        let _ = write!(out, " ({} distinct)", s.computed);
    }
    if s.overwritten_edits > 0 {
        let _ = write!(out, "; {} restored", plural(s.overwritten_edits, "hand-edited file"));
    }
    let _ = writeln!(out);
    if let Some(est) = &s.llm
        && (dry_run || s.calls.is_none())
    {
        print_estimate(out, est, &s.cached_by_model);
    }
    if let Some(c) = &s.calls {
        let _ = writeln!(
            out,
            "    {} requests: {} ok, {} truncated; tokens {} in, {} out; cost ${:.4}{}",
            c.requests,
            c.ok,
            c.truncated,
            c.prompt_tokens,
            c.completion_tokens,
            c.cost,
            if c.unpriced > 0 {
                format!(" (+{} unpriced)", plural(c.unpriced, "call"))
            } else {
                String::new()
            }
        );
        let mut by_cause: std::collections::BTreeMap<_, usize> = c.failed.clone();
        for (cause, n) in &c.not_started {
            *by_cause.entry(*cause).or_default() += n;
        }
        for (cause, n) in by_cause {
            let _ = writeln!(out, "    failed {n}: {}", cause.describe());
        }
    }
}

/// The per-model table of the calls a stage would make.
fn print_estimate(out: &mut dyn Write, est: &Estimate, cached: &std::collections::BTreeMap<String, usize>) {
    let over: Vec<(&String, &crate::estimate::ModelEstimate)> =
        est.per_model.iter().filter(|(_, m)| m.over_context > 0).collect();
    if est.calls() > 0 {
        let _ = writeln!(
            out,
            "    {:<44} {:>6} {:>8} {:>13} {:>10}",
            "model", "calls", "cached", "input tokens", "cost up to"
        );
        let models: std::collections::BTreeSet<&String> = est
            .per_model
            .iter()
            .filter(|(_, m)| m.calls > 0)
            .map(|(m, _)| m)
            .chain(cached.keys())
            .collect();
        for m in models {
            let e = est.per_model.get(m).cloned().unwrap_or_default();
            let tokens = if e.waiting > 0 {
                format!("<={}", e.input_tokens)
            } else {
                format!("~{}", e.input_tokens)
            };
            let cost = match e.cost {
                _ if e.calls == 0 => "$0.0000".to_owned(),
                Some(c) => format!("${c:.4}"),
                None => "unpriced".to_owned(),
            };
            let cached = cached.get(m).copied().unwrap_or(0);
            let _ = writeln!(out, "    {m:<44} {:>6} {cached:>8} {tokens:>13} {cost:>10}", e.calls);
        }
        let waiting = est.waiting();
        if waiting > 0 {
            let _ = writeln!(
                out,
                "    (<= upper bound: {} wait for upstream answers; each prompt counted as its template plus the \
                 longest answer it may hold)",
                plural(waiting, "call")
            );
        }
    }
    for (m, e) in over {
        let _ = writeln!(
            out,
            "    {m}: {} longer than its context ({} tokens) fail without a request",
            plural(e.over_context, "prompt"),
            e.context.unwrap_or(0)
        );
    }
}

fn print_total(out: &mut dyn Write, report: &engine::RunReport, dry_run: bool) {
    let (e, r) = if dry_run {
        ("would execute", "would restore")
    } else {
        ("executed", "reused")
    };
    let mut total = (0, 0, 0, 0);
    for s in &report.stages {
        total.0 += s.executed;
        total.1 += s.reused;
        total.2 += s.unchanged;
        total.3 += s.failed;
    }
    let spent = if report.spent > 0.0 {
        format!(", spent ${:.4}", report.spent)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{}{e} {}, {r} {}, unchanged {}{} in {:.2}s{spent}",
        if dry_run {
            "dry run, nothing written: "
        } else if report.held.is_some() {
            "held before the first call, nothing paid: "
        } else {
            "done: "
        },
        total.0,
        total.1,
        total.2,
        if total.3 > 0 {
            format!(", failed {}", total.3)
        } else {
            String::new()
        },
        report.elapsed.as_secs_f64()
    );
    if dry_run {
        let (worst, unpriced) = report.worst_cost();
        if worst > 0.0 || unpriced > 0 {
            let _ = writeln!(
                out,
                "paid calls: up to ${worst:.4}{}; a run asks first when that passes settings.confirm_above_usd \
                 (${:.2}), unless given --yes",
                if unpriced > 0 {
                    format!(" (+{} unpriced)", plural(unpriced, "call"))
                } else {
                    String::new()
                },
                report.confirm_above_usd
            );
        }
    }
    if let Some(why) = &report.stopped {
        let _ = writeln!(out, "calls were stopped: {why}");
    }
}
