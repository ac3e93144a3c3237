//! The remote answer cache in runs: copies of one project sharing a bucket (moto, a real S3
//! server on 127.0.0.1) or a directory never pay twice for a call; `--shard` splits the calls;
//! a remote that is down, slow, refusing or corrupt costs neither money nor data.

mod common;
#[path = "common/proxy.rs"]
mod proxy;
#[path = "common/s3.rs"]
mod s3;

use std::collections::BTreeMap;
use std::time::Duration;

use common::mock::{MockServer, Reply};
use common::{Space, outputs};
use proxy::Proxy;
use s3::Moto;

/// The shipped project made small: 5 combinations x 1 template x the generation model
/// `vendor/a`, judged by `vendor/judge` with one rubric: 10 calls. Its remote cache is `remote`.
fn copy(mock: &MockServer, remote: &str, env: &[(String, String)]) -> Space {
    let s = Space::shipped_with_llm();
    s.use_mock(&mock.base_url());
    s.use_models(&["vendor/a"]);
    s.use_rubrics(&["style-coherence"]);
    s.edit(
        "pipeline.yaml",
        "\nstages:\n",
        &format!("\ncache:\n  remote: \"{remote}\"\n\nstages:\n"),
    );
    for (k, v) in env {
        s.set_env(k, v);
    }
    s
}

/// The files that differ between two copies (none, when they are the same).
fn differing(a: &Space, b: &Space) -> Vec<String> {
    let (a, b) = (outputs(a), outputs(b));
    let mut names: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    names.dedup();
    names.sort();
    names.dedup();
    names.into_iter().filter(|n| a.get(n) != b.get(n)).collect()
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("warning:")).collect()
}

