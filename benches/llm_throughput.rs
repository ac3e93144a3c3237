//! LLM-executor benchmark: `daydream run` against an in-process mock OpenAI-compatible server that
//! answers every request after a fixed 200 ms, for several in-flight limits.
//!
//! For each in-flight limit L it builds a synthetic project (one generation model, one template,
//! N concepts, k = 3, so calls = C(N, 3)), renders the prompts (untimed), measures a dry run (the
//! CPU of everything but the calls), then the real run (LLM stage wall time from
//! `DAYDREAM_TIMING`, the child's CPU from `/proc/self/stat` cutime+cstime), then a rerun where
//! every call is cached. Prints a markdown table and writes it to `bench/llm/results.md`.
//!
//!     cargo build --release && cargo bench --bench llm_throughput
//!
//! Environment knobs (all optional):
//! - `DAYDREAM_BENCH_LIMITS=16,256,1000`  the in-flight limits to measure
//! - `DAYDREAM_BENCH_CONCEPTS=41`         concepts (calls = C(N, 3); 41 -> 10,660)
//! - `DAYDREAM_BENCH_QUICK=1`             L = 16 with 24 concepts (2,024 calls, ~26 s instead of ~133 s)
//! - `DAYDREAM_BENCH_LATENCY_MS=200`      the mock's latency
//! - `DAYDREAM_BENCH_KEEP=1`              keep the project directories (their paths are printed)
//! - `DAYDREAM_BENCH_VERBOSE=1`           print the output of each timed run (with its timing lines)
//! - `DAYDREAM_BENCH_WRAP="perf record -g -o /tmp/dd.perf --"`  run the timed `daydream run` under a
//!   profiler (its numbers then include the profiler's overhead)
//! - `DAYDREAM_BENCH_BIN=/tmp/daydream-old`  measure another daydream binary (an A/B of two builds)
//!
//! After each daydream run, a bare reqwest loop (`benches/common/bare.rs`: no store, no records)
//! makes the same number of calls (at most 3,000 at L <= 16, where each takes a latency of
//! wall time) against the same mock with the same prompt, on the same runtime kind: the floor for
//! the CPU per call on this machine, at this moment. This VM's speed drifts by 2-4x between sessions,
//! so daydream ÷ bare loop is the figure to compare with the issue's (100 µs against a bare loop
//! of about 20 µs: 5×).
//!
//! Responses and prompts are kept in the store only (`materialize: false` on `generation_prompt`
//! and `generation_response`): writing ~10k files costs ~1 ms each on the reference VM and would
//! measure the file system rather than the executor.

#[path = "common/bare.rs"]
mod bare;
#[path = "../tests/common/mock.rs"]
mod mock;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mock::{MockServer, Reply};

const K: usize = 3;
const TARGET_THROUGHPUT: f64 = 95.0; // % of L / latency
const TARGET_CPU_US: f64 = 100.0; // per call
const TARGET_RERUN_S: f64 = 1.0;
/// The issue's CPU bar against its bare loop: 100 µs where a bare reqwest loop needs about 20 µs.
const TARGET_BARE_RATIO: f64 = 5.0;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The daydream binary cargo built for this bench (benches get `CARGO_BIN_EXE_*` like tests), or
/// `DAYDREAM_BENCH_BIN` to compare another build on the same machine state.
fn bin() -> PathBuf {
    std::env::var_os("DAYDREAM_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_daydream")))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn comb(n: usize, k: usize) -> usize {
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let dest = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn replace_once(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "pipeline.yaml does not contain {from:?}");
    s.replacen(from, to, 1)
}

