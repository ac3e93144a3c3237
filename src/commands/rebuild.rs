//! `daydream rebuild-results`: every results table (parsed_scores, the analyses, the summaries
//! and the cross-experiment ledgers) made again from the task tables and the response files on
//! disk alone: no LLM call, no store. It works on a project, and on a `data/` tree the original
//! pipeline wrote (then the seed's layout is assumed).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::engine::diag::Diag;
use crate::engine::fsutil::Inside;
use crate::engine::rows::replicate_id;
use crate::engine::run::RunError;
use crate::engine::spec::{PIPELINE_FILE, Pipeline};
use crate::engine::table::Table;
use crate::kinds::ledgers::LedgersStage;
use crate::kinds::llm::LlmStage;
use crate::kinds::prompt::PromptStage;
use crate::kinds::summaries::SummariesStage;
use crate::kinds::table::TableStage;
use crate::llm::record::CallRecord;
use crate::seed::ledgers::{self, EvalIds, Facts, GenIds};
use crate::seed::parsing::{ScoreRange, ScoreStrategy, parse_score};
use crate::seed::summaries::{self, ScoreRow};

/// The columns rebuild-results reads of the task tables (the seed's).
const GENERATION_COLUMNS: &[&str] = &[
    "generation_task_id",
    "combo_id",
    "generation_template",
    "generation_model",
    "generation_model_name",
];
const EVALUATION_COLUMNS: &[&str] = &[
    "evaluation_task_id",
    "generation_task_id",
    "evaluation_template",
    "evaluation_model",
    "evaluation_model_name",
];

/// Where the tables and responses are.
#[derive(Clone, Debug)]
pub struct Layout {
    pub generation_tasks: String,
    pub evaluation_tasks: String,
    pub evaluation_templates: String,
    pub generation_responses: String,
    pub evaluation_responses: String,
    pub generation_replicates: u32,
    pub evaluation_replicates: u32,
    pub parsed_scores: String,
    pub summaries: [String; 6],
    pub cross: [String; 4],
}

impl Layout {
    /// The original pipeline's paths (spec 3.2).
    pub fn seed() -> Layout {
        Layout {
            generation_tasks: "data/2_tasks/generation_tasks.csv".into(),
            evaluation_tasks: "data/2_tasks/evaluation_tasks.csv".into(),
            evaluation_templates: "data/1_raw/evaluation_templates.csv".into(),
            generation_responses: "data/3_generation/generation_responses/{id}.txt".into(),
            evaluation_responses: "data/4_evaluation/evaluation_responses/{id}.txt".into(),
            generation_replicates: 1,
            evaluation_replicates: 1,
            parsed_scores: "data/5_parsing/parsed_scores.csv".into(),
            summaries: [
                "data/5_parsing/evaluator_agreement_analysis.csv".into(),
                "data/5_parsing/comprehensive_variance_analysis.csv".into(),
                "data/6_summary/generation_scores_pivot.csv".into(),
                "data/6_summary/final_results.csv".into(),
                "data/6_summary/perfect_score_paths.csv".into(),
                "data/6_summary/evaluation_model_template_pivot.csv".into(),
            ],
            cross: [
                "data/7_cross_experiment/generation_results.csv".into(),
                "data/7_cross_experiment/evaluation_results.csv".into(),
                "data/7_cross_experiment/filtered_evaluation_results.csv".into(),
                "data/7_cross_experiment/template_version_comparison_pivot.csv".into(),
            ],
        }
    }

