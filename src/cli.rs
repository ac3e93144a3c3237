//! The command line: parses arguments, dispatches, prints, and maps outcomes to exit codes
//! (0 success, 1 a failed stage or action, 2 a usage or configuration error).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::engine::{self, Project, RunError, RunOptions};
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
        #[arg(long, value_name = "USD")]
        max_cost: Option<f64>,
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

fn open(root: &std::path::Path) -> Result<(Project, Store), RunError> {
    let project = Project::open(root)?;
    let store = Store::open(&project.state_dir())?;
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
            watch,
            poll,
        } => {
            let opts = RunOptions {
                targets: stages,
                dry_run,
                refresh,
                max_cost,
                provider,
                session: false,
            };
            if watch {
                return crate::watch::watch(root, opts, poll, &|out, report, dry_run| {
                    print_run(out, report, dry_run)
                });
            }
            let project = Project::open(root)?;
            let _lock = if dry_run {
                None
            } else {
                Some(ProjectLock::acquire(&project.state_dir())?)
            };
            let mut store = Store::open(&project.state_dir())?;
            let report = engine::run(&project, &mut store, &opts)?;
            print_run(&mut out, &report, dry_run);
            Ok(if report.failed() > 0 || report.stopped.is_some() {
                1
            } else {
                0
            })
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

fn print_run(out: &mut dyn Write, report: &engine::RunReport, dry_run: bool) {
    let (e, r) = if dry_run {
        ("would execute", "would restore")
    } else {
        ("executed", "reused")
    };
    let mut total = (0, 0, 0, 0);
    let mut noted = std::collections::HashSet::new();
    for s in &report.stages {
        for n in &s.notes {
            if noted.insert(n) {
                let _ = writeln!(out, "note: {n}");
            }
        }
        if s.executed + s.reused + s.unchanged + s.blocked == 0 && s.llm.is_none() && s.calls.is_none() {
            let _ = writeln!(out, "{:<24} {}", s.name, s.summary);
            continue;
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
            && est.calls() > 0
        {
            let _ = writeln!(
                out,
                "    {:<44} {:>6} {:>8} {:>13} {:>10}",
                "model", "calls", "cached", "input tokens", "cost up to"
            );
            let models: std::collections::BTreeSet<&String> =
                est.per_model.keys().chain(s.cached_by_model.keys()).collect();
            for m in models {
                let (calls, tokens, _, cost) = est.per_model.get(m).cloned().unwrap_or((0, 0, 0, Some(0.0)));
                let cached = s.cached_by_model.get(m).copied().unwrap_or(0);
                let cost = cost.map_or("unpriced".to_owned(), |c| format!("${c:.4}"));
                let _ = writeln!(
                    out,
                    "    {m:<44} {calls:>6} {cached:>8} {:>13} {cost:>10}",
                    format!("~{tokens}")
                );
            }
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
    if let Some(why) = &report.stopped {
        let _ = writeln!(out, "calls were stopped: {why}");
    }
}
