//! What a stage kind is to the engine: one trait for parsing a stage's YAML into a typed stage,
//! one trait for what that stage declares, computes and makes. The engine drives every stage
//! through these traits alone; it never names a kind (the registry in `kinds/mod.rs` does).
//!
//! A stage offers *shapes* (rows, one text per row, a CSV table, ...) and references other
//! stages by the shape it needs, so any stage of the right shape can feed it.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use anyhow::Result;

use super::fields::{FieldDoc, Fields};
use super::rows::Rows;
use super::yaml::Loc;
use crate::engine::diag::Diag;
use crate::engine::keys::{FastMap, Hash, Manifest};

/// A kind of stage: its name, its documentation, and how to read a stage of it from YAML.
pub trait Kind: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// One sentence: what a stage of this kind does.
    fn about(&self) -> &'static str;
    /// Every field a stage of this kind takes (docs, JSON Schema, "did you mean").
    fn fields(&self) -> &'static [FieldDoc];
    /// Reads a stage's fields into its typed configuration. `f.finish()` rejects unknown keys.
    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag>;
}

/// What a stage offers to the stages that read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Rows with an id and named columns (tables, task tables, per-row stages).
    Rows,
    /// One text per row (prompts, LLM answers, parsed values), looked up by row id.
    PerRow,
    /// One CSV table written to a file (its artifact), with the columns of its rows.
    Table,
    /// What only stages of the named kind offer (their value's data, which the reading kind
    /// downcasts): a kind's own structure, such as concepts with their descriptions.
    Of(&'static str),
    /// Any stage that writes files (a command stage's dependencies).
    Files,
}

impl Shape {
    pub fn describe(self) -> String {
        match self {
            Shape::Rows => "rows (a table, a cross product, or a per-row stage)".into(),
            Shape::PerRow => "one text per row (a prompt, llm or parse stage)".into(),
            Shape::Table => "a CSV table (a cross product, collect, or combinations stage)".into(),
            Shape::Of(kind) => format!("what a `{kind}` stage offers"),
            Shape::Files => "output files".into(),
        }
    }
}

/// A reference from one stage to another, as declared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ref {
    pub field: &'static str,
    pub stage: String,
    pub loc: Loc,
    pub needs: Shape,
}

/// A declared input or output path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decl {
    pub field: &'static str,
    pub path: String,
    pub loc: Loc,
    pub what: DeclKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeclKind {
    /// A file that must exist (an input) or one file (an output).
    File,
    /// A directory read (may be absent).
    Dir,
    /// One file per row: the path holds `{id}` (or `{column}`).
    Pattern,
    /// Files matched by a pattern of an input (a template per row): `{column}` in the path.
    InputPattern,
}

/// Kind-specific data in a value, compared by content (salsa keeps a value when it is equal).
pub trait KindData: Any + Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn dyn_eq(&self, other: &dyn Any) -> bool;
}

impl<T: Any + Debug + Send + Sync + PartialEq> KindData for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn dyn_eq(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>().is_some_and(|o| o == self)
    }
}

#[derive(Clone, Debug)]
pub struct Data(pub Arc<dyn KindData>);

impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.dyn_eq(other.0.as_any())
    }
}

impl Eq for Data {}

impl Data {
    pub fn new<T: KindData>(t: T) -> Data {
        Data(Arc::new(t))
    }

    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }
}

/// What a stage computes from the project's files before anything runs (salsa memoizes it):
/// its rows, and whatever else it needs to plan.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Value {
    pub rows: Option<Arc<Rows>>,
    pub data: Option<Data>,
    /// One line for the run's summary ("5 of 11 concepts active").
    pub summary: String,
}

impl Value {
    pub fn data<T: 'static>(&self) -> Option<&T> {
        self.data.as_ref()?.get()
    }
}

/// How an artifact's content comes about. The number indexes what the stage planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Computed by `Stage::compute`, purely from what it reads.
    Compute(u32),
    /// A ledger: `Stage::merge` folds this run's rows into what the file holds. Kept by `clean`,
    /// merged (never restored over) when the file differs from what daydream wrote.
    Merge(u32),
    /// Made by `Stage::execute` (LLM calls, commands): a dry run never makes it.
    Effect(u32),
}

