//! The remote answer cache end to end: the real `daydream run` (the release binary cargo built)
//! on a generated project, against the in-process mock OpenAI server and moto (S3 on
//! 127.0.0.1, `tests/common/s3.rs`). Issue 19's two measured targets:
//!
//! 1. **Fresh clone**: a project of ~10,000 calls is run once with the remote set, so its
//!    answers are uploaded (and packed by the `Uploader` at the end); then copies of it without
//!    `.daydream/` (fresh clones) run against the same remote. Each must make 0 requests to the
//!    LLM server and fetch every answer; target: under 10 s (spawn to exit, rendering the
//!    prompts included).
//! 2. **Throughput with uploads**: the same kind of project with 1,000 calls in flight and a
//!    mock latency of 1 s, run without a remote and with the moto remote (uploads beside the
//!    calls); calls/s over the LLM stage of each, their ratio (target ≥ 95%), and the upload
//!    tail (from the last answer leaving the mock to the process's exit, which waits for the
//!    uploads) with what was left pending. Each is repeated; medians are reported.
//!
//!     cargo bench --bench remote_run
//!
//! Environment knobs (all optional):
//! - `DAYDREAM_BENCH_ANSWERS=10000`   answers cached for the fresh clone (rounded up to C(n, 3))
//! - `DAYDREAM_BENCH_CALLS=10000`     calls of each throughput run (rounded up to C(n, 3))
//! - `DAYDREAM_BENCH_IN_FLIGHT=1000`  `max_in_flight` of the throughput runs
//! - `DAYDREAM_BENCH_LATENCY_MS=1000` the mock's latency in the throughput runs
//! - `DAYDREAM_BENCH_REPS=3`          repetitions of each measurement
//! - `DAYDREAM_BENCH_PARTS=clone,throughput`  which parts to run
//! - `DAYDREAM_BENCH_MATERIALIZE=1`   write the prompt and answer files as a user's project does
//!   (by default they stay in the store: ~1 ms per file on this VM would measure the file system)
//! - `DAYDREAM_BENCH_VERBOSE=1`       print the output of each timed run
//! - `DAYDREAM_BENCH_BIN=/path`       measure another daydream binary
//!
//! A quick run (CI-sized): `DAYDREAM_BENCH_ANSWERS=500 DAYDREAM_BENCH_CALLS=500
//! DAYDREAM_BENCH_IN_FLIGHT=100 DAYDREAM_BENCH_REPS=1 cargo bench --bench remote_run`.
//! Results and how to read them: `bench/remote/README.md`, "Runs (end to end)".

#[path = "common/e2e.rs"]
mod e2e;
#[path = "../tests/common/mock.rs"]
mod mock;
#[path = "../tests/common/s3.rs"]
mod s3;

use std::path::Path;
use std::time::{Duration, Instant};

use e2e::{Out, clock_of, comb, concepts_for, copy_dir, counts, daydream, env_or, loadavg, median, stage_mark};
use mock::{MockServer, Reply};

/// The fresh clone's target, seconds.
const TARGET_CLONE_S: f64 = 10.0;
/// The throughput with uploads, % of the same run without a remote.
const TARGET_RATIO: f64 = 95.0;

/// The environment of a run: the mock as provider, timing marks on, and the remote (`off`, or
/// moto's URL with the credentials it accepts).
fn run_env(server: &MockServer, remote: Option<(&s3::Moto, &str)>) -> Vec<(String, String)> {
    let mut env = vec![
        ("OPENROUTER_BASE_URL".to_owned(), server.base_url()),
        ("OPENROUTER_API_KEY".to_owned(), "bench".to_owned()),
        ("DAYDREAM_TIMING".to_owned(), "1".to_owned()),
    ];
    match remote {
        Some((moto, prefix)) => {
            env.push(("DAYDREAM_REMOTE".to_owned(), moto.url(prefix)));
            env.extend(moto.env());
        }
        None => env.push(("DAYDREAM_REMOTE".to_owned(), "off".to_owned())),
    }
    env
}

fn verbose(label: &str, out: &Out) {
    if std::env::var_os("DAYDREAM_BENCH_VERBOSE").is_some() {
        eprintln!("--- {label} ({:.2} s):\n{}{}", out.wall, out.stdout, out.stderr);
    }
}

fn tmpdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temporary directory")
}

