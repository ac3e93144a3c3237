//! The command line: parses arguments, dispatches, prints, and maps outcomes to exit codes
//! (0 success, 1 a failed stage or action, 2 a usage or configuration error).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use super::explain;
use super::run::{print_run, run_command};
use crate::engine::diag::Diag;
use crate::engine::fsutil::ProjectLock;
use crate::engine::run::{Project, RunError, RunOptions, Shard};
use crate::engine::spec::PIPELINE_FILE;
use crate::engine::store::Store;
use crate::kinds::report::ReportStage;

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
        /// Make only the calls whose key falls in shard I of N (e.g. 2/4), and share them through the remote
        /// cache; a run without --shard then finds every answer there (README: "Working as a team")
        #[arg(long, value_name = "I/N", value_parser = parse_shard, conflicts_with = "watch")]
        shard: Option<Shard>,
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
    /// Shrink the store: remove old prompt and table versions no current output needs (per stage, the
    /// most recent old versions stay, cache.keep_versions times as many as the stage has outputs, so
    /// reverting a recent edit restores without recomputing), and records of files long gone; paid
    /// LLM answers stay unless --answers is given
    #[command(
        after_help = "Call records (the cost ledger) are never removed. With --answers, the content of answers \
                      the remote answer cache holds goes (a run fetches them back without a call); with \
                      --answers --force, every answer's content goes, and a run that needs one pays again."
    )]
    Gc {
        /// Print what would be removed and the bytes it would free; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Old versions kept per stage, in multiples of its outputs, for this collection (default:
        /// pipeline.yaml cache.keep_versions, 1)
        #[arg(long, value_name = "N")]
        keep: Option<u32>,
        /// Also remove the content of paid answers the remote answer cache already holds
        #[arg(long)]
        answers: bool,
        /// With --answers: remove every paid answer's content, also those no remote holds
        #[arg(long, requires = "answers")]
        force: bool,
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
    /// Print the JSON Schema of pipeline.yaml (for editors: see docs/pipeline.md, "Editor support")
    Schema,
    /// The remote answer cache (`cache: remote:` in pipeline.yaml, or DAYDREAM_REMOTE): what is where, and moving answers
    Cache {
        #[command(subcommand)]
        action: CacheAction,
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

#[derive(Subcommand)]
enum CacheAction {
    /// Count the answers held here only, in the remote only, and in both
    Status,
    /// Upload every answer of this project's store that the remote lacks
    Push {
        /// Say what would be uploaded; upload nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Download every answer the remote holds that this project's store lacks (a run then restores their files)
    Pull {
        /// Say what would be downloaded; download nothing
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    Shard::parse(text)
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

/// The project in `root`, with every kind of stage.
pub fn project(root: &std::path::Path) -> Result<Project, Diag> {
    Project::open(root, crate::kinds::registry())
}

/// A project and its store, for commands that only read: a missing store is read as empty.
fn open(root: &std::path::Path) -> Result<(Project, Store), RunError> {
    let project = project(root)?;
    let store = project.open_store_or_empty()?;
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
            shard,
        } => {
            let opts = RunOptions {
                targets: stages,
                dry_run,
                refresh,
                max_cost,
                provider,
                yes,
                shard,
                ..Default::default()
            };
            if watch {
                return super::watch::watch(root, opts, poll, &|out, report, dry_run| {
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
                let w = rows.iter().map(|r| r.stage.len()).max().unwrap_or(5).max(24);
                let _ = writeln!(
                    out,
                    "{:<w$} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
                    "stage", "up to date", "stale", "missing", "edited", "failed", "waiting"
                );
                for r in &rows {
                    let _ = writeln!(
                        out,
                        "{:<w$} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}   {}",
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
                    Diag::new(format!(
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
        Command::Clean { stages } => clean(root, &mut out, stages),
        Command::Gc {
            dry_run,
            keep,
            answers,
            force,
        } => {
            let args = super::gc::Args {
                dry_run,
                keep,
                answers,
                force,
            };
            super::gc::gc(&project(root)?, args, &mut out)
        }
        // a relative FILE is relative to -C DIR, like every path daydream reads
        Command::ParseScore { strategy, range, file } if file.as_os_str() != "-" => {
            parse_score(&mut out, &strategy, &range, &root.join(file))
        }
        Command::ParseScore { strategy, range, file } => parse_score(&mut out, &strategy, &range, &file),
        Command::RebuildResults => {
            let r = super::rebuild::rebuild(root)?;
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
        Command::Report { output, open } => report(root, &mut out, output, open),
        Command::Import { from, provider } => {
            let project = project(root)?;
            let _lock = ProjectLock::acquire(&project.state_dir())?;
            let mut store = project.open_store()?;
            let stages = super::import::import(&project, &mut store, &root.join(from), provider.as_deref())?;
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
            let p = project(root)?.pipeline()?;
            if dot {
                let _ = writeln!(out, "digraph daydream {{\n  rankdir=TB;\n  node [shape=box];");
                for s in &p.stages {
                    let _ = writeln!(out, "  \"{}\" [label=\"{}\\n({})\"];", s.name, s.name, s.kind);
                    for r in s.stage.refs() {
                        let _ = writeln!(out, "  \"{}\" -> \"{}\";", r.stage, s.name);
                    }
                }
                let _ = writeln!(out, "}}");
            } else {
                for s in &p.stages {
                    let _ = writeln!(out, "{} ({})", s.name, s.kind);
                    for r in s.stage.refs() {
                        let _ = writeln!(out, "  <- {} ({})", r.stage, r.field);
                    }
                    for i in s.stage.inputs() {
                        let _ = writeln!(out, "  <- {}", i.path);
                    }
                    for o in s.stage.outputs() {
                        let _ = writeln!(out, "  -> {}", o.path);
                    }
                }
            }
            Ok(0)
        }
        Command::Cache { action } => {
            let project = project(root)?;
            let action = match action {
                CacheAction::Status => super::cache::Action::Status,
                CacheAction::Push { dry_run } => super::cache::Action::Push { dry_run },
                CacheAction::Pull { dry_run } => super::cache::Action::Pull { dry_run },
            };
            super::cache::cache(&project, action, &mut out)
        }
        Command::Schema => {
            let _ = writeln!(out, "{}", super::schema::schema(crate::kinds::registry()));
            Ok(0)
        }
    }
}

/// `clean`: deletes stages' outputs and forgets their cached results; ledgers stay, and paid
/// outputs go only when their stage is named.
fn clean(root: &std::path::Path, out: &mut dyn Write, stages: Vec<String>) -> Result<i32, RunError> {
    let project = project(root)?;
    let _lock = ProjectLock::acquire(&project.state_dir())?;
    let mut store = project.open_store()?;
    let p = project.pipeline()?;
    let names: Vec<String> = if stages.is_empty() {
        let kept: Vec<&str> = p
            .stages
            .iter()
            .filter(|s| s.stage.paid())
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
            .filter(|s| !s.stage.paid())
            .map(|s| s.name.clone())
            .collect()
    } else {
        for s in &stages {
            p.closure(std::slice::from_ref(s))?;
        }
        stages
    };
    for name in &names {
        let stage = &p.stage(name).expect("checked").stage;
        // ledgers (the combo registry, the cross-experiment results) hold other runs' rows
        let kept = stage.kept_by_clean();
        let keep: Vec<&str> = kept.iter().map(String::as_str).collect();
        let paths = store.forget_stage(name, &keep)?;
        let mut removed = 0;
        let sidecars: Vec<String> = paths
            .iter()
            .flat_map(|path| {
                stage
                    .sidecars()
                    .iter()
                    .filter_map(move |(from, to)| path.strip_suffix(from).map(|stem| format!("{stem}{to}")))
            })
            .collect();
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

/// `report`: the results page now, from the tables on disk and the store's records.
fn report(root: &std::path::Path, out: &mut dyn Write, output: Option<PathBuf>, open: bool) -> Result<i32, RunError> {
    let project = project(root)?;
    let p = project.pipeline()?;
    let (spec, st) = p
        .stages
        .iter()
        .find_map(|s| Some((s, s.stage.as_any().downcast_ref::<ReportStage>()?)))
        .ok_or_else(|| {
            Diag::new(format!("{PIPELINE_FILE} declares no `report` stage"))
                .in_file(PIPELINE_FILE)
                .help("add one: `report: {kind: report, summaries: summaries, scores: parsed_scores, output: data/6_summary/report.html}`")
        })?;
    let mut links = st.links(&p);
    if let Some(o) = &output {
        let rel = crate::engine::fields::normalize(&o.to_string_lossy()).ok_or_else(|| {
            Diag::new(format!("-o {}: the page goes inside the project", o.display()))
                .help("give a path relative to the project directory, without `..`")
        })?;
        let taken = rel == PIPELINE_FILE
            || rel.starts_with(".daydream")
            || p.stages.iter().any(|s| s.stage.inputs().iter().any(|d| d.path == rel));
        if taken {
            return Err(
                Diag::new(format!("-o {rel}: that file is the pipeline, the store or an input"))
                    .help("write the page somewhere else, e.g. data/6_summary/report.html")
                    .into(),
            );
        }
        links.page = rel;
    }
    let tables = st.table_paths(&p);
    let read =
        |rel: &str| crate::seed::report::read_table(&project.root.join(rel)).with_context(|| format!("reading {rel}"));
    let table = |i: usize| -> anyhow::Result<Option<String>> {
        match tables.get(i) {
            Some(t) => read(t),
            None => Ok(None),
        }
    };
    let inputs = crate::seed::report::ReportInputs {
        parsed_scores: match st.scores_path(&p) {
            Some(s) => read(&s)?,
            None => None,
        },
        evaluator_agreement: table(0)?,
        generation_pivot: table(2)?,
        final_results: table(3)?,
        perfect_paths: table(4)?,
        links: links.clone(),
    };
    let store = project.open_store_or_empty()?;
    let run = crate::kinds::report::run_summary(&store, &p, &spec.name)?;
    let page = crate::seed::report::render(&crate::seed::report::report_data(&inputs, run));
    let path = project.root.join(&links.page);
    let dir = path.parent().unwrap_or(&project.root).to_path_buf();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::engine::fsutil::write_atomic(&dir, &path, page.as_bytes(), false)?;
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

fn parse_score(out: &mut impl Write, strategy: &str, range: &str, file: &std::path::Path) -> Result<i32, RunError> {
    use crate::engine::diag::Diag;
    use crate::seed::parsing::{ScoreRange, ScoreStrategy};
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
    let text = crate::engine::text::universal_newlines(String::from_utf8_lossy(&bytes).into_owned());
    match crate::seed::parsing::parse_score(&text, strategy, range) {
        Ok(score) => {
            let _ = writeln!(out, "{}", crate::seed::pyfmt::float_repr(score));
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            Ok(1)
        }
    }
}
