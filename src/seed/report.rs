//! The experiment's report: one self-contained HTML page of its results, with charts
//! (`data/6_summary/report.html`).
//!
//! The API, in two steps:
//! - [`report_data`]`(&ReportInputs, RunSummary) -> ReportData`: what the page shows. The inputs
//!   are the texts of the tables the results stages wrote (`None` for a file that does not exist;
//!   [`read_table`] reads one so) and where the page and the files it links to are ([`Links`]);
//!   the [`RunSummary`] is filled by the caller from the store. It never fails: a table that is
//!   missing, empty or unreadable becomes a note in [`ReportData::missing`], and the sections that
//!   needed it say that they have nothing to show.
//! - [`render`]`(&ReportData) -> String`: the page. Inline CSS and inline SVG charts (plotters'
//!   SVG backend, see `report/charts.rs`), no script, nothing fetched; readable on a phone and
//!   printable. The same data gives the same bytes: nothing of "now" enters the page.
//!
//! Where the numbers come from: `final_results.csv` (overall statistics and the totals per
//! combination, generation template, generation model and evaluation model),
//! `perfect_score_paths.csv`, `evaluator_agreement_analysis.csv` (spread and mean of the scores
//! of each generation response), `generation_scores_pivot.csv` (each essay's score per
//! evaluation template and evaluator, `sum_scores`). This module computes no number that a table
//! holds. What no table holds is counted or averaged from the valid rows of `parsed_scores.csv`
//! (no error, a score), in the most direct way: the mean score per combination x generation
//! template and per generation model x evaluation template (the plain mean of those rows), scores
//! per integer bin per evaluator model, and the rows per evaluation template that were scored,
//! unparseable or missing. An essay's mean is its `mean_score` in the agreement table; an essay
//! with a single score is not in that table, and its mean is that score.
//!
//! `evaluation_model_template_pivot.csv` is not read: with one replicate per evaluation each of
//! its cells is one row of `parsed_scores.csv`, which the page links to instead.

mod charts;
mod html;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::engine::table::{Row, Table};
use crate::seed::summaries::{ScoreRow, read_parsed_scores};

pub use html::render;

/// The texts of the results tables, as the results stages wrote them; `None` for a file that does
/// not exist.
#[derive(Clone, Debug, Default)]
pub struct ReportInputs {
    pub parsed_scores: Option<String>,
    pub final_results: Option<String>,
    pub generation_pivot: Option<String>,
    pub perfect_paths: Option<String>,
    pub evaluator_agreement: Option<String>,
    pub links: Links,
}

/// Where the page is and where the texts it links to are, relative to the project directory.
/// A pattern holds `{id}`, replaced by a generation task id; `None` links nothing (for a stage
/// whose files are not materialized). Evaluation responses are linked by the path that
/// `parsed_scores.csv` holds for each.
#[derive(Clone, Debug)]
pub struct Links {
    pub page: String,
    pub generation_prompt: Option<String>,
    pub generation_response: Option<String>,
    pub essay: Option<String>,
}

impl Default for Links {
    /// The shipped `pipeline.yaml`'s paths.
    fn default() -> Links {
        Links {
            page: "data/6_summary/report.html".into(),
            generation_prompt: Some("data/3_generation/generation_prompts/{id}.txt".into()),
            generation_response: Some("data/3_generation/generation_responses/{id}.txt".into()),
            essay: Some("data/3_generation/parsed_generation_responses/{id}.txt".into()),
        }
    }
}

/// What the latest run did, from the store. Shown as given, in the given order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    /// Every stage, in pipeline order.
    pub stages: Vec<StageRun>,
    /// LLM calls per stage and model.
    pub calls: Vec<ModelCalls>,
    /// Failed calls by cause (`rate limited`, `timeout`, ...).
    pub failures: Vec<(String, usize)>,
    /// Stages that write no file (concepts, models, templates): every run reads them anew.
    pub in_memory: Vec<String>,
    /// When answers came from the local model instead of the models the tasks name.
    pub offline: Option<Offline>,
}

