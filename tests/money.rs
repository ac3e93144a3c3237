//! Money and silence: the dry run prices the whole run (calls that wait for upstream answers
//! included, as upper bounds), a run that could spend more than `settings.confirm_above_usd`
//! stops before its first call unless told to go on, a prompt longer than its model's context
//! fails without a request, and a run says what it does before and while it calls.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

use common::mock::{MockServer, Reply, Request, per_model};
use common::{Space, counts};

/// The shipped project against `mock`, with the default spending question.
fn shipped(mock: &MockServer) -> Space {
    let s = Space::shipped_with_llm();
    s.use_mock(&mock.base_url());
    s.edit("pipeline.yaml", "  confirm_above_usd: 1000000\n", "");
    s
}

/// The models table's line for `model` in the table printed under `stage`.
fn model_row<'a>(out: &'a str, stage: &str, model: &str) -> Vec<&'a str> {
    let from = out
        .lines()
        .position(|l| l.split_whitespace().next() == Some(stage))
        .unwrap_or_else(|| panic!("no {stage} in:\n{out}"));
    let line = out
        .lines()
        .skip(from + 1)
        .take_while(|l| l.starts_with("    "))
        .find(|l| l.split_whitespace().next() == Some(model))
        .unwrap_or_else(|| panic!("no row for {model} under {stage}:\n{out}"));
    line.split_whitespace().collect()
}

