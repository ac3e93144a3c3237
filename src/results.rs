//! The results stages: essays extracted from generation responses (`parsed_generation_responses`),
//! scores parsed from evaluation responses (`parsed_scores`), the seed's analyses and summaries
//! (`summaries`), and the cross-experiment ledgers (`cross_experiment`).
//!
//! They read LLM responses, so the executor plans them from the store when it reaches them, as
//! it does the LLM stages. Their computation is shared with `daydream rebuild-results`, which
//! reads the same facts from the files on disk instead of the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::json;

use crate::calls::CallRecord;
use crate::db::StageValue;
use crate::diag::Diag;
use crate::engine::{Artifact, Plan, Source, content_of, value_hash};
use crate::key::{FastMap, Hash, Input, Manifest};
use crate::llmstage::{Done, replicate_id};
use crate::parsing::{EssayStrategy, ScoreRange, ScoreStrategy, extract_essay, parse_score, validate_essay};
use crate::pyfmt::float_repr;
use crate::spec::{Kind, Pipeline, Stage};
use crate::store::Store;
use crate::summaries::{self, ScoreRow};
use crate::table::write_csv;
use crate::tasks::{EvalTasks, GenTasks};
use crate::templates::{TemplateRow, Templates};

/// Kind of the cached parse of one evaluation response.
pub const SCORE_PARSE_KIND: &str = "score_parse";

/// The six tables of a `summaries` stage: (field in pipeline.yaml, seed file name).
pub const SUMMARY_TABLES: [&str; 6] = [
    "evaluator_agreement",
    "variance",
    "generation_pivot",
    "final_results",
    "perfect_paths",
    "model_template_pivot",
];

/// The four tables of a `cross_experiment` stage, as fields in pipeline.yaml.
pub const CROSS_TABLES: [&str; 4] = [
    "generation_results",
    "evaluation_results",
    "filtered_evaluation_results",
    "template_version_comparison",
];

// ---------------------------------------------------------------------------------------------
// Finding what a stage reads in the plan.

fn value_of<'a>(plan: &'a Plan, name: &str) -> &'a StageValue {
    &plan
        .stages
        .iter()
        .find(|s| s.stage.name == name)
        .expect("upstream stages are planned first")
        .value
}

fn stage<'a>(p: &'a Pipeline, name: &str) -> &'a Stage {
    p.stage(name).expect("references are validated")
}

/// The generation tasks a `generation_response` stage answers.
pub fn generation_tasks(plan: &Plan, responses: &Stage) -> Arc<GenTasks> {
    match value_of(plan, responses.str("prompts")) {
        StageValue::Prompts(p) => p.tasks.clone(),
        other => unreachable!("a generation prompt stage yielded {other:?}"),
    }
}

/// The evaluation tasks an `evaluation_response` stage answers.
pub fn evaluation_tasks(plan: &Plan, responses: &Stage) -> Arc<EvalTasks> {
    let prompts = stage(&plan.pipeline, responses.str("prompts"));
    match value_of(plan, prompts.str("tasks")) {
        StageValue::EvalTasks(t) => t.clone(),
        other => unreachable!("an evaluation tasks stage yielded {other:?}"),
    }
}

/// The `generation_response` stage behind what an evaluation prompt judges (itself, or the
/// stage a `parsed_generation_responses` stage reads).
pub fn raw_generation<'a>(p: &'a Pipeline, essays: &'a Stage) -> &'a Stage {
    if essays.kind == Kind::ParsedGenerationResponses {
        stage(p, essays.str("responses"))
    } else {
        essays
    }
}

/// The generation response stage whose essays an `evaluation_response` stage's prompts judged.
fn generation_of_evaluation<'a>(p: &'a Pipeline, eval_responses: &'a Stage) -> &'a Stage {
    let prompts = stage(p, eval_responses.str("prompts"));
    raw_generation(p, stage(p, prompts.str("responses")))
}

// ---------------------------------------------------------------------------------------------
// Template columns: how responses to a template are parsed.

fn template_error(t: &TemplateRow, csv: &str, what: String, help: &str) -> Diag {
    Diag::new(format!("template `{}` in {csv} line {}: {what}", t.id, t.line))
        .in_file(csv)
        .help(help.to_owned())
}

/// The essay extraction of a generation template: its `parser` column, else the seed's choice.
pub fn essay_strategy(templates: &Templates, t: &TemplateRow) -> Result<EssayStrategy, Diag> {
    match &t.parser {
        None => Ok(EssayStrategy::default_for(&t.id)),
        Some(p) => EssayStrategy::from_name(p).ok_or_else(|| {
            template_error(
                t,
                &templates.csv_path,
                format!("unknown essay parser `{p}`"),
                "the parser column of a generation template is xml_tags, section_headers or fallback (empty: the seed's choice)",
            )
        }),
    }
}

