//! `report` (DayDreaming): one self-contained HTML page of the results: the run (per stage, and
//! the calls per model with tokens and cost, as the store recorded them), the headline tables,
//! charts, and the top essays, linked by relative paths to the files they came from.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;

use crate::engine::cx::{ComputeCx, PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, maybe, req};
use crate::engine::keys::{Hash, Input, Manifest};
use crate::engine::kind::{Artifact, Computed, Decl, Kind, Planned, Ref, Shape, Stage, Value, Work, value_hash};
use crate::engine::spec::Pipeline;
use crate::engine::store::Store;
use crate::kinds::summaries::{SummariesStage, TABLES, scores_of};
use crate::llm::record::CallRecord;
use crate::seed::report::{Links, ModelCalls, Offline, RunSummary, StageRun};

pub struct ReportKind;

const FIELDS: &[FieldDoc] = &[
    req(
        "summaries",
        FieldType::Stage,
        "the summaries stage whose tables the page shows",
    ),
    req("scores", FieldType::Stage, "the parsed-scores table"),
    maybe(
        "prompts",
        FieldType::Stage,
        "the generation prompts, linked from each essay",
    ),
    maybe(
        "responses",
        FieldType::Stage,
        "the generation answers, linked from each essay",
    ),
    maybe("essays", FieldType::Stage, "the parsed essays, linked from each score"),
    req(
        "output",
        FieldType::Output,
        "the page, one self-contained HTML file (links are relative to it)",
    ),
];

#[derive(Debug, PartialEq)]
pub struct ReportStage {
    summaries: Ref,
    scores: Ref,
    prompts: Option<Ref>,
    responses: Option<Ref>,
    essays: Option<Ref>,
    pub output: Decl,
    refs: Vec<Ref>,
}

impl Kind for ReportKind {
    fn name(&self) -> &'static str {
        "report"
    }

    fn about(&self) -> &'static str {
        "DayDreaming: one self-contained HTML page of the results, with charts"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        Ok(Arc::new(ReportStage {
            summaries: f.stage_ref("summaries", Shape::Of("summaries"))?,
            scores: f.stage_ref("scores", Shape::Table)?,
            prompts: f.opt_stage_ref("prompts", Shape::PerRow)?,
            responses: f.opt_stage_ref("responses", Shape::PerRow)?,
            essays: f.opt_stage_ref("essays", Shape::PerRow)?,
            output: f.output_file("output")?,
            refs: f.refs(),
        }))
    }
}

impl ReportStage {
    /// Where the page links to: the files of the stages it names (`None` for a stage that keeps
    /// its outputs in the store only).
    pub fn links(&self, p: &Pipeline) -> Links {
        let files = |r: &Option<Ref>| {
            let s = p.stage(&r.as_ref()?.stage)?;
            s.stage
                .outputs()
                .iter()
                .any(|d| d.what == crate::engine::kind::DeclKind::Pattern)
                .then_some(())?;
            s.stage.row_path("{id}")
        };
        Links {
            page: self.output.path.clone(),
            generation_prompt: files(&self.prompts),
            generation_response: files(&self.responses),
            essay: files(&self.essays),
        }
    }

    /// The paths of the summary tables the page reads, in `TABLES` order.
    pub fn table_paths(&self, p: &Pipeline) -> Vec<String> {
        p.stage(&self.summaries.stage)
            .and_then(|s| s.stage.as_any().downcast_ref::<SummariesStage>())
            .map(|s| s.tables.iter().map(|d| d.path.clone()).collect())
            .unwrap_or_default()
    }

    pub fn scores_path(&self, p: &Pipeline) -> Option<String> {
        p.stage(&self.scores.stage)?.stage.table().map(|t| t.0)
    }
}

