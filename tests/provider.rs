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
    s.use_models(gen_models);
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

/// What `explain --json` says of a task's generation response.
fn explained_response(s: &Space, task: &str) -> serde_json::Value {
    let all: serde_json::Value = serde_json::from_str(&s.ok(&["explain", "--json", task])).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|e| e["stage"] == "generation_response")
        .cloned()
        .unwrap_or_else(|| panic!("no generation response in {all}"))
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
    let response = explained_response(&s, task);
    assert_eq!(
        response["params"]["endpoint"],
        mock.base_url().replace("127.0.0.1", "localhost"),
        "{response}"
    );
}

/// The store as the code before normalised endpoints wrote it: every call keyed by the base URL
/// as given (`old`), not as `endpoint_identity` spells it.
fn key_calls_as_before(s: &Space, old: &str) {
    use daydream::engine::keys::Manifest;
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

/// The local model as the mock plays it: one model answering every name; an evaluation sent with
/// a grammar ends in its score line, anything else is prose.
fn local_model(r: &Request) -> Reply {
    let content = match r.body.get("grammar") {
        Some(_) => "A fair essay, if short.\nSCORE: 4".to_owned(),
        None => format!("An essay on {}", common::mock::echo_text(&r.prompt)),
    };
    Reply::Ok {
        completion_tokens: 10,
        content: Some(content),
        finish_reason: "stop".into(),
        prompt_tokens: 20,
        cost: None,
        served_model: Some("smollm2-135m-instruct-q4_1".into()),
    }
}

fn json(s: &Space, rel: &str) -> serde_json::Value {
    serde_json::from_str(&s.read(rel)).unwrap()
}

#[test]
fn tasks_sharing_the_local_models_answer_are_each_told_as_themselves_and_the_run_says_offline() {
    let mock = MockServer::start(local_model);
    let s = small(&mock, &["vendor/a", "vendor/b", "vendor/c"]);
    s.set_env("DAYDREAM_PROVIDER", "local");
    s.set_env("LOCAL_BASE_URL", &mock.base_url());
    let out = s.ok(&["run"]);
    // the three models' tasks of a combination ask one call, and so do their evaluations
    assert_eq!(mock.count(), 5 + 5, "{out}");
    let combo = "combo_v1_13c725cf02fa_creative-synthesis-v6";
    let gen_dir = "data/3_generation/generation_responses";
    let ids: Vec<String> = (0..3).map(|i| format!("{combo}_g{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let meta = json(&s, &format!("{gen_dir}/{id}.json"));
        assert_eq!(meta["task"], id.as_str(), "{meta}");
        assert_eq!(
            meta["model_requested"],
            ["vendor/a", "vendor/b", "vendor/c"][i],
            "{meta}"
        );
        assert_eq!(meta["model_served"], "smollm2-135m-instruct-q4_1", "{meta}");
        let mut others: Vec<&str> = ids.iter().filter(|o| *o != id).map(String::as_str).collect();
        let mut shared: Vec<&str> = meta["shared_with"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        others.sort();
        shared.sort();
        assert_eq!(shared, others, "{meta}");
    }
    // explain reads the task's own record
    let call = &explained_response(&s, &ids[1])["call"];
    assert_eq!(
        (call["task"].as_str(), call["model_requested"].as_str()),
        (Some(ids[1].as_str()), Some("vendor/b"))
    );
    let text = s.ok(&["explain", &ids[1]]);
    assert!(
        text.contains("call     vendor/b via local, served smollm2-135m-instruct-q4_1")
            && text.contains("shared   one answer for this task and 2 others asking the very same call"),
        "{text}"
    );

    // evaluations of the local model are held to a grammar ending in the template's score line
    let evals: Vec<Request> = mock
        .requests()
        .into_iter()
        .filter(|r| r.prompt.contains("SCORE"))
        .collect();
    assert_eq!(evals.len(), 5);
    for r in &evals {
        let g = r.body["grammar"].as_str().expect("an evaluation carries its grammar");
        assert!(
            g.contains(r#"line "\nSCORE: " score"#) && g.contains(r#"score ::= "0" | "1""#) && g.contains(r#""9""#),
            "{g}"
        );
        assert!(!g.contains(r#""10""#), "style-coherence is scored 0-9: {g}");
        assert_eq!(r.max_tokens, Some(128));
    }
    assert!(
        mock.requests()
            .iter()
            .filter(|r| !r.prompt.contains("SCORE"))
            .all(|r| r.body.get("grammar").is_none())
    );
    let scores = s.read("data/5_parsing/parsed_scores.csv");
    assert_eq!(scores.lines().count(), 1 + 15, "{scores}");
    assert!(!scores.contains("Parse error"), "{scores}");

    // status and the report say the answers are the local model's
    let status = s.ok(&["status"]);
    let line = status.lines().find(|l| l.starts_with("generation_response")).unwrap();
    assert!(
        line.contains("answered offline by the local model smollm2-135m-instruct-q4_1, not by the models named"),
        "{status}"
    );
    let page = s.read("data/6_summary/report.html");
    assert!(page.contains("<title>DayDreaming experiment: results (offline, local model)</title>"));
    assert!(
        page.contains("<strong>Offline run.</strong> 30 of 30 answers came from the local model <code>smollm2-135m-instruct-q4_1</code> (SmolLM2-135M-Instruct"),
        "{page}"
    );
    for model in ["vendor/a", "vendor/b", "vendor/c"] {
        assert!(
            page.contains(&format!(
                "<td><code>generation_response</code></td><td><code>{model}</code></td><td><code>smollm2-135m-instruct-q4_1</code></td><td class=\"n\">5</td>"
            )),
            "{model}: {page}"
        );
    }
    assert!(!page.contains("never"), "{page}");
    assert!(page.contains("Read anew by every run, writing no file: <code>concepts</code>"));

    // a lost file comes back with its own record; a task that comes later to an answer the store
    // has is told as itself, with no call
    std::fs::remove_file(s.path(&format!("{gen_dir}/{}.json", ids[2]))).unwrap();
    std::fs::remove_file(s.path(&format!("{gen_dir}/{}.txt", ids[2]))).unwrap();
    let models = s.read("data/1_raw/llm_models.csv");
    s.write(
        "data/1_raw/llm_models.csv",
        &models.replace("\njudge,", "\ng3,vendor/d,true,false,1.0,2.0\njudge,"),
    );
    s.ok(&["run"]);
    assert_eq!(mock.count(), 10);
    let restored = json(&s, &format!("{gen_dir}/{}.json", ids[2]));
    assert_eq!(
        (restored["task"].as_str(), restored["model_requested"].as_str()),
        (Some(ids[2].as_str()), Some("vendor/c"))
    );
    let later = json(&s, &format!("{gen_dir}/{combo}_g3.json"));
    assert_eq!(later["task"], format!("{combo}_g3"));
    assert_eq!(later["model_requested"], "vendor/d");
    assert!(
        later["shared_with"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == ids[0].as_str()),
        "{later}"
    );

    // a store of the version before holds the first task's record for every task of the call
    let db = rusqlite::Connection::open(s.path(".daydream/store.db")).unwrap();
    db.execute(
        "UPDATE calls SET record=(SELECT record FROM calls WHERE task=?1 ORDER BY id LIMIT 1) WHERE task=?2",
        [&ids[0], &ids[1]],
    )
    .unwrap();
    drop(db);
    for ext in ["json", "txt"] {
        std::fs::remove_file(s.path(&format!("{gen_dir}/{}.{ext}", ids[1]))).unwrap();
    }
    let text = s.ok(&["explain", &ids[1]]);
    assert!(text.contains("call     vendor/b via local"), "{text}");
    s.ok(&["run"]);
    let restored = json(&s, &format!("{gen_dir}/{}.json", ids[1]));
    assert_eq!(
        (restored["task"].as_str(), restored["model_requested"].as_str()),
        (Some(ids[1].as_str()), Some("vendor/b"))
    );
    assert_eq!(mock.count(), 10);

    // a remote provider is sent no grammar
    s.set_env("DAYDREAM_PROVIDER", "openrouter");
    s.ok(&["run"]);
    let remote: Vec<Request> = mock.requests().into_iter().skip(10).collect();
    assert!(remote.len() >= 20);
    assert!(remote.iter().all(|r| r.body.get("grammar").is_none()));
}
