//! The examples of `examples/` run as a user runs them: `daydream -C examples/NAME run`, pointed
//! at an OpenAI-compatible server by OPENROUTER_BASE_URL and OPENROUTER_API_KEY alone (here the
//! mock). Every count is computed from the example's own CSVs, every output checked against what
//! the mock answered, and a second run asks nothing.

mod common;

use std::collections::BTreeMap;

use common::mock::{MockServer, Reply, Request, hash12};
use common::{Space, changed, counts, read_csv};

/// A cell read as daydream reads a boolean condition.
fn truthy(cell: &str) -> bool {
    matches!(cell.to_ascii_lowercase().as_str(), "true" | "1" | "yes")
}

/// The rows of a CSV whose `column` is true.
fn rows_where(s: &Space, csv: &str, column: &str) -> Vec<BTreeMap<String, String>> {
    read_csv(s, csv).into_iter().filter(|r| truthy(&r[column])).collect()
}

/// The values of `column` in the rows of a CSV whose `flag` is true.
fn names_where(s: &Space, csv: &str, flag: &str, column: &str) -> Vec<String> {
    rows_where(s, csv, flag)
        .into_iter()
        .map(|r| r[column].clone())
        .collect()
}

fn choose(n: usize, k: usize) -> usize {
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

/// The combinations an example's `combinations` stage makes: C(active concepts, k_max).
fn combinations(s: &Space) -> usize {
    let k = yaml_number(s, "k_max");
    let active = rows_where(s, "data/1_raw/concepts/concepts_metadata.csv", "active").len();
    choose(active, k)
}

/// The number a field of the example's pipeline.yaml is set to (the first one, comments apart).
fn yaml_number(s: &Space, field: &str) -> usize {
    let yaml = s.read("pipeline.yaml");
    let value = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in pipeline.yaml"));
    value.split('#').next().unwrap().trim().parse().unwrap()
}

/// Which template directory rendered a prompt, told by the templates' first lines.
#[derive(Clone)]
struct Phases(Vec<(String, String)>);

impl Phases {
    /// A phase per directory of `templates/` (`templates/essay/*.txt`: "essay"), or per file
    /// directly in it (`templates/judge.txt`: "judge").
    fn of_templates(s: &Space) -> Phases {
        let root = s.path("templates");
        let mut sigs = Vec::new();
        for e in walkdir::WalkDir::new(&root) {
            let e = e.unwrap();
            if e.file_type().is_file() {
                let rel = e.path().strip_prefix(&root).unwrap();
                let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
                let phase = first.strip_suffix(".txt").unwrap_or(&first).to_owned();
                let text = std::fs::read_to_string(e.path()).unwrap();
                // what every prompt of the template starts with: its text before any variable
                let first = text.lines().next().unwrap();
                let literal = first.split("{{").next().unwrap().split("{%").next().unwrap();
                assert!(!literal.is_empty(), "{} starts with a variable", rel.display());
                sigs.push((phase, literal.to_owned()));
            }
        }
        Phases(sigs)
    }

    fn of(&self, prompt: &str) -> String {
        let found: Vec<&String> = self
            .0
            .iter()
            .filter(|(_, first)| prompt.starts_with(first.as_str()))
            .map(|(p, _)| p)
            .collect();
        assert!(
            found.len() == 1 || found.iter().all(|p| *p == found[0]),
            "ambiguous prompt: {prompt}"
        );
        found
            .first()
            .map(|p| (*p).clone())
            .unwrap_or_else(|| panic!("no template made: {prompt}"))
    }
}

/// The score the mock gives a judged prompt: 0-9, fixed by the prompt.
fn score_of(text: &str) -> u32 {
    u32::from_str_radix(&hash12(text)[..4], 16).unwrap() % 10
}

/// What the mock answers in each phase of the two-phase example: a draft revising its idea (the
/// last `<essay-idea>` counts), an essay inside `<essay>` with chatter around it, a judgment
/// ending in a score line.
fn two_phase_answer(phases: &Phases, r: &Request) -> Reply {
    let h = hash12(&r.prompt);
    match phases.of(&r.prompt).as_str() {
        "draft" => Reply::text(&format!(
            "Thinking.\n<essay-idea>a first thought</essay-idea>\nBetter:\n<essay-idea>IDEA-{h}</essay-idea>\nDone."
        )),
        "essay" => Reply::text(&format!(
            "Here it is.\n<essay>ESSAY-{h} by {}</essay>\nThanks.",
            r.model
        )),
        "evaluation" => Reply::text(&format!("Judged {h}.\nSCORE: {}", score_of(&r.prompt))),
        p => panic!("no answer for phase {p}"),
    }
}

/// Requests per (phase, model) the mock received since it was last cleared.
fn by_phase(mock: &MockServer, phases: &Phases) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for r in mock.requests() {
        *m.entry((phases.of(&r.prompt), r.model.clone())).or_default() += 1;
    }
    m
}

