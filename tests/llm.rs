//! The LLM stages against an in-process mock OpenAI-compatible server: one request per task,
//! never twice, every outcome classified, and the key never leaks.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::mock::{MockServer, Reply, Request, per_model};
use common::{Space, counts};
use serde_json::json;

const KEY: &str = "sk-test-SECRET-0123456789";

/// The shipped project against `mock`.
fn shipped(mock: &MockServer) -> Space {
    let s = Space::shipped_with_llm();
    s.use_mock(&mock.base_url());
    s
}

/// A small project: 5 combinations x 1 template, generation models `gen_models` (API names),
/// one evaluation model and one evaluation template; one call in flight unless `in_flight`.
fn small(mock: &MockServer, gen_models: &[&str], in_flight: usize) -> Space {
    let s = shipped(mock);
    s.use_models(gen_models);
    let t = s.read("data/1_raw/evaluation_templates.csv");
    let t = t.replace("style-coherence-v3,Style Coherence V3,Advanced template with structure-preserving link framework and quality checks,true", "style-coherence-v3,Style Coherence V3,x,false");
    let t = t.replace("interdisciplinary-coherence,Interdisciplinary Coherence,Specialized template for evaluating interdisciplinary work and domain integration,true", "interdisciplinary-coherence,Interdisciplinary Coherence,x,false");
    let t = t.replace(
        "gemini-prior-art-eval,Prior Art gemini, Gemini research based prior art evaluation,true",
        "gemini-prior-art-eval,Prior Art gemini,x,false",
    );
    s.write("data/1_raw/evaluation_templates.csv", &t);
    s.edit(
        "pipeline.yaml",
        "    max_in_flight: 16\n",
        &format!("    max_in_flight: {in_flight}\n"),
    );
    s
}

fn by_model(reqs: &[Request]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in reqs {
        *m.entry(r.model.clone()).or_default() += 1;
    }
    m
}

fn files(s: &Space, dir: &str, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.path(dir))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(ext))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn one_request_per_task_then_none_then_only_the_edited_template() {
    let mock = MockServer::start(per_model);
    let s = shipped(&mock);
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 25 + 200, "{out}");
    assert_eq!(counts(&out, "generation_response"), (25, 0, 0), "{out}");
    assert_eq!(counts(&out, "evaluation_response"), (200, 0, 0), "{out}");
    // what was sent: the prompt file as one user message, the seed's settings, the headers
    let reqs = mock.requests();
    let id = "combo_v1_f0c9d41797ca_creative-synthesis-v6_gemini_2.5_flash";
    let prompt = s.read(&format!("data/3_generation/generation_prompts/{id}.txt"));
    let r = reqs
        .iter()
        .find(|r| r.prompt == prompt && r.model == "google/gemini-2.5-flash")
        .expect("request for the prompt");
    assert_eq!(r.body["messages"], json!([{"role": "user", "content": prompt}]));
    assert_eq!((r.temperature, r.max_tokens), (Some(0.7), Some(8192)));
    assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.header("x-title"), Some("DayDreaming"));
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        s.read(&format!("data/3_generation/generation_responses/{id}.txt")),
        format!("google/gemini-2.5-flash says: {}", common::mock::echo_text(&prompt))
    );
    // the sidecar
    let meta: serde_json::Value =
        serde_json::from_str(&s.read(&format!("data/3_generation/generation_responses/{id}.json"))).unwrap();
    assert_eq!(meta["provider"], "openrouter");
    assert_eq!(meta["model_requested"], "google/gemini-2.5-flash");
    assert_eq!(meta["model_served"], "google/gemini-2.5-flash");
    assert_eq!(meta["finish_reason"], "stop");
    assert_eq!(meta["attempts"], 1);
    assert!(meta["response_id"].as_str().unwrap().starts_with("gen-"));
    assert!(meta["prompt_tokens"].as_u64().unwrap() > 100);
    assert!(
        meta["cost_estimated_usd"].as_f64().unwrap() > 0.0,
        "priced from the models CSV: {meta}"
    );
    // the evaluation prompt holds the generation response
    let eval_id = format!("{id}_style-coherence_sonnet-4");
    assert!(
        s.read(&format!("data/4_evaluation/evaluation_prompts/{eval_id}.txt"))
            .contains(&common::mock::echo_text(&prompt))
    );
    assert_eq!(files(&s, "data/4_evaluation/evaluation_responses", ".txt").len(), 200);

    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 225, "no request on a second run:\n{out}");
    assert_eq!(counts(&out, "evaluation_response"), (0, 0, 200));

    let t = "templates/evaluation/style-coherence.txt";
    let original = s.read(t);
    s.write(t, &original.replace("Evaluate", "Assess"));
    let out = s.ok(&["run"]);
    let new: Vec<Request> = mock.requests().into_iter().skip(225).collect();
    assert_eq!(new.len(), 50, "only style-coherence's 25 x 2 evaluations:\n{out}");
    assert!(new.iter().all(|r| r.prompt.contains("Assess")));
    s.write(t, &original);
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 275, "reverting calls nothing:\n{out}");
    assert_eq!(counts(&out, "evaluation_response"), (0, 50, 150), "{out}");
}

