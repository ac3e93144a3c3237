//! The command line: parses arguments, dispatches, prints, and maps outcomes to exit codes
//! (0 success, 1 a failed stage or action, 2 a usage or configuration error).

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::{self, Project, RunError, RunOptions};
use crate::explain;
use crate::fsutil::ProjectLock;
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
        /// Print what would be done, write nothing
        #[arg(long)]
        dry_run: bool,
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
    /// Delete stage outputs and forget their cached results (the combo registry is kept)
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
        Command::Run { stages, dry_run } => {
            let project = Project::open(root)?;
            let _lock = if dry_run {
                None
            } else {
                Some(ProjectLock::acquire(&project.state_dir())?)
            };
            let mut store = Store::open(&project.state_dir())?;
            let report = engine::run(
                &project,
                &mut store,
                &RunOptions {
                    targets: stages,
                    dry_run,
                },
            )?;
            print_run(&mut out, &report, dry_run);
            Ok(0)
        }
        Command::Status { stages, json } => {
            let (project, store) = open(root)?;
            let rows = explain::status(&project, &store, &stages)?;
            if json {
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&rows).expect("serializable"));
            } else {
                let _ = writeln!(
                    out,
                    "{:<24} {:>10} {:>8} {:>8} {:>8}",
                    "stage", "up to date", "stale", "missing", "edited"
                );
                for r in &rows {
                    let _ = writeln!(
                        out,
                        "{:<24} {:>10} {:>8} {:>8} {:>8}   {}",
                        r.stage, r.up_to_date, r.stale, r.missing, r.edited, r.summary
                    );
                }
            }
            Ok(0)
        }
        Command::Explain { target, json } => {
            let (project, store) = open(root)?;
            let found = explain::explain(&project, &store, &target)?;
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
                p.stages.iter().map(|s| s.name.clone()).collect()
            } else {
                for s in &stages {
                    p.closure(std::slice::from_ref(s))?;
                }
                stages
            };
            for name in &names {
                let stage = p.stage(name).expect("validated");
                let keep: Vec<&str> = stage
                    .kind
                    .fields()
                    .iter()
                    .filter(|f| f.name == "registry")
                    .map(|f| stage.str(f.name))
                    .collect();
                let paths = store.forget_stage(name, &keep)?;
                let mut removed = 0;
                for path in &paths {
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

fn print_run(out: &mut impl Write, report: &engine::RunReport, dry_run: bool) {
    let (e, r) = if dry_run {
        ("would execute", "would restore")
    } else {
        ("executed", "reused")
    };
    let mut total = (0, 0, 0);
    for s in &report.stages {
        if s.executed + s.reused + s.unchanged == 0 {
            let _ = writeln!(out, "{:<24} {}", s.name, s.summary);
            continue;
        }
        let _ = write!(
            out,
            "{:<24} {}: {e} {}, {r} {}, unchanged {}",
            s.name, s.summary, s.executed, s.reused, s.unchanged
        );
        if s.computed > 0 && s.computed != s.executed {
            let _ = write!(out, " ({} distinct)", s.computed);
        }
        if s.overwritten_edits > 0 {
            let _ = write!(
                out,
                "; {} hand-edited file{} restored",
                s.overwritten_edits,
                if s.overwritten_edits == 1 { "" } else { "s" }
            );
        }
        let _ = writeln!(out);
        total.0 += s.executed;
        total.1 += s.reused;
        total.2 += s.unchanged;
    }
    let _ = writeln!(
        out,
        "{}{e} {}, {r} {}, unchanged {} in {:.2}s",
        if dry_run {
            "dry run, nothing written: "
        } else {
            "done: "
        },
        total.0,
        total.1,
        total.2,
        report.elapsed.as_secs_f64()
    );
}
