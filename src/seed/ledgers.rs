//! The cross-experiment ledgers (the `ledgers` kind, and `rebuild-results`): one row per LLM
//! answer ever recorded, merged into what the ledger files hold; every evaluation with its
//! parsed score; and the first valid score of each essay under each evaluation template.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};

use crate::engine::table::write_csv;
use crate::llm::record::CallRecord;
use crate::seed::pyfmt::float_repr;
use crate::seed::summaries::ScoreRow;

// ---------------------------------------------------------------------------------------------
// Cross-experiment ledgers (shared with rebuild-results).

/// The ids of a generation task, as the ledgers and parsed_scores write them.
#[derive(Clone, Debug, Default)]
pub struct GenIds {
    pub task: String,
    pub combo: String,
    pub template: String,
    pub model_id: String,
    pub model_name: String,
}

#[derive(Clone, Debug, Default)]
pub struct EvalIds {
    pub task: String,
    pub generation: GenIds,
    pub template: String,
    pub model_id: String,
    pub model_name: String,
}

/// What is known of one LLM task's response.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// `success` (the response exists), `failed` (the last call got no usable answer), or
    /// empty (never asked: no ledger row).
    pub status: &'static str,
    pub timestamp: String,
    pub size: Option<u64>,
    pub record: Option<CallRecord>,
}

pub const GENERATION_RESULTS_COLUMNS: &[&str] = &[
    "generation_task_id",
    "combo_id",
    "generation_template",
    "generation_model",
    "generation_status",
    "generation_timestamp",
    "response_file",
    "response_size_bytes",
    "generation_model_id",
    "model_served",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "error",
];

pub const EVALUATION_RESULTS_COLUMNS: &[&str] = &[
    "evaluation_task_id",
    "generation_task_id",
    "combo_id",
    "generation_template",
    "generation_model",
    "evaluation_template",
    "evaluation_model",
    "evaluation_status",
    "evaluation_timestamp",
    "eval_response_file",
    "eval_response_size_bytes",
    "generation_model_id",
    "evaluation_model_id",
    "model_served",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "error",
];

pub const FILTERED_COLUMNS: &[&str] = &[
    "combo_id",
    "generation_template",
    "generation_model",
    "evaluation_template",
    "evaluation_model",
    "score",
    "error",
    "evaluation_task_id",
    "generation_task_id",
    "evaluation_response_path",
];

/// `generation_responses/<id>.txt`: the response file relative to its stage directory, as the
/// seed's ledgers wrote it.
fn stage_relative(path: &str) -> String {
    let mut parts = path.rsplitn(3, '/');
    let file = parts.next().unwrap_or(path);
    match parts.next() {
        Some(dir) => format!("{dir}/{file}"),
        None => file.to_owned(),
    }
}

/// The call columns shared by both ledgers: model served, finish reason, tokens, cost, error.
fn call_columns(f: &Facts) -> [String; 6] {
    let r = f.record.as_ref();
    let num = |x: Option<u64>| x.map(|x| x.to_string()).unwrap_or_default();
    [
        r.and_then(|r| r.model_served.clone()).unwrap_or_default(),
        r.and_then(|r| r.finish_reason.clone()).unwrap_or_default(),
        num(r.and_then(|r| r.prompt_tokens)),
        num(r.and_then(|r| r.completion_tokens)),
        r.and_then(|r| r.cost_usd.or(r.cost_estimated_usd))
            .map(float_repr)
            .unwrap_or_default(),
        if f.status == "failed" {
            r.and_then(|r| r.error.clone()).unwrap_or_default()
        } else {
            String::new()
        },
    ]
}

fn gen_ledger_row(ids: &GenIds, path: &str, f: &Facts) -> Vec<String> {
    let mut row = vec![
        ids.task.clone(),
        ids.combo.clone(),
        ids.template.clone(),
        ids.model_name.clone(),
        f.status.to_owned(),
        f.timestamp.clone(),
        stage_relative(path),
        f.size.map(|s| s.to_string()).unwrap_or_default(),
        ids.model_id.clone(),
    ];
    row.extend(call_columns(f));
    row
}

fn eval_ledger_row(ids: &EvalIds, path: &str, f: &Facts) -> Vec<String> {
    let mut row = vec![
        ids.task.clone(),
        ids.generation.task.clone(),
        ids.generation.combo.clone(),
        ids.generation.template.clone(),
        ids.generation.model_name.clone(),
        ids.template.clone(),
        ids.model_name.clone(),
        f.status.to_owned(),
        f.timestamp.clone(),
        stage_relative(path),
        f.size.map(|s| s.to_string()).unwrap_or_default(),
        ids.generation.model_id.clone(),
        ids.model_id.clone(),
    ];
    row.extend(call_columns(f));
    row
}