#[test]
fn prompts_rendered_by_an_earlier_run_are_sent_to_their_own_tasks() {
    // 14 models x 5 combinations: 70 prompts kept by `run generation_prompt`, read back as their
    // calls start, in batches (more than one)
    let mock = MockServer::start(per_model);
    let models: Vec<String> = (0..14).map(|i| format!("vendor/m{i:02}")).collect();
    let s = small(&mock, &models.iter().map(String::as_str).collect::<Vec<_>>(), 3);
    s.ok(&["run", "generation_prompt"]);
    assert_eq!(mock.count(), 0);
    let out = s.ok(&["run", "generation_response"]);
    assert_eq!(counts(&out, "generation_response"), (70, 0, 0), "{out}");
    assert_eq!(mock.count(), 70, "{out}");
    let ids = files(&s, "data/3_generation/generation_prompts", ".txt");
    assert_eq!(ids.len(), 70);
    for id in ids {
        let prompt = s.read(&format!("data/3_generation/generation_prompts/{id}"));
        // the task id ends with the model's id, g0..g13 (see `small`)
        let model_id = id.strip_suffix(".txt").unwrap().rsplit('_').next().unwrap();
        let model = &models[model_id[1..].parse::<usize>().unwrap()];
        assert_eq!(
            s.read(&format!("data/3_generation/generation_responses/{id}")),
            format!("{model} says: {}", common::mock::echo_text(&prompt)),
            "{id}"
        );
    }
}

#[test]
fn a_prompt_the_store_lost_stops_the_calls_and_the_next_run_renders_it_anew() {
    let mock = MockServer::start(per_model);
    let s = small(&mock, &["vendor/a"], 1);
    s.ok(&["run", "generation_prompt"]);
    let ids = files(&s, "data/3_generation/generation_prompts", ".txt");
    assert_eq!(ids.len(), 5);
    // the third call's prompt vanishes from the store (its file stays)
    let lost = s.read(&format!("data/3_generation/generation_prompts/{}", ids[2]));
    let db = rusqlite::Connection::open(s.path(".daydream/store.db")).unwrap();
    assert_eq!(
        db.execute("DELETE FROM blobs WHERE data=?1", [lost.as_bytes()])
            .unwrap(),
        1
    );
    drop(db);
    let r = s.run(&["run", "generation_response"]);
    let err = format!("{}{}", r.stdout, r.stderr);
    assert_eq!(r.code, 1, "{err}");
    assert!(err.contains("the store lost the prompt"), "{err}");
    assert!(err.contains("renders it anew"), "{err}");
    assert!(mock.count() < 5, "calls stop at the lost prompt: {err}");
    // as the message says: the next run renders it again and makes the calls still missing
    let before = mock.count();
    let out = s.ok(&["run", "generation_response"]);
    assert_eq!(counts(&out, "generation_prompt").0, 1, "{out}");
    assert_eq!(counts(&out, "generation_response").0, 5 - before, "{out}");
    for id in ids {
        let prompt = s.read(&format!("data/3_generation/generation_prompts/{id}"));
        assert_eq!(
            s.read(&format!("data/3_generation/generation_responses/{id}")),
            format!("vendor/a says: {}", common::mock::echo_text(&prompt)),
            "{id}"
        );
    }
    // the prompt is back in the store: nothing is rendered or asked again
    let out = s.ok(&["run", "generation_response"]);
    assert_eq!(counts(&out, "generation_prompt"), (0, 0, 5), "{out}");
    assert_eq!(mock.count(), 5);
}

#[test]
fn tasks_asking_the_same_call_share_one_answer() {
    // every model's answer depends only on the prompt, so the evaluation prompts of one
    // combination are identical for the 4 generation models: one call serves 4 tasks
    let mock = MockServer::start(Reply::echo);
    let s = small(&mock, &["vendor/a", "vendor/b", "vendor/c", "vendor/d"], 4);
    let out = s.ok(&["run"]);
    assert_eq!(by_model(&mock.requests()).get("vendor/judge"), Some(&5), "{out}");
    assert_eq!(counts(&out, "evaluation_response"), (20, 0, 0), "{out}");
    assert_eq!(files(&s, "data/4_evaluation/evaluation_responses", ".txt").len(), 20);
    assert_eq!(files(&s, "data/4_evaluation/evaluation_responses", ".json").len(), 20);
}

#[test]
fn a_prompt_unchanged_by_a_template_edit_makes_no_call() {
    let mock = MockServer::start(Reply::echo);
    let s = small(&mock, &["vendor/a"], 4);
    s.ok(&["run"]);
    let n = mock.count();
    // an inactive template's edit and a whitespace-only edit at the template's end change no prompt
    s.edit(
        "templates/generation/creative-synthesis-v5.txt",
        "Output format",
        "Output layout",
    );
    let t = s.read("templates/generation/creative-synthesis-v6.txt");
    s.write("templates/generation/creative-synthesis-v6.txt", &format!("{t}\n\n"));
    s.ok(&["run"]);
    assert_eq!(mock.count(), n);
}

