//! `daydream run`: runs the pipeline and prints each stage's line as soon as the stage is done,
//! then the totals; on a terminal the spending guard asks before the first paid call.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::engine::fsutil::ProjectLock;
use crate::engine::run::{self, ConfirmHook, Held, RunError, RunOptions, RunReport, StageHook, StageReport};

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Prints a run as it goes: each stage's line as soon as the stage is done, each note once.
#[derive(Default)]
pub struct Printer {
    noted: Mutex<HashSet<String>>,
    /// Stages whose line is printed.
    printed: Mutex<HashSet<String>>,
    /// The spending guard's table and reason are printed (they were shown before asking).
    held_shown: AtomicBool,
}

impl Printer {
    pub fn notes(&self, out: &mut dyn Write, notes: &[String]) {
        let mut noted = self.noted.lock().expect("printer lock");
        for n in notes {
            if noted.insert(n.clone()) {
                let _ = writeln!(out, "note: {n}");
            }
        }
    }

    pub fn stage(&self, out: &mut dyn Write, s: &StageReport, dry_run: bool) {
        self.notes(out, &s.notes);
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
    pub fn tail(&self, out: &mut dyn Write, report: &RunReport, dry_run: bool) {
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

/// A whole run's lines, at once (watch mode).
pub fn print_run(out: &mut dyn Write, report: &RunReport, dry_run: bool) {
    let printer = Printer::default();
    printer.notes(out, &report.notes);
    for s in &report.stages {
        printer.stage(out, s, dry_run);
    }
    printer.tail(out, report, dry_run);
}

/// The run command: stages printed as they are done; on a terminal the spending guard asks.
pub fn run_command(root: &std::path::Path, opts: RunOptions) -> Result<i32, RunError> {
    let dry_run = opts.dry_run;
    let printer = Arc::new(Printer::default());
    let on_stage: StageHook = {
        let printer = printer.clone();
        Arc::new(move |s: &StageReport| printer.stage(&mut std::io::stdout().lock(), s, dry_run))
    };
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let confirm: Option<ConfirmHook> = interactive.then(|| {
        let printer = printer.clone();
        Arc::new(move |held: &Held| {
            printer.held(&mut std::io::stdout().lock(), held);
            eprint!("make these calls? [y/N] ");
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer).is_ok()
                && matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
        }) as ConfirmHook
    });
    let opts = RunOptions {
        on_stage: Some(on_stage),
        confirm,
        ..opts
    };
    let project = super::cli::project(root)?;
    // a pipeline.yaml that cannot be read leaves the project as it was: no store, no lock
    project.pipeline()?;
    let (_lock, mut store) = if dry_run {
        // a dry run writes nothing, not even an empty store
        (None, project.open_store_or_empty()?)
    } else {
        (Some(ProjectLock::acquire(&project.state_dir())?), project.open_store()?)
    };
    let report = run::run(&project, &mut store, &opts)?;
    printer.notes(&mut std::io::stdout().lock(), &report.notes);
    printer.tail(&mut std::io::stdout().lock(), &report, dry_run);
    drop(store);
    // the process ends right after: freeing every table and prompt key the plan holds one by
    // one is ~5% of a no-op run at 100k tasks, for memory the exit returns at once
    std::mem::forget(project);
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
    if s.executed + s.reused + s.unchanged + s.blocked == 0 && s.detail.is_none() {
        let _ = writeln!(out, "{:<24} {}", s.name, s.summary);
        return;
    }
    let _ = write!(
        out,
        "{:<24} {}: {e} {}, {r} {}, unchanged {}",
        s.name, s.summary, s.executed, s.reused, s.unchanged
    );
    if s.fetched > 0 {
        let _ = write!(out, ", fetched {}", s.fetched);
    }
    if s.elsewhere > 0 {
        let _ = write!(out, ", left to other shards {}", s.elsewhere);
    }
    if s.failed > 0 {
        let _ = write!(out, ", failed {}", s.failed);
    }
    if s.blocked > 0 {
        let _ = write!(out, ", waiting for upstream {}", s.blocked);
    }
    if s.computed > 0 {
        let _ = write!(out, " ({} distinct)", s.computed);
    }
    if s.overwritten_edits > 0 {
        let _ = write!(out, "; {} restored", plural(s.overwritten_edits, "hand-edited file"));
    }
    let _ = writeln!(out);
    if let Some(d) = &s.detail {
        for l in &d.lines {
            let _ = writeln!(out, "    {l}");
        }
    }
}

fn print_total(out: &mut dyn Write, report: &RunReport, dry_run: bool) {
    let (e, r) = if dry_run {
        ("would execute", "would restore")
    } else {
        ("executed", "reused")
    };
    let mut total = (0, 0, 0, 0);
    let mut fetched = 0;
    for s in &report.stages {
        total.0 += s.executed;
        total.1 += s.reused;
        total.2 += s.unchanged;
        total.3 += s.failed;
        fetched += s.fetched;
    }
    let spent = if report.spent > 0.0 {
        format!(", spent ${:.4}", report.spent)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{}{e} {}, {r} {}, unchanged {}{}{} in {:.2}s{spent}",
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
        if fetched > 0 {
            format!(", fetched {fetched}")
        } else {
            String::new()
        },
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