    /// The paths a pipeline declares: its summaries and ledgers stages and the stages they read
    /// (the seed's paths for what it lacks).
    pub fn of(p: &Pipeline) -> Result<Layout, Diag> {
        fn find<T: 'static>(p: &Pipeline) -> Option<&T> {
            p.stages.iter().find_map(|s| s.stage.as_any().downcast_ref::<T>())
        }
        fn get<'a, T: 'static>(p: &'a Pipeline, name: &str) -> Option<&'a T> {
            p.stage(name)?.stage.as_any().downcast_ref::<T>()
        }
        let missing = || {
            Diag::new(format!(
                "rebuild-results remakes the DayDreaming results; {} has no `summaries` and `ledgers` stages reading llm stages",
                p.file
            ))
            .in_file(&p.file)
            .help("it needs the shipped pipeline's shape: see the shipped pipeline.yaml")
        };
        let summaries = find::<SummariesStage>(p).ok_or_else(missing)?;
        let ledgers = find::<LedgersStage>(p).ok_or_else(missing)?;
        let (scores, rubrics, _) = summaries.reads();
        let (gen_name, eval_name) = ledgers.responses();
        let gen_llm = get::<LlmStage>(p, gen_name).ok_or_else(missing)?;
        let eval_llm = get::<LlmStage>(p, eval_name).ok_or_else(missing)?;
        // an llm stage's task table: the CSV of the rows its prompts are made for
        let task_table = |llm: &LlmStage| -> Option<String> {
            let prompts = get::<PromptStage>(p, llm.asks().prompts)?;
            p.stage(prompts.rows_stage())?.stage.table().map(|t| t.0)
        };
        let mut l = Layout::seed();
        if let Some(t) = task_table(gen_llm) {
            l.generation_tasks = t;
        }
        if let Some(t) = task_table(eval_llm) {
            l.evaluation_tasks = t;
        }
        if let Some(t) = get::<TableStage>(p, rubrics) {
            l.evaluation_templates = t.csv().to_owned();
        }
        l.generation_responses = gen_llm.asks().output.to_owned();
        l.evaluation_responses = eval_llm.asks().output.to_owned();
        l.generation_replicates = gen_llm.asks().replicates;
        l.evaluation_replicates = eval_llm.asks().replicates;
        if let Some(t) = p.stage(scores).and_then(|s| s.stage.table()) {
            l.parsed_scores = t.0;
        }
        for (i, d) in summaries.tables.iter().enumerate() {
            l.summaries[i] = d.path.clone();
        }
        for (i, d) in ledgers.tables.iter().enumerate() {
            l.cross[i] = d.path.clone();
        }
        Ok(l)
    }
}

/// What a rebuild found and wrote.
#[derive(Debug, Default)]
pub struct Report {
    pub evaluation_tasks: usize,
    pub scored: usize,
    pub missing: usize,
    pub unparseable: usize,
    pub generation_responses: usize,
    pub written: Vec<String>,
}

/// A link out of the project on the way to `rel`, as a configuration error.
fn outside(rel: &str, why: String) -> RunError {
    Diag::new(why)
        .in_file(rel)
        .help("rebuild-results reads and writes only inside the project (or the -C directory)")
        .into()
}

/// A file's text, `None` when it does not exist; never through a link out of the project.
fn read(inside: &Inside, root: &Path, rel: &str) -> Result<Option<String>, RunError> {
    inside.file(rel).map_err(|why| outside(rel, why))?;
    Ok(crate::engine::text::read_text(&root.join(rel)).with_context(|| format!("reading {rel}"))?)
}

/// A task table and the index of each of its `columns`; the task ids (the first column) are
/// checked against the id grammar: they name the response files read.
fn read_tasks(
    inside: &Inside,
    root: &Path,
    rel: &str,
    what: &str,
    columns: &[&str],
) -> Result<(Table, Vec<usize>), RunError> {
    let text = read(inside, root, rel)?.ok_or_else(|| {
        Diag::new(format!("{what} {rel} does not exist"))
            .help("rebuild-results reads the task tables a run wrote; run `daydream run` first, or point -C at a project or data directory that has them")
    })?;
    let t = Table::parse(rel, &text)?;
    let cols: Vec<usize> = columns.iter().map(|c| t.require(c)).collect::<Result<_, _>>()?;
    for row in &t.rows {
        t.id_within(&text, row, cols[0], crate::engine::table::TASK_ID_MAX)?;
    }
    Ok((t, cols))
}

fn columns<'a>(t: &'a Table, row: &'a crate::engine::table::Row, cols: &[usize]) -> Vec<&'a str> {
    cols.iter().map(|&c| t.get(row, c)).collect()
}