/// Answers the local model gave in place of the models the tasks name (the offline default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Offline {
    /// The models that served them, as the server named itself.
    pub served: Vec<String>,
    /// Tasks answered by the local model, of all tasks answered.
    pub answers: usize,
    pub of: usize,
    /// The models the tasks name, which did not answer.
    pub named: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageRun {
    pub name: String,
    pub kind: String,
    /// Outputs made by the latest run.
    pub done: usize,
    /// Outputs already up to date, or brought back from the store without work.
    pub cached: usize,
    /// Tasks whose output could not be made.
    pub failed: usize,
    /// When the stage last made an output, as the store records it.
    pub last_ran: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelCalls {
    pub stage: String,
    pub model: String,
    /// Answers recorded (including truncated and empty ones).
    pub calls: usize,
    pub failed: usize,
    /// Answers cut at `max_tokens` (`finish_reason: length`).
    pub truncated: usize,
    /// Answers that stayed empty after the retries.
    pub empty: usize,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The cost the provider reported.
    pub cost_recorded_usd: f64,
    /// The cost estimated from the price table, for the calls whose provider reported none.
    pub cost_estimated_usd: f64,
    /// The models that answered, as the provider named them (sorted, distinct).
    pub served: Vec<String>,
}

/// Everything the page shows.
#[derive(Clone, Debug, Default)]
pub struct ReportData {
    pub run: RunSummary,
    /// What is missing or unreadable, one sentence each.
    pub missing: Vec<String>,
    /// Rows of `parsed_scores.csv`: all, and those with a score.
    pub evaluations: usize,
    pub scored: usize,
    /// `final_results.csv`, `overall_statistics`.
    pub overall: Option<Summary>,
    /// The headline: mean score per combination (rows) x generation template (columns).
    pub combos: Grid,
    pub perfect: Vec<PerfectPath>,
    /// Mean score per generation model (rows) x evaluation template (columns).
    pub heatmap: Grid,
    /// The highest score of the data, at least 10: the top of the charts' score axes.
    pub score_top: f64,
    pub distribution: Vec<EvaluatorScores>,
    pub agreement: Vec<Agreement>,
    pub parses: Vec<TemplateParses>,
    /// The columns of the essay table: (evaluation template, evaluation model).
    pub evaluators: Vec<(String, String)>,
    /// The best essays, best first (at most [`TOP_ESSAYS`]).
    pub essays: Vec<Essay>,
    /// Essays with at least one score.
    pub essays_scored: usize,
}

pub const TOP_ESSAYS: usize = 20;

/// One row of `final_results.csv`; an empty cell is NaN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub count: f64,
    pub average: f64,
    pub std_dev: f64,
    pub min: f64,
    pub max: f64,
    pub perfect: f64,
    pub perfect_pct: f64,
    pub high: f64,
    pub high_pct: f64,
    pub low: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grid {
    pub cols: Vec<String>,
    pub rows: Vec<GridRow>,
    /// The column's `final_results.csv` row, where it has one.
    pub col_totals: Vec<Option<Summary>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GridRow {
    pub name: String,
    pub cells: Vec<Option<Mean>>,
    /// The row's `final_results.csv` row, where it has one.
    pub total: Option<Summary>,
}

/// The mean of `n` scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mean {
    pub mean: f64,
    pub n: usize,
}

/// One row of `perfect_score_paths.csv`, its paths as links from the page.
#[derive(Clone, Debug, PartialEq)]
pub struct PerfectPath {
    pub combo_id: String,
    pub generation_template: String,
    pub generation_model: String,
    pub evaluation_model: String,
    pub score: f64,
    pub generation_response: String,
    pub evaluation_response: String,
}

/// Scores of one evaluator model: how many fell in each integer bin (`bins[k]`: k <= score <
/// k + 1; the top bin holds the top score), and its `by_evaluation_model` row.
#[derive(Clone, Debug, PartialEq)]
pub struct EvaluatorScores {
    pub model: String,
    pub bins: Vec<usize>,
    pub summary: Option<Summary>,
}

/// One row of `evaluator_agreement_analysis.csv`, with the scores it was made from.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    pub combo_id: String,
    pub generation_template: String,
    pub generation_model: String,
    pub evaluator_count: f64,
    pub mean: f64,
    pub std_dev: f64,
    pub min: f64,
    pub max: f64,
    pub median: f64,
    pub range: f64,
    pub classification: String,
    /// The valid scores of this generation response in `parsed_scores.csv`.
    pub scores: Vec<f64>,
}

