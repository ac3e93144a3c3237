//! A real S3-compatible server on 127.0.0.1 for tests: moto's server, from PyPI, pinned.
//!
//! The first use installs a virtual environment into `$DAYDREAM_TEST_CACHE` (else
//! `~/.cache/daydream-test`): `python3 -m venv` and pip, about 30 s and 140 MB once. Only what S3
//! needs is installed (`moto[s3]` with Flask), not `moto[server]`, which brings every AWS service's
//! dependencies (320 MB, over 2 minutes). Concurrent test binaries share it: it is built in a
//! temporary directory under an exclusive lock, marked complete by a file written last, and renamed
//! into place (as `src/local.rs` builds the local model's).
//!
//! [`Moto::start`] runs the server in a Python process (`LAUNCHER`) on a port the kernel picks,
//! creates the bucket [`BUCKET`], and prints one JSON line when it serves. The process exits when
//! its stdin closes: when the [`Moto`] is dropped, or when the test process dies in any way.
//! [`Moto::start_with_auth`] also makes moto check signatures and IAM permissions (it creates a
//! user allowed `s3:*` and hands out its key); without it, moto accepts any credentials.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const MOTO_VERSION: &str = "5.2.6";
/// Pinned with moto: its server's web framework.
const FLASK: &str = "flask==3.1.3";
const FLASK_CORS: &str = "flask-cors==6.0.5";
pub const BUCKET: &str = "daydream-test";
const MARKER: &str = ".daydream-complete";

/// Runs moto's threaded server in this process; see the module documentation.
const LAUNCHER: &str = r#"
import json, logging, os, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
from moto import settings
from moto.server import ThreadedMotoServer
import boto3

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
setup = dict(endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
             aws_access_key_id="setup", aws_secret_access_key="setup")
boto3.client("s3", **setup).create_bucket(Bucket=sys.argv[1])
out = {"port": port}
if "--auth" in sys.argv:
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="daydream")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="daydream", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="daydream")["AccessKey"]
    out["key_id"], out["secret"] = key["AccessKeyId"], key["SecretAccessKey"]
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # from now on every request is authenticated
print(json.dumps(out), flush=True)
sys.stdin.read()
os._exit(0)
"#;

pub struct Moto {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The key and secret the server knows, with [`Moto::start_with_auth`].
    pub credentials: Option<(String, String)>,
    log: PathBuf,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::launch(false)
    }

    pub fn start_with_auth() -> Moto {
        Moto::launch(true)
    }

    fn launch(auth: bool) -> Moto {
        let venv = ensure_venv();
        let log = std::env::temp_dir().join(format!(
            "daydream-moto-{}-{}.log",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = Command::new(venv.join("bin").join("python"));
        cmd.arg("-c").arg(LAUNCHER).arg(BUCKET);
        if auth {
            cmd.arg("--auth");
        }
        // moto reads AWS settings from the environment; the test's own must not leak in
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") || k == "INITIAL_NO_AUTH_ACTION_COUNT" {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting moto with {}: {e}", venv.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if !line.trim().is_empty() => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "moto did not start ({}); its log {}:\n{}",
                    if other.is_err() {
                        "no answer in 120 s"
                    } else {
                        "it exited"
                    },
                    log.display(),
                    tail(&log)
                );
            }
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("moto said {line:?}: {e}"));
        let port = v["port"].as_u64().unwrap() as u16;
        let credentials = v["key_id"]
            .as_str()
            .map(|k| (k.to_owned(), v["secret"].as_str().unwrap().to_owned()));
        Moto {
            stdin: child.stdin.take(),
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            credentials,
            log,
        }
    }

    /// `s3://BUCKET/PREFIX?endpoint=…` for this server.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}?endpoint={}", self.endpoint)
    }

    /// Credentials for this server: its own with auth, made-up ones without.
    pub fn env(&self) -> Vec<(String, String)> {
        let (id, secret) = self
            .credentials
            .clone()
            .unwrap_or_else(|| ("AKIDMOTOTEST".to_owned(), "moto-test-secret".to_owned()));
        vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), id),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), secret),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.stdin.take()); // the launcher exits on end of file
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DAYDREAM_TEST_CACHE") {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("daydream-test"),
        None => std::env::temp_dir().join("daydream-test-cache"),
    }
}

/// The venv with moto, created on first use under an exclusive lock.
fn ensure_venv() -> PathBuf {
    let cache = cache_dir();
    let name = format!("moto-venv-{MOTO_VERSION}");
    let venv = cache.join(&name);
    if venv.join(MARKER).is_file() {
        return venv;
    }
    fs::create_dir_all(&cache).unwrap_or_else(|e| panic!("creating {}: {e}", cache.display()));
    let lock_path = cache.join(format!("{name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
    // under the lock: another process may have finished meanwhile
    if venv.join(MARKER).is_file() {
        return venv;
    }
    let _ = fs::remove_dir_all(&venv); // incomplete: no marker
    let tmp = cache.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let log = cache.join(format!("{name}-install.log"));
    eprintln!(
        "[s3] installing moto {MOTO_VERSION} into {} (first use: about 30 s)…",
        venv.display()
    );
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
        let mut f = OpenOptions::new().create(true).append(true).open(&log).unwrap();
        f.write_all(&out.stdout).unwrap();
        f.write_all(&out.stderr).unwrap();
        if !out.status.success() {
            let _ = fs::remove_dir_all(&tmp);
            panic!(
                "{cmd:?} failed ({}); the S3 tests need python3 with venv (Debian: apt-get install python3-venv) and \
                 PyPI. Its output (also in {}):\n{}",
                out.status,
                log.display(),
                tail(&log)
            );
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&tmp));
    let moto = format!("moto[s3]=={MOTO_VERSION}");
    run(Command::new(tmp.join("bin").join("python"))
        .args(daydream::llm::local::PIP_INSTALL)
        .args([&moto, FLASK, FLASK_CORS]));
    let mut marker = File::create(tmp.join(MARKER)).unwrap();
    writeln!(marker, "{moto}\n{FLASK}\n{FLASK_CORS}").unwrap();
    marker.sync_all().unwrap();
    fs::rename(&tmp, &venv).unwrap_or_else(|e| panic!("moving {} to {}: {e}", tmp.display(), venv.display()));
    drop(lock);
    venv
}