/// One output of a stage: a file (or, with `materialize: false`, a blob in the store only).
#[derive(Clone, Debug)]
pub struct Artifact {
    pub path: String,
    /// The row id it belongs to, for per-row outputs.
    pub task: Option<String>,
    pub key: Hash,
    pub work: Work,
    pub materialize: bool,
    /// A label to count by in reports (the model an LLM call asks).
    pub group: Option<Arc<str>>,
    /// Built when planned; `None` for artifacts whose manifests are built only when stored.
    pub manifest: Option<Arc<Manifest>>,
}

/// What planning a stage gives.
#[derive(Default)]
pub struct Planned {
    pub artifacts: Vec<Artifact>,
    /// Rows that cannot be made yet: what they read does not exist (a failed upstream call).
    pub blocked: usize,
    /// Replaces the value's summary line ("25 calls").
    pub summary: Option<String>,
    /// Whatever the stage keeps to compute its artifacts (downcast by the stage itself).
    pub data: Option<Arc<dyn Any + Send + Sync>>,
}

impl Planned {
    pub fn data<T: 'static>(&self) -> Option<&T> {
        self.data.as_ref()?.downcast_ref()
    }
}

/// What the stages before this one produced in this run: their artifacts and, by key, the hash
/// of each output that exists.
#[derive(Default)]
pub struct Done {
    pub artifacts: Vec<Artifact>,
    pub outputs: FastMap<Hash, Hash>,
    /// Contents computed in this run, by content hash (a dry run has them only here).
    pub contents: HashMap<Hash, Arc<[u8]>>,
    by_task: std::sync::OnceLock<HashMap<String, usize>>,
}

impl Done {
    pub fn new(artifacts: Vec<Artifact>, outputs: FastMap<Hash, Hash>, contents: HashMap<Hash, Arc<[u8]>>) -> Done {
        Done {
            artifacts,
            outputs,
            contents,
            by_task: Default::default(),
        }
    }

    /// The artifact of a row id, and the hash of its content when it exists.
    pub fn of_task(&self, task: &str) -> Option<(&Artifact, Option<Hash>)> {
        let index = self.by_task.get_or_init(|| {
            let mut m = HashMap::with_capacity(self.artifacts.len());
            for (i, a) in self.artifacts.iter().enumerate() {
                if let Some(t) = &a.task {
                    m.entry(t.clone()).or_insert(i);
                }
            }
            m
        });
        let a = &self.artifacts[*index.get(task)?];
        Some((a, self.outputs.get(&a.key).copied()))
    }
}

/// Lines a stage adds to the run's summary, and what its work cost.
#[derive(Clone, Debug, Default)]
pub struct Detail {
    /// Rows made by its work (calls answered, commands run), `fetched` included.
    pub executed: usize,
    /// Of those, rows whose outputs came from a shared cache elsewhere: nothing made here.
    pub fetched: usize,
    /// Rows left to the runs of other shards (`--shard`).
    pub elsewhere: usize,
    /// Requests sent, or commands run.
    pub made: u64,
    pub failed: usize,
    /// Indented lines printed under the stage's line.
    pub lines: Vec<String>,
    /// USD: spent by this stage's work, or (dry run) the most its paid work could cost.
    pub cost: f64,
    /// Whether `cost` is a bound of work not done yet (a dry run's estimate).
    pub estimate: bool,
    /// Paid work whose cost is unknown (a model without prices): not in `cost`.
    pub unpriced: usize,
    /// Why work was stopped for the whole run (a key or credit problem), if it was.
    pub stopped: Option<String>,
    /// Lines for the run's notes (said once, before the stage's line).
    pub notes: Vec<String>,
}

/// A structured field a stage offers per row to lookups (the concepts of a combination): the
/// value a template sees, and what it adds to the key of whatever reads it.
#[derive(Clone, Debug)]
pub struct Field {
    pub value: minijinja::Value,
    pub inputs: Vec<crate::engine::keys::Input>,
}

/// What `Stage::compute` made.
#[derive(Debug, Default)]
pub struct Computed {
    pub content: Arc<[u8]>,
    /// How it was made (JSON), kept with the action and shown by `explain`.
    pub info: Option<String>,
    /// Further actions computed on the way (cached sub-results).
    pub actions: Vec<(Manifest, Arc<[u8]>)>,
    pub notes: Vec<String>,
}

impl Computed {
    pub fn of(content: impl Into<Arc<[u8]>>) -> Computed {
        Computed {
            content: content.into(),
            ..Default::default()
        }
    }
}

use super::cx::{ComputeCx, ExecCx, PlanCx, RunState, ValueCx};

