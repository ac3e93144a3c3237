//! The results stages end to end: essays, parsed scores, summaries and the cross-experiment
//! ledgers from a mock LLM; `rebuild-results` from files alone; `import` of the original's
//! responses; `parse-score`.

mod common;

use std::path::Path;

use common::mock::{MockServer, Reply, Request};
use common::{Space, counts, repo};

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Generation answers hold an essay in tags (each model writes its own, so every evaluation
/// prompt is distinct); judges answer a score that depends on the prompt, or (for one prompt in
/// seven) no score at all.
fn answer(r: &Request) -> Reply {
    let h = fnv(&r.prompt);
    if r.model.starts_with("vendor/gen") {
        Reply::text(&format!(
            "<thinking>private {h:x}</thinking>\n<essay id=\"e\">The essay {h:x} by {}.\n\nIt loops.</essay>\n<endnotes>n</endnotes>",
            r.model
        ))
    } else if h.is_multiple_of(7) {
        Reply::text(&format!("I would rather not give a number ({h:x})."))
    } else {
        Reply::text(&format!("Reasoning about {h:x}.\nSCORE: {}", h % 10))
    }
}

/// A judge's answer: a score that depends on the prompt, every answer distinct.
fn judge(r: &Request) -> Reply {
    let h = fnv(&r.prompt);
    Reply::text(&format!("{} judging {h:x}.\nSCORE: {}", r.model, h % 10))
}

/// Essays for the generators; judge-b refuses (400) every essay of gen-b, the judges otherwise
/// answer as `judges` does.
fn refusing(r: &Request, judges: fn(&Request) -> Reply) -> Reply {
    if r.model.starts_with("vendor/gen") {
        essay(r)
    } else if r.model == "vendor/judge-b" && r.prompt.contains("Essay by vendor/gen-b") {
        Reply::error(400, "not today")
    } else {
        judges(r)
    }
}

/// A generator's answer: an essay naming its model and prompt.
fn essay(r: &Request) -> Reply {
    Reply::text(&format!("<essay>Essay by {} on {:x}.</essay>", r.model, fnv(&r.prompt)))
}

/// 5 combinations x 1 generation template x 2 generation models; 2 evaluation templates (one
/// 0-9 `in_last_line`, one 0-10 `complex`) x 2 judges: 10 generations, 40 evaluations.
fn project(mock: &MockServer) -> Space {
    let s = Space::shipped_with_llm();
    s.use_mock(&mock.base_url());
    s.write(
        "data/1_raw/llm_models.csv",
        "id,model,for_generation,for_evaluation,input_usd_per_mtok,output_usd_per_mtok\n\
         gen_a,vendor/gen-a,true,false,1.0,2.0\n\
         gen_b,vendor/gen-b,true,false,1.0,2.0\n\
         judge_a,vendor/judge-a,false,true,1.0,2.0\n\
         judge_b,vendor/judge-b,false,true,1.0,2.0\n",
    );
    let t = s.read("data/1_raw/evaluation_templates.csv");
    let t: String = t
        .lines()
        .map(|l| {
            let id = l.split(',').next().unwrap();
            let keep = matches!(id, "gemini-prior-art-eval" | "creativity-metrics");
            if id == "template_id" {
                format!("{l}\n")
            } else {
                format!(
                    "{}\n",
                    l.replace(",true,", ",false,")
                        .replacen(",false,", if keep { ",true," } else { ",false," }, 1,)
                )
            }
        })
        .collect();
    s.write("data/1_raw/evaluation_templates.csv", &t);
    s
}

const TABLES: &[&str] = &[
    "data/5_parsing/parsed_scores.csv",
    "data/5_parsing/evaluator_agreement_analysis.csv",
    "data/5_parsing/comprehensive_variance_analysis.csv",
    "data/6_summary/generation_scores_pivot.csv",
    "data/6_summary/final_results.csv",
    "data/6_summary/perfect_score_paths.csv",
    "data/6_summary/evaluation_model_template_pivot.csv",
    "data/7_cross_experiment/generation_results.csv",
    "data/7_cross_experiment/evaluation_results.csv",
    "data/7_cross_experiment/filtered_evaluation_results.csv",
    "data/7_cross_experiment/template_version_comparison_pivot.csv",
];

const REPORT: &str = "data/6_summary/report.html";

fn csv_rows(text: &str) -> usize {
    text.lines().count().saturating_sub(1)
}

fn copy_files(from: &Path, to: &Path, dir: &str, keep: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(from.join(dir)) else {
        return;
    };
    std::fs::create_dir_all(to.join(dir)).unwrap();
    for e in entries {
        let name = e.unwrap().file_name().into_string().unwrap();
        if keep(&name) {
            std::fs::copy(from.join(dir).join(&name), to.join(dir).join(&name)).unwrap();
        }
    }
}

#[test]
fn a_run_writes_essays_scores_summaries_and_ledgers() {
    let mock = MockServer::start(answer);
    let s = project(&mock);
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 10 + 40, "{out}");
    // essays: the text inside <essay id="e">, not the raw answer
    let essays = std::fs::read_dir(s.path("data/3_generation/parsed_generation_responses"))
        .unwrap()
        .count();
    assert_eq!(essays, 10);
    let one = std::fs::read_dir(s.path("data/3_generation/parsed_generation_responses"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let essay = std::fs::read_to_string(&one).unwrap();
    assert!(
        essay.starts_with("The essay ") && essay.ends_with("It loops."),
        "{essay:?}"
    );
    // evaluators saw the essay only
    let prompts = s.path("data/4_evaluation/evaluation_prompts");
    for e in std::fs::read_dir(&prompts).unwrap() {
        let p = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(!p.contains("<thinking>") && p.contains("It loops."));
    }
    // provenance of an essay names the parser and what it did
    let id = one.file_stem().unwrap().to_str().unwrap();
    let ex = s.ok(&[
        "explain",
        &format!("data/3_generation/parsed_generation_responses/{id}.txt"),
    ]);
    assert!(ex.contains("xml_tags"), "{ex}");
    // every table exists; parsed_scores has one row per evaluation task
    for t in TABLES {
        assert!(s.path(t).is_file(), "{t} missing\n{out}");
    }
    let scores = s.read("data/5_parsing/parsed_scores.csv");
    assert_eq!(csv_rows(&scores), 40);
    assert!(scores.starts_with(
        "combo_id,generation_template,generation_model,evaluation_template,evaluation_model,score,error,evaluation_response_path\n"
    ));
    let errors = scores.lines().filter(|l| l.contains("Parse error: ")).count();
    let refusals = mock
        .requests()
        .iter()
        .filter(|r| r.model.starts_with("vendor/judge") && fnv(&r.prompt).is_multiple_of(7))
        .count();
    assert_eq!(errors, refusals, "{scores}");
    assert_eq!(csv_rows(&s.read("data/7_cross_experiment/generation_results.csv")), 10);
    assert_eq!(csv_rows(&s.read("data/7_cross_experiment/evaluation_results.csv")), 40);
    let ledger = s.read("data/7_cross_experiment/generation_results.csv");
    assert!(
        ledger.contains(",success,") && ledger.contains("generation_responses/"),
        "{ledger}"
    );

    // the report page is a stage too: its run section comes from the store
    let page = s.read(REPORT);
    assert!(
        page.contains("vendor/judge-a") && page.contains("generation_response"),
        "{page}"
    );

    // nothing changed: nothing recomputed, nothing rewritten (the tables nor the page)
    let watched: Vec<&str> = TABLES.iter().copied().chain([REPORT]).collect();
    let mtimes = || -> Vec<_> {
        watched
            .iter()
            .map(|t| std::fs::metadata(s.path(t)).unwrap().modified().unwrap())
            .collect()
    };
    let before = mtimes();
    let again = s.ok(&["run"]);
    assert_eq!(mock.count(), 50);
    assert!(!again.contains("parsed "), "{again}");
    assert_eq!(before, mtimes());
    // `daydream report` renders the same page from the files on disk
    let out = s.ok(&["report"]);
    assert!(out.contains("wrote data/6_summary/report.html"), "{out}");
    assert_eq!(s.read(REPORT), page);
    s.ok(&["report", "-o", "elsewhere/page.html"]);
    assert!(
        s.read("elsewhere/page.html").contains("../data/"),
        "links are relative to the page"
    );
    // and the ledgers hold each response once
    assert_eq!(csv_rows(&s.read("data/7_cross_experiment/evaluation_results.csv")), 40);
}

#[test]
fn a_new_response_is_the_only_one_parsed() {
    // the first run: judge-b refuses the essays of gen-b (5 essays x 2 templates = 10 tasks)
    let mock = MockServer::start(|r: &Request| refusing(r, judge));
    let s = project(&mock);
    let first = s.run(&["run"]);
    assert_eq!(first.code, 1, "{}", first.stdout);
    let failed = mock.replies_of("status:400");
    assert_eq!(failed, 10, "{:?}", mock.reply_counts());
    let answered = 40 - failed;
    assert_eq!(
        counts(&first.stdout, "evaluation_scores"),
        (answered, 0, 0),
        "{}",
        first.stdout
    );
    let scores = s.read("data/5_parsing/parsed_scores.csv");
    assert_eq!(scores.matches("File not found").count(), failed);

    // the judge recovers: only the missing evaluations are asked, and only they are parsed
    mock.set_behavior(|r: &Request| {
        if r.model.starts_with("vendor/gen") {
            essay(r)
        } else {
            judge(r)
        }
    });
    let before = mock.count();
    let second = s.ok(&["run"]);
    assert_eq!(mock.count() - before, failed);
    // only the new responses are parsed; the others' parses are as they were
    assert_eq!(counts(&second, "evaluation_scores"), (failed, 0, answered), "{second}");
    let scores = s.read("data/5_parsing/parsed_scores.csv");
    assert!(!scores.contains("File not found"), "{scores}");
}

#[test]
fn rebuild_results_from_files_alone_writes_what_a_run_writes() {
    let mock = MockServer::start(|r: &Request| refusing(r, answer));
    let s = project(&mock);
    assert_eq!(s.run(&["run"]).code, 1);
    let missing = mock.replies_of("status:400");
    assert_eq!(missing, 10);
    // a directory holding only the task tables, the templates CSV and the response files
    let bare = Space::empty();
    for f in [
        "data/2_tasks/generation_tasks.csv",
        "data/2_tasks/evaluation_tasks.csv",
        "data/1_raw/evaluation_templates.csv",
    ] {
        bare.write(f, &s.read(f));
    }
    for dir in [
        "data/3_generation/generation_responses",
        "data/4_evaluation/evaluation_responses",
    ] {
        copy_files(s.dir.path(), bare.dir.path(), dir, |_| true);
    }
    let out = bare.ok(&["rebuild-results"]);
    assert!(out.contains(&format!("{missing} missing")), "{out}");
    // the scores and summaries are the run's (the run's ledgers also list the failed calls,
    // which only the store knows)
    for t in &TABLES[..7] {
        assert_eq!(bare.read(t), s.read(t), "{t}");
    }

    // every response there: rebuild-results on a copy without the store agrees with the run
    mock.set_behavior(|r: &Request| {
        if r.model.starts_with("vendor/gen") {
            essay(r)
        } else {
            answer(r)
        }
    });
    s.ok(&["run"]);
    let full = Space::empty();
    full.copy_in(s.dir.path(), "");
    std::fs::remove_dir_all(full.path(".daydream")).unwrap();
    for t in TABLES {
        std::fs::remove_file(full.path(t)).unwrap();
    }
    let out = full.ok(&["rebuild-results"]);
    assert!(out.contains(" 0 missing"), "{out}");
    for t in TABLES {
        let (rebuilt, run) = (full.read(t), s.read(t));
        if t.ends_with("filtered_evaluation_results.csv") {
            // a ledger lists responses as they were recorded: the run's second pass appended the
            // evaluations that failed in its first; a rebuild finds them all at once
            let sorted = |text: &str| {
                let mut lines: Vec<&str> = text.lines().collect();
                lines[1..].sort_unstable();
                lines.join("\n")
            };
            assert_eq!(csv_rows(&rebuilt), 40, "one row per evaluation response");
            assert_eq!(
                sorted(&rebuilt),
                sorted(&run),
                "{t}: rebuild-results differs from the run"
            );
        } else {
            assert_eq!(rebuilt, run, "{t}: rebuild-results differs from the run");
        }
    }
}

#[test]
fn import_adopts_the_original_responses_and_the_next_run_calls_nothing_for_them() {
    let mock = MockServer::start(answer);
    let a = project(&mock);
    a.ok(&["run"]);
    assert_eq!(mock.count(), 50);
    // the original's data/ directory: prompts and responses side by side
    let orig = Space::empty();
    for dir in [
        "3_generation/generation_prompts",
        "3_generation/generation_responses",
        "4_evaluation/evaluation_prompts",
        "4_evaluation/evaluation_responses",
    ] {
        copy_files(&a.path("data"), orig.dir.path(), dir, |n| n.ends_with(".txt"));
    }
    // one response whose task is not in the project, one without its prompt
    orig.write(
        "3_generation/generation_responses/combo_v1_000000000000_x_y.txt",
        "orphan",
    );
    let lonely = std::fs::read_dir(orig.path("4_evaluation/evaluation_prompts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&lonely).unwrap();

    let mock_b = MockServer::start(answer);
    let b = project(&mock_b);
    let out = b.ok(&["import", orig.dir.path().to_str().unwrap()]);
    assert!(out.contains("adopted 10"), "{out}");
    assert!(out.contains("adopted 39"), "{out}");
    assert!(out.contains("combo_v1_000000000000_x_y.txt: no task"), "{out}");
    assert!(out.contains("no recorded prompt"), "{out}");
    let run = b.ok(&["run"]);
    assert_eq!(
        mock_b.count(),
        1,
        "only the response without a recorded prompt is asked\n{run}"
    );
    assert_eq!(
        b.read("data/5_parsing/parsed_scores.csv"),
        a.read("data/5_parsing/parsed_scores.csv")
    );
    // provenance says where the answer came from
    let task = lonely.file_stem().unwrap().to_str().unwrap().to_owned();
    let some_other = std::fs::read_dir(b.path("data/4_evaluation/evaluation_responses"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.ends_with(".txt") && !n.starts_with(&task))
        .unwrap();
    let ex = b.ok(&[
        "explain",
        &format!("data/4_evaluation/evaluation_responses/{some_other}"),
    ]);
    assert!(ex.contains("imported"), "{ex}");
    // importing again adopts nothing new
    let again = b.ok(&["import", orig.dir.path().to_str().unwrap()]);
    assert!(again.contains("adopted 0, already in the store 10"), "{again}");
}

#[test]
fn ledgers_keep_other_experiments_rows() {
    let mock = MockServer::start(answer);
    let s = project(&mock);
    s.ok(&["run"]);
    let first = s.read("data/7_cross_experiment/generation_results.csv");
    // a new experiment: one generation model only
    s.edit(
        "data/1_raw/llm_models.csv",
        "gen_b,vendor/gen-b,true",
        "gen_b,vendor/gen-b,false",
    );
    s.ok(&["run"]);
    let second = s.read("data/7_cross_experiment/generation_results.csv");
    assert_eq!(second, first, "the old experiment's rows stay, none doubled");
    assert_eq!(csv_rows(&s.read("data/5_parsing/parsed_scores.csv")), 20);
    assert_eq!(csv_rows(&s.read("data/7_cross_experiment/evaluation_results.csv")), 40);
    // clean keeps the ledgers
    s.ok(&["clean"]);
    assert_eq!(s.read("data/7_cross_experiment/generation_results.csv"), first);
    assert!(!s.path("data/5_parsing/parsed_scores.csv").exists());
}

#[test]
fn a_bad_parser_column_is_reported_before_any_call() {
    let mock = MockServer::start(answer);
    let s = project(&mock);
    s.edit(
        "data/1_raw/evaluation_templates.csv",
        "true,in_last_line,0-9",
        "true,in_last_line,nine",
    );
    let r = s.run(&["run"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("data/1_raw/evaluation_templates.csv line"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("score_range"), "{}", r.stderr);
    assert_eq!(mock.count(), 0);
    s.edit(
        "data/1_raw/evaluation_templates.csv",
        "true,in_last_line,nine",
        "true,last_line,0-9",
    );
    let r = s.run(&["run"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown parser `last_line`"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean `in_last_line`?"), "{}", r.stderr);
    assert_eq!(mock.count(), 0);
}

#[test]
fn parse_score_checks_one_response_by_hand() {
    let s = Space::empty();
    s.write("r.txt", "Some reasoning.\n**SCORE: 8**\n");
    assert_eq!(s.ok(&["parse-score", "r.txt"]).trim(), "8.0");
    let mut c = s.command(&["parse-score", "--strategy", "complex", "-"]);
    c.current_dir(s.dir.path());
    use std::io::Write;
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"**Total Score: 6.5/10** and SCORE: 7")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "6.5");
    s.write("ten.txt", "SCORE: 10");
    let r = s.run(&["parse-score", "--range", "0-9", "ten.txt"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("Score 10.0 is outside valid range 0-9"),
        "{}",
        r.stderr
    );
    let r = s.run(&["parse-score", "--strategy", "magic", "ten.txt"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown --strategy `magic`"), "{}", r.stderr);
}

#[test]
fn rebuild_results_on_the_committed_fixture_gives_the_hand_worked_tables() {
    let fixture = repo().join("tests/fixtures/results");
    let s = Space::empty();
    s.copy_in(&fixture.join("data"), "data");
    let out = s.ok(&["rebuild-results"]);
    assert!(out.contains("wrote data/5_parsing/parsed_scores.csv"), "{out}");
    for (name, dir) in [
        ("parsed_scores.csv", "data/5_parsing"),
        ("evaluator_agreement_analysis.csv", "data/5_parsing"),
        ("comprehensive_variance_analysis.csv", "data/5_parsing"),
        ("generation_scores_pivot.csv", "data/6_summary"),
        ("final_results.csv", "data/6_summary"),
        ("perfect_score_paths.csv", "data/6_summary"),
        ("evaluation_model_template_pivot.csv", "data/6_summary"),
    ] {
        let want = std::fs::read_to_string(fixture.join("expected").join(name)).unwrap();
        assert_eq!(s.read(&format!("{dir}/{name}")), want, "{name}");
    }
    // a second rebuild finds everything current
    let again = s.ok(&["rebuild-results"]);
    assert!(again.contains("already up to date"), "{again}");
}

/// `filtered_evaluation_results` holds one row per evaluation response on disk (18 of the 24
/// tasks: 14 scored, 4 unparseable; the 6 without a response were never recorded), keyed by its
/// evaluation task id; it used to keep one row per combination (2). The pivot is the first valid
/// score of each essay under each evaluation template, worked out by hand from
/// `expected/parsed_scores.csv`.
#[test]
fn the_filtered_ledger_of_the_fixture_has_a_row_per_evaluation_response() {
    let fixture = repo().join("tests/fixtures/results");
    let s = Space::empty();
    s.copy_in(&fixture.join("data"), "data");
    s.ok(&["rebuild-results"]);
    let filtered = s.read("data/7_cross_experiment/filtered_evaluation_results.csv");
    assert_eq!(csv_rows(&filtered), 18, "{filtered}");
    let ids: std::collections::BTreeSet<&str> =
        filtered.lines().skip(1).map(|l| l.split(',').nth(7).unwrap()).collect();
    assert_eq!(ids.len(), 18, "each evaluation task once");
    let with_score = filtered
        .lines()
        .skip(1)
        .filter(|l| !l.split(',').nth(5).unwrap().is_empty())
        .count();
    assert_eq!(with_score, 14);
    assert_eq!(
        s.read("data/7_cross_experiment/template_version_comparison_pivot.csv"),
        "combo_id,generation_template,generation_model,daydreaming-verification,style-coherence,style-coherence-v3
combo_v1_13c725cf02fa,creative-synthesis-v6,deepseek_r1_p,7.5,10.0,7.0
combo_v1_13c725cf02fa,creative-synthesis-v6,gemini_2.5_flash,,0.0,
combo_v1_f0c9d41797ca,creative-synthesis-v6,deepseek_r1_p,,2.3333333333333335,
combo_v1_f0c9d41797ca,creative-synthesis-v6,gemini_2.5_flash,8.0,8.25,9.0
"
    );
    // a ledger written by the version keyed by combination (one row per combo) heals: its rows
    // are replaced by their evaluation task's, none is lost or doubled
    let header = filtered.lines().next().unwrap();
    let mut by_combo: Vec<&str> = Vec::new();
    for l in filtered.lines().skip(1) {
        if !by_combo.iter().any(|k| k[..21] == l[..21]) {
            by_combo.push(l);
        }
    }
    assert_eq!(by_combo.len(), 2);
    s.write(
        "data/7_cross_experiment/filtered_evaluation_results.csv",
        &format!("{header}\n{}\n", by_combo.join("\n")),
    );
    s.ok(&["rebuild-results"]);
    let healed = s.read("data/7_cross_experiment/filtered_evaluation_results.csv");
    assert_eq!(csv_rows(&healed), 18);
    let mut a: Vec<&str> = healed.lines().collect();
    let mut b: Vec<&str> = filtered.lines().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
}
