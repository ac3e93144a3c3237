//! Tests of the in-process mock chat completion server itself (tests/common/mock.rs).

#[path = "common/mock.rs"]
mod mock;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mock::{MockServer, Reply, Request, chaos};
use serde_json::{Value, json};

/// Load tests take this so they do not compete with each other for the CPU (their timings
/// are asserted).
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// reqwest is built with `rustls-no-provider`: building any client panics unless a rustls
/// crypto provider is installed, even for plain http.
fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

fn client() -> reqwest::Client {
    client_builder().build().unwrap()
}

fn chat(model: &str, prompt: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": prompt},
        ],
        "temperature": 0.7,
        "max_tokens": 256,
    })
}

async fn post(c: &reqwest::Client, base: &str, body: &Value) -> reqwest::Result<reqwest::Response> {
    c.post(format!("{base}/chat/completions"))
        .header("Authorization", "Bearer sk-test")
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
}

async fn post_json(c: &reqwest::Client, base: &str, body: &Value) -> (u16, Value) {
    let r = post(c, base, body).await.unwrap();
    let status = r.status().as_u16();
    let bytes = r.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn ok_reply_has_chat_completion_shape_and_request_is_parsed() {
    let server = MockServer::start(|req| Reply::Ok {
        content: Some(format!("hello {}", req.prompt)),
        finish_reason: "length".into(),
        prompt_tokens: 12,
        completion_tokens: 34,
        cost: Some(0.00125),
        served_model: Some("openai/gpt-4o-2024-08-06".into()),
    });
    let c = client();
    let (status, body) = post_json(&c, &server.base_url(), &chat("openai/gpt-4o", "world")).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], "gen-0");
    assert_eq!(body["model"], "openai/gpt-4o-2024-08-06");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "hello world");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["prompt_tokens"], 12);
    assert_eq!(body["usage"]["completion_tokens"], 34);
    assert_eq!(body["usage"]["total_tokens"], 46);
    assert_eq!(body["usage"]["cost"], 0.00125);

    // Defaults: served model = requested one, no cost, content may be null.
    server.set_behavior(|_| Reply::Ok {
        content: None,
        finish_reason: "stop".into(),
        prompt_tokens: 1,
        completion_tokens: 0,
        cost: None,
        served_model: None,
    });
    let (_, body) = post_json(&c, &server.base_url(), &chat("m/x", "p")).await;
    assert_eq!(body["id"], "gen-1");
    assert_eq!(body["model"], "m/x");
    assert!(body["choices"][0]["message"]["content"].is_null());
    assert!(body["usage"].get("cost").is_none());

    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(server.count(), 2);
    let r = &reqs[0];
    assert_eq!(r.seq, 0);
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.model, "openai/gpt-4o");
    assert_eq!(r.prompt, "world");
    assert_eq!(r.temperature, Some(0.7));
    assert_eq!(r.max_tokens, Some(256));
    assert_eq!(r.attempt, 0);
    assert_eq!(r.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert!(r.headers.iter().all(|(k, _)| *k == k.to_ascii_lowercase()));
    assert_eq!(r.body["messages"][0]["role"], "system");
    assert_eq!(reqs[1].seq, 1);
    assert_eq!(server.replies(), vec![(0, "ok"), (1, "ok")]);
}

#[tokio::test]
async fn text_and_echo_helpers() {
    let server = MockServer::start(|req| {
        if req.prompt == "text" {
            Reply::text("abcdefgh")
        } else {
            Reply::echo(req)
        }
    });
    let c = client();
    let (_, body) = post_json(&c, &server.base_url(), &chat("m", "text")).await;
    assert_eq!(body["choices"][0]["message"]["content"], "abcdefgh");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["completion_tokens"], 2);

    let long = "Describe the combination of concepts in exactly one sentence please.";
    let (_, a) = post_json(&c, &server.base_url(), &chat("m", long)).await;
    let (_, b) = post_json(&c, &server.base_url(), &chat("other", long)).await;
    let (_, d) = post_json(&c, &server.base_url(), &chat("m", "different")).await;
    let a = a["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    assert_eq!(a, b["choices"][0]["message"]["content"].as_str().unwrap());
    assert_ne!(a, d["choices"][0]["message"]["content"].as_str().unwrap());
    assert_eq!(a, mock::echo_text(long));
    let (head, score) = a.split_once('\n').unwrap();
    assert_eq!(score, "SCORE: 7");
    let rest = head.strip_prefix("Echo of ").unwrap();
    let (hash, first) = rest.split_once(": ").unwrap();
    assert_eq!(hash.len(), 12);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(first, &long[..40]);
}

