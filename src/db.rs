//! The salsa database: file contents are inputs; parsing pipeline.yaml, loading tables,
//! building combinations and tasks, and computing prompt keys are tracked queries.
//!
//! Every salsa macro of the crate lives here. Queries are pure and synchronous: they read files
//! only through `Db::file` (which turns a file into a salsa input on first use), never write,
//! never touch the network. The executor (engine.rs) acts on what they return.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use salsa::Setter;

use crate::combos::{self, Combos};
use crate::concepts::{self, Concepts};
use crate::diag::Diag;
use crate::key::{Hash, Input, KeyHead, Manifest};
use crate::models::{self, Models};
use crate::prompt::{Renderer, Undefined};
use crate::spec::{self, Kind, Pipeline, Stage};
use crate::tasks::{self, EvalTasks, GenTasks};
use crate::templates::{self, Templates};
use crate::text::{self, py_strip};

pub const PIPELINE_FILE: &str = "pipeline.yaml";

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
}

#[salsa::db]
#[derive(Clone)]
pub struct Database {
    storage: salsa::Storage<Self>,
    root: Arc<PathBuf>,
    inside: Arc<crate::fsutil::Inside>,
    files: Arc<Mutex<HashMap<String, SourceFile>>>,
    executed: Arc<Mutex<Vec<String>>>,
}

#[salsa::db]
impl salsa::Database for Database {}

#[salsa::db]
impl Db for Database {
    fn file(&self, rel: &str) -> SourceFile {
        if let Some(f) = self.files.lock().expect("file map lock").get(rel) {
            return *f;
        }
        let (exists, text) = read_source(&self.inside, &self.root, rel);
        let f = SourceFile::new(self, rel.to_owned(), exists, text);
        self.files.lock().expect("file map lock").insert(rel.to_owned(), f);
        f
    }
}

/// A project file's text. One reached through a link out of the project is refused (an error
/// whenever it is used), not read.
fn read_source(inside: &crate::fsutil::Inside, root: &Path, rel: &str) -> (bool, Result<Option<Arc<str>>, String>) {
    if let Err(e) = inside.file(rel) {
        return (true, Err(e));
    }
    match text::read_text(&root.join(rel)) {
        Ok(Some(s)) => (true, Ok(Some(Arc::from(s)))),
        Ok(None) => (false, Ok(None)),
        Err(e) => (true, Err(e.to_string())),
    }
}

