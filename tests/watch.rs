//! `daydream run --watch`: a save rebuilds exactly what it changes, a save of the same bytes
//! does nothing, a broken save is reported and the next good one rebuilds; salsa re-executes
//! only the edited template's queries.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Space;
use common::mock::{MockServer, Reply, Request};

const A: &str = "templates/generation/creative-synthesis-v6.txt";
const B: &str = "templates/generation/creative-synthesis-v3.txt";

/// The shipped project with two active generation templates (v6 and v3), one generation model
/// and one judge on one evaluation template, answered by a mock.
fn project(mock: &MockServer) -> Space {
    let s = Space::shipped_with_llm();
    s.use_mock(&mock.base_url());
    s.write(
        "data/1_raw/llm_models.csv",
        "id,model,for_generation,for_evaluation\ngen,vendor/gen,true,false\njudge,vendor/judge,false,true\n",
    );
    let csv = s.read("data/1_raw/generation_templates.csv");
    let csv: String = csv
        .lines()
        .map(|l| {
            if l.starts_with("creative-synthesis-v3,") {
                format!("{}\n", l.replace(",false,", ",true,"))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    s.write("data/1_raw/generation_templates.csv", &csv);
    let csv = s.read("data/1_raw/evaluation_templates.csv");
    let mut first = true;
    let csv: String = csv
        .lines()
        .map(|l| {
            if l.starts_with("template_id,") || !l.contains(",true,") {
                format!("{l}\n")
            } else if first {
                first = false;
                format!("{l}\n")
            } else {
                format!("{}\n", l.replacen(",true,", ",false,", 1))
            }
        })
        .collect();
    s.write("data/1_raw/evaluation_templates.csv", &csv);
    s
}

fn answer(r: &Request) -> Reply {
    if r.model == "vendor/gen" {
        Reply::text(&format!("<essay>An essay of {} characters.</essay>", r.prompt.len()))
    } else {
        Reply::text("Fine.\nSCORE: 7")
    }
}

/// A running `daydream run --watch` and what it printed so far.
struct Watcher {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Watcher {
    fn start(s: &Space) -> Watcher {
        let mut child = s
            .command(&["run", "--watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Watcher { child, out }
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits until the output holds `n` occurrences of `what`; returns the output.
    fn wait_for(&self, what: &str, n: usize) -> String {
        let start = Instant::now();
        loop {
            let t = self.text();
            if t.matches(what).count() >= n {
                return t;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waited 60 s for {n} x {what:?}; output:\n{t}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn interrupt(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (status.code().unwrap_or(-1), self.text())
    }
}

/// The lines of the rebuild after the `n`th "changed:" line.
fn rebuild(out: &str, n: usize) -> String {
    out.split("changed: ").nth(n).unwrap_or("").to_owned()
}

#[test]
fn a_save_rebuilds_exactly_what_it_changes() {
    let mock = MockServer::start(answer);
    let s = project(&mock);
    let w = Watcher::start(&s);
    let out = w.wait_for("watching ", 1);
    // 5 combinations x 2 templates x 1 model; each essay judged once
    assert!(
        out.contains("generation_prompt        10 prompts: executed 10"),
        "{out}"
    );
    assert_eq!(mock.count(), 10 + 10, "{out}");
    let b_prompts = s.snapshot("data/3_generation/generation_prompts");

    // edit template A: its 5 prompts, their 5 calls and the 5 evaluations of their essays
    let a = s.read(A);
    s.write(A, &format!("{a}\nOne more sentence for the model."));
    let out = w.wait_for("rebuilt in", 1);
    let r = rebuild(&out, 1);
    assert!(r.contains(A), "{r}");
    assert!(r.contains("generation_prompt 5,"), "{r}");
    assert!(r.contains("generation_response 5,"), "{r}");
    assert!(r.contains("evaluation_response 5"), "{r}");
    assert_eq!(mock.count(), 20 + 10, "{out}");
    let after = s.snapshot("data/3_generation/generation_prompts");
    let redone: Vec<&String> = after.keys().filter(|k| after[*k] != b_prompts[*k]).collect();
    assert_eq!(redone.len(), 5, "{redone:?}");
    assert!(redone.iter().all(|k| k.contains("creative-synthesis-v6")), "{redone:?}");
    // only template A's requests were made
    let requests = mock.requests();
    assert!(
        requests[20..]
            .iter()
            .filter(|r| r.model == "vendor/gen")
            .all(|r| r.prompt.contains("One more sentence"))
    );

    // the same bytes again (an editor's save without a change): nothing happens
    let same = s.read(A);
    s.write(A, &same);
    std::thread::sleep(Duration::from_millis(1500));
    let out = w.text();
    assert_eq!(out.matches("changed: ").count(), 1, "{out}");
    assert_eq!(mock.count(), 30);

    // a syntax error is reported and the watcher goes on; the fix rebuilds
    s.write(A, &format!("{same}\n{{% for %}}"));
    let out = w.wait_for("syntax error in template", 1);
    assert!(out.contains("creative-synthesis-v6.txt"), "{out}");
    assert_eq!(mock.count(), 30);
    s.write(A, &format!("{same}\nAnd a last one."));
    let out = w.wait_for("rebuilt in", 2);
    let r = rebuild(&out, 3);
    assert!(r.contains("generation_prompt 5,"), "{r}");
    assert_eq!(mock.count(), 40, "{out}");

    // an atomic-rename save (write a temp file, rename over the template) is seen too
    let tmp = s.path("templates/generation/.creative-synthesis-v3.txt.swp");
    std::fs::write(&tmp, format!("{}\nRenamed into place.", s.read(B))).unwrap();
    std::fs::rename(&tmp, s.path(B)).unwrap();
    let out = w.wait_for("rebuilt in", 3);
    let r = rebuild(&out, 4);
    assert!(r.contains(B) && r.contains("generation_prompt 5,"), "{r}");

    // Ctrl-C ends it cleanly
    let (code, out) = w.interrupt();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("stopped watching"), "{out}");
    // nothing half-written: a plain run finds everything current
    let again = s.ok(&["run"]);
    assert!(again.contains("done: executed 0, reused 0"), "{again}");
}

#[test]
fn our_own_writes_never_trigger_a_rebuild() {
    let mock = MockServer::start(answer);
    let s = project(&mock);
    let w = Watcher::start(&s);
    w.wait_for("watching ", 1);
    // an output written by hand, a deleted output, the store: no input changed
    s.write("data/2_tasks/generation_tasks.csv", "edited by hand\n");
    std::fs::remove_file(s.path("data/5_parsing/parsed_scores.csv")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let (_, out) = w.interrupt();
    assert!(!out.contains("changed: "), "{out}");
}

#[test]
fn salsa_re_executes_only_the_edited_templates_queries() {
    use daydream::engine::run::{self as engine, Project, RunOptions};
    use daydream::engine::store::Store;
    let s = Space::shipped();
    // three active generation templates
    let csv = s.read("data/1_raw/generation_templates.csv");
    let csv = csv
        .lines()
        .map(|l| {
            if l.starts_with("creative-synthesis-v3,") || l.starts_with("creative-synthesis-v2,") {
                format!("{}\n", l.replace(",false,", ",true,"))
            } else {
                format!("{l}\n")
            }
        })
        .collect::<String>();
    s.write("data/1_raw/generation_templates.csv", &csv);
    let mut project = Project::open(s.dir.path(), daydream::kinds::registry()).unwrap();
    let mut store = Store::open(&project.state_dir()).unwrap();
    let opts = RunOptions {
        session: true,
        ..Default::default()
    };
    let run = |project: &Project, store: &mut Store| {
        let r = engine::run(project, store, &opts).unwrap_or_else(|_| panic!("run failed"));
        r.stages.iter().map(|s| s.executed).sum::<usize>()
    };
    run(&project, &mut store);
    let first = project.db.take_executed();
    let count = |names: &[String], q: &str| names.iter().filter(|n| n.starts_with(q)).count();
    // one part of the prompt stage's value per template
    assert_eq!(count(&first, "stage_part"), 3, "{first:?}");

    // one template edited: one part re-executed, not three
    s.write(A, &format!("{}\nEdited.", s.read(A)));
    assert!(project.db.reload(A));
    assert!(!project.db.reload(B), "B did not change");
    // 5 combinations x 5 shipped generation models
    assert_eq!(run(&project, &mut store), 25);
    let second = project.db.take_executed();
    assert_eq!(count(&second, "stage_part"), 1, "{second:?}");
    // the tables upstream are not recomputed
    for q in ["stage_value(Id(", "pipeline("] {
        assert!(second.iter().filter(|n| n.starts_with(q)).count() <= 1, "{second:?}");
    }

    // the same bytes saved again: nothing re-executes at all
    s.write(A, &s.read(A));
    assert!(!project.db.reload(A));
    assert_eq!(run(&project, &mut store), 0);
    let third = project.db.take_executed();
    assert!(third.is_empty(), "{third:?}");
}