/// What the disk tells of one response: it exists, its size, and its sidecar if there is one.
fn disk_facts(inside: &Inside, root: &Path, rel: &str) -> Facts {
    let path = root.join(rel);
    if inside.file(rel).is_err() {
        return Facts::default();
    }
    let Ok(meta) = std::fs::metadata(&path) else {
        return Facts::default();
    };
    let record = std::fs::read(root.join(crate::llm::executor::sidecar_path(rel)))
        .ok()
        .and_then(|b| serde_json::from_slice::<CallRecord>(&b).ok());
    let timestamp = match &record {
        Some(r) => r.timestamp.clone(),
        None => meta
            .modified()
            .map(|t| {
                chrono::DateTime::<chrono::Local>::from(t)
                    .format("%Y-%m-%dT%H:%M:%S%.6f")
                    .to_string()
            })
            .unwrap_or_default(),
    };
    Facts {
        status: "success",
        timestamp,
        size: Some(meta.len()),
        record,
    }
}

/// Rebuilds every results table under `root` from the files on disk.
pub fn rebuild(root: &Path) -> Result<Report, RunError> {
    let layout = if root.join(PIPELINE_FILE).is_file() {
        let project = super::cli::project(root)?;
        let pipeline = project.pipeline()?;
        Layout::of(&pipeline)?
    } else {
        Layout::seed()
    };
    let mut report = Report::default();
    let inside = Inside::new(root);

    // the rubrics: parser and score range per evaluation template (the seed's choice when a
    // column is missing or empty), and whether any is active
    let mut rules: HashMap<String, (ScoreStrategy, ScoreRange)> = HashMap::new();
    let mut any_active = false;
    if let Some(text) = read(&inside, root, &layout.evaluation_templates)? {
        let t = Table::parse(&layout.evaluation_templates, &text)?;
        let id = t.require("template_id")?;
        let (parser, range, active) = (t.column("parser"), t.column("score_range"), t.column("active"));
        for row in &t.rows {
            let tid = t.get(row, id).trim().to_owned();
            let strategy = match parser.map(|c| t.get(row, c).trim()).filter(|v| !v.is_empty()) {
                None => ScoreStrategy::default_for(&tid),
                Some(name) => ScoreStrategy::from_name(name).ok_or_else(|| {
                    t.cell_diag(&text, row, parser.expect("read"), format_args!("unknown score parser `{name}`"))
                        .help("the parser column of an evaluation template is in_last_line or complex (empty: the seed's choice)")
                })?,
            };
            let r = match range.map(|c| t.get(row, c).trim()).filter(|v| !v.is_empty()) {
                None => ScoreRange::SEED,
                Some(v) => ScoreRange::parse(v).map_err(|e| {
                    t.cell_diag(
                        &text,
                        row,
                        range.expect("read"),
                        format_args!("bad score_range `{v}`: {e}"),
                    )
                    .help("write the inclusive range as MIN-MAX, e.g. 0-9 (empty: 0-10)")
                })?,
            };
            any_active |= match active {
                Some(c) => t.bool_cell(&text, row, c)?,
                None => true,
            };
            rules.insert(tid, (strategy, r));
        }
    }
    let rule = |t: &str| {
        rules
            .get(t)
            .copied()
            .unwrap_or((ScoreStrategy::default_for(t), ScoreRange::SEED))
    };

    // task tables, joined through their ids
    let (gt, gcols) = read_tasks(
        &inside,
        root,
        &layout.generation_tasks,
        "the generation task table",
        GENERATION_COLUMNS,
    )?;
    let mut gens: Vec<GenIds> = Vec::new();
    for row in &gt.rows {
        let v = columns(&gt, row, &gcols);
        gens.push(GenIds {
            task: v[0].into(),
            combo: v[1].into(),
            template: v[2].into(),
            model_id: v[3].into(),
            model_name: v[4].into(),
        });
    }
    let gen_by_id: HashMap<&str, &GenIds> = gens.iter().map(|g| (g.task.as_str(), g)).collect();
    let (et, ecols) = read_tasks(
        &inside,
        root,
        &layout.evaluation_tasks,
        "the evaluation task table",
        EVALUATION_COLUMNS,
    )?;

    // parsed scores, one row per evaluation task (and replicate)
    let n = layout.evaluation_replicates;
    let mut scores: Vec<ScoreRow> = Vec::new();
    let mut evals: Vec<(EvalIds, String, Facts)> = Vec::new();
    for row in &et.rows {
        let v = columns(&et, row, &ecols);
        let g = gen_by_id.get(v[1]).map(|g| (*g).clone()).unwrap_or(GenIds {
            task: v[1].into(),
            ..Default::default()
        });
        for r in 1..=n {
            let task = replicate_id(v[0], r, n);
            let rel = layout.evaluation_responses.replace("{id}", &task);
            report.evaluation_tasks += 1;
            let text = read(&inside, root, &rel)?;
            let (score, error) = match &text {
                None => {
                    report.missing += 1;
                    (None, Some("File not found".to_owned()))
                }
                Some(text) => {
                    let (strategy, range) = rule(v[2]);
                    match parse_score(text, strategy, range) {
                        Ok(s) => {
                            report.scored += 1;
                            (Some(s), None)
                        }
                        Err(e) => {
                            report.unparseable += 1;
                            (None, Some(format!("Parse error: {e}")))
                        }
                    }
                }
            };
            scores.push(ScoreRow {
                combo_id: g.combo.clone(),
                generation_template: g.template.clone(),
                generation_model: g.model_id.clone(),
                evaluation_template: v[2].into(),
                evaluation_model: v[3].into(),
                score,
                error,
                evaluation_response_path: rel.clone(),
            });
            let facts = if text.is_some() {
                disk_facts(&inside, root, &rel)
            } else {
                Facts::default()
            };
            evals.push((
                EvalIds {
                    task,
                    generation: g.clone(),
                    template: v[2].into(),
                    model_id: v[3].into(),
                    model_name: v[4].into(),
                },
                rel,
                facts,
            ));
        }
    }

    let gn = layout.generation_replicates;
    let mut gen_facts: Vec<(GenIds, String, Facts)> = Vec::new();
    for g in &gens {
        for r in 1..=gn {
            let task = replicate_id(&g.task, r, gn);
            let rel = layout.generation_responses.replace("{id}", &task);
            let facts = disk_facts(&inside, root, &rel);
            report.generation_responses += usize::from(!facts.status.is_empty());
            gen_facts.push((GenIds { task, ..g.clone() }, rel, facts));
        }
    }

    // the tables
    let mut outputs: Vec<(String, String)> =
        vec![(layout.parsed_scores.clone(), summaries::parsed_scores_csv(&scores))];
    let perfect: std::collections::BTreeMap<String, f64> =
        rules.keys().map(|t| (t.clone(), rule(t).1.max as f64)).collect();
    let tables = summaries::summary_tables(&scores, &perfect, any_active, &layout.generation_responses);
    outputs.extend(layout.summaries.iter().cloned().zip(tables));
    let old = [
        read(&inside, root, &layout.cross[0])?,
        read(&inside, root, &layout.cross[1])?,
        read(&inside, root, &layout.cross[2])?,
    ];
    let cross = ledgers::ledgers([&old[0], &old[1], &old[2]], &gen_facts, &evals, &scores)?;
    outputs.extend(layout.cross.iter().cloned().zip(cross));

    for (rel, _) in &outputs {
        inside.output(rel, false).map_err(|why| outside(rel, why))?;
    }
    for (rel, text) in outputs {
        let path = root.join(&rel);
        let dir = path.parent().unwrap_or(root).to_path_buf();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if std::fs::read(&path).is_ok_and(|b| b == text.as_bytes()) {
            continue;
        }
        crate::engine::fsutil::write_atomic(&dir, &path, text.as_bytes(), false)?;
        report.written.push(rel);
    }
    Ok(report)
}
