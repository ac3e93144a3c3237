//! One client for OpenAI-compatible chat completions, and the classification of every outcome.
//!
//! `attempt` makes one HTTP request and says what it means (success, retry, fail this task, stop
//! this model, stop everything); `call` drives attempts with backoff, jitter, `Retry-After`, an
//! attempt bound and a wall-time bound. Only the executor calls this module; it never touches
//! the store or the disk. API keys live in `Secret`, which never prints; every secret a provider
//! sends back is removed from its response before anything reads it (`attempt`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod body;
pub use body::request_body;

/// An API key. Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Installs rustls' ring provider for the process, once: reqwest is built without one (here and
/// in object_store's S3 client).
pub fn install_crypto_provider() {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // another part of the process may have installed one already: that one is as good
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The HTTP client: rustls with the ring provider (installed once per process), connection
/// reuse, no Nagle delay.
pub fn client() -> reqwest::Result<reqwest::Client> {
    install_crypto_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
}

/// Everything the client needs to talk to one provider.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub provider: String,
    /// Where requests go: one URL, or several servers of the same model (the local model's),
    /// each given one request at a time.
    pub base_urls: Vec<String>,
    pub key: Option<Secret>,
    /// Name of the variable the key came from, for messages.
    pub key_env: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub max_retry_time: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub empty_retries: u32,
    /// Removes the run's secrets from whatever comes back (`crate::llm::secrets`).
    pub redactor: Arc<crate::llm::secrets::Redactor>,
}

/// One chat completion to make.
#[derive(Clone, Debug)]
pub struct CallSpec {
    pub model: String,
    /// Sent as a system message before the prompt (the seed sent none).
    pub system: Option<Arc<str>>,
    pub prompt: Arc<str>,
    pub temperature: f64,
    pub max_tokens: u64,
    /// A llama.cpp grammar (GBNF) the answer must follow, sent as `grammar` (local model only).
    pub grammar: Option<Arc<str>>,
}

/// What came back from a 200 with choices.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Reply {
    pub text: String,
    pub finish_reason: Option<String>,
    pub response_id: Option<String>,
    pub served_model: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// USD, when the provider reports it (OpenRouter: usage.cost).
    pub cost: Option<f64>,
}

/// Why a call did not succeed (or succeeded with a flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    RateLimited,
    DailyCap,
    ServerError,
    Timeout,
    Connection,
    BadResponse,
    NoChoices,
    FinishError,
    BadRequest,
    ModelNotFound,
    Unauthorized,
    NoCredits,
    Forbidden,
    Empty,
    Truncated,
    Budget,
    Stopped,
    /// The prompt is longer than the model's context: no request is sent.
    ContextLength,
}

impl Cause {
    pub fn describe(self) -> &'static str {
        match self {
            Cause::RateLimited => "rate limited (429), retries exhausted",
            Cause::DailyCap => "daily request cap used up (429)",
            Cause::ServerError => "server error (408/5xx), retries exhausted",
            Cause::Timeout => "timed out, retries exhausted",
            Cause::Connection => "connection failed, retries exhausted",
            Cause::BadResponse => "unreadable response, retries exhausted",
            Cause::NoChoices => "200 without choices, retries exhausted",
            Cause::FinishError => "finish_reason \"error\", retries exhausted",
            Cause::BadRequest => "rejected as a bad request (400)",
            Cause::ModelNotFound => "model not found (404)",
            Cause::Unauthorized => "API key rejected (401)",
            Cause::NoCredits => "out of credits (402)",
            Cause::Forbidden => "forbidden (403)",
            Cause::Empty => "empty answer after retries",
            Cause::Truncated => "truncated at max_tokens",
            Cause::Budget => "not started: budget reached",
            Cause::Stopped => "not started: calls were stopped",
            Cause::ContextLength => "prompt longer than the model's context, not sent",
        }
    }
}