#[tokio::test]
async fn status_replies_carry_headers_and_body() {
    let server = MockServer::start(|req| match req.prompt.as_str() {
        "limit" => Reply::rate_limited(3),
        "auth" => Reply::Status {
            code: 401,
            body: json!({"error": {"code": 401, "message": "No auth credentials found"}}),
            headers: vec![],
        },
        _ => Reply::Status {
            code: 503,
            body: json!({"error": {"code": 503, "message": "down"}}),
            headers: vec![("X-Custom".into(), "yes".into())],
        },
    });
    let c = client();
    let r = post(&c, &server.base_url(), &chat("m", "limit")).await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let h = r.headers();
    assert_eq!(h["retry-after"], "3");
    assert_eq!(h["x-ratelimit-remaining"], "0");
    let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!(reset > 1_600_000_000_000, "reset is epoch milliseconds: {reset}");
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], 429);

    let (status, body) = post_json(&c, &server.base_url(), &chat("m", "auth")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "No auth credentials found");

    let r = post(&c, &server.base_url(), &chat("m", "x")).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["x-custom"], "yes");

    let kinds: Vec<&str> = server.replies().into_iter().map(|(_, k)| k).collect();
    assert_eq!(kinds, ["status:429", "status:401", "status:503"]);
    assert_eq!(server.replies_of("status:429"), 1);
}

#[tokio::test]
async fn json_reply_is_a_200_with_that_body() {
    let server = MockServer::start(|req| {
        if req.prompt == "a" {
            Reply::Json(json!({"error": {"code": 502, "message": "Provider returned error"}}))
        } else {
            Reply::Json(json!({
                "id": "gen-x",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                             "finish_reason": "error"}],
            }))
        }
    });
    let c = client();
    let (status, body) = post_json(&c, &server.base_url(), &chat("m", "a")).await;
    assert_eq!(status, 200);
    assert_eq!(body["error"]["code"], 502);
    assert!(body.get("choices").is_none());
    let (status, body) = post_json(&c, &server.base_url(), &chat("m", "b")).await;
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["finish_reason"], "error");
    assert_eq!(server.replies_of("json"), 2);
}

#[tokio::test]
async fn hang_times_out_on_the_client_timeout() {
    let server = MockServer::start(|_| Reply::Hang);
    let c = client_builder().timeout(Duration::from_millis(300)).build().unwrap();
    let t = Instant::now();
    let e = post(&c, &server.base_url(), &chat("m", "p")).await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert!(t.elapsed() >= Duration::from_millis(290));
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(server.count(), 1);
    assert_eq!(server.replies(), vec![(0, "hang")]);
}

#[tokio::test]
async fn cut_yields_a_connection_error() {
    let server = MockServer::start(|_| Reply::Cut);
    let c = client_builder().timeout(Duration::from_secs(5)).build().unwrap();
    let e = post(&c, &server.base_url(), &chat("m", "p")).await.unwrap_err();
    assert!(!e.is_timeout(), "{e:?}");
    assert!(e.is_request() || e.is_connect(), "{e:?}");
    assert!(e.status().is_none());
    // The request was read before the cut (a pooled-connection retry would show up here too).
    assert!(server.count() >= 1);
    assert_eq!(server.replies()[0], (0, "cut"));
}

