//! An in-process mock of an OpenAI-compatible (OpenRouter style) chat completion API.
//!
//! A small hand-written HTTP/1.1 server on a tokio `TcpListener`, running on its own thread
//! with its own multi-thread runtime, so it works from sync tests and from inside another
//! runtime alike. Every request is logged (with a 0-based `seq` and an `attempt` count per
//! `(model, prompt)`), answered by a user-supplied behaviour, and the kind of reply sent is
//! logged too, so tests can compare daydream's summary against what the mock really did.
//!
//! Self-contained on purpose: it is included both as `common::mock` and, from a bench, via
//! `#[path = "../tests/common/mock.rs"] mod mock;`.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request as received by the mock.
#[derive(Clone, Debug)]
pub struct Request {
    /// 0-based arrival index.
    pub seq: usize,
    /// HTTP method, e.g. "POST".
    pub method: String,
    /// e.g. "/v1/chat/completions".
    pub path: String,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The parsed JSON body (`Null` if the body is not JSON).
    pub body: Value,
    /// `body.model` ("" if absent).
    pub model: String,
    /// The content of the last user message ("" if none); text parts of a multi-part content are joined.
    pub prompt: String,
    pub temperature: Option<f64>,
    /// `body.max_tokens`, or `body.max_completion_tokens` if that is absent.
    pub max_tokens: Option<u64>,
    /// How many earlier requests had the same `(model, prompt)`: 0 for the first.
    pub attempt: usize,
    /// 0-based index of the TCP connection it came on (accept order), to check keep-alive reuse.
    pub conn: usize,
    /// When it was received, since the server started.
    pub at: Duration,
}

impl Request {
    /// The value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// What the mock does with a request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with a normal chat completion: `choices[0].message.content`, `finish_reason`,
    /// `usage {prompt_tokens, completion_tokens, total_tokens}` plus `usage.cost` (USD) when given,
    /// `id` "gen-<seq>", `model` = `served_model` or else the requested one.
    Ok {
        content: Option<String>,
        finish_reason: String,
        prompt_tokens: u64,
        completion_tokens: u64,
        cost: Option<f64>,
        served_model: Option<String>,
    },
    /// Any status with a JSON body and extra headers.
    Status {
        code: u16,
        body: Value,
        headers: Vec<(String, String)>,
    },
    /// 200 whose body is arbitrary JSON.
    Json(Value),
    /// Never answers; the connection stays open until the client closes it or the server drops.
    Hang,
    /// Closes the connection right after reading the request, without any response bytes.
    Cut,
    /// Sends the status line and headers with a Content-Length, then part of the body, then closes.
    Truncated,
    /// Waits (tokio sleep), then replies.
    Delay(Duration, Box<Reply>),
}

impl Reply {
    /// `Ok` with `finish_reason` "stop", completion tokens ≈ len/4, prompt tokens 10, no cost.
    pub fn text(s: &str) -> Reply {
        Reply::Ok {
            content: Some(s.to_string()),
            finish_reason: "stop".to_string(),
            prompt_tokens: 10,
            completion_tokens: (s.len() as u64).div_ceil(4),
            cost: None,
            served_model: None,
        }
    }

    /// Deterministic content derived from the prompt:
    /// `"Echo of <12 hex of a hash of the prompt>: <first 40 chars of the prompt>\nSCORE: 7"`.
    /// Prompt tokens ≈ prompt len/4.
    pub fn echo(req: &Request) -> Reply {
        let content = echo_text(&req.prompt);
        Reply::Ok {
            completion_tokens: (content.len() as u64).div_ceil(4),
            content: Some(content),
            finish_reason: "stop".to_string(),
            prompt_tokens: (req.prompt.len() as u64).div_ceil(4).max(1),
            cost: None,
            served_model: None,
        }
    }

    /// A status with OpenRouter's error body `{"error":{"code":code,"message":message}}`.
    pub fn error(code: u16, message: &str) -> Reply {
        Reply::Status {
            code,
            body: json!({"error": {"code": code, "message": message}}),
            headers: Vec::new(),
        }
    }