#[test]
fn a_colleague_sharing_the_bucket_pays_for_nothing_and_gets_the_same_outputs() {
    let moto = Moto::start();
    let mock = MockServer::start(Reply::echo);
    let remote = moto.url("team/daydream");
    let a = copy(&mock, &remote, &moto.env());
    let out = a.ok(&["run"]);
    assert_eq!(mock.count(), 10, "{out}");
    assert!(
        out.contains(&format!(
            "remote cache {}: 10 uploaded",
            "s3://daydream-test/team/daydream"
        )),
        "{out}"
    );

    mock.clear();
    let b = copy(&mock, &remote, &moto.env());
    let r = b.run(&["run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(mock.count(), 0, "the colleague made requests:\n{}", r.stdout);
    assert!(
        r.stdout
            .contains("generation_response      5 calls: executed 0, reused 0, unchanged 0, fetched 5"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("10 answers fetched, no request made for them"),
        "{}",
        r.stdout
    );
    assert!(warnings(&r.stderr).is_empty(), "{}", r.stderr);
    assert_eq!(differing(&a, &b), Vec::<String>::new());

    // where a number came from: explain says the answer was fetched, and what it cost where it was made
    let id = "combo_v1_13c725cf02fa_creative-synthesis-v6_g0";
    let explained = b.ok(&["explain", &format!("data/3_generation/generation_responses/{id}.txt")]);
    assert!(
        explained.contains("fetched from the remote cache s3://daydream-test/team/daydream"),
        "{explained}"
    );
    // a second run there: nothing fetched again, nothing asked
    let again = b.ok(&["run"]);
    assert!(!again.contains("fetched"), "{again}");
    assert_eq!(mock.count(), 0);

    // no credential and no API key in any output, message or store
    let secrets = ["sk-test-SECRET-0123456789", "moto-test-secret"];
    for s in [&a, &b] {
        for (path, (_, bytes)) in s.snapshot(".") {
            let text = String::from_utf8_lossy(&bytes);
            for secret in secrets {
                assert!(!text.contains(secret), "{secret} in {path}");
            }
        }
    }
    for text in [&out, &r.stdout, &r.stderr, &explained] {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} printed");
        }
    }
}

#[test]
fn shards_split_the_calls_and_a_run_without_shard_then_makes_none() {
    let moto = Moto::start();
    let mock = MockServer::start(Reply::echo);
    let remote = moto.url("shards");
    // 15 generations and their 15 evaluations: keys (which hold the mock's port) fall in both
    // shards but once in 2^14 runs
    let three_models = |s: Space| {
        s.use_models(&["vendor/a", "vendor/b", "vendor/c"]);
        s
    };
    let one = three_models(copy(&mock, &remote, &moto.env()));
    let two = three_models(copy(&mock, &remote, &moto.env()));
    let first = one.ok(&["run", "--shard", "1/2"]);
    let after_one = mock.count();
    let second = two.ok(&["run", "--shard", "2/2"]);
    // each shard asks its part of the generation calls; no call is asked twice
    let asked: Vec<(String, String)> = mock
        .requests()
        .iter()
        .map(|r| (r.model.clone(), r.prompt.clone()))
        .collect();
    let distinct: std::collections::HashSet<&(String, String)> = asked.iter().collect();
    assert_eq!(
        distinct.len(),
        asked.len(),
        "a call was asked twice:\n{first}\n{second}"
    );
    assert!(after_one > 0 && mock.count() > after_one, "{first}\n{second}");
    // 15 generations; the judge is asked 5 distinct questions (the mock echoes, so the three
    // models' essays of one combination are the same text)
    assert_eq!(
        mock.count(),
        20,
        "between them the shards made every call once:\n{first}\n{second}"
    );
    assert!(first.contains("left to other shards"), "{first}");

    // the merge: every generation answer is in the bucket; the evaluations whose essays a shard
    // did not have are the only calls left, made once
    mock.clear();
    let merge = three_models(copy(&mock, &remote, &moto.env()));
    let out = merge.ok(&["run"]);
    assert!(
        out.contains("generation_response      15 calls: executed 0, reused 0, unchanged 0, fetched 15"),
        "{out}"
    );
    assert_eq!(mock.count(), 0, "the shards made every call between them:\n{out}");
    // and a fourth machine finds everything
    let last = three_models(copy(&mock, &remote, &moto.env()));
    last.ok(&["run"]);
    assert_eq!(mock.count(), 0);
    assert_eq!(differing(&merge, &last), Vec::<String>::new());
}

#[test]
fn a_remote_down_at_the_start_warns_once_and_the_next_run_uploads_what_is_missing() {
    let moto = Moto::start();
    let mock = MockServer::start(Reply::echo);
    let gate = Proxy::start(&format!("127.0.0.1:{}", moto.port), Duration::ZERO);
    gate.cut();
    let remote = format!(
        "s3://{}/down?endpoint={}&timeout=2&retries=0",
        s3::BUCKET,
        gate.endpoint()
    );
    let a = copy(&mock, &remote, &moto.env());
    let r = a.run(&["run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(mock.count(), 10);
    let w = warnings(&r.stderr);
    assert_eq!(w.len(), 1, "one warning:\n{}", r.stderr);
    assert!(w[0].contains("going on without the remote cache"), "{}", w[0]);
    assert!(r.stdout.contains("not uploaded"), "{}", r.stdout);

    // back up: the next run asks nothing and uploads the 10 answers
    gate.restore();
    mock.clear();
    let out = a.ok(&["run"]);
    assert_eq!(mock.count(), 0);
    assert!(out.contains("10 uploaded"), "{out}");
    let b = copy(&mock, &remote, &moto.env());
    b.ok(&["run"]);
    assert_eq!(mock.count(), 0);
}

#[test]
fn a_remote_lost_in_the_middle_of_a_run_costs_nothing() {
    let moto = Moto::start();
    let gate = std::sync::Arc::new(Proxy::start(&format!("127.0.0.1:{}", moto.port), Duration::ZERO));
    // the remote goes away as the fourth call is answered
    let g = gate.clone();
    let mock = MockServer::start(move |r| {
        if r.seq == 3 {
            g.cut();
        }
        Reply::echo(r).after(Duration::from_millis(100))
    });
    let remote = format!(
        "s3://{}/mid?endpoint={}&timeout=2&retries=0",
        s3::BUCKET,
        gate.endpoint()
    );
    let a = copy(&mock, &remote, &moto.env());
    let r = a.run(&["run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(mock.count(), 10, "every call made once");
    assert_eq!(warnings(&r.stderr).len(), 1, "{}", r.stderr);
    assert!(r.stdout.contains("the next run uploads them"), "{}", r.stdout);
    // everything is local; the next run with the remote back uploads the rest and asks nothing
    gate.restore();
    mock.clear();
    let out = a.ok(&["run"]);
    assert_eq!(mock.count(), 0, "{out}");
    let b = copy(&mock, &remote, &moto.env());
    b.ok(&["run"]);
    assert_eq!(mock.count(), 0);
}

#[test]
fn refused_credentials_warn_once_and_the_run_goes_on() {
    let moto = Moto::start_with_auth();
    let mock = MockServer::start(Reply::echo);
    let wrong = vec![
        ("AWS_ACCESS_KEY_ID".to_owned(), "AKIDWRONGWRONG".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "not-the-secret-at-all".to_owned()),
    ];
    let a = copy(&mock, &moto.url("forbidden"), &wrong);
    let r = a.run(&["run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(mock.count(), 10);
    let w = warnings(&r.stderr);
    assert_eq!(w.len(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("not-the-secret-at-all") && !r.stdout.contains("not-the-secret-at-all"));
}

#[test]
fn a_corrupt_answer_in_the_remote_is_not_trusted_and_is_replaced() {
    let shared = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", shared.path().display());
    let mock = MockServer::start(Reply::echo);
    let a = copy(&mock, &remote, &[]);
    a.ok(&["run"]);
    // one answer's content is changed in the shared directory
    let blobs = shared.path().join("daydream/v1/blobs");
    let victim = std::fs::read_dir(&blobs).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&victim, "not what was paid for").unwrap();
    mock.clear();
    let b = copy(&mock, &remote, &[]);
    let r = b.run(&["run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(mock.count(), 1, "only the corrupt answer is asked again:\n{}", r.stdout);
    assert!(
        r.stderr
            .contains(&victim.file_name().unwrap().to_string_lossy().to_string()),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("1 corrupt object ignored"), "{}", r.stdout);
    // the answers are the same (the tables of the re-asked call hold its own time and latency)
    let answers = |s: &Space| -> BTreeMap<String, Vec<u8>> {
        outputs(s)
            .into_iter()
            .filter(|(p, _)| p.contains("_responses/"))
            .collect()
    };
    assert_eq!(answers(&a), answers(&b));
    // the upload of the new answer repaired the object: a third copy asks nothing
    mock.clear();
    let c = copy(&mock, &remote, &[]);
    c.ok(&["run"]);
    assert_eq!(mock.count(), 0);
}

#[test]
fn a_slow_remote_does_not_fail_the_run_and_gets_every_answer() {
    let moto = Moto::start();
    let mock = MockServer::start(Reply::echo);
    let gate = Proxy::start(&format!("127.0.0.1:{}", moto.port), Duration::from_millis(150));
    let remote = format!("s3://{}/slow?endpoint={}", s3::BUCKET, gate.endpoint());
    let a = copy(&mock, &remote, &moto.env());
    let r = a.run(&["run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("10 uploaded"), "{}", r.stdout);
    assert!(warnings(&r.stderr).is_empty(), "{}", r.stderr);
    gate.set_delay(Duration::ZERO);
    mock.clear();
    copy(&mock, &remote, &moto.env()).ok(&["run"]);
    assert_eq!(mock.count(), 0);
}

#[test]
fn killed_while_uploading_the_next_run_uploads_the_rest_and_pays_nothing() {
    let moto = Moto::start();
    let mock = MockServer::start(Reply::echo);
    // uploads crawl: the calls end long before them
    let gate = Proxy::start(&format!("127.0.0.1:{}", moto.port), Duration::from_millis(400));
    let remote = format!("s3://{}/killed?endpoint={}", s3::BUCKET, gate.endpoint());
    let a = copy(&mock, &remote, &moto.env());
    let mut child = a
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while mock.count() < 10 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL, uploads in flight
    child.wait().unwrap();
    gate.set_delay(Duration::ZERO);
    mock.clear();
    let out = a.ok(&["run"]);
    assert_eq!(mock.count(), 0, "nothing paid again:\n{out}");
    assert!(out.contains("uploaded") || out.contains("already there"), "{out}");
    copy(&mock, &remote, &moto.env()).ok(&["run"]);
    assert_eq!(mock.count(), 0);
}

#[test]
fn cache_status_push_and_pull_move_answers_explicitly() {
    let shared = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", shared.path().display());
    let mock = MockServer::start(Reply::echo);
    // answers made before the remote was set
    let a = copy(&mock, &remote, &[("DAYDREAM_REMOTE".to_owned(), "off".to_owned())]);
    a.ok(&["run"]);
    a.env.borrow_mut().retain(|(k, _)| k != "DAYDREAM_REMOTE");
    let status = a.ok(&["cache", "status"]);
    assert!(status.contains("10  answers here only"), "{status}");
    let dry = a.ok(&["cache", "push", "--dry-run"]);
    assert!(dry.contains("would upload 10 answers"), "{dry}");
    assert!(!shared.path().join("daydream").exists(), "a dry run uploads nothing");
    let pushed = a.ok(&["cache", "push"]);
    assert!(pushed.contains("uploaded 10 answers"), "{pushed}");
    assert!(a.ok(&["cache", "status"]).contains("10  in both"));

    let b = copy(&mock, &remote, &[]);
    let pull_dry = b.ok(&["cache", "pull", "--dry-run"]);
    assert!(pull_dry.contains("would download 10 answers"), "{pull_dry}");
    let pulled = b.ok(&["cache", "pull"]);
    assert!(pulled.contains("downloaded 10 answers"), "{pulled}");
    // offline now: the run restores from the local store
    b.set_env("DAYDREAM_REMOTE", "off");
    mock.clear();
    let out = b.ok(&["run"]);
    assert_eq!(mock.count(), 0, "{out}");
    assert_eq!(differing(&a, &b), Vec::<String>::new());

    // without a remote: a clear error
    let c = Space::shipped_with_llm();
    let err = c.fails(&["cache", "status"], 2);
    assert!(err.contains("no remote answer cache is configured"), "{err}");
}

#[test]
fn a_bad_remote_url_in_pipeline_yaml_names_its_line() {
    let mock = MockServer::start(Reply::echo);
    let s = copy(&mock, "s3://Bad_Bucket/x", &[]);
    let err = s.fails(&["run"], 2);
    assert!(err.contains("cache.remote:") && err.contains("pipeline.yaml:"), "{err}");
    let s = copy(&mock, "s3://bucket/x?secret_key=hunter2", &[]);
    let err = s.fails(&["status"], 2);
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("unknown option"), "{err}");
}