/// The score parsing of an evaluation template: its `parser` and `score_range` columns, else
/// the seed's choice and 0-10.
pub fn score_rule(templates: &Templates, t: &TemplateRow) -> Result<(ScoreStrategy, ScoreRange), Diag> {
    let strategy = match &t.parser {
        None => ScoreStrategy::default_for(&t.id),
        Some(p) => ScoreStrategy::from_name(p).ok_or_else(|| {
            template_error(
                t,
                &templates.csv_path,
                format!("unknown score parser `{p}`"),
                "the parser column of an evaluation template is in_last_line or complex (empty: the seed's choice)",
            )
        })?,
    };
    let range = match &t.score_range {
        None => ScoreRange::SEED,
        Some(r) => ScoreRange::parse(r).map_err(|e| {
            template_error(
                t,
                &templates.csv_path,
                format!("bad score_range `{r}`: {e}"),
                "write the inclusive range as MIN-MAX, e.g. 0-9 (empty: 0-10)",
            )
        })?,
    };
    Ok((strategy, range))
}

/// Checks the parser columns of the templates the results stages of `plan` will use, before
/// any call is paid for.
pub fn preflight(plan: &Plan) -> Result<(), Diag> {
    let p = &plan.pipeline;
    for sp in &plan.stages {
        match sp.stage.kind {
            Kind::ParsedGenerationResponses => {
                let tasks = generation_tasks(plan, stage(p, sp.stage.str("responses")));
                for (_, t) in tasks.templates.active() {
                    essay_strategy(&tasks.templates, t)?;
                }
            }
            Kind::ParsedScores => {
                let evals = evaluation_tasks(plan, stage(p, sp.stage.str("responses")));
                for t in &evals.templates.rows {
                    score_rule(&evals.templates, t)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Essays.

/// The essay of one generation response and what the extraction did (kept in the store as the
/// action's info). When extraction fails (an empty response) the text itself is the essay, as
/// the seed wrote it.
pub fn essay(text: &str, strategy: EssayStrategy) -> (String, String) {
    let words = |s: &str| s.split_whitespace().count();
    match extract_essay(text, strategy) {
        Ok(e) => {
            let check = validate_essay(&e.essay);
            let info = json!({
                "parser": strategy.name(),
                "strategy_used": e.strategy.name(),
                "fell_back": e.strategy != strategy,
                "sections_found": e.sections_found,
                "essay_word_count": words(&e.essay),
                "full_response_word_count": words(text),
                "parsing_success": e.essay != text,
                "validation_passed": check.is_valid,
                "validation_error": check.error,
                "note": e.note,
            });
            (e.essay, info.to_string())
        }
        Err(error) => {
            let info = json!({
                "parser": strategy.name(),
                "strategy_used": "none",
                "fell_back": true,
                "error": error,
                "note": "the whole response is kept as the essay",
            });
            (text.to_owned(), info.to_string())
        }
    }
}

/// Plans a `parsed_generation_responses` stage: one essay per generation response that exists.
pub fn plan_essays(plan: &Plan, st: &Stage, done: &HashMap<String, Done>) -> Result<(Vec<Artifact>, usize), Diag> {
    let raw = stage(&plan.pipeline, st.str("responses"));
    let n = raw.int("replicates") as u32;
    let tasks = generation_tasks(plan, raw);
    let mut by_template: HashMap<u32, EssayStrategy> = HashMap::new();
    let mut strategy_of: HashMap<String, EssayStrategy> = HashMap::new();
    for row in &tasks.rows {
        let s = match by_template.get(&row.template) {
            Some(s) => *s,
            None => {
                let s = essay_strategy(&tasks.templates, &tasks.templates.rows[row.template as usize])?;
                by_template.insert(row.template, s);
                s
            }
        };
        for r in 1..=n {
            strategy_of.insert(replicate_id(&row.id, r, n), s);
        }
    }
    let responses = &done[&raw.name];
    let pattern = st.str("output");
    let mut out = Vec::new();
    let mut blocked = 0;
    for a in &responses.artifacts {
        let Some(task) = &a.task else { continue };
        let Some(&strategy) = strategy_of.get(task) else {
            continue;
        };
        let Some(&response) = responses.outputs.get(&a.key) else {
            blocked += 1;
            continue;
        };
        let m = Manifest::new(Kind::ParsedGenerationResponses.name())
            .param("parser", strategy.name())
            .input(Input {
                name: "response".into(),
                path: Some(a.path.clone()),
                hash: response,
            });
        out.push(Artifact {
            path: pattern.replace("{id}", task),
            task: Some(task.clone()),
            key: m.key(),
            source: Source::Essay { response, strategy },
            materialize: st.bool("materialize"),
            model: a.model.clone(),
            manifest: Some(Arc::new(m)),
        });
    }
    Ok((out, blocked))
}

// ---------------------------------------------------------------------------------------------
// Jobs: stage outputs computed together, only when one of them has to be.

/// One evaluation response to score: its task row, replicate, path and content hash.
#[derive(Clone, Debug, Hash)]
pub struct ScoreItem {
    pub row: u32,
    pub task: String,
    pub path: String,
    pub response: Option<Hash>,
}

/// One LLM task for the cross-experiment ledgers.
#[derive(Clone, Debug, Hash)]
pub struct LedgerItem {
    pub row: u32,
    pub task: String,
    pub path: String,
    pub key: Hash,
    pub response: Option<Hash>,
}

#[derive(Debug)]
pub enum JobKind {
    Scores {
        stage: String,
        evals: Arc<EvalTasks>,
        items: Vec<ScoreItem>,
        rules: Vec<(ScoreStrategy, ScoreRange)>,
    },
    Summaries {
        scores: Hash,
        perfect: BTreeMap<String, f64>,
        any_active: bool,
        generation_pattern: String,
    },
    Report {
        /// Content hashes of parsed_scores and the summary tables the page reads (`None`: not made).
        scores: Option<Hash>,
        tables: [Option<Hash>; 6],
        links: crate::report::Links,
        run: Box<crate::report::RunSummary>,
    },
    Cross {
        scores: Hash,
        gen_stage: String,
        eval_stage: String,
        gens: Arc<GenTasks>,
        evals: Arc<EvalTasks>,
        gen_items: Vec<LedgerItem>,
        eval_items: Vec<LedgerItem>,
        /// The ledgers' paths, to merge with what they hold.
        paths: [String; 3],
    },
}

/// What a job computed: one content per output, new actions to record (cached parses), and
/// notes for the run's summary.
#[derive(Debug)]
pub struct JobOutput {
    pub parts: Vec<Arc<[u8]>>,
    pub actions: Vec<(Manifest, Arc<[u8]>)>,
    pub notes: Vec<String>,
}

#[derive(Debug)]
pub struct Job {
    pub kind: JobKind,
    out: Mutex<Option<Arc<JobOutput>>>,
}

impl Job {
    fn new(kind: JobKind) -> Arc<Job> {
        Arc::new(Job {
            kind,
            out: Mutex::new(None),
        })
    }

    /// Whether the job's outputs are ledgers, merged with what their files hold.
    pub fn is_ledger(&self) -> bool {
        matches!(self.kind, JobKind::Cross { .. })
    }

    /// Computes the job once; `existing(path)` reads what a ledger holds now.
    pub fn run(
        &self,
        store: &Store,
        done: &HashMap<String, Done>,
        existing: &dyn Fn(&str) -> Result<Option<String>>,
    ) -> Result<(Arc<JobOutput>, bool)> {
        let mut slot = self.out.lock().expect("job lock");
        if let Some(out) = &*slot {
            return Ok((out.clone(), false));
        }
        let out = Arc::new(match &self.kind {
            JobKind::Scores {
                stage,
                evals,
                items,
                rules,
            } => run_scores(store, done, stage, evals, items, rules)?,
            JobKind::Summaries {
                scores,
                perfect,
                any_active,
                generation_pattern,
            } => {
                let rows = read_scores(store, done, scores)?;
                let t = summary_tables(&rows, perfect, *any_active, generation_pattern);
                JobOutput {
                    parts: t.into_iter().map(|s| Arc::from(s.into_bytes())).collect(),
                    actions: Vec::new(),
                    notes: Vec::new(),
                }
            }
            JobKind::Report {
                scores,
                tables,
                links,
                run,
            } => {
                let text = |h: &Option<Hash>, what: &str| h.as_ref().map(|h| text_of(store, done, h, what)).transpose();
                let inputs = crate::report::ReportInputs {
                    parsed_scores: text(scores, "parsed scores")?,
                    evaluator_agreement: text(&tables[0], "agreement table")?,
                    generation_pivot: text(&tables[2], "generation pivot")?,
                    final_results: text(&tables[3], "final results")?,
                    perfect_paths: text(&tables[4], "perfect score paths")?,
                    links: links.clone(),
                };
                let page = crate::report::render(&crate::report::report_data(&inputs, (**run).clone()));
                JobOutput {
                    parts: vec![Arc::from(page.into_bytes())],
                    actions: Vec::new(),
                    notes: Vec::new(),
                }
            }
            JobKind::Cross {
                scores,
                gen_stage,
                eval_stage,
                gens,
                evals,
                gen_items,
                eval_items,
                paths,
            } => {
                let rows = read_scores(store, done, scores)?;
                let gen_facts = facts(store, gen_stage, gen_items)?;
                let eval_facts = facts(store, eval_stage, eval_items)?;
                let gen_rows: Vec<_> = gen_items
                    .iter()
                    .zip(gen_facts)
                    .map(|(i, f)| (gen_ids(gens, i.row as usize, &i.task), i.path.clone(), f))
                    .collect();
                let eval_rows: Vec<_> = eval_items
                    .iter()
                    .zip(eval_facts)
                    .map(|(i, f)| (eval_ids(evals, i.row as usize, &i.task), i.path.clone(), f))
                    .collect();
                let old: Vec<Option<String>> = paths.iter().map(|p| existing(p)).collect::<Result<_>>()?;
                let t = ledgers([&old[0], &old[1], &old[2]], &gen_rows, &eval_rows, &rows)?;
                JobOutput {
                    parts: t.into_iter().map(|s| Arc::from(s.into_bytes())).collect(),
                    actions: Vec::new(),
                    notes: Vec::new(),
                }
            }
        });
        *slot = Some(out.clone());
        Ok((out, true))
    }
}

fn read_scores(store: &Store, done: &HashMap<String, Done>, hash: &Hash) -> Result<Vec<ScoreRow>> {
    let text = text_of(store, done, hash, "parsed scores")?;
    summaries::read_parsed_scores(&text).map_err(anyhow::Error::msg)
}

fn text_of(store: &Store, done: &HashMap<String, Done>, hash: &Hash, what: &str) -> Result<String> {
    let bytes =
        content_of(store, done, hash)?.with_context(|| format!("the store lost the {what} ({})", hash.short()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The cached parse of one response: `{"score": x}` or `{"error": "..."}`.
fn parse_manifest(strategy: ScoreStrategy, range: ScoreRange, response: Hash) -> Manifest {
    Manifest::new(SCORE_PARSE_KIND)
        .param("parser", strategy.name())
        .param("score_range", range)
        .input(Input {
            name: "response".into(),
            path: None,
            hash: response,
        })
}

fn encode_parse(r: &Result<f64, String>) -> Vec<u8> {
    match r {
        Ok(s) => json!({ "score": s }),
        Err(e) => json!({ "error": e }),
    }
    .to_string()
    .into_bytes()
}

fn decode_parse(bytes: &[u8]) -> Option<Result<f64, String>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(s) = v.get("score").and_then(|s| s.as_f64()) {
        return Some(Ok(s));
    }
    v.get("error").and_then(|e| e.as_str()).map(|e| Err(e.to_owned()))
}

/// The seed's `parsed_scores` row of a parse result (4.13).
fn score_row(evals: &EvalTasks, row: usize, path: &str, parsed: Option<Result<f64, String>>) -> ScoreRow {
    let ids = eval_ids(evals, row, "");
    let (score, error) = match parsed {
        None => (None, Some("File not found".to_owned())),
        Some(Ok(s)) => (Some(s), None),
        Some(Err(e)) => (None, Some(format!("Parse error: {e}"))),
    };
    ScoreRow {
        combo_id: ids.generation.combo,
        generation_template: ids.generation.template,
        generation_model: ids.generation.model_id,
        evaluation_template: ids.template,
        evaluation_model: ids.model_id,
        score,
        error,
        evaluation_response_path: path.to_owned(),
    }
}

fn run_scores(
    store: &Store,
    done: &HashMap<String, Done>,
    stage: &str,
    evals: &EvalTasks,
    items: &[ScoreItem],
    rules: &[(ScoreStrategy, ScoreRange)],
) -> Result<JobOutput> {
    let known = store.action_outputs(stage)?;
    let mut actions = Vec::new();
    let mut fresh: FastMap<Hash, Result<f64, String>> = FastMap::default();
    let (mut parsed, mut cached) = (0usize, 0usize);
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        let row = item.row as usize;
        let result = match item.response {
            None => None,
            Some(h) => {
                let (strategy, range) = rules[evals.rows[row].template as usize];
                let m = parse_manifest(strategy, range, h);
                let key = m.key();
                let hit = match fresh.get(&key) {
                    Some(r) => Some(r.clone()),
                    None => match known.get(&key) {
                        Some(out) => store.blob(out)?.and_then(|b| decode_parse(&b)),
                        None => None,
                    },
                };
                Some(match hit {
                    Some(r) => {
                        cached += 1;
                        r
                    }
                    None => {
                        parsed += 1;
                        let text = text_of(store, done, &h, "evaluation response")?;
                        let r = parse_score(&text, strategy, range);
                        actions.push((m, Arc::from(encode_parse(&r))));
                        fresh.insert(key, r.clone());
                        r
                    }
                })
            }
        };
        rows.push(score_row(evals, row, &item.path, result));
    }
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    Ok(JobOutput {
        parts: vec![Arc::from(summaries::parsed_scores_csv(&rows).into_bytes())],
        actions,
        notes: vec![format!(
            "parsed {parsed} responses, {cached} from cache; {} scored, {failed} without a score",
            rows.len() - failed
        )],
    })
}

pub fn summary_tables(
    rows: &[ScoreRow],
    perfect: &BTreeMap<String, f64>,
    any_active: bool,
    generation_pattern: &str,
) -> [String; 6] {
    let top = |t: &str| perfect.get(t).copied().unwrap_or(ScoreRange::SEED.max as f64);
    let gen_path = |r: &ScoreRow| {
        generation_pattern.replace(
            "{id}",
            &format!("{}_{}_{}", r.combo_id, r.generation_template, r.generation_model),
        )
    };
    let t = summaries::tables(
        rows,
        &summaries::Context {
            perfect: &top,
            any_active_template: any_active,
            generation_response_path: &gen_path,
        },
    );
    [
        t.evaluator_agreement,
        t.variance,
        t.generation_pivot,
        t.final_results,
        t.perfect_paths,
        t.model_template_pivot,
    ]
}

/// Plans a `parsed_scores` stage: one table over every evaluation task.
pub fn plan_scores(plan: &Plan, st: &Stage, done: &HashMap<String, Done>) -> Result<Vec<Artifact>, Diag> {
    let p = &plan.pipeline;
    let resp = stage(p, st.str("responses"));
    let n = resp.int("replicates") as u32;
    let evals = evaluation_tasks(plan, resp);
    let rules = evals
        .templates
        .rows
        .iter()
        .map(|t| score_rule(&evals.templates, t))
        .collect::<Result<Vec<_>, Diag>>()?;
    let responses = &done[&resp.name];
    let by_task: HashMap<&str, &Artifact> = responses
        .artifacts
        .iter()
        .filter_map(|a| Some((a.task.as_deref()?, a)))
        .collect();
    let pattern = resp.str("output");
    let mut items = Vec::with_capacity(evals.rows.len() * n as usize);
    for (i, row) in evals.rows.iter().enumerate() {
        for r in 1..=n {
            let task = replicate_id(&row.id, r, n);
            let response = by_task
                .get(task.as_str())
                .and_then(|a| responses.outputs.get(&a.key))
                .copied();
            items.push(ScoreItem {
                row: i as u32,
                path: pattern.replace("{id}", &task),
                task,
                response,
            });
        }
    }
    let tasks_stage = stage(p, stage(p, resp.str("prompts")).str("tasks"));
    let m = Manifest::new(Kind::ParsedScores.name())
        .param(
            "rules",
            rules
                .iter()
                .map(|(s, r)| format!("{}:{r}", s.name()))
                .collect::<Vec<_>>()
                .join(","),
        )
        .input(Input {
            name: "evaluation_tasks".into(),
            path: Some(tasks_stage.str("output").to_owned()),
            hash: value_hash(&*evals),
        })
        .input(Input {
            name: "responses".into(),
            path: Some(pattern.to_owned()),
            hash: value_hash(&items),
        });
    let job = Job::new(JobKind::Scores {
        stage: st.name.clone(),
        evals,
        items,
        rules,
    });
    Ok(vec![Artifact {
        path: st.str("output").to_owned(),
        task: None,
        key: m.key(),
        source: Source::Job { job, part: 0 },
        materialize: true,
        model: None,
        manifest: Some(Arc::new(m)),
    }])
}

/// The parsed_scores table a stage reads, with the evaluation tasks behind it.
fn scores_input<'a>(
    plan: &'a Plan,
    st: &Stage,
    done: &'a HashMap<String, Done>,
) -> (Option<(&'a Artifact, Hash)>, &'a Stage, Arc<EvalTasks>) {
    let p = &plan.pipeline;
    let scores = stage(p, st.str("scores"));
    let resp = stage(p, scores.str("responses"));
    let evals = evaluation_tasks(plan, resp);
    let found = done.get(&scores.name).and_then(|d| {
        let a = d.artifacts.first()?;
        Some((a, *d.outputs.get(&a.key)?))
    });
    (found, resp, evals)
}

fn table_artifact(st: &Stage, field: &str, part: usize, job: &Arc<Job>, m: Manifest) -> Artifact {
    Artifact {
        path: st.str(field).to_owned(),
        task: None,
        key: m.key(),
        source: Source::Job { job: job.clone(), part },
        materialize: true,
        model: None,
        manifest: Some(Arc::new(m)),
    }
}

/// Plans a `summaries` stage: the six tables of the seed, from the parsed scores.
pub fn plan_summaries(plan: &Plan, st: &Stage, done: &HashMap<String, Done>) -> Result<(Vec<Artifact>, usize), Diag> {
    let (found, resp, evals) = scores_input(plan, st, done);
    let Some((scores_artifact, scores)) = found else {
        return Ok((Vec::new(), 1));
    };
    let mut perfect = BTreeMap::new();
    for t in &evals.templates.rows {
        let (_, range) = score_rule(&evals.templates, t)?;
        perfect.insert(t.id.clone(), range.max as f64);
    }
    let any_active = evals.templates.active().next().is_some();
    let generation_pattern = generation_of_evaluation(&plan.pipeline, resp).str("output").to_owned();
    let ranges = Input {
        name: "score_ranges".into(),
        path: Some(evals.templates.csv_path.clone()),
        hash: value_hash(&(
            perfect.iter().map(|(k, v)| (k, v.to_bits())).collect::<Vec<_>>(),
            any_active,
        )),
    };
    let job = Job::new(JobKind::Summaries {
        scores,
        perfect,
        any_active,
        generation_pattern: generation_pattern.clone(),
    });
    let artifacts = SUMMARY_TABLES
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let m = Manifest::new(Kind::Summaries.name())
                .param("table", field)
                .param("generation_responses", &generation_pattern)
                .input(Input {
                    name: "scores".into(),
                    path: Some(scores_artifact.path.clone()),
                    hash: scores,
                })
                .input(ranges.clone());
            table_artifact(st, field, i, &job, m)
        })
        .collect();
    Ok((artifacts, 0))
}

/// Where the page of a `report` stage links to: the files of the stages behind its summaries
/// (`None` for a stage that keeps its outputs in the store only).
pub fn report_links(p: &Pipeline, st: &Stage) -> crate::report::Links {
    let summaries = stage(p, st.str("summaries"));
    let scores = stage(p, summaries.str("scores"));
    let eval_prompts = stage(p, stage(p, scores.str("responses")).str("prompts"));
    let essays = stage(p, eval_prompts.str("responses"));
    let raw = raw_generation(p, essays);
    let gen_prompts = stage(p, raw.str("prompts"));
    let files = |s: &Stage| s.bool("materialize").then(|| s.str("output").to_owned());
    crate::report::Links {
        page: st.str("output").to_owned(),
        generation_prompt: files(gen_prompts),
        generation_response: files(raw),
        essay: (essays.kind == Kind::ParsedGenerationResponses)
            .then(|| files(essays))
            .flatten(),
    }
}

/// What the store recorded of every stage but the report itself: files, shared computations,
/// failed tasks, when it last did something, and the calls per model with their tokens and cost.
/// It changes only when a stage does work, so a run that changes nothing leaves the page as is.
pub fn run_summary(store: &Store, p: &Pipeline) -> Result<crate::report::RunSummary> {
    use crate::report::{ModelCalls, Offline, RunSummary, StageRun};
    let mut run = RunSummary::default();
    let mut causes: BTreeMap<String, usize> = BTreeMap::new();
    let mut offline = Offline::default();
    let local = |provider: &str| p.providers.iter().any(|x| x.local && x.name == provider);
    for s in p.stages.iter().filter(|s| s.kind != Kind::Report) {
        if matches!(s.kind, Kind::Concepts | Kind::Models | Kind::Templates) {
            run.in_memory.push(s.name.clone());
            continue;
        }
        let (files, distinct, last_ran) = store.stage_facts(&s.name)?;
        let mut failed = 0;
        if s.kind.is_llm() {
            let mut models: BTreeMap<String, ModelCalls> = BTreeMap::new();
            let mut counted = std::collections::HashSet::new();
            let mut latest: Vec<(String, (String, String))> = store.latest_calls(&s.name)?.into_iter().collect();
            latest.sort();
            for (_, (status, record)) in latest {
                let Ok(r) = serde_json::from_str::<CallRecord>(&record) else {
                    continue;
                };
                let m = models.entry(r.model_requested.clone()).or_insert_with(|| ModelCalls {
                    stage: s.name.clone(),
                    model: r.model_requested.clone(),
                    ..Default::default()
                });
                if matches!(status.as_str(), "ok" | "imported" | "truncated") {
                    offline.of += 1;
                    if local(&r.provider) {
                        offline.answers += 1;
                        offline.served.extend(r.model_served.clone());
                        offline.named.push(r.model_requested.clone());
                    }
                    if let Some(served) = &r.model_served
                        && !m.served.contains(served)
                    {
                        m.served.push(served.clone());
                        m.served.sort();
                    }
                }
                match status.as_str() {
                    "ok" | "imported" => m.calls += 1,
                    "truncated" => {
                        m.calls += 1;
                        m.truncated += 1;
                    }
                    "empty" => {
                        m.calls += 1;
                        m.empty += 1;
                    }
                    _ => {
                        m.failed += 1;
                        failed += 1;
                        let cause = r.cause.map_or_else(|| status.clone(), |c| c.describe().to_owned());
                        *causes.entry(cause).or_default() += 1;
                    }
                }
                // tokens and cost once per call, however many tasks share its answer
                if counted.insert(r.key) {
                    m.prompt_tokens += r.prompt_tokens.unwrap_or(0);
                    m.completion_tokens += r.completion_tokens.unwrap_or(0);
                    match (r.cost_usd, r.cost_estimated_usd) {
                        (Some(c), _) => m.cost_recorded_usd += c,
                        (None, Some(c)) => m.cost_estimated_usd += c,
                        _ => {}
                    }
                }
            }
            run.calls.extend(models.into_values());
        }
        run.stages.push(StageRun {
            name: s.name.clone(),
            kind: s.kind.name().to_owned(),
            done: files,
            cached: files - distinct,
            failed,
            last_ran,
        });
    }
    run.failures = causes.into_iter().collect();
    if offline.answers > 0 {
        for v in [&mut offline.served, &mut offline.named] {
            v.sort();
            v.dedup();
        }
        run.offline = Some(offline);
    }
    Ok(run)
}

/// Plans a `report` stage: the page, from the summaries and what the store recorded.
pub fn plan_report(
    plan: &Plan,
    st: &Stage,
    done: &HashMap<String, Done>,
    store: &Store,
) -> Result<Vec<Artifact>, crate::engine::RunError> {
    let p = &plan.pipeline;
    let summaries = stage(p, st.str("summaries"));
    let output_of = |stage_name: &str, path: &str| -> Option<Hash> {
        let d = done.get(stage_name)?;
        let a = d.artifacts.iter().find(|a| a.path == path)?;
        d.outputs.get(&a.key).copied()
    };
    let scores_stage = stage(p, summaries.str("scores"));
    let scores = output_of(&scores_stage.name, scores_stage.str("output"));
    let tables: [Option<Hash>; 6] =
        std::array::from_fn(|i| output_of(&summaries.name, summaries.str(SUMMARY_TABLES[i])));
    let links = report_links(p, st);
    let run = run_summary(store, p)?;
    let hash_of = |h: &Option<Hash>| h.unwrap_or(Hash([0; 32]));
    let mut m = Manifest::new(Kind::Report.name())
        .param("links", format!("{links:?}"))
        .input(Input {
            name: "scores".into(),
            path: Some(scores_stage.str("output").to_owned()),
            hash: hash_of(&scores),
        });
    for (i, field) in SUMMARY_TABLES.iter().enumerate() {
        m = m.input(Input {
            name: (*field).to_owned(),
            path: Some(summaries.str(field).to_owned()),
            hash: hash_of(&tables[i]),
        });
    }
    let m = m.input(Input {
        name: "run".into(),
        path: None,
        hash: value_hash(&format!("{run:?}")),
    });
    let job = Job::new(JobKind::Report {
        scores,
        tables,
        links,
        run: Box::new(run),
    });
    Ok(vec![table_artifact(st, "output", 0, &job, m)])
}

fn ledger_items(done: &Done, tasks: impl Iterator<Item = (u32, String)>, n: u32, pattern: &str) -> Vec<LedgerItem> {
    let by_task: HashMap<&str, &Artifact> = done
        .artifacts
        .iter()
        .filter_map(|a| Some((a.task.as_deref()?, a)))
        .collect();
    let mut out = Vec::new();
    for (row, id) in tasks {
        for r in 1..=n {
            let task = replicate_id(&id, r, n);
            let Some(a) = by_task.get(task.as_str()) else { continue };
            out.push(LedgerItem {
                row,
                path: pattern.replace("{id}", &task),
                key: a.key,
                response: done.outputs.get(&a.key).copied(),
                task,
            });
        }
    }
    out
}

/// Plans a `cross_experiment` stage: the ledgers of every response, merged with what they hold.
pub fn plan_cross(plan: &Plan, st: &Stage, done: &HashMap<String, Done>) -> Result<(Vec<Artifact>, usize), Diag> {
    let p = &plan.pipeline;
    let (found, eval_resp, evals) = scores_input(plan, st, done);
    let Some((scores_artifact, scores)) = found else {
        return Ok((Vec::new(), 1));
    };
    let gen_resp = stage(p, st.str("generation_responses"));
    let gens = generation_tasks(plan, gen_resp);
    let gen_items = ledger_items(
        &done[&gen_resp.name],
        gens.rows.iter().enumerate().map(|(i, r)| (i as u32, r.id.clone())),
        gen_resp.int("replicates") as u32,
        gen_resp.str("output"),
    );
    let eval_items = ledger_items(
        &done[&eval_resp.name],
        evals.rows.iter().enumerate().map(|(i, r)| (i as u32, r.id.clone())),
        eval_resp.int("replicates") as u32,
        eval_resp.str("output"),
    );
    let inputs = [
        Input {
            name: "generation_responses".into(),
            path: Some(gen_resp.str("output").to_owned()),
            hash: value_hash(&(&gen_items, &gens.rows, &*gens.models)),
        },
        Input {
            name: "evaluation_responses".into(),
            path: Some(eval_resp.str("output").to_owned()),
            hash: value_hash(&(&eval_items, &evals.rows, &*evals.models)),
        },
        Input {
            name: "scores".into(),
            path: Some(scores_artifact.path.clone()),
            hash: scores,
        },
    ];
    let paths = [
        st.str(CROSS_TABLES[0]).to_owned(),
        st.str(CROSS_TABLES[1]).to_owned(),
        st.str(CROSS_TABLES[2]).to_owned(),
    ];
    let job = Job::new(JobKind::Cross {
        scores,
        gen_stage: gen_resp.name.clone(),
        eval_stage: eval_resp.name.clone(),
        gens: gens.clone(),
        evals: evals.clone(),
        gen_items,
        eval_items,
        paths,
    });
    let artifacts = CROSS_TABLES
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let mut m = Manifest::new(Kind::CrossExperiment.name()).param("table", field);
            for input in &inputs {
                m = m.input(input.clone());
            }
            table_artifact(st, field, i, &job, m)
        })
        .collect();
    Ok((artifacts, 0))
}

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

fn gen_ids(g: &GenTasks, row: usize, task: &str) -> GenIds {
    let r = &g.rows[row];
    let m = &g.models.models[r.model as usize];
    GenIds {
        task: if task.is_empty() { r.id.clone() } else { task.to_owned() },
        combo: g.combos.combos[r.combo as usize].id.clone(),
        template: g.templates.rows[r.template as usize].id.clone(),
        model_id: m.id.clone(),
        model_name: m.model.clone(),
    }
}

fn eval_ids(e: &EvalTasks, row: usize, task: &str) -> EvalIds {
    let r = &e.rows[row];
    let m = &e.models.models[r.model as usize];
    EvalIds {
        task: if task.is_empty() { r.id.clone() } else { task.to_owned() },
        generation: gen_ids(&e.generation, r.generation as usize, ""),
        template: e.templates.rows[r.template as usize].id.clone(),
        model_id: m.id.clone(),
        model_name: m.model.clone(),
    }
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

fn facts(store: &Store, stage: &str, items: &[LedgerItem]) -> Result<Vec<Facts>> {
    let latest = store.latest_calls(stage)?;
    items
        .iter()
        .map(|i| {
            Ok(match i.response {
                Some(out) => {
                    let record = store
                        .action_info(&i.key)?
                        .and_then(|s| serde_json::from_str::<CallRecord>(&s).ok());
                    Facts {
                        status: "success",
                        timestamp: record.as_ref().map(|r| r.timestamp.clone()).unwrap_or_default(),
                        size: store.blob_size(&out)?,
                        record,
                    }
                }
                None => match latest.get(&i.task) {
                    Some((status, record)) if status != "ok" && status != "not_started" => {
                        let record = serde_json::from_str::<CallRecord>(record).ok();
                        Facts {
                            status: "failed",
                            timestamp: record.as_ref().map(|r| r.timestamp.clone()).unwrap_or_default(),
                            size: None,
                            record,
                        }
                    }
                    _ => Facts::default(),
                },
            })
        })
        .collect()
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
