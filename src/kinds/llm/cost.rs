//! What the calls of an llm stage cost: the prices and context lengths of the models table, the
//! dry run's estimate (and the spending guard's), and the run summary's lines of what was made.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;

use super::{Calls, LlmRun, LlmStage, plural};
use crate::engine::cx::PlanCx;
use crate::engine::diag::Diag;
use crate::engine::keys::{Hash, Manifest};
use crate::engine::kind::{Artifact, Detail, Planned, Ref, Work};
use crate::llm::executor::{CallsSummary, estimate_tokens};

#[derive(Default)]
pub(super) struct ModelFacts {
    pub(super) prices: HashMap<String, (f64, f64)>,
    pub(super) contexts: HashMap<String, u64>,
}

pub(super) fn model_facts(cx: &PlanCx, models: &Ref) -> Result<ModelFacts, Diag> {
    let mut facts = ModelFacts {
        prices: prices(cx, models)?,
        contexts: HashMap::new(),
    };
    let rows = cx.value_of(&models.stage).rows.clone().expect("a rows stage");
    if let (Some(m), Some(c)) = (rows.column("model"), rows.column("context_tokens")) {
        for r in 0..rows.len() {
            let v = rows.get(r, c).trim();
            if v.is_empty() {
                continue;
            }
            let n = v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                let place = rows
                    .place(r)
                    .map_or(String::new(), |(f, l)| format!(" in {f} line {l}"));
                Diag::new(format!(
                    "`context_tokens` of model `{}`{place} is `{v}`, not a number of tokens",
                    rows.id(r)
                ))
                .help("give the model's context length in tokens, e.g. 200000; leave the cell empty when unknown")
            })?;
            facts.contexts.insert(rows.get(r, m).trim().to_owned(), n);
        }
    }
    Ok(facts)
}

/// The price table of a `models:` stage: USD per million tokens (input, output) by model name.
fn prices(cx: &PlanCx, models: &Ref) -> Result<HashMap<String, (f64, f64)>, Diag> {
    let rows = cx.value_of(&models.stage).rows.clone().expect("a rows stage");
    let (Some(m), pin, pout) = (
        rows.column("model"),
        rows.column("input_usd_per_mtok"),
        rows.column("output_usd_per_mtok"),
    ) else {
        return Err(cx
            .diag(
                format!("`models: {}`: its rows have no `model` column", models.stage),
                models.loc,
            )
            .help("the models table names each provider model in a `model` column"));
    };
    let mut out = HashMap::new();
    let (Some(pin), Some(pout)) = (pin, pout) else {
        return Ok(out);
    };
    for r in 0..rows.len() {
        let parse = |c: usize| -> Result<Option<f64>, Diag> {
            let v = rows.get(r, c).trim();
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .map(Some)
                .ok_or_else(|| {
                    let place = rows
                        .place(r)
                        .map_or(String::new(), |(f, l)| format!(" in {f} line {l}"));
                    let d = Diag::new(format!(
                        "`{}` of model `{}`{place} is `{v}`, not a price",
                        rows.names[c],
                        rows.id(r)
                    ))
                    .help("prices are USD per million tokens, e.g. 0.30; leave the cell empty when unknown");
                    match rows.place(r) {
                        Some((f, l)) => d.in_file(f).at(None, l, 0),
                        None => d,
                    }
                })
        };
        if let (Some(i), Some(o)) = (parse(pin)?, parse(pout)?) {
            out.insert(rows.get(r, m).trim().to_owned(), (i, o));
        }
    }
    Ok(out)
}

/// What the calls of one model would cost.
#[derive(Default)]
struct ModelEstimate {
    calls: usize,
    cached: usize,
    /// Of `calls`, those whose prompt waits for upstream outputs (tokens are an upper bound).
    waiting: usize,
    input_tokens: u64,
    /// `None` once a call has no price.
    cost: Option<f64>,
    over_context: usize,
    context: Option<u64>,
}

impl ModelEstimate {
    fn add(&mut self, input: u64, output: u64, price: Option<(f64, f64)>, waiting: bool) {
        if self.calls == 0 {
            self.cost = Some(0.0);
        }
        self.calls += 1;
        self.waiting += usize::from(waiting);
        self.input_tokens += input;
        self.cost = match (self.cost, price) {
            (Some(sum), Some((i, o))) => Some(sum + (input as f64 * i + output as f64 * o) / 1e6),
            _ => None,
        };
    }
}