/// What one attempt means.
#[derive(Debug)]
pub enum Verdict {
    Ok(Reply),
    Retry {
        cause: Cause,
        message: String,
        after: Option<Duration>,
        reply: Option<Reply>,
    },
    FailTask {
        cause: Cause,
        message: String,
    },
    StopModel {
        cause: Cause,
        message: String,
    },
    StopAll {
        cause: Cause,
        message: String,
    },
}

/// The per-provider parts of every request, built once.
pub struct Prepared {
    urls: Vec<reqwest::Url>,
    headers: reqwest::header::HeaderMap,
    /// With several servers: a permit per server, and which servers are free.
    pool: Option<(tokio::sync::Semaphore, std::sync::Mutex<VecDeque<usize>>)>,
}

/// The server an attempt goes to; given back when dropped.
struct Slot<'p> {
    url: &'p reqwest::Url,
    back: Option<(
        usize,
        &'p std::sync::Mutex<VecDeque<usize>>,
        tokio::sync::SemaphorePermit<'p>,
    )>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some((i, free, _permit)) = self.back.take() {
            // to the back: the server that waited longest goes next, so one that fails at once
            // (a server that died) does not take every call
            free.lock().expect("server pool lock").push_back(i);
        }
    }
}

impl Prepared {
    /// The only URL, or a free server of several (waiting for one).
    async fn slot(&self) -> Slot<'_> {
        let Some((permits, free)) = &self.pool else {
            return Slot {
                url: &self.urls[0],
                back: None,
            };
        };
        let permit = permits.acquire().await.expect("the server pool is never closed");
        let i = free
            .lock()
            .expect("server pool lock")
            .pop_front()
            .expect("a permit is held for every free server");
        Slot {
            url: &self.urls[i],
            back: Some((i, free, permit)),
        }
    }
}

impl Endpoint {
    /// Parses the URLs and headers once for all calls; an invalid one is a configuration error.
    pub fn prepare(&self) -> Result<Prepared, String> {
        let urls = self
            .base_urls
            .iter()
            .map(|base| {
                let url = format!("{}/chat/completions", base.trim_end_matches('/'));
                reqwest::Url::parse(&url).map_err(|e| {
                    let shown = crate::llm::secrets::without_userinfo(&url);
                    format!("provider `{}`: bad base URL {shown}: {e}", self.provider)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            return Err(format!("provider `{}` has no base URL", self.provider));
        }
        let pool = (urls.len() > 1).then(|| {
            (
                tokio::sync::Semaphore::new(urls.len()),
                std::sync::Mutex::new((0..urls.len()).collect()),
            )
        });
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        if let Some(key) = &self.key {
            let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                format!(
                    "provider `{}`: the API key holds characters a header cannot",
                    self.provider
                )
            })?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        for (k, v) in &self.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("provider `{}`: header {k}: {e}", self.provider))?;
            let value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|e| format!("provider `{}`: header {k}: {e}", self.provider))?;
            headers.insert(name, value);
        }
        Ok(Prepared { urls, headers, pool })
    }
}

pub async fn attempt(client: &reqwest::Client, ep: &Endpoint, prepared: &Prepared, call: &CallSpec) -> Verdict {
    let body = request_body(call);
    let slot = prepared.slot().await;
    let req = client
        .post(slot.url.clone())
        .timeout(ep.timeout)
        .headers(prepared.headers.clone())
        .body(body);
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return transport_error(&e, &ep.redactor),
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return transport_error(&e, &ep.redactor),
    };
    // where provider text enters: no secret it echoes goes further
    let bytes = ep.redactor.bytes(&bytes);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| ep.redactor.text(v.to_owned()))
    };
    classify(status, &bytes, &header, ep)
}

fn transport_error(e: &reqwest::Error, redactor: &crate::llm::secrets::Redactor) -> Verdict {
    let cause = if e.is_timeout() {
        Cause::Timeout
    } else {
        Cause::Connection
    };
    // reqwest's message names the URL (never the key); the source chain says what broke
    let mut message = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    Verdict::Retry {
        cause,
        message: redactor.text(message),
        after: None,
        reply: None,
    }
}

