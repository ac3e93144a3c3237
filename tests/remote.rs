//! The remote answer cache (`src/remote.rs`) against a real S3 server (moto, on 127.0.0.1; see
//! `tests/common/s3.rs`), against a directory, and against servers that misbehave on purpose: a
//! closed port, one that never answers, one that refuses the credentials.
//!
//! Each test runs on a current-thread runtime, as the executor does. The servers are shared by
//! the tests of this binary (one moto without authentication, one with); each test writes under
//! its own prefix.

#[path = "common/s3.rs"]
mod s3;

use std::net::TcpListener;
use std::sync::OnceLock;

use daydream::engine::keys::Hash;
use daydream::llm::remote::{ErrorKind, PutOutcome, Remote, RemoteAnswer, RemoteConfig, RemoteError, Uploader};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use s3::{BUCKET, Moto};

fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(Moto::start)
}

fn moto_with_auth() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(Moto::start_with_auth)
}

fn open_with(url: &str, env: &[(String, String)]) -> Result<Remote, RemoteError> {
    let config = RemoteConfig::parse(url).unwrap();
    let env = env.to_vec();
    Remote::open_with_env(&config, &move |n: &str| {
        env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
    })
}

fn open(server: &Moto, prefix: &str) -> Remote {
    open_with(&server.url(prefix), &server.env()).unwrap()
}

