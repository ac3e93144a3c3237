//! Shared setup of the end-to-end benchmarks that run the real `daydream` binary on a generated
//! project against the in-process mock OpenAI server (`tests/common/mock.rs`): the project, a
//! runner that times the child process, and readers of what the run prints (the stage counts of
//! its summary, the `DAYDREAM_TIMING` marks, the remote cache's notes).
//!
//! The project is the repository's own pipeline cut after `generation_response`, with one
//! generation model and template and `k = 3`, so it makes C(concepts, 3) calls: the same shape
//! as `benches/llm_throughput.rs` measures, so the numbers of the two benches compare.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::mock::MockServer;

/// Concepts combined per generation task.
pub const K: usize = 3;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The daydream binary cargo built for this bench (benches get `CARGO_BIN_EXE_*` like tests), or
/// `DAYDREAM_BENCH_BIN` to measure another build.
pub fn bin() -> PathBuf {
    std::env::var_os("DAYDREAM_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_daydream")))
}

/// An environment variable parsed, or `default` when unset; a value that does not parse is a
/// mistake of the person running the bench, so it stops the bench.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} does not parse")),
        Err(_) => default,
    }
}

pub fn comb(n: usize, k: usize) -> usize {
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

/// The fewest concepts whose C(concepts, 3) reaches `calls`.
pub fn concepts_for(calls: usize) -> usize {
    (K..).find(|&n| comb(n, K) >= calls).expect("some n reaches any count")
}

/// Copies a directory tree; `skip` names top-level entries left out (`.daydream` for a fresh clone).
pub fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    let walk = walkdir::WalkDir::new(from).into_iter().filter_entry(|e| {
        let rel = e.path().strip_prefix(from).expect("under the root");
        !skip.iter().any(|s| rel == Path::new(s))
    });
    for entry in walk {
        let entry = entry.expect("walking the project");
        let dest = to.join(entry.path().strip_prefix(from).expect("under the root"));
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).expect("creating a directory");
        } else {
            std::fs::copy(entry.path(), &dest).expect("copying a file");
        }
    }
}

fn replace_once(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "pipeline.yaml does not contain {from:?}");
    s.replacen(from, to, 1)
}

/// A project whose `generation_response` stage makes C(concepts, 3) calls with at most
/// `in_flight` in flight (the provider's `max_in_flight`), with no pacing to speak of. Prompts
/// and answers stay in the store (`materialize: false`): writing ~10k files costs ~1 ms each on
/// this VM and would measure the file system rather than the remote cache;
/// `DAYDREAM_BENCH_MATERIALIZE=1` keeps the pipeline's default (the files written), as a user's
/// project has it.
pub fn make_project(dir: &Path, concepts: usize, in_flight: usize) {
    let w = |path: PathBuf, text: &str| std::fs::write(&path, text).expect("writing the project");
    std::fs::copy(repo().join("pipeline.yaml"), dir.join("pipeline.yaml")).expect("copying pipeline.yaml");
    copy_dir(&repo().join("data/1_raw"), &dir.join("data/1_raw"), &[]);
    copy_dir(&repo().join("templates"), &dir.join("templates"), &[]);

    let cdir = dir.join("data/1_raw/concepts");
    std::fs::remove_dir_all(&cdir).expect("removing the example concepts");
    std::fs::create_dir_all(cdir.join("descriptions-paragraph")).expect("creating concepts/");
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
        w(cdir.join(format!("descriptions-paragraph/concept-{i:03}.txt")), &text);
    }
    w(cdir.join("concepts_metadata.csv"), &csv);
    w(
        dir.join("data/1_raw/llm_models.csv"),
        "id,model,for_generation,for_evaluation,input_usd_per_mtok,output_usd_per_mtok\n\
         gen,bench/gen,true,false,1.0,2.0\n\
         judge,bench/judge,false,true,1.0,2.0\n",
    );

    let y = std::fs::read_to_string(dir.join("pipeline.yaml")).expect("reading pipeline.yaml");
    let cut = y
        .find("\n  parsed_generation_responses:")
        .or_else(|| y.find("\n  evaluation_prompt:"))
        .expect("pipeline.yaml has parsed_generation_responses or evaluation_prompt");
    let mut y = format!("{}\n", &y[..cut]);
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
    let stages: &[&str] = if std::env::var_os("DAYDREAM_BENCH_MATERIALIZE").is_some() {
        &[]
    } else {
        &["generation_prompt", "generation_response"]
    };
    for stage in stages {
        let head = format!("\n  {stage}:\n");
        y = replace_once(&y, &head, &format!("{head}    materialize: false\n"));
    }
    w(dir.join("pipeline.yaml"), &y);
}

