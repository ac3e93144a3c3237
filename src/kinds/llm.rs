//! `llm`: one chat completion per row of a per-row stage (its prompts), with the model named by
//! a column, through a provider of pipeline.yaml (or the local model), N replicates per row.
//!
//! A call's key covers the provider's endpoint, the model, the messages (the prompt by its
//! content hash, and the system prompt if any), temperature, max_tokens and the replicate, and
//! nothing else: rows asking the very same call share one answer, and an answer in the store
//! is never paid for again. The calls are made by `llm::session` and `llm::executor`; what they
//! cost is `cost.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;

use crate::engine::cx::{ExecCx, PlanCx, RunState, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, maybe, opt, req};
use crate::engine::keys::{Hash, Input, Manifest};
use crate::engine::kind::{Artifact, Decl, DeclKind, Detail, Kind, Planned, Ref, Shape, Stage, Value, Work};
use crate::engine::spec::{Pipeline, StageSpec};
use crate::engine::store::Store;
use crate::engine::yaml::Loc;
use crate::kinds::parse::{self, choice, row_rules};
use crate::llm::client::CallSpec;
use crate::llm::executor::{PendingCall, sidecar_path};
use crate::llm::provider::{CALL_KIND, Choice, Env, choose};
use crate::llm::session::Session;

mod cost;
use cost::{ModelFacts, model_facts, summary_detail};

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
    maybe(
        "local_score_line",
        FieldType::Map,
        "{parser: NAME or lookup, default: NAME, range: MIN-MAX or lookup}: rows whose parser is in_last_line get a llama.cpp grammar when the local model answers, so each answer ends in `SCORE: N` within the range (remote providers never get it)",
    ),
];

#[derive(Debug, PartialEq)]
pub struct LlmStage {
    local_score_line: Option<ScoreLine>,
    prompts: Ref,
    model: (String, Loc),
    models: Option<Ref>,
    system: Option<Decl>,
    provider: String,
    temperature: crate::engine::providers::F64,
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
        let local_score_line = match f.opt_node("local_score_line") {
            Some(n) => Some(score_line(f, n)?),
            None => None,
        };
        let model = f.string("model")?;
        let models = f.opt_stage_ref("models", Shape::Rows)?;
        let system = f.path("system", DeclKind::File, false)?;
        Ok(Arc::new(LlmStage {
            local_score_line,
            prompts,
            model: (model.value, model.loc),
            models,
            system,
            provider: f.provider("provider")?,
            temperature: crate::engine::providers::F64(f.float("temperature", 0.0, 2.0, 0.7)?),
            max_tokens: f.int("max_tokens", 1, Some(8192))?.value as u64,
            replicates: f.int("replicates", 1, Some(1))?.value as u32,
            truncation_fails: f.choice("on_truncation", &["keep", "fail"], "keep")? == "fail",
            output: f.output_pattern("output", true)?.expect("required"),
            materialize: f.bool("materialize", true)?,
            refs: f.refs(),
        }))
    }
}

/// Which rows' answers the local model is held to end in a score line, and in which range.
#[derive(Debug, PartialEq)]
struct ScoreLine {
    parser: parse::Choice,
    default: Option<String>,
    range: Option<parse::Choice>,
}

fn score_line(f: &mut Fields, node: &crate::engine::yaml::Node) -> Result<ScoreLine, Diag> {
    let Some(map) = node.as_map() else {
        return Err(f.wrong("local_score_line", node, "a mapping of parser, default and range"));
    };
    let mut out = ScoreLine {
        parser: parse::Choice::Fixed("in_last_line".into(), node.loc),
        default: None,
        range: None,
    };
    for e in map {
        match e.key.as_str() {
            "parser" => out.parser = choice(f, "local_score_line", &e.value)?,
            "range" => out.range = Some(choice(f, "local_score_line", &e.value)?),
            "default" => out.default = Some(f.string_of("local_score_line", &e.value)?.value),
            other => {
                return Err(f
                    .diag(
                        format!("unknown key `{other}` in `local_score_line` of stage `{}`", f.stage),
                        e.key_loc,
                    )
                    .help("it takes parser, default and range, as a parse stage does"));
            }
        }
    }
    Ok(out)
}

/// What an llm stage asks, for `import`: which stage's texts, the column naming the model, and
/// the settings sent.
pub struct Asks<'a> {
    pub prompts: &'a str,
    pub model_column: &'a str,
    pub provider: &'a str,
    pub temperature: f64,
    pub max_tokens: u64,
    pub replicates: u32,
    pub output: &'a str,
}

