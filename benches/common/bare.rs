//! A bare reqwest loop against a mock in this process: the floor for the LLM executor's CPU per
//! call on this machine. The same client settings as daydream's, a JSON request body, the answer
//! parsed into a JSON value, and nothing kept (no store, no records, no retries, no limits).
//! Used by `benches/bare_client.rs` and, back to back with each daydream run, by
//! `benches/llm_throughput.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU seconds (user + system) of this process's threads, split into (the mock's, the others').
pub fn thread_cpu() -> (f64, f64) {
    let tick = 100.0; // USER_HZ on Linux
    let (mut mock, mut other) = (0.0, 0.0);
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let f: Vec<f64> = stat[close + 2..]
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        let cpu = (f[11] + f[12]) / tick;
        if name.starts_with("mock-server") {
            mock += cpu;
        } else {
            other += cpu;
        }
    }
    (mock, other)
}

/// What one bare loop measured.
pub struct Bare {
    pub wall_s: f64,
    /// The loop's CPU per call (every thread of this process but the mock's), µs.
    pub client_us: f64,
    /// The mock's CPU per call, µs (`bare_client` reports it).
    #[allow(dead_code)]
    pub mock_us: f64,
}

/// Makes `calls` requests to `{base_url}/chat/completions`, at most `limit` at a time, each
/// carrying `prompt` (prefixed with its number), on tokio's current-thread runtime (as daydream's
/// executor does) unless `current_thread` is false (two workers).
pub fn bare_loop(base_url: &str, limit: usize, calls: usize, prompt: &str, current_thread: bool) -> Bare {
    let mut rt = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let rt = rt.thread_name("bare-client").enable_all().build().expect("runtime");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let url = format!("{base_url}/chat/completions");
    let prompt: Arc<str> = Arc::from(prompt);
    let (mock0, other0) = thread_cpu();
    let t0 = Instant::now();
    rt.block_on(async {
        let permits = Arc::new(tokio::sync::Semaphore::new(limit));
        let mut set = tokio::task::JoinSet::new();
        for i in 0..calls {
            let permit = permits.clone().acquire_owned().await.expect("semaphore");
            let (client, url, prompt) = (client.clone(), url.clone(), prompt.clone());
            set.spawn(async move {
                let body = serde_json::json!({
                    "model": "bench/gen",
                    "messages": [{"role": "user", "content": format!("{i} {prompt}")}],
                    "temperature": 0.7,
                    "max_tokens": 8192,
                });
                let resp = client
                    .post(&url)
                    .timeout(Duration::from_secs(60))
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body).expect("json"))
                    .send()
                    .await
                    .expect("request");
                let bytes = resp.bytes().await.expect("body");
                let v: serde_json::Value = serde_json::from_slice(&bytes).expect("answer is JSON");
                assert!(v["choices"][0]["message"]["content"].is_string());
                drop(permit);
            });
            while set.try_join_next().is_some() {}
        }
        while set.join_next().await.is_some() {}
    });
    let wall_s = t0.elapsed().as_secs_f64();
    let (mock1, other1) = thread_cpu();
    drop(rt);
    Bare {
        wall_s,
        client_us: (other1 - other0) * 1e6 / calls as f64,
        mock_us: (mock1 - mock0) * 1e6 / calls as f64,
    }
}
