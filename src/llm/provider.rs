//! Providers and call keys: which provider an llm stage calls (`choose`), how an endpoint is
//! identified in keys (`endpoint_identity`: one endpoint however its URL is spelt), the key of a
//! chat completion (`call_manifest`), and the grammar the local model's score answers follow.
//! It makes no call and writes nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::engine::diag::Diag;
use crate::engine::keys::{Hash, Input, Manifest};
use crate::engine::providers::Provider;
use crate::engine::spec::Pipeline;
use crate::llm::client::Secret;
use crate::llm::secrets::Redactor;

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
    /// Part of every call's key: the base URL as [`endpoint_identity`] normalises it, or
    /// `local:<model>` for the local model (whose URL changes every run).
    pub identity: String,
    /// The model a local server serves; `None` for remote providers.
    pub local_model: Option<String>,
    /// Why `auto` picked this provider, to tell the user.
    pub note: Option<String>,
    /// Every configured provider's secrets, removed from whatever a provider sends back.
    pub redactor: Arc<Redactor>,
}

/// What identifies an endpoint in a call's key: its URL without userinfo, query and fragment kept,
/// scheme and host lower-cased, the default port dropped, `localhost`, `127.0.0.1` and `[::1]` all
/// written `localhost`, and no trailing `/`. So `http://127.0.0.1:8080/v1/` and
/// `http://localhost:8080/v1` are one endpoint, and `https://openrouter.ai/api/v1` is itself.
pub fn endpoint_identity(base_url: &str) -> String {
    let trimmed = base_url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).ok();
    let Some(mut url) = parsed.filter(|u| matches!(u.scheme(), "http" | "https")) else {
        // not a URL the client could call either; still never keep its userinfo
        return crate::llm::secrets::without_userinfo(trimmed);
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    // the URL parser has lower-cased the host and written addresses in their shortest form
    if matches!(url.host_str(), Some("localhost" | "localhost." | "127.0.0.1" | "[::1]")) {
        let _ = url.set_host(Some("localhost"));
    }
    url.as_str().trim_end_matches('/').to_owned()
}