/// Merges rows into a ledger: a row replaces, in place, the old row of the same identity (its
/// `key` column: one row per response), rows of new identities are appended, and rows of other
/// experiments are kept. An old row without a value in `key` (a file of another tool) is kept
/// as it is, never merged. Columns an old file lacks are empty, columns we do not know are
/// dropped.
pub fn merge_ledger(existing: Option<&str>, columns: &[&str], key: &str, rows: Vec<Vec<String>>) -> Result<String> {
    let k = columns
        .iter()
        .position(|c| *c == key)
        .expect("the key is a ledger column");
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut put = |row: Vec<String>| {
        if row[k].is_empty() {
            order.push(row);
        } else if let Some(&i) = by_id.get(&row[k]) {
            order[i] = row;
        } else {
            by_id.insert(row[k].clone(), order.len());
            order.push(row);
        }
    };
    if let Some(text) = existing.filter(|t| !t.trim().is_empty()) {
        let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let headers = r.headers().context("reading the ledger's header")?.clone();
        let index: Vec<Option<usize>> = columns.iter().map(|c| headers.iter().position(|h| h == *c)).collect();
        for rec in r.records() {
            let rec = rec.context("reading a ledger row")?;
            put(index
                .iter()
                .map(|i| i.and_then(|i| rec.get(i)).unwrap_or("").to_owned())
                .collect());
        }
    }
    for row in rows {
        put(row);
    }
    Ok(write_csv(columns, order))
}

/// The three ledgers and the template comparison pivot, from the facts of this experiment's
/// tasks and what the ledgers held.
pub fn ledgers(
    existing: [&Option<String>; 3],
    gens: &[(GenIds, String, Facts)],
    evals: &[(EvalIds, String, Facts)],
    scores: &[ScoreRow],
) -> Result<[String; 4]> {
    let gen_rows = gens
        .iter()
        .filter(|(_, _, f)| !f.status.is_empty())
        .map(|(ids, path, f)| gen_ledger_row(ids, path, f))
        .collect();
    let eval_rows = evals
        .iter()
        .filter(|(_, _, f)| !f.status.is_empty())
        .map(|(ids, path, f)| eval_ledger_row(ids, path, f))
        .collect();
    let by_path: HashMap<&str, &ScoreRow> = scores
        .iter()
        .map(|r| (r.evaluation_response_path.as_str(), r))
        .collect();
    let filtered_rows = evals
        .iter()
        .filter(|(_, _, f)| f.status == "success")
        .filter_map(|(ids, path, _)| {
            let mut row = by_path.get(path.as_str())?.cells();
            row.extend([ids.task.clone(), ids.generation.task.clone(), path.clone()]);
            Some(row)
        })
        .collect();
    // each ledger keyed by what one of its rows stands for: a response (of a task and replicate)
    let filtered = merge_ledger(
        existing[2].as_deref(),
        FILTERED_COLUMNS,
        "evaluation_task_id",
        filtered_rows,
    )?;
    let pivot = comparison_pivot(&filtered)?;
    Ok([
        merge_ledger(
            existing[0].as_deref(),
            GENERATION_RESULTS_COLUMNS,
            "generation_task_id",
            gen_rows,
        )?,
        merge_ledger(
            existing[1].as_deref(),
            EVALUATION_RESULTS_COLUMNS,
            "evaluation_task_id",
            eval_rows,
        )?,
        filtered,
        pivot,
    ])
}

/// `template_version_comparison_pivot`: the first valid score of each essay (combo, generation
/// template, generation model) under each evaluation template, joined through the task ids the
/// ledger recorded rather than guessed from file names.
pub fn comparison_pivot(filtered: &str) -> Result<String> {
    let mut r = csv::Reader::from_reader(filtered.as_bytes());
    let mut cells: BTreeMap<(String, String, String), BTreeMap<String, String>> = BTreeMap::new();
    let mut templates: std::collections::BTreeSet<String> = Default::default();
    for rec in r.records() {
        let rec = rec.context("reading filtered_evaluation_results")?;
        let f = |i: usize| rec.get(i).unwrap_or("").to_owned();
        let (score, error) = (f(5), f(6));
        if score.is_empty() || !error.is_empty() {
            continue;
        }
        let Ok(value) = score.parse::<f64>() else { continue };
        templates.insert(f(3));
        cells
            .entry((f(0), f(1), f(2)))
            .or_default()
            .entry(f(3))
            .or_insert_with(|| float_repr(value));
    }
    let mut headers = vec!["combo_id", "generation_template", "generation_model"];
    headers.extend(templates.iter().map(String::as_str));
    Ok(write_csv(
        &headers,
        cells.iter().map(|((c, t, m), by_template)| {
            let mut row = vec![c.clone(), t.clone(), m.clone()];
            row.extend(
                templates
                    .iter()
                    .map(|t| by_template.get(t).cloned().unwrap_or_default()),
            );
            row
        }),
    ))
}