/// An answer whose manifest is unique to `(test, i)`, as a call's would be.
fn answer(test: &str, i: usize, text: &str) -> RemoteAnswer {
    let manifest = format!(
        r#"{{"format":1,"kind":"llm_call","params":{{"model":"m","test":"{test}"}},"inputs":[{{"name":"prompt","hash":"{}"}}]}}"#,
        Hash::of(format!("{test}/{i}").as_bytes())
    );
    RemoteAnswer::new(
        manifest,
        Some(format!(r#"{{"status":"ok","attempts":1,"i":{i}}}"#)),
        "2026-12-06T09:00:00.000Z".to_owned(),
        text.to_owned(),
    )
}

/// A raw client for the moto server, to change or delete objects behind the cache's back.
fn raw(server: &Moto) -> object_store::aws::AmazonS3 {
    let env = server.env();
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_endpoint(&server.endpoint)
        .with_allow_http(true)
        .with_access_key_id(&env[0].1)
        .with_secret_access_key(&env[1].1)
        .build()
        .unwrap()
}

/// Writes an object without the remote cache's checks: the way a broken disk or another tool
/// would.
async fn write_raw(server: &Moto, path: &str, bytes: &[u8]) {
    raw(server)
        .put(&path.into(), PutPayload::from(bytes.to_vec()))
        .await
        .unwrap();
}

#[tokio::test]
async fn round_trip() {
    let r = open(moto(), "round-trip");
    let a = answer("round-trip", 0, "The essay.\nWith a second line, and ünïcödé.");
    assert_eq!(r.get(&a.key).await.unwrap(), None);
    assert_eq!(r.put(&a).await.unwrap(), PutOutcome::Uploaded);
    let got = r.get(&a.key).await.unwrap().unwrap();
    assert_eq!(got, a);
    assert_eq!(got.manifest, a.manifest, "the manifest comes back byte for byte");
    assert_eq!(r.list().await.unwrap(), vec![a.key]);
    // an answer without a call record (imported)
    let mut b = answer("round-trip", 1, "imported");
    b.info = None;
    r.put(&b).await.unwrap();
    assert_eq!(r.get(&b.key).await.unwrap().unwrap(), b);
    let mut keys = r.list().await.unwrap();
    keys.sort();
    let mut want = vec![a.key, b.key];
    want.sort();
    assert_eq!(keys, want);
}

#[tokio::test]
async fn a_second_put_changes_nothing() {
    let r = open(moto(), "double-put");
    let a = answer("double-put", 0, "first");
    assert_eq!(r.put(&a).await.unwrap(), PutOutcome::Uploaded);
    assert_eq!(r.put(&a).await.unwrap(), PutOutcome::Present);
    // another answer to the same call (another machine's) does not replace the first
    let mut other = a.clone();
    other.content = "second".to_owned();
    other.output = Hash::of(b"second");
    assert_eq!(r.put(&other).await.unwrap(), PutOutcome::Present);
    assert_eq!(r.get(&a.key).await.unwrap().unwrap(), a);
}

#[tokio::test]
async fn concurrent_writers_of_one_key_leave_one_whole_answer() {
    let (r1, r2) = (open(moto(), "concurrent"), open(moto(), "concurrent"));
    for i in 0..20 {
        let a = answer("concurrent", i, &format!("machine one's answer {i}"));
        let mut b = a.clone();
        b.content = format!("machine two's answer {i}, a different one");
        b.output = Hash::of(b.content.as_bytes());
        let (x, y) = tokio::join!(r1.put(&a), r2.put(&b));
        let mut outcomes = [x.unwrap(), y.unwrap()];
        outcomes.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(
            outcomes,
            [PutOutcome::Present, PutOutcome::Uploaded],
            "key {i}: one writer wins"
        );
        let got = r1.get(&a.key).await.unwrap().unwrap();
        assert!(got == a || got == b, "key {i}: {got:?}");
        // the same bytes from both: both succeed
        let c = answer("concurrent-same", i, "identical");
        let (x, y) = tokio::join!(r1.put(&c), r2.put(&c));
        assert!(x.is_ok() && y.is_ok());
        assert_eq!(r2.get(&c.key).await.unwrap().unwrap(), c);
    }
}

#[tokio::test]
async fn corrupt_objects_are_detected_and_replaced_by_the_next_upload() {
    let server = moto();
    let r = open(server, "corrupt");
    let a = answer("corrupt", 0, "the true answer");
    r.put(&a).await.unwrap();
    let blob = format!("corrupt/daydream/v1/blobs/{}", a.output);
    write_raw(server, &blob, b"the true answeR").await;
    let e = r.get(&a.key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(
        e.message()
            .contains(&format!("the object s3://{BUCKET}/{blob} is corrupt")),
        "{e}"
    );
    assert!(e.message().contains("was not used"), "{e}");
    assert_eq!(r.put(&a).await.unwrap(), PutOutcome::Repaired);
    assert_eq!(r.get(&a.key).await.unwrap().unwrap(), a);

    // a record that is not JSON, and one moved under another key
    let record = format!("corrupt/daydream/v1/answers/{}.json", a.key);
    write_raw(server, &record, b"{\"layout\":").await;
    let e = r.get(&a.key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(
        e.message()
            .contains(&format!("s3://{BUCKET}/{record} is corrupt: not a daydream record")),
        "{e}"
    );
    assert_eq!(r.put(&a).await.unwrap(), PutOutcome::Repaired);
    let b = answer("corrupt", 1, "another answer");
    let moved = format!("corrupt/daydream/v1/answers/{}.json", b.key);
    let a_record = raw(server)
        .get(&record.as_str().into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_raw(server, &moved, &a_record).await;
    let e = r.get(&b.key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.message().contains(&format!("it is the record of {}", a.key)), "{e}");

    // a record naming content that is gone
    let c = answer("corrupt", 2, "its blob will be missing");
    let record_of = |manifest: &str| {
        format!(
            r#"{{"layout":"daydream/v1","key":"{}","output":"{}","size":7,"created_at":"x","manifest":{manifest},"info":null}}"#,
            c.key,
            Hash::of(b"nowhere")
        )
    };
    let c_record = format!("corrupt/daydream/v1/answers/{}.json", c.key);
    write_raw(server, &c_record, record_of(&c.manifest).as_bytes()).await;
    let e = r.get(&c.key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.message().contains("which is missing"), "{e}");

    // a manifest that says something else than its key (here: the same fields in another order)
    let reordered = serde_json::from_str::<serde_json::Value>(&c.manifest)
        .unwrap()
        .to_string();
    assert_ne!(reordered, c.manifest);
    write_raw(server, &c_record, record_of(&reordered).as_bytes()).await;
    let e = r.get(&c.key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.message().contains("its manifest does not hash to its key"), "{e}");
}

const NEVER_SHOWN: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "AKIDNEVERSHOWN123"),
    ("AWS_SECRET_ACCESS_KEY", "secretNEVERSHOWNabc/xyz"),
    ("AWS_SESSION_TOKEN", "tokenNEVERSHOWNdef"),
];

fn never_shown_env() -> Vec<(String, String)> {
    NEVER_SHOWN
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// No credential of `secrets` in `text`.
fn assert_clean(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "a credential in {text:?}");
    }
}

#[tokio::test]
async fn refused_credentials_are_forbidden_and_never_shown() {
    let server = moto_with_auth();
    let (key_id, secret) = server.credentials.clone().unwrap();
    // the right key works: the server does check
    let good = open(server, "auth");
    let a = answer("auth", 0, "allowed");
    assert_eq!(good.put(&a).await.unwrap(), PutOutcome::Uploaded);
    assert_eq!(good.get(&a.key).await.unwrap().unwrap(), a);

    let wrong_secret = vec![
        ("AWS_ACCESS_KEY_ID".to_owned(), key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "wrongSECRETvalue".to_owned()),
    ];
    let r = open_with(&server.url("auth"), &wrong_secret).unwrap();
    for e in [
        r.get(&a.key).await.unwrap_err(),
        r.put(&answer("auth", 1, "x")).await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
        assert!(
            e.message()
                .starts_with(&format!("remote cache s3://{BUCKET}/auth: access denied")),
            "{e}"
        );
        assert!(e.message().contains("HTTP 403 SignatureDoesNotMatch"), "{e}");
        assert!(e.message().contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert_clean(&format!("{e} {e:?} {r:?}"), &[&key_id, "wrongSECRETvalue", &secret]);
    }
    let r = open_with(&server.url("auth"), &never_shown_env()).unwrap();
    let e = r.list().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
    assert!(e.message().contains("InvalidAccessKeyId"), "{e}");
    assert_clean(&format!("{e} {e:?} {r:?}"), &NEVER_SHOWN.map(|(_, v)| v));
}

#[tokio::test]
async fn a_missing_bucket_is_not_found() {
    let server = moto();
    let url = format!("s3://no-such-bucket-here/p?endpoint={}", server.endpoint);
    let r = open_with(&url, &server.env()).unwrap();
    let e = r.get(&Hash::of(b"k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.message().contains("the bucket does not exist"), "{e}");
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_remote_fails_fast_and_once() {
    let url = format!("s3://{BUCKET}/p?endpoint=http://127.0.0.1:{}&retries=1", closed_port());
    let r = open_with(&url, &never_shown_env()).unwrap();
    let e = r.get(&Hash::of(b"k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(
        e.message()
            .starts_with(&format!("remote cache s3://{BUCKET}/p: cannot reach http://127.0.0.1:")),
        "{e}"
    );
    assert!(e.message().contains("Connection refused"), "{e}");
    assert_clean(&format!("{e} {e:?} {r:?}"), &NEVER_SHOWN.map(|(_, v)| v));

    let keys: Vec<Hash> = (0..200u32).map(|i| Hash::of(&i.to_le_bytes())).collect();
    let results = r.fetch_many(keys, 8).await;
    assert_eq!(results.len(), 200);
    let errors: Vec<&RemoteError> = results.iter().map(|(_, r)| r.as_ref().unwrap_err()).collect();
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::Unreachable));
    let tried = errors.iter().filter(|e| e.was_tried()).count();
    assert!(tried <= 8, "{tried} requests sent after the remote was found down");
}

/// A server that accepts connections and never answers.
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(64) {
            held.push(conn); // kept open, unread, until the test process ends
        }
        std::thread::park();
    });
    port
}

#[tokio::test]
async fn a_silent_remote_hits_the_timeout() {
    let url = format!(
        "s3://{BUCKET}/p?endpoint=http://127.0.0.1:{}&timeout=1&retries=0",
        silent_server()
    );
    let r = open_with(&url, &never_shown_env()).unwrap();
    let e = r.get(&Hash::of(b"k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("no answer from http://127.0.0.1:"), "{e}");
    assert!(e.message().contains("within 1 s"), "{e}");
    assert_clean(&format!("{e} {e:?}"), &NEVER_SHOWN.map(|(_, v)| v));

    let up = Uploader::start(r, 4, 1000);
    for i in 0..50 {
        assert!(up.push(answer("silent", i, "never arrives")));
    }
    let report = up.finish().await;
    assert_eq!(report.uploaded + report.present + report.repaired, 0);
    assert!((1..=4).contains(&report.failed), "{report:?}");
    assert_eq!(report.failed + report.pending, 50, "{report:?}");
    assert_eq!(report.first_error.unwrap().kind(), ErrorKind::Timeout);
}

/// A minimal HTTP server: `answer` maps a request line to a status and body, or `None` to never
/// answer it.
fn fake_s3(answer: fn(&str) -> Option<(u16, String)>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(256) {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut header = String::new();
                    while reader.read_line(&mut header).unwrap_or(0) > 2 {
                        header.clear();
                    }
                    match answer(&line) {
                        Some((status, body)) => {
                            let head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n", body.len());
                            let _ = conn.write_all(format!("{head}{body}").as_bytes());
                        }
                        None => std::thread::park(), // hold the connection, never answer
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_remote_that_lists_but_never_reads_costs_one_timeout() {
    let port = fake_s3(|line| {
        line.contains("list-type=2").then(|| {
            (
                200,
                "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>".to_owned(),
            )
        })
    });
    let url = format!("s3://{BUCKET}/p?endpoint=http://127.0.0.1:{port}&timeout=1&retries=0");
    let r = open_with(&url, &never_shown_env()).unwrap();
    let keys: Vec<Hash> = (0..100u32).map(|i| Hash::of(&i.to_le_bytes())).collect();
    let results = r.fetch_many(keys, 4).await;
    assert_eq!(results.len(), 100);
    let errors: Vec<&RemoteError> = results.iter().map(|(_, r)| r.as_ref().unwrap_err()).collect();
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::Timeout), "{:?}", errors[0]);
    let tried = errors.iter().filter(|e| e.was_tried()).count();
    assert!((1..=4).contains(&tried), "{tried} reads sent after the first timed out");
}

#[tokio::test]
async fn a_response_that_echoes_the_key_is_scrubbed() {
    let port = fake_s3(|_| {
        Some((
            500,
            "<Error><Code>InternalError</Code><AWSAccessKeyId>AKIDNEVERSHOWN123</AWSAccessKeyId>\
             <Token>tokenNEVERSHOWNdef</Token></Error>"
                .to_owned(),
        ))
    });
    let url = format!("s3://{BUCKET}/p?endpoint=http://127.0.0.1:{port}&retries=0");
    let r = open_with(&url, &never_shown_env()).unwrap();
    let e = r.get(&Hash::of(b"k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert!(
        e.message().contains("InternalError"),
        "the server's words are quoted: {e}"
    );
    assert_clean(&format!("{e} {e:?}"), &NEVER_SHOWN.map(|(_, v)| v));
}

#[tokio::test]
async fn uploader_then_fetch_many() {
    let r = open(moto(), "batch");
    let answers: Vec<RemoteAnswer> = (0..120)
        .map(|i| answer("batch", i, &format!("answer {i} ").repeat(40)))
        .collect();
    let up = Uploader::start(r.clone(), 16, 1000);
    for a in &answers {
        assert!(up.push(a.clone()));
    }
    up.push(answers[0].clone()); // a duplicate: present
    let report = up.finish().await;
    assert_eq!(
        (report.uploaded, report.present, report.failed, report.pending),
        (120, 1, 0, 0),
        "{report:?}"
    );
    let mut keys: Vec<Hash> = answers.iter().map(|a| a.key).collect();
    keys.push(Hash::of(b"not uploaded"));
    let got = r.fetch_many(keys, 16).await;
    assert_eq!(got.len(), 121);
    for (key, result) in got {
        match result.unwrap() {
            Some(a) => assert_eq!(answers.iter().find(|x| x.key == key), Some(&a)),
            None => assert_eq!(key, Hash::of(b"not uploaded")),
        }
    }
}

#[tokio::test]
async fn packs_are_read_first_and_never_trusted() {
    let server = moto();
    let r = open(server, "packs");
    let answers: Vec<RemoteAnswer> = (0..150)
        .map(|i| answer("packs", i, &format!("packed answer {i}")))
        .collect();
    let up = Uploader::start(r.clone(), 8, 1000);
    for a in &answers {
        up.push(a.clone());
    }
    let report = up.finish().await;
    assert_eq!((report.uploaded, report.packs), (150, 1), "{report:?}");
    let s3 = raw(server);
    let listed: Vec<String> = {
        use futures_util::TryStreamExt;
        s3.list(Some(&"packs/daydream/v1/packs".into()))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap()
    };
    let pack = listed.iter().find(|p| p.ends_with(".pack")).unwrap().clone();
    assert!(listed.iter().any(|p| p.ends_with(".idx")), "{listed:?}");

    // the individual objects of the first 100 answers gone: the pack still has them
    for a in &answers[..100] {
        s3.delete(&format!("packs/daydream/v1/blobs/{}", a.output).as_str().into())
            .await
            .unwrap();
    }
    assert_eq!(r.get(&answers[0].key).await.unwrap_err().kind(), ErrorKind::Corrupt);
    let keys: Vec<Hash> = answers.iter().map(|a| a.key).collect();
    let by_key = |got: Vec<(Hash, Result<Option<RemoteAnswer>, RemoteError>)>| {
        got.into_iter()
            .map(|(k, r)| (k, r.map(|a| a.map(|a| a.content))))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let got = by_key(r.fetch_many(keys.clone(), 8).await);
    for a in &answers {
        assert_eq!(got[&a.key], Ok(Some(a.content.clone())), "{a:?}");
    }

    // one entry of the pack altered (same length): that answer is not taken from the pack
    let mut bytes = s3
        .get(&pack.as_str().into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let at = text.find("packed answer 120").unwrap();
    bytes[at..at + 6].copy_from_slice(b"PACKED");
    write_raw(server, &pack, &bytes).await;
    let got = by_key(r.fetch_many(keys.clone(), 8).await);
    let a120 = &answers[120];
    assert_eq!(
        got[&a120.key],
        Ok(Some(a120.content.clone())),
        "read one by one instead"
    );
    let a0 = &answers[0];
    assert_eq!(
        got[&a0.key],
        Ok(Some(a0.content.clone())),
        "the rest of the pack still serves"
    );

    // a pack that is garbage: everything still there is read one by one
    write_raw(server, &pack, b"garbage").await;
    let got = by_key(r.fetch_many(keys, 8).await);
    for a in &answers[100..] {
        assert_eq!(got[&a.key], Ok(Some(a.content.clone())));
    }
    assert_eq!(
        got[&a0.key].as_ref().unwrap_err().kind(),
        ErrorKind::Corrupt,
        "its blob is gone"
    );
}

#[tokio::test]
async fn a_full_queue_counts_as_pending() {
    let r = open(moto(), "queue");
    let up = Uploader::start(r, 1, 2);
    // nothing runs the upload task until this test awaits: the third push finds the queue full
    let pushed: Vec<bool> = (0..3).map(|i| up.push(answer("queue", i, "q"))).collect();
    assert_eq!(pushed, [true, true, false]);
    let report = up.finish().await;
    assert_eq!((report.uploaded, report.pending), (2, 1), "{report:?}");
}

#[tokio::test]
async fn a_directory_remote() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let r = open_with(&url, &[]).unwrap();
    assert_eq!(r.list().await.unwrap(), vec![]);
    let a = answer("dir", 0, "on a shared disk");
    assert_eq!(r.get(&a.key).await.unwrap(), None);
    assert_eq!(r.put(&a).await.unwrap(), PutOutcome::Uploaded);
    assert_eq!(r.put(&a).await.unwrap(), PutOutcome::Present);
    assert_eq!(r.get(&a.key).await.unwrap().unwrap(), a);
    assert_eq!(r.list().await.unwrap(), vec![a.key]);
    let blob = dir.path().join("daydream/v1/blobs").join(a.output.hex());
    assert!(dir.path().join(format!("daydream/v1/answers/{}.json", a.key)).is_file());
    std::fs::write(&blob, "tampered").unwrap();
    let e = r.get(&a.key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(
        e.message().contains(&format!("{url}/daydream/v1/blobs/{}", a.output)),
        "{e}"
    );
    assert_eq!(r.put(&a).await.unwrap(), PutOutcome::Repaired);
    assert_eq!(r.get(&a.key).await.unwrap().unwrap(), a);

    // an object far bigger than any answer is not downloaded (a sparse file: no disk used)
    std::fs::File::options()
        .write(true)
        .open(&blob)
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    let e = r.get(&a.key).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(
        e.message()
            .contains("it has 68157440 bytes, more than the 67108864 expected at most"),
        "{e}"
    );
}

#[test]
fn configuration_errors_never_show_credentials() {
    let env = never_shown_env();
    for url in [
        "s3://AKIDNEVERSHOWN123:secretNEVERSHOWNabc@bucket/p",
        "s3://bucket/p?secret_access_key=secretNEVERSHOWNabc",
        "s3://bucket/p?endpoint=https://AKIDNEVERSHOWN123:secretNEVERSHOWNabc@minio.lan",
    ] {
        let e = RemoteConfig::parse(url).unwrap_err();
        assert_clean(&format!("{e} {e:?}"), &NEVER_SHOWN.map(|(_, v)| v));
    }
    // plain HTTP to a host that is not this machine is refused; the message shows no credential
    let e = open_with("s3://bucket/p?endpoint=http://minio.lan:9000", &env).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_clean(&format!("{e} {e:?}"), &NEVER_SHOWN.map(|(_, v)| v));
    let r = open_with("s3://bucket/p", &env).unwrap();
    assert_clean(&format!("{r:?}"), &NEVER_SHOWN.map(|(_, v)| v));
}
