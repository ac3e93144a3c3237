//! `ledgers` (DayDreaming): the cross-experiment tables. One row per LLM answer ever recorded
//! (generation and evaluation), kept across experiments: rows of tasks no longer in the pipeline
//! stay, a re-run replaces a task's row. Also every recorded evaluation with its parsed score,
//! and the first valid score of each essay under each evaluation template.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::engine::cx::{ComputeCx, PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, req};
use crate::engine::keys::{Hash, Input, Manifest};
use crate::engine::kind::{Artifact, Decl, Done, Kind, Planned, Ref, Shape, Stage, Value, Work, value_hash};
use crate::engine::rows::Rows;
use crate::engine::store::Store;
use crate::kinds::summaries::{check_scores, scores_of};
use crate::llm::executor::CallRecord;
use crate::seed::ledgers::{EvalIds, Facts, GenIds};

pub struct LedgersKind;

pub const TABLES: [&str; 4] = [
    "generation_results",
    "evaluation_results",
    "filtered_evaluation_results",
    "template_version_comparison",
];

const FIELDS: &[FieldDoc] = &[
    req(
        "generation_responses",
        FieldType::Stage,
        "the llm stage of the generations (rows with generation_task_id, combo_id, generation_template, generation_model, generation_model_name)",
    ),
    req(
        "evaluation_responses",
        FieldType::Stage,
        "the llm stage of the evaluations (rows with evaluation_task_id, generation_task_id, evaluation_template, evaluation_model, evaluation_model_name)",
    ),
    req("scores", FieldType::Stage, "the parsed-scores table"),
    req(
        "generation_results",
        FieldType::Output,
        "one row per generation answer ever recorded",
    ),
    req(
        "evaluation_results",
        FieldType::Output,
        "one row per evaluation answer ever recorded",
    ),
    req(
        "filtered_evaluation_results",
        FieldType::Output,
        "every recorded evaluation with its parsed score, joined through the task ids",
    ),
    req(
        "template_version_comparison",
        FieldType::Output,
        "the first valid score of each essay under each evaluation template",
    ),
];

const GEN_COLUMNS: [&str; 4] = [
    "combo_id",
    "generation_template",
    "generation_model",
    "generation_model_name",
];
const EVAL_COLUMNS: [&str; 4] = [
    "generation_task_id",
    "evaluation_template",
    "evaluation_model",
    "evaluation_model_name",
];

#[derive(Debug, PartialEq)]
pub struct LedgersStage {
    generations: Ref,
    evaluations: Ref,
    scores: Ref,
    pub tables: Vec<Decl>,
    refs: Vec<Ref>,
}

impl Kind for LedgersKind {
    fn name(&self) -> &'static str {
        "ledgers"
    }

    fn about(&self) -> &'static str {
        "DayDreaming: the cross-experiment ledgers of every answer ever recorded, with scores"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        let generations = f.stage_ref("generation_responses", Shape::PerRow)?;
        let evaluations = f.stage_ref("evaluation_responses", Shape::PerRow)?;
        let scores = f.stage_ref("scores", Shape::Table)?;
        let mut tables = Vec::new();
        for t in TABLES {
            tables.push(f.output_file(t)?);
        }
        Ok(Arc::new(LedgersStage {
            generations,
            evaluations,
            scores,
            tables,
            refs: f.refs(),
        }))
    }
}

/// One answer of an LLM stage: its row, id, file, call key and response (when it exists).
#[derive(Clone, Debug, Hash)]
struct Item {
    row: u32,
    task: String,
    path: String,
    key: Hash,
    response: Option<Hash>,
}

fn items(rows: &Rows, done: &Done, stage: &dyn Stage) -> Vec<Item> {
    (0..rows.len())
        .filter_map(|r| {
            let id = rows.id(r);
            let (a, response) = done.of_task(id)?;
            Some(Item {
                row: r as u32,
                task: id.to_owned(),
                path: stage.row_path(id).unwrap_or_else(|| a.path.clone()),
                key: a.key,
                response,
            })
        })
        .collect()
}

/// What `plan` keeps for `merge`.
struct Keeping {
    gen_rows: Arc<Rows>,
    eval_rows: Arc<Rows>,
    gen_items: Vec<Item>,
    eval_items: Vec<Item>,
    gen_stage: String,
    eval_stage: String,
    scores: Hash,
    paths: [String; 3],
}

