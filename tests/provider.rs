//! Who was asked, who answered, and with which secret: secrets a provider echoes are redacted
//! everywhere; one endpoint spelled two ways is one endpoint (and a store of the old keys keeps
//! its answers); tasks sharing the local model's answer are each told as themselves; an offline
//! run says so, and its evaluations end in a score.

mod common;

use common::mock::{MockServer, Reply, Request};
use common::{Space, counts};

const KEY: &str = "sk-test-SECRET-0123456789";

/// 5 combinations x 1 generation template x `gen_models` (API names), one evaluation template
/// (`style-coherence`) and one evaluation model, `vendor/judge`.
fn small(mock: &MockServer, gen_models: &[&str]) -> Space {
    let s = Space::shipped_with_llm();
    s.use_mock(&mock.base_url());
    let mut csv = String::from("id,model,for_generation,for_evaluation,input_usd_per_mtok,output_usd_per_mtok\n");
    for (i, m) in gen_models.iter().enumerate() {
        csv.push_str(&format!("g{i},{m},true,false,1.0,2.0\n"));
    }
    csv.push_str("judge,vendor/judge,false,true,1.0,2.0\n");
    s.write("data/1_raw/llm_models.csv", &csv);
    let t = s.read("data/1_raw/evaluation_templates.csv");
    let t: Vec<String> = t
        .lines()
        .map(|l| {
            let active = l.starts_with("style-coherence,") || l.starts_with("template_id");
            if active {
                l.to_owned()
            } else {
                l.replace(",true,", ",false,")
            }
        })
        .collect();
    s.write("data/1_raw/evaluation_templates.csv", &(t.join("\n") + "\n"));
    s
}

