//! The task stages: `generation_tasks` (combos x active templates x generation models) and
//! `evaluation_tasks` (generation tasks x active evaluation templates x evaluation models), with
//! the seed's ids, columns and row order (spec 4.6, 4.7).

use std::sync::Arc;

use crate::combos::Combos;
use crate::models::Models;
use crate::table::write_csv;
use crate::templates::Templates;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GenTask {
    pub id: String,
    pub combo: u32,
    pub template: u32,
    pub model: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GenTasks {
    pub combos: Arc<Combos>,
    pub templates: Arc<Templates>,
    pub models: Arc<Models>,
    pub rows: Vec<GenTask>,
}

pub const GENERATION_COLUMNS: &[&str] = &[
    "generation_task_id",
    "combo_id",
    "generation_template",
    "generation_model",
    "generation_model_name",
];

/// `{a}_{b}_{c}`, as the seed joins a task's parts (one allocation, unlike `format!`).
fn task_id(a: &str, b: &str, c: &str) -> String {
    [a, b, c].join("_")
}

pub fn generation(combos: Arc<Combos>, templates: Arc<Templates>, models: Arc<Models>) -> GenTasks {
    let mut rows = Vec::new();
    for (ci, c) in combos.combos.iter().enumerate() {
        for (ti, t) in templates.active() {
            for (mi, m) in models.generation() {
                rows.push(GenTask {
                    id: task_id(&c.id, &t.id, &m.id),
                    combo: ci as u32,
                    template: ti as u32,
                    model: mi as u32,
                });
            }
        }
    }
    GenTasks {
        combos,
        templates,
        models,
        rows,
    }
}

impl GenTasks {
    /// `generation_tasks.csv`, built only when it has to be written.
    pub fn csv(&self) -> String {
        write_csv(
            GENERATION_COLUMNS,
            self.rows.iter().map(|r| {
                let m = &self.models.models[r.model as usize];
                vec![
                    &r.id,
                    &self.combos.combos[r.combo as usize].id,
                    &self.templates.rows[r.template as usize].id,
                    &m.id,
                    &m.model,
                ]
            }),
        )
    }
}

impl GenTasks {
    pub fn summary(&self) -> String {
        format!("{} generation tasks", self.rows.len())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EvalTask {
    pub id: String,
    pub generation: u32,
    pub template: u32,
    pub model: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EvalTasks {
    pub generation: Arc<GenTasks>,
    pub templates: Arc<Templates>,
    pub models: Arc<Models>,
    pub rows: Vec<EvalTask>,
}

pub const EVALUATION_COLUMNS: &[&str] = &[
    "evaluation_task_id",
    "generation_task_id",
    "evaluation_template",
    "evaluation_model",
    "evaluation_model_name",
];

pub fn evaluation(generation: Arc<GenTasks>, templates: Arc<Templates>, models: Arc<Models>) -> EvalTasks {
    let mut rows = Vec::new();
    for (gi, g) in generation.rows.iter().enumerate() {
        for (ti, t) in templates.active() {
            for (mi, m) in models.evaluation() {
                rows.push(EvalTask {
                    id: task_id(&g.id, &t.id, &m.id),
                    generation: gi as u32,
                    template: ti as u32,
                    model: mi as u32,
                });
            }
        }
    }
    EvalTasks {
        generation,
        templates,
        models,
        rows,
    }
}

impl EvalTasks {
    /// `evaluation_tasks.csv`, built only when it has to be written.
    pub fn csv(&self) -> String {
        write_csv(
            EVALUATION_COLUMNS,
            self.rows.iter().map(|r| {
                let m = &self.models.models[r.model as usize];
                vec![
                    &r.id,
                    &self.generation.rows[r.generation as usize].id,
                    &self.templates.rows[r.template as usize].id,
                    &m.id,
                    &m.model,
                ]
            }),
        )
    }
}

impl EvalTasks {
    pub fn summary(&self) -> String {
        format!("{} evaluation tasks", self.rows.len())
    }
}