/// A project whose `generation_response` stage makes C(concepts, 3) calls with at most
/// `in_flight` in flight, against `base_url`.
fn make_project(dir: &Path, concepts: usize, in_flight: usize) {
    std::fs::copy(repo().join("pipeline.yaml"), dir.join("pipeline.yaml")).unwrap();
    copy_dir(&repo().join("data/1_raw"), &dir.join("data/1_raw"));
    copy_dir(&repo().join("templates"), &dir.join("templates"));

    // concepts: made up, one paragraph each (as tests/common `synthetic`)
    let cdir = dir.join("data/1_raw/concepts");
    std::fs::remove_dir_all(&cdir).unwrap();
    std::fs::create_dir_all(cdir.join("descriptions-paragraph")).unwrap();
    let mut csv = String::from("concept_id,name,active\n");
    for i in 0..concepts {
        csv.push_str(&format!("concept-{i:03},Concept {i},True\n"));
        let text: String = (0..12)
            .map(|j| {
                format!(
                    "Sentence {j} about concept {i} and its {} neighbours. ",
                    (i * 7 + j) % 13
                )
            })
            .collect();
        std::fs::write(cdir.join(format!("descriptions-paragraph/concept-{i:03}.txt")), text).unwrap();
    }
    std::fs::write(cdir.join("concepts_metadata.csv"), csv).unwrap();

    // one generation model (and one evaluation model, unused): calls = combinations
    std::fs::write(
        dir.join("data/1_raw/llm_models.csv"),
        "id,model,for_generation,for_evaluation,input_usd_per_mtok,output_usd_per_mtok\n\
         gen,bench/gen,true,false,1.0,2.0\n\
         judge,bench/judge,false,true,1.0,2.0\n",
    )
    .unwrap();

    let y = std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap();
    // stages up to and including generation_response (the essays parsed from its answers would
    // add 10k file writes to the timed run)
    let y = &y[..y
        .find("\n  parsed_generation_responses:")
        .or_else(|| y.find("\n  evaluation_prompt:"))
        .expect("pipeline.yaml has parsed_generation_responses or evaluation_prompt")];
    let mut y = format!("{y}\n");
    // evaluation_tasks is not upstream of generation_response: drop it (it only adds rows to write)
    let start = y
        .find("  evaluation_tasks:\n")
        .expect("pipeline.yaml has evaluation_tasks");
    let end = start + y[start..].find("\n\n").expect("a blank line after evaluation_tasks") + 2;
    y.replace_range(start..end, "");
    y = replace_once(&y, "k_max: 4", &format!("k_max: {K}"));
    y = replace_once(
        &y,
        "    max_in_flight: 16\n",
        &format!("    max_in_flight: {in_flight}\n"),
    );
    y = replace_once(
        &y,
        "    requests_per_minute: 600\n",
        "    requests_per_minute: 100000000\n",
    );
    y = replace_once(
        &y,
        "  generation_prompt:\n    kind: generation_prompt\n",
        "  generation_prompt:\n    kind: generation_prompt\n    materialize: false\n",
    );
    y = replace_once(
        &y,
        "  generation_response:\n    kind: generation_response\n",
        "  generation_response:\n    kind: generation_response\n    materialize: false\n",
    );
    std::fs::write(dir.join("pipeline.yaml"), y).unwrap();
}

/// CPU seconds (user + system) of this process and of its waited-for children, from /proc/self/stat.
fn cpu_times() -> (f64, f64) {
    static TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let tick = *TICK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // fields after the parenthesised command name: state is field 3; utime 14, stime 15, cutime 16, cstime 17
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    let own = (f[11] + f[12]) / tick;
    let children = (f[13] + f[14]) / tick;
    (own, children)
}

struct Out {
    /// Just before the child was spawned.
    started: Instant,
    stdout: String,
    stderr: String,
    wall: f64,
    /// The child's CPU, user + system.
    cpu: f64,
    /// This process's CPU meanwhile (the mock server).
    own_cpu: f64,
}