/// Equality of stages behind `dyn Stage` (salsa compares pipelines).
pub trait StageEq {
    fn as_any(&self) -> &dyn Any;
    fn eq_stage(&self, other: &dyn Any) -> bool;
}

impl<T: Any + PartialEq> StageEq for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn eq_stage(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>().is_some_and(|o| o == self)
    }
}

/// A stage of some kind, with its configuration read and checked.
pub trait Stage: StageEq + Debug + Send + Sync + 'static {
    /// The stages it reads, each with the shape it needs.
    fn refs(&self) -> Vec<Ref>;
    /// The shapes it offers to stages that read it.
    fn offers(&self) -> &'static [Shape];
    /// Files and directories it reads, as declared.
    fn inputs(&self) -> Vec<Decl> {
        Vec::new()
    }
    /// Files it writes, as declared (patterns with `{id}` for per-row outputs).
    fn outputs(&self) -> Vec<Decl>;
    /// Files written beside each per-row output (an LLM answer's `<id>.json`), as suffix
    /// replacements of the output: (".txt", ".json").
    fn sidecars(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
    /// Whether it makes its outputs by acting (calls, commands): then it, and everything that
    /// reads it, is planned in the run once what it reads exists.
    fn effectful(&self) -> bool {
        false
    }
    /// Whether it reads the per-row outputs of the stages it reads (not only their rows): then
    /// it is planned in the run, once those outputs exist.
    fn reads_outputs(&self) -> bool {
        false
    }
    /// Whether its outputs cost money: `clean` keeps them unless the stage is named.
    fn paid(&self) -> bool {
        false
    }
    /// The action kind under which its keys are shared with other stages (LLM calls are one
    /// call whichever stage asks it).
    fn shared_actions(&self) -> Option<&'static str> {
        None
    }

    /// Its value, from the project's files and the values of the stages it reads (pure).
    fn value(&self, cx: &ValueCx) -> Result<Value, Diag>;
    /// A part of its value memoized by file (a template's prompts), asked through `cx.part`.
    fn part(&self, cx: &ValueCx, file: &str) -> Result<Data, Diag> {
        let _ = file;
        Err(cx.diag(format!("stage `{}` has no parts", cx.stage.name), cx.stage.loc))
    }
    /// A structured field of one of its rows, for lookups (`take:`), when it is not a column.
    fn field(&self, value: &Value, row: usize, name: &str) -> Option<Field> {
        let _ = (value, row, name);
        None
    }
    /// The CSV table it writes and its columns (stages offering `Shape::Table`).
    fn table(&self) -> Option<(String, Vec<String>)> {
        None
    }
    /// The path of the per-row output of row `id` (stages offering `Shape::PerRow`), whether
    /// or not it exists.
    fn row_path(&self, id: &str) -> Option<String> {
        let out = self.outputs().into_iter().find(|d| d.what == DeclKind::Pattern)?;
        Some(out.path.replace("{id}", id))
    }
    /// The stage whose per-row outputs this one's are made from, row by row (a parse stage's
    /// input), if any.
    fn row_source(&self) -> Option<&str> {
        None
    }
    /// The most characters row `row` of its output can hold (the stage is `spec`, its value
    /// `value`), for estimates of work that waits for it.
    fn size_bound(&self, cx: &PlanCx, spec: &super::spec::StageSpec, value: &Value, row: usize) -> Option<u64> {
        let _ = (cx, spec, value, row);
        None
    }

    /// Called for every stage of a run before anything is written or asked (provider choice).
    fn begin(
        &self,
        cx: &mut RunState,
        stage: &super::spec::StageSpec,
        pipeline: &super::spec::Pipeline,
        root: &std::path::Path,
    ) -> Result<(), Diag> {
        let _ = (cx, stage, pipeline, root);
        Ok(())
    }
    /// What a stage with work to do needs before any work of the run starts, paid or not (an API
    /// key): checked in real runs, before the spending guard, so that a run that cannot call
    /// stops with that reason.
    fn ready(&self, run: &RunState, stage: &super::spec::StageSpec) -> Result<(), Diag> {
        let _ = (run, stage);
        Ok(())
    }

    /// Called for every stage when the run's work is done (or stopped): what still runs beside
    /// the work (uploads) is waited for. Returns lines for the end of the run's report.
    fn finish(&self, run: &mut RunState, store: &mut super::store::Store) -> anyhow::Result<Vec<String>> {
        let _ = (run, store);
        Ok(Vec::new())
    }

    /// Checks what can be checked before anything is written: template syntax, parser names.
    fn check(&self, cx: &PlanCx) -> Result<(), Diag> {
        let _ = cx;
        Ok(())
    }
    /// Its artifacts and their keys. A stage planned in the run finds what earlier stages made
    /// in `cx.done`.
    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag>;
    /// The manifest of an artifact planned without one (built only when it is stored).
    fn manifest(&self, value: &Value, planned: &Planned, a: &Artifact) -> Manifest {
        let _ = (value, planned);
        a.manifest
            .as_deref()
            .cloned()
            .expect("artifacts of this kind carry their manifest")
    }
    /// The content of a `Work::Compute` artifact whose key is new.
    fn compute(&self, cx: &mut ComputeCx, a: &Artifact) -> Result<Computed> {
        let _ = cx;
        anyhow::bail!("stage kind cannot compute {}", a.path)
    }
    /// The new content of a `Work::Merge` artifact, from what its file holds.
    fn merge(&self, cx: &mut ComputeCx, a: &Artifact, existing: Option<&str>) -> Result<Option<String>> {
        let _ = (cx, existing);
        anyhow::bail!("stage kind cannot merge {}", a.path)
    }
    /// Makes the `Work::Effect` artifacts whose keys are new.
    fn execute(&self, cx: &mut ExecCx, pending: Vec<&Artifact>) -> Result<Detail> {
        let _ = cx;
        anyhow::ensure!(pending.is_empty(), "stage kind cannot make {}", pending[0].path);
        Ok(Detail::default())
    }
    /// The file written beside an output restored from the store (an LLM answer's call record).
    fn sidecar(
        &self,
        store: &crate::engine::store::Store,
        stage: &str,
        a: &Artifact,
    ) -> Result<Option<(String, Vec<u8>)>> {
        let _ = (store, stage, a);
        Ok(None)
    }
    /// What `explain` shows of how an artifact was made, beyond its manifest (JSON): an LLM
    /// call's record, a command's output. Default: what the store kept with the action.
    fn record(&self, store: &crate::engine::store::Store, stage: &str, a: &Artifact) -> Result<Option<String>> {
        let _ = stage;
        store.action_info(&a.key)
    }
    /// The file an artifact was made from, shown by `explain` (an answer's prompt).
    fn made_from(&self, planned: &Planned, a: &Artifact) -> Option<String> {
        let _ = (planned, a);
        None
    }
    /// A note `status` adds to the stage's line (the local model answered instead of the models
    /// named), from its artifacts and the output hashes the store knows.
    fn status_note(&self, artifacts: &[Artifact], known: &FastMap<Hash, Hash>) -> String {
        let _ = (artifacts, known);
        String::new()
    }
    /// Outputs `clean` keeps (ledgers holding other runs' rows).
    fn kept_by_clean(&self) -> Vec<String> {
        Vec::new()
    }
    /// What making `pending` would do and cost (a dry run, or the spending guard).
    fn estimate(&self, cx: &PlanCx, planned: &Planned, pending: &[&Artifact]) -> Result<Detail> {
        let _ = (cx, planned, pending);
        Ok(Detail::default())
    }
}

impl PartialEq for dyn Stage {
    fn eq(&self, other: &dyn Stage) -> bool {
        self.eq_stage(other.as_any())
    }
}

/// Hashes any value whose `Hash` impl is structural: the content hash of in-memory values.
pub fn value_hash<T: std::hash::Hash + ?Sized>(v: &T) -> Hash {
    // `Hash` writes a few bytes at a time (a u32, a str): gathered into a buffer first, as
    // blake3's update has a cost per call; the hash of the stream is the same however cut
    struct B(blake3::Hasher, Vec<u8>);
    impl std::hash::Hasher for B {
        fn finish(&self) -> u64 {
            unreachable!("only finalize is used")
        }
        fn write(&mut self, bytes: &[u8]) {
            self.1.extend_from_slice(bytes);
            if self.1.len() >= 1 << 16 {
                self.0.update(&self.1);
                self.1.clear();
            }
        }
    }
    let mut h = B(blake3::Hasher::new(), Vec::with_capacity(1 << 17));
    v.hash(&mut h);
    h.0.update(&h.1);
    Hash(*h.0.finalize().as_bytes())
}