    /// What some proxies do with a request they reject: repeat its `Authorization` header in the
    /// error, as the message and as OpenRouter's `metadata.raw`. Status `code`; with 200, the
    /// error is inside a 200 body (code 502 there, which is retried).
    pub fn echo_authorization(req: &Request, code: u16) -> Reply {
        let auth = req.header("authorization").unwrap_or("(none)");
        let inner = if code == 200 { 502 } else { code };
        Reply::Status {
            code,
            body: json!({"error": {
                "code": inner,
                "message": format!("invalid credentials: {auth}"),
                "metadata": {"raw": format!("upstream saw Authorization: {auth}")},
            }}),
            headers: Vec::new(),
        }
    }

    /// 429 with `Retry-After: <secs>`, `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset`
    /// (epoch milliseconds, `secs` from now).
    pub fn rate_limited(retry_after_secs: u64) -> Reply {
        let reset_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            + retry_after_secs * 1000;
        Reply::Status {
            code: 429,
            body: json!({"error": {"code": 429, "message": "Rate limit exceeded"}}),
            headers: vec![
                ("Retry-After".into(), retry_after_secs.to_string()),
                ("X-RateLimit-Remaining".into(), "0".into()),
                ("X-RateLimit-Reset".into(), reset_ms.to_string()),
            ],
        }
    }

    /// This reply after `d`.
    pub fn after(self, d: Duration) -> Reply {
        Reply::Delay(d, Box::new(self))
    }

    /// What gets logged for this reply: "ok", "status:<code>", "json", "hang", "cut", "truncated"
    /// (a `Delay` logs its inner reply).
    pub fn kind(&self) -> &'static str {
        match self {
            Reply::Ok { .. } => "ok",
            Reply::Status { code, .. } => status_kind(*code),
            Reply::Json(_) => "json",
            Reply::Hang => "hang",
            Reply::Cut => "cut",
            Reply::Truncated => "truncated",
            Reply::Delay(_, r) => r.kind(),
        }
    }
}

/// "status:<code>" as a `&'static str` (one leaked string per distinct code, ever).
fn status_kind(code: u16) -> &'static str {
    static KINDS: std::sync::OnceLock<Mutex<HashMap<u16, &'static str>>> = std::sync::OnceLock::new();
    let mut kinds = KINDS.get_or_init(Default::default).lock().unwrap();
    kinds
        .entry(code)
        .or_insert_with(|| Box::leak(format!("status:{code}").into_boxed_str()))
}

/// An answer that differs per model and prompt, so no two tasks share a call:
/// `"<model> says: <echo_text>"`.
pub fn per_model(r: &Request) -> Reply {
    let content = format!("{} says: {}", r.model, echo_text(&r.prompt));
    Reply::Ok {
        completion_tokens: content.len() as u64 / 4,
        content: Some(content),
        finish_reason: "stop".into(),
        prompt_tokens: r.prompt.len() as u64 / 4,
        cost: None,
        served_model: None,
    }
}

/// The content `Reply::echo` answers for a prompt.
pub fn echo_text(prompt: &str) -> String {
    let head: String = prompt.chars().take(40).collect();
    format!("Echo of {}: {head}\nSCORE: 7", hash12(prompt))
}

