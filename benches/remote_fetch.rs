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

use daydream::key::Hash;
use daydream::remote::{Remote, RemoteAnswer, RemoteConfig, Uploader};

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

fn fetch_all(rt: &tokio::runtime::Runtime, remote: &Remote, keys: &[Hash], concurrency: usize) -> f64 {
    let t = Instant::now();
    let got = rt.block_on(remote.fetch_many(keys.to_vec(), concurrency));
    let secs = t.elapsed().as_secs_f64();
    let found = got.iter().filter(|(_, r)| matches!(r, Ok(Some(_)))).count();
    assert_eq!(found, keys.len(), "every answer downloaded and verified");
    secs
}

fn run(label: &str, rt: &tokio::runtime::Runtime, remote: &Remote, answers: &[RemoteAnswer], concurrencies: &[usize]) {
    let n = answers.len();
    let t = Instant::now();
    let up = rt.block_on(async {
        let up = Uploader::start(remote.clone(), 32, n);
        for a in answers {
            assert!(up.push(a.clone()));
        }
        up.finish().await
    });
    assert_eq!(up.failed + up.pending, 0, "{up:?}");
    println!(
        "{label}: uploaded {n} answers in {:.1} s (Uploader, 32 at a time; {} new, {} present)",
        t.elapsed().as_secs_f64(),
        up.uploaded,
        up.present
    );
    let t = Instant::now();
    let listed = rt.block_on(remote.list()).unwrap();
    assert!(listed.len() >= n);
    println!(
        "{label}: listed {} keys in {:.2} s",
        listed.len(),
        t.elapsed().as_secs_f64()
    );
    let keys: Vec<Hash> = answers.iter().map(|a| a.key).collect();
    println!("{label}: fetch_many of {n} answers (record + content each, verified):");
    for &c in concurrencies {
        let secs = fetch_all(rt, remote, &keys, c);
        println!(
            "  concurrency {c:>4}: {secs:>6.2} s  ({:>6.0} answers/s)",
            n as f64 / secs
        );
    }
}

fn main() {
    let n = env_list("DAYDREAM_BENCH_ANSWERS", &[10_000])[0];
    let concurrencies = env_list("DAYDREAM_BENCH_CONCURRENCY", &[1, 8, 16, 32, 64, 128]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answers: Vec<RemoteAnswer> = (0..n).map(answer).collect();
    let bytes: usize = answers.iter().map(|a| a.content.len()).sum();
    println!("{n} answers, {:.1} MB of content", bytes as f64 / 1e6);

    let moto = s3::Moto::start();
    let remote = {
        let config = RemoteConfig::parse(&moto.url("bench")).unwrap();
        let env = moto.env();
        Remote::open_with_env(&config, &move |k: &str| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
        .unwrap()
    };
    run("moto", &rt, &remote, &answers, &concurrencies);
    drop(moto);

    let dir = tempfile::tempdir().unwrap();
    let config = RemoteConfig::parse(&format!("file://{}", dir.path().display())).unwrap();
    let remote = Remote::open_with_env(&config, &|_: &str| None).unwrap();
    run("directory", &rt, &remote, &answers, &concurrencies);
}
