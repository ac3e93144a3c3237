//! The `providers:` section: OpenAI-compatible endpoints by name (or the local model daydream
//! starts), with their limits and retry settings.

use super::fields::SpecCx;
use super::yaml::{Entry, Value};
use crate::engine::diag::{Diag, nearest};

/// A float that can live in hashed, compared values (compared by bits).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F64(pub f64);

impl Eq for F64 {}

impl std::hash::Hash for F64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

/// How many servers of the local model a run starts when its provider does not say: one per
/// CPU core, at most 4 (each holds ~200 MB).
pub fn local_servers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// An OpenAI-compatible endpoint (or the local model daydream starts), as declared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Provider {
    pub name: String,
    /// The local llama.cpp server daydream starts and stops itself.
    pub local: bool,
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub headers: Vec<(String, String)>,
    pub max_in_flight: usize,
    pub model_max_in_flight: Option<usize>,
    pub requests_per_minute: Option<u32>,
    /// Requests per minute for each `:free` model variant.
    pub free_requests_per_minute: u32,
    pub timeout_s: F64,
    pub max_attempts: u32,
    pub max_retry_time_s: F64,
    pub backoff_base_ms: u64,
    pub backoff_max_s: F64,
    /// Caps every stage's max_tokens (the local profile keeps the offline run short).
    pub max_tokens_cap: Option<u64>,
    pub empty_retries: u32,
    pub loc: super::yaml::Loc,
}

impl Provider {
    /// The environment variable that overrides the base URL: `<NAME>_BASE_URL`.
    pub fn base_url_env(&self) -> String {
        format!("{}_BASE_URL", self.name.to_ascii_uppercase().replace('-', "_"))
    }
}

const KEYS: &[&str] = &[
    "kind",
    "base_url",
    "api_key_env",
    "headers",
    "max_in_flight",
    "model_max_in_flight",
    "requests_per_minute",
    "free_requests_per_minute",
    "timeout_s",
    "max_attempts",
    "max_retry_time_s",
    "backoff_base_ms",
    "backoff_max_s",
    "max_tokens_cap",
    "empty_retries",
];

pub fn parse(cx: &SpecCx, e: &Entry) -> Result<Provider, Diag> {
    let name = &e.key;
    let at = e.key_loc;
    let Some(body) = e.value.as_map() else {
        return Err(cx.diag(
            format!("provider `{name}` must be a mapping of its settings"),
            e.value.loc,
        ));
    };
    for b in body {
        if !KEYS.contains(&b.key.as_str()) {
            let d = cx.diag(format!("unknown key `{}` in provider `{name}`", b.key), b.key_loc);
            return Err(match nearest(&b.key, KEYS.iter().copied()) {
                Some(n) => d.help(format!("did you mean `{n}`?")),
                None => d.help(format!("a provider takes: {}", KEYS.join(", "))),
            });
        }
    }
    let get = |k: &str| body.iter().find(|b| b.key == k).map(|b| &b.value);
    let text = |k: &str| -> Result<Option<String>, Diag> {
        match get(k) {
            None => Ok(None),
            Some(n) => match &n.value {
                Value::Str(s) => Ok(Some(s.clone())),
                Value::Null => Ok(None),
                _ => Err(cx.diag(format!("`{k}` of provider `{name}` must be a string"), n.loc)),
            },
        }
    };
    let number = |k: &str| -> Result<Option<(f64, super::yaml::Loc)>, Diag> {
        match get(k) {
            None => Ok(None),
            Some(n) => match n.value {
                Value::Int(i) => Ok(Some((i as f64, n.loc))),
                Value::Float(x) => Ok(Some((x, n.loc))),
                _ => Err(cx.diag(format!("`{k}` of provider `{name}` must be a number"), n.loc)),
            },
        }
    };
    let whole = |k: &str, min: f64| -> Result<Option<u64>, Diag> {
        match number(k)? {
            None => Ok(None),
            Some((x, _)) if x.fract() == 0.0 && x >= min && x <= u32::MAX as f64 => Ok(Some(x as u64)),
            Some((_, loc)) => Err(cx.diag(
                format!("`{k}` of provider `{name}` must be a whole number of at least {min}"),
                loc,
            )),
        }
    };
    let positive = |k: &str, default: f64| -> Result<F64, Diag> {
        match number(k)? {
            None => Ok(F64(default)),
            Some((x, _)) if x.is_finite() && x > 0.0 => Ok(F64(x)),
            Some((_, loc)) => Err(cx.diag(format!("`{k}` of provider `{name}` must be a positive number"), loc)),
        }
    };
    let local = match text("kind")?.as_deref() {
        None | Some("openai") => false,
        Some("local") => true,
        Some(other) => {
            return Err(cx
                .diag(format!("provider `{name}` has kind `{other}`"), get("kind").map_or(at, |n| n.loc))
                .help("a provider's kind is `openai` (an OpenAI-compatible URL, the default) or `local` (daydream starts a local model)"));
        }
    };
    let base_url = text("base_url")?.unwrap_or_default();
    if !(local || base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(cx
            .diag(
                format!("provider `{name}` needs a `base_url` starting with http:// or https://"),
                at,
            )
            .help("for example base_url: https://openrouter.ai/api/v1"));
    }
    let mut headers = Vec::new();
    if let Some(n) = get("headers") {
        let Some(map) = n.as_map() else {
            return Err(cx.diag(
                format!("`headers` of provider `{name}` must map header names to values"),
                n.loc,
            ));
        };
        for h in map {
            let v = h.value.scalar_text().ok_or_else(|| {
                cx.diag(
                    format!("header `{}` of provider `{name}` must be a string", h.key),
                    h.value.loc,
                )
            })?;
            headers.push((h.key.clone(), v));
        }
    }
    // the local model: one single-threaded server per request in flight, one per core by default
    let in_flight = whole("max_in_flight", 1.0)?.map_or(if local { local_servers() } else { 16 }, |v| v as usize);
    Ok(Provider {
        name: name.clone(),
        local,
        base_url,
        api_key_env: text("api_key_env")?,
        headers,
        max_in_flight: in_flight,
        model_max_in_flight: whole("model_max_in_flight", 1.0)?.map(|v| v as usize),
        requests_per_minute: whole("requests_per_minute", 1.0)?.map(|v| v as u32),
        free_requests_per_minute: whole("free_requests_per_minute", 1.0)?.map_or(20, |v| v as u32),
        timeout_s: positive("timeout_s", 600.0)?,
        max_attempts: whole("max_attempts", 1.0)?.map_or(5, |v| v as u32),
        max_retry_time_s: positive("max_retry_time_s", 900.0)?,
        backoff_base_ms: whole("backoff_base_ms", 0.0)?.unwrap_or(2000),
        backoff_max_s: positive("backoff_max_s", 60.0)?,
        max_tokens_cap: whole("max_tokens_cap", 1.0)?,
        empty_retries: whole("empty_retries", 0.0)?.map_or(2, |v| v as u32),
        loc: at,
    })
}
