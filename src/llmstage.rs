//! The stages that read or make LLM responses: `generation_response`, `evaluation_prompt`,
//! `evaluation_response`. They cannot be planned before what they read exists, so the executor
//! plans them from the store when it reaches them, after the stages before them have run.
//!
//! This module also chooses the provider of each LLM stage and builds the key of every call:
//! provider endpoint, model, the exact messages (by the prompt's content hash), temperature,
//! max_tokens and replicate index, and nothing else. It makes no call and writes nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::db::{StageValue, template_text};
use crate::diag::Diag;
use crate::engine::{Artifact, Plan, Project, Source};
use crate::key::{FastMap, Hash, Input, Manifest};
use crate::llm::Secret;
use crate::prompt::{Renderer, Undefined};
use crate::spec::{Kind, Pipeline, Provider, Stage};

pub const CALL_KIND: &str = "chat_completion";

/// The environment as daydream sees it: the process environment over the project's `.env`.
pub struct Env {
    dotenv: HashMap<String, String>,
}

impl Env {
    pub fn load(root: &Path) -> Env {
        let mut dotenv = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(root.join(".env")) {
            for line in text.lines() {
                let line = line.trim();
                if line.starts_with('#') || line.is_empty() {
                    continue;
                }
                let line = line.strip_prefix("export ").unwrap_or(line);
                if let Some((k, v)) = line.split_once('=') {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                        .unwrap_or(v);
                    dotenv.insert(k.trim().to_owned(), v.to_owned());
                }
            }
        }
        Env { dotenv }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| self.dotenv.get(name).filter(|v| !v.is_empty()).cloned())
    }
}

/// The provider an LLM stage uses in this run.
#[derive(Clone, Debug)]
pub struct Choice {
    pub provider: Provider,
    /// Effective base URL (`<NAME>_BASE_URL` overrides the declared one); empty for a local
    /// provider until its server starts.
    pub base_url: String,
    pub key: Option<Secret>,
    /// Part of every call's key: the base URL, or `local:<model>` for the local model (whose URL
    /// changes every run).
    pub identity: String,
    /// The model a local server serves; `None` for remote providers.
    pub local_model: Option<String>,
    /// Why `auto` picked this provider, to tell the user.
    pub note: Option<String>,
}

pub const LOCAL_MODEL: &str = "smollm2-135m-instruct-q4_1";

/// Picks the provider of `stage`: `--provider`, else `DAYDREAM_PROVIDER`, else the stage's
/// `provider`, else `settings.provider`; `auto` means the first remote provider whose key is
/// set, else the local model.
pub fn choose(p: &Pipeline, stage: &Stage, cli: Option<&str>, env: &Env) -> Result<Choice, Diag> {
    let declared = stage.str("provider");
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
                let local = p.providers.iter().find(|x| x.local).ok_or_else(|| {
                    let vars: Vec<String> = p.providers.iter().filter_map(|x| x.api_key_env.clone()).collect();
                    Diag::new(format!("no provider can be used for stage `{}`", stage.name)).help(format!(
                        "set {} (in the environment or .env), or declare a provider with `kind: local`",
                        if vars.is_empty() {
                            "an API key".to_owned()
                        } else {
                            vars.join(" or ")
                        }
                    ))
                })?;
                let vars: Vec<String> = p.providers.iter().filter_map(|x| x.api_key_env.clone()).collect();
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
    let key = provider.api_key_env.as_ref().and_then(|v| env.get(v)).map(Secret::new);
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
        (Some(url), false) => (url.clone(), url.trim_end_matches('/').to_owned(), None),
        (None, false) => (
            provider.base_url.clone(),
            provider.base_url.trim_end_matches('/').to_owned(),
            None,
        ),
    };
    Ok(Choice {
        provider,
        base_url,
        key,
        identity,
        local_model,
        note,
    })
}

impl Choice {
    /// The error when calls are needed but the key is missing (never prints a key).
    pub fn require_key(&self) -> Result<(), Diag> {
        match (&self.provider.api_key_env, &self.key, self.provider.local) {
            (Some(var), None, false) => Err(Diag::new(format!(
                "provider `{}` needs an API key in ${var}, which is not set; no call was made",
                self.provider.name
            ))
            .help(format!(
                "export {var}=... (or put it in .env), or run offline on the local model with --provider local \
                 (or DAYDREAM_PROVIDER=local)"
            ))),
            _ => Ok(()),
        }
    }

    pub fn max_tokens(&self, stage_max: u64) -> u64 {
        self.provider.max_tokens_cap.map_or(stage_max, |cap| stage_max.min(cap))
    }
}

/// The key of one chat completion.
pub fn call_manifest(
    choice: &Choice,
    model: &str,
    prompt_hash: Hash,
    temperature: f64,
    max_tokens: u64,
    replicate: u32,
) -> Manifest {
    let mut m = Manifest::new(CALL_KIND)
        .param("endpoint", &choice.identity)
        .param("messages", "one user message")
        .param("temperature", temperature)
        .param("max_tokens", max_tokens)
        .param("replicate", replicate);
    // the local server answers every model name with its one model: key by what is served, so
    // local answers never mix with real models' (and tasks asking it the same prompt share a call)
    m = m.param("model", choice.local_model.as_deref().unwrap_or(model));
    m.input(Input {
        name: "prompt".into(),
        path: None,
        hash: prompt_hash,
    })
}

/// What the stages before this one produced in this run: their artifacts and, by key, the hash
/// of each output that exists.
#[derive(Default)]
pub struct Done {
    pub artifacts: Vec<Artifact>,
    pub outputs: FastMap<Hash, Hash>,
    /// Contents computed in this run, by content hash (a dry run has them only here).
    pub contents: HashMap<Hash, Arc<[u8]>>,
}