/// What the store recorded of every stage but `except`: files, shared computations, failed
/// tasks, when it last did something, and the calls per model with their tokens and cost (and
/// whether the local model answered them). It changes only when a stage does work, so a run that
/// changes nothing leaves the page as is.
pub fn run_summary(store: &Store, p: &Pipeline, except: &str) -> Result<RunSummary> {
    let mut run = RunSummary::default();
    let mut causes: BTreeMap<String, usize> = BTreeMap::new();
    let mut offline = Offline::default();
    let local = |provider: &str| p.providers.iter().any(|x| x.local && x.name == provider);
    for s in p.stages.iter().filter(|s| s.name != except) {
        if s.stage.outputs().is_empty() {
            // read anew by every run: no file of its own to count
            run.in_memory.push(s.name.clone());
            continue;
        }
        let (files, distinct, last_ran) = store.stage_facts(&s.name)?;
        let mut failed = 0;
        if s.stage.paid() {
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
            kind: s.kind.to_owned(),
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

/// What `plan` keeps for `compute`.
struct Paging {
    scores: Option<Hash>,
    tables: Vec<Option<Hash>>,
    links: Links,
    run: RunSummary,
}

impl Stage for ReportStage {
    fn refs(&self) -> Vec<Ref> {
        self.refs.clone()
    }

    fn offers(&self) -> &'static [Shape] {
        &[]
    }

    fn outputs(&self) -> Vec<Decl> {
        vec![self.output.clone()]
    }

    fn reads_outputs(&self) -> bool {
        true
    }

    fn value(&self, _cx: &ValueCx) -> Result<Value, Diag> {
        Ok(Value {
            summary: "1 page".into(),
            ..Default::default()
        })
    }

    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag> {
        let (scores_path, scores) = scores_of(cx, &self.scores);
        let paths = self.table_paths(cx.pipeline);
        let tables: Vec<Option<Hash>> = paths
            .iter()
            .map(|p| {
                let d = cx.done_of(&self.summaries.stage)?;
                let a = d.artifacts.iter().find(|a| &a.path == p)?;
                d.outputs.get(&a.key).copied()
            })
            .collect();
        let links = self.links(cx.pipeline);
        let run = run_summary(cx.store, cx.pipeline, &cx.stage.name)
            .map_err(|e| Diag::new(format!("reading the store: {e:#}")))?;
        let zero = Hash([0; 32]);
        let mut m = Manifest::new("report")
            .param("links", format!("{links:?}"))
            .input(Input {
                name: "scores".into(),
                path: Some(scores_path),
                hash: scores.unwrap_or(zero),
            });
        for ((field, _), (p, h)) in TABLES.iter().zip(paths.iter().zip(&tables)) {
            m = m.input(Input {
                name: (*field).to_owned(),
                path: Some(p.clone()),
                hash: h.unwrap_or(zero),
            });
        }
        let m = m.input(Input {
            name: "run".into(),
            path: None,
            hash: value_hash(&format!("{run:?}")),
        });
        Ok(Planned {
            artifacts: vec![Artifact {
                path: self.output.path.clone(),
                task: None,
                key: m.key(),
                work: Work::Compute(0),
                materialize: true,
                group: None,
                manifest: Some(Arc::new(m)),
            }],
            summary: Some("1 page".into()),
            blocked: 0,
            data: Some(Arc::new(Paging {
                scores,
                tables,
                links,
                run,
            })),
        })
    }

    fn compute(&self, cx: &mut ComputeCx, _a: &Artifact) -> Result<Computed> {
        let p: &Paging = cx.planned.data().expect("paging");
        let text = |h: Option<Hash>| -> Result<Option<String>> {
            match h {
                None => Ok(None),
                Some(h) => Ok(cx.content(&h)?.map(|b| String::from_utf8_lossy(&b).into_owned())),
            }
        };
        let table = |i: usize| p.tables.get(i).copied().flatten();
        let inputs = crate::seed::report::ReportInputs {
            parsed_scores: text(p.scores)?,
            evaluator_agreement: text(table(0))?,
            generation_pivot: text(table(2))?,
            final_results: text(table(3))?,
            perfect_paths: text(table(4))?,
            links: p.links.clone(),
        };
        let page = crate::seed::report::render(&crate::seed::report::report_data(&inputs, p.run.clone()));
        Ok(Computed::of(page.into_bytes()))
    }
}