/// The `--max-cost` a held run suggests.
fn suggested_max_cost(out: &str) -> String {
    let at = out
        .find("--max-cost ")
        .unwrap_or_else(|| panic!("no --max-cost in:\n{out}"));
    out[at + "--max-cost ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn the_dry_run_prices_the_calls_that_wait_for_upstream_answers_and_writes_nothing() {
    let mock = MockServer::start(per_model);
    let s = shipped(&mock);
    let before = s.snapshot("");
    let out = s.ok(&["run", "--dry-run"]);
    assert_eq!(mock.count(), 0);
    assert!(!s.path(".daydream").exists(), "a dry run creates no store");
    assert_eq!(common::changed(&before, &s.snapshot("")), Vec::<String>::new());
    // status and explain read a missing store as empty, and create none either
    s.ok(&["status"]);
    s.ok(&["explain", "data/2_tasks/generation_tasks.csv"]);
    assert!(!s.path(".daydream").exists(), "status and explain create no store");

    assert!(out.contains("generation_response      25 calls"), "{out}");
    assert!(
        out.contains("evaluation_response      200 calls") && out.contains("waiting for upstream 200"),
        "{out}"
    );
    for model in ["anthropic/claude-sonnet-4", "google/gemini-2.5-pro"] {
        let row = model_row(&out, "evaluation_response", model);
        assert_eq!(row[1], "100", "{model}: {row:?}");
        assert!(row[3].starts_with("<="), "an upper bound: {row:?}");
        let usd: f64 = row[4].strip_prefix('$').unwrap().parse().unwrap();
        assert!(
            usd > 1.0,
            "100 calls of up to 8,192 tokens at the table's price: {row:?}"
        );
    }
    assert!(out.contains("200 calls wait for upstream answers"), "{out}");
    let gen_row = model_row(&out, "generation_response", "google/gemini-2.5-pro");
    assert!(gen_row[3].starts_with('~'), "generation prompts are known: {gen_row:?}");
    assert!(out.contains("paid calls: up to $"), "{out}");

    // generations made: the evaluations' prompts are known, so they are estimated exactly
    let made = s.ok(&["run", "--yes", "generation_response"]);
    assert_eq!(mock.count(), 25, "{made}");
    let out = s.ok(&["run", "--dry-run"]);
    let row = model_row(&out, "evaluation_response", "anthropic/claude-sonnet-4");
    assert_eq!(row[1], "100", "{row:?}");
    assert!(row[3].starts_with('~'), "{row:?}");
    assert!(!out.contains("wait for upstream answers"), "{out}");

    // everything answered: nothing is counted
    s.ok(&["run", "--yes"]);
    assert_eq!(mock.count(), 225);
    let out = s.ok(&["run", "--dry-run"]);
    assert!(!out.contains("cost up to"), "{out}");
    assert!(!out.contains("paid calls"), "{out}");
}

#[test]
fn a_run_that_could_spend_more_than_the_threshold_stops_before_its_first_call() {
    let mock = MockServer::start(per_model);
    let s = shipped(&mock);
    let r = s.run(&["run"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(mock.count(), 0, "nothing paid");
    let out = &r.stdout;
    // the dry run's table, evaluations included
    assert_eq!(model_row(out, "generation_response", "google/gemini-2.5-flash")[1], "5");
    assert_eq!(
        model_row(out, "evaluation_response", "anthropic/claude-sonnet-4")[1],
        "100"
    );
    assert!(out.contains("more than settings.confirm_above_usd ($5.00)"), "{out}");
    assert!(out.contains("--yes"), "{out}");
    assert!(out.contains("held before the first call, nothing paid"), "{out}");
    assert!(
        !s.path("data/3_generation/generation_responses").exists(),
        "no response written"
    );
    let max_cost = suggested_max_cost(out);

    // a budget under the worst case but over the threshold is no consent
    let r = s.run(&["run", "--max-cost", "10"]);
    assert_eq!((r.code, mock.count()), (1, 0), "{}", r.stdout);
    assert!(r.stdout.contains("the budget stops them at $10.00"), "{}", r.stdout);

    // a budget covering the worst case is
    let out = s.ok(&["run", "--max-cost", &max_cost]);
    assert_eq!(mock.count(), 225, "{out}");
    assert_eq!(counts(&out, "evaluation_response"), (200, 0, 0), "{out}");
}

#[test]
fn yes_makes_the_calls_and_a_threshold_above_the_worst_case_asks_nothing() {
    let mock = MockServer::start(per_model);
    let s = shipped(&mock);
    let out = s.ok(&["run", "--yes"]);
    assert_eq!(mock.count(), 225, "{out}");

    let mock = MockServer::start(per_model);
    let s = shipped(&mock);
    s.edit(
        "pipeline.yaml",
        "  provider: auto\n",
        "  provider: auto\n  confirm_above_usd: 100\n",
    );
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 225, "{out}");

    // a budget at or under the threshold caps the run: no question, the budget stops the calls
    let mock = MockServer::start(per_model);
    let s = shipped(&mock);
    let r = s.run(&["run", "--max-cost", "0.5"]);
    assert!(mock.count() > 0, "{}", r.stdout);
    assert!(r.stdout.contains("not started: budget reached"), "{}", r.stdout);
    assert!(!r.stdout.contains("confirm_above_usd"), "{}", r.stdout);

    s.edit(
        "pipeline.yaml",
        "  provider: auto\n",
        "  provider: auto\n  confirm_above_usd: -1\n",
    );
    let err = s.fails(&["run"], 2);
    assert!(
        err.contains("settings.confirm_above_usd must be a number of dollars, at least 0"),
        "{err}"
    );
}

#[test]
fn the_local_provider_is_never_stopped() {
    let mock = MockServer::start(per_model);
    let s = Space::shipped_with_llm();
    // the local provider, served by the mock: no key, so `auto` picks it
    s.set_env("LOCAL_BASE_URL", &mock.base_url());
    s.edit(
        "pipeline.yaml",
        "  provider: auto\n",
        "  provider: auto\n  confirm_above_usd: 0\n",
    );
    let r = s.run(&["run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(mock.count() > 0);
    assert!(!r.stdout.contains("confirm_above_usd"), "{}", r.stdout);
}

#[test]
fn a_prompt_longer_than_the_models_context_fails_its_task_without_a_request() {
    let mock = MockServer::start(per_model);
    let s = shipped(&mock);
    s.write(
        "data/1_raw/llm_models.csv",
        "id,model,for_generation,for_evaluation,input_usd_per_mtok,output_usd_per_mtok,context_tokens\n\
         small,vendor/small,true,false,1.0,2.0,100\n\
         big,vendor/big,true,false,1.0,2.0,\n\
         judge,vendor/judge,false,true,1.0,2.0,200000\n",
    );
    let out = s.ok(&["run", "--dry-run"]);
    assert!(
        out.contains("vendor/small: 5 prompts longer than its context (100 tokens) fail without a request"),
        "{out}"
    );
    let r = s.run(&["run"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let reqs = mock.requests();
    assert!(
        reqs.iter().all(|r| r.model != "vendor/small"),
        "no request for the long prompts"
    );
    assert_eq!(reqs.iter().filter(|r| r.model == "vendor/big").count(), 5);
    assert!(
        r.stdout
            .contains("failed 5: prompt longer than the model's context, not sent"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("    5 requests: 5 ok"), "{}", r.stdout);
    let status = s.ok(&["status", "--json", "generation_response"]);
    let rows: serde_json::Value = serde_json::from_str(&status).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stage"] == "generation_response")
        .unwrap();
    assert_eq!(row["failed"], 5, "{status}");
    let explain = s.ok(&["explain", "combo_v1_13c725cf02fa_creative-synthesis-v6_small"]);
    assert!(explain.contains("context"), "{explain}");
    // a bad cell names the file and the line
    s.edit("data/1_raw/llm_models.csv", ",100\n", ",lots\n");
    let err = s.fails(&["run"], 2);
    assert!(
        err.contains("`context_tokens` of model `small` in data/1_raw/llm_models.csv line 2 is `lots`"),
        "{err}"
    );
}

/// Lines a child writes to one stream, as they come.
fn lines_of(
    stream: impl std::io::Read + Send + 'static,
) -> (mpsc::Receiver<String>, std::thread::JoinHandle<Vec<String>>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stream).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    (rx, handle)
}

/// Waits for a line containing `what` (a minute at most, so a broken build fails, not hangs).
fn wait_for(rx: &mpsc::Receiver<String>, what: &str, seen: &mut Vec<String>) {
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        let found = line.contains(what);
        seen.push(line);
        if found {
            return;
        }
    }
    panic!("no line with {what:?} in:\n{}", seen.join("\n"));
}

#[test]
fn a_run_says_what_it_does_before_the_first_answer_and_while_calls_are_in_flight() {
    // the first request is held until the test has seen what must come before its answer
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let first = Arc::new(AtomicBool::new(true));
    let mock = {
        let gate = gate.clone();
        MockServer::start(move |r: &Request| {
            if first.swap(false, Ordering::SeqCst) {
                let (open, cv) = &*gate;
                let guard = open.lock().unwrap();
                let _ = cv
                    .wait_timeout_while(guard, Duration::from_secs(60), |open| !*open)
                    .unwrap();
            }
            Reply::echo(r)
        })
    };
    let s = Space::shipped_with_llm();
    s.set_env("LOCAL_BASE_URL", &mock.base_url());
    s.set_env("DAYDREAM_HEARTBEAT_MS", "50");
    s.edit(
        "pipeline.yaml",
        "    timeout_s: 300\n",
        "    timeout_s: 120\n    max_in_flight: 1\n",
    );
    let mut child = s
        .command(&["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out_rx, out_all) = lines_of(child.stdout.take().unwrap());
    let (err_rx, err_all) = lines_of(child.stderr.take().unwrap());
    let (mut out_seen, mut err_seen) = (Vec::new(), Vec::new());
    // while the first call is held: the stages before it, the provider, the plan, heartbeats
    wait_for(&out_rx, "generation_prompt", &mut out_seen);
    wait_for(&err_rx, "OPENROUTER_API_KEY is not set", &mut err_seen);
    wait_for(
        &err_rx,
        "generation_response: 5 calls to make on the local model",
        &mut err_seen,
    );
    // a heartbeat while the held call is in flight (earlier ones may come before it starts)
    wait_for(
        &err_rx,
        "generation_response: 0/5 calls, 0 cached, 0 failed, 1 in flight (oldest ",
        &mut err_seen,
    );
    let beat = err_seen.last().unwrap().clone();
    assert!(beat.contains(", elapsed "), "{beat}");
    assert!(mock.count() <= 1, "one call at a time, the first one held");
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let status = child.wait().unwrap();
    let stdout = out_all.join().unwrap().join("\n");
    let stderr = err_all.join().unwrap().join("\n");
    assert!(status.success(), "{stdout}\n{stderr}");
    // the last line of each stage, whatever the 10% steps printed
    for last in ["generation_response: 5/5 calls", "evaluation_response: 20/20 calls"] {
        assert!(stderr.contains(last), "{last}:\n{stderr}");
    }
    assert!(stdout.contains("evaluation_response"), "{stdout}");
}