#[tokio::test]
async fn truncated_yields_a_body_error() {
    let server = MockServer::start(|_| Reply::Truncated);
    let c = client_builder().timeout(Duration::from_secs(5)).build().unwrap();
    let r = post(&c, &server.base_url(), &chat("m", "p")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let e = r.bytes().await.unwrap_err();
    assert!(e.is_body() || e.is_decode(), "{e:?}");
    assert!(!e.is_timeout());
    assert_eq!(server.replies(), vec![(0, "truncated")]);
}

#[tokio::test]
async fn keep_alive_reuses_one_connection_and_close_is_honoured() {
    let server = MockServer::start(Reply::echo);
    let c = client();
    for i in 0..10 {
        let (status, _) = post_json(&c, &server.base_url(), &chat("m", &format!("p{i}"))).await;
        assert_eq!(status, 200);
    }
    assert_eq!(server.count(), 10);
    assert_eq!(server.connections(), 1, "sequential requests share one connection");
    assert!(server.requests().iter().all(|r| r.conn == 0));

    // A client asking for `Connection: close` gets it, and its next request needs a new connection.
    let r = c
        .post(format!("{}/chat/completions", server.base_url()))
        .header("Connection", "close")
        .body(serde_json::to_vec(&chat("m", "bye")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["connection"], "close");
    r.bytes().await.unwrap();
    post_json(&c, &server.base_url(), &chat("m", "again")).await;
    assert_eq!(server.connections(), 2);
    let reqs = server.requests();
    assert_eq!(reqs[10].conn, 0);
    assert_eq!(reqs[11].conn, 1);
}

#[tokio::test]
async fn non_json_bodies_and_other_paths_are_logged() {
    let server = MockServer::start(|req| {
        if req.path == "/v1/models" {
            Reply::Json(json!({"data": []}))
        } else {
            Reply::error(400, "bad")
        }
    });
    let c = client();
    let r = c.get(format!("{}/models", server.base_url())).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = c
        .post(format!("{}/chat/completions", server.base_url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let reqs = server.requests();
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/v1/models");
    assert!(reqs[1].body.is_null());
    assert_eq!(reqs[1].model, "");
    assert_eq!(reqs[1].prompt, "");
}

#[tokio::test]
async fn attempt_counts_earlier_requests_with_the_same_model_and_prompt() {
    let server = MockServer::start(|req| {
        if req.attempt < 2 {
            Reply::rate_limited(0)
        } else {
            Reply::echo(req)
        }
    });
    let c = client();
    for _ in 0..3 {
        post(&c, &server.base_url(), &chat("m", "same")).await.unwrap();
    }
    post(&c, &server.base_url(), &chat("other-model", "same"))
        .await
        .unwrap();
    post(&c, &server.base_url(), &chat("m", "another")).await.unwrap();
    // Multi-part content: text parts of the last user message count as its prompt.
    let multi = json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "same"}]},
        ],
    });
    post(&c, &server.base_url(), &multi).await.unwrap();
    let attempts: Vec<(String, String, usize)> = server
        .requests()
        .into_iter()
        .map(|r| (r.model, r.prompt, r.attempt))
        .collect();
    let s = |m: &str, p: &str, a| (m.to_string(), p.to_string(), a);
    assert_eq!(
        attempts,
        vec![
            s("m", "same", 0),
            s("m", "same", 1),
            s("m", "same", 2),
            s("other-model", "same", 0),
            s("m", "another", 0),
            s("m", "same", 3),
        ]
    );
    let kinds: Vec<&str> = server.replies().into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        kinds,
        ["status:429", "status:429", "ok", "status:429", "status:429", "ok"]
    );
}

#[tokio::test]
async fn delay_waits_then_replies() {
    let server = MockServer::start(|_| {
        Reply::Delay(
            Duration::from_millis(100),
            Box::new(Reply::text("late").after(Duration::from_millis(100))),
        )
    });
    let c = client();
    let t = Instant::now();
    let (_, body) = post_json(&c, &server.base_url(), &chat("m", "p")).await;
    assert!(t.elapsed() >= Duration::from_millis(195), "{:?}", t.elapsed());
    assert_eq!(body["choices"][0]["message"]["content"], "late");
    assert_eq!(server.replies(), vec![(0, "ok")]);
}

/// Sends `n` requests with at most `in_flight` outstanding; returns the elapsed time.
async fn blast(c: &reqwest::Client, server: &MockServer, n: usize, in_flight: usize) -> Duration {
    let base = Arc::new(server.base_url());
    let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (c, base) = (c.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let body = chat("m", &format!("prompt {i}"));
            let r = match post(&c, &base, &body).await {
                Ok(r) => r.bytes().await.map(|_| ()),
                Err(e) => Err(e),
            };
            drop(permit);
            r.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap() as usize;
    }
    let elapsed = t.elapsed();
    assert_eq!(ok, n, "every request succeeds");
    elapsed
}