/// Every byte daydream printed or wrote, with where it came from.
fn everything(s: &Space, printed: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("output".to_owned(), printed.as_bytes().to_vec())];
    for dir in [".daydream", "data"] {
        for e in walkdir::WalkDir::new(s.path(dir))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            out.push((e.path().display().to_string(), std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

fn assert_nowhere(all: &[(String, Vec<u8>)], needle: &str) {
    for (what, bytes) in all {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle:?} found in {what}"
        );
    }
}

fn found_in(all: &[(String, Vec<u8>)], needle: &str) -> usize {
    all.iter()
        .filter(|(_, b)| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .count()
}

/// `run`, `explain` (text and JSON) of every task of `tasks`, and `status` (text and JSON).
fn printed(s: &Space, runs: &[Vec<&str>], tasks: &[&str]) -> String {
    let mut out = String::new();
    for args in runs {
        let r = s.run(args);
        out.push_str(&r.stdout);
        out.push_str(&r.stderr);
    }
    for t in tasks {
        out.push_str(&s.ok(&["explain", t]));
        out.push_str(&s.ok(&["explain", "--json", t]));
    }
    out.push_str(&s.ok(&["status"]));
    out.push_str(&s.ok(&["status", "--json"]));
    out
}

/// An answer that repeats the request's Authorization header, also as the served model's name.
fn parrot(r: &Request) -> Reply {
    let auth = r.header("authorization").unwrap_or("(none)").to_owned();
    Reply::Ok {
        content: Some(format!("I was called with {auth}.\nSCORE: 6")),
        finish_reason: "stop".into(),
        prompt_tokens: 10,
        completion_tokens: 10,
        cost: None,
        served_model: Some(format!("model for {auth}")),
    }
}

#[test]
fn a_key_echoed_in_errors_and_answers_is_redacted_from_everything() {
    let mock = MockServer::start(|r: &Request| match r.model.as_str() {
        "vendor/echo-400" => Reply::echo_authorization(r, 400),
        "vendor/echo-200" => Reply::echo_authorization(r, 200),
        _ => parrot(r),
    });
    let s = small(&mock, &["vendor/parrot", "vendor/echo-400", "vendor/echo-200"]);
    let first = s.run(&["run"]);
    assert_eq!(first.code, 1, "{}{}", first.stdout, first.stderr);
    // the provider did see the key, and did send it back
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(mock.replies_of("status:400") >= 5 && mock.replies_of("status:200") >= 5);
    // the next run retries the failed tasks and is refused with the key in the 401
    mock.set_behavior(|r: &Request| Reply::echo_authorization(r, 401));
    let out = first.stdout
        + &first.stderr
        + &printed(
            &s,
            &[vec!["run"]],
            &[
                "combo_v1_13c725cf02fa_creative-synthesis-v6_g0",
                "combo_v1_13c725cf02fa_creative-synthesis-v6_g1",
                "combo_v1_13c725cf02fa_creative-synthesis-v6_g2",
                "combo_v1_13c725cf02fa_creative-synthesis-v6_g0_style-coherence_judge",
            ],
        );
    assert!(out.contains("rejected the API key"), "{out}");
    let all = everything(&s, &out);
    assert_nowhere(&all, KEY);
    assert_nowhere(&all, "SECRET-0123");
    // what came back is kept, less the key
    assert!(out.contains("Bearer [REDACTED]"), "{out}");
    for table in ["generation_results.csv", "evaluation_results.csv"] {
        let t = s.read(&format!("data/7_cross_experiment/{table}"));
        assert!(t.contains("[REDACTED]"), "{table}:\n{t}");
    }
    assert!(
        s.read("data/3_generation/generation_responses/combo_v1_13c725cf02fa_creative-synthesis-v6_g0.txt")
            .contains("I was called with Bearer [REDACTED].")
    );
    assert!(found_in(&all, "[REDACTED]") >= 10);
}

#[test]
fn a_password_in_a_base_url_is_sent_but_never_shown_or_stored() {
    let mock = MockServer::start(|r: &Request| match r.model.as_str() {
        "vendor/echo-400" => Reply::echo_authorization(r, 400),
        _ => parrot(r),
    });
    let s = small(&mock, &["vendor/parrot", "vendor/echo-400"]);
    let with_password = mock.base_url().replace("http://", "http://user:s3cret@");
    s.set_env("OPENROUTER_BASE_URL", &with_password);
    // a provider without a key (after openrouter, which `auto` picks): the password goes as a
    // Basic Authorization header
    s.edit(
        "pipeline.yaml",
        "  local:\n",
        &format!("  proxy:\n    base_url: {with_password}\n    timeout_s: 2\n    max_attempts: 1\n  local:\n"),
    );
    let task = "combo_v1_13c725cf02fa_creative-synthesis-v6_g0";
    let out = printed(
        &s,
        &[
            vec!["run"],
            vec!["run", "--provider", "proxy"],
            vec!["run", "--provider", "proxy", "--dry-run"],
        ],
        &[task, "combo_v1_13c725cf02fa_creative-synthesis-v6_g1"],
    );
    let basic = "dXNlcjpzM2NyZXQ="; // base64("user:s3cret")
    let bearer = format!("Bearer {KEY}");
    let sent = |auth: &str| mock.requests().iter().any(|r| r.header("authorization") == Some(auth));
    assert!(sent(&bearer), "openrouter sent its key");
    assert!(
        sent(&format!("Basic {basic}")),
        "the proxy provider sent the URL's password"
    );
    let all = everything(&s, &out);
    for secret in ["s3cret", basic, KEY] {
        assert_nowhere(&all, secret);
    }
    assert!(out.contains("Basic [REDACTED]"), "{out}");
    // the endpoint a call is keyed and explained by carries no userinfo
    let explained: serde_json::Value = serde_json::from_str(&s.ok(&["explain", "--json", task])).unwrap();
    let response = explained
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == "generation_response")
        .unwrap();
    let endpoint = response["params"]["endpoint"].as_str().unwrap();
    eprintln!("ENDPOINT {endpoint} {out}");
    assert_eq!(
        endpoint,
        mock.base_url().replace("127.0.0.1", "localhost"),
        "{explained}"
    );
}

/// The store as the code before normalised endpoints wrote it: every call keyed by the base URL
/// as given (`old`), not as `endpoint_identity` spells it.
fn key_calls_as_before(s: &Space, old: &str) {
    use daydream::key::Manifest;
    let db = rusqlite::Connection::open(s.path(".daydream/store.db")).unwrap();
    let rows: Vec<(Vec<u8>, String)> = db
        .prepare("SELECT key, manifest FROM actions WHERE kind='chat_completion'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!rows.is_empty());
    for (key, manifest) in rows {
        let mut m: Manifest = serde_json::from_str(&manifest).unwrap();
        m.params.insert("endpoint".into(), old.to_owned());
        let new = m.key();
        db.execute(
            "UPDATE actions SET key=?1, manifest=?2 WHERE key=?3",
            rusqlite::params![&new.0[..], m.to_json(), key],
        )
        .unwrap();
        db.execute(
            "UPDATE outputs SET key=?1 WHERE key=?2",
            rusqlite::params![&new.0[..], key],
        )
        .unwrap();
    }
    db.execute("DELETE FROM meta WHERE k='call_endpoints_normalised'", [])
        .unwrap();
}

#[test]
fn one_endpoint_spelled_two_ways_costs_nothing_and_a_changed_one_says_so() {
    let mock = MockServer::start(Reply::echo);
    let s = small(&mock, &["vendor/a"]);
    let ip = mock.base_url(); // http://127.0.0.1:PORT/v1
    let name = ip.replace("127.0.0.1", "localhost") + "/";
    s.ok(&["run"]);
    assert_eq!(mock.count(), 10);

    s.set_env("OPENROUTER_BASE_URL", &name);
    let dry = s.ok(&["run", "--dry-run"]);
    assert!(!dry.contains("endpoint changed"), "{dry}");
    let out = s.ok(&["run"]);
    assert_eq!(
        mock.count(),
        10,
        "the same server under another name is asked nothing:\n{out}"
    );
    assert_eq!(counts(&out, "evaluation_response"), (0, 0, 5), "{out}");

    // a store written before endpoints were normalised keeps its answers
    key_calls_as_before(&s, &ip);
    s.set_env("OPENROUTER_BASE_URL", &ip);
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 10, "{out}");
    let status: serde_json::Value = serde_json::from_str(&s.ok(&["status", "--json"])).unwrap();
    for st in status.as_array().unwrap() {
        if st["stage"] == "generation_response" || st["stage"] == "evaluation_response" {
            assert_eq!(
                (st["up_to_date"].as_u64(), st["stale"].as_u64()),
                (Some(5), Some(0)),
                "{st}"
            );
        }
    }

    // another server: every call is asked again, and the dry run says why
    let other = MockServer::start(Reply::echo);
    s.set_env("OPENROUTER_BASE_URL", &other.base_url());
    let dry = s.ok(&["run", "--dry-run"]);
    let line = dry
        .lines()
        .find(|l| l.contains("endpoint changed"))
        .unwrap_or_else(|| panic!("no word of the endpoint in:\n{dry}"));
    assert!(
        line.contains("would execute 5: endpoint changed")
            && line.contains(&format!("answers exist for {}", ip.replace("127.0.0.1", "localhost")))
            && line.contains(&other.base_url().replace("127.0.0.1", "localhost")),
        "{line}"
    );
    assert_eq!((mock.count(), other.count()), (10, 0));
}