impl LlmStage {
    pub fn asks(&self) -> Asks<'_> {
        Asks {
            prompts: &self.prompts.stage,
            model_column: &self.model.0,
            provider: &self.provider,
            temperature: self.temperature.0,
            max_tokens: self.max_tokens,
            replicates: self.replicates,
            output: &self.output.path,
        }
    }
}

/// What LLM stages keep for the run: each stage's provider, and the session making the calls.
#[derive(Default)]
pub struct LlmRun {
    pub choices: HashMap<String, Choice>,
    pub session: Option<Session>,
    /// Notes already told the user.
    pub told: Vec<String>,
    /// The remote answer cache of the run (`cache: remote:` or DAYDREAM_REMOTE), chosen once.
    pub remote: Option<Option<crate::engine::cache::RemoteConfig>>,
}

/// What a `models:` table says of each model, by its name: prices (USD per million tokens,
/// input and output) and context length in tokens.
/// What `plan` keeps for `execute` and `estimate`: per artifact, its prompt and model.
struct Calls {
    items: Vec<Item>,
    /// Rows whose prompt does not exist yet (made by the run, or failed upstream).
    waiting: Vec<u32>,
    models: ModelFacts,
    max_tokens: u64,
    /// The system message of every call (hashed into each key), as read when planning.
    system: Option<Arc<str>>,
}

struct Item {
    /// The grammar the local model's answer follows, if any.
    grammar: Option<Arc<str>>,
    prompt: Hash,
    prompt_path: String,
    model: Arc<str>,
}