fn error_message(body: &Value) -> String {
    let e = &body["error"];
    let msg = e["message"].as_str().or_else(|| e.as_str()).unwrap_or("");
    let meta = e["metadata"]["raw"]
        .as_str()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let mut m = format!("{msg}{meta}");
    m.truncate(500);
    m
}

/// Classifies a response by status, headers and body.
pub fn classify(status: u16, bytes: &[u8], header: &dyn Fn(&str) -> Option<String>, ep: &Endpoint) -> Verdict {
    if status == 200
        && let Some(v) = classify_plain_ok(bytes)
    {
        return v;
    }
    classify_any(status, bytes, header, ep)
}

/// A 200 as almost every answer is: choices, no error object, every field of the expected type.
/// Read into borrowed fields rather than a `Value` tree (a third of the work); `None` for any other
/// shape, which `classify_any` then reads exactly as before.
fn classify_plain_ok(bytes: &[u8]) -> Option<Verdict> {
    use std::borrow::Cow;
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow, default)]
        id: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        model: Option<Cow<'a, str>>,
        #[serde(borrow)]
        choices: Vec<Choice<'a>>,
        #[serde(default)]
        usage: Option<Usage>,
        #[serde(default)]
        error: Option<serde::de::IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct Choice<'a> {
        #[serde(borrow)]
        message: Message<'a>,
        #[serde(borrow, default)]
        finish_reason: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        content: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize, Default)]
    struct Usage {
        #[serde(default)]
        prompt_tokens: Option<u64>,
        #[serde(default)]
        completion_tokens: Option<u64>,
        #[serde(default)]
        cost: Option<f64>,
    }
    let body: Body = serde_json::from_slice(bytes).ok()?;
    let choice = body.choices.into_iter().next()?;
    if body.error.is_some() || choice.finish_reason.as_deref() == Some("error") {
        return None;
    }
    let usage = body.usage.unwrap_or_default();
    let reply = Reply {
        text: crate::engine::text::py_strip(choice.message.content.as_deref().unwrap_or("")).to_owned(),
        finish_reason: choice.finish_reason.map(Cow::into_owned),
        response_id: body.id.map(Cow::into_owned),
        served_model: body.model.map(Cow::into_owned),
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        cost: usage.cost,
    };
    Some(ok_or_empty(reply))
}

/// A reply with choices: an answer, or an empty one to retry.
fn ok_or_empty(reply: Reply) -> Verdict {
    if reply.text.is_empty() {
        return Verdict::Retry {
            cause: Cause::Empty,
            message: "200 with empty content".into(),
            after: None,
            reply: Some(reply),
        };
    }
    Verdict::Ok(reply)
}

/// Classifies any response from its `Value`.
fn classify_any(status: u16, bytes: &[u8], header: &dyn Fn(&str) -> Option<String>, ep: &Endpoint) -> Verdict {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let detail = || {
        let m = error_message(&body);
        if m.is_empty() {
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
        } else {
            m
        }
    };
    match status {
        200 => classify_ok(&body, bytes),
        429 => rate_limited(header, detail()),
        408 | 500..=599 => Verdict::Retry {
            cause: Cause::ServerError,
            message: format!("HTTP {status}: {}", detail()),
            after: retry_after(header),
            reply: None,
        },
        400 | 413 | 422 => Verdict::FailTask {
            cause: Cause::BadRequest,
            message: format!("HTTP {status}: {}", detail()),
        },
        404 => Verdict::StopModel {
            cause: Cause::ModelNotFound,
            message: format!("HTTP 404: {}", detail()),
        },
        401 => Verdict::StopAll {
            cause: Cause::Unauthorized,
            message: format!(
                "provider `{}` rejected the API key{} (401: {}); check the key",
                ep.provider,
                ep.key_env.as_deref().map(|v| format!(" in ${v}")).unwrap_or_default(),
                detail()
            ),
        },
        402 => Verdict::StopAll {
            cause: Cause::NoCredits,
            message: format!(
                "provider `{}` says the account is out of credits (402: {}); add credits, then run again",
                ep.provider,
                detail()
            ),
        },
        403 => Verdict::StopAll {
            cause: Cause::Forbidden,
            message: format!(
                "provider `{}` refused the request (403: {}); check the key's permissions and limits",
                ep.provider,
                detail()
            ),
        },
        _ => Verdict::FailTask {
            cause: Cause::BadRequest,
            message: format!("HTTP {status}: {}", detail()),
        },
    }
}

