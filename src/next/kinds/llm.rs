//! `llm`: one chat completion per row of a per-row stage (its prompts), with the model named by
//! a column, through a provider of pipeline.yaml (or the local model), N replicates per row.
//!
//! A call's key covers the provider's endpoint, the model, the messages (the prompt by its
//! content hash, and the system prompt if any), temperature, max_tokens and the replicate, and
//! nothing else: rows asking the very same call share one answer, and an answer in the store
//! is never paid for again. The calls are made by the executor in `calls.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::calls::{CallsSummary, PendingCall, Session, estimate_tokens, sidecar_path};
use crate::diag::Diag;
use crate::key::{Hash, Input, Manifest};
use crate::llm::CallSpec;
use crate::llmstage::{CALL_KIND, Choice, Env, LOCAL_MODEL, endpoint_identity};
use crate::next::engine::cx::{ExecCx, PlanCx, RunState, ValueCx};
use crate::next::engine::fields::{FieldDoc, FieldType, Fields, maybe, opt, req};
use crate::next::engine::kind::{Artifact, Decl, DeclKind, Detail, Kind, Planned, Ref, Shape, Stage, Value, Work};
use crate::next::engine::spec::{Pipeline, StageSpec};
use crate::next::engine::yaml::Loc;
use crate::store::Store;

pub struct LlmKind;

const FIELDS: &[FieldDoc] = &[
    req(
        "prompts",
        FieldType::Stage,
        "the per-row stage whose texts are sent (a prompt stage, or a parse stage)",
    ),
    req(
        "model",
        FieldType::Str,
        "the column of the rows holding the provider's model name, e.g. generation_model_name",
    ),
    maybe(
        "models",
        FieldType::Stage,
        "a table with a `model` column and the prices `input_usd_per_mtok`, `output_usd_per_mtok` (USD per million tokens): for --dry-run, budgets and costs",
    ),
    maybe(
        "system",
        FieldType::File,
        "a file whose text is sent as the system message of every call",
    ),
    opt(
        "provider",
        FieldType::Provider,
        "auto",
        "provider to call: a name under `providers:`, or `auto` (see settings.provider)",
    ),
    opt(
        "temperature",
        FieldType::Num { min: 0.0, max: 2.0 },
        "0.7",
        "sampling temperature sent with every call",
    ),
    opt(
        "max_tokens",
        FieldType::Int { min: 1 },
        "8192",
        "max_tokens sent with every call",
    ),
    opt(
        "replicates",
        FieldType::Int { min: 1 },
        "1",
        "independent samples per row (ids get _run01, _run02, ...; a `replicate` column)",
    ),
    opt(
        "on_truncation",
        FieldType::Choice(&["keep", "fail"]),
        "keep",
        "an answer cut at max_tokens: keep it (flagged truncated) or count it as failed",
    ),
    req(
        "output",
        FieldType::Pattern,
        "one answer per row, e.g. data/3_generation/generation_responses/{id}.txt (the call record beside it as <id>.json)",
    ),
    opt(
        "materialize",
        FieldType::Bool,
        "true",
        "write the answer files and sidecars (false: keep them in the store only)",
    ),
];

#[derive(Debug, PartialEq)]
pub struct LlmStage {
    prompts: Ref,
    model: (String, Loc),
    models: Option<Ref>,
    system: Option<Decl>,
    provider: String,
    temperature: crate::spec::F64,
    max_tokens: u64,
    replicates: u32,
    truncation_fails: bool,
    output: Decl,
    materialize: bool,
    refs: Vec<Ref>,
}

impl Kind for LlmKind {
    fn name(&self) -> &'static str {
        "llm"
    }

    fn about(&self) -> &'static str {
        "one chat completion per row (model from a column), N replicates, every answer kept"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        let prompts = f.stage_ref("prompts", Shape::PerRow)?;
        let model = f.string("model")?;
        let models = f.opt_stage_ref("models", Shape::Rows)?;
        let system = f.path("system", DeclKind::File, false)?;
        Ok(Arc::new(LlmStage {
            prompts,
            model: (model.value, model.loc),
            models,
            system,
            provider: f.provider("provider")?,
            temperature: crate::spec::F64(f.float("temperature", 0.0, 2.0, 0.7)?),
            max_tokens: f.int("max_tokens", 1, Some(8192))?.value as u64,
            replicates: f.int("replicates", 1, Some(1))?.value as u32,
            truncation_fails: f.choice("on_truncation", &["keep", "fail"], "keep")? == "fail",
            output: f.output_pattern("output", true)?.expect("required"),
            materialize: f.bool("materialize", true)?,
            refs: f.refs(),
        }))
    }
}