/// A finished `daydream` process.
pub struct Out {
    /// Just before the child was spawned.
    pub started: Instant,
    pub stdout: String,
    pub stderr: String,
    /// Spawn to exit.
    pub wall: f64,
}

/// Runs `daydream -C dir args…` with only `env` of the provider and remote variables (the
/// caller's own are removed), and stops the bench if it fails.
pub fn daydream(dir: &Path, env: &[(String, String)], args: &[&str]) -> Out {
    let mut c = Command::new(bin());
    c.arg("-C").arg(dir).args(args);
    for (var, _) in std::env::vars() {
        if var.starts_with("AWS_")
            || var.starts_with("OPENROUTER_")
            || matches!(
                var.as_str(),
                "LOCAL_BASE_URL" | "DAYDREAM_PROVIDER" | "DAYDREAM_TIMING" | "DAYDREAM_REMOTE"
            )
        {
            c.env_remove(var);
        }
    }
    c.envs(env.iter().map(|(k, v)| (k, v)));
    let started = Instant::now();
    let o = c.output().expect("running daydream");
    let out = Out {
        started,
        wall: started.elapsed().as_secs_f64(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
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
pub fn clock_of(server: &MockServer) -> Instant {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.addr()).expect("probe: connect");
    s.set_nodelay(true).expect("probe: nodelay");
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

/// (executed, reused, unchanged) printed for a stage in the run's summary.
pub fn counts(stdout: &str, stage: &str) -> (usize, usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(stage))
        .unwrap_or_else(|| panic!("no line for {stage} in:\n{stdout}"));
    let num = |word: &str| number_after(line, word).unwrap_or_else(|| panic!("no `{word}` in {line}"));
    (num("executed"), num("reused"), num("unchanged"))
}

/// The number right after `word` in `line`, if there is one.
pub fn number_after(line: &str, word: &str) -> Option<usize> {
    let i = line.find(word)?;
    line[i + word.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit() && c != ',')
        .next()?
        .replace(',', "")
        .parse()
        .ok()
}

/// Answers fetched from the remote, from the `done: … fetched N …` line (0 when absent).
pub fn fetched(stdout: &str) -> usize {
    stdout
        .lines()
        .find(|l| l.starts_with("done:"))
        .and_then(|l| number_after(l, "fetched"))
        .unwrap_or(0)
}

/// The number before `what` in the remote cache's notes (`remote cache URL: 10 uploaded, …`).
pub fn remote_note(out: &Out, what: &str) -> usize {
    out.stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| l.contains("remote cache"))
        .find_map(|l| {
            let i = l.find(what)?;
            let before = l[..i].trim_end();
            let word = before.rsplit([' ', ',', ':', '(']).next()?;
            word.replace(',', "").parse().ok()
        })
        .unwrap_or(0)
}

/// The `timing: <secs>s stage <name>` mark `DAYDREAM_TIMING` prints after each stage (seconds
/// since the run started).
pub fn stage_mark(stderr: &str, stage: &str) -> f64 {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("timing:"))
        .find_map(|l| {
            let (secs, what) = l.trim().split_once("s ")?;
            (what.trim() == format!("stage {stage}")).then(|| secs.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no timing mark for stage {stage} in:\n{stderr}"))
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}