/// How the evaluation responses of one template fared in `parsed_scores.csv`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateParses {
    pub template: String,
    pub scored: usize,
    /// `Parse error: ...` (and any other error but a missing file).
    pub unparseable: usize,
    /// `File not found`: no response yet.
    pub missing: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Essay {
    pub combo_id: String,
    pub generation_template: String,
    pub generation_model: String,
    pub mean: f64,
    pub scored: usize,
    /// `generation_scores_pivot.csv`'s `sum_scores`.
    pub sum_scores: Option<f64>,
    /// One per [`ReportData::evaluators`] column.
    pub cells: Vec<EssayCell>,
    pub prompt: Option<String>,
    pub response: Option<String>,
    pub essay: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct EssayCell {
    /// The `generation_scores_pivot.csv` cell.
    pub score: Option<f64>,
    /// The evaluation responses behind it (one per replicate): link and error, if any.
    pub responses: Vec<(Option<String>, Option<String>)>,
}

/// A results table's text, `None` when the file does not exist.
pub fn read_table(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn report_data(inputs: &ReportInputs, run: RunSummary) -> ReportData {
    let mut missing = Vec::new();
    if run.stages.is_empty() {
        missing.push("No run is recorded: the stages, calls and costs are unknown.".to_owned());
    }
    let scores = match &inputs.parsed_scores {
        None => {
            missing.push("`parsed_scores.csv` does not exist: no evaluation has been scored yet.".to_owned());
            Vec::new()
        }
        Some(text) => read_parsed_scores(text).unwrap_or_else(|e| {
            missing.push(format!("`parsed_scores.csv` could not be read: {e}"));
            Vec::new()
        }),
    };
    let valid: Vec<(&ScoreRow, f64)> = scores
        .iter()
        .filter(|r| r.error.is_none())
        .filter_map(|r| Some((r, r.score?)))
        .collect();
    if inputs.parsed_scores.is_some() && valid.is_empty() {
        missing.push(format!(
            "`parsed_scores.csv` holds no score yet ({} evaluation rows, none scored).",
            scores.len()
        ));
    }
    let mut read = |name: &str, text: &Option<String>, needed_for: &str| -> Option<Table> {
        let Some(text) = text else {
            missing.push(format!("`{name}` does not exist: {needed_for} cannot be shown."));
            return None;
        };
        match Table::parse(name, text) {
            Ok(t) if t.rows.is_empty() && !valid.is_empty() => {
                missing.push(format!("`{name}` has no rows: {needed_for} cannot be shown."));
                Some(t)
            }
            Ok(t) => Some(t),
            Err(d) => {
                missing.push(format!("`{name}` could not be read: {}", d.message));
                None
            }
        }
    };
    let final_results = read("final_results.csv", &inputs.final_results, "the totals");
    let perfect = read(
        "perfect_score_paths.csv",
        &inputs.perfect_paths,
        "the perfect-score paths",
    );
    let agreement = read(
        "evaluator_agreement_analysis.csv",
        &inputs.evaluator_agreement,
        "the evaluator agreement chart",
    );
    let pivot = read(
        "generation_scores_pivot.csv",
        &inputs.generation_pivot,
        "the essays' score cells",
    );

    let totals = final_results.as_ref().map(summaries).unwrap_or_default();
    let total = |analysis: &str, key: &str| totals.get(&(analysis.to_owned(), key.to_owned())).copied();
    let link = |path: &str| relative_link(&inputs.links.page, path);

    let mut combos = grid(&valid, |r| &r.combo_id, |r| &r.generation_template);
    combos
        .rows
        .iter_mut()
        .for_each(|r| r.total = total("by_combo_id", &r.name));
    combos.col_totals = combos.cols.iter().map(|c| total("by_generation_template", c)).collect();
    let mut heatmap = grid(&valid, |r| &r.generation_model, |r| &r.evaluation_template);
    heatmap
        .rows
        .iter_mut()
        .for_each(|r| r.total = total("by_generation_model", &r.name));
    heatmap.col_totals = vec![None; heatmap.cols.len()];

    let score_top = valid.iter().map(|(_, s)| *s).fold(10.0, f64::max);
    let agreement = agreement.map(|t| agreements(&t, &valid)).unwrap_or_default();
    let (evaluators, essays, essays_scored) = essays(&scores, &valid, &agreement, pivot.as_ref(), &inputs.links);

    ReportData {
        run,
        evaluations: scores.len(),
        scored: valid.len(),
        overall: total("overall_statistics", ""),
        combos,
        perfect: perfect.map(|t| perfect_paths(&t, link)).unwrap_or_default(),
        heatmap,
        score_top,
        distribution: distribution(&valid, score_top, &total),
        agreement,
        parses: parses(&scores),
        evaluators,
        essays,
        essays_scored,
        missing,
    }
}

/// A row's cell in the named column, empty when the table has no such column.
fn cell<'r>(t: &Table, row: &'r Row, name: &str) -> &'r str {
    t.column(name).map_or("", |c| t.get(row, c))
}