#[test]
fn rate_limits_are_retried_honouring_retry_after() {
    let mock = MockServer::start(|r: &Request| {
        if r.attempt == 0 {
            Reply::rate_limited(1)
        } else {
            Reply::echo(r)
        }
    });
    let s = small(&mock, &["vendor/a"], 8);
    let t = std::time::Instant::now();
    let out = s.ok(&["run"]);
    assert!(t.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    assert_eq!(mock.count(), 20, "each of the 10 tasks twice:\n{out}");
    assert_eq!(files(&s, "data/4_evaluation/evaluation_responses", ".txt").len(), 5);
    let meta: serde_json::Value = serde_json::from_str(&s.read(&format!(
        "data/3_generation/generation_responses/{}.json",
        files(&s, "data/3_generation/generation_responses", ".json")[0].trim_end_matches(".json")
    )))
    .unwrap();
    assert_eq!(meta["attempts"], 2);
}

#[test]
fn server_errors_timeouts_cut_connections_and_errors_in_200_are_retried() {
    let mock = MockServer::start(|r: &Request| match r.attempt {
        0 => Reply::error(500, "boom"),
        1 => Reply::Hang,
        2 => Reply::Cut,
        3 => Reply::Json(json!({"error": {"code": 502, "message": "upstream"}})),
        4 => {
            Reply::Json(json!({"id": "x", "choices": [{"message": {"content": "partial"}, "finish_reason": "error"}]}))
        }
        5 => Reply::Json(json!({"id": "x"})),
        6 => Reply::error(408, "timeout"),
        _ => Reply::echo(r),
    });
    let s = small(&mock, &["vendor/a"], 8);
    s.edit("pipeline.yaml", "    max_attempts: 5\n", "    max_attempts: 10\n");
    s.edit("pipeline.yaml", "    timeout_s: 2\n", "    timeout_s: 0.3\n");
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 10 * 8, "{out}");
    assert_eq!(files(&s, "data/4_evaluation/evaluation_responses", ".txt").len(), 5);
}