fn daydream(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Out {
    daydream_wrapped(dir, env, args, &[])
}

/// `daydream` run under `wrap` (e.g. `perf record -g --`), when not empty.
fn daydream_wrapped(dir: &Path, env: &[(&str, &str)], args: &[&str], wrap: &[String]) -> Out {
    let mut c = match wrap.split_first() {
        Some((w, rest)) => {
            let mut c = Command::new(w);
            c.args(rest).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    c.arg("-C").arg(dir).args(args);
    for var in [
        "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL",
        "LOCAL_BASE_URL",
        "DAYDREAM_PROVIDER",
        "DAYDREAM_TIMING",
    ] {
        c.env_remove(var);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let (own0, ch0) = cpu_times();
    let t = Instant::now();
    let o = c.output().expect("running daydream");
    let wall = t.elapsed().as_secs_f64();
    let (own1, ch1) = cpu_times();
    let out = Out {
        started: t,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        wall,
        cpu: ch1 - ch0,
        own_cpu: own1 - own0,
    };
    assert!(
        o.status.success(),
        "daydream {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        out.stdout,
        out.stderr
    );
    out
}

/// When the mock's clock (`Request::at`) started, on this process's clock: one probe request,
/// taken as received halfway through its round trip. The log is cleared afterwards.
fn clock_of(server: &MockServer) -> Instant {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.addr()).expect("probe: connect");
    s.set_nodelay(true).unwrap();
    let body = r#"{"model":"probe","messages":[]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: probe\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let sent = Instant::now();
    s.write_all(req.as_bytes()).expect("probe: write");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("probe: read");
    let received = sent + (Instant::now() - sent) / 2;
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "probe: the mock saw {} requests", reqs.len());
    server.clear();
    received - reqs[0].at
}

/// (executed, reused, unchanged) printed for a stage.
fn counts(stdout: &str, stage: &str) -> (usize, usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(stage))
        .unwrap_or_else(|| panic!("no line for {stage} in:\n{stdout}"));
    let num = |word: &str| -> usize {
        let i = line.find(word).unwrap_or_else(|| panic!("no `{word}` in {line}"));
        line[i + word.len()..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num("executed"), num("reused"), num("unchanged"))
}

/// The `timing: <secs>s stage <name>` mark DAYDREAM_TIMING prints after each stage (seconds since
/// the run started).
fn stage_mark(stderr: &str, stage: &str) -> f64 {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("timing:"))
        .find_map(|l| {
            let l = l.trim();
            let (secs, what) = l.split_once("s ")?;
            (what.trim() == format!("stage {stage}")).then(|| secs.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no timing mark for stage {stage} in:\n{stderr}"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

struct Row {
    limit: usize,
    calls: usize,
    stage_s: f64,
    ideal_s: f64,
    span_s: f64,
    before_s: f64,
    after_s: f64,
    turnaround_ms: (f64, f64),
    cpu_run_us: f64,
    cpu_exec_us: f64,
    mock_cpu_us: f64,
    connections: usize,
    rerun_s: f64,
    load_before: String,
    bare_calls: usize,
    bare_us: f64,
    bare_pct: f64,
}

impl Row {
    fn pct(&self) -> f64 {
        100.0 * self.ideal_s / self.stage_s
    }

    fn verdict(&self) -> String {
        let mut miss = Vec::new();
        if self.pct() < TARGET_THROUGHPUT {
            miss.push(format!("throughput < {TARGET_THROUGHPUT:.0}%"));
        }
        if self.cpu_run_us >= TARGET_CPU_US {
            let ratio = self.cpu_run_us / self.bare_us;
            let against_bare = if ratio < TARGET_BARE_RATIO { "within" } else { "beyond" };
            miss.push(format!(
                "CPU ≥ {TARGET_CPU_US:.0} µs/call ({ratio:.1}× the bare loop: {against_bare} the issue's {TARGET_BARE_RATIO:.0}×)"
            ));
        }
        if self.rerun_s >= TARGET_RERUN_S {
            miss.push(format!("rerun ≥ {TARGET_RERUN_S:.0} s"));
        }
        if self.calls < 10_000 {
            miss.push("fewer than 10,000 calls".into());
        }
        if miss.is_empty() {
            "ok".into()
        } else {
            format!("MISS: {}", miss.join(", "))
        }
    }

    fn line(&self) -> String {
        format!(
            "| {} | {} | {:.2} | {:.2} | {:.1}% | {:.2} | {:.2} | {:.2} | {:.1} / {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} ({}) | {:.2} | {:.1}% | {} | {:.2} | {} | {} |",
            self.limit,
            self.calls,
            self.stage_s,
            self.ideal_s,
            self.pct(),
            self.span_s,
            self.before_s,
            self.after_s,
            self.turnaround_ms.0,
            self.turnaround_ms.1,
            self.cpu_run_us,
            self.cpu_exec_us,
            self.mock_cpu_us,
            self.cpu_run_us / self.mock_cpu_us,
            self.bare_us,
            self.bare_calls,
            self.cpu_run_us / self.bare_us,
            self.bare_pct,
            self.connections,
            self.rerun_s,
            self.load_before,
            self.verdict()
        )
    }
}

const HEADER: &str = "| L | calls | LLM stage wall s | ideal s | % of ideal | mock span s | before first request s | after last answer s | turnaround ms p50 / p99 | daydream CPU µs/call | executor CPU µs/call | mock CPU µs/call | daydream ÷ mock CPU | bare loop CPU µs/call (calls) | daydream ÷ bare loop CPU | bare loop % of ideal | connections | rerun s | load avg before | target |\n|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|";

fn measure(limit: usize, concepts: usize, latency: Duration) -> Row {
    let calls = comb(concepts, K);
    let work = tempfile::Builder::new()
        .prefix("daydream-llm-bench.")
        .tempdir()
        .unwrap();
    let dir = work.path();
    make_project(dir, concepts, limit);

    let server = MockServer::start(|_| Reply::text("probe"));
    let server_started = clock_of(&server);
    server.set_behavior(move |r| Reply::echo(r).after(latency));
    let url = server.base_url();
    let env: Vec<(&str, &str)> = vec![
        ("OPENROUTER_BASE_URL", url.as_str()),
        ("OPENROUTER_API_KEY", "bench"),
        ("DAYDREAM_TIMING", "1"),
    ];

    // prompts into the store (untimed)
    let p = daydream(dir, &env, &["run", "generation_prompt"]);
    assert_eq!(counts(&p.stdout, "generation_prompt").0, calls, "{}", p.stdout);

    // everything but the calls: planning, reading the prompts back, estimating
    let dry = daydream(dir, &env, &["run", "--dry-run"]);
    assert_eq!(server.count(), 0, "a dry run made requests");

    let load_before = loadavg();
    // DAYDREAM_BENCH_WRAP="perf record -g -o /tmp/dd.perf --" profiles the timed run (and skews it)
    let wrap: Vec<String> = std::env::var("DAYDREAM_BENCH_WRAP")
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    // --yes: the worst case of 10,660 calls passes the spending question's threshold
    let run = daydream_wrapped(dir, &env, &["run", "--yes"], &wrap);
    if std::env::var_os("DAYDREAM_BENCH_VERBOSE").is_some() {
        eprintln!("L = {limit}, the timed run:\n{}{}", run.stdout, run.stderr);
    }
    let (executed, _, _) = counts(&run.stdout, "generation_response");
    assert_eq!(executed, calls, "calls answered:\n{}\n{}", run.stdout, run.stderr);
    assert_eq!(server.count(), calls, "requests the mock saw");
    let stage_s = stage_mark(&run.stderr, "generation_response") - stage_mark(&run.stderr, "generation_prompt");
    let reqs = server.requests();
    let first = reqs.iter().map(|r| r.at).min().unwrap();
    let last = reqs.iter().map(|r| r.at).max().unwrap();
    let span_s = (last - first + latency).as_secs_f64();
    // on the run's clock: when the first request arrived and the last answer left the mock
    let spawned_at = run.started - server_started;
    let first_req = first.as_secs_f64() - spawned_at.as_secs_f64();
    let last_answer = (last + latency).as_secs_f64() - spawned_at.as_secs_f64();
    let before_s = first_req - stage_mark(&run.stderr, "generation_prompt");
    let after_s = stage_mark(&run.stderr, "generation_response") - last_answer;
    let connections = server.connections() - 1; // less the probe
    // turnaround: from an answer leaving the mock to the next request on the same connection
    // (the client's own delay between calls; connections are reused)
    let mut by_conn: std::collections::HashMap<usize, Vec<Duration>> = std::collections::HashMap::new();
    for r in &reqs {
        by_conn.entry(r.conn).or_default().push(r.at);
    }
    let mut gaps: Vec<f64> = Vec::new();
    for ats in by_conn.values_mut() {
        ats.sort();
        gaps.extend(
            ats.windows(2)
                .map(|w| (w[1].as_secs_f64() - (w[0] + latency).as_secs_f64()) * 1e3),
        );
    }
    gaps.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        gaps.get(((gaps.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let turnaround_ms = (pick(0.5), pick(0.99));
    let prompt = reqs[0].prompt.clone();
    drop(reqs);

    // everything cached: no request, fast
    let rerun = daydream(dir, &env, &["run"]);
    assert_eq!(counts(&rerun.stdout, "generation_response").0, 0, "{}", rerun.stdout);
    assert_eq!(server.count(), calls, "the rerun made requests");

    // the floor on this machine now: a bare loop, the same calls (fewer at low L), prompt and mock
    let bare_calls = if limit <= 16 { calls.min(3000) } else { calls };
    let bare = bare::bare_loop(&url, limit, bare_calls, &prompt, true);

    if std::env::var_os("DAYDREAM_BENCH_KEEP").is_some() {
        eprintln!("kept {}", work.keep().display());
    }
    let n = calls as f64;
    Row {
        limit,
        calls,
        stage_s,
        ideal_s: n * latency.as_secs_f64() / limit as f64,
        span_s,
        before_s,
        after_s,
        turnaround_ms,
        cpu_run_us: run.cpu * 1e6 / n,
        cpu_exec_us: (run.cpu - dry.cpu) * 1e6 / n,
        mock_cpu_us: run.own_cpu * 1e6 / n,
        connections,
        rerun_s: rerun.wall,
        load_before,
        bare_calls,
        bare_us: bare.client_us,
        bare_pct: 100.0 * bare_calls as f64 * latency.as_secs_f64() / limit as f64 / bare.wall_s,
    }
}

fn main() {
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("the only crypto provider");
    // `cargo bench` passes `--bench`; a filter argument is not supported
    let limits: Vec<usize> = std::env::var("DAYDREAM_BENCH_LIMITS")
        .unwrap_or_else(|_| "16,256,1000".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("DAYDREAM_BENCH_LIMITS: comma-separated numbers")
        })
        .collect();
    let concepts: usize = env_or("DAYDREAM_BENCH_CONCEPTS", 41);
    let quick = std::env::var_os("DAYDREAM_BENCH_QUICK").is_some();
    let latency = Duration::from_millis(env_or("DAYDREAM_BENCH_LATENCY_MS", 200));
    assert!(
        bin().exists(),
        "{} is missing: run `cargo build --release` first",
        bin().display()
    );

    let load_start = loadavg();
    println!("{HEADER}");
    let mut rows = Vec::new();
    for &l in &limits {
        let n = if quick && l <= 16 { concepts.min(24) } else { concepts };
        let row = measure(l, n, latency);
        println!("{}", row.line());
        rows.push(row);
    }

    let rev = Command::new("git")
        .args(["-C", repo().to_str().unwrap(), "rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let dirty = !Command::new("git")
        .args([
            "-C",
            repo().to_str().unwrap(),
            "diff",
            "--quiet",
            "HEAD",
            "--",
            "src",
            "Cargo.toml",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(true);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let md = format!(
        "# daydream LLM-executor benchmark\n\n\
         - {date}, daydream {rev}{}; {cpus} CPUs ({cpu_model}); load average at start / end: {load_start} / {}\n\
         - mock OpenAI-compatible server in the bench process (tests/common/mock.rs), every answer after {} ms; \
         it shares the CPUs with daydream\n\
         - one generation model and template, k = {K}: calls = C(concepts, {K}); {}\n\
         - `materialize: false` on `generation_prompt` and `generation_response`: prompts and answers stay in \
         `.daydream/store.db` (every answer is still committed durably); file creation (~1 ms per file on this \
         VM) would dominate otherwise\n\
         - `requests_per_minute: 100000000` (no pacing to speak of)\n\
         - LLM stage wall: between the `DAYDREAM_TIMING` marks of `generation_prompt` and `generation_response` \
         (planning the calls, reading the prompts back, the calls, the commits); ideal = calls × latency / L; \
         mock span: first request received → last request received + latency; before first request: from the \
         start of the LLM stage (the `generation_prompt` mark) to the first request the mock received; after last \
         answer: from the last answer leaving the mock to the end of the stage; turnaround: from an answer leaving \
         the mock to the next request on the same connection (what each call adds to the latency)\n\
         - daydream CPU: user + system of the whole `daydream run` / calls; executor CPU: the same minus a \
         `daydream run --dry-run` of the same project; mock CPU: the bench process meanwhile. CPU times on this VM \
         vary by ±25% from run to run with the host (the mock's, for the same work, moves with daydream's), so \
         daydream ÷ mock CPU is the steadier figure for comparing builds; bare loop: `benches/common/bare.rs` right after \
         the daydream runs of that L, same mock, prompt and runtime kind (current thread), at most 3,000 calls at L ≤ 16; \
         its CPU is this process's threads but the mock's\n\
         - rerun: wall of a second `daydream run` (process start to exit), every call cached\n\
         - targets: ≥ {TARGET_THROUGHPUT:.0}% of ideal, daydream CPU < {TARGET_CPU_US:.0} µs/call (the issue's bar, set \
         against a bare loop of about 20 µs: {TARGET_BARE_RATIO:.0}×), rerun < \
         {TARGET_RERUN_S:.0} s, ≥ 10,000 calls; `cargo build --release && cargo bench --bench llm_throughput` \
         regenerates this file\n\n\
         {HEADER}\n{}\n",
        if dirty { " + uncommitted src changes" } else { "" },
        loadavg(),
        latency.as_millis(),
        if quick {
            "DAYDREAM_BENCH_QUICK: L ≤ 16 with at most 24 concepts"
        } else {
            "every L with the same calls"
        },
        rows.iter().map(Row::line).collect::<Vec<_>>().join("\n"),
    );
    let path = repo().join("bench/llm/results.md");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, md).unwrap();
    println!("wrote {}", path.display());
}
