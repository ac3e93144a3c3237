//! `summaries` (DayDreaming): the seed's six analyses of a parsed-scores table (evaluator
//! agreement, variance, the generation pivot, final results, perfect-score paths, the model x
//! template pivot), computed as pandas computes them. It reads any table with the
//! parsed-scores columns, and any rubric table with `score_range` (and `active`) columns.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::engine::cx::{ComputeCx, PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, req};
use crate::engine::keys::{Hash, Input, Manifest};
use crate::engine::kind::{Artifact, Computed, Decl, Kind, Planned, Ref, Shape, Stage, Value, Work, value_hash};
use crate::engine::table::parse_bool;
use crate::seed::parsing::ScoreRange;
use crate::seed::summaries::PARSED_SCORES_COLUMNS;

pub struct SummariesKind;

/// The six tables: (field in pipeline.yaml, what it is).
pub const TABLES: [(&str, &str); 6] = [
    ("evaluator_agreement", "evaluator_agreement_analysis.csv"),
    ("variance", "comprehensive_variance_analysis.csv"),
    ("generation_pivot", "generation_scores_pivot.csv (with sum_scores)"),
    ("final_results", "final_results.csv"),
    ("perfect_paths", "perfect_score_paths.csv"),
    ("model_template_pivot", "evaluation_model_template_pivot.csv"),
];

const FIELDS: &[FieldDoc] = &[
    req(
        "scores",
        FieldType::Stage,
        "a table with the parsed_scores columns (a collect stage)",
    ),
    req(
        "rubrics",
        FieldType::Stage,
        "the evaluation templates: rows with ids, `score_range` (MIN-MAX, empty 0-10; its top is \"perfect\") and `active`",
    ),
    req(
        "responses",
        FieldType::Stage,
        "the per-row stage whose files perfect_score_paths names (the generation answers)",
    ),
    req(
        "evaluator_agreement",
        FieldType::Output,
        "evaluator_agreement_analysis.csv",
    ),
    req("variance", FieldType::Output, "comprehensive_variance_analysis.csv"),
    req(
        "generation_pivot",
        FieldType::Output,
        "generation_scores_pivot.csv, with sum_scores",
    ),
    req("final_results", FieldType::Output, "final_results.csv"),
    req("perfect_paths", FieldType::Output, "perfect_score_paths.csv"),
    req(
        "model_template_pivot",
        FieldType::Output,
        "evaluation_model_template_pivot.csv",
    ),
];

#[derive(Debug, PartialEq)]
pub struct SummariesStage {
    scores: Ref,
    rubrics: Ref,
    responses: Ref,
    pub tables: Vec<Decl>,
    refs: Vec<Ref>,
}

impl Kind for SummariesKind {
    fn name(&self) -> &'static str {
        "summaries"
    }

    fn about(&self) -> &'static str {
        "DayDreaming: the seed's six analyses and summaries of a parsed-scores table"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        let scores = f.stage_ref("scores", Shape::Table)?;
        let rubrics = f.stage_ref("rubrics", Shape::Rows)?;
        let responses = f.stage_ref("responses", Shape::PerRow)?;
        let mut tables = Vec::new();
        for (field, _) in TABLES {
            tables.push(f.output_file(field)?);
        }
        Ok(Arc::new(SummariesStage {
            scores,
            rubrics,
            responses,
            tables,
            refs: f.refs(),
        }))
    }
}

/// The parsed-scores table a stage reads: its path and, once made, its content hash.
pub fn scores_of(cx: &PlanCx, scores: &Ref) -> (String, Option<Hash>) {
    let path = cx.spec_of(&scores.stage).stage.table().map(|t| t.0).unwrap_or_default();
    let hash = cx.done_of(&scores.stage).and_then(|d| {
        let a = d.artifacts.iter().find(|a| a.path == path)?;
        d.outputs.get(&a.key).copied()
    });
    (path, hash)
}