/// What LLM stages keep for the run: each stage's provider, and the session making the calls.
#[derive(Default)]
pub struct LlmRun {
    pub choices: HashMap<String, Choice>,
    pub session: Option<Session>,
}

/// What a `models:` table says of each model, by its name: prices (USD per million tokens,
/// input and output) and context length in tokens.
#[derive(Default)]
struct ModelFacts {
    prices: HashMap<String, (f64, f64)>,
    contexts: HashMap<String, u64>,
}

fn model_facts(cx: &PlanCx, models: &Ref) -> Result<ModelFacts, Diag> {
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

/// Picks the provider of a stage: `--provider`, else `DAYDREAM_PROVIDER`, else the stage's
/// `provider`, else `settings.provider`; `auto` means the first remote provider whose key is
/// set, else the local model.
pub fn choose(p: &Pipeline, stage: &str, declared: &str, cli: Option<&str>, env: &Env) -> Result<Choice, Diag> {
    let env_choice = env.get("DAYDREAM_PROVIDER");
    let name = cli.map(str::to_owned).or(env_choice).unwrap_or_else(|| {
        if declared == "auto" {
            p.settings.provider.clone()
        } else {
            declared.to_owned()
        }
    });
    let mut note = None;
    let provider = if name == "auto" {
        let remote = p
            .providers
            .iter()
            .find(|x| !x.local && x.api_key_env.as_ref().is_none_or(|v| env.get(v).is_some()));
        match remote {
            Some(r) => r.clone(),
            None => {
                let vars: Vec<String> = p.providers.iter().filter_map(|x| x.api_key_env.clone()).collect();
                let local = p.providers.iter().find(|x| x.local).ok_or_else(|| {
                    Diag::new(format!("no provider can be used for stage `{stage}`")).help(format!(
                        "set {} (in the environment or .env), or declare a provider with `kind: local`",
                        if vars.is_empty() {
                            "an API key".to_owned()
                        } else {
                            vars.join(" or ")
                        }
                    ))
                })?;
                if !vars.is_empty() {
                    note = Some(format!(
                        "{} is not set: using the local model `{LOCAL_MODEL}` (provider `{}`); set the key, or pass --provider, to call {}",
                        vars.join(" / "),
                        local.name,
                        p.providers
                            .iter()
                            .filter(|x| !x.local)
                            .map(|x| x.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                local.clone()
            }
        }
    } else {
        p.providers.iter().find(|x| x.name == name).cloned().ok_or_else(|| {
            let names: Vec<&str> = p.providers.iter().map(|x| x.name.as_str()).collect();
            Diag::new(format!("there is no provider `{name}` in {}", p.file))
                .help(format!("the providers are: {}, or auto", names.join(", ")))
        })?
    };
    let override_url = env.get(&provider.base_url_env());
    let key = provider
        .api_key_env
        .as_ref()
        .and_then(|v| env.get(v))
        .map(crate::llm::Secret::new);
    let (base_url, identity, local_model) = match (&override_url, provider.local) {
        (Some(url), true) => (
            url.clone(),
            format!("local:{LOCAL_MODEL}"),
            Some(LOCAL_MODEL.to_owned()),
        ),
        (None, true) => (
            String::new(),
            format!("local:{LOCAL_MODEL}"),
            Some(LOCAL_MODEL.to_owned()),
        ),
        (Some(url), false) => (url.clone(), endpoint_identity(url), None),
        (None, false) => (provider.base_url.clone(), endpoint_identity(&provider.base_url), None),
    };
    // every provider's secrets, removed from whatever a provider sends back
    let keys: Vec<String> = p
        .providers
        .iter()
        .filter_map(|x| env.get(x.api_key_env.as_ref()?))
        .collect();
    let urls: Vec<String> = p
        .providers
        .iter()
        .flat_map(|x| [Some(x.base_url.clone()), env.get(&x.base_url_env())])
        .flatten()
        .collect();
    let redactor = Arc::new(crate::secrets::Redactor::new(
        keys.iter().map(String::as_str),
        urls.iter().map(String::as_str),
    ));
    Ok(Choice {
        provider,
        base_url,
        key,
        identity,
        local_model,
        note,
        redactor,
    })
}

/// What `plan` keeps for `execute` and `estimate`: per artifact, its prompt and model.
struct Calls {
    items: Vec<Item>,
    models: ModelFacts,
    max_tokens: u64,
}

struct Item {
    prompt: Hash,
    model: Arc<str>,
}

impl LlmStage {
    fn choice<'a>(&self, run: &'a RunState, stage: &str) -> &'a Choice {
        &run.get::<LlmRun>().expect("begin chose the providers").choices[stage]
    }

    /// The key of one call.
    fn manifest(&self, choice: &Choice, model: &str, prompt: Hash, system: Option<Hash>, replicate: u32) -> Manifest {
        let max_tokens = choice.max_tokens(self.max_tokens);
        let mut m = crate::llmstage::call_manifest(choice, model, prompt, self.temperature.0, max_tokens, replicate);
        if let Some(h) = system {
            m = m
                .param("messages", "a system message, then the user message")
                .input(Input {
                    name: "system".into(),
                    path: self.system.as_ref().map(|d| d.path.clone()),
                    hash: h,
                });
        }
        m
    }
}

impl Stage for LlmStage {
    fn refs(&self) -> Vec<Ref> {
        self.refs.clone()
    }

    fn offers(&self) -> &'static [Shape] {
        &[Shape::Rows, Shape::PerRow]
    }

    fn inputs(&self) -> Vec<Decl> {
        self.system.iter().cloned().collect()
    }

    fn outputs(&self) -> Vec<Decl> {
        vec![self.output.clone()]
    }

    fn sidecars(&self) -> &'static [(&'static str, &'static str)] {
        &[(".txt", ".json")]
    }

    fn effectful(&self) -> bool {
        true
    }

    fn reads_outputs(&self) -> bool {
        true
    }

    fn paid(&self) -> bool {
        true
    }

    fn shared_actions(&self) -> Option<&'static str> {
        Some(CALL_KIND)
    }

    fn value(&self, cx: &ValueCx) -> Result<Value, Diag> {
        let up = cx.upstream(&self.prompts.stage)?;
        let rows = up.rows.as_ref().expect("a per-row stage has rows");
        if rows.column(&self.model.0).is_none() {
            return Err(cx
                .diag(
                    format!(
                        "`model: {}`: the rows of `{}` have no such column",
                        self.model.0, self.prompts.stage
                    ),
                    self.model.1,
                )
                .help(format!("their columns are: {}", rows.names.join(", "))));
        }
        if let Some(s) = &self.system {
            cx.require_text(&s.path, "system prompt")?;
        }
        let rows = rows.replicated(self.replicates);
        let summary = format!("{} calls", rows.len());
        Ok(Value {
            rows: Some(Arc::new(rows)),
            data: None,
            summary,
        })
    }

    fn begin(
        &self,
        run: &mut RunState,
        stage: &StageSpec,
        pipeline: &Pipeline,
        root: &std::path::Path,
    ) -> Result<(), Diag> {
        let env = Env::load(root);
        let choice = choose(pipeline, &stage.name, &self.provider, run.provider.as_deref(), &env)?;
        if let Some(note) = &choice.note
            && !run.notes.contains(note)
        {
            run.notes.push(note.clone());
        }
        run.ext::<LlmRun>().choices.insert(stage.name.clone(), choice);
        Ok(())
    }

    fn check(&self, cx: &PlanCx) -> Result<(), Diag> {
        let rows = cx.value.rows.as_ref().expect("rows");
        let c = rows.column(&self.model.0).expect("checked with the value");
        for r in 0..rows.len() {
            if rows.get(r, c).trim().is_empty() {
                return Err(cx
                    .diag(
                        format!(
                            "row `{}` of stage `{}` has no model in `{}`",
                            rows.id(r),
                            cx.stage.name,
                            self.model.0
                        ),
                        self.model.1,
                    )
                    .help("fill in the provider's model name (e.g. google/gemini-2.5-flash) in the models table"));
            }
        }
        if let Some(m) = &self.models {
            model_facts(cx, m)?;
        }
        Ok(())
    }

    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag> {
        let rows = cx.value.rows.clone().expect("rows");
        let choice = self.choice(cx.run, &cx.stage.name);
        let prompts = cx.done_of(&self.prompts.stage).expect("the prompts were made before");
        let prompt_rows = cx.value_of(&self.prompts.stage).rows.clone().expect("rows");
        let model_col = rows.column(&self.model.0).expect("checked");
        let system = match &self.system {
            Some(d) => Some(Hash::of(cx.text(&d.path)?.as_bytes())),
            None => None,
        };
        let n = self.replicates;
        let pattern: Vec<&str> = self.output.path.split("{id}").collect();
        let mut artifacts = Vec::with_capacity(rows.len());
        let mut items = Vec::with_capacity(rows.len());
        let mut blocked = 0;
        let mut models: HashMap<&str, Arc<str>> = HashMap::new();
        for r in 0..rows.len() {
            let base = r / n as usize;
            let Some((_, Some(prompt))) = prompts.of_task(prompt_rows.id(base)) else {
                blocked += 1;
                continue;
            };
            let name = rows.get(r, model_col).trim();
            let model = models.entry(name).or_insert_with(|| Arc::from(name)).clone();
            let replicate = (r % n as usize) as u32 + 1;
            let m = self.manifest(choice, &model, prompt, system, replicate);
            artifacts.push(Artifact {
                path: pattern.join(rows.id(r)),
                task: Some(rows.id(r).to_owned()),
                key: m.key(),
                work: Work::Effect(items.len() as u32),
                materialize: self.materialize,
                group: Some(model.clone()),
                manifest: Some(Arc::new(m)),
            });
            items.push(Item { prompt, model });
        }
        let models = match &self.models {
            Some(m) => model_facts(cx, m)?,
            None => ModelFacts::default(),
        };
        Ok(Planned {
            summary: Some(format!("{} calls", artifacts.len())),
            artifacts,
            blocked,
            data: Some(Arc::new(Calls {
                items,
                models,
                max_tokens: choice.max_tokens(self.max_tokens),
            })),
        })
    }

    fn estimate(&self, cx: &PlanCx, planned: &Planned, pending: &[&Artifact]) -> Result<Detail> {
        let calls: &Calls = planned.data().expect("calls");
        let choice = self.choice(cx.run, &cx.stage.name);
        let mut per_model: BTreeMap<String, (usize, usize, u64, Option<f64>)> = BTreeMap::new();
        let pending_keys: std::collections::HashSet<Hash> = pending.iter().map(|a| a.key).collect();
        let mut seen = std::collections::HashSet::new();
        for a in &planned.artifacts {
            let Work::Effect(i) = a.work else { continue };
            let item = &calls.items[i as usize];
            let e = per_model.entry(item.model.to_string()).or_insert((0, 0, 0, Some(0.0)));
            if !pending_keys.contains(&a.key) {
                e.1 += 1;
                continue;
            }
            if !seen.insert(a.key) {
                continue;
            }
            let text = cx
                .content(&item.prompt)?
                .map(|b| crate::text::lossy(&b).into_owned())
                .unwrap_or_default();
            let tokens = estimate_tokens(&text);
            e.0 += 1;
            e.2 += tokens;
            let price = if choice.provider.local {
                Some((0.0, 0.0))
            } else {
                calls.models.prices.get(&*item.model).copied()
            };
            e.3 = match (e.3, price) {
                (Some(sum), Some((i, o))) => Some(sum + (tokens as f64 * i + calls.max_tokens as f64 * o) / 1e6),
                _ => None,
            };
        }
        let mut d = Detail {
            estimate: true,
            ..Default::default()
        };
        if per_model.values().any(|v| v.0 > 0) {
            d.lines.push(format!(
                "{:<44} {:>6} {:>8} {:>13} {:>10}",
                "model", "calls", "cached", "input tokens", "cost up to"
            ));
            for (m, (calls, cached, tokens, cost)) in &per_model {
                d.cost += cost.unwrap_or(0.0);
                let cost = cost.map_or("unpriced".to_owned(), |c| format!("${c:.4}"));
                d.lines.push(format!(
                    "{m:<44} {calls:>6} {cached:>8} {:>13} {cost:>10}",
                    format!("~{tokens}")
                ));
            }
        }
        Ok(d)
    }

    fn execute(&self, cx: &mut ExecCx, pending: Vec<&Artifact>) -> Result<Detail> {
        let calls: &Calls = cx.planned.data().expect("calls");
        let choice = self.choice(cx.run, &cx.stage.name).clone();
        choice.require_key()?;
        let system_text = match &self.system {
            Some(d) => {
                Some(std::fs::read_to_string(cx.root.join(&d.path)).with_context(|| format!("reading {}", d.path))?)
            }
            None => None,
        };
        let _ = system_text;
        let mut out: Vec<PendingCall> = Vec::with_capacity(pending.len());
        let mut by_key: HashMap<Hash, usize> = HashMap::new();
        for a in pending {
            let Work::Effect(i) = a.work else { continue };
            let item = &calls.items[i as usize];
            if let Some(&j) = by_key.get(&a.key) {
                out[j].also.push(crate::calls::Sharer {
                    task: a.task.clone().unwrap_or_default(),
                    path: a.path.clone(),
                    model: item.model.to_string(),
                });
                continue;
            }
            by_key.insert(a.key, out.len());
            // a prompt made in this run is at hand; one of an earlier run is read as its call starts
            let in_memory = cx.done.values().find_map(|d| d.contents.get(&item.prompt)).cloned();
            let (prompt, prompt_in_store) = match in_memory {
                Some(text) => (Arc::from(crate::text::lossy(&text).as_ref()), None),
                None => (Arc::from(""), Some(item.prompt)),
            };
            out.push(PendingCall {
                task: a.task.clone().unwrap_or_default(),
                key: a.key,
                manifest: a.manifest.as_deref().cloned().expect("calls carry their manifest"),
                prompt_in_store,
                spec: CallSpec {
                    model: item.model.to_string(),
                    prompt,
                    temperature: self.temperature.0,
                    max_tokens: calls.max_tokens,
                    grammar: None,
                },
                path: a.path.clone(),
                also: Vec::new(),
                materialize: a.materialize,
                price: if choice.provider.local {
                    Some((0.0, 0.0))
                } else {
                    calls.models.prices.get(&*item.model).copied()
                },
                context: if choice.provider.local {
                    None
                } else {
                    calls.models.contexts.get(&*item.model).copied()
                },
            });
        }
        let refresh = cx.run.refresh.contains(&cx.stage.name);
        let budget = cx.run.budget;
        let llm = cx.run.ext::<LlmRun>();
        let session = llm.session.get_or_insert_with(|| Session::new(budget));
        let s = session.run_calls(
            cx.root,
            cx.store,
            cx.tmp,
            &cx.stage.name,
            self.truncation_fails,
            &choice,
            out,
            cx.cached,
            refresh,
        )?;
        let mut d = summary_detail(&s);
        d.stopped = session.stopped();
        Ok(d)
    }

    fn sidecar(&self, store: &Store, a: &Artifact) -> Result<Option<(String, Vec<u8>)>> {
        Ok(store.action_info(&a.key)?.map(|info| {
            let pretty = serde_json::from_str::<serde_json::Value>(&info)
                .and_then(|v| serde_json::to_vec_pretty(&v))
                .unwrap_or(info.into_bytes());
            (sidecar_path(&a.path), pretty)
        }))
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The run summary's lines for the calls of one stage.
fn summary_detail(c: &CallsSummary) -> Detail {
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
    Detail {
        executed: c.tasks_answered,
        failed: c.tasks_failed,
        lines,
        cost: c.cost,
        estimate: false,
        stopped: None,
    }
}
