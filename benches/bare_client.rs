//! The floor for the LLM bench on this machine: a bare reqwest loop against the same in-process
//! mock (`tests/common/mock.rs`, 200 ms latency), making the same calls as
//! `benches/llm_throughput.rs` but keeping nothing (no store, no records, no retries): a request
//! body of a ~1.5 KB prompt, the answer parsed into a JSON value. It reports the client's CPU per
//! call (this process's threads other than the mock's, from /proc/self/task) beside the mock's.
//!
//!     cargo bench --bench bare_client
//!
//! `DAYDREAM_BENCH_LIMITS=16,256,1000` and `DAYDREAM_BENCH_CALLS=10660` change what is measured;
//! `DAYDREAM_BENCH_CURRENT_THREAD=1` runs the loop on tokio's current-thread runtime (as daydream's
//! executor does) instead of two workers.

#[path = "../tests/common/mock.rs"]
mod mock;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mock::{MockServer, Reply};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU seconds (user + system) of this process's threads, split into (the mock's, the others').
fn thread_cpu() -> (f64, f64) {
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

fn main() {
    let limits: Vec<usize> = std::env::var("DAYDREAM_BENCH_LIMITS")
        .unwrap_or_else(|_| "16,256,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let calls: usize = env_or("DAYDREAM_BENCH_CALLS", 10_660);
    let latency = Duration::from_millis(200);
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("the only crypto provider");
    let mock = MockServer::start(move |r| Reply::echo(r).after(latency));
    let url = format!("{}/chat/completions", mock.base_url());
    let prompt: Arc<str> = Arc::from("Sentence about a concept and its neighbours. ".repeat(34));
    println!("| L | calls | wall s | ideal s | % of ideal | client CPU µs/call | mock CPU µs/call |");
    println!("|--:|--:|--:|--:|--:|--:|--:|");
    for l in limits {
        let mut rt = if std::env::var_os("DAYDREAM_BENCH_CURRENT_THREAD").is_some() {
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
        let (mock0, other0) = thread_cpu();
        let t0 = Instant::now();
        rt.block_on(async {
            let permits = Arc::new(tokio::sync::Semaphore::new(l));
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
        let wall = t0.elapsed().as_secs_f64();
        let (mock1, other1) = thread_cpu();
        drop(rt);
        let ideal = calls as f64 * latency.as_secs_f64() / l as f64;
        println!(
            "| {l} | {calls} | {wall:.2} | {ideal:.2} | {:.1}% | {:.1} | {:.1} |",
            100.0 * ideal / wall,
            (other1 - other0) * 1e6 / calls as f64,
            (mock1 - mock0) * 1e6 / calls as f64
        );
        mock.clear();
    }
}