/// 12 hex digits of a 64-bit FNV-1a hash.
pub fn hash12(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:012x}", h >> 16)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) that depends only on `(seed, seq)`.
pub fn unit(seed: u64, seq: usize) -> f64 {
    let x = splitmix64(splitmix64(seed) ^ (seq as u64).wrapping_mul(0xd6e8_feb8_6659_fd93));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// A fault-injecting behaviour: per request, a draw from a PRNG keyed by `(seed, seq)` picks
/// 429 (`Retry-After: 0`, OpenRouter error body) with probability `p429`, 500 with `p500`,
/// `Hang` with `phang`, `Cut` with `pcut`, and `Reply::echo` otherwise. Everything but `Hang`
/// is delayed by `latency` (when non-zero). What was picked is in `MockServer::replies`.
pub fn chaos(
    seed: u64,
    p429: f64,
    p500: f64,
    phang: f64,
    pcut: f64,
    latency: Duration,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |req: &Request| {
        let u = unit(seed, req.seq);
        let reply = if u < p429 {
            Reply::rate_limited(0)
        } else if u < p429 + p500 {
            Reply::error(500, "Internal Server Error")
        } else if u < p429 + p500 + phang {
            return Reply::Hang;
        } else if u < p429 + p500 + phang + pcut {
            Reply::Cut
        } else {
            Reply::echo(req)
        };
        if latency.is_zero() {
            reply
        } else {
            Reply::Delay(latency, Box::new(reply))
        }
    }
}

type Behavior = Arc<dyn Fn(&Request) -> Reply + Send + Sync + 'static>;

#[derive(Default)]
struct Log {
    /// Indexed by seq.
    requests: Vec<Arc<Request>>,
    /// Indexed by seq: the kind of reply decided ("" until the behaviour has answered).
    kinds: Vec<&'static str>,
    /// model -> prompt -> how many requests so far.
    attempts: HashMap<String, HashMap<String, usize>>,
}

struct Shared {
    started: std::time::Instant,
    behavior: RwLock<Behavior>,
    log: Mutex<Log>,
    connections: AtomicUsize,
}

/// The mock server. Dropping it stops accepting, drops every open connection and ends its thread.
pub struct MockServer {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    /// Starts on 127.0.0.1:0 on its own thread with its own multi-thread tokio runtime.
    pub fn start(behavior: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> MockServer {
        let shared = Arc::new(Shared {
            started: std::time::Instant::now(),
            behavior: RwLock::new(Arc::new(behavior)),
            log: Mutex::new(Log {
                requests: Vec::with_capacity(1024),
                kinds: Vec::with_capacity(1024),
                attempts: HashMap::with_capacity(16),
            }),
            connections: AtomicUsize::new(0),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mock-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("mock-server-worker")
                    .enable_all()
                    .build()
                    .expect("mock: runtime");
                rt.block_on(async move {
                    // A deep accept backlog: with std's default of 128, a burst of a thousand
                    // connects overflows it and the dropped SYNs are retried only after 1 s.
                    let socket = tokio::net::TcpSocket::new_v4().expect("mock: socket");
                    socket.bind("127.0.0.1:0".parse().unwrap()).expect("mock: bind");
                    let listener = socket.listen(8192).expect("mock: listen");
                    let addr = listener.local_addr().expect("mock: local_addr");
                    ready_tx.send(addr).expect("mock: ready");
                    accept_loop(listener, sh, rx).await
                });
                // Connections still open (hangs, keep-alive) are dropped with the runtime,
                // which waits for its workers to stop.
                drop(rt);
            })
            .expect("mock: spawn thread");
        let addr = ready_rx.recv().expect("mock: server thread failed to start");
        MockServer {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// "http://127.0.0.1:PORT/v1"
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Every request received, in arrival order (`seq` order).
    pub fn requests(&self) -> Vec<Request> {
        let log = self.shared.log.lock().unwrap();
        log.requests.iter().map(|r| Request::clone(r)).collect()
    }

    /// How many TCP connections were accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        self.shared.log.lock().unwrap().requests.len()
    }

    /// Replaces the behaviour for requests arriving from now on.
    pub fn set_behavior(&self, behavior: impl Fn(&Request) -> Reply + Send + Sync + 'static) {
        *self.shared.behavior.write().unwrap() = Arc::new(behavior);
    }

    /// Per request seq, the kind of reply decided for it ("ok", "status:429", "json", "hang",
    /// "cut", "truncated"; see `Reply::kind`), in seq order. A request whose behaviour panicked
    /// is answered (and logged) as "status:500"; a request whose behaviour has not returned yet
    /// is left out.
    pub fn replies(&self) -> Vec<(usize, &'static str)> {
        let log = self.shared.log.lock().unwrap();
        log.kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| !k.is_empty())
            .map(|(seq, k)| (seq, *k))
            .collect()
    }

    /// How many replies of each kind were decided.
    pub fn reply_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for k in self.shared.log.lock().unwrap().kinds.iter() {
            if !k.is_empty() {
                *m.entry(*k).or_insert(0) += 1;
            }
        }
        m
    }

    /// How many replies of one kind were decided.
    pub fn replies_of(&self, kind: &str) -> usize {
        let log = self.shared.log.lock().unwrap();
        log.kinds.iter().filter(|k| **k == kind).count()
    }

    /// Forgets every request and reply logged so far (seq and attempts restart from 0).
    /// Meant for quiet moments: a request in flight across it may get its reply kind lost.
    pub fn clear(&self) {
        let mut log = self.shared.log.lock().unwrap();
        log.requests.clear();
        log.kinds.clear();
        log.attempts.clear();
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = shared.connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve_connection(stream, shared.clone(), conn));
                }
                // E.g. out of file descriptors: back off a little instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
        }
    }
}

