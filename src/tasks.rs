//! The task stages: `generation_tasks` (combos x active templates x generation models) and
//! `evaluation_tasks` (generation tasks x active evaluation templates x evaluation models), with
//! the seed's ids, columns and row order (spec 4.6, 4.7).

use std::sync::Arc;

use crate::combos::Combos;
use crate::diag::Diag;
use crate::models::Models;
use crate::table::{TASK_ID_MAX, write_csv};
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

/// Task ids become file names: `<first>_<template>_<model>` may not pass [`TASK_ID_MAX`]
/// characters. Checked per template and model against the longest first part, before any row is
/// made; the error names the template's row, since either id can be shortened.
fn check_lengths(
    kind: &str,
    longest_first: Option<&str>,
    templates: &Templates,
    models: &[&crate::models::Model],
    models_path: &str,
) -> Result<(), Diag> {
    let Some(first) = longest_first else { return Ok(()) };
    for (_, t) in templates.active() {
        for m in models {
            let n = first.len() + t.id.len() + m.id.len() + 2;
            if n > TASK_ID_MAX {
                return Err(Diag::new(format!(
                    "{kind} task id {} would be {n} characters, more than the {TASK_ID_MAX} a task id may have",
                    task_id(first, &t.id, &m.id)
                ))
                .in_file(&templates.csv_path)
                .at(None, t.line, 1)
                .help(format!(
                    "task ids become file names: shorten template id `{}` ({} line {}) or model id `{}` \
                     ({models_path})",
                    t.id, templates.csv_path, t.line, m.id
                )));
            }
        }
    }
    Ok(())
}

pub fn generation(combos: Arc<Combos>, templates: Arc<Templates>, models: Arc<Models>) -> Result<GenTasks, Diag> {
    let longest = combos.combos.iter().map(|c| c.id.as_str()).max_by_key(|id| id.len());
    check_lengths(
        "generation",
        longest,
        &templates,
        &models.generation().map(|(_, m)| m).collect::<Vec<_>>(),
        &models.path,
    )?;
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
    Ok(GenTasks {
        combos,
        templates,
        models,
        rows,
    })
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

pub fn evaluation(
    generation: Arc<GenTasks>,
    templates: Arc<Templates>,
    models: Arc<Models>,
) -> Result<EvalTasks, Diag> {
    let longest = generation.rows.iter().map(|g| g.id.as_str()).max_by_key(|id| id.len());
    check_lengths(
        "evaluation",
        longest,
        &templates,
        &models.evaluation().map(|(_, m)| m).collect::<Vec<_>>(),
        &models.path,
    )?;
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
    Ok(EvalTasks {
        generation,
        templates,
        models,
        rows,
    })
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