fn retry_after(header: &dyn Fn(&str) -> Option<String>) -> Option<Duration> {
    header("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn rate_limited(header: &dyn Fn(&str) -> Option<String>, message: String) -> Verdict {
    // A free-tier daily cap: nothing left, and the window resets far in the future.
    let remaining = header("x-ratelimit-remaining").and_then(|v| v.trim().parse::<f64>().ok());
    let reset_ms = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<f64>().ok());
    if remaining == Some(0.0)
        && let Some(reset) = reset_ms
    {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_millis() as f64);
        // seconds or milliseconds since the epoch
        let reset_ms = if reset < 1e11 { reset * 1000.0 } else { reset };
        let wait = Duration::from_millis(((reset_ms - now_ms).max(0.0)) as u64);
        if wait > Duration::from_secs(15 * 60) {
            return Verdict::StopModel {
                cause: Cause::DailyCap,
                message: format!(
                    "429 with X-RateLimit-Remaining: 0 until {:.1} h from now: {message}",
                    wait.as_secs_f64() / 3600.0
                ),
            };
        }
        return Verdict::Retry {
            cause: Cause::RateLimited,
            message: format!("HTTP 429: {message}"),
            after: Some(wait.max(retry_after(header).unwrap_or_default())),
            reply: None,
        };
    }
    Verdict::Retry {
        cause: Cause::RateLimited,
        message: format!("HTTP 429: {message}"),
        after: retry_after(header),
        reply: None,
    }
}

fn classify_ok(body: &Value, bytes: &[u8]) -> Verdict {
    if body.is_null() {
        let mut m = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        m.insert_str(0, "200 with a body that is not JSON: ");
        return Verdict::Retry {
            cause: Cause::BadResponse,
            message: m,
            after: None,
            reply: None,
        };
    }
    if !body["error"].is_null() {
        let code = body["error"]["code"]
            .as_u64()
            .or_else(|| body["error"]["code"].as_str().and_then(|s| s.parse().ok()));
        let message = format!(
            "error inside a 200 body (code {}): {}",
            code.map_or("?".into(), |c| c.to_string()),
            error_message(body)
        );
        return match code {
            Some(429) => Verdict::Retry {
                cause: Cause::RateLimited,
                message,
                after: None,
                reply: None,
            },
            Some(400) => Verdict::FailTask {
                cause: Cause::BadRequest,
                message,
            },
            Some(404) => Verdict::StopModel {
                cause: Cause::ModelNotFound,
                message,
            },
            Some(401) => Verdict::StopAll {
                cause: Cause::Unauthorized,
                message,
            },
            Some(402) => Verdict::StopAll {
                cause: Cause::NoCredits,
                message,
            },
            _ => Verdict::Retry {
                cause: Cause::ServerError,
                message,
                after: None,
                reply: None,
            },
        };
    }
    let Some(choice) = body["choices"].as_array().and_then(|c| c.first()) else {
        return Verdict::Retry {
            cause: Cause::NoChoices,
            message: "200 without choices".into(),
            after: None,
            reply: None,
        };
    };
    let usage = &body["usage"];
    let reply = Reply {
        // the seed strips the text
        text: crate::engine::text::py_strip(choice["message"]["content"].as_str().unwrap_or("")).to_owned(),
        finish_reason: choice["finish_reason"].as_str().map(str::to_owned),
        response_id: body["id"].as_str().map(str::to_owned),
        served_model: body["model"].as_str().map(str::to_owned),
        prompt_tokens: usage["prompt_tokens"].as_u64(),
        completion_tokens: usage["completion_tokens"].as_u64(),
        cost: usage["cost"].as_f64(),
    };
    if reply.finish_reason.as_deref() == Some("error") {
        let message = format!("finish_reason \"error\": {}", error_message(choice));
        return Verdict::Retry {
            cause: Cause::FinishError,
            message,
            after: None,
            reply: Some(reply),
        };
    }
    ok_or_empty(reply)
}

