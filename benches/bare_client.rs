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

#[path = "common/bare.rs"]
mod bare;
#[path = "../tests/common/mock.rs"]
mod mock;

use std::time::Duration;

use mock::{MockServer, Reply};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let limits: Vec<usize> = std::env::var("DAYDREAM_BENCH_LIMITS")
        .unwrap_or_else(|_| "16,256,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let calls: usize = env_or("DAYDREAM_BENCH_CALLS", 10_660);
    let current_thread = std::env::var_os("DAYDREAM_BENCH_CURRENT_THREAD").is_some();
    let latency = Duration::from_millis(200);
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("the only crypto provider");
    let mock = MockServer::start(move |r| Reply::echo(r).after(latency));
    let prompt = "Sentence about a concept and its neighbours. ".repeat(34);
    println!("| L | calls | wall s | ideal s | % of ideal | client CPU µs/call | mock CPU µs/call |");
    println!("|--:|--:|--:|--:|--:|--:|--:|");
    for l in limits {
        let b = bare::bare_loop(&mock.base_url(), l, calls, &prompt, current_thread);
        let ideal = calls as f64 * latency.as_secs_f64() / l as f64;
        println!(
            "| {l} | {calls} | {:.2} | {ideal:.2} | {:.1}% | {:.1} | {:.1} |",
            b.wall_s,
            100.0 * ideal / b.wall_s,
            b.client_us,
            b.mock_us
        );
        mock.clear();
    }
}