/// Every file under `rel` with its content.
fn contents(s: &Space, rel: &str) -> BTreeMap<String, String> {
    s.snapshot(rel)
        .into_iter()
        .map(|(k, (_, bytes))| (k, String::from_utf8(bytes).unwrap()))
        .collect()
}

/// A run that makes no request and reports nothing executed.
fn assert_nothing_to_do(s: &Space, mock: &MockServer) {
    mock.clear();
    let before = s.snapshot("data");
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 0, "a second run asked again:\n{out}");
    assert!(out.contains("done: executed 0, reused 0,"), "{out}");
    assert_eq!(changed(&before, &s.snapshot("data")), Vec::<String>::new());
}

struct TwoPhase {
    drafts: usize,
    essays: usize,
    evaluations: usize,
    expected: BTreeMap<(String, String), usize>,
}

/// What the two-phase example's CSVs imply: the requests per phase and model.
fn two_phase_counts(s: &Space) -> TwoPhase {
    let models = "data/1_raw/llm_models.csv";
    let combos = combinations(s);
    let draft_templates = rows_where(s, "data/1_raw/draft_templates.csv", "active").len();
    let essay_templates = rows_where(s, "data/1_raw/essay_templates.csv", "active").len();
    let rubrics = rows_where(s, "data/1_raw/evaluation_templates.csv", "active").len();
    let draft_models = names_where(s, models, "for_drafts", "model");
    let essay_models = names_where(s, models, "for_essays", "model");
    let judges = names_where(s, models, "for_evaluation", "model");
    let drafts = combos * draft_templates * draft_models.len();
    let essays = drafts * essay_templates * essay_models.len();
    let evaluations = essays * rubrics * judges.len();
    let mut expected = BTreeMap::new();
    for (phase, names, per_model) in [
        ("draft", &draft_models, combos * draft_templates),
        ("essay", &essay_models, drafts * essay_templates),
        ("evaluation", &judges, essays * rubrics),
    ] {
        for m in names.iter() {
            expected.insert((phase.to_owned(), m.clone()), per_model);
        }
    }
    TwoPhase {
        drafts,
        essays,
        evaluations,
        expected,
    }
}