impl Database {
    pub fn new(root: &Path) -> Database {
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
            inside: Arc::new(crate::fsutil::Inside::new(root)),
            files: Arc::default(),
            executed,
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
        self.inside.forget();
        let (exists, text) = read_source(&self.inside, &self.root, rel);
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

    /// What keeps the project's reads and writes inside it.
    pub fn inside(&self) -> &crate::fsutil::Inside {
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
fn require_text(db: &dyn Db, rel: &str, what: &str) -> Result<Arc<str>, Diag> {
    match db.file(rel).text(db) {
        Ok(Some(t)) => Ok(t.clone()),
        Ok(None) => Err(Diag::new(format!("{what} {rel} does not exist"))
            .in_file(rel)
            .help("create it, or fix the path in pipeline.yaml")),
        Err(e) => Err(Diag::new(format!("cannot read {what} {rel}: {e}")).in_file(rel)),
    }
}

fn optional_text(db: &dyn Db, rel: &str) -> Result<Option<Arc<str>>, Diag> {
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
    spec::parse(&exists, PIPELINE_FILE, &source).map(Arc::new)
}

/// The value a stage computes in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageValue {
    Concepts(Arc<Concepts>),
    Models(Arc<Models>),
    Templates(Arc<Templates>),
    Combos(Arc<Combos>),
    GenTasks(Arc<GenTasks>),
    EvalTasks(Arc<EvalTasks>),
    Prompts(Arc<PromptPlan>),
    /// A stage that reads LLM responses or makes calls: planned by the executor from the store,
    /// once what it reads exists.
    Dynamic,
}

impl StageValue {
    pub fn summary(&self) -> String {
        match self {
            StageValue::Concepts(c) => c.summary(),
            StageValue::Models(m) => m.summary(),
            StageValue::Templates(t) => t.summary(),
            StageValue::Combos(c) => c.summary(),
            StageValue::GenTasks(t) => t.summary(),
            StageValue::EvalTasks(t) => t.summary(),
            StageValue::Prompts(p) => format!("{} prompts", p.tasks.rows.len()),
            StageValue::Dynamic => String::new(),
        }
    }
}

/// The keys of every prompt of one template, one per combination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplatePrompts {
    pub template: usize,
    pub path: String,
    pub text: Arc<str>,
    pub keys: Vec<Hash>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptPlan {
    pub tasks: Arc<GenTasks>,
    pub undefined: Undefined,
    /// Indexed by template row; `None` for inactive templates.
    pub templates: Vec<Option<Arc<TemplatePrompts>>>,
}

macro_rules! upstream {
    ($db:expr, $project:expr, $stage:expr, $field:expr, $variant:ident) => {{
        let name = $stage.str($field);
        match stage_value($db, $project, StageName::new($db, name.to_owned())) {
            Ok(StageValue::$variant(v)) => v.clone(),
            Ok(other) => unreachable!("validated reference {name} yielded {other:?}"),
            Err(e) => return Err(e.clone()),
        }
    }};
}

fn stage_of(db: &dyn Db, project: ProjectInput, name: &str) -> Result<(Arc<Pipeline>, Stage), Diag> {
    let p = pipeline(db, project).clone()?;
    let stage = p
        .stage(name)
        .cloned()
        .ok_or_else(|| Diag::new(format!("no stage named `{name}`")))?;
    Ok((p, stage))
}

#[salsa::tracked(returns(ref))]
pub fn stage_value<'db>(db: &'db dyn Db, project: ProjectInput, name: StageName<'db>) -> Result<StageValue, Diag> {
    let (p, stage) = stage_of(db, project, name.name(db))?;
    if stage.kind.is_planned_in_run() {
        return Ok(StageValue::Dynamic);
    }
    Ok(match stage.kind {
        Kind::Concepts => {
            let path = stage.str("metadata");
            let text = require_text(db, path, "concepts metadata")?;
            let v = concepts::load(path, &text, stage.str("descriptions"), |p| optional_text(db, p))?;
            StageValue::Concepts(Arc::new(v))
        }
        Kind::Models => {
            let path = stage.str("csv");
            StageValue::Models(Arc::new(models::load(path, &require_text(db, path, "models CSV")?)?))
        }
        Kind::Templates => {
            let path = stage.str("csv");
            let text = require_text(db, path, "templates CSV")?;
            StageValue::Templates(Arc::new(templates::load(path, &text, stage.str("dir"), |p| {
                db.file(p).exists(db)
            })?))
        }
        Kind::Combinations => {
            let concepts = upstream!(db, project, stage, "concepts", Concepts);
            let k_loc = stage.fields["k_max"].loc;
            let at = |m: String| {
                Diag::new(m)
                    .in_file(&p.file)
                    .at(Some(&p.source), k_loc.line, k_loc.column)
            };
            let v = combos::build(
                &concepts,
                stage.int("k_max") as usize,
                stage.str("description_level"),
                at,
            )?;
            StageValue::Combos(Arc::new(v))
        }
        Kind::GenerationTasks => {
            let combos = upstream!(db, project, stage, "combinations", Combos);
            let models = upstream!(db, project, stage, "models", Models);
            let templates = upstream!(db, project, stage, "templates", Templates);
            StageValue::GenTasks(Arc::new(tasks::generation(combos, templates, models)?))
        }
        Kind::EvaluationTasks => {
            let generation = upstream!(db, project, stage, "generation_tasks", GenTasks);
            let models = upstream!(db, project, stage, "models", Models);
            let templates = upstream!(db, project, stage, "templates", Templates);
            StageValue::EvalTasks(Arc::new(tasks::evaluation(generation, templates, models)?))
        }
        Kind::GenerationPrompt => {
            let tasks = upstream!(db, project, stage, "tasks", GenTasks);
            let mut per_template = vec![None; tasks.templates.rows.len()];
            for (i, t) in tasks.templates.active() {
                let file = db.file(&t.path);
                per_template[i] = Some(template_prompts(db, project, name, file).clone()?);
            }
            StageValue::Prompts(Arc::new(PromptPlan {
                tasks,
                undefined: Undefined::from_name(stage.str("undefined")),
                templates: per_template,
            }))
        }
        k => unreachable!("{} is planned in the run, returned above", k.name()),
    })
}

/// A template's text as the seed used it: read, then stripped.
#[salsa::tracked(returns(ref))]
pub fn template_text(db: &dyn Db, file: SourceFile) -> Result<Arc<str>, Diag> {
    let text = require_text(db, file.path(db), "template")?;
    Ok(Arc::from(py_strip(&text)))
}

/// The key of every prompt one template yields, per combination. Re-executes only when this
/// template's text, the combinations or the stage's parameters change.
#[salsa::tracked(returns(ref))]
pub fn template_prompts<'db>(
    db: &'db dyn Db,
    project: ProjectInput,
    stage: StageName<'db>,
    file: SourceFile,
) -> Result<Arc<TemplatePrompts>, Diag> {
    let (_, st) = stage_of(db, project, stage.name(db))?;
    let tasks = upstream!(db, project, st, "tasks", GenTasks);
    let path = file.path(db).clone();
    let template = tasks
        .templates
        .rows
        .iter()
        .position(|t| t.path == path)
        .expect("template of this stage");
    let text = template_text(db, file).clone()?;
    let undefined = Undefined::from_name(st.str("undefined"));
    Renderer::new(undefined).load(&path, &text)?;
    let template_hash = Hash::of(text.as_bytes());
    // pure CPU work over plain data: split it over the cores
    let n = tasks.combos.combos.len();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(8);
    // every prompt's manifest is this head plus its concepts' inputs: hash pre-serialized pieces
    let head = KeyHead::new(&crate::prompt::template_manifest(
        Kind::GenerationPrompt.name(),
        undefined,
        &path,
        template_hash,
    ));
    let parts: Vec<Vec<u8>> = tasks
        .combos
        .concepts
        .iter()
        .map(|c| KeyHead::part(&concept_inputs(c)))
        .collect();
    let key = |c: usize| {
        let members = &tasks.combos.combos[c].members;
        head.key(members.iter().map(|&i| &parts[i as usize][..]))
    };
    let keys: Vec<Hash> = if n < 4096 || threads == 1 {
        (0..n).map(key).collect()
    } else {
        let chunk = n.div_ceil(threads);
        std::thread::scope(|s| {
            let parts: Vec<_> = (0..n)
                .step_by(chunk)
                .map(|lo| s.spawn(move || (lo..(lo + chunk).min(n)).map(key).collect::<Vec<_>>()))
                .collect();
            parts.into_iter().flat_map(|p| p.join().expect("key thread")).collect()
        })
    };
    Ok(Arc::new(TemplatePrompts {
        template,
        path,
        text,
        keys,
    }))
}

/// Everything one generation prompt is made from.
pub fn prompt_manifest(
    combos: &Combos,
    combo: usize,
    template_path: &str,
    template_hash: Hash,
    undefined: Undefined,
) -> Manifest {
    let mut m =
        crate::prompt::template_manifest(Kind::GenerationPrompt.name(), undefined, template_path, template_hash);
    for &i in &combos.combos[combo].members {
        m.inputs.extend(concept_inputs(&combos.concepts[i as usize]));
    }
    m
}

/// What a prompt reads of one of its concepts: its name and its description.
fn concept_inputs(c: &combos::Resolved) -> [Input; 2] {
    [
        Input {
            name: format!("concept:{}.name", c.id),
            path: None,
            hash: c.name_hash,
        },
        Input {
            name: format!("concept:{}.content", c.id),
            path: Some(c.source.clone()),
            hash: c.content_hash,
        },
    ]
}