#[test]
fn retries_are_bounded_and_failures_are_recorded_then_retried_next_run() {
    let mock = MockServer::start(|r: &Request| {
        if r.prompt.contains("Economic Moat") {
            Reply::error(503, "down")
        } else {
            Reply::echo(r)
        }
    });
    let s = small(&mock, &["vendor/a"], 8);
    let r = s.run(&["run"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    // 4 of 5 combos contain economic-moat: 4 tasks x 5 attempts; 1 ok generation and its evaluation
    assert_eq!(mock.count(), 4 * 5 + 1 + 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("failed 4: server error (408/5xx), retries exhausted"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("waiting for upstream 4"), "{}", r.stdout);
    let status = s.ok(&["status"]);
    let row: Vec<&str> = status
        .lines()
        .find(|l| l.starts_with("generation_response"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[1..7],
        ["1", "0", "0", "0", "4", "0"],
        "up to date, stale, missing, edited, failed, waiting:\n{status}"
    );
    let row: Vec<&str> = status
        .lines()
        .find(|l| l.starts_with("evaluation_prompt"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[6], "4", "evaluations wait for the failed generations:\n{status}");
    let failed = "combo_v1_13c725cf02fa_creative-synthesis-v6_g0";
    let ex = s.ok(&["explain", failed]);
    assert!(ex.contains("failed: server_error") && ex.contains("HTTP 503"), "{ex}");
    // the next run asks only the failed tasks (and the evaluations they unblock)
    mock.set_behavior(Reply::echo);
    mock.clear();
    let out = s.ok(&["run"]);
    assert_eq!(
        by_model(&mock.requests()),
        BTreeMap::from([("vendor/a".into(), 4), ("vendor/judge".into(), 4)]),
        "{out}"
    );
}

#[test]
fn unauthorized_and_no_credits_stop_all_calls_and_name_the_problem() {
    for (code, says) in [
        (401, "rejected the API key in $OPENROUTER_API_KEY"),
        (402, "out of credits"),
        (403, "refused the request"),
    ] {
        let mock = MockServer::start(move |_: &Request| Reply::error(code, "nope"));
        let s = small(&mock, &["vendor/a", "vendor/b"], 1);
        let r = s.run(&["run"]);
        assert_eq!(r.code, 1);
        assert_eq!(
            mock.count(),
            1,
            "{code}: one request, then no new call starts:\n{}",
            r.stdout
        );
        assert!(
            r.stdout.contains("calls were stopped: ") && r.stdout.contains(says),
            "{code}:\n{}",
            r.stdout
        );
        assert!(!r.stdout.contains(KEY) && !r.stderr.contains(KEY));
    }
}

#[test]
fn a_bad_model_name_fails_every_task_of_that_model_only() {
    let mock = MockServer::start(|r: &Request| {
        if r.model == "vendor/nope" {
            Reply::error(404, "No endpoints found for vendor/nope")
        } else {
            Reply::echo(r)
        }
    });
    let s = small(&mock, &["vendor/nope", "vendor/a"], 1);
    let r = s.run(&["run"]);
    assert_eq!(r.code, 1);
    let m = by_model(&mock.requests());
    assert_eq!(
        m.get("vendor/nope"),
        Some(&1),
        "no retry, and no further call to that model: {m:?}"
    );
    assert_eq!(m.get("vendor/a"), Some(&5));
    assert!(r.stdout.contains("failed 5: model not found (404)"), "{}", r.stdout);
    assert_eq!(files(&s, "data/3_generation/generation_responses", ".txt").len(), 5);
}

#[test]
fn a_used_up_daily_cap_stops_that_model_for_the_run() {
    let mock = MockServer::start(|r: &Request| {
        if r.model == "vendor/free:free" {
            Reply::rate_limited(8 * 3600)
        } else {
            Reply::echo(r)
        }
    });
    let s = small(&mock, &["vendor/free:free", "vendor/a"], 1);
    let t = std::time::Instant::now();
    let r = s.run(&["run"]);
    assert!(t.elapsed() < Duration::from_secs(20), "did not wait for the cap");
    assert_eq!(r.code, 1);
    assert_eq!(by_model(&mock.requests()).get("vendor/free:free"), Some(&1));
    assert!(
        r.stdout.contains("failed 5: daily request cap used up (429)"),
        "{}",
        r.stdout
    );
}

#[test]
fn bad_requests_fail_the_task_without_retry() {
    let mock = MockServer::start(|r: &Request| {
        if r.prompt.contains("Economic Moat") {
            Reply::error(400, "This model's maximum context length is 8192 tokens")
        } else {
            Reply::echo(r)
        }
    });
    let s = small(&mock, &["vendor/a"], 4);
    let r = s.run(&["run"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        by_model(&mock.requests()).get("vendor/a"),
        Some(&5),
        "no retries of a 400"
    );
    assert!(
        r.stdout.contains("failed 4: rejected as a bad request (400)"),
        "{}",
        r.stdout
    );
}

#[test]
fn empty_answers_are_retried_then_recorded_as_empty() {
    let mock = MockServer::start(|r: &Request| {
        if r.model == "vendor/a" {
            Reply::Ok {
                content: Some("  \n".into()),
                finish_reason: "stop".into(),
                prompt_tokens: 5,
                completion_tokens: 0,
                cost: Some(0.001),
                served_model: None,
            }
        } else {
            Reply::echo(r)
        }
    });
    let s = small(&mock, &["vendor/a"], 4);
    let r = s.run(&["run"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        mock.count(),
        5 * 3,
        "1 + empty_retries (2) attempts each:\n{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("failed 5: empty answer after retries"),
        "{}",
        r.stdout
    );
    assert!(
        files(&s, "data/3_generation/generation_responses", ".txt").is_empty(),
        "an empty answer is never served as a response"
    );
    assert!(
        r.stdout.contains("cost $0.0150"),
        "the empty attempts' cost is recorded:\n{}",
        r.stdout
    );
}

#[test]
fn truncated_answers_are_kept_and_flagged_or_failed_when_asked() {
    let trunc = |r: &Request| {
        if r.model == "vendor/a" {
            Reply::Ok {
                content: Some("cut off mid".into()),
                finish_reason: "length".into(),
                prompt_tokens: 5,
                completion_tokens: 8192,
                cost: None,
                served_model: None,
            }
        } else {
            Reply::echo(r)
        }
    };
    let mock = MockServer::start(trunc);
    let s = small(&mock, &["vendor/a"], 4);
    let out = s.ok(&["run"]);
    assert!(
        out.contains("5 ok, 0 truncated") || out.contains("0 ok, 5 truncated"),
        "{out}"
    );
    assert!(out.contains("0 ok, 5 truncated"), "{out}");
    let json = files(&s, "data/3_generation/generation_responses", ".json");
    let meta: serde_json::Value =
        serde_json::from_str(&s.read(&format!("data/3_generation/generation_responses/{}", json[0]))).unwrap();
    assert_eq!(meta["status"], "truncated");
    assert_eq!(meta["finish_reason"], "length");

    let mock = MockServer::start(trunc);
    let s = small(&mock, &["vendor/a"], 4);
    s.edit(
        "pipeline.yaml",
        "    max_tokens: 8192        # the seed client's default, used by every call\n",
        "    max_tokens: 8192\n    on_truncation: fail\n",
    );
    let r = s.run(&["run"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("failed 5: truncated at max_tokens"), "{}", r.stdout);
    assert!(files(&s, "data/3_generation/generation_responses", ".txt").is_empty());
}

#[test]
fn max_cost_stops_starting_calls_at_the_budget() {
    let mock = MockServer::start(|r: &Request| Reply::Ok {
        content: Some(common::mock::echo_text(&r.prompt)),
        finish_reason: "stop".into(),
        prompt_tokens: 1000,
        completion_tokens: 1000,
        cost: Some(0.01),
        served_model: None,
    });
    let s = small(&mock, &["vendor/a"], 1);
    // worst case of a call: ~1,000 prompt tokens at $1/M + 8,192 at $2/M = ~$0.0175
    let r = s.run(&["run", "--max-cost", "0.05"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let n = mock.count();
    assert!(
        (3..=4).contains(&n),
        "{n} calls for $0.05 at $0.01 each with $0.0175 reserved:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("not started: budget reached"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("spent ${:.4}", n as f64 * 0.01)),
        "{}",
        r.stdout
    );
}

#[test]
fn dry_run_makes_no_request_and_estimates_per_model() {
    let mock = MockServer::start(Reply::echo);
    let s = shipped(&mock);
    let out = s.ok(&["run", "--dry-run"]);
    assert_eq!(mock.count(), 0);
    assert!(out.contains("generation_response"), "{out}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("google/gemini-2.5-pro"))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[1], "5", "5 calls for gemini-2.5-pro: {line}");
    assert!(cols[4].starts_with('$'), "priced: {line}");
    assert!(
        out.contains("waiting for upstream 200"),
        "evaluations wait for generations: {out}"
    );
    s.ok(&["run"]);
    let again = s.ok(&["run", "--dry-run"]);
    assert!(again.contains("would execute 0"), "{again}");
}

#[test]
fn the_key_never_appears_in_output_store_sidecars_or_explain() {
    let mock = MockServer::start(|r: &Request| {
        if r.attempt == 0 {
            Reply::error(500, "x")
        } else {
            Reply::echo(r)
        }
    });
    let s = small(&mock, &["vendor/a"], 4);
    let mut seen = s.ok(&["run"]);
    seen.push_str(&s.ok(&["explain", "combo_v1_13c725cf02fa_creative-synthesis-v6_g0"]));
    seen.push_str(&s.ok(&["explain", "--json", "combo_v1_13c725cf02fa_creative-synthesis-v6_g0"]));
    seen.push_str(&s.ok(&["status"]));
    assert!(!seen.contains(KEY), "{seen}");
    for dir in [".daydream", "data"] {
        for e in walkdir::WalkDir::new(s.path(dir))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            let bytes = std::fs::read(e.path()).unwrap();
            assert!(
                !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
                "key found in {}",
                e.path().display()
            );
        }
    }
}

#[test]
fn without_a_key_the_openrouter_provider_stops_before_any_call() {
    let mock = MockServer::start(Reply::echo);
    let s = Space::shipped_with_llm();
    s.set_env("OPENROUTER_BASE_URL", &mock.base_url());
    let err = s.fails(&["run", "--provider", "openrouter"], 2);
    assert!(
        err.contains("needs an API key in $OPENROUTER_API_KEY") && err.contains("--provider local"),
        "{err}"
    );
    assert_eq!(mock.count(), 0);
}

#[test]
fn refresh_asks_again_and_keeps_the_old_answer() {
    let mock = MockServer::start(Reply::echo);
    let s = small(&mock, &["vendor/a"], 4);
    s.ok(&["run"]);
    mock.clear();
    mock.set_behavior(|r: &Request| Reply::text(&format!("a second opinion: {}", common::mock::echo_text(&r.prompt))));
    let out = s.ok(&["run", "--refresh", "generation_response"]);
    assert_eq!(
        by_model(&mock.requests()),
        BTreeMap::from([("vendor/a".into(), 5), ("vendor/judge".into(), 5)]),
        "{out}"
    );
    let id = "combo_v1_13c725cf02fa_creative-synthesis-v6_g0";
    assert_eq!(
        s.read(&format!("data/3_generation/generation_responses/{id}.txt"))[..16],
        *"a second opinion"
    );
    let db = rusqlite::Connection::open(s.path(".daydream/store.db")).unwrap();
    let kept: i64 = db
        .query_row("SELECT count(*) FROM superseded", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 5, "the first answers are kept");
    let err = s.fails(&["run", "--refresh", "generation_prompt"], 2);
    assert!(err.contains("makes nothing that can be asked again"), "{err}");
}

#[test]
fn replicates_make_independent_samples() {
    let mock = MockServer::start(Reply::echo);
    let s = small(&mock, &["vendor/a"], 4);
    s.edit(
        "pipeline.yaml",
        "    temperature: 0.7        # the seed sent 0.7; its unused config said 0.1\n",
        "    temperature: 0.7\n    replicates: 3\n",
    );
    s.ok(&["run"]);
    assert_eq!(by_model(&mock.requests()).get("vendor/judge"), Some(&15));
    let names = files(&s, "data/4_evaluation/evaluation_responses", ".txt");
    assert_eq!(names.len(), 15);
    assert!(
        names.iter().filter(|n| n.ends_with("_run02.txt")).count() == 5,
        "{names:?}"
    );
    s.ok(&["run"]);
    assert_eq!(mock.count(), 20, "replicates are cached like any call");
}

#[test]
fn explain_a_response_shows_model_tokens_cost_and_its_key() {
    let mock = MockServer::start(|_: &Request| Reply::Ok {
        content: Some("an essay".into()),
        finish_reason: "stop".into(),
        prompt_tokens: 321,
        completion_tokens: 12,
        cost: Some(0.0042),
        served_model: Some("vendor/a-2025".into()),
    });
    let s = small(&mock, &["vendor/a"], 4);
    s.ok(&["run"]);
    let out = s.ok(&[
        "explain",
        "data/3_generation/generation_responses/combo_v1_13c725cf02fa_creative-synthesis-v6_g0.txt",
    ]);
    for part in [
        "stage    generation_response (kind chat_completion)",
        "model=vendor/a",
        "temperature=0.7",
        "max_tokens=8192",
        "replicate=1",
        "endpoint=http://localhost:",
        "prompt",
        "served vendor/a-2025",
        "tokens 321 in, 12 out",
        "cost $0.004200",
        "status   current",
    ] {
        assert!(out.contains(part), "{part:?} missing in:\n{out}");
    }
}

/// Every file under `dir` ending in `.txt` is a whole echo answer and every `.json` parses.
fn assert_whole_files(s: &Space, dir: &str) -> usize {
    let mut n = 0;
    for name in files(s, dir, ".txt") {
        let text = s.read(&format!("{dir}/{name}"));
        assert!(
            text.starts_with("Echo of ") && text.ends_with("SCORE: 7"),
            "partial or foreign file {name}: {text:?}"
        );
        let meta = s.read(&format!("{dir}/{}", name.replace(".txt", ".json")));
        serde_json::from_str::<serde_json::Value>(&meta).unwrap_or_else(|e| panic!("sidecar of {name}: {e}"));
        n += 1;
    }
    n
}

#[test]
fn kill_9_during_calls_loses_at_most_the_calls_in_flight() {
    let in_flight = 6;
    let mock = MockServer::start(|r: &Request| Reply::echo(r).after(Duration::from_millis(200)));
    let s = small(&mock, &["vendor/a", "vendor/b", "vendor/c", "vendor/d"], in_flight);
    // 20 generation calls; the 4 models echo the same text for a combination, so the 20
    // evaluation prompts are 5 distinct calls
    let tasks = 20 + 5;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut killed_runs = 0;
    for _ in 0..3 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = s
            .command(&["run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + seed % 1200));
        child.kill().unwrap();
        child.wait().unwrap();
        killed_runs += 1;
        assert_whole_files(&s, "data/3_generation/generation_responses");
        assert_whole_files(&s, "data/4_evaluation/evaluation_responses");
    }
    let before_final = mock.count();
    s.ok(&["run"]);
    let reqs = mock.requests();
    assert!(
        reqs.len() <= tasks + killed_runs * in_flight,
        "{} requests for {tasks} tasks and {killed_runs} kills",
        reqs.len()
    );
    let mut per_call: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &reqs {
        *per_call.entry((r.model.clone(), r.prompt.clone())).or_default() += 1;
    }
    assert_eq!(per_call.len(), tasks, "every task asked");
    let repeated: usize = per_call.values().map(|n| n - 1).sum();
    assert!(
        repeated <= killed_runs * in_flight,
        "only calls in flight at a kill are asked again: {repeated} repeats"
    );
    assert_eq!(assert_whole_files(&s, "data/3_generation/generation_responses"), 20);
    assert_eq!(assert_whole_files(&s, "data/4_evaluation/evaluation_responses"), 20);
    let last = s.ok(&["run"]);
    assert_eq!(mock.count(), reqs.len(), "nothing more to ask:\n{last}");
    assert!(before_final <= reqs.len());
}

#[test]
fn requests_per_minute_paces_calls() {
    let mock = MockServer::start(Reply::echo);
    let s = small(&mock, &["vendor/a"], 8);
    s.edit(
        "pipeline.yaml",
        "    requests_per_minute: 600\n",
        "    requests_per_minute: 300\n",
    );
    s.ok(&["run"]);
    let reqs = mock.requests();
    let span = reqs.last().unwrap().at - reqs.first().unwrap().at;
    // 10 requests at 5 a second: at least 9 intervals of 200 ms
    assert!(span >= Duration::from_millis(1700), "{span:?}");
}

#[test]
fn fault_soak_2000_calls() {
    let mock = MockServer::start(common::mock::chaos(7, 0.10, 0.05, 0.02, 0.01, Duration::from_millis(5)));
    // 13 concepts, k=3: 286 combinations x 7 generation models = 2,002 calls; no evaluation
    let s = common::synthetic_with_llm(13, 3);
    let yaml = s.read("pipeline.yaml");
    s.write(
        "pipeline.yaml",
        &format!("{}\n", &yaml[..yaml.find("\n  evaluation_prompt:").unwrap()]),
    );
    s.use_mock(&mock.base_url());
    s.edit("pipeline.yaml", "    max_in_flight: 16\n", "    max_in_flight: 64\n");
    s.edit(
        "pipeline.yaml",
        "    requests_per_minute: 600\n",
        "    requests_per_minute: 600000\n",
    );
    s.edit("pipeline.yaml", "    timeout_s: 2\n", "    timeout_s: 0.5\n");
    s.edit("pipeline.yaml", "    max_attempts: 5\n", "    max_attempts: 8\n");
    let models: String = (0..7).map(|i| format!("m{i},vendor/m{i},true,false,1,2\n")).collect();
    s.write(
        "data/1_raw/llm_models.csv",
        &format!("id,model,for_generation,for_evaluation,input_usd_per_mtok,output_usd_per_mtok\n{models}"),
    );
    let r = s.run(&["run"]);
    let tasks = 2002;
    let answered = files(&s, "data/3_generation/generation_responses", ".txt").len();
    let failed: usize = r
        .stdout
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("failed ")
                .and_then(|x| x.split(':').next())
                .and_then(|n| n.parse::<usize>().ok())
        })
        .sum();
    assert_eq!(
        answered + failed,
        tasks,
        "every task ends answered or with a recorded failure:\n{}",
        r.stdout
    );
    // the summary counts what the mock saw
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(" requests: "))
        .unwrap_or_else(|| panic!("{}\n{}", r.stdout, r.stderr));
    let requests: usize = line.trim().split(' ').next().unwrap().parse().unwrap();
    let kinds = mock.reply_counts();
    assert_eq!(requests, tasks, "calls made");
    assert!(mock.count() >= tasks, "{kinds:?}");
    let ok_replies = kinds.get("ok").copied().unwrap_or(0);
    assert!(
        line.contains(&format!("{answered} ok")),
        "{line} vs {answered} answered, {ok_replies} ok replies, {kinds:?}"
    );
    // no answer was asked for again after it was stored: one ok reply per answered call at most
    let mut ok_per_call: BTreeMap<(String, String), usize> = BTreeMap::new();
    let replies: BTreeMap<usize, &str> = mock.replies().into_iter().collect();
    for q in mock.requests() {
        if replies.get(&q.seq) == Some(&"ok") {
            *ok_per_call.entry((q.model.clone(), q.prompt.clone())).or_default() += 1;
        }
    }
    assert!(
        ok_per_call.values().all(|n| *n == 1),
        "an answered call was asked again"
    );
    assert_eq!(ok_per_call.len(), answered);
    // the next run asks exactly the failed ones again
    mock.clear();
    mock.set_behavior(Reply::echo);
    s.ok(&["run"]);
    assert_eq!(mock.count(), failed);
    assert_eq!(files(&s, "data/3_generation/generation_responses", ".txt").len(), tasks);
}

#[test]
fn clean_keeps_paid_answers_unless_their_stage_is_named() {
    let mock = MockServer::start(Reply::echo);
    let s = small(&mock, &["vendor/a"], 4);
    s.ok(&["run"]);
    let out = s.ok(&["clean"]);
    assert!(
        out.contains("keeping the paid LLM answers of generation_response, evaluation_response"),
        "{out}"
    );
    let n = mock.count();
    s.ok(&["run"]);
    assert_eq!(mock.count(), n, "no call after a plain clean");
    assert_eq!(files(&s, "data/3_generation/generation_responses", ".txt").len(), 5);
    s.ok(&["clean", "evaluation_response"]);
    assert!(
        std::fs::read_dir(s.path("data/4_evaluation/evaluation_responses"))
            .unwrap()
            .next()
            .is_none(),
        "answers and sidecars gone"
    );
    s.ok(&["run"]);
    assert_eq!(mock.count(), n + 5, "only the cleaned stage's calls are made again");
}

#[test]
fn the_key_and_base_url_can_come_from_dot_env() {
    let mock = MockServer::start(Reply::echo);
    let s = Space::shipped_with_llm();
    s.write(
        ".env",
        &format!(
            "# local settings\nexport OPENROUTER_API_KEY=\"{KEY}\"\nOPENROUTER_BASE_URL={}\n",
            mock.base_url()
        ),
    );
    let yaml = s.read("pipeline.yaml");
    s.write(
        "pipeline.yaml",
        &format!("{}\n", &yaml[..yaml.find("\n  evaluation_prompt:").unwrap()]),
    );
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 25, "{out}");
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(!out.contains("local model"), "{out}");
}

/// Several servers of one model (the local model's): every call goes to a free one, and no server
/// ever has two requests at once.
#[test]
fn calls_spread_over_servers_one_request_each() {
    use daydream::llm::client::{self as llm, CallSpec, Endpoint, Gate, Limiter};
    use std::sync::Arc;

    struct Open;
    impl Limiter for Open {
        async fn before_attempt(&self, _model: &str) -> Gate {
            Gate::Go
        }
        fn stop_model(&self, _model: &str, _why: &str) {}
        fn stop_all(&self, _why: &str) {}
    }

    let servers: Vec<MockServer> = (0..2)
        .map(|_| MockServer::start(|r| Reply::echo(r).after(Duration::from_millis(150))))
        .collect();
    let ep = Endpoint {
        provider: "local".into(),
        base_urls: servers.iter().map(|m| m.base_url()).collect(),
        key: None,
        key_env: None,
        headers: vec![],
        timeout: Duration::from_secs(10),
        max_attempts: 1,
        max_retry_time: Duration::from_secs(10),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(10),
        empty_retries: 0,
        redactor: Default::default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcomes = rt.block_on(async {
        let client = llm::client().unwrap();
        let prepared = Arc::new(ep.prepare().unwrap());
        let ep = Arc::new(ep);
        // more calls at once than there are servers
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let (client, prepared, ep) = (client.clone(), prepared.clone(), ep.clone());
                tokio::spawn(async move {
                    let spec = CallSpec {
                        model: "m".into(),
                        system: None,
                        prompt: Arc::from(format!("prompt {i}")),
                        temperature: 0.7,
                        max_tokens: 16,
                        grammar: None,
                    };
                    llm::call(&client, &ep, &prepared, &spec, &Open, i).await
                })
            })
            .collect();
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.unwrap());
        }
        out
    });
    assert!(outcomes.iter().all(|o| o.status == "ok"), "{outcomes:?}");
    for (n, server) in servers.iter().enumerate() {
        let mut at: Vec<Duration> = server.requests().iter().map(|r| r.at).collect();
        assert!(at.len() >= 2, "server {n} got {} of the 8 calls", at.len());
        at.sort();
        for w in at.windows(2) {
            // the next request reaches a server only after its answer to the previous one (150 ms)
            assert!(
                w[1] - w[0] >= Duration::from_millis(140),
                "server {n} had two requests at once: {at:?}"
            );
        }
    }
    assert_eq!(servers.iter().map(MockServer::count).sum::<usize>(), 8);
}

#[test]
fn a_system_prompt_is_sent_first_and_is_part_of_the_key() {
    let mock = MockServer::start(Reply::echo);
    let s = small(&mock, &["vendor/a"], 4);
    s.write("templates/system.txt", "You are terse.");
    s.edit(
        "pipeline.yaml",
        "    prompts: generation_prompt\n",
        "    prompts: generation_prompt\n    system: templates/system.txt\n",
    );
    s.ok(&["run"]);
    let gen_calls: Vec<Request> = mock.requests().into_iter().filter(|r| r.model == "vendor/a").collect();
    assert_eq!(gen_calls.len(), 5);
    for r in &gen_calls {
        let messages = r.body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2, "{}", r.body);
        assert_eq!(messages[0]["role"], "system");
        assert_eq!(messages[0]["content"], "You are terse.");
        assert_eq!(messages[1]["role"], "user");
    }
    // the judges' calls have no system message
    assert!(
        mock.requests()
            .iter()
            .filter(|r| r.model != "vendor/a")
            .all(|r| r.body["messages"].as_array().unwrap().len() == 1)
    );
    // the same system prompt: nothing asked again; another one: the generation calls again
    mock.clear();
    s.ok(&["run"]);
    assert_eq!(mock.count(), 0);
    s.write("templates/system.txt", "You are verbose.");
    s.ok(&["run"]);
    assert_eq!(by_model(&mock.requests()).get("vendor/a"), Some(&5));
}

#[test]
fn a_damaged_store_says_what_to_do_and_doing_it_pays_nothing_again() {
    let mock = MockServer::start(Reply::echo);
    let s = small(&mock, &["vendor/a"], 4);
    s.ok(&["run"]);
    let paid = mock.count();
    std::fs::write(
        s.path(".daydream/store.db"),
        "not a database at all, but long enough to be read",
    )
    .unwrap();
    for f in ["store.db-wal", "store.db-shm"] {
        let _ = std::fs::remove_file(s.path(&format!(".daydream/{f}")));
    }
    let data = s.snapshot("data");
    let err = s.fails(&["run"], 1);
    assert!(
        err.contains("is damaged") && err.contains("mv .daydream .daydream.damaged"),
        "{err}"
    );
    assert!(err.contains("daydream import ."), "{err}");
    assert_eq!(s.snapshot("data"), data, "nothing under data/ was touched");
    // what it says to do
    std::fs::rename(s.path(".daydream"), s.path(".daydream.damaged")).unwrap();
    let imported = s.ok(&["import", "."]);
    assert!(imported.contains("adopted"), "{imported}");
    mock.clear();
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 0, "paid again after the advice:\n{out}");
    assert!(paid > 0);
}
