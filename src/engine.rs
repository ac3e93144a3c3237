//! The executor: turns the planned stages into files, consulting and feeding the store.
//!
//! A run has three phases. Plan: salsa computes every stage's value and the key of every
//! artifact (pure). Prepare: each artifact is compared with the store and the file on disk, and
//! the content of every artifact whose key is new is computed (rendering prompts); any error in
//! the user's inputs surfaces here, before anything is written. Write: per stage, new actions go
//! to the store in one transaction while the files are written atomically, then their records.
//! Only this module (through `store` and `fsutil`) writes to the project.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::combos;
use crate::db::{Database, ProjectInput, StageName, StageValue, pipeline, prompt_manifest, stage_value};
use crate::diag::Diag;
use crate::fsutil::{self, Stat};
use crate::key::{FastMap, Hash, Input, Manifest};
use crate::llmstage::{self, Done};
use crate::prompt::{self, Renderer};
use crate::spec::{Kind, Pipeline, Stage};
use crate::store::{OutputRecord, Records, Store};

pub const STATE_DIR: &str = ".daydream";

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
    fn from(e: anyhow::Error) -> Self {
        RunError::Failed(e)
    }
}

/// A daydream project: a directory holding pipeline.yaml.
pub struct Project {
    pub root: PathBuf,
    pub db: Database,
    input: ProjectInput,
}

