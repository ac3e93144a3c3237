//! The salsa database: file contents are inputs; parsing pipeline.yaml, every stage's value and
//! the parts of values memoized by file (a template's prompts) are tracked queries.
//!
//! Every salsa macro of the crate lives here. Queries are pure and synchronous: they read files
//! only through `Db::file` (which turns a file into a salsa input on first use), never write,
//! never touch the network. Kinds reach them through `ValueCx`, never directly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use salsa::Setter;

use super::cx::ValueCx;
use super::kind::{Data, Value};
use super::spec::{self, PIPELINE_FILE, Pipeline, Registry};
use crate::engine::diag::Diag;
use crate::engine::fsutil::Inside;
use crate::engine::text;

/// A file of the project, by path relative to the project root.
#[salsa::input(debug)]
pub struct SourceFile {
    #[returns(ref)]
    pub path: String,
    #[returns(copy)]
    pub exists: bool,
    /// `Ok(None)` when the file does not exist, `Err` when it cannot be read as UTF-8 text.
    #[returns(ref)]
    pub text: Result<Option<Arc<str>>, String>,
}

#[salsa::input(debug)]
pub struct ProjectInput {
    pub pipeline: SourceFile,
}

#[salsa::interned(debug)]
pub struct StageName<'db> {
    #[returns(ref)]
    pub name: String,
}

#[salsa::db]
pub trait Db: salsa::Database {
    /// The salsa input for a project file, read from disk on first use.
    fn file(&self, rel: &str) -> SourceFile;
    /// The kinds pipelines may use.
    fn registry(&self) -> &'static Registry;
}

#[salsa::db]
#[derive(Clone)]
pub struct Database {
    storage: salsa::Storage<Self>,
    root: Arc<PathBuf>,
    registry: &'static Registry,
    files: Arc<Mutex<HashMap<String, SourceFile>>>,
    executed: Arc<Mutex<Vec<String>>>,
    inside: Arc<Inside>,
}

#[salsa::db]
impl salsa::Database for Database {}

#[salsa::db]
impl Db for Database {
    fn file(&self, rel: &str) -> SourceFile {
        if let Some(f) = self.files.lock().expect("file map lock").get(rel) {
            return *f;
        }
        let (exists, text) = read_source(&self.root, &self.inside, rel);
        let f = SourceFile::new(self, rel.to_owned(), exists, text);
        self.files.lock().expect("file map lock").insert(rel.to_owned(), f);
        f
    }

    fn registry(&self) -> &'static Registry {
        self.registry
    }
}

/// A project file's text. A file reached through a link that leads out of the project (or into
/// `.daydream/`) is an error, not read.
fn read_source(root: &Path, inside: &Inside, rel: &str) -> (bool, Result<Option<Arc<str>>, String>) {
    if let Err(why) = inside.file(rel) {
        return (true, Err(why));
    }
    match text::read_text(&root.join(rel)) {
        Ok(Some(s)) => (true, Ok(Some(Arc::from(s)))),
        Ok(None) => (false, Ok(None)),
        Err(e) => (true, Err(e.to_string())),
    }
}

impl Database {
    pub fn new(root: &Path, registry: &'static Registry) -> Database {
        let executed: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = executed.clone();
        let storage = salsa::Storage::new(Some(Box::new(move |event: salsa::Event| {
            if let salsa::EventKind::WillExecute { database_key } = event.kind {
                log.lock().expect("log lock").push(format!("{database_key:?}"));
            }
        })));
        Database {
            storage,
            root: Arc::new(root.to_path_buf()),
            registry,
            files: Arc::default(),
            executed,
            inside: Arc::new(Inside::new(root)),
        }
    }

    pub fn project(&self) -> ProjectInput {
        ProjectInput::new(self, self.file(PIPELINE_FILE))
    }

    /// Re-reads a file that may have changed on disk. Returns whether its content changed.
    pub fn reload(&mut self, rel: &str) -> bool {
        let Some(f) = self.files.lock().expect("file map lock").get(rel).copied() else {
            return false;
        };
        let (exists, text) = read_source(&self.root, &self.inside, rel);
        let mut changed = false;
        if f.exists(self) != exists {
            f.set_exists(self).to(exists);
            changed = true;
        }
        if *f.text(self) != text {
            let _old = f.set_text(self).to(text);
            changed = true;
        }
        changed
    }

    /// Forgets the directories resolved so far, before files are re-read after a change on disk
    /// (a link may have been made or removed).
    pub fn forget_resolved(&self) {
        self.inside.forget();
    }

    /// The project's link checks, shared with the writers of a run.
    pub fn inside(&self) -> &Inside {
        &self.inside
    }

    /// The files read so far, relative to the root.
    pub fn known_files(&self) -> Vec<String> {
        self.files.lock().expect("file map lock").keys().cloned().collect()
    }

    /// Names of the queries salsa executed since the last call (for tests and `--verbose`).
    pub fn take_executed(&self) -> Vec<String> {
        std::mem::take(&mut *self.executed.lock().expect("log lock"))
    }
}

/// A file's text, or a diagnostic naming it.
pub fn require_text(db: &dyn Db, rel: &str, what: &str) -> Result<Arc<str>, Diag> {
    match db.file(rel).text(db) {
        Ok(Some(t)) => Ok(t.clone()),
        Ok(None) => Err(Diag::new(format!("{what} {rel} does not exist"))
            .in_file(rel)
            .help("create it, or fix the path in pipeline.yaml")),
        Err(e) => Err(Diag::new(format!("cannot read {what} {rel}: {e}")).in_file(rel)),
    }
}

pub fn optional_text(db: &dyn Db, rel: &str) -> Result<Option<Arc<str>>, Diag> {
    db.file(rel)
        .text(db)
        .clone()
        .map_err(|e| Diag::new(format!("cannot read {rel}: {e}")).in_file(rel))
}

#[salsa::tracked(returns(ref))]
pub fn pipeline(db: &dyn Db, project: ProjectInput) -> Result<Arc<Pipeline>, Diag> {
    let file = project.pipeline(db);
    let source = require_text(db, file.path(db), "the pipeline file")?;
    let exists = |p: &str| db.file(p).exists(db);
    spec::parse(db.registry(), &exists, PIPELINE_FILE, &source).map(Arc::new)
}

fn stage_cx(db: &dyn Db, project: ProjectInput, name: &str) -> Result<(Arc<Pipeline>, usize), Diag> {
    let p = pipeline(db, project).clone()?;
    let i = p
        .index(name)
        .ok_or_else(|| Diag::new(format!("no stage named `{name}`")))?;
    Ok((p, i))
}

/// A stage's value: its rows and what it plans from.
#[salsa::tracked(returns(ref))]
pub fn stage_value<'db>(db: &'db dyn Db, project: ProjectInput, name: StageName<'db>) -> Result<Value, Diag> {
    let (p, i) = stage_cx(db, project, name.name(db))?;
    let spec = &p.stages[i];
    let cx = ValueCx::new(db, project, &p, spec);
    spec.stage.value(&cx)
}

/// A part of a stage's value, memoized by file: re-executes only when that file, or what the
/// stage's value reads, changes.
#[salsa::tracked(returns(ref))]
pub fn stage_part<'db>(
    db: &'db dyn Db,
    project: ProjectInput,
    name: StageName<'db>,
    file: SourceFile,
) -> Result<Data, Diag> {
    let (p, i) = stage_cx(db, project, name.name(db))?;
    let spec = &p.stages[i];
    let cx = ValueCx::new(db, project, &p, spec);
    spec.stage.part(&cx, file.path(db))
}