/// The outcome of a call after all its attempts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Outcome {
    /// ok, truncated, empty or failed
    pub status: String,
    pub cause: Option<Cause>,
    pub error: Option<String>,
    pub reply: Option<Reply>,
    pub attempts: u32,
    pub latency_ms: u64,
    /// Cost of every attempt that reported one (failed attempts can cost too).
    pub cost: Option<f64>,
}

/// What the run-wide limiter says before an attempt.
pub enum Gate {
    Go,
    Stop(Cause),
}

/// Hooks the executor gives `call`: pacing and stop flags shared by the whole run.
pub trait Limiter: Send + Sync {
    /// Waits for this model's turn (requests per minute); says whether calls were stopped.
    fn before_attempt(&self, model: &str) -> impl std::future::Future<Output = Gate> + Send;
    fn stop_model(&self, model: &str, why: &str);
    fn stop_all(&self, why: &str);
}

/// Backoff before retry `n` (1-based): base * 2^(n-1), capped, with full jitter.
pub fn backoff(ep: &Endpoint, n: u32, rng: &mut u64) -> Duration {
    let exp = ep
        .backoff_base
        .saturating_mul(1u32 << (n - 1).min(16))
        .min(ep.backoff_max);
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let frac = (*rng % 1000) as f64 / 1000.0;
    // between half and all of the exponential delay
    exp.mul_f64(0.5 + frac / 2.0)
}