/// A parsed request head and body, before logging.
struct Raw {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

enum ReadError {
    /// The peer closed (or errored) between requests: end quietly.
    Closed,
    /// Malformed request: answer 400 and close.
    Bad(&'static str),
}

const MAX_HEAD: usize = 64 * 1024;

async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>, conn: usize) {
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    loop {
        let raw = match read_request(&mut stream, &mut buf).await {
            Ok(raw) => raw,
            Err(ReadError::Closed) => return,
            Err(ReadError::Bad(msg)) => {
                let body = json!({"error": {"code": 400, "message": msg}}).to_string();
                let _ = write_response(&mut stream, 400, &[], body.as_bytes(), false, None).await;
                return;
            }
        };
        let keep_alive = raw.keep_alive;
        let req = log_request(&shared, raw, conn);
        let behavior = shared.behavior.read().unwrap().clone();
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| behavior(&req)))
            .unwrap_or_else(|_| Reply::error(500, "mock behaviour panicked"));
        if let Some(k) = shared.log.lock().unwrap().kinds.get_mut(req.seq) {
            *k = reply.kind();
        }

        let mut reply = reply;
        while let Reply::Delay(d, inner) = reply {
            tokio::time::sleep(d).await;
            reply = *inner;
        }
        let ok = match reply {
            Reply::Ok {
                content,
                finish_reason,
                prompt_tokens,
                completion_tokens,
                cost,
                served_model,
            } => {
                let body = completion_body(
                    &req,
                    content.as_deref(),
                    &finish_reason,
                    prompt_tokens,
                    completion_tokens,
                    cost,
                    served_model.as_deref(),
                );
                write_response(&mut stream, 200, &[], &body, keep_alive, None).await
            }
            Reply::Status { code, body, headers } => {
                let body = serde_json::to_vec(&body).unwrap_or_default();
                write_response(&mut stream, code, &headers, &body, keep_alive, None).await
            }
            Reply::Json(body) => {
                let body = serde_json::to_vec(&body).unwrap_or_default();
                write_response(&mut stream, 200, &[], &body, keep_alive, None).await
            }
            Reply::Hang => {
                // Keep the connection open, discarding input, until the client closes it
                // (or the server is dropped, which drops this task).
                let mut sink = [0u8; 1024];
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
                return;
            }
            Reply::Cut => return,
            Reply::Truncated => {
                let content = echo_text(&req.prompt);
                let body = completion_body(&req, Some(&content), "stop", 10, 10, None, None);
                let _ = write_response(&mut stream, 200, &[], &body, false, Some(0.5)).await;
                let _ = stream.shutdown().await;
                return;
            }
            Reply::Delay(..) => unreachable!("delays were unwrapped above"),
        };
        if ok.is_err() || !keep_alive {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// The JSON of a chat completion, written directly (no `Value` tree).
fn completion_body(
    req: &Request,
    content: Option<&str>,
    finish_reason: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost: Option<f64>,
    served_model: Option<&str>,
) -> Vec<u8> {
    use std::io::Write;
    let js = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let content = content.map_or_else(|| "null".to_string(), js);
    let mut out = Vec::with_capacity(320 + content.len() + req.model.len());
    let _ = write!(
        out,
        "{{\"id\":\"gen-{seq}\",\"object\":\"chat.completion\",\"created\":{created},\
         \"model\":{model},\"provider\":\"Mock\",\"choices\":[{{\"index\":0,\
         \"message\":{{\"role\":\"assistant\",\"content\":{content}}},\
         \"finish_reason\":{finish}}}],\"usage\":{{\"prompt_tokens\":{prompt_tokens},\
         \"completion_tokens\":{completion_tokens},\"total_tokens\":{total}",
        seq = req.seq,
        created = 1_700_000_000 + req.seq as u64,
        model = js(served_model.unwrap_or(&req.model)),
        finish = js(finish_reason),
        total = prompt_tokens + completion_tokens,
    );
    if let Some(c) = cost {
        let _ = write!(out, ",\"cost\":{}", serde_json::to_string(&c).unwrap_or_default());
    }
    out.extend_from_slice(b"}}");
    out
}

fn log_request(shared: &Shared, raw: Raw, conn: usize) -> Arc<Request> {
    let body: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
    let model = body.get("model").and_then(Value::as_str).unwrap_or("").to_string();
    let prompt = last_user_message(&body);
    let temperature = body.get("temperature").and_then(Value::as_f64);
    let max_tokens = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64);
    let mut req = Request {
        seq: 0,
        method: raw.method,
        path: raw.path,
        headers: raw.headers,
        body,
        model,
        prompt,
        temperature,
        max_tokens,
        attempt: 0,
        conn,
        at: shared.started.elapsed(),
    };
    let mut log = shared.log.lock().unwrap();
    req.seq = log.requests.len();
    if !log.attempts.contains_key(&req.model) {
        log.attempts.insert(req.model.clone(), HashMap::new());
    }
    let prompts = log.attempts.get_mut(&req.model).expect("just inserted");
    req.attempt = match prompts.get_mut(&req.prompt) {
        Some(n) => {
            *n += 1;
            *n - 1
        }
        None => {
            prompts.insert(req.prompt.clone(), 1);
            0
        }
    };
    let req = Arc::new(req);
    log.requests.push(req.clone());
    log.kinds.push("");
    req
}

fn last_user_message(body: &Value) -> String {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    let Some(m) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    else {
        return String::new();
    };
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads more bytes into `buf`; `Closed` on EOF or error.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), ReadError> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(8 * 1024);
    }
    match stream.read_buf(buf).await {
        Ok(0) | Err(_) => Err(ReadError::Closed),
        Ok(_) => Ok(()),
    }
}