/// Part 1: seeds the remote with one run, then times fresh clones against it.
fn fresh_clone(moto: &s3::Moto, answers: usize, reps: usize) {
    let concepts = concepts_for(answers);
    let calls = comb(concepts, e2e::K);
    println!("\n## Fresh clone at {calls} cached answers ({concepts} concepts)\n");
    let server = MockServer::start(|r| Reply::echo(r).after(Duration::from_millis(20)));
    let work = tmpdir("daydream-remote-run.");
    let seed = work.path().join("seed");
    std::fs::create_dir_all(&seed).expect("creating the project");
    e2e::make_project(&seed, concepts, 1000);

    let env = run_env(&server, Some((moto, "clone")));
    let load = loadavg();
    let run = daydream(&seed, &env, &["run", "--yes"]);
    verbose("seed run", &run);
    assert_eq!(counts(&run.stdout, "generation_response").0, calls, "{}", run.stdout);
    let uploaded = e2e::remote_note(&run, "uploaded");
    let packs = e2e::remote_note(&run, "pack");
    println!(
        "seed run: {calls} calls, {uploaded} uploaded, {packs} packs written, {:.1} s (load {load})",
        run.wall
    );
    assert_eq!(
        uploaded, calls,
        "every answer uploaded:\n{}\n{}",
        run.stdout, run.stderr
    );

    println!(
        "\n| rep | wall s | generation_prompt s | generation_response s | LLM requests | fetched | load avg before |"
    );
    println!("|--:|--:|--:|--:|--:|--:|---|");
    let mut walls = Vec::new();
    for rep in 1..=reps {
        let clone = work.path().join(format!("clone-{rep}"));
        copy_dir(&seed, &clone, &[".daydream"]);
        server.clear();
        let load = loadavg();
        let run = daydream(&clone, &env, &["run", "--yes"]);
        verbose("fresh clone", &run);
        let requests = server.count();
        let fetched = e2e::fetched(&run.stdout);
        let prompt_s = stage_mark(&run.stderr, "generation_prompt");
        let response_s = stage_mark(&run.stderr, "generation_response") - prompt_s;
        let row = format!(
            "| {rep} | {:.2} | {prompt_s:.2} | {response_s:.2} | {requests} | {fetched} | {load} |",
            run.wall
        );
        println!("{row}");
        assert_eq!(
            requests, 0,
            "the fresh clone called the LLM:\n{}\n{}",
            run.stdout, run.stderr
        );
        assert_eq!(fetched, calls, "every answer fetched:\n{}\n{}", run.stdout, run.stderr);
        walls.push(run.wall);
    }
    let m = median(walls);
    let verdict = if m < TARGET_CLONE_S { "met" } else { "MISSED" };
    let summary = format!(
        "fresh clone, {calls} answers: median {m:.2} s over {reps} (target < {TARGET_CLONE_S:.0} s: {verdict})"
    );
    println!("\n{summary}");
}

/// One throughput run, measured.
struct Sample {
    /// Calls per second over the LLM stage (the `generation_prompt` mark to the
    /// `generation_response` mark).
    rate: f64,
    stage_s: f64,
    /// From the LLM stage's start to the first request the mock received.
    before_s: f64,
    /// From the last answer leaving the mock to the process's exit.
    tail_s: f64,
    wall_s: f64,
    uploaded: usize,
    pending: usize,
    load: String,
}

