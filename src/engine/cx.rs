//! What a stage sees when the engine asks something of it: the project's files and the values
//! of the stages it reads (`ValueCx`, inside salsa), the plan and what earlier stages made in
//! this run (`PlanCx`, `ComputeCx`), the store to act on (`ExecCx`), and the run's own state
//! that stages of one kind share (`RunState`: an LLM session, provider choices).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;

use super::db::{self, Database, Db, ProjectInput, StageName, stage_part, stage_value};
use super::kind::{Data, Done, Planned, Value};
use super::spec::{Pipeline, StageSpec};
use super::yaml::Loc;
use crate::engine::diag::Diag;
use crate::engine::keys::Hash;
use crate::engine::store::Store;

/// Inside salsa: a stage computing its value.
pub struct ValueCx<'a> {
    db: &'a dyn Db,
    project: ProjectInput,
    pub pipeline: &'a Pipeline,
    pub stage: &'a StageSpec,
}

impl<'a> ValueCx<'a> {
    pub(super) fn new(db: &'a dyn Db, project: ProjectInput, pipeline: &'a Pipeline, stage: &'a StageSpec) -> Self {
        ValueCx {
            db,
            project,
            pipeline,
            stage,
        }
    }

    /// The value of a stage this one reads.
    pub fn upstream(&self, name: &str) -> Result<Value, Diag> {
        stage_value(self.db, self.project, StageName::new(self.db, name.to_owned())).clone()
    }

    pub fn text(&self, path: &str) -> Result<Option<Arc<str>>, Diag> {
        db::optional_text(self.db, path)
    }

    pub fn require_text(&self, path: &str, what: &str) -> Result<Arc<str>, Diag> {
        db::require_text(self.db, path, what)
    }

    pub fn exists(&self, path: &str) -> bool {
        self.db.file(path).exists(self.db)
    }

    /// `Stage::part` of this stage for `file`, memoized by salsa.
    pub fn part(&self, file: &str) -> Result<Data, Diag> {
        stage_part(
            self.db,
            self.project,
            StageName::new(self.db, self.stage.name.clone()),
            self.db.file(file),
        )
        .clone()
    }

    /// An error pointing into pipeline.yaml.
    pub fn diag(&self, message: impl Into<String>, loc: Loc) -> Diag {
        self.pipeline.diag(message, loc)
    }

    pub fn is_dynamic(&self, stage: &str) -> bool {
        self.pipeline.stage(stage).is_some_and(|s| s.dynamic)
    }
}

/// The state of one run, shared by every stage: options, and what stages of one kind keep for
/// the whole run (by type).
#[derive(Default)]
pub struct RunState {
    pub dry_run: bool,
    /// `--provider`: the provider of every LLM stage.
    pub provider: Option<String>,
    /// Stages whose effects are made again (`--refresh`).
    pub refresh: Vec<String>,
    /// USD the run may spend (`--max-cost`, else settings.max_cost_usd).
    pub budget: Option<f64>,
    /// Lines to tell the user before any work starts (which provider, why).
    pub notes: Vec<String>,
    /// `--shard`: the part of the paid work this run makes.
    pub shard: Option<super::run::Shard>,
    /// In a sharded run: content hashes of what this run's own paid work made, and of what was
    /// made from that (a shard makes the calls downstream of its own, whatever their keys).
    pub lineage: std::collections::HashSet<super::keys::Hash>,
    ext: HashMap<TypeId, Box<dyn Any + Send>>,
}

impl RunState {
    /// What stages of one kind keep for the run, made on first use.
    pub fn ext<T: Default + Send + 'static>(&mut self) -> &mut T {
        self.ext
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut()
            .expect("keyed by type")
    }

    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.ext.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

/// Planning a stage: the pipeline, every planned stage's value, and (for a stage planned in the
/// run) what the stages before it made.
pub struct PlanCx<'a> {
    pub root: &'a Path,
    pub(super) db: &'a Database,
    pub pipeline: &'a Pipeline,
    pub stage: &'a StageSpec,
    pub value: &'a Value,
    pub(super) values: &'a HashMap<String, Value>,
    /// `None` while planning before the run (stages that do not depend on what it makes).
    pub done: Option<&'a HashMap<String, Done>>,
    pub store: &'a Store,
    pub run: &'a RunState,
}

impl<'a> PlanCx<'a> {
    /// The value of a stage of the plan.
    pub fn value_of(&self, name: &str) -> &'a Value {
        &self.values[name]
    }

    pub fn spec_of(&self, name: &str) -> &'a StageSpec {
        self.pipeline.stage(name).expect("references are checked")
    }

    /// What a stage made earlier in this run (stages planned in the run only).
    pub fn done_of(&self, name: &str) -> Option<&'a Done> {
        self.done?.get(name)
    }

    pub fn text(&self, path: &str) -> Result<Arc<str>, Diag> {
        db::require_text(self.db, path, "file")
    }

    pub fn diag(&self, message: impl Into<String>, loc: Loc) -> Diag {
        self.pipeline.diag(message, loc)
    }

    /// Content by hash: made in this run, or from the store.
    pub fn content(&self, hash: &Hash) -> Result<Option<Arc<[u8]>>> {
        content_of(self.store, self.done, hash)
    }
}

/// Content of an output by its hash: computed in this run, or from the store.
pub fn content_of(store: &Store, done: Option<&HashMap<String, Done>>, hash: &Hash) -> Result<Option<Arc<[u8]>>> {
    if let Some(c) = done.and_then(|d| d.values().find_map(|d| d.contents.get(hash))) {
        return Ok(Some(c.clone()));
    }
    Ok(store.blob(hash)?.map(Arc::from))
}

/// Computing the content of one artifact.
pub struct ComputeCx<'a> {
    pub root: &'a Path,
    pub store: &'a Store,
    pub done: &'a HashMap<String, Done>,
    pub stage: &'a StageSpec,
    pub value: &'a Value,
    pub planned: &'a Planned,
    /// Whatever the stage keeps while it computes its artifacts (a template renderer).
    pub scratch: &'a mut Option<Box<dyn Any>>,
}

impl ComputeCx<'_> {
    pub fn content(&self, hash: &Hash) -> Result<Option<Arc<[u8]>>> {
        content_of(self.store, Some(self.done), hash)
    }

    pub fn scratch<T: 'static>(&mut self, make: impl FnOnce() -> T) -> &mut T {
        if self.scratch.as_ref().is_none_or(|s| !s.is::<T>()) {
            *self.scratch = Some(Box::new(make()));
        }
        self.scratch.as_mut().and_then(|s| s.downcast_mut()).expect("just set")
    }
}

/// Making the effects of one stage (calls, commands).
pub struct ExecCx<'a> {
    pub root: &'a Path,
    pub store: &'a mut Store,
    /// Temporary files go here, to be renamed into place.
    pub tmp: &'a Path,
    pub pipeline: &'a Pipeline,
    pub stage: &'a StageSpec,
    pub value: &'a Value,
    pub planned: &'a Planned,
    pub done: &'a HashMap<String, Done>,
    pub run: &'a mut RunState,
    /// Rows already answered from the store.
    pub cached: usize,
}