/// Checks that a table stage has the parsed-scores columns.
pub fn check_scores(cx: &PlanCx, scores: &Ref) -> Result<(), Diag> {
    let cols = cx.spec_of(&scores.stage).stage.table().map(|t| t.1).unwrap_or_default();
    let missing: Vec<&str> = PARSED_SCORES_COLUMNS
        .iter()
        .copied()
        .filter(|c| !cols.iter().any(|x| x == c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(cx
        .diag(
            format!(
                "stage `{}` reads `{}` as parsed scores, but its table lacks the columns {}",
                cx.stage.name,
                scores.stage,
                missing.join(", ")
            ),
            scores.loc,
        )
        .help(format!(
            "a parsed-scores table has the columns {}",
            PARSED_SCORES_COLUMNS.join(", ")
        )))
}

/// What `plan` keeps for `compute`.
struct Summarizing {
    scores: Hash,
    perfect: BTreeMap<String, f64>,
    any_active: bool,
    generation_pattern: String,
}

impl SummariesStage {
    /// The stages it reads: the parsed scores, the rubrics, the generation answers.
    pub fn reads(&self) -> (&str, &str, &str) {
        (&self.scores.stage, &self.rubrics.stage, &self.responses.stage)
    }

    fn rubrics(&self, cx: &PlanCx) -> Result<(BTreeMap<String, f64>, bool), Diag> {
        let rows = cx.value_of(&self.rubrics.stage).rows.clone().expect("rows");
        let range = rows.column("score_range");
        let active = rows.column("active");
        let mut perfect = BTreeMap::new();
        let mut any_active = active.is_none() && !rows.is_empty();
        for r in 0..rows.len() {
            let text = range.map_or("", |c| rows.get(r, c).trim());
            let top = if text.is_empty() {
                ScoreRange::SEED
            } else {
                ScoreRange::parse(text).map_err(|e| {
                    let place = rows.place(r).map_or(String::new(), |(f, l)| format!(" ({f} line {l})"));
                    cx.diag(
                        format!("bad score_range `{text}` of `{}`{place}: {e}", rows.id(r)),
                        self.rubrics.loc,
                    )
                    .help("write the inclusive range as MIN-MAX, e.g. 0-9 (empty: 0-10)")
                })?
            };
            perfect.insert(rows.id(r).to_owned(), top.max as f64);
            if let Some(c) = active {
                any_active |= parse_bool(rows.get(r, c)).unwrap_or(false);
            }
        }
        Ok((perfect, any_active))
    }
}

impl Stage for SummariesStage {
    fn refs(&self) -> Vec<Ref> {
        self.refs.clone()
    }

    fn offers(&self) -> &'static [Shape] {
        &[Shape::Of("summaries")]
    }

    fn outputs(&self) -> Vec<Decl> {
        self.tables.clone()
    }

    fn reads_outputs(&self) -> bool {
        true
    }

    fn value(&self, _cx: &ValueCx) -> Result<Value, Diag> {
        Ok(Value {
            summary: "6 tables".into(),
            ..Default::default()
        })
    }

    fn check(&self, cx: &PlanCx) -> Result<(), Diag> {
        check_scores(cx, &self.scores)?;
        self.rubrics(cx).map(|_| ())
    }

    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag> {
        let (scores_path, scores) = scores_of(cx, &self.scores);
        let Some(scores) = scores else {
            return Ok(Planned {
                blocked: 1,
                summary: Some("6 tables".into()),
                ..Default::default()
            });
        };
        let (perfect, any_active) = self.rubrics(cx)?;
        let generation_pattern = cx
            .spec_of(&self.responses.stage)
            .stage
            .row_path("{id}")
            .unwrap_or_default();
        let ranges = Input {
            name: "score_ranges".into(),
            path: None,
            hash: value_hash(&(
                perfect.iter().map(|(k, v)| (k, v.to_bits())).collect::<Vec<_>>(),
                any_active,
            )),
        };
        let artifacts = TABLES
            .iter()
            .zip(&self.tables)
            .enumerate()
            .map(|(i, ((field, _), out))| {
                let m = Manifest::new("summaries")
                    .param("table", field)
                    .param("generation_responses", &generation_pattern)
                    .input(Input {
                        name: "scores".into(),
                        path: Some(scores_path.clone()),
                        hash: scores,
                    })
                    .input(ranges.clone());
                Artifact {
                    path: out.path.clone(),
                    task: None,
                    key: m.key(),
                    work: Work::Compute(i as u32),
                    materialize: true,
                    group: None,
                    manifest: Some(Arc::new(m)),
                }
            })
            .collect();
        Ok(Planned {
            artifacts,
            summary: Some("6 tables".into()),
            blocked: 0,
            data: Some(Arc::new(Summarizing {
                scores,
                perfect,
                any_active,
                generation_pattern,
            })),
        })
    }

    fn compute(&self, cx: &mut ComputeCx, a: &Artifact) -> Result<Computed> {
        let s: &Summarizing = cx.planned.data().expect("summarizing");
        let Work::Compute(i) = a.work else {
            unreachable!("tables are computed")
        };
        let scores = s.scores;
        let text = cx.content(&scores)?.context("the store lost the parsed scores")?;
        let tables = cx.scratch(|| None::<[String; 6]>);
        if tables.is_none() {
            let rows = crate::seed::summaries::read_parsed_scores(&String::from_utf8_lossy(&text))
                .map_err(anyhow::Error::msg)?;
            *tables = Some(crate::seed::summaries::summary_tables(
                &rows,
                &s.perfect,
                s.any_active,
                &s.generation_pattern,
            ));
        }
        Ok(Computed::of(
            tables.as_ref().expect("made")[i as usize].clone().into_bytes(),
        ))
    }
}