pub const LOCAL_MODEL: &str = "smollm2-135m-instruct-q4_1";

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
        .map(crate::llm::client::Secret::new);
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
    let redactor = Arc::new(crate::llm::secrets::Redactor::new(
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

/// Brings a store written before endpoints were normalised up to date, once: every answer
/// recorded under an endpoint spelled otherwise than [`endpoint_identity`] spells it
/// (`http://127.0.0.1:8080/v1/`) is also recorded under the normalised key, and the records of
/// its files follow, so that no paid answer is asked again. The old actions stay, but for those
/// whose URL held a password.
pub fn upgrade_store(store: &mut crate::engine::store::Store) -> anyhow::Result<()> {
    store.rekey_once("call_endpoints_normalised", CALL_KIND, &|m| {
        let endpoint = m.params.get("endpoint").filter(|e| !e.starts_with("local:"))?;
        let normal = endpoint_identity(endpoint);
        if normal == *endpoint {
            return None;
        }
        let mut manifest = m.clone();
        manifest.params.insert("endpoint".into(), normal);
        Some(crate::engine::store::Rekeyed {
            manifest,
            // a password has no business in the store
            drop_old: crate::llm::secrets::without_userinfo(endpoint) != *endpoint,
        })
    })?;
    Ok(())
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

/// Why calls of `choice` are to be made although the store holds answers to them under another
/// endpoint (the provider's base URL changed): one line naming how many and where the answers
/// are, or None. Only answers that differ by the endpoint alone count.
pub fn endpoint_changed(
    store: &crate::engine::store::Store,
    choice: &Choice,
    calls: &[(&Manifest, usize)],
    dry_run: bool,
) -> anyhow::Result<Option<String>> {
    if calls.is_empty() {
        return Ok(None);
    }
    // as stored (the key is made of it), and as shown (an old store's spelling, normalised)
    let others: Vec<(String, String)> = store
        .param_values(CALL_KIND, "endpoint")?
        .into_iter()
        .map(|e| {
            let shown = if e.starts_with("local:") {
                e.clone()
            } else {
                endpoint_identity(&e)
            };
            (e, shown)
        })
        .filter(|(_, shown)| *shown != choice.identity)
        .collect();
    if others.is_empty() {
        return Ok(None);
    }
    let mut moved = 0;
    let mut found: Vec<&str> = Vec::new();
    for (manifest, tasks) in calls {
        for (e, shown) in &others {
            if store.has_action(&(*manifest).clone().param("endpoint", e).key())? {
                moved += tasks;
                if !found.contains(&shown.as_str()) {
                    found.push(shown);
                }
                break;
            }
        }
    }
    if moved == 0 {
        return Ok(None);
    }
    Ok(Some(format!(
        "{} {moved}: endpoint changed (answers exist for {}; this run asks {}); set the provider's base URL back to reuse them",
        if dry_run { "would execute" } else { "executing" },
        found.join(", "),
        choice.identity,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keyed_by_an_unnormalised_endpoint_are_rekeyed_once_and_a_password_leaves() {
        use crate::engine::keys::Hash;
        use crate::engine::store::{CallRow, OutputRecord, Store};
        let dir = tempfile::tempdir().unwrap();
        let call = |endpoint: &str| Manifest::new(CALL_KIND).param("endpoint", endpoint).param("model", "m");
        let old = [
            call("http://u:pw-123456@127.0.0.1:9/v1/"),
            call("http://127.0.0.1:8/v1"),
        ];
        let mut s = Store::open(dir.path()).unwrap();
        for (i, m) in old.iter().enumerate() {
            let row = CallRow {
                key: m.key(),
                stage: "generation_response".into(),
                task: format!("t{i}"),
                status: "ok".into(),
                manifest: m.clone(),
                response: Some(format!("answer {i}")),
                record: "{}".into(),
            };
            s.put_calls(&[row], false).unwrap();
            let out = OutputRecord {
                path: format!("r{i}.txt"),
                stage: "generation_response".into(),
                task: Some(format!("t{i}")),
                key: m.key(),
                hash: Hash::of(format!("answer {i}").as_bytes()),
                size: 8,
                mtime_ns: 1,
            };
            s.put_outputs([&out]).unwrap();
        }
        upgrade_store(&mut s).unwrap();
        let new = [call("http://localhost:9/v1"), call("http://localhost:8/v1")];
        for (i, (o, n)) in old.iter().zip(&new).enumerate() {
            let a = s.action(&n.key()).unwrap().expect("re-keyed");
            assert_eq!(a.output, Hash::of(format!("answer {i}").as_bytes()));
            assert_eq!(s.output(&format!("r{i}.txt")).unwrap().unwrap().key, n.key());
            // the old row stays, unless its URL held a password
            assert_eq!(s.has_action(&o.key()).unwrap(), i == 1);
        }
        let endpoints = s.param_values(CALL_KIND, "endpoint").unwrap();
        assert!(!endpoints.iter().any(|e| e.contains("pw-123456")), "{endpoints:?}");
        // once: a later old-style row is left as it is
        s.put_actions("generation_response", [(&call("http://127.0.0.1:7/v1"), &b"x"[..])])
            .unwrap();
        upgrade_store(&mut s).unwrap();
        assert!(!s.has_action(&call("http://localhost:7/v1").key()).unwrap());
    }

    #[test]
    fn one_endpoint_has_one_identity() {
        let localhost = "http://localhost:8080/v1";
        for spelling in [
            "http://localhost:8080/v1",
            "http://localhost:8080/v1/",
            "http://127.0.0.1:8080/v1",
            "HTTP://LocalHost:8080/v1//",
            "http://[::1]:8080/v1",
            "http://user:s3cret@127.0.0.1:8080/v1",
            " http://localhost.:8080/v1 ",
        ] {
            assert_eq!(endpoint_identity(spelling), localhost, "{spelling}");
        }
        // what the keys of answers already paid for were made with stays as it was
        for same in [
            "https://openrouter.ai/api/v1",
            "https://api.example.com/openai/v1?api-version=2024",
            "http://10.0.0.2:8080/v1",
        ] {
            assert_eq!(endpoint_identity(same), same);
        }
        assert_eq!(
            endpoint_identity("https://openrouter.ai:443/api/v1/"),
            "https://openrouter.ai/api/v1"
        );
        assert_eq!(endpoint_identity("http://example.com:80"), "http://example.com");
        assert_eq!(
            endpoint_identity("https://openrouter.ai/API/v1"),
            "https://openrouter.ai/API/v1"
        );
        assert_ne!(endpoint_identity("http://localhost:8081/v1"), localhost);
        // not a URL: kept, less its userinfo
        assert_eq!(endpoint_identity("u:p@nowhere/v1/"), "nowhere/v1");
    }
}
