//! What the calls of a run would cost before any is made: the `--dry-run` table, the plan printed
//! before the first call, and the spending guard (`settings.confirm_above_usd`).
//!
//! Calls whose prompt exists are estimated from the prompt (about 4 characters a token) and
//! `max_tokens` out. Calls whose prompt waits for upstream answers (an evaluation of a generation
//! not made yet) cannot be keyed, so they are counted from the task tables and bounded: the
//! template plus the longest answer the upstream stage may return (its `max_tokens`).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::calls::{PendingCall, estimate_tokens};
use crate::db::StageValue;
use crate::diag::Diag;
use crate::engine::{Plan, Project};
use crate::llmstage::{Choice, Done};
use crate::spec::{Kind, Stage};

/// The calls of one stage to one model.
#[derive(Debug, Default, Clone)]
pub struct ModelEstimate {
    /// Calls to make, those waiting for upstream answers included.
    pub calls: usize,
    /// Of `calls`, those whose prompt waits for upstream answers (their tokens are an upper bound).
    pub waiting: usize,
    pub input_tokens: u64,
    /// max_tokens summed: the most the answers can hold.
    pub output_tokens: u64,
    /// The most the calls can cost; `None` when the model has no price.
    pub cost: Option<f64>,
    /// Prompts longer than the model's context: they fail without a request (not in `calls`).
    pub over_context: usize,
    pub context: Option<u64>,
}

/// What the calls a stage still has to make would cost, per model.
#[derive(Debug, Default, Clone)]
pub struct Estimate {
    pub per_model: BTreeMap<String, ModelEstimate>,
    /// Whether the calls are paid (a remote provider), rather than made on the local model.
    pub paid: bool,
}

impl Estimate {
    pub fn calls(&self) -> usize {
        self.per_model.values().map(|m| m.calls).sum()
    }

    pub fn waiting(&self) -> usize {
        self.per_model.values().map(|m| m.waiting).sum()
    }

    /// The most these calls can cost, and how many of them have no price (not counted).
    pub fn worst_cost(&self) -> (f64, usize) {
        if !self.paid {
            return (0.0, 0);
        }
        self.per_model
            .values()
            .fold((0.0, 0), |(usd, unpriced), m| match m.cost {
                Some(c) => (usd + c, unpriced),
                None => (usd, unpriced + m.calls),
            })
    }

    fn add(&mut self, model: &str, input: u64, output: u64, price: Option<(f64, f64)>, waiting: bool) {
        let m = self.per_model.entry(model.to_owned()).or_insert_with(|| ModelEstimate {
            cost: Some(0.0),
            ..Default::default()
        });
        m.calls += 1;
        m.waiting += usize::from(waiting);
        m.input_tokens += input;
        m.output_tokens += output;
        m.cost = match (m.cost, price) {
            (Some(sum), Some((i, o))) => Some(sum + (input as f64 * i + output as f64 * o) / 1e6),
            _ => None,
        };
    }
}

/// The estimate of calls whose prompts are known.
pub fn of_calls(calls: &[PendingCall], paid: bool) -> Estimate {
    let mut e = Estimate {
        paid,
        ..Default::default()
    };
    for c in calls {
        if c.over_context().is_some() {
            let m = e
                .per_model
                .entry(c.spec.model.clone())
                .or_insert_with(|| ModelEstimate {
                    cost: Some(0.0),
                    ..Default::default()
                });
            m.over_context += 1;
            m.context = c.context;
            continue;
        }
        e.add(
            &c.spec.model,
            estimate_tokens(&c.spec.prompt),
            c.spec.max_tokens,
            c.price,
            false,
        );
    }
    e
}