fn throughput_run(
    base: &Path,
    dir: &Path,
    server: &MockServer,
    server_started: Instant,
    latency: Duration,
    calls: usize,
    env: &[(String, String)],
) -> Sample {
    copy_dir(base, dir, &[]);
    server.clear();
    let load = loadavg();
    let run = daydream(dir, env, &["run", "--yes"]);
    verbose("throughput run", &run);
    assert_eq!(
        counts(&run.stdout, "generation_response").0,
        calls,
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(server.count(), calls, "requests the mock saw");
    let prompt_mark = stage_mark(&run.stderr, "generation_prompt");
    let stage_s = stage_mark(&run.stderr, "generation_response") - prompt_mark;
    let reqs = server.requests();
    let first = reqs.iter().map(|r| r.at).min().expect("requests were made");
    let last = reqs.iter().map(|r| r.at).max().expect("requests were made");
    // on the bench's clock: when the run was spawned, relative to the mock's start
    let spawned = (run.started - server_started).as_secs_f64();
    let before_s = first.as_secs_f64() - spawned - prompt_mark;
    let tail_s = run.wall - ((last + latency).as_secs_f64() - spawned);
    Sample {
        rate: calls as f64 / stage_s,
        stage_s,
        before_s,
        tail_s,
        wall_s: run.wall,
        uploaded: e2e::remote_note(&run, "uploaded"),
        pending: e2e::remote_note(&run, "not uploaded"),
        load,
    }
}

/// Part 2: the same run without a remote and with moto, alternated, `reps` times each.
fn throughput(moto: &s3::Moto, calls: usize, in_flight: usize, latency: Duration, reps: usize) {
    let concepts = concepts_for(calls);
    let calls = comb(concepts, e2e::K);
    let ideal = calls as f64 / (calls as f64 * latency.as_secs_f64() / in_flight as f64);
    println!(
        "\n## Throughput: {calls} calls, {in_flight} in flight, mock latency {} ms (ideal {ideal:.0} calls/s)\n",
        latency.as_millis()
    );
    let server = MockServer::start(|_| Reply::text("probe"));
    let server_started = clock_of(&server);
    server.set_behavior(move |r| Reply::echo(r).after(latency));
    let work = tmpdir("daydream-remote-run.");
    let base = work.path().join("base");
    std::fs::create_dir_all(&base).expect("creating the project");
    e2e::make_project(&base, concepts, in_flight);
    // the prompts rendered once (untimed); each run starts from a copy
    let p = daydream(&base, &run_env(&server, None), &["run", "generation_prompt"]);
    assert_eq!(counts(&p.stdout, "generation_prompt").0, calls, "{}", p.stdout);

    let header = "| rep | remote | calls/s | LLM stage s | before first request s | upload tail s | wall s | uploaded | pending | load avg before |\n|--:|---|--:|--:|--:|--:|--:|--:|--:|---|";
    println!("{header}");
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for rep in 1..=reps {
        for with_remote in [false, true] {
            let prefix = format!("throughput-{rep}");
            let env = run_env(&server, with_remote.then_some((moto, prefix.as_str())));
            let dir = work
                .path()
                .join(format!("{}-{rep}", if with_remote { "moto" } else { "off" }));
            let s = throughput_run(&base, &dir, &server, server_started, latency, calls, &env);
            let row = format!(
                "| {rep} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                if with_remote { "moto" } else { "none" },
                s.rate,
                s.stage_s,
                s.before_s,
                s.tail_s,
                s.wall_s,
                s.uploaded,
                s.pending,
                s.load
            );
            println!("{row}");
            std::fs::remove_dir_all(&dir).expect("removing a run's copy");
            if with_remote { &mut on } else { &mut off }.push(s);
        }
    }
    let med = |xs: &[Sample], f: fn(&Sample) -> f64| median(xs.iter().map(f).collect());
    let (r_off, r_on) = (med(&off, |s| s.rate), med(&on, |s| s.rate));
    let ratio = 100.0 * r_on / r_off;
    let verdict = if ratio >= TARGET_RATIO { "met" } else { "MISSED" };
    let summary = format!(
        "medians over {reps}: {r_off:.0} calls/s without a remote, {r_on:.0} with moto: {ratio:.1}% (target ≥ \
         {TARGET_RATIO:.0}%: {verdict}); upload tail {:.2} s without, {:.2} s with; pending {:.0}",
        med(&off, |s| s.tail_s),
        med(&on, |s| s.tail_s),
        med(&on, |s| s.pending as f64),
    );
    println!("\n{summary}");
}

fn main() {
    let answers: usize = env_or("DAYDREAM_BENCH_ANSWERS", 10_000);
    let calls: usize = env_or("DAYDREAM_BENCH_CALLS", 10_000);
    let in_flight: usize = env_or("DAYDREAM_BENCH_IN_FLIGHT", 1000);
    let latency = Duration::from_millis(env_or("DAYDREAM_BENCH_LATENCY_MS", 1000));
    let reps: usize = env_or("DAYDREAM_BENCH_REPS", 3);
    let parts = std::env::var("DAYDREAM_BENCH_PARTS").unwrap_or_else(|_| "clone,throughput".to_owned());
    assert!(
        e2e::bin().exists(),
        "{} is missing: run `cargo build --release` first",
        e2e::bin().display()
    );
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "daydream {}, {cpus} CPUs, load average at start {}",
        e2e::bin().display(),
        loadavg()
    );
    let moto = s3::Moto::start();
    if parts.contains("clone") {
        fresh_clone(&moto, answers, reps);
    }
    if parts.contains("throughput") {
        throughput(&moto, calls, in_flight, latency, reps);
    }
    println!("\nload average at end {}", loadavg());
}