impl LlmStage {
    pub(super) fn estimate_calls(&self, cx: &PlanCx, planned: &Planned, pending: &[&Artifact]) -> Result<Detail> {
        let calls: &Calls = planned.data().expect("calls");
        let choice = self.choice(cx.run, &cx.stage.name);
        let price = |model: &str| {
            if choice.provider.local {
                Some((0.0, 0.0))
            } else {
                calls.models.prices.get(model).copied()
            }
        };
        let context = |model: &str| {
            (!choice.provider.local)
                .then(|| calls.models.contexts.get(model).copied())
                .flatten()
        };
        let mut per_model: BTreeMap<String, ModelEstimate> = BTreeMap::new();
        let mut pending_keys: std::collections::HashSet<Hash> = pending.iter().map(|a| a.key).collect();
        // what the remote cache holds is fetched, not asked (the refreshed are asked again)
        let remote = cx.run.get::<LlmRun>().and_then(|l| l.remote.clone().flatten());
        let mut notes = Vec::new();
        if let Some(config) = remote.filter(|_| !cx.run.refresh.contains(&cx.stage.name)) {
            let keys: Vec<Hash> = pending_keys.iter().copied().collect();
            let (held, why) = crate::llm::shared::holds(&config, &keys)?;
            if let Some(why) = why {
                notes.push(format!(
                    "{}: the remote cache could not be asked ({why}); every call is counted as made",
                    cx.stage.name
                ));
            }
            if !held.is_empty() {
                notes.push(format!(
                    "{}: {} of these calls are answered by the remote cache {config} (no request, nothing paid)",
                    cx.stage.name,
                    held.len()
                ));
            }
            pending_keys.retain(|k| !held.contains(k));
        }
        let mut elsewhere = 0;
        if let Some(shard) = cx.run.shard {
            for a in &planned.artifacts {
                let Work::Effect(i) = a.work else { continue };
                if pending_keys.contains(&a.key)
                    && !shard.holds(&a.key)
                    && !cx.run.lineage.contains(&calls.items[i as usize].prompt)
                {
                    elsewhere += 1;
                    pending_keys.remove(&a.key);
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut asked: Vec<(&Manifest, usize)> = Vec::new();
        for a in &planned.artifacts {
            let Work::Effect(i) = a.work else { continue };
            let item = &calls.items[i as usize];
            let e = per_model.entry(item.model.to_string()).or_default();
            if !pending_keys.contains(&a.key) {
                e.cached += 1;
                continue;
            }
            if !seen.insert(a.key) {
                if let Some(last) = asked.iter_mut().find(|(m, _)| m.key() == a.key) {
                    last.1 += 1;
                }
                continue;
            }
            asked.push((a.manifest.as_deref().expect("calls carry their manifest"), 1));
            // a prompt the store lost is estimated without its text (a real run stops on it)
            let text = cx
                .content(&item.prompt)?
                .map(|b| crate::engine::text::lossy(&b).into_owned())
                .unwrap_or_default();
            let tokens = estimate_tokens(&text);
            if let Some(c) = context(&item.model)
                && tokens > c
            {
                e.over_context += 1;
                e.context = Some(c);
                continue;
            }
            e.add(tokens, calls.max_tokens, price(&item.model), false);
        }
        // rows whose prompt waits for upstream outputs: counted from the rows, bounded by the
        // largest prompt they can get
        let prompt_spec = cx.spec_of(&self.prompts.stage);
        let prompt_value = cx.value_of(&self.prompts.stage);
        let rows = cx.value.rows.as_ref().expect("rows");
        let model_col = rows.column(&self.model.0).expect("checked");
        for &r in &calls.waiting {
            let base = r as usize / self.replicates as usize;
            let Some(bound) = prompt_spec.stage.size_bound(cx, prompt_spec, prompt_value, base) else {
                continue;
            };
            let model = rows.get(r as usize, model_col).trim();
            let e = per_model.entry(model.to_owned()).or_default();
            e.add(bound.div_ceil(4), calls.max_tokens, price(model), true);
        }
        let mut d = Detail {
            estimate: true,
            elsewhere,
            ..Default::default()
        };
        d.notes
            .extend(crate::llm::provider::endpoint_changed(cx.store, choice, &asked, true)?);
        d.notes.extend(notes);
        if per_model.values().any(|m| m.calls > 0) {
            d.lines.push(format!(
                "{:<44} {:>6} {:>8} {:>13} {:>10}",
                "model", "calls", "cached", "input tokens", "cost up to"
            ));
            for (m, e) in &per_model {
                let tokens = if e.waiting > 0 {
                    format!("<={}", e.input_tokens)
                } else {
                    format!("~{}", e.input_tokens)
                };
                let cost = match e.cost {
                    _ if e.calls == 0 => "$0.0000".to_owned(),
                    Some(c) => format!("${c:.4}"),
                    None => "unpriced".to_owned(),
                };
                d.lines.push(format!(
                    "{m:<44} {:>6} {:>8} {tokens:>13} {cost:>10}",
                    e.calls, e.cached
                ));
                if !choice.provider.local {
                    match e.cost {
                        Some(c) => d.cost += c,
                        None => d.unpriced += e.calls,
                    }
                }
            }
            let waiting: usize = per_model.values().map(|m| m.waiting).sum();
            if waiting > 0 {
                d.lines.push(format!(
                    "(<= upper bound: {} wait for upstream answers; each prompt counted as its template plus the longest answer it may hold)",
                    plural(waiting, "call")
                ));
            }
        }
        for (m, e) in per_model.iter().filter(|(_, e)| e.over_context > 0) {
            d.lines.push(format!(
                "{m}: {} longer than its context ({} tokens) fail without a request",
                plural(e.over_context, "prompt"),
                e.context.unwrap_or(0)
            ));
        }
        Ok(d)
    }
}

/// The run summary's lines for the calls of one stage.
pub(super) fn summary_detail(c: &CallsSummary) -> Detail {
    let mut lines = vec![format!(
        "{} requests: {} ok, {} truncated; tokens {} in, {} out; cost ${:.4}{}",
        c.requests,
        c.ok,
        c.truncated,
        c.prompt_tokens,
        c.completion_tokens,
        c.cost,
        if c.unpriced > 0 {
            format!(" (+{} unpriced)", plural(c.unpriced, "call"))
        } else {
            String::new()
        }
    )];
    let mut by_cause: BTreeMap<_, usize> = c.failed.clone();
    for (cause, n) in &c.not_started {
        *by_cause.entry(*cause).or_default() += n;
    }
    for (cause, n) in by_cause {
        lines.push(format!("failed {n}: {}", cause.describe()));
    }
    if c.fetched > 0 {
        lines.push(format!(
            "{} answered by the remote cache: no request, nothing paid here",
            plural(c.fetched, "call")
        ));
    }
    Detail {
        executed: c.tasks_answered,
        fetched: c.fetched_tasks,
        elsewhere: c.elsewhere,
        made: c.requests,
        failed: c.tasks_failed,
        lines,
        cost: c.cost,
        ..Default::default()
    }
}