/// A minimal HTTP/1.1 client, one request per connection (`Connection: close`): cheap even in
/// a debug build, so timings measure the mock rather than the client.
async fn raw_post(addr: std::net::SocketAddr, body: &[u8]) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).await?;
    let mut out = Vec::with_capacity(1024);
    s.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_requests_with_50ms_delay() {
    let _heavy = HEAVY.lock().await;
    let server = MockServer::start(|req| Reply::echo(req).after(Duration::from_millis(50)));
    let n = 2000;
    let t = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let addr = server.addr();
            tokio::spawn(async move {
                let body = serde_json::to_vec(&chat("m", &format!("prompt {i}"))).unwrap();
                raw_post(addr, &body).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        let resp = task.await.unwrap();
        assert!(resp.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let body = &resp[resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_slice(body).unwrap();
        assert!(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .starts_with("Echo of ")
        );
    }
    let elapsed = t.elapsed();
    eprintln!("2000 concurrent (raw client) x 50 ms: {elapsed:?}");
    // Typically 0.5-0.8 s in a debug build on 2 cores; the bound leaves room for a busy machine.
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(server.count(), n);
    assert_eq!(server.connections(), n);
    assert_eq!(server.replies_of("ok"), n);
    let seqs: Vec<usize> = server.requests().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>());
}

/// The same load through reqwest's pool. In a debug build the client dominates the time
/// (1.2-2 s here, against ~0.4 s in release), so the bound is looser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_requests_through_reqwest() {
    let _heavy = HEAVY.lock().await;
    let server = MockServer::start(|req| Reply::echo(req).after(Duration::from_millis(50)));
    let n = 2000;
    let c = client_builder().timeout(Duration::from_secs(20)).build().unwrap();
    let elapsed = blast(&c, &server, n, n).await;
    eprintln!("2000 concurrent (reqwest) x 50 ms: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(server.count(), n);
    assert_eq!(server.replies_of("ok"), n);
}

/// The benchmark's load: 10,000 calls, 1,000 in flight, 200 ms latency (ideal 5,000 req/s),
/// first with a cold client (1,000 connections to open), then again over its warm pool.
/// `cargo test --release --test mock_server throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes a few seconds; a throughput measurement"]
async fn throughput_1000_in_flight_200ms() {
    let _heavy = HEAVY.lock().await;
    let server = MockServer::start(|req| Reply::echo(req).after(Duration::from_millis(200)));
    let (n, in_flight, latency) = (10_000, 1000, 0.2);
    let ideal = in_flight as f64 / latency;
    let c = client_builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut rates = Vec::new();
    for pass in ["cold", "warm"] {
        let elapsed = blast(&c, &server, n, in_flight).await;
        let rate = n as f64 / elapsed.as_secs_f64();
        eprintln!(
            "{pass}: 10000 calls, 1000 in flight, 200 ms: {elapsed:?}, {rate:.0} req/s = {:.1}% of ideal {ideal:.0}",
            100.0 * rate / ideal
        );
        rates.push(rate);
    }
    // ~90-94% warm on an idle 2-core machine, where reqwest's own CPU (~130 µs a call, against
    // ~55 µs for the mock) is most of the cost; the bound only catches gross regressions.
    assert!(rates[1] >= 0.75 * ideal, "{rates:?}");
}

/// The same load from a lean hand-written keep-alive client (1,000 connections, 10 sequential
/// calls each), so that the measurement is of the mock.
/// `cargo test --release --test mock_server throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes a few seconds; a throughput measurement"]
async fn throughput_1000_in_flight_200ms_raw_keep_alive() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _heavy = HEAVY.lock().await;
    let server = MockServer::start(|req| Reply::echo(req).after(Duration::from_millis(200)));
    let addr = server.addr();
    let t = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|c| {
            tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let mut buf = Vec::with_capacity(4096);
                for i in 0..10 {
                    let body = serde_json::to_vec(&chat("m", &format!("p{c}-{i}"))).unwrap();
                    let mut req = format!(
                        "POST /v1/chat/completions HTTP/1.1\r\nhost: m\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    req.extend_from_slice(&body);
                    s.write_all(&req).await.unwrap();
                    buf.clear();
                    loop {
                        assert!(s.read_buf(&mut buf).await.unwrap() > 0, "server closed");
                        let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = std::str::from_utf8(&buf[..h]).unwrap();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .unwrap()
                            .parse()
                            .unwrap();
                        if buf.len() >= h + 4 + len {
                            assert!(head.starts_with("HTTP/1.1 200 OK"));
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = t.elapsed();
    let rate = 10_000.0 / elapsed.as_secs_f64();
    eprintln!(
        "raw keep-alive: 10000 calls, 1000 in flight, 200 ms: {elapsed:?}, {rate:.0} req/s = {:.1}% of ideal 5000",
        rate / 50.0
    );
    assert_eq!(server.count(), 10_000);
    assert_eq!(server.connections(), 1000);
    assert!(rate >= 0.85 * 5000.0, "{rate:.0} req/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_is_deterministic_per_seq_and_logged() {
    let _heavy = HEAVY.lock().await;
    let (seed, p429, p500, phang, pcut) = (42, 0.1, 0.1, 0.05, 0.05);
    let server = MockServer::start(chaos(seed, p429, p500, phang, pcut, Duration::from_millis(5)));
    let n = 400;
    let c = client_builder().timeout(Duration::from_millis(500)).build().unwrap();
    let mut tasks = Vec::new();
    for i in 0..n {
        let (c, base) = (c.clone(), server.base_url());
        tasks.push(tokio::spawn(async move {
            match post(&c, &base, &chat("m", &format!("p{i}"))).await {
                Ok(r) => {
                    let s = r.status().as_u16();
                    match r.bytes().await {
                        Ok(_) => format!("status:{s}"),
                        Err(_) => "body-error".to_string(),
                    }
                }
                Err(e) if e.is_timeout() => "timeout".to_string(),
                Err(_) => "error".to_string(),
            }
        }));
    }
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for t in tasks {
        *seen.entry(t.await.unwrap()).or_default() += 1;
    }
    // A request cut on a reused connection may be retried by the client; count what the mock saw.
    let total = server.count();
    assert!(total >= n);
    let mut expected = std::collections::BTreeMap::<&str, usize>::new();
    for seq in 0..total {
        let u = mock::unit(seed, seq);
        let kind = if u < p429 {
            "status:429"
        } else if u < p429 + p500 {
            "status:500"
        } else if u < p429 + p500 + phang {
            "hang"
        } else if u < p429 + p500 + phang + pcut {
            "cut"
        } else {
            "ok"
        };
        *expected.entry(kind).or_default() += 1;
    }
    assert_eq!(server.reply_counts(), expected);
    eprintln!("client saw {seen:?}; mock sent {expected:?}");
    assert_eq!(seen.get("status:429"), expected.get("status:429"));
    assert_eq!(seen.get("status:500"), expected.get("status:500"));
    assert_eq!(seen.get("timeout"), expected.get("hang"));
    assert_eq!(seen.get("status:200"), expected.get("ok"));
    // Same seed, same decisions.
    let again = chaos(seed, p429, p500, phang, pcut, Duration::ZERO);
    let replies = server.replies();
    for r in server.requests() {
        assert_eq!(again(&r).kind(), replies[r.seq].1);
    }
}

#[test]
fn works_from_a_sync_test_and_drop_shuts_it_down() {
    let server = MockServer::start(Reply::echo);
    let addr = server.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = client();
        let (status, _) = post_json(&c, &server.base_url(), &chat("m", "p")).await;
        assert_eq!(status, 200);
    });
    // A hanging request and an idle keep-alive connection do not keep the server alive.
    server.set_behavior(|_| Reply::Hang);
    let _hanging = std::thread::spawn(move || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let body = b"{}";
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        // Returns when the server drops the connection.
        let _ = std::io::Read::read_to_end(&mut s, &mut out);
        out
    });
    while server.count() < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    drop(server);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "nothing listens after drop"
    );
    assert!(_hanging.join().unwrap().is_empty());
}

#[test]
fn requests_are_cloneable_and_debuggable() {
    let server = MockServer::start(Reply::echo);
    let r: Vec<Request> = server.requests();
    assert!(r.is_empty());
    assert_eq!(format!("{:?}", Reply::Cut), "Cut");
    assert_eq!(Reply::Hang.after(Duration::from_millis(1)).kind(), "hang");
}

#[test]
fn pipelined_and_chunked_requests_on_one_raw_connection() {
    use std::io::{Read, Write};
    let server = MockServer::start(|req| Reply::text(&format!("got {}", req.prompt)));
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    let one = serde_json::to_vec(&chat("m", "one")).unwrap();
    let two = serde_json::to_vec(&chat("m", "two")).unwrap();
    let mut wire = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        one.len()
    )
    .into_bytes();
    wire.extend_from_slice(&one);
    // The second request, chunked in two pieces, asks to close the connection.
    wire.extend_from_slice(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    let (a, b) = two.split_at(7);
    for part in [a, b] {
        wire.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        wire.extend_from_slice(part);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&wire).unwrap();
    let mut out = String::new();
    // Ends because the server closes after the second response.
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{out}");
    assert!(out.contains("got one") && out.contains("got two"), "{out}");
    assert!(out.contains("connection: keep-alive") && out.contains("connection: close"));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!((reqs[0].conn, reqs[1].conn), (0, 0));
    assert_eq!(reqs[1].header("transfer-encoding"), Some("chunked"));
    assert_eq!(reqs[1].body, chat("m", "two"));
}

#[test]
fn malformed_request_gets_a_400() {
    use std::io::{Read, Write};
    let server = MockServer::start(Reply::echo);
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"garbage\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    assert_eq!(server.count(), 0);
}
