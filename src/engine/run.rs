//! A run: plan -> prepare -> write, stage by stage.
//!
//! Plan: salsa computes every stage's value; stages that do not depend on anything the run
//! makes are planned and prepared (their contents computed) before anything is written, so a
//! bad input leaves the project untouched. Stages that act (LLM calls, commands), and those that
//! read them, are planned when the run reaches them, from what the stages before them made.
//! Only this module (through `store` and `fsutil`) writes to the project.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use super::cx::{ExecCx, PlanCx, RunState};
use super::db::{Database, ProjectInput, StageName, pipeline, stage_value};
use super::kind::{Artifact, Detail, Done, Planned, Value, Work};
use super::plan::{Prepare, Prepared, Standing};
use super::spec::{PIPELINE_FILE, Pipeline, Registry, STATE_DIR, StageSpec};
use super::store::Store;
use super::write::write_stage;
use crate::engine::diag::Diag;
use crate::engine::fsutil;
use crate::engine::keys::{FastMap, Hash};

/// An error of a run: a configuration problem (exit 2) or a failure while acting (exit 1).
#[derive(Debug)]
pub enum RunError {
    Config(Diag),
    Failed(anyhow::Error),
}

impl From<Diag> for RunError {
    fn from(d: Diag) -> Self {
        RunError::Config(d)
    }
}

impl From<anyhow::Error> for RunError {
    /// An error in the user's inputs found while computing (a template, a ledger's rows) is a
    /// configuration error, whatever context was added on the way.
    fn from(e: anyhow::Error) -> Self {
        match e.downcast_ref::<Diag>() {
            Some(d) => RunError::Config(d.clone()),
            None => RunError::Failed(e),
        }
    }
}

/// A daydream project: a directory holding pipeline.yaml.
pub struct Project {
    pub root: PathBuf,
    pub db: Database,
    input: ProjectInput,
    registry: &'static Registry,
}