/// Only the phases named, with the counts of `all`.
fn only(all: &BTreeMap<(String, String), usize>, phases: &[&str]) -> BTreeMap<(String, String), usize> {
    all.iter()
        .filter(|((p, _), _)| phases.contains(&p.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn two_phase_start() -> (Space, MockServer, Phases) {
    let s = Space::example("two-phase");
    let phases = Phases::of_templates(&s);
    let p = phases.clone();
    let mock = MockServer::start(move |r| two_phase_answer(&p, r));
    s.mock_env(&mock.base_url());
    (s, mock, phases)
}

#[test]
fn two_phase_runs_drafts_then_essays_then_judges() {
    let (s, mock, phases) = two_phase_start();
    let n = two_phase_counts(&s);
    assert!(n.drafts > 0 && n.essays > n.drafts, "the example should fan out");
    let out = s.ok(&["run"]);
    assert_eq!(by_phase(&mock, &phases), n.expected, "{out}");
    assert_eq!(counts(&out, "draft_response").0, n.drafts, "{out}");
    assert_eq!(counts(&out, "essay_response").0, n.essays, "{out}");
    assert_eq!(counts(&out, "evaluation_response").0, n.evaluations, "{out}");

    // the essay of each task was asked with its draft's last idea, never the first
    // each draft was asked about its combination's concepts, by name and description
    let names: BTreeMap<String, String> = read_csv(&s, "data/1_raw/concepts/concepts_metadata.csv")
        .into_iter()
        .map(|r| (r["concept_id"].clone(), r["name"].clone()))
        .collect();
    let members = read_csv(&s, "data/2_tasks/combinations.csv");
    for t in read_csv(&s, "data/2_tasks/draft_tasks.csv") {
        let prompt = s.read(&format!("data/3_drafts/prompts/{}.txt", t["draft_task_id"]));
        let mine: Vec<&String> = members
            .iter()
            .filter(|m| m["combo_id"] == t["combo_id"])
            .map(|m| &m["concept_id"])
            .collect();
        assert_eq!(mine.len(), yaml_number(&s, "k_max"));
        for c in mine {
            let description = s.read(&format!("data/1_raw/concepts/descriptions-paragraph/{c}.txt"));
            let line = format!("- {}: {}", names[c], description.trim());
            assert!(prompt.contains(&line), "{line:?} not in:\n{prompt}");
        }
    }
    let essay_tasks = read_csv(&s, "data/2_tasks/essay_tasks.csv");
    assert_eq!(essay_tasks.len(), n.essays);
    for t in &essay_tasks {
        let draft_prompt = s.read(&format!("data/3_drafts/prompts/{}.txt", t["draft_task_id"]));
        let idea = format!("IDEA-{}", hash12(&draft_prompt));
        assert_eq!(s.read(&format!("data/3_drafts/ideas/{}.txt", t["draft_task_id"])), idea);
        let prompt = s.read(&format!("data/4_essays/prompts/{}.txt", t["generation_task_id"]));
        assert!(prompt.contains(&idea), "{prompt}");
        assert!(!prompt.contains("a first thought"), "{prompt}");
    }
    // each judge read the essay alone, and each score is the one the judge gave
    let scores = read_csv(&s, "data/6_results/parsed_scores.csv");
    let tasks = read_csv(&s, "data/2_tasks/evaluation_tasks.csv");
    assert_eq!((scores.len(), tasks.len()), (n.evaluations, n.evaluations));
    for (t, row) in tasks.iter().zip(&scores) {
        let essay_prompt = s.read(&format!("data/4_essays/prompts/{}.txt", t["generation_task_id"]));
        let model = essay_tasks
            .iter()
            .find(|e| e["generation_task_id"] == t["generation_task_id"])
            .map(|e| e["generation_model_name"].clone())
            .unwrap();
        let essay = format!("ESSAY-{} by {model}", hash12(&essay_prompt));
        let prompt = s.read(&format!("data/5_evaluation/prompts/{}.txt", t["evaluation_task_id"]));
        assert!(prompt.contains(&format!("\n{essay}\n")), "{prompt}");
        assert!(
            !prompt.contains("<essay>") && !prompt.contains("Here it is."),
            "{prompt}"
        );
        assert_eq!(row["evaluation_template"], t["evaluation_template"]);
        assert_eq!(
            row["score"].parse::<f64>().unwrap(),
            score_of(&prompt) as f64,
            "{row:?}"
        );
        assert_eq!(row["error"], "");
    }
    let finals = read_csv(&s, "data/6_results/final_results.csv");
    assert!(!finals.is_empty());
    assert!(
        s.read("data/6_results/report.html")
            .contains(&essay_tasks[0]["generation_task_id"])
    );
    assert_nothing_to_do(&s, &mock);

    // deleted answers come back from the store byte for byte, their call records too
    let answers = contents(&s, "data/4_essays/responses");
    assert_eq!(answers.len(), 2 * n.essays, "an answer and its record per essay");
    std::fs::remove_dir_all(s.path("data/4_essays/responses")).unwrap();
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 0, "{out}");
    assert_eq!(counts(&out, "essay_response"), (0, n.essays, 0), "{out}");
    assert_eq!(contents(&s, "data/4_essays/responses"), answers);
}

#[test]
fn two_phase_an_essay_template_edit_asks_no_draft_again() {
    let (s, mock, phases) = two_phase_start();
    let n = two_phase_counts(&s);
    s.ok(&["run"]);
    let drafts_before = s.snapshot("data/3_drafts");

    mock.clear();
    s.edit(
        "templates/essay/essay-from-idea.txt",
        "Put the essay inside <essay> tags.",
        "Keep it short. Put the essay inside <essay> tags.",
    );
    let out = s.ok(&["run"]);
    assert_eq!(
        by_phase(&mock, &phases),
        only(&n.expected, &["essay", "evaluation"]),
        "{out}"
    );
    assert_eq!(counts(&out, "draft_response").0, 0, "{out}");
    assert_eq!(
        changed(&drafts_before, &s.snapshot("data/3_drafts")),
        Vec::<String>::new()
    );
    for t in read_csv(&s, "data/2_tasks/essay_tasks.csv") {
        let prompt = s.read(&format!("data/4_essays/prompts/{}.txt", t["generation_task_id"]));
        assert!(prompt.contains("Keep it short."), "{prompt}");
    }
    assert_nothing_to_do(&s, &mock);

    // a draft template edit changes every draft, so everything after it too
    mock.clear();
    s.edit(
        "templates/draft/brainstorm.txt",
        "Brainstorm several ideas",
        "Brainstorm a few ideas",
    );
    let out = s.ok(&["run"]);
    assert_eq!(by_phase(&mock, &phases), n.expected, "{out}");
    assert_nothing_to_do(&s, &mock);
}

/// What the mock answers in the replicates example: each sample of a generation differs (the
/// mock counts the identical requests of one task's replicates), each judgment ends in a score.
fn replicates_answer(phases: &Phases, r: &Request) -> Reply {
    let h = hash12(&r.prompt);
    match phases.of(&r.prompt).as_str() {
        "generation" => Reply::text(&format!("<essay>ESSAY-{h} sample {}</essay>", r.attempt)),
        "evaluation" => Reply::text(&format!("Judged.\nSCORE: {}", score_of(&r.prompt))),
        p => panic!("no answer for phase {p}"),
    }
}

#[test]
fn replicates_judges_every_sample_and_shows_the_spread() {
    let s = Space::example("replicates");
    let phases = Phases::of_templates(&s);
    let p = phases.clone();
    let mock = MockServer::start(move |r| replicates_answer(&p, r));
    s.mock_env(&mock.base_url());
    let models = "data/1_raw/llm_models.csv";
    let replicates = yaml_number(&s, "replicates");
    let templates = rows_where(&s, "data/1_raw/generation_templates.csv", "active").len();
    let generators = names_where(&s, models, "for_generation", "model");
    let judges = names_where(&s, models, "for_evaluation", "model");
    let per_generator = combinations(&s) * templates;
    let tasks = per_generator * generators.len();
    let rubrics = rows_where(&s, "data/1_raw/evaluation_templates.csv", "active").len();
    assert!(replicates > 1 && tasks > 1);
    let mut expected = BTreeMap::new();
    for m in &generators {
        expected.insert(("generation".to_owned(), m.clone()), per_generator * replicates);
    }
    for m in &judges {
        expected.insert(("evaluation".to_owned(), m.clone()), tasks * replicates * rubrics);
    }

    let out = s.ok(&["run"]);
    assert_eq!(by_phase(&mock, &phases), expected, "{out}");
    assert_eq!(counts(&out, "generation_response").0, tasks * replicates, "{out}");

    // N samples per task, ids `_run01`.., each a different answer
    let task_ids: Vec<String> = read_csv(&s, "data/2_tasks/generation_tasks.csv")
        .into_iter()
        .map(|r| r["generation_task_id"].clone())
        .collect();
    assert_eq!(task_ids.len(), tasks);
    for t in &task_ids {
        let mut samples: Vec<String> = (1..=replicates)
            .map(|i| s.read(&format!("data/3_generation/responses/{t}_run{i:02}.txt")))
            .collect();
        samples.sort();
        samples.dedup();
        assert_eq!(samples.len(), replicates, "{t}: {samples:?}");
    }
    assert!(
        !s.path(&format!(
            "data/3_generation/responses/{}_run{:02}.txt",
            task_ids[0],
            replicates + 1
        ))
        .exists()
    );

    // every sample judged once per rubric and judge, its replicate in the scores
    let scores = read_csv(&s, "data/5_results/parsed_scores.csv");
    let evaluations = read_csv(&s, "data/2_tasks/evaluation_tasks.csv");
    assert_eq!(scores.len(), tasks * replicates * rubrics * judges.len());
    assert_eq!(evaluations.len(), scores.len());
    for (e, row) in evaluations.iter().zip(&scores) {
        let replicate: usize = row["replicate"].parse().unwrap();
        assert!((1..=replicates).contains(&replicate), "{row:?}");
        assert_eq!(
            e["essay_id"],
            format!("{}_run{replicate:02}", row["generation_task_id"])
        );
        let essay = s.read(&format!("data/3_generation/essays/{}.txt", e["essay_id"]));
        let prompt = s.read(&format!("data/4_evaluation/prompts/{}.txt", e["evaluation_task_id"]));
        assert!(prompt.contains(&essay) && !prompt.contains("<essay>"), "{prompt}");
        assert_eq!(row["score"].parse::<f64>().unwrap(), score_of(&prompt) as f64);
    }

    // the spread table: one row per task, its samples' scores in replicate order
    let spread = read_csv(&s, "data/5_results/spread_across_replicates.csv");
    assert_eq!(spread.len(), tasks);
    for row in &spread {
        let mut mine: Vec<(usize, &str)> = scores
            .iter()
            .filter(|r| r["generation_task_id"] == row["generation_task_id"])
            .map(|r| (r["replicate"].parse().unwrap(), r["score"].as_str()))
            .collect();
        mine.sort_by_key(|(i, _)| *i);
        let cells: Vec<&str> = mine.iter().map(|(_, x)| *x).collect();
        let v: Vec<f64> = cells.iter().map(|x| x.parse().unwrap()).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
        assert_eq!(
            row["replicates"],
            (replicates * rubrics * judges.len()).to_string(),
            "{row:?}"
        );
        assert_eq!(row["scored"], v.len().to_string());
        assert_eq!(row["scores"], cells.join(" "), "{row:?}");
        assert_eq!(row["mean"], format!("{mean:.2}"), "{row:?}");
        assert_eq!(row["stdev"], format!("{:.2}", var.sqrt()), "{row:?}");
        assert_eq!(
            row["lowest"],
            format!("{:?}", v.iter().cloned().fold(f64::MAX, f64::min))
        );
        assert_eq!(
            row["highest"],
            format!("{:?}", v.iter().cloned().fold(f64::MIN, f64::max))
        );
    }
    assert_nothing_to_do(&s, &mock);
}

/// What the mock answers in the command-stage example: an answer naming its model, and a score
/// fixed by the question and the answer alone, so that rewording the judge's template asks every
/// judgment again but changes no score.
fn command_stage_answer(phases: &Phases, r: &Request) -> Reply {
    match phases.of(&r.prompt).as_str() {
        "answer" => Reply::text(&format!("ANSWER-{} from {}", hash12(&r.prompt), r.model)),
        "judge" => {
            let question = r.prompt.lines().next().unwrap();
            let answer = r.prompt.lines().find(|l| l.starts_with("ANSWER-")).unwrap();
            Reply::text(&format!("Fair.\nSCORE: {}", score_of(&format!("{question}\n{answer}"))))
        }
        p => panic!("no answer for phase {p}"),
    }
}

struct CommandStage {
    s: Space,
    mock: MockServer,
    phases: Phases,
    /// Requests per (phase, model) of a first run.
    expected: BTreeMap<(String, String), usize>,
}

fn command_stage() -> CommandStage {
    let s = Space::example("command-stage");
    let phases = Phases::of_templates(&s);
    let p = phases.clone();
    let mock = MockServer::start(move |r| command_stage_answer(&p, r));
    s.mock_env(&mock.base_url());
    let questions = read_csv(&s, "data/questions.csv").len();
    let answerers = names_where(&s, "data/models.csv", "answers", "model");
    let judges = names_where(&s, "data/models.csv", "judges", "model");
    let mut expected = BTreeMap::new();
    for m in &answerers {
        expected.insert(("answer".to_owned(), m.clone()), questions * judges.len());
    }
    for m in &judges {
        expected.insert(("judge".to_owned(), m.clone()), questions * answerers.len());
    }
    CommandStage {
        s,
        mock,
        phases,
        expected,
    }
}

/// by_model.csv as the script should write it from the scores table: per answering model, the
/// number of scores, their mean, lowest and highest.
fn by_model_expected(s: &Space, decimals: usize) -> String {
    let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in read_csv(s, "data/results/scores.csv") {
        by.entry(r["model"].clone())
            .or_default()
            .push(r["score"].parse().unwrap());
    }
    let mut out = String::from("model,answers_scored,mean,lowest,highest\n");
    for (model, v) in by {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let low = v.iter().cloned().fold(f64::MAX, f64::min);
        let high = v.iter().cloned().fold(f64::MIN, f64::max);
        out.push_str(&format!("{model},{},{mean:.decimals$},{low:?},{high:?}\n", v.len()));
    }
    out
}

/// Asserts that only `stage` executed something in a run's report.
fn only_executed(out: &str, stage: &str) {
    for line in out
        .lines()
        .filter(|l| l.contains(": executed ") && !l.starts_with("done:"))
    {
        let name = line.split_whitespace().next().unwrap();
        if name != stage {
            assert_eq!(counts(out, name).0, 0, "{name} executed:\n{out}");
        }
    }
    assert!(counts(out, stage).0 > 0, "{stage} did not run:\n{out}");
}

#[test]
fn command_stage_reruns_the_script_only_when_what_it_reads_changes() {
    let CommandStage {
        s,
        mock,
        phases,
        expected,
    } = command_stage();
    let out = s.ok(&["run"]);
    assert_eq!(by_phase(&mock, &phases), expected, "{out}");
    let scores = read_csv(&s, "data/results/scores.csv");
    assert_eq!(scores.len(), read_csv(&s, "data/tasks.csv").len());
    for r in &scores {
        let prompt = s.read(&format!("data/judge_prompts/{}.txt", r["task_id"]));
        let answer = s.read(&format!("data/answers/{}.txt", r["task_id"]));
        assert!(prompt.contains(&answer), "{prompt}");
        let question = prompt.lines().next().unwrap();
        let key = format!("{question}\n{answer}");
        assert_eq!(r["score"].parse::<f64>().unwrap(), score_of(&key) as f64, "{r:?}");
    }
    // each answer was asked with its question in the template
    let template = s.read("templates/answer.txt");
    for t in read_csv(&s, "data/tasks.csv") {
        let prompt = s.read(&format!("data/prompts/{}.txt", t["task_id"]));
        assert_eq!(prompt, template.trim_end().replace("{{ question }}", &t["question"]));
    }
    let first = s.read("data/results/by_model.csv");
    assert_eq!(first, by_model_expected(&s, 2));
    assert_nothing_to_do(&s, &mock);

    // the script changed: it alone runs again, no call is made
    let script = s.read("scripts/by_model.py");
    s.edit(
        "scripts/by_model.py",
        "{statistics.mean(s):.2f}",
        "{statistics.mean(s):.3f}",
    );
    let out = s.ok(&["run"]);
    assert_eq!(mock.count(), 0, "{out}");
    only_executed(&out, "by_model");
    assert_eq!(s.read("data/results/by_model.csv"), by_model_expected(&s, 3));
    assert_nothing_to_do(&s, &mock);

    // reverting the edit restores the first output without running the script
    s.write("scripts/by_model.py", &script);
    let out = s.ok(&["run"]);
    assert_eq!(counts(&out, "by_model"), (0, 1, 0), "{out}");
    assert_eq!(s.read("data/results/by_model.csv"), first);
    // and so does deleting it
    std::fs::remove_file(s.path("data/results/by_model.csv")).unwrap();
    let out = s.ok(&["run"]);
    assert_eq!(counts(&out, "by_model"), (0, 1, 0), "{out}");
    assert_eq!(s.read("data/results/by_model.csv"), first);
    assert_nothing_to_do(&s, &mock);

    // a reworded judge template asks every judgment again, but no score changes: the script
    // reads nothing new and does not run
    let results = s.snapshot("data/results");
    s.edit("templates/judge.txt", "Explain briefly", "Explain in a few words");
    let out = s.ok(&["run"]);
    assert_eq!(by_phase(&mock, &phases), only(&expected, &["judge"]), "{out}");
    assert_eq!(counts(&out, "by_model").0, 0, "{out}");
    assert_eq!(changed(&results, &s.snapshot("data/results")), Vec::<String>::new());

    // a new question text changes its answers' scores: the script runs again
    mock.clear();
    let questions = s.read("data/questions.csv");
    let q1 = questions.lines().nth(1).unwrap();
    s.edit("data/questions.csv", q1, &q1.replace('?', " today?"));
    let out = s.ok(&["run"]);
    let answerers = expected.keys().filter(|(p, _)| p == "answer").count();
    assert_eq!(
        mock.count(),
        2 * answerers,
        "an answer and a judgment per model:\n{out}"
    );
    assert_eq!(counts(&out, "by_model").0, 1, "{out}");
    assert_eq!(s.read("data/results/by_model.csv"), by_model_expected(&s, 2));
    assert_nothing_to_do(&s, &mock);
}

#[test]
fn command_stage_a_failing_script_fails_its_stage_and_leaves_no_half_written_output() {
    let CommandStage { s, mock, .. } = command_stage();
    s.ok(&["run"]);
    let good = s.read("data/results/by_model.csv");
    let script = s.read("scripts/by_model.py");
    // writes part of its output, then fails
    s.write(
        "scripts/by_model.py",
        "import sys\nopen(sys.argv[2], 'w').write('model,half\\n')\nprint('reading', sys.argv[1])\nsys.stderr.write('by_model.py: no column named score\\n')\nsys.exit(3)\n",
    );
    let r = s.run(&["run"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert_ne!(r.code, 2, "a failing command is no configuration error: {}", r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("by_model "))
        .unwrap_or_else(|| panic!("no line for the stage:\n{}", r.stdout));
    assert!(line.contains("failed 1"), "{line}");
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("by_model.py: no column named score"), "{all}");
    assert!(all.contains("exit status: 3"), "{all}");
    assert!(!all.contains("panicked"), "{all}");
    // the output is as it was before the failed run, and no record claims the half-written one
    assert_eq!(s.read("data/results/by_model.csv"), good);
    let status = s.ok(&["status", "by_model"]);
    let row: Vec<&str> = status
        .lines()
        .find(|l| l.starts_with("by_model "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[1..7],
        ["0", "1", "0", "0", "0", "0"],
        "stale, not edited:\n{status}"
    );
    // the next run tries again
    let r = s.run(&["run"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    // a script that exits 0 without writing its output fails too, whatever an earlier run left
    s.write("scripts/by_model.py", "print('nothing to do')\n");
    let r = s.run(&["run"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("exited 0 but did not write data/results/by_model.csv"),
        "{}",
        r.stdout
    );
    assert_eq!(s.read("data/results/by_model.csv"), good);
    // with the script fixed it succeeds
    s.write("scripts/by_model.py", &script);
    let out = s.ok(&["run"]);
    assert_eq!(s.read("data/results/by_model.csv"), good, "{out}");
    assert_eq!(mock.count(), read_csv(&s, "data/tasks.csv").len() * 2);

    // on a first run, a failing script leaves no output at all
    let CommandStage { s, mock: _mock, .. } = command_stage();
    s.write(
        "scripts/by_model.py",
        "import sys\nopen(sys.argv[2], 'w').write('model,half\\n')\nsys.exit(1)\n",
    );
    let r = s.run(&["run"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(!s.path("data/results/by_model.csv").exists());
    assert!(s.path("data/results/scores.csv").exists(), "what came before stays");
}

#[test]
fn the_pipeline_from_scratch_of_the_docs_runs_as_written() {
    let files = common::from_scratch_files();
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert!(names.contains(&"pipeline.yaml") && names.len() > 1, "{names:?}");
    let s = Space::empty();
    for (path, body) in &files {
        s.write(path, body);
    }
    // the files beside the pipeline are the example's it names
    let example = Space::example("command-stage");
    for (path, body) in files.iter().filter(|(p, _)| p != "pipeline.yaml") {
        assert_eq!(body, &example.read(path), "{path} differs from examples/command-stage/");
    }

    let phases = Phases::of_templates(&s);
    let p = phases.clone();
    let mock = MockServer::start(move |r| command_stage_answer(&p, r));
    s.mock_env(&mock.base_url());
    let out = s.ok(&["run"]);
    let answers = read_csv(&s, "data/tasks.csv").len();
    let questions = read_csv(&s, "data/questions.csv").len();
    let answerers = names_where(&s, "data/models.csv", "answers", "model").len();
    assert_eq!(answers, questions * answerers);
    let asked = by_phase(&mock, &phases);
    let count = |phase: &str| {
        asked
            .iter()
            .filter(|((p, _), _)| p == phase)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    assert_eq!((count("answer"), count("judge")), (answers, answers), "{out}");
    // what the text says the run does
    let doc = std::fs::read_to_string(common::repo().join("docs/pipeline.md")).unwrap();
    let words = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains(&format!("asks {answers} answers and {answers} judgments")));
    assert_eq!(s.read("data/results/by_model.csv"), by_model_expected(&s, 2));
    assert_eq!(read_csv(&s, "data/results/scores.csv").len(), answers);
    assert_nothing_to_do(&s, &mock);
}