/// A cell as a number; NaN when it is empty or no number.
fn number(t: &Table, row: &Row, name: &str) -> f64 {
    cell(t, row, name).trim().parse().unwrap_or(f64::NAN)
}

/// `final_results.csv` by (analysis_type, the row's key: its one non-empty id column, or the
/// generation and evaluation models joined by a space for the model-vs-model rows).
fn summaries(t: &Table) -> BTreeMap<(String, String), Summary> {
    let text = |row, name| cell(t, row, name);
    let num = |row, name| number(t, row, name);
    t.rows
        .iter()
        .map(|row| {
            let key = [
                "combo_id",
                "generation_template",
                "generation_model",
                "evaluation_model",
            ]
            .iter()
            .map(|c| text(row, c))
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
            let summary = Summary {
                count: num(row, "count"),
                average: num(row, "average"),
                std_dev: num(row, "std_dev"),
                min: num(row, "min_score"),
                max: num(row, "max_score"),
                perfect: num(row, "perfect_scores"),
                perfect_pct: num(row, "perfect_score_pct"),
                high: num(row, "high_scores_8plus"),
                high_pct: num(row, "high_score_pct"),
                low: num(row, "low_scores_3minus"),
            };
            ((text(row, "analysis_type").to_owned(), key), summary)
        })
        .collect()
}