impl LedgersStage {
    /// The llm stages of the generations and of the evaluations.
    pub fn responses(&self) -> (&str, &str) {
        (&self.generations.stage, &self.evaluations.stage)
    }
}

fn require(cx: &PlanCx, rows: &Rows, what: &Ref, cols: &[&str]) -> Result<(), Diag> {
    let missing: Vec<&str> = cols.iter().copied().filter(|c| rows.column(c).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(cx
        .diag(
            format!(
                "the rows of `{}` lack the columns {} that the ledgers record",
                what.stage,
                missing.join(", ")
            ),
            what.loc,
        )
        .help(format!("their columns are: {}", rows.names.join(", "))))
}

fn facts(store: &Store, stage: &str, items: &[Item]) -> Result<Vec<Facts>> {
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

fn col(rows: &Rows, r: usize, name: &str) -> String {
    rows.column(name)
        .map_or_else(String::new, |c| rows.get(r, c).to_owned())
}

fn gen_ids(rows: &Rows, r: usize, task: &str) -> GenIds {
    GenIds {
        task: task.to_owned(),
        combo: col(rows, r, "combo_id"),
        template: col(rows, r, "generation_template"),
        model_id: col(rows, r, "generation_model"),
        model_name: col(rows, r, "generation_model_name"),
    }
}

impl Stage for LedgersStage {
    fn refs(&self) -> Vec<Ref> {
        self.refs.clone()
    }

    fn offers(&self) -> &'static [Shape] {
        &[]
    }

    fn outputs(&self) -> Vec<Decl> {
        self.tables.clone()
    }

    fn reads_outputs(&self) -> bool {
        true
    }

    fn kept_by_clean(&self) -> Vec<String> {
        self.tables[..3].iter().map(|d| d.path.clone()).collect()
    }

    fn value(&self, _cx: &ValueCx) -> Result<Value, Diag> {
        Ok(Value {
            summary: "4 ledgers".into(),
            ..Default::default()
        })
    }

    fn check(&self, cx: &PlanCx) -> Result<(), Diag> {
        check_scores(cx, &self.scores)?;
        let gen_rows = cx.value_of(&self.generations.stage).rows.clone().expect("rows");
        let eval_rows = cx.value_of(&self.evaluations.stage).rows.clone().expect("rows");
        require(cx, &gen_rows, &self.generations, &GEN_COLUMNS)?;
        require(cx, &eval_rows, &self.evaluations, &EVAL_COLUMNS)
    }

    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag> {
        let (scores_path, scores) = scores_of(cx, &self.scores);
        let Some(scores) = scores else {
            return Ok(Planned {
                blocked: 1,
                summary: Some("4 ledgers".into()),
                ..Default::default()
            });
        };
        let gen_rows = cx.value_of(&self.generations.stage).rows.clone().expect("rows");
        let eval_rows = cx.value_of(&self.evaluations.stage).rows.clone().expect("rows");
        let gen_spec = cx.spec_of(&self.generations.stage);
        let eval_spec = cx.spec_of(&self.evaluations.stage);
        let gen_items = items(
            &gen_rows,
            cx.done_of(&gen_spec.name).expect("made before"),
            &*gen_spec.stage,
        );
        let eval_items = items(
            &eval_rows,
            cx.done_of(&eval_spec.name).expect("made before"),
            &*eval_spec.stage,
        );
        let inputs = [
            Input {
                name: "generation_responses".into(),
                path: gen_spec.stage.row_path("{id}"),
                hash: value_hash(&(&gen_items, &*gen_rows)),
            },
            Input {
                name: "evaluation_responses".into(),
                path: eval_spec.stage.row_path("{id}"),
                hash: value_hash(&(&eval_items, &*eval_rows)),
            },
            Input {
                name: "scores".into(),
                path: Some(scores_path),
                hash: scores,
            },
        ];
        let artifacts = TABLES
            .iter()
            .zip(&self.tables)
            .enumerate()
            .map(|(i, (t, out))| {
                let mut m = Manifest::new("ledgers").param("table", t);
                for input in &inputs {
                    m = m.input(input.clone());
                }
                Artifact {
                    path: out.path.clone(),
                    task: None,
                    key: m.key(),
                    work: Work::Merge(i as u32),
                    materialize: true,
                    group: None,
                    manifest: Some(Arc::new(m)),
                }
            })
            .collect();
        Ok(Planned {
            artifacts,
            summary: Some("4 ledgers".into()),
            blocked: 0,
            data: Some(Arc::new(Keeping {
                gen_rows,
                eval_rows,
                gen_items,
                eval_items,
                gen_stage: gen_spec.name.clone(),
                eval_stage: eval_spec.name.clone(),
                scores,
                paths: [
                    self.tables[0].path.clone(),
                    self.tables[1].path.clone(),
                    self.tables[2].path.clone(),
                ],
            })),
        })
    }

    fn merge(&self, cx: &mut ComputeCx, a: &Artifact, existing: Option<&str>) -> Result<Option<String>> {
        let Work::Merge(i) = a.work else {
            unreachable!("ledgers merge")
        };
        let i = i as usize;
        let k: &Keeping = cx.planned.data().expect("keeping");
        let (root, store, done) = (cx.root, cx.store, cx.done);
        let rows = cx.scratch(|| None::<Rows4>);
        if rows.is_none() {
            *rows = Some(rows_of(k, store, done)?);
        }
        let r = rows.as_mut().expect("made");
        let read = |p: &str| -> Result<Option<String>> {
            let full = root.join(p);
            match std::fs::read(&full) {
                Ok(b) => Ok(Some(
                    crate::engine::text::decode(b, &full).with_context(|| format!("reading {p}"))?,
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(anyhow::Error::new(e).context(format!("reading {p}"))),
            }
        };
        // each ledger merges into what it holds (the engine gives its own text); the pivot is
        // made from the filtered ledger as merged in this run
        let mut old = [read(&k.paths[0])?, read(&k.paths[1])?, read(&k.paths[2])?];
        if i < 3 {
            old[i] = existing.map(str::to_owned);
        } else if let Some(f) = &r.filtered {
            old[2] = Some(f.clone());
        }
        let t = crate::seed::ledgers::ledgers([&old[0], &old[1], &old[2]], &r.gens, &r.evals, &r.scores)?;
        if i == 2 {
            r.filtered = Some(t[2].clone());
        }
        Ok(Some(t[i].clone()))
    }
}

/// This experiment's rows of the ledgers, made once per run.
struct Rows4 {
    gens: Vec<(GenIds, String, Facts)>,
    evals: Vec<(EvalIds, String, Facts)>,
    scores: Vec<crate::seed::summaries::ScoreRow>,
    /// The filtered ledger as merged in this run.
    filtered: Option<String>,
}

fn rows_of(k: &Keeping, store: &Store, done: &std::collections::HashMap<String, Done>) -> Result<Rows4> {
    let text =
        crate::engine::cx::content_of(store, Some(done), &k.scores)?.context("the store lost the parsed scores")?;
    let scores =
        crate::seed::summaries::read_parsed_scores(&String::from_utf8_lossy(&text)).map_err(anyhow::Error::msg)?;
    let gen_facts = facts(store, &k.gen_stage, &k.gen_items)?;
    let eval_facts = facts(store, &k.eval_stage, &k.eval_items)?;
    let gens: Vec<(GenIds, String, Facts)> = k
        .gen_items
        .iter()
        .zip(gen_facts)
        .map(|(i, f)| (gen_ids(&k.gen_rows, i.row as usize, &i.task), i.path.clone(), f))
        .collect();
    // the generation task of an evaluation: the first generation row of that task id
    let task_col = k.gen_rows.column("generation_task_id");
    let mut first_row: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for r in 0..k.gen_rows.len() {
        let t = task_col.map_or(k.gen_rows.id(r), |c| k.gen_rows.get(r, c));
        first_row.entry(t).or_insert(r);
    }
    let evals = k
        .eval_items
        .iter()
        .zip(eval_facts)
        .map(|(i, f)| {
            let r = i.row as usize;
            let gen_task = col(&k.eval_rows, r, "generation_task_id");
            let generation = match first_row.get(gen_task.as_str()) {
                Some(&g) => gen_ids(&k.gen_rows, g, &gen_task),
                None => GenIds {
                    task: gen_task.clone(),
                    ..Default::default()
                },
            };
            let ids = EvalIds {
                task: i.task.clone(),
                generation,
                template: col(&k.eval_rows, r, "evaluation_template"),
                model_id: col(&k.eval_rows, r, "evaluation_model"),
                model_name: col(&k.eval_rows, r, "evaluation_model_name"),
            };
            (ids, i.path.clone(), f)
        })
        .collect();
    Ok(Rows4 {
        gens,
        evals,
        scores,
        filtered: None,
    })
}