/// Adds to `e` the calls of the `evaluation_response` stage `stage` whose prompts wait for
/// generations not made yet: evaluation tasks that `done` holds no prompt for. Returns how many
/// tasks wait. Calls are counted once per distinct (served model, generation call, template):
/// tasks that will ask the very same call share it, as the local model's do.
pub fn add_waiting(
    e: &mut Estimate,
    project: &Project,
    plan: &Plan,
    stage: &Stage,
    choice: &Choice,
    choices: &HashMap<String, Choice>,
    done: &HashMap<String, Done>,
) -> Result<usize, Diag> {
    if stage.kind != Kind::EvaluationResponse {
        return Ok(0);
    }
    let prompts = plan.pipeline.stage(stage.str("prompts")).expect("validated reference");
    let Some(StageValue::EvalTasks(evals)) = plan
        .stages
        .iter()
        .find(|s| s.stage.name == prompts.str("tasks"))
        .map(|s| &s.value)
    else {
        return Ok(0);
    };
    let planned: HashSet<&str> = done
        .get(&prompts.name)
        .map(|d| d.artifacts.iter().filter_map(|a| a.task.as_deref()).collect())
        .unwrap_or_default();
    let essays = plan
        .pipeline
        .stage(prompts.str("responses"))
        .expect("validated reference");
    let generation = crate::results::raw_generation(&plan.pipeline, essays);
    // the call each generation task makes: tasks sharing one share its answer, hence their evaluations
    let generation_calls: HashMap<&str, crate::key::Hash> = done
        .get(&generation.name)
        .map(|d| {
            d.artifacts
                .iter()
                .filter_map(|a| Some((a.task.as_deref()?, a.key)))
                .collect()
        })
        .unwrap_or_default();
    let generation_replicates = generation.int("replicates") as u32;
    let answer_max = generation.int("max_tokens") as u64;
    let answer_max = choices
        .get(&generation.name)
        .map_or(answer_max, |c| c.max_tokens(answer_max));
    let replicates = stage.int("replicates") as usize;
    let max_tokens = choice.max_tokens(stage.int("max_tokens") as u64);
    let mut template_tokens: HashMap<u32, u64> = HashMap::new();
    let mut seen = HashSet::new();
    let mut tasks = 0;
    for row in &evals.rows {
        if planned.contains(row.id.as_str()) {
            continue;
        }
        tasks += replicates;
        let model = &evals.models.models[row.model as usize].model;
        let served = choice.local_model.as_deref().unwrap_or(model);
        let gen_id = &evals.generation.rows[row.generation as usize].id;
        let answer = generation_calls
            .get(crate::llmstage::replicate_id(gen_id, 1, generation_replicates).as_str())
            .ok_or(row.generation);
        if !seen.insert((served, answer, row.template)) {
            continue;
        }
        let template = match template_tokens.get(&row.template) {
            Some(&t) => t,
            None => {
                let path = &evals.templates.rows[row.template as usize].path;
                let text = crate::db::template_text(&project.db, crate::db::Db::file(&project.db, path)).clone()?;
                let t = estimate_tokens(&text);
                template_tokens.insert(row.template, t);
                t
            }
        };
        let price = if choice.provider.local {
            Some((0.0, 0.0))
        } else {
            evals.models.price_of(model)
        };
        for _ in 0..replicates {
            e.add(model, template + answer_max, max_tokens, price, true);
        }
    }
    Ok(tasks)
}

/// A run the spending guard stopped before its first call.
pub struct Held {
    /// The most the run's paid calls can cost (calls of unpriced models not counted).
    pub worst: f64,
    /// Paid calls whose model has no price.
    pub unpriced: usize,
    /// `settings.confirm_above_usd`.
    pub threshold: f64,
    /// The budget of the run (`--max-cost` or `settings.max_cost_usd`), if any.
    pub budget: Option<f64>,
    /// A dry run of what is left of the run: the table to show.
    pub preview: Box<crate::engine::RunReport>,
}

/// The spending guard, checked once a run, before its first call: prices the whole run with a
/// dry run (downstream calls included, as upper bounds) and holds it when the most it could
/// spend passes `settings.confirm_above_usd`. A budget below the worst case caps what can be
/// spent; `--max-cost` at or above the worst case is consent, as `--yes` is.
pub fn guard(
    project: &Project,
    store: &mut crate::store::Store,
    opts: &crate::engine::RunOptions,
    settings: &crate::spec::Settings,
) -> Result<Option<Held>, crate::engine::RunError> {
    let mut preview = crate::engine::run(
        project,
        store,
        &crate::engine::RunOptions {
            targets: opts.targets.clone(),
            dry_run: true,
            refresh: opts.refresh.clone(),
            max_cost: opts.max_cost,
            provider: opts.provider.clone(),
            session: opts.session,
            ..Default::default()
        },
    )?;
    preview.plan = None;
    let (worst, unpriced) = preview.worst_cost();
    let budget = opts.max_cost.or(settings.max_cost_usd.map(|c| c.0));
    let most = budget.map_or(worst, |b| b.min(worst));
    let threshold = settings.confirm_above_usd.0;
    if most <= threshold || opts.max_cost.is_some_and(|m| m >= worst) {
        return Ok(None);
    }
    Ok(Some(Held {
        worst,
        unpriced,
        threshold,
        budget,
        preview: Box::new(preview),
    }))
}