/// Task id of replicate `r` of `n`.
pub fn replicate_id(task: &str, r: u32, n: u32) -> String {
    if n <= 1 {
        task.to_owned()
    } else {
        format!("{task}_run{r:02}")
    }
}

/// Plans an LLM-dependent stage. Returns its artifacts and how many tasks are blocked because
/// what they read does not exist (a failed or missing upstream response).
pub fn plan_stage(
    project: &Project,
    plan: &Plan,
    stage: &Stage,
    done: &HashMap<String, Done>,
    choice: Option<&Choice>,
) -> Result<(Vec<Artifact>, usize), Diag> {
    let pattern = stage.str("output");
    let mut out = Vec::new();
    let mut blocked = 0;
    match stage.kind {
        Kind::GenerationResponse | Kind::EvaluationResponse => {
            let choice = choice.expect("LLM stages have a provider");
            let prompts = &done[stage.str("prompts")];
            let n = stage.int("replicates") as u32;
            let temperature = stage.float("temperature");
            let max_tokens = choice.max_tokens(stage.int("max_tokens") as u64);
            for a in &prompts.artifacts {
                let (Some(task), Some(model)) = (&a.task, &a.model) else {
                    continue;
                };
                let Some(prompt_hash) = prompts.outputs.get(&a.key) else {
                    blocked += n as usize;
                    continue;
                };
                for r in 1..=n {
                    let id = replicate_id(task, r, n);
                    let m = call_manifest(choice, model, *prompt_hash, temperature, max_tokens, r);
                    out.push(Artifact {
                        path: pattern.replace("{id}", &id),
                        task: Some(id),
                        key: m.key(),
                        source: Source::Call {
                            prompt: *prompt_hash,
                            prompt_path: a.path.clone(),
                        },
                        materialize: stage.bool("materialize"),
                        model: Some(model.clone()),
                        manifest: Some(Arc::new(m)),
                    });
                }
            }
        }
        Kind::EvaluationPrompt => {
            let tasks_stage = plan
                .stages
                .iter()
                .find(|s| s.stage.name == stage.str("tasks"))
                .expect("planned upstream");
            let StageValue::EvalTasks(evals) = &tasks_stage.value else {
                unreachable!("validated kind")
            };
            let responses = &done[stage.str("responses")];
            // replicates are those of the generation stage, also behind parsed essays
            let essays = plan
                .pipeline
                .stage(stage.str("responses"))
                .expect("validated reference");
            let n = crate::results::raw_generation(&plan.pipeline, essays).int("replicates") as u32;
            let by_task: HashMap<&str, &Artifact> = responses
                .artifacts
                .iter()
                .filter_map(|a| Some((a.task.as_deref()?, a)))
                .collect();
            let undefined = Undefined::from_name(stage.str("undefined"));
            let mut templates: HashMap<usize, Arc<(String, Arc<str>)>> = HashMap::new();
            for row in &evals.rows {
                let gen_id = &evals.generation.rows[row.generation as usize].id;
                let response = by_task
                    .get(replicate_id(gen_id, 1, n).as_str())
                    .and_then(|a| Some((*a, responses.outputs.get(&a.key)?)));
                let Some((ra, response_hash)) = response else {
                    blocked += 1;
                    continue;
                };
                let t = match templates.get(&(row.template as usize)) {
                    Some(t) => t.clone(),
                    None => {
                        let path = evals.templates.rows[row.template as usize].path.clone();
                        let text = template_text(&project.db, crate::db::Db::file(&project.db, &path)).clone()?;
                        let t = Arc::new((path, text));
                        templates.insert(row.template as usize, t.clone());
                        t
                    }
                };
                let m = crate::prompt::template_manifest(
                    Kind::EvaluationPrompt.name(),
                    undefined,
                    &t.0,
                    Hash::of(t.1.as_bytes()),
                )
                .input(Input {
                    name: "response".into(),
                    path: Some(ra.path.clone()),
                    hash: *response_hash,
                });
                let model = &evals.models.models[row.model as usize].model;
                out.push(Artifact {
                    path: pattern.replace("{id}", &row.id),
                    task: Some(row.id.clone()),
                    key: m.key(),
                    source: Source::EvalPrompt {
                        template: t,
                        response: *response_hash,
                        undefined,
                    },
                    materialize: stage.bool("materialize"),
                    model: Some(Arc::from(model.as_str())),
                    manifest: Some(Arc::new(m)),
                });
            }
        }
        _ => unreachable!("{} is planned by salsa", stage.kind.name()),
    }
    Ok((out, blocked))
}

/// Checks every evaluation template an `evaluation_prompt` stage will use, before any call is
/// paid for: syntax, and undefined variables (rendered once with a stand-in response).
pub fn preflight(project: &Project, plan: &Plan) -> Result<(), Diag> {
    for sp in &plan.stages {
        if sp.stage.kind != Kind::EvaluationPrompt {
            continue;
        }
        let tasks = plan
            .stages
            .iter()
            .find(|s| s.stage.name == sp.stage.str("tasks"))
            .expect("planned upstream");
        let StageValue::EvalTasks(evals) = &tasks.value else {
            unreachable!("validated kind")
        };
        let mut r = Renderer::new(Undefined::from_name(sp.stage.str("undefined")));
        for (_, t) in evals.templates.active() {
            let text = template_text(&project.db, crate::db::Db::file(&project.db, &t.path)).clone()?;
            r.load(&t.path, &text)?;
            r.render(&t.path, &text, minijinja::context! { response => "essay" })?;
        }
    }
    Ok(())
}
