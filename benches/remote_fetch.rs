//! The remote answer cache at scale: N answers (~2 KB each) uploaded to moto on 127.0.0.1, then
//! all of them downloaded and verified with `fetch_many` at several concurrencies, as a fresh
//! clone's run would; plus the listing (`cache status`) and the same against a directory.
//!
//! `cargo bench --bench remote_fetch` (N = 10,000; `DAYDREAM_BENCH_ANSWERS` changes it,
//! `DAYDREAM_BENCH_CONCURRENCY=8,32` the concurrencies). Results and how to read them:
//! `bench/remote/README.md`.

#[path = "../tests/common/s3.rs"]
mod s3;

use std::time::Instant;

use daydream::engine::keys::Hash;
use daydream::llm::remote::{Remote, RemoteAnswer, RemoteConfig, Uploader};

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v.split(',').map(|x| x.trim().parse().expect("a number")).collect(),
        Err(_) => default.to_vec(),
    }
}

/// ~2 KB of text unique to `i`, like an essay-length answer.
fn answer(i: usize) -> RemoteAnswer {
    let manifest = format!(
        r#"{{"format":1,"kind":"llm_call","params":{{"model":"bench-model","stage":"essay"}},"inputs":[{{"name":"prompt","hash":"{}"}}]}}"#,
        Hash::of(&i.to_le_bytes())
    );
    let mut text = String::with_capacity(2100);
    while text.len() < 2000 {
        text.push_str(&format!(
            "Answer {i}: a sentence of the essay that goes on for a while. "
        ));
    }
    let info = format!(
        r#"{{"status":"ok","model":"bench-model","attempts":1,"latency_ms":{}}}"#,
        i % 997
    );
    RemoteAnswer::new(manifest, Some(info), "2026-12-06T09:00:00.000Z".to_owned(), text)
}

fn fetch_all(rt: &tokio::runtime::Runtime, remote: &Remote, keys: &[Hash], concurrency: usize, expect: usize) -> f64 {
    let t = Instant::now();
    let got = rt.block_on(remote.fetch_many(keys.to_vec(), concurrency));
    let secs = t.elapsed().as_secs_f64();
    let found = got.iter().filter(|(_, r)| matches!(r, Ok(Some(_)))).count();
    let absent = got.iter().filter(|(_, r)| matches!(r, Ok(None))).count();
    assert_eq!(
        (found, absent),
        (expect, keys.len() - expect),
        "every answer downloaded and verified"
    );
    secs
}

fn timed<T>(label: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    println!("  {label}: {:.2} s", t.elapsed().as_secs_f64());
    out
}

/// The answers uploaded one by one (`put`, 32 at a time), and under another prefix with an
/// [`Uploader`], which also packs them; then each read back with `fetch_many`.
fn run(
    name: &str,
    rt: &tokio::runtime::Runtime,
    open: &dyn Fn(&str) -> Remote,
    answers: &[RemoteAnswer],
    concurrencies: &[usize],
) {
    use futures_util::StreamExt;
    let n = answers.len();
    let keys: Vec<Hash> = answers.iter().map(|a| a.key).collect();
    println!("{name}:");

    let single = open("single");
    timed(&format!("upload {n} answers one by one (put, 32 at a time)"), || {
        rt.block_on(
            futures_util::stream::iter(answers)
                .map(|a| single.put(a))
                .buffer_unordered(32)
                .for_each(|r| {
                    r.unwrap();
                    std::future::ready(())
                }),
        )
    });
    let listed = timed("list the answers", || rt.block_on(single.list()).unwrap());
    assert_eq!(listed.len(), n);
    for &c in concurrencies {
        let secs = fetch_all(rt, &single, &keys, c, n);
        println!(
            "  fetch_many, one by one, concurrency {c:>3}: {secs:>6.2} s ({:>6.0} answers/s)",
            n as f64 / secs
        );
    }

    let packed = open("packed");
    let report = timed(
        &format!("upload {n} answers with an Uploader (32 at a time), then pack them"),
        || {
            rt.block_on(async {
                let up = Uploader::start(packed.clone(), 32, n);
                for a in answers {
                    assert!(up.push(a.clone()));
                }
                up.finish().await
            })
        },
    );
    assert_eq!(
        (report.uploaded, report.failed, report.pending),
        (n, 0, 0),
        "{report:?}"
    );
    println!("  ({} packs)", report.packs);
    for &c in concurrencies {
        let secs = fetch_all(rt, &packed, &keys, c, n);
        println!(
            "  fetch_many, from packs,  concurrency {c:>3}: {secs:>6.2} s ({:>6.0} answers/s)",
            n as f64 / secs
        );
    }
    let missing: Vec<Hash> = (0..n).map(|i| Hash::of(format!("missing {i}").as_bytes())).collect();
    let secs = fetch_all(rt, &packed, &missing, 32, 0);
    println!("  fetch_many of {n} keys the remote does not have: {secs:.2} s");
}

fn main() {
    let n = env_list("DAYDREAM_BENCH_ANSWERS", &[10_000])[0];
    let concurrencies = env_list("DAYDREAM_BENCH_CONCURRENCY", &[8, 32, 64, 128]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answers: Vec<RemoteAnswer> = (0..n).map(answer).collect();
    let bytes: usize = answers.iter().map(|a| a.content.len()).sum();
    println!("{n} answers, {:.1} MB of content", bytes as f64 / 1e6);

    let moto = s3::Moto::start();
    let env = moto.env();
    let open_s3 = |prefix: &str| {
        let config = RemoteConfig::parse(&moto.url(prefix)).unwrap();
        Remote::open_with_env(&config, &|k: &str| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .unwrap()
    };
    run("moto (S3 on 127.0.0.1)", &rt, &open_s3, &answers, &concurrencies);
    drop(moto);

    let dir = tempfile::tempdir().unwrap();
    let open_dir = |prefix: &str| {
        let sub = dir.path().join(prefix);
        std::fs::create_dir_all(&sub).unwrap();
        let config = RemoteConfig::parse(&format!("file://{}", sub.display())).unwrap();
        Remote::open_with_env(&config, &|_: &str| None).unwrap()
    };
    run("directory", &rt, &open_dir, &answers, &concurrencies);
}