impl Project {
    pub fn open(root: &Path, registry: &'static Registry) -> Result<Project, Diag> {
        let file = root.join(PIPELINE_FILE);
        if !file.is_file() {
            return Err(Diag::new(format!("no {PIPELINE_FILE} in {}", root.display()))
                .help("run daydream in a project directory, or point at one with -C DIR"));
        }
        let db = Database::new(root, registry);
        let input = db.project();
        Ok(Project {
            root: root.to_path_buf(),
            db,
            input,
            registry,
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// The project's store, made if missing, brought up to date by the registry's upgrades.
    pub fn open_store(&self) -> anyhow::Result<Store> {
        let mut store = Store::open(&self.state_dir())?;
        self.upgrade(&mut store)?;
        Ok(store)
    }

    /// The project's store if there is one, else an empty one in memory (commands that only
    /// read, and dry runs, make nothing on disk).
    pub fn open_store_or_empty(&self) -> anyhow::Result<Store> {
        let mut store = Store::open_or_empty(&self.state_dir())?;
        self.upgrade(&mut store)?;
        Ok(store)
    }

    fn upgrade(&self, store: &mut Store) -> anyhow::Result<()> {
        for upgrade in &self.registry.upgrades {
            upgrade(store).with_context(|| format!("upgrading the store in {}", self.state_dir().display()))?;
        }
        Ok(())
    }

    pub fn pipeline(&self) -> Result<Arc<Pipeline>, Diag> {
        pipeline(&self.db, self.input).clone()
    }

    pub fn value(&self, name: &str) -> Result<Value, Diag> {
        stage_value(&self.db, self.input, StageName::new(&self.db, name.to_owned())).clone()
    }
}

/// One stage of a run's plan.
pub struct StagePlan {
    pub spec: StageSpec,
    pub value: Value,
    pub planned: Planned,
}

/// What a run planned (kept by a dry run, for `explain` and `status`).
pub struct Plan {
    pub pipeline: Arc<Pipeline>,
    pub stages: Vec<StagePlan>,
}

/// Per-stage counts of what a run did (or would do).
#[derive(Clone, Debug, Default)]
pub struct StageReport {
    pub name: String,
    pub kind: &'static str,
    pub summary: String,
    pub executed: usize,
    pub reused: usize,
    pub unchanged: usize,
    /// Rows whose outputs came from a shared cache (the remote answer cache): not made here.
    pub fetched: usize,
    /// Paid work left to the runs of other shards (`--shard`).
    pub elsewhere: usize,
    /// Distinct contents computed, when fewer than the outputs made (a prompt rendered once for
    /// several rows); 0 otherwise.
    pub computed: usize,
    /// Files that differed from what daydream last wrote (hand edits) and were restored.
    pub overwritten_edits: usize,
    /// Rows whose work failed (a call without a usable answer, a command that failed).
    pub failed: usize,
    /// Rows that cannot be made yet: what they read is missing.
    pub blocked: usize,
    /// What the stage's work did or would do (calls per model, cost).
    pub detail: Option<Detail>,
    pub notes: Vec<String>,
    /// The stage's artifacts and standings, kept by a dry run (for `explain` and `status`).
    pub artifacts: Vec<(Artifact, Standing)>,
}

/// Called with each stage's report as soon as the stage is done.
pub type StageHook = Arc<dyn Fn(&StageReport) + Send + Sync>;
/// Asked whether to go on when the run's paid work could cost more than
/// `settings.confirm_above_usd`.
pub type ConfirmHook = Arc<dyn Fn(&Held) -> bool + Send + Sync>;

/// A run the spending guard stopped before its first paid call.
pub struct Held {
    /// The most the run's paid work can cost (work of unpriced models not counted).
    pub worst: f64,
    /// Paid work whose cost is unknown.
    pub unpriced: usize,
    /// `settings.confirm_above_usd`.
    pub threshold: f64,
    /// The budget of the run (`--max-cost` or `settings.max_cost_usd`), if any.
    pub budget: Option<f64>,
    /// A dry run of the whole run: the table to show.
    pub preview: Box<RunReport>,
}

#[derive(Default)]
pub struct RunOptions {
    pub targets: Vec<String>,
    pub dry_run: bool,
    /// Stages whose effects are made again (the old ones stay in the store).
    pub refresh: Vec<String>,
    /// USD; overrides settings.max_cost_usd.
    pub max_cost: Option<f64>,
    /// Provider for every LLM stage, overriding pipeline.yaml.
    pub provider: Option<String>,
    /// The process goes on after the run (`--watch`): free what the run allocated instead of
    /// leaving it to the exit.
    pub session: bool,
    /// Do the paid work whatever it could cost (`--yes`): the spending guard does not ask.
    pub yes: bool,
    /// Told of each stage as soon as it is done (the command line prints its line then).
    pub on_stage: Option<StageHook>,
    /// Asked before the first paid work when the run could cost more than
    /// `settings.confirm_above_usd`; without it, or when it says no, the run stops there.
    pub confirm: Option<ConfirmHook>,
    /// `--shard I/N`: make only the paid work whose key falls in shard I of N (the others are
    /// left to the runs of the other shards, and met again through the remote cache).
    pub shard: Option<Shard>,
}

/// One of N parts of a run's paid work, by key: stable when work is added or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Parses `I/N` (1 <= I <= N).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {text}: write I/N, with 1 <= I <= N (e.g. 2/4 for the second of four machines)");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    pub fn holds(&self, key: &Hash) -> bool {
        let word = u64::from_le_bytes(key.0[..8].try_into().expect("a hash has 32 bytes"));
        word % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl RunOptions {
    pub fn dry(targets: &[String]) -> RunOptions {
        RunOptions {
            targets: targets.to_vec(),
            dry_run: true,
            ..Default::default()
        }
    }
}

pub struct RunReport {
    pub stages: Vec<StageReport>,
    pub elapsed: std::time::Duration,
    /// Why work was stopped (a key or credit problem, the store failing), if it was.
    pub stopped: Option<String>,
    /// USD spent in this run (reported, or estimated from prices).
    pub spent: f64,
    /// Told before any work started (which provider, and why).
    pub notes: Vec<String>,
    /// The plan, kept by a dry run.
    pub plan: Option<Plan>,
    /// Set when the spending guard stopped the run before its first paid work.
    pub held: Option<Held>,
    /// `settings.confirm_above_usd` of this run.
    pub confirm_above_usd: f64,
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.stages.iter().map(|s| s.failed).sum()
    }

    /// The most the paid work of a dry run can cost, and how much of it has no price.
    pub fn worst_cost(&self) -> (f64, usize) {
        self.stages
            .iter()
            .filter_map(|s| s.detail.as_ref().filter(|d| d.estimate))
            .fold((0.0, 0), |a, d| (a.0 + d.cost, a.1 + d.unpriced))
    }
}

/// The spending guard, checked once a run, before its first paid work: prices the whole run
/// with a dry run (work that waits for upstream outputs included, as upper bounds) and holds it
/// when the most it could spend passes `settings.confirm_above_usd`. A budget below the worst
/// case caps what can be spent; `--max-cost` at or above the worst case is consent, as `--yes`.
fn guard(
    project: &Project,
    store: &mut Store,
    opts: &RunOptions,
    pipeline: &Pipeline,
) -> Result<Option<Held>, RunError> {
    let mut preview = run(
        project,
        store,
        &RunOptions {
            targets: opts.targets.clone(),
            dry_run: true,
            refresh: opts.refresh.clone(),
            max_cost: opts.max_cost,
            provider: opts.provider.clone(),
            session: opts.session,
            shard: opts.shard,
            ..Default::default()
        },
    )?;
    preview.plan = None;
    let (worst, unpriced) = preview.worst_cost();
    let budget = opts.max_cost.or(pipeline.settings.max_cost_usd.map(|c| c.0));
    let most = budget.map_or(worst, |b| b.min(worst));
    let threshold = pipeline.settings.confirm_above_usd.0;
    if most <= threshold || opts.max_cost.is_some_and(|m| m >= worst) {
        return Ok(None);
    }
    Ok(Some(Held {
        worst,
        unpriced,
        threshold,
        budget,
        preview: Box::new(preview),
    }))
}

/// Everything a run would do, without doing it: the plan and every stage's artifacts, stages
/// planned in the run included (from what the store holds). `explain` and `status` read this.
pub fn survey(project: &Project, store: &mut Store, targets: &[String]) -> Result<(Plan, Vec<StageReport>), RunError> {
    let mut report = run(project, store, &RunOptions::dry(targets))?;
    let plan = report.plan.take().expect("a dry run keeps its plan");
    Ok((plan, report.stages))
}

/// Brings the planned stages up to date.
pub fn run(project: &Project, store: &mut Store, opts: &RunOptions) -> Result<RunReport, RunError> {
    let start = Instant::now();
    // DAYDREAM_TIMING=1 prints where a run spends its time (to stderr)
    let timing = std::env::var_os("DAYDREAM_TIMING").is_some();
    let phase = |what: &str| {
        if timing {
            eprintln!("timing: {:>8.3}s {what}", start.elapsed().as_secs_f64());
        }
    };
    let pipeline = project.pipeline()?;
    super::paths::check_on_disk(&pipeline, project.db.inside())?;
    // while salsa computes values, a second thread reads what preparing static stages needs
    let mut prefetch = store.prefetch(
        pipeline
            .stages
            .iter()
            .filter(|s| !s.dynamic && s.stage.shared_actions().is_none())
            .map(|s| s.name.clone())
            .collect(),
    );
    let order = pipeline.closure(&opts.targets)?;
    let mut values: HashMap<String, Value> = HashMap::new();
    for &i in &order {
        let s = &pipeline.stages[i];
        values.insert(s.name.clone(), project.value(&s.name)?);
        phase(&format!("  value of {}", s.name));
    }
    for r in &opts.refresh {
        let effectful: Vec<&str> = order
            .iter()
            .map(|&i| &pipeline.stages[i])
            .filter(|s| s.stage.effectful())
            .map(|s| s.name.as_str())
            .collect();
        let help = if effectful.is_empty() {
            "no stage of this run has work with effects (calls, commands) to do again".to_owned()
        } else {
            format!("--refresh does again the work of: {}", effectful.join(", "))
        };
        match order.iter().map(|&i| &pipeline.stages[i]).find(|s| &s.name == r) {
            Some(s) if s.stage.effectful() => {}
            Some(_) => {
                return Err(
                    Diag::new(format!("--refresh {r}: `{r}` makes nothing that can be asked again"))
                        .help(help)
                        .into(),
                );
            }
            None => {
                return Err(Diag::new(format!("--refresh {r}: no stage `{r}` in this run"))
                    .help(help)
                    .into());
            }
        }
    }
    let mut run = RunState::default();
    run.dry_run = opts.dry_run;
    run.provider = opts.provider.clone();
    run.refresh = opts.refresh.clone();
    run.budget = opts.max_cost.or(pipeline.settings.max_cost_usd.map(|c| c.0));
    run.shard = opts.shard;
    for &i in &order {
        let spec = &pipeline.stages[i];
        spec.stage.begin(&mut run, spec, &pipeline, &project.root)?;
    }
    let mut prefetched = prefetch.take()?;
    phase("store read");
    // Plan, check and prepare every stage that does not wait for the run's work, before
    // writing anything: a bad input must leave the project untouched.
    let no_done = HashMap::new();
    let mut stages: Vec<StagePlan> = Vec::new();
    let mut prepared: Vec<Option<Prepared>> = Vec::new();
    for &i in &order {
        let spec = &pipeline.stages[i];
        let value = &values[&spec.name];
        let cx = PlanCx {
            root: &project.root,
            db: &project.db,
            pipeline: &pipeline,
            stage: spec,
            value,
            values: &values,
            done: None,
            store,
            run: &run,
        };
        spec.stage.check(&cx)?;
        let planned = if spec.dynamic {
            Planned::default()
        } else {
            spec.stage.plan(&cx)?
        };
        phase(&format!("  planned {}", spec.name));
        prepared.push(if spec.dynamic {
            None
        } else {
            Some(
                Prepare {
                    root: &project.root,
                    store,
                    spec,
                    value,
                    planned: &planned,
                    done: &no_done,
                    refresh: false,
                    prefetched: prefetched.remove(&spec.name),
                }
                .run()?,
            )
        });
        stages.push(StagePlan {
            spec: spec.clone(),
            value: value.clone(),
            planned,
        });
    }
    phase("prepared");
    let tmp = if opts.dry_run {
        PathBuf::new()
    } else {
        fsutil::reset_tmp(&project.state_dir().join("tmp"))?
    };
    // stages whose outputs a later stage planned in the run reads
    let read_later: HashSet<&str> = stages
        .iter()
        .filter(|s| s.spec.dynamic)
        .flat_map(|s| s.spec.stage.refs().into_iter().map(|r| r.stage))
        .filter_map(|n| {
            order
                .iter()
                .map(|&i| pipeline.stages[i].name.as_str())
                .find(|s| *s == n)
        })
        .collect();
    let mut done: HashMap<String, Done> = HashMap::new();
    let mut reports = Vec::new();
    let mut stopped = None;
    let mut spent = 0.0;
    let mut guarded = false;
    for (sp, prep) in stages.iter_mut().zip(prepared) {
        let spec = &sp.spec;
        let refresh = run.refresh.contains(&spec.name);
        let (prep, planned_now) = match prep {
            Some(p) => (p, false),
            None => {
                let cx = PlanCx {
                    root: &project.root,
                    db: &project.db,
                    pipeline: &pipeline,
                    stage: spec,
                    value: &sp.value,
                    values: &values,
                    done: Some(&done),
                    store,
                    run: &run,
                };
                sp.planned = spec.stage.plan(&cx)?;
                phase(&format!("  planned {} in the run", spec.name));
                let prep = Prepare {
                    root: &project.root,
                    store,
                    spec,
                    value: &sp.value,
                    planned: &sp.planned,
                    done: &done,
                    refresh,
                    prefetched: None,
                }
                .run()?;
                (prep, true)
            }
        };
        let _ = planned_now;
        let mut report = StageReport {
            name: spec.name.clone(),
            kind: spec.kind,
            summary: sp.planned.summary.clone().unwrap_or_else(|| sp.value.summary.clone()),
            blocked: sp.planned.blocked,
            ..Default::default()
        };
        for (standing, edited) in &prep.standing {
            match standing {
                Standing::Unchanged | Standing::Touched => report.unchanged += 1,
                Standing::Restore => report.reused += 1,
                Standing::Execute => report.executed += 1,
            }
            report.overwritten_edits += usize::from(*edited);
        }
        // distinct contents made, when fewer than the artifacts made (prompts shared by rows)
        let computing = sp
            .planned
            .artifacts
            .iter()
            .zip(&prep.standing)
            .filter(|(a, s)| s.0 == Standing::Execute && matches!(a.work, Work::Compute(_)))
            .count();
        if prep.computed.len() < computing {
            let contents: HashSet<Hash> = prep.computed.values().map(|c| Hash::of(c)).collect();
            report.computed = contents.len();
        }
        let mut prep = prep;
        report.notes.append(&mut prep.notes);
        // the effects to make (rows asking the same key are the stage's to share)
        let pending: Vec<&Artifact> = sp
            .planned
            .artifacts
            .iter()
            .zip(&prep.standing)
            .filter(|(a, s)| s.0 == Standing::Execute && matches!(a.work, Work::Effect(_)))
            .map(|(a, _)| a)
            .collect();
        let effectful = spec.stage.effectful();
        if opts.dry_run {
            if effectful {
                let cx = PlanCx {
                    root: &project.root,
                    db: &project.db,
                    pipeline: &pipeline,
                    stage: spec,
                    value: &sp.value,
                    values: &values,
                    done: Some(&done),
                    store,
                    run: &run,
                };
                let mut detail = spec.stage.estimate(&cx, &sp.planned, &pending)?;
                report.elsewhere = detail.elsewhere;
                report.executed -= detail.elsewhere;
                report.notes.append(&mut detail.notes);
                report.detail = Some(detail);
            }
        } else {
            write_stage(&project.root, store, spec, &sp.value, &sp.planned, &prep, &tmp)?;
            // the spending guard: once, before the run's first paid work
            if !pending.is_empty() {
                spec.stage.ready(&run, spec)?;
            }
            if !pending.is_empty() && spec.stage.paid() && !guarded {
                guarded = true;
                if !opts.yes
                    && let Some(held) = guard(project, store, opts, &pipeline)?
                    && !opts.confirm.as_ref().is_some_and(|ask| ask(&held))
                {
                    return Ok(RunReport {
                        stages: reports,
                        elapsed: start.elapsed(),
                        stopped: None,
                        spent: 0.0,
                        notes: run.notes,
                        plan: None,
                        held: Some(held),
                        confirm_above_usd: pipeline.settings.confirm_above_usd.0,
                    });
                }
            }
            if !pending.is_empty() {
                let cached = prep.standing.iter().filter(|s| s.0 != Standing::Execute).count();
                let pending_owned: Vec<Artifact> = pending.iter().map(|a| (*a).clone()).collect();
                let mut cx = ExecCx {
                    root: &project.root,
                    store,
                    tmp: &tmp,
                    pipeline: &pipeline,
                    stage: spec,
                    value: &sp.value,
                    planned: &sp.planned,
                    done: &done,
                    run: &mut run,
                    cached,
                };
                let mut detail = spec.stage.execute(&mut cx, pending_owned.iter().collect())?;
                report.notes.append(&mut detail.notes);
                report.executed = detail.executed - detail.fetched;
                report.fetched = detail.fetched;
                report.elsewhere = detail.elsewhere;
                report.failed = detail.failed;
                spent += detail.cost;
                if stopped.is_none() {
                    stopped = detail.stopped.clone();
                }
                report.detail = Some(detail);
            }
        }
        if opts.dry_run {
            report.artifacts = sp
                .planned
                .artifacts
                .iter()
                .cloned()
                .zip(prep.standing.iter().map(|s| s.0))
                .collect();
        }
        if read_later.contains(spec.name.as_str()) {
            let known: FastMap<Hash, Hash> = match (spec.stage.shared_actions(), effectful && !opts.dry_run) {
                (Some(kind), true) => store.action_outputs_of_kind(kind)?,
                (None, true) => store.action_outputs(&spec.name)?,
                _ => std::mem::take(&mut prep.known),
            };
            let artifacts = std::mem::take(&mut sp.planned.artifacts);
            let mut outputs: FastMap<Hash, Hash> = artifacts
                .iter()
                .filter_map(|a| known.get(&a.key).map(|o| (a.key, *o)))
                .collect();
            let mut contents = HashMap::new();
            for (k, c) in prep.computed.drain() {
                let h = Hash::of(&c);
                outputs.insert(k, h);
                contents.insert(h, c);
            }
            for (i, c) in prep.merged.drain() {
                let h = Hash::of(&c);
                outputs.insert(artifacts[i].key, h);
                contents.insert(h, c);
            }
            if run.shard.is_some() {
                follow_lineage(&mut run.lineage, &artifacts, &outputs);
            }
            done.insert(spec.name.clone(), Done::new(artifacts, outputs, contents));
        } else if !opts.dry_run && !opts.session {
            // nothing reads these again: freeing a million small allocations costs more than exiting
            std::mem::forget(std::mem::take(&mut sp.planned.artifacts));
        }
        if opts.session {
            std::thread::spawn(move || drop(prep));
        } else {
            std::mem::forget(prep);
        }
        phase(&format!("stage {}", spec.name));
        if let Some(hook) = &opts.on_stage {
            hook(&report);
        }
        reports.push(report);
    }
    for &i in &order {
        let notes = pipeline.stages[i].stage.finish(&mut run, store)?;
        run.notes.extend(notes);
    }
    let plan = opts.dry_run.then(|| {
        // a dry run keeps every stage's artifacts for `explain`, including those moved to `done`
        for sp in &mut stages {
            if sp.planned.artifacts.is_empty()
                && let Some(d) = done.remove(&sp.spec.name)
            {
                sp.planned.artifacts = d.artifacts;
            }
        }
        Plan {
            pipeline: pipeline.clone(),
            stages,
        }
    });
    Ok(RunReport {
        stages: reports,
        elapsed: start.elapsed(),
        stopped,
        spent,
        notes: run.notes,
        plan,
        held: None,
        confirm_above_usd: pipeline.settings.confirm_above_usd.0,
    })
}

/// In a sharded run: the outputs made from outputs of this shard's own paid work are this
/// shard's too (the essays of its answers, the prompts that quote them), so that it makes the
/// calls downstream of its own, and no other shard does.
fn follow_lineage(
    lineage: &mut HashSet<Hash>,
    artifacts: &[Artifact],
    outputs: &crate::engine::keys::FastMap<Hash, Hash>,
) {
    if lineage.is_empty() {
        return;
    }
    for a in artifacts {
        let Some(m) = &a.manifest else { continue };
        if m.inputs.iter().any(|i| lineage.contains(&i.hash))
            && let Some(out) = outputs.get(&a.key)
        {
            lineage.insert(*out);
        }
    }
}