/// Reads one request from the connection; bytes after it (pipelining) stay in `buf`.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Raw, ReadError> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Bad("request head too large"));
        }
        fill(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| ReadError::Bad("non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ReadError::Bad("bad request line"));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let http10 = version.eq_ignore_ascii_case("HTTP/1.0");
    let mut headers = Vec::with_capacity(16);
    let mut content_length: usize = 0;
    let mut chunked = false;
    let mut keep_alive = !http10;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Err(ReadError::Bad("bad header line"));
        };
        let k = k.trim().to_ascii_lowercase();
        let v = v.trim().to_string();
        match k.as_str() {
            "content-length" => content_length = v.parse().map_err(|_| ReadError::Bad("bad content-length"))?,
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let v = v.to_ascii_lowercase();
                if v.contains("close") {
                    keep_alive = false;
                } else if v.contains("keep-alive") {
                    keep_alive = true;
                }
            }
            _ => {}
        }
        headers.push((k, v));
    }
    buf.drain(..head_end + 4);

    let body = if chunked {
        read_chunked(stream, buf).await?
    } else {
        while buf.len() < content_length {
            if buf.capacity() < content_length {
                buf.reserve(content_length - buf.len());
            }
            fill(stream, buf).await?;
        }
        buf.drain(..content_length).collect()
    };
    Ok(Raw {
        method,
        path,
        headers,
        body,
        keep_alive,
    })
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buf, b"\r\n") {
                break i;
            }
            fill(stream, buf).await?;
        };
        let size_str = std::str::from_utf8(&buf[..line_end]).map_err(|_| ReadError::Bad("bad chunk"))?;
        let size_str = size_str.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16).map_err(|_| ReadError::Bad("bad chunk size"))?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers (ignored) up to the empty line.
            loop {
                if buf.starts_with(b"\r\n") {
                    buf.drain(..2);
                    return Ok(body);
                }
                if let Some(i) = find(buf, b"\r\n\r\n") {
                    buf.drain(..i + 4);
                    return Ok(body);
                }
                fill(stream, buf).await?;
            }
        }
        while buf.len() < size + 2 {
            fill(stream, buf).await?;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes a full response in one write; with `truncate = Some(f)`, only that fraction of the
/// body is sent (the Content-Length still announces the whole body).
async fn write_response(
    stream: &mut TcpStream,
    code: u16,
    extra: &[(String, String)],
    body: &[u8],
    keep_alive: bool,
    truncate: Option<f64>,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {code} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {}\r\n",
            reason(code),
            body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        )
        .as_bytes(),
    );
    for (k, v) in extra {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let n = match truncate {
        Some(f) => ((body.len() as f64 * f) as usize).clamp(1, body.len().saturating_sub(1)),
        None => body.len(),
    };
    out.extend_from_slice(&body[..n]);
    stream.write_all(&out).await?;
    stream.flush().await
}