/// Makes a call with retries, bounded by attempts and wall time.
pub async fn call(
    client: &reqwest::Client,
    ep: &Endpoint,
    prepared: &Prepared,
    spec: &CallSpec,
    limiter: &impl Limiter,
    seed: u64,
) -> Outcome {
    let start = Instant::now();
    let mut rng = seed | 1;
    let mut attempts = 0u32;
    let mut empties = 0u32;
    let mut cost: Option<f64> = None;
    let done = |status: &str,
                cause: Option<Cause>,
                error: Option<String>,
                reply: Option<Reply>,
                attempts: u32,
                cost: Option<f64>| Outcome {
        status: status.to_owned(),
        cause,
        error,
        reply,
        attempts,
        latency_ms: start.elapsed().as_millis() as u64,
        cost,
    };
    loop {
        if let Gate::Stop(cause) = limiter.before_attempt(&spec.model).await {
            return done(
                "failed",
                Some(cause),
                Some(cause.describe().to_owned()),
                None,
                attempts,
                cost,
            );
        }
        attempts += 1;
        let verdict = attempt(client, ep, prepared, spec).await;
        let add_cost = |cost: &mut Option<f64>, r: &Option<Reply>| {
            if let Some(c) = r.as_ref().and_then(|r| r.cost) {
                *cost = Some(cost.unwrap_or(0.0) + c);
            }
        };
        match verdict {
            Verdict::Ok(reply) => {
                let c = Some(reply.cost.map_or(cost, |c| Some(cost.unwrap_or(0.0) + c))).flatten();
                let truncated = reply.finish_reason.as_deref() == Some("length");
                let status = if truncated { "truncated" } else { "ok" };
                return done(
                    status,
                    truncated.then_some(Cause::Truncated),
                    None,
                    Some(reply),
                    attempts,
                    c,
                );
            }
            Verdict::Retry {
                cause,
                message,
                after,
                reply,
            } => {
                add_cost(&mut cost, &reply);
                if cause == Cause::Empty {
                    empties += 1;
                    if empties > ep.empty_retries {
                        return done("empty", Some(Cause::Empty), Some(message), reply, attempts, cost);
                    }
                }
                let delay = after.unwrap_or_else(|| backoff(ep, attempts, &mut rng));
                if attempts >= ep.max_attempts || start.elapsed() + delay > ep.max_retry_time {
                    return done(
                        "failed",
                        Some(cause),
                        Some(format!("{message} (after {attempts} attempts)")),
                        None,
                        attempts,
                        cost,
                    );
                }
                tokio::time::sleep(delay).await;
            }
            Verdict::FailTask { cause, message } => {
                return done("failed", Some(cause), Some(message), None, attempts, cost);
            }
            Verdict::StopModel { cause, message } => {
                limiter.stop_model(&spec.model, &message);
                return done("failed", Some(cause), Some(message), None, attempts, cost);
            }
            Verdict::StopAll { cause, message } => {
                limiter.stop_all(&message);
                return done("failed", Some(cause), Some(message), None, attempts, cost);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoint {
        Endpoint {
            provider: "p".into(),
            base_urls: vec!["http://x".into()],
            key: Some(Secret::new("sk-secret".into())),
            key_env: Some("P_KEY".into()),
            headers: vec![],
            timeout: Duration::from_secs(1),
            max_attempts: 5,
            max_retry_time: Duration::from_secs(60),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            empty_retries: 2,
            redactor: Default::default(),
        }
    }

    fn verdict(status: u16, body: &str, headers: &[(&str, &str)]) -> Verdict {
        let h = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.to_string())
        };
        classify(status, body.as_bytes(), &h, &ep())
    }

    #[test]
    fn the_plain_200_path_reads_what_the_value_path_reads() {
        let bodies = [
            r#"{"id":"gen-1","model":"m","choices":[{"message":{"content":"  hi  "},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"cost":0.5}}"#,
            r#"{"choices":[{"message":{"content":"a \"quoted\" \u00e9 answer\n"},"finish_reason":"length"}]}"#,
            r#"{"choices":[{"message":{"content":null},"finish_reason":"stop"}],"usage":null}"#,
            r#"{"choices":[{"message":{},"finish_reason":null}],"usage":{"cost":2}}"#,
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":3.0}}"#,
            r#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":-3}}"#,
            r#"{"choices":[{"message":{"content":"x"}}],"usage":7}"#,
            r#"{"choices":[{"message":{"content":"x"},"finish_reason":"error","error":{"message":"boom"}}]}"#,
            r#"{"choices":[{"message":{"content":"x"}}],"error":{"code":502,"message":"upstream"}}"#,
            r#"{"choices":[{"message":{"content":"x"}}],"error":null}"#,
            r#"{"choices":[],"id":"x"}"#,
            r#"{"id":7,"choices":[{"message":{"content":"x"}}]}"#,
            r#"{"choices":[{"message":{"content":["part"]}}]}"#,
            r#"{"choices":[{"message":{"content":"x"},"finish_reason":1}]}"#,
            r#"{"choices":[{"message":{"content":"first"}},{"message":{"content":"second"}}]}"#,
            r#"{"choices":[{"message":{"content":"x"}}],"choices":[{"message":{"content":"y"}}]}"#,
            r#"{"choices":[{"message":{"content":"x"}}], "extra": {"nested": [1, 2]}}"#,
            "{\"choices\": [",
            "not json",
        ];
        let no_header = |_: &str| None;
        for body in bodies {
            let fast = classify(200, body.as_bytes(), &no_header, &ep());
            let slow = classify_any(200, body.as_bytes(), &no_header, &ep());
            assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{body}");
        }
        // the plain path is taken for the usual answer
        assert!(classify_plain_ok(bodies[0].as_bytes()).is_some());
    }

    #[test]
    fn classifies_every_outcome() {
        let ok = r#"{"id":"gen-1","model":"m","choices":[{"message":{"content":"  hi  "},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"cost":0.5}}"#;
        match verdict(200, ok, &[]) {
            Verdict::Ok(r) => {
                assert_eq!(r.text, "hi");
                assert_eq!(r.cost, Some(0.5));
                assert_eq!(r.response_id.as_deref(), Some("gen-1"));
            }
            v => panic!("{v:?}"),
        }
        assert!(
            matches!(verdict(429, "{}", &[("Retry-After", "3")]), Verdict::Retry { cause: Cause::RateLimited, after: Some(d), .. } if d == Duration::from_secs(3))
        );
        let far = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 6 * 3600 * 1000).to_string();
        assert!(matches!(
            verdict(
                429,
                "{}",
                &[("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", &far)]
            ),
            Verdict::StopModel {
                cause: Cause::DailyCap,
                ..
            }
        ));
        for s in [408, 500, 502, 503] {
            assert!(
                matches!(
                    verdict(s, "{}", &[]),
                    Verdict::Retry {
                        cause: Cause::ServerError,
                        ..
                    }
                ),
                "{s}"
            );
        }
        assert!(
            matches!(verdict(400, r#"{"error":{"message":"context length"}}"#, &[]), Verdict::FailTask { cause: Cause::BadRequest, ref message } if message.contains("context length"))
        );
        assert!(matches!(
            verdict(404, "{}", &[]),
            Verdict::StopModel {
                cause: Cause::ModelNotFound,
                ..
            }
        ));
        for (s, c) in [
            (401, Cause::Unauthorized),
            (402, Cause::NoCredits),
            (403, Cause::Forbidden),
        ] {
            match verdict(s, "{}", &[]) {
                Verdict::StopAll { cause, message } => {
                    assert_eq!(cause, c);
                    assert!(!message.contains("sk-secret"), "{message}");
                }
                v => panic!("{s}: {v:?}"),
            }
        }
        assert!(matches!(
            verdict(200, r#"{"error":{"code":502,"message":"upstream"}}"#, &[]),
            Verdict::Retry {
                cause: Cause::ServerError,
                ..
            }
        ));
        assert!(matches!(
            verdict(200, r#"{"id":"x"}"#, &[]),
            Verdict::Retry {
                cause: Cause::NoChoices,
                ..
            }
        ));
        assert!(matches!(
            verdict(
                200,
                r#"{"choices":[{"message":{"content":"x"},"finish_reason":"error"}]}"#,
                &[]
            ),
            Verdict::Retry {
                cause: Cause::FinishError,
                ..
            }
        ));
        assert!(matches!(
            verdict(
                200,
                r#"{"choices":[{"message":{"content":null},"finish_reason":"stop"}]}"#,
                &[]
            ),
            Verdict::Retry {
                cause: Cause::Empty,
                ..
            }
        ));
        assert!(matches!(
            verdict(200, "{\"choices\": [", &[]),
            Verdict::Retry {
                cause: Cause::BadResponse,
                ..
            }
        ));
        match verdict(
            200,
            r#"{"choices":[{"message":{"content":"cut"},"finish_reason":"length"}]}"#,
            &[],
        ) {
            Verdict::Ok(r) => assert_eq!(r.finish_reason.as_deref(), Some("length")),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let e = ep();
        assert!(!format!("{e:?}").contains("sk-secret"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let e = ep();
        let mut rng = 7;
        let d1 = backoff(&e, 1, &mut rng);
        let d5 = backoff(&e, 5, &mut rng);
        let d20 = backoff(&e, 20, &mut rng);
        assert!(
            d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
            "{d1:?}"
        );
        assert!(
            d5 >= Duration::from_millis(800) && d5 <= Duration::from_millis(1600),
            "{d5:?}"
        );
        assert!(d20 <= Duration::from_secs(2), "{d20:?}");
    }
}