/// The plain mean of the valid scores per (row key, column key), keys in sorted order.
fn grid<'a>(
    valid: &[(&'a ScoreRow, f64)],
    row_key: impl Fn(&'a ScoreRow) -> &'a String,
    col_key: impl Fn(&'a ScoreRow) -> &'a String,
) -> Grid {
    let mut sums: BTreeMap<(&str, &str), (f64, usize)> = BTreeMap::new();
    for (r, s) in valid {
        let e = sums.entry((row_key(r), col_key(r))).or_default();
        e.0 += s;
        e.1 += 1;
    }
    let rows: BTreeSet<&str> = sums.keys().map(|k| k.0).collect();
    let cols: BTreeSet<&str> = sums.keys().map(|k| k.1).collect();
    Grid {
        rows: rows
            .iter()
            .map(|r| GridRow {
                name: (*r).to_owned(),
                cells: cols
                    .iter()
                    .map(|c| {
                        sums.get(&(*r, *c)).map(|&(sum, n)| Mean {
                            mean: sum / n as f64,
                            n,
                        })
                    })
                    .collect(),
                total: None,
            })
            .collect(),
        cols: cols.iter().map(|c| (*c).to_owned()).collect(),
        col_totals: Vec::new(),
    }
}

fn perfect_paths(t: &Table, link: impl Fn(&str) -> String) -> Vec<PerfectPath> {
    let text = |row, name| cell(t, row, name).to_owned();
    t.rows
        .iter()
        .map(|row| PerfectPath {
            combo_id: text(row, "combo_id"),
            generation_template: text(row, "generation_template"),
            generation_model: text(row, "generation_model"),
            evaluation_model: text(row, "evaluation_model"),
            score: number(t, row, "score"),
            generation_response: link(&text(row, "generation_response_path")),
            evaluation_response: link(&text(row, "evaluation_response_path")),
        })
        .collect()
}

fn agreements(t: &Table, valid: &[(&ScoreRow, f64)]) -> Vec<Agreement> {
    let text = |row, name| cell(t, row, name).to_owned();
    let num = |row, name| number(t, row, name);
    t.rows
        .iter()
        .map(|row| {
            let key = [
                text(row, "combo_id"),
                text(row, "generation_template"),
                text(row, "generation_model"),
            ];
            let scores = valid
                .iter()
                .filter(|(r, _)| generation_key(r) == [&key[0], &key[1], &key[2]])
                .map(|(_, s)| *s)
                .collect();
            let [combo_id, generation_template, generation_model] = key;
            Agreement {
                combo_id,
                generation_template,
                generation_model,
                evaluator_count: num(row, "evaluator_count"),
                mean: num(row, "mean_score"),
                std_dev: num(row, "std_dev"),
                min: num(row, "min_score"),
                max: num(row, "max_score"),
                median: num(row, "median_score"),
                range: num(row, "score_range"),
                classification: text(row, "agreement_classification"),
                scores,
            }
        })
        .collect()
}

fn generation_key(r: &ScoreRow) -> [&String; 3] {
    [&r.combo_id, &r.generation_template, &r.generation_model]
}

fn distribution(
    valid: &[(&ScoreRow, f64)],
    top: f64,
    total: &dyn Fn(&str, &str) -> Option<Summary>,
) -> Vec<EvaluatorScores> {
    let n_bins = top.floor() as usize + 1;
    let mut by_model: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (r, s) in valid {
        let bins = by_model.entry(&r.evaluation_model).or_insert_with(|| vec![0; n_bins]);
        bins[(s.max(0.0).floor() as usize).min(n_bins - 1)] += 1;
    }
    by_model
        .into_iter()
        .map(|(model, bins)| EvaluatorScores {
            model: model.to_owned(),
            bins,
            summary: total("by_evaluation_model", model),
        })
        .collect()
}

fn parses(scores: &[ScoreRow]) -> Vec<TemplateParses> {
    let mut by_template: BTreeMap<&str, TemplateParses> = BTreeMap::new();
    for r in scores {
        let t = by_template.entry(&r.evaluation_template).or_default();
        match (&r.error, r.score) {
            (None, Some(_)) => t.scored += 1,
            (Some(e), _) if e == "File not found" => t.missing += 1,
            _ => t.unparseable += 1,
        }
    }
    by_template
        .into_iter()
        .map(|(template, p)| TemplateParses {
            template: template.to_owned(),
            ..p
        })
        .collect()
}

/// The essay table's columns, its best essays, and how many essays have a score.
fn essays(
    scores: &[ScoreRow],
    valid: &[(&ScoreRow, f64)],
    agreement: &[Agreement],
    pivot: Option<&Table>,
    links: &Links,
) -> (Vec<(String, String)>, Vec<Essay>, usize) {
    let evaluators: Vec<(String, String)> = scores
        .iter()
        .map(|r| (r.evaluation_template.clone(), r.evaluation_model.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut scored: BTreeMap<[&String; 3], Vec<f64>> = BTreeMap::new();
    for (r, s) in valid {
        scored.entry(generation_key(r)).or_default().push(*s);
    }
    let mut ranked: Vec<([&String; 3], f64, usize)> = scored
        .iter()
        .map(|(key, s)| {
            let in_table = agreement
                .iter()
                .find(|a| [&a.combo_id, &a.generation_template, &a.generation_model] == *key);
            let mean = match in_table {
                Some(a) => a.mean,
                None => s.iter().sum::<f64>() / s.len() as f64,
            };
            (*key, mean, s.len())
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));

    let pivot_cell = |key: &[&String; 3], column: &str| -> Option<f64> {
        let t = pivot?;
        let c = t.column(column)?;
        let row = t.rows.iter().find(|row| {
            ["combo_id", "generation_template", "generation_model"]
                .iter()
                .zip(key)
                .all(|(name, v)| t.column(name).is_some_and(|i| t.get(row, i) == v.as_str()))
        })?;
        t.get(row, c).trim().parse().ok()
    };
    let pattern_link = |pattern: &Option<String>, id: &str| {
        pattern
            .as_ref()
            .map(|p| relative_link(&links.page, &p.replace("{id}", id)))
    };
    let essays = ranked
        .iter()
        .take(TOP_ESSAYS)
        .map(|&(key, mean, n)| {
            // the generation task id, built as the summaries build it for perfect_score_paths
            let id = format!("{}_{}_{}", key[0], key[1], key[2]);
            let cells = evaluators
                .iter()
                .map(|(template, model)| EssayCell {
                    score: pivot_cell(&key, &format!("{template}_{model}")),
                    responses: scores
                        .iter()
                        .filter(|r| generation_key(r) == key)
                        .filter(|r| &r.evaluation_template == template && &r.evaluation_model == model)
                        .map(|r| {
                            let file = r.error.as_deref() != Some("File not found");
                            let href = Some(&r.evaluation_response_path)
                                .filter(|p| file && !p.is_empty())
                                .map(|p| relative_link(&links.page, p));
                            (href, r.error.clone())
                        })
                        .collect(),
                })
                .collect();
            Essay {
                combo_id: key[0].clone(),
                generation_template: key[1].clone(),
                generation_model: key[2].clone(),
                mean,
                scored: n,
                sum_scores: pivot_cell(&key, "sum_scores"),
                cells,
                prompt: pattern_link(&links.generation_prompt, &id),
                response: pattern_link(&links.generation_response, &id),
                essay: pattern_link(&links.essay, &id),
            }
        })
        .collect();
    (evaluators, essays, scored.len())
}

/// A link from the page to `target`, both relative to the project directory, percent-encoded
/// (`data/6_summary/report.html` to `data/3_generation/x.txt` is `../3_generation/x.txt`).
/// An absolute target stays absolute.
pub fn relative_link(page: &str, target: &str) -> String {
    let parts = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .map(str::to_owned)
            .collect()
    };
    let path = if target.starts_with('/') {
        target.to_owned()
    } else {
        let mut from = parts(page);
        from.pop(); // the page's own name
        let to = parts(target);
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        let mut rel: Vec<&str> = vec![".."; from.len() - common];
        rel.extend(to[common..].iter().map(String::as_str));
        rel.join("/")
    };
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_the_page() {
        let page = "data/6_summary/report.html";
        assert_eq!(
            relative_link(page, "data/3_generation/generation_prompts/a_b.txt"),
            "../3_generation/generation_prompts/a_b.txt"
        );
        assert_eq!(relative_link(page, "data/6_summary/x.csv"), "x.csv");
        assert_eq!(relative_link(page, "./out/a b#1.txt"), "../../out/a%20b%231.txt");
        assert_eq!(relative_link("report.html", "data/x.txt"), "data/x.txt");
        assert_eq!(relative_link(page, "/abs/x.txt"), "/abs/x.txt");
    }
}