impl Project {
    pub fn open(root: &Path) -> Result<Project, Diag> {
        let file = root.join(crate::db::PIPELINE_FILE);
        if !file.is_file() {
            return Err(
                Diag::new(format!("no {} in {}", crate::db::PIPELINE_FILE, root.display()))
                    .help("run daydream in a project directory, or point at one with -C DIR"),
            );
        }
        let db = Database::new(root);
        let input = db.project();
        Ok(Project {
            root: root.to_path_buf(),
            db,
            input,
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    pub fn pipeline(&self) -> Result<Arc<Pipeline>, Diag> {
        pipeline(&self.db, self.input).clone()
    }

    pub fn stage_value(&self, name: &str) -> Result<StageValue, Diag> {
        stage_value(&self.db, self.input, StageName::new(&self.db, name.to_owned())).clone()
    }

    /// Plans the named stages (all when empty) and what they read.
    pub fn plan(&self, targets: &[String]) -> Result<Plan, Diag> {
        let p = self.pipeline()?;
        crate::paths::check_on_disk(&p, self.db.inside())?;
        let order = p.closure(if targets.is_empty() { &[] } else { targets })?;
        let order: Vec<usize> = if targets.is_empty() {
            (0..p.stages.len()).collect()
        } else {
            order
        };
        let mut stages = Vec::new();
        let timing = std::env::var_os("DAYDREAM_TIMING").is_some();
        let start = Instant::now();
        for i in order {
            let stage = p.stages[i].clone();
            let value = self.stage_value(&stage.name)?;
            let artifacts = artifacts(&stage, &value);
            if timing {
                eprintln!(
                    "timing: {:>8.3}s   planned {}",
                    start.elapsed().as_secs_f64(),
                    stage.name
                );
            }
            stages.push(StagePlan {
                stage,
                value,
                artifacts,
            });
        }
        Ok(Plan { pipeline: p, stages })
    }
}

pub struct Plan {
    pub pipeline: Arc<Pipeline>,
    pub stages: Vec<StagePlan>,
}

pub struct StagePlan {
    pub stage: Stage,
    pub value: StageValue,
    pub artifacts: Vec<Artifact>,
}

/// One file a stage produces.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub path: String,
    pub task: Option<String>,
    pub key: Hash,
    pub source: Source,
    /// False when the stage keeps the output in the store only.
    pub materialize: bool,
    /// The provider's name of the model the task asks (prompt and response artifacts).
    pub model: Option<Arc<str>>,
    /// The manifest of artifacts planned outside salsa (LLM-dependent stages).
    pub manifest: Option<Arc<Manifest>>,
}

#[derive(Clone, Debug)]
pub enum Source {
    /// Content already computed by the plan (tables).
    Table(Arc<str>),
    /// A generation prompt: template row and combination.
    Prompt { template: usize, combo: usize },
    /// A task table, written from the stage's value only when it changed.
    TaskTable,
    /// The append-only combo registry.
    Registry,
    /// An evaluation prompt: the template and the content hash of the response it judges.
    EvalPrompt {
        template: Arc<(String, Arc<str>)>,
        response: Hash,
        undefined: crate::prompt::Undefined,
    },
    /// An LLM call on the prompt with this content hash (and the grammar its answer is held
    /// to, for the local model: `llmstage::score_grammar`).
    Call {
        prompt: Hash,
        prompt_path: String,
        grammar: Option<Arc<str>>,
    },
    /// The essay extracted from the generation response with this content hash.
    Essay {
        response: Hash,
        strategy: crate::parsing::EssayStrategy,
    },
    /// Output `part` of a job that computes several outputs at once (the results tables).
    Job { job: Arc<crate::results::Job>, part: usize },
}

/// Hashes any value whose `Hash` impl is structural: the content hash of in-memory stage values.
pub fn value_hash<T: std::hash::Hash + ?Sized>(v: &T) -> Hash {
    struct B(blake3::Hasher);
    impl std::hash::Hasher for B {
        fn finish(&self) -> u64 {
            unreachable!("only finalize is used")
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = B(blake3::Hasher::new());
    v.hash(&mut h);
    Hash(*h.0.finalize().as_bytes())
}

impl StageValue {
    pub fn content_hash(&self) -> Hash {
        match self {
            StageValue::Concepts(v) => value_hash(&**v),
            StageValue::Models(v) => value_hash(&**v),
            StageValue::Templates(v) => value_hash(&**v),
            StageValue::Combos(v) => value_hash(&(&v.level, v.k_max, &v.concepts, &v.combos)),
            StageValue::GenTasks(v) => value_hash(&(&v.rows, &*v.models, &*v.templates, &v.combos.combos)),
            StageValue::EvalTasks(v) => value_hash(&(&v.rows, &*v.models, &*v.templates, &v.generation.rows)),
            StageValue::Prompts(v) => value_hash(
                &v.templates
                    .iter()
                    .map(|t| t.as_ref().map(|t| t.keys.clone()))
                    .collect::<Vec<_>>(),
            ),
            StageValue::Dynamic => Hash([0; 32]),
        }
    }
}

fn table_manifest(stage: &Stage, inputs: &[(&str, Hash)]) -> Manifest {
    let mut m = Manifest::new(stage.kind.name());
    for (name, f) in &stage.fields {
        if !matches!(name, &"output" | &"registry") {
            m = m.param(name, &f.value);
        }
    }
    for (name, hash) in inputs {
        m = m.input(Input {
            name: (*name).to_owned(),
            path: None,
            hash: *hash,
        });
    }
    m
}

/// The manifest of an artifact: what `explain` prints and what its key hashes.
pub fn artifact_manifest(stage: &Stage, value: &StageValue, a: &Artifact) -> Manifest {
    if let Some(m) = &a.manifest {
        return (**m).clone();
    }
    source_manifest(stage, value, &a.source)
}

/// The manifest of a table or prompt: the stage's parameters and its upstream values' hashes.
fn source_manifest(stage: &Stage, value: &StageValue, which: &Source) -> Manifest {
    match (value, which) {
        (StageValue::Combos(c), Source::Registry) => {
            table_manifest(stage, &[(stage.str("concepts"), value_hash(&c.combos))])
        }
        (StageValue::Combos(c), _) => {
            let ids: Vec<&String> = c.concepts.iter().map(|r| &r.id).collect();
            table_manifest(stage, &[(stage.str("concepts"), value_hash(&(&ids, &c.combos)))])
        }
        (StageValue::GenTasks(t), _) => table_manifest(
            stage,
            &[
                (stage.str("combinations"), value_hash(&t.combos.combos)),
                (stage.str("models"), value_hash(&*t.models)),
                (stage.str("templates"), value_hash(&*t.templates)),
            ],
        ),
        (StageValue::EvalTasks(t), _) => table_manifest(
            stage,
            &[
                (
                    stage.str("generation_tasks"),
                    value_hash(&(&t.generation.rows, &*t.generation.models)),
                ),
                (stage.str("models"), value_hash(&*t.models)),
                (stage.str("templates"), value_hash(&*t.templates)),
            ],
        ),
        (StageValue::Prompts(p), Source::Prompt { template, combo }) => {
            let t = p.templates[*template].as_ref().expect("active template");
            prompt_manifest(
                &p.tasks.combos,
                *combo,
                &t.path,
                Hash::of(t.text.as_bytes()),
                p.undefined,
            )
        }
        _ => table_manifest(stage, &[("value", value.content_hash())]),
    }
}

fn artifacts(stage: &Stage, value: &StageValue) -> Vec<Artifact> {
    let table = |path: &str, source: Source| Artifact {
        path: path.to_owned(),
        task: None,
        key: source_manifest(stage, value, &source).key(),
        source,
        materialize: true,
        model: None,
        manifest: None,
    };
    match value {
        StageValue::Combos(c) => vec![
            table(stage.str("registry"), Source::Registry),
            table(stage.str("output"), Source::Table(c.csv.clone())),
        ],
        StageValue::GenTasks(_) | StageValue::EvalTasks(_) => {
            vec![table(stage.str("output"), Source::TaskTable)]
        }
        StageValue::Prompts(p) => {
            // the pattern split once, and one shared name per model, rather than per artifact
            let pattern: Vec<&str> = stage.str("output").split("{id}").collect();
            let models: Vec<Arc<str>> = p
                .tasks
                .models
                .models
                .iter()
                .map(|m| Arc::from(m.model.as_str()))
                .collect();
            let materialize = stage.bool("materialize");
            p.tasks
                .rows
                .iter()
                .map(|r| {
                    let t = p.templates[r.template as usize]
                        .as_ref()
                        .expect("tasks use active templates");
                    Artifact {
                        path: pattern.join(r.id.as_str()),
                        task: Some(r.id.clone()),
                        key: t.keys[r.combo as usize],
                        source: Source::Prompt {
                            template: r.template as usize,
                            combo: r.combo as usize,
                        },
                        materialize,
                        model: Some(models[r.model as usize].clone()),
                        manifest: None,
                    }
                })
                .collect()
        }
        StageValue::Concepts(_) | StageValue::Models(_) | StageValue::Templates(_) | StageValue::Dynamic => Vec::new(),
    }
}

/// How an artifact stands against the store and the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Key known, file current.
    Unchanged,
    /// Key known, file matches by content but its stat changed (touched): record only.
    Touched,
    /// Key known, file missing or different: restore from the store.
    Restore,
    /// Key new: compute it.
    Execute,
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
    /// Distinct actions computed (e.g. prompts rendered once for several models).
    pub computed: usize,
    /// Files that differed from what daydream last wrote (hand edits) and were restored.
    pub overwritten_edits: usize,
    /// Tasks that failed (LLM calls that got no usable answer, or were not started).
    pub failed: usize,
    /// Tasks that cannot run yet: what they read is missing (a failed upstream call).
    pub blocked: usize,
    /// For LLM stages: what the calls to make would cost.
    pub llm: Option<crate::estimate::Estimate>,
    pub calls: Option<crate::calls::CallsSummary>,
    /// For LLM stages: tasks answered from the store, per model.
    pub cached_by_model: std::collections::BTreeMap<String, usize>,
    pub notes: Vec<String>,
    /// The stage's artifacts, kept by a dry run (for `explain` and `status`).
    pub artifacts: Vec<Artifact>,
}

/// Called with each stage's report as soon as the stage is done.
pub type StageHook = Arc<dyn Fn(&StageReport) + Send + Sync>;
/// Asked whether to go on when the run's paid calls could cost more than
/// `settings.confirm_above_usd`.
pub type ConfirmHook = Arc<dyn Fn(&crate::estimate::Held) -> bool + Send + Sync>;

#[derive(Default)]
pub struct RunOptions {
    pub targets: Vec<String>,
    pub dry_run: bool,
    /// LLM stages whose answers are asked for again (the old ones stay in the store).
    pub refresh: Vec<String>,
    /// USD; overrides settings.max_cost_usd.
    pub max_cost: Option<f64>,
    /// Provider for every LLM stage, overriding pipeline.yaml.
    pub provider: Option<String>,
    /// The process goes on after the run (`--watch`): free what the run allocated instead of
    /// leaving it to the exit.
    pub session: bool,
    /// Make the paid calls whatever they could cost (`--yes`): the spending guard does not ask.
    pub yes: bool,
    /// Told of each stage as soon as it is done (the CLI prints its line then).
    pub on_stage: Option<StageHook>,
    /// Asked before the first paid call when the run could cost more than
    /// `settings.confirm_above_usd`; without it, or when it says no, the run stops there.
    pub confirm: Option<ConfirmHook>,
}

pub struct RunReport {
    pub stages: Vec<StageReport>,
    pub elapsed: std::time::Duration,
    /// Why calls were stopped (a key or credit problem, the store failing), if they were.
    pub stopped: Option<String>,
    /// USD spent on calls in this run (reported, or estimated from prices).
    pub spent: f64,
    /// The plan, kept by a dry run (stages in the order of `stages`).
    pub plan: Option<Plan>,
    /// Set when the spending guard stopped the run before its first call.
    pub held: Option<crate::estimate::Held>,
    /// `settings.confirm_above_usd` of this run.
    pub confirm_above_usd: f64,
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.stages.iter().map(|s| s.failed).sum()
    }

    /// The most the paid calls of a dry run can cost, and how many of them have no price.
    pub fn worst_cost(&self) -> (f64, usize) {
        self.stages
            .iter()
            .filter_map(|s| s.llm.as_ref())
            .map(|e| e.worst_cost())
            .fold((0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }
}

/// Where an artifact's file stands on disk relative to its record.
/// `next` is where `a`'s record is looked for first (records are listed in artifact order); it
/// moves past the record found.
fn classify<'a>(
    root: &Path,
    dirs: &mut fsutil::DirStat<'a>,
    a: &'a Artifact,
    known: &FastMap<Hash, Hash>,
    records: &Records,
    next: &mut usize,
) -> (Standing, bool) {
    let Some(out) = known.get(&a.key) else {
        *next += 1;
        return (Standing::Execute, false);
    };
    if !a.materialize {
        return (Standing::Unchanged, false);
    }
    let rec = records.find_at(*next, &a.path).map(|(at, r)| {
        *next = at + 1;
        r
    });
    let stat = dirs.stat(&a.path);
    match (rec, stat) {
        (Some(r), Some(s)) if r.key == a.key && r.hash == *out && s.size == r.size && s.mtime_ns == r.mtime_ns => {
            (Standing::Unchanged, false)
        }
        (_, Some(_)) => {
            // The stat differs: compare by content before deciding it needs restoring.
            if std::fs::read(root.join(&a.path)).is_ok_and(|b| Hash::of(&b) == *out) {
                (Standing::Touched, false)
            } else {
                (Standing::Restore, rec.is_some_and(|r| r.key == a.key))
            }
        }
        (_, None) => (Standing::Restore, false),
    }
}

/// Classifies many artifacts on both cores.
fn classify_all(
    root: &Path,
    artifacts: &[Artifact],
    known: &FastMap<Hash, Hash>,
    records: &Records,
) -> Vec<(Standing, bool)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if artifacts.len() < 2048 || threads == 1 {
        let mut dirs = fsutil::DirStat::new(root);
        let mut next = 0;
        return artifacts
            .iter()
            .map(|a| classify(root, &mut dirs, a, known, records, &mut next))
            .collect();
    }
    let chunk = artifacts.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = artifacts
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                s.spawn(move || {
                    let mut dirs = fsutil::DirStat::new(root);
                    let mut next = n * chunk;
                    part.iter()
                        .map(|a| classify(root, &mut dirs, a, known, records, &mut next))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("classify thread"))
            .collect()
    })
}

struct Prepared {
    standing: Vec<(Standing, bool)>,
    /// What the store recorded of this stage's files before the run.
    records: Arc<Records>,
    /// Output hash of every known key of this stage.
    known: FastMap<Hash, Hash>,
    /// Content of every new key.
    computed: HashMap<Hash, Arc<[u8]>>,
    /// The registry's new text, when it changes.
    registry: Option<String>,
    /// What is known of how a new key's content was made (JSON, kept as the action's info).
    info: HashMap<Hash, String>,
    /// Further actions computed on the way (cached score parses).
    actions: Vec<(Manifest, Arc<[u8]>)>,
    /// Lines for the run's summary of this stage.
    notes: Vec<String>,
}

/// Content of an output by its hash: computed in this run, or from the store.
pub fn content_of(store: &Store, done: &HashMap<String, Done>, hash: &Hash) -> Result<Option<Arc<[u8]>>> {
    if let Some(c) = done.values().find_map(|d| d.contents.get(hash)) {
        return Ok(Some(c.clone()));
    }
    Ok(store.blob(hash)?.map(Arc::from))
}

fn prepare(
    root: &Path,
    store: &Store,
    stage: &StagePlan,
    artifacts: &[Artifact],
    done: &HashMap<String, Done>,
    refresh: bool,
    prefetched: Option<(FastMap<Hash, Hash>, Records)>,
) -> Result<Prepared, RunError> {
    let name = &stage.stage.name;
    let t0 = Instant::now();
    let (known, records) = match prefetched {
        Some((known, records)) => (known, Arc::new(records)),
        None => {
            let known = if stage.stage.kind.is_llm() {
                store.action_outputs_of_kind(llmstage::CALL_KIND)?
            } else {
                store.action_outputs_for(name, artifacts.iter().map(|a| &a.key))?
            };
            (known, store.outputs_of_stage(name)?)
        }
    };
    let t1 = t0.elapsed();
    let mut standing = if refresh {
        vec![(Standing::Execute, false); artifacts.len()]
    } else {
        classify_all(root, artifacts, &known, &records)
    };
    if std::env::var_os("DAYDREAM_TIMING").is_some() && !artifacts.is_empty() {
        eprintln!(
            "timing:          {name}: {} known keys, {} records loaded in {:.3}s, classified in {:.3}s",
            known.len(),
            records.len(),
            t1.as_secs_f64(),
            (t0.elapsed() - t1).as_secs_f64()
        );
    }
    let mut computed: HashMap<Hash, Arc<[u8]>> = HashMap::new();
    let mut registry = None;
    let mut renderer: Option<Renderer> = None;
    let mut info: HashMap<Hash, String> = HashMap::new();
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    for (a, st) in artifacts.iter().zip(standing.iter_mut()) {
        // A ledger holds other experiments' rows too: when its file is not what daydream last
        // wrote, merge this experiment's rows into what it holds rather than restore it.
        if let Source::Job { job, .. } = &a.source
            && job.is_ledger()
            && st.0 == Standing::Restore
            && root.join(&a.path).is_file()
        {
            *st = (Standing::Execute, false);
        }
        match &a.source {
            Source::Registry
                if records.get(&a.path).is_some_and(|r| {
                    r.key == a.key
                        && fsutil::stat(&root.join(&a.path))
                            .is_some_and(|s| s.size == r.size && s.mtime_ns == r.mtime_ns)
                }) =>
            {
                // the registry is as daydream left it and the combinations are the same: nothing to append
                *st = (Standing::Unchanged, false);
            }
            Source::Registry => {
                let existing = match std::fs::read(root.join(&a.path)) {
                    Ok(b) => Some(
                        crate::text::decode(b, &root.join(&a.path)).with_context(|| format!("reading {}", a.path))?,
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => records
                        .get(&a.path)
                        .and_then(|r| store.blob(&r.hash).transpose())
                        .transpose()?
                        .map(|b| String::from_utf8_lossy(&b).into_owned()),
                    Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", a.path)).into()),
                };
                let StageValue::Combos(c) = &stage.value else {
                    unreachable!("registry belongs to combinations")
                };
                let on_disk = root.join(&a.path).is_file();
                let new = combos::extend_registry(&a.path, existing.as_deref(), c, &crate::clock::now_local_seconds())?;
                let recorded_key = records.get(&a.path).map(|r| r.key);
                *st = match (&new, on_disk) {
                    (None, true) if recorded_key == Some(a.key) => (Standing::Unchanged, false),
                    (None, true) => (Standing::Touched, false),
                    (None, false) => {
                        registry = existing;
                        (Standing::Restore, false)
                    }
                    (Some(_), _) => (Standing::Execute, false),
                };
                if new.is_some() {
                    registry = new;
                }
            }
            _ if st.0 != Standing::Execute || computed.contains_key(&a.key) => {}
            // calls are made by the executor, not computed here
            Source::Call { .. } => {}
            Source::Table(csv) => {
                computed.insert(a.key, Arc::from(csv.as_bytes()));
            }
            Source::TaskTable => {
                let csv = match &stage.value {
                    StageValue::GenTasks(t) => t.csv(),
                    StageValue::EvalTasks(t) => t.csv(),
                    _ => unreachable!("task tables belong to task stages"),
                };
                computed.insert(a.key, Arc::from(csv.into_bytes()));
            }
            Source::Prompt { template, combo } => {
                let StageValue::Prompts(p) = &stage.value else {
                    unreachable!("prompt artifact of a prompt stage")
                };
                let t = p.templates[*template].as_ref().expect("active template");
                let r = renderer.get_or_insert_with(|| Renderer::new(p.undefined));
                r.load(&t.path, &t.text)?;
                let members: Vec<_> = p.tasks.combos.combos[*combo]
                    .members
                    .iter()
                    .map(|&m| {
                        let c = &p.tasks.combos.concepts[m as usize];
                        (c.name.clone(), c.content.clone())
                    })
                    .collect();
                let text = r.render(&t.path, &t.text, prompt::concepts_value(&members))?;
                computed.insert(a.key, Arc::from(text.into_bytes()));
            }
            Source::EvalPrompt {
                template,
                response,
                undefined,
            } => {
                let r = renderer.get_or_insert_with(|| Renderer::new(*undefined));
                r.load(&template.0, &template.1)?;
                let essay = content_of(store, done, response)?
                    .with_context(|| format!("the store lost the response read by {}", a.path))?;
                let essay = crate::text::lossy(&essay);
                let text = r.render(
                    &template.0,
                    &template.1,
                    minijinja::context! { response => essay.as_ref() },
                )?;
                computed.insert(a.key, Arc::from(text.into_bytes()));
            }
            Source::Essay { response, strategy } => {
                let text = content_of(store, done, response)?
                    .with_context(|| format!("the store lost the response read by {}", a.path))?;
                let (essay, how) = crate::results::essay(&crate::text::lossy(&text), *strategy);
                computed.insert(a.key, Arc::from(essay.into_bytes()));
                info.insert(a.key, how);
            }
            Source::Job { job, part } => {
                let existing = |path: &str| -> Result<Option<String>> {
                    let full = root.join(path);
                    match std::fs::read(&full) {
                        Ok(b) => Ok(Some(
                            crate::text::decode(b, &full).with_context(|| format!("reading {path}"))?,
                        )),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {path}"))),
                    }
                };
                let (out, fresh) = job
                    .run(store, done, &existing)
                    .with_context(|| format!("computing {}", a.path))?;
                if fresh {
                    actions.extend(out.actions.iter().cloned());
                    notes.extend(out.notes.iter().cloned());
                }
                computed.insert(a.key, out.parts[*part].clone());
            }
        }
    }
    Ok(Prepared {
        standing,
        records,
        known,
        computed,
        registry,
        info,
        actions,
        notes,
    })
}

/// Everything a run would do, without doing it: the plan and every stage's artifacts, LLM
/// stages included (planned from what the store holds). `explain` and `status` read this.
pub fn survey(project: &Project, store: &mut Store, targets: &[String]) -> Result<(Plan, Vec<StageReport>), RunError> {
    let opts = RunOptions {
        targets: targets.to_vec(),
        dry_run: true,
        refresh: Vec::new(),
        ..Default::default()
    };
    let mut report = run(project, store, &opts)?;
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
    // while salsa plans, a second thread reads what preparing its stages needs from the store
    let mut prefetch = match project.pipeline() {
        Ok(p) => store.prefetch(
            p.stages
                .iter()
                .filter(|s| !s.kind.is_planned_in_run())
                .map(|s| s.name.clone())
                .collect(),
        ),
        Err(_) => crate::store::Prefetch::none(),
    };
    let plan = project.plan(&opts.targets)?;
    phase("planned (salsa)");
    let mut prefetched = prefetch.take()?;
    phase("store read");
    for r in &opts.refresh {
        match plan.stages.iter().find(|s| &s.stage.name == r) {
            Some(s) if s.stage.kind.is_llm() => {}
            Some(_) => {
                return Err(Diag::new(format!("--refresh {r}: `{r}` is not an LLM stage"))
                    .help("--refresh re-asks the calls of a generation_response or evaluation_response stage")
                    .into());
            }
            None => {
                return Err(Diag::new(format!("--refresh {r}: no stage `{r}` in this run"))
                    .help("name an LLM stage of the pipeline (see `daydream dag`)")
                    .into());
            }
        }
    }
    let env = llmstage::Env::load(&project.root);
    let mut choices: HashMap<String, llmstage::Choice> = HashMap::new();
    for sp in plan.stages.iter().filter(|s| s.stage.kind.is_llm()) {
        choices.insert(
            sp.stage.name.clone(),
            llmstage::choose(&plan.pipeline, &sp.stage, opts.provider.as_deref(), &env)?,
        );
    }
    // Prepare every stage that salsa planned before writing anything: a bad input must leave
    // data/ untouched. Evaluation templates are checked too, before any call is paid for.
    let no_done = HashMap::new();
    let mut prepared: Vec<Option<Prepared>> = Vec::new();
    for sp in &plan.stages {
        phase(&format!("  preparing {}", sp.stage.name));
        let static_stage = !matches!(sp.value, StageValue::Dynamic);
        prepared.push(if static_stage {
            let pre = prefetched.remove(&sp.stage.name);
            Some(prepare(&project.root, store, sp, &sp.artifacts, &no_done, false, pre)?)
        } else {
            None
        });
    }
    phase("prepared");
    llmstage::preflight(project, &plan)?;
    crate::results::preflight(&plan)?;
    let tmp = if opts.dry_run {
        PathBuf::new()
    } else {
        fsutil::reset_tmp(&project.state_dir().join("tmp"))?
    };
    let budget = opts.max_cost.or(plan.pipeline.settings.max_cost_usd.map(|c| c.0));
    let mut llm = crate::calls::Session::new(budget);
    let mut done: HashMap<String, Done> = HashMap::new();
    let mut reports = Vec::new();
    let mut guarded = false;
    let mut told = Vec::new();
    // stages whose outputs a later, store-planned stage reads
    let read_later: std::collections::HashSet<String> = plan
        .stages
        .iter()
        .filter(|s| matches!(s.value, StageValue::Dynamic))
        .flat_map(|s| s.stage.refs().map(|(_, r)| r.to_owned()).collect::<Vec<_>>())
        .collect();
    let mut plan = plan;
    let taken: Vec<Vec<Artifact>> = plan
        .stages
        .iter_mut()
        .map(|s| std::mem::take(&mut s.artifacts))
        .collect();
    for ((sp, prep), static_artifacts) in plan.stages.iter().zip(prepared).zip(taken) {
        let mut report = StageReport {
            name: sp.stage.name.clone(),
            kind: sp.stage.kind.name(),
            summary: sp.value.summary(),
            ..Default::default()
        };
        let choice = choices.get(&sp.stage.name);
        let (artifacts, mut prep) = match prep {
            Some(prep) => (static_artifacts, prep),
            None => {
                let (artifacts, blocked) = match sp.stage.kind {
                    Kind::ParsedGenerationResponses => crate::results::plan_essays(&plan, &sp.stage, &done)?,
                    Kind::ParsedScores => (crate::results::plan_scores(&plan, &sp.stage, &done)?, 0),
                    Kind::Summaries => crate::results::plan_summaries(&plan, &sp.stage, &done)?,
                    Kind::CrossExperiment => crate::results::plan_cross(&plan, &sp.stage, &done)?,
                    Kind::Report => (crate::results::plan_report(&plan, &sp.stage, &done, store)?, 0),
                    _ => llmstage::plan_stage(project, &plan, &sp.stage, &done, choice)?,
                };
                phase(&format!("  planned {} from the store", sp.stage.name));
                report.blocked = blocked;
                report.summary = match sp.stage.kind {
                    Kind::EvaluationPrompt => format!("{} prompts", artifacts.len()),
                    Kind::ParsedGenerationResponses => format!("{} essays", artifacts.len()),
                    Kind::Report => "1 page".to_owned(),
                    Kind::ParsedScores | Kind::Summaries | Kind::CrossExperiment => {
                        format!("{} tables", artifacts.len())
                    }
                    _ => format!("{} calls", artifacts.len()),
                };
                let refresh = opts.refresh.contains(&sp.stage.name);
                let prep = prepare(&project.root, store, sp, &artifacts, &done, refresh, None)?;
                (artifacts, prep)
            }
        };
        for (standing, edited) in &prep.standing {
            match standing {
                Standing::Unchanged | Standing::Touched => report.unchanged += 1,
                Standing::Restore => report.reused += 1,
                Standing::Execute => report.executed += 1,
            }
            report.overwritten_edits += usize::from(*edited);
        }
        report.computed = prep.computed.len();
        report.notes.append(&mut prep.notes);
        if let Some(choice) = choice {
            for (a, st) in artifacts.iter().zip(&prep.standing) {
                if st.0 != Standing::Execute {
                    *report
                        .cached_by_model
                        .entry(a.model.as_deref().unwrap_or("").to_owned())
                        .or_default() += 1;
                }
            }
            let pending: Vec<&Artifact> = artifacts
                .iter()
                .zip(&prep.standing)
                .filter(|(_, s)| s.0 == Standing::Execute)
                .map(|(a, _)| a)
                .collect();
            // a real run reads each prompt from the store as its call starts
            let calls = llm.pending_calls(store, &plan, &sp.stage, choice, &pending, &done, opts.dry_run)?;
            phase(&format!("  {} calls to make", calls.len()));
            if opts.dry_run {
                let mut est = crate::estimate::of_calls(&calls, !choice.provider.local);
                // calls whose prompts wait for answers not made yet, counted from the task tables
                let waiting =
                    crate::estimate::add_waiting(&mut est, project, &plan, &sp.stage, choice, &choices, &done)?;
                if waiting > 0 {
                    report.blocked += waiting;
                    report.summary = format!("{} calls", artifacts.len() + waiting);
                }
                report.llm = Some(est);
            }
            report
                .notes
                .extend(llmstage::endpoint_changed(store, choice, &calls, opts.dry_run)?);
            if let Some(note) = &choice.note
                && !calls.is_empty()
            {
                report.notes.push(note.clone());
            }
            if !opts.dry_run {
                write_stage(project, store, sp, &artifacts, &prep, &tmp)?;
                if !calls.is_empty() {
                    choice.require_key()?;
                    // the spending guard: once, before the run's first call
                    if !guarded {
                        guarded = true;
                        if !opts.yes
                            && choices.values().any(|c| !c.provider.local)
                            && let Some(held) = crate::estimate::guard(project, store, opts, &plan.pipeline.settings)?
                            && !opts.confirm.as_ref().is_some_and(|ask| ask(&held))
                        {
                            return Ok(RunReport {
                                stages: reports,
                                elapsed: start.elapsed(),
                                stopped: None,
                                spent: 0.0,
                                plan: None,
                                held: Some(held),
                                confirm_above_usd: plan.pipeline.settings.confirm_above_usd.0,
                            });
                        }
                    }
                    crate::progress::announce(
                        &sp.stage.name,
                        choice,
                        calls.len(),
                        report.cached_by_model.values().sum(),
                        &mut told,
                    );
                    let summary = llm.execute(
                        project,
                        store,
                        &tmp,
                        &sp.stage,
                        choice,
                        calls,
                        report.cached_by_model.values().sum(),
                        opts.refresh.contains(&sp.stage.name),
                    )?;
                    report.executed = summary.tasks_answered;
                    report.failed = summary.tasks_failed;
                    report.calls = Some(summary);
                }
            }
        } else if !opts.dry_run {
            write_stage(project, store, sp, &artifacts, &prep, &tmp)?;
        }
        if opts.dry_run {
            report.artifacts = artifacts.clone();
        }
        if read_later.contains(&sp.stage.name) {
            let known = if sp.stage.kind.is_llm() && !opts.dry_run {
                store.action_outputs_of_kind(llmstage::CALL_KIND)?
            } else {
                std::mem::take(&mut prep.known)
            };
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
            done.insert(
                sp.stage.name.clone(),
                Done {
                    artifacts,
                    outputs,
                    contents,
                },
            );
        } else if opts.session {
            // a long session frees them, off the path of the rebuild
            std::thread::spawn(move || drop(artifacts));
        } else {
            // nothing reads these again: freeing a million small allocations costs more than exiting
            std::mem::forget(artifacts);
        }
        if opts.session {
            std::thread::spawn(move || drop(prep));
        } else {
            std::mem::forget(prep);
        }
        phase(&format!("stage {}", sp.stage.name));
        if let Some(hook) = &opts.on_stage {
            hook(&report);
        }
        reports.push(report);
    }
    let stopped = llm.stopped();
    let spent = llm.spent();
    let confirm_above_usd = plan.pipeline.settings.confirm_above_usd.0;
    let plan = opts.dry_run.then_some(plan);
    Ok(RunReport {
        stages: reports,
        elapsed: start.elapsed(),
        stopped,
        spent,
        plan,
        held: None,
        confirm_above_usd,
    })
}

fn write_stage(
    project: &Project,
    store: &mut Store,
    sp: &StagePlan,
    artifacts: &[Artifact],
    prep: &Prepared,
    tmp: &Path,
) -> Result<()> {
    let name = &sp.stage.name;
    let t0 = Instant::now();
    let timing = |what: &str, n: usize| {
        if std::env::var_os("DAYDREAM_TIMING").is_some() && n > 0 {
            eprintln!(
                "timing:          {name}: {what} ({n}) at {:.3}s",
                t0.elapsed().as_secs_f64()
            );
        }
    };
    // 1. New actions (their manifests are built one at a time as they are stored: a cold run
    // has tens of thousands).
    let mut seen = std::collections::HashSet::new();
    let new: Vec<&Artifact> = artifacts
        .iter()
        .filter(|a| !matches!(a.source, Source::Registry))
        .filter(|a| prep.computed.contains_key(&a.key) && seen.insert(a.key))
        .collect();
    drop(seen);
    let new_actions = new.len() + prep.actions.len();
    // 2. What each file gets (restored contents are read from the store here, before it is lent
    // to the commit below).
    let mut jobs: Vec<(&Artifact, Arc<[u8]>)> = Vec::new();
    let mut sidecars: Vec<(String, Vec<u8>)> = Vec::new();
    let mut touched: Vec<&Artifact> = Vec::new();
    let known = &prep.known;
    for (i, (a, (standing, _))) in artifacts.iter().zip(&prep.standing).enumerate() {
        if !a.materialize {
            continue;
        }
        let content: Arc<[u8]> = match (standing, &a.source) {
            (Standing::Unchanged, _) => continue,
            (Standing::Touched, _) => {
                touched.push(a);
                continue;
            }
            (_, Source::Registry) => match &prep.registry {
                Some(text) => Arc::from(text.as_bytes()),
                None => continue,
            },
            // new calls are written by the LLM executor once answered
            (Standing::Execute, Source::Call { .. }) => continue,
            (Standing::Execute, _) => {
                let content = prep.computed[&a.key].clone();
                let rec = prep.records.find_at(i, &a.path).map(|(_, r)| r);
                if unchanged_on_disk(&project.root, a, rec, &content) {
                    // Early cutoff: a new key with the same content; keep the file, update its record.
                    touched.push(a);
                    continue;
                }
                content
            }
            (Standing::Restore, _) => {
                let out = known
                    .get(&a.key)
                    .with_context(|| format!("the store lost the action of {}", a.path))?;
                let bytes = store
                    .blob(out)?
                    .with_context(|| format!("the store lost the content of {} ({})", a.path, out.short()))?;
                if let Source::Call { .. } = a.source
                    && let Some(info) = crate::calls::task_record(
                        store,
                        name,
                        &a.key,
                        a.task.as_deref().unwrap_or_default(),
                        a.model.as_deref().unwrap_or_default(),
                    )?
                {
                    let pretty = serde_json::from_str::<serde_json::Value>(&info)
                        .and_then(|v| serde_json::to_vec_pretty(&v))
                        .unwrap_or(info.into_bytes());
                    sidecars.push((crate::calls::sidecar_path(&a.path), pretty));
                }
                Arc::from(bytes)
            }
        };
        jobs.push((a, content));
    }
    // 3. The new actions are committed while the files are written. Nothing depends on the
    // order: every file is replaced whole, and a file whose action a crash kept from the store
    // matches no record, so the next run recomputes it.
    let (committed, written) = std::thread::scope(|s| {
        let commit = (new_actions > 0).then(|| {
            let store = &mut *store;
            let new = &new;
            s.spawn(move || {
                let items = new
                    .iter()
                    .map(|a| {
                        (
                            Cow::Owned(artifact_manifest(&sp.stage, &sp.value, a)),
                            &prep.computed[&a.key][..],
                            prep.info.get(&a.key).map(String::as_str),
                        )
                    })
                    .chain(prep.actions.iter().map(|(m, c)| (Cow::Borrowed(m), &c[..], None)));
                store.put_actions_with_info(name, items)?;
                timing("actions stored", new_actions);
                anyhow::Ok(())
            })
        });
        let written = (|| {
            // sidecars first: a response file on disk always has its sidecar
            for (path, bytes) in &sidecars {
                fsutil::write_atomic(tmp, &project.root.join(path), bytes, false)?;
            }
            let records = write_files(&project.root, tmp, name, &jobs)?;
            timing("files written", jobs.len());
            anyhow::Ok(records)
        })();
        (commit.map_or(Ok(()), |h| h.join().expect("commit thread")), written)
    });
    committed?;
    let mut records = written?;
    for a in touched {
        let stat = fsutil::stat(&project.root.join(&a.path)).with_context(|| format!("{} vanished", a.path))?;
        let hash = match (known.get(&a.key), prep.computed.get(&a.key)) {
            (Some(h), _) => *h,
            (None, Some(c)) => Hash::of(c),
            // the registry: a ledger, recorded as it stands on disk
            (None, None) => {
                Hash::of(&std::fs::read(project.root.join(&a.path)).with_context(|| format!("reading {}", a.path))?)
            }
        };
        records.push(record(name, a, hash, stat));
    }
    if let Some(text) = &prep.registry {
        store.put_blob(text.as_bytes())?;
    }
    // 4. Records of what is on disk now.
    store.put_outputs(&records)?;
    timing("records stored", records.len());
    Ok(())
}

/// Whether the file at `a.path` is exactly what daydream last wrote there and holds `content`.
fn unchanged_on_disk(root: &Path, a: &Artifact, rec: Option<&OutputRecord>, content: &[u8]) -> bool {
    let Some(rec) = rec else { return false };
    rec.hash == Hash::of(content)
        && fsutil::stat(&root.join(&a.path)).is_some_and(|s| s.size == rec.size && s.mtime_ns == rec.mtime_ns)
}

fn record(stage: &str, a: &Artifact, hash: Hash, stat: Stat) -> OutputRecord {
    OutputRecord {
        path: a.path.clone(),
        stage: stage.to_owned(),
        task: a.task.clone(),
        key: a.key,
        hash,
        size: stat.size,
        mtime_ns: stat.mtime_ns,
    }
}

/// Writes files atomically on both cores and returns their records.
fn write_files(root: &Path, tmp: &Path, stage: &str, jobs: &[(&Artifact, Arc<[u8]>)]) -> Result<Vec<OutputRecord>> {
    if jobs.is_empty() {
        return Ok(Vec::new()); // most stages of most runs: no spare directory to list
    }
    // each directory once, rather than once per file
    let dirs: std::collections::BTreeSet<&str> = jobs
        .iter()
        .map(|(a, _)| a.path.rfind('/').map_or("", |i| &a.path[..i]))
        .collect();
    for dir in dirs {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating directory {}", dir.display()))?;
    }
    let one = |w: &mut fsutil::Writer, (a, content): &(&Artifact, Arc<[u8]>)| -> Result<OutputRecord> {
        // the registry's old text is not in the store: never let it be absent
        let may_vanish = !matches!(a.source, Source::Registry);
        let stat = w.write(&root.join(&a.path), content, may_vanish)?;
        Ok(record(stage, a, Hash::of(content), stat))
    };
    let threads = if jobs.len() < 256 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
    };
    let mut writers = fsutil::Writer::many(tmp, threads)?;
    if threads == 1 {
        let w = &mut writers[0];
        return jobs.iter().map(|j| one(w, j)).collect();
    }
    let chunk = jobs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .zip(&mut writers)
            .map(|(part, w)| s.spawn(move || part.iter().map(|j| one(w, j)).collect::<Result<Vec<_>>>()))
            .collect();
        let mut out = Vec::with_capacity(jobs.len());
        for h in handles {
            out.extend(h.join().expect("writer thread")?);
        }
        Ok(out)
    })
}