impl LlmStage {
    fn choice<'a>(&self, run: &'a RunState, stage: &str) -> &'a Choice {
        &run.get::<LlmRun>().expect("begin chose the providers").choices[stage]
    }

    /// The key of one call.
    fn manifest(&self, choice: &Choice, model: &str, prompt: Hash, system: Option<Hash>, replicate: u32) -> Manifest {
        let max_tokens = choice.max_tokens(self.max_tokens);
        let mut m =
            crate::llm::provider::call_manifest(choice, model, prompt, self.temperature.0, max_tokens, replicate);
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

    fn size_bound(&self, cx: &PlanCx, spec: &StageSpec, _value: &Value, _row: usize) -> Option<u64> {
        let choice = cx.run.get::<LlmRun>()?.choices.get(&spec.name)?;
        Some(choice.max_tokens(self.max_tokens) * 4)
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
        let llm = run.ext::<LlmRun>();
        llm.choices.insert(stage.name.clone(), choice);
        if llm.remote.is_none() {
            let chosen = crate::engine::cache::RemoteConfig::chosen(pipeline.cache.remote.as_ref(), |k| env.get(k))
                .map_err(|e| {
                    Diag::new(e.to_string()).help(
                        "fix DAYDREAM_REMOTE (s3://BUCKET/PREFIX or file:///DIR; `off` runs without the remote cache)",
                    )
                })?;
            llm.remote = Some(chosen);
        }
        Ok(())
    }

    fn finish(&self, run: &mut RunState, store: &mut Store) -> Result<Vec<String>> {
        if run.dry_run {
            return Ok(Vec::new());
        }
        let budget = run.budget;
        let llm = run.ext::<LlmRun>();
        let remote = llm.remote.clone().flatten();
        // a run that made no call still uploads what earlier runs could not
        if llm.session.is_none() && remote.is_some() {
            llm.session = Some(Session::new(budget, remote.as_ref()));
        }
        match llm.session.as_mut() {
            Some(session) => session.finish_shared(store),
            None => Ok(Vec::new()),
        }
    }

    fn ready(&self, run: &RunState, stage: &StageSpec) -> Result<(), Diag> {
        self.choice(run, &stage.name).require_key()
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
        let system_text = match &self.system {
            Some(d) => Some(cx.text(&d.path)?),
            None => None,
        };
        let system = system_text.as_ref().map(|t| Hash::of(t.as_bytes()));
        let n = self.replicates;
        // the local model's score answers end in a score line: a grammar, part of the key
        let grammars: Vec<Option<Arc<str>>> = match (&self.local_score_line, choice.provider.local) {
            (Some(sl), true) => {
                let max_tokens = choice.max_tokens(self.max_tokens);
                let rules = row_rules(cx, &rows, &sl.parser, sl.default.as_deref(), sl.range.as_ref())?;
                let mut by_range: HashMap<String, Option<Arc<str>>> = HashMap::new();
                let mut out = Vec::with_capacity(rows.len());
                for (r, rule) in rules.iter().enumerate() {
                    if rule.name != "in_last_line" {
                        out.push(None);
                        continue;
                    }
                    let g = match by_range.get(&rule.range) {
                        Some(g) => g.clone(),
                        None => {
                            let range = rule.score_range(cx, rows.id(r))?;
                            let g = crate::seed::parsing::score_grammar(range, max_tokens).map(Arc::from);
                            by_range.insert(rule.range.clone(), g.clone());
                            g
                        }
                    };
                    out.push(g);
                }
                out
            }
            _ => vec![None; rows.len()],
        };
        let pattern: Vec<&str> = self.output.path.split("{id}").collect();
        let mut artifacts = Vec::with_capacity(rows.len());
        let mut items = Vec::with_capacity(rows.len());
        let mut blocked = 0;
        let mut waiting = Vec::new();
        let mut models: HashMap<&str, Arc<str>> = HashMap::new();
        for (r, grammar) in grammars.iter().enumerate() {
            let base = r / n as usize;
            let Some((prompt_artifact, Some(prompt))) = prompts.of_task(prompt_rows.id(base)) else {
                blocked += 1;
                waiting.push(r as u32);
                continue;
            };
            let name = rows.get(r, model_col).trim();
            let model = models.entry(name).or_insert_with(|| Arc::from(name)).clone();
            let replicate = (r % n as usize) as u32 + 1;
            let mut m = self.manifest(choice, &model, prompt, system, replicate);
            if let Some(g) = grammar {
                // part of the request, so part of the key
                m = m.input(Input::new("grammar", None, g.as_bytes()));
            }
            artifacts.push(Artifact {
                path: pattern.join(rows.id(r)),
                task: Some(rows.id(r).to_owned()),
                key: m.key(),
                work: Work::Effect(items.len() as u32),
                materialize: self.materialize,
                group: Some(model.clone()),
                manifest: Some(Arc::new(m)),
            });
            items.push(Item {
                grammar: grammar.clone(),
                prompt,
                prompt_path: prompt_artifact.path.clone(),
                model,
            });
        }
        let models = match &self.models {
            Some(m) => model_facts(cx, m)?,
            None => ModelFacts::default(),
        };
        Ok(Planned {
            summary: None,
            artifacts,
            blocked,
            data: Some(Arc::new(Calls {
                items,
                waiting,
                models,
                max_tokens: choice.max_tokens(self.max_tokens),
                system: system_text,
            })),
        })
    }

    fn estimate(&self, cx: &PlanCx, planned: &Planned, pending: &[&Artifact]) -> Result<Detail> {
        self.estimate_calls(cx, planned, pending)
    }

    fn execute(&self, cx: &mut ExecCx, pending: Vec<&Artifact>) -> Result<Detail> {
        let calls: &Calls = cx.planned.data().expect("calls");
        let choice = self.choice(cx.run, &cx.stage.name).clone();
        choice.require_key()?;
        let mut out: Vec<PendingCall> = Vec::with_capacity(pending.len());
        // `--shard`: the calls of this shard's keys, and those downstream of its own answers
        let mut mine: std::collections::HashSet<Hash> = std::collections::HashSet::new();
        let mut by_key: HashMap<Hash, usize> = HashMap::new();
        for a in pending {
            let Work::Effect(i) = a.work else { continue };
            let item = &calls.items[i as usize];
            if let Some(&j) = by_key.get(&a.key) {
                out[j].also.push(crate::llm::executor::Sharer {
                    task: a.task.clone().unwrap_or_default(),
                    path: a.path.clone(),
                    model: item.model.to_string(),
                });
                continue;
            }
            by_key.insert(a.key, out.len());
            if let Some(shard) = cx.run.shard
                && (shard.holds(&a.key) || cx.run.lineage.contains(&item.prompt))
            {
                mine.insert(a.key);
            }
            // a prompt made in this run is at hand; one of an earlier run is read as its call starts
            let in_memory = cx.done.values().find_map(|d| d.contents.get(&item.prompt)).cloned();
            let (prompt, prompt_in_store) = match in_memory {
                Some(text) => (Arc::from(crate::engine::text::lossy(&text).as_ref()), None),
                None => (Arc::from(""), Some(item.prompt)),
            };
            out.push(PendingCall {
                task: a.task.clone().unwrap_or_default(),
                key: a.key,
                manifest: a.manifest.as_deref().cloned().expect("calls carry their manifest"),
                prompt_in_store,
                spec: CallSpec {
                    model: item.model.to_string(),
                    system: calls.system.clone(),
                    prompt,
                    temperature: self.temperature.0,
                    max_tokens: calls.max_tokens,
                    grammar: item.grammar.clone(),
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
        let asked: Vec<(&Manifest, usize)> = out.iter().map(|c| (&c.manifest, 1 + c.also.len())).collect();
        let notes: Vec<String> = crate::llm::provider::endpoint_changed(cx.store, &choice, &asked, false)?
            .into_iter()
            .collect();
        let sharded = cx.run.shard.is_some();
        let llm = cx.run.ext::<LlmRun>();
        crate::llm::progress::announce(&cx.stage.name, &choice, out.len(), cx.cached, &mut llm.told);
        let remote = llm.remote.clone().flatten();
        let session = llm.session.get_or_insert_with(|| Session::new(budget, remote.as_ref()));
        let in_shard = |c: &PendingCall| mine.contains(&c.key);
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
            sharded.then_some(&in_shard as &dyn Fn(&PendingCall) -> bool),
        )?;
        let stopped = session.stopped();
        if sharded {
            cx.run.lineage.extend(s.made.iter().copied());
        }
        let mut d = summary_detail(&s);
        d.stopped = stopped;
        d.notes = notes;
        Ok(d)
    }

    fn record(&self, store: &Store, stage: &str, a: &Artifact) -> Result<Option<String>> {
        let own = crate::llm::record::task_record(
            store,
            stage,
            &a.key,
            a.task.as_deref().unwrap_or_default(),
            a.group.as_deref().unwrap_or_default(),
        )?;
        Ok(match own {
            Some(r) => Some(r),
            // no answer: the last failed attempt's record
            None => match &a.task {
                Some(t) => store.latest_calls(stage)?.remove(t).map(|(_, r)| r),
                None => None,
            },
        })
    }

    fn made_from(&self, planned: &Planned, a: &Artifact) -> Option<String> {
        let Work::Effect(i) = a.work else { return None };
        Some(planned.data::<Calls>()?.items.get(i as usize)?.prompt_path.clone())
    }

    fn status_note(&self, artifacts: &[Artifact], known: &crate::engine::keys::FastMap<Hash, Hash>) -> String {
        let mut answered = 0;
        let mut served = std::collections::BTreeSet::new();
        for a in artifacts.iter().filter(|a| known.contains_key(&a.key)) {
            let Some(m) = &a.manifest else { continue };
            if m.params.get("endpoint").is_some_and(|e| e.starts_with("local:")) {
                answered += 1;
                served.extend(m.params.get("model").cloned());
            }
        }
        if answered == 0 {
            return String::new();
        }
        let served: Vec<String> = served.into_iter().collect();
        format!(
            " ({}answered offline by the local model {}, not by the models named)",
            if answered == artifacts.len() {
                String::new()
            } else {
                format!("{answered} ")
            },
            served.join(", ")
        )
    }

    fn sidecar(&self, store: &Store, stage: &str, a: &Artifact) -> Result<Option<(String, Vec<u8>)>> {
        let own = crate::llm::record::task_record(
            store,
            stage,
            &a.key,
            a.task.as_deref().unwrap_or_default(),
            a.group.as_deref().unwrap_or_default(),
        )?;
        Ok(own.map(|info| (sidecar_path(&a.path), pretty_record(info))))
    }
}

/// A stored call record as the call wrote it beside its answer: a record's fields in their
/// own order (a restored sidecar is the same bytes as the one written), any other JSON
/// pretty-printed as it is.
fn pretty_record(info: String) -> Vec<u8> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&info) else {
        return info.into_bytes();
    };
    if let Ok(record) = serde_json::from_value::<crate::llm::executor::CallRecord>(value.clone())
        && serde_json::to_value(&record).is_ok_and(|v| v == value)
    {
        return serde_json::to_vec_pretty(&record).expect("record serializes");
    }
    serde_json::to_vec_pretty(&value).unwrap_or(info.into_bytes())
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
