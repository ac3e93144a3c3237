//! The report's data model on the committed results fixture: every number the page shows equals
//! the summary tables' (or, where no table holds it, what the rows of `parsed_scores.csv` give),
//! and the page renders, deterministically, with or without data.

mod report_fixture;

use std::collections::BTreeMap;
use std::path::Path;

use daydream::engine::table::Table;
use daydream::seed::report::{Links, ReportData, ReportInputs, RunSummary, render, report_data};
use report_fixture::{expected, fixture, inputs, run};

fn data() -> ReportData {
    report_data(&inputs(), run())
}

fn table(name: &str) -> Table {
    Table::parse(name, &expected(name)).unwrap()
}

/// A table's rows as maps from column name to cell.
fn rows(name: &str) -> Vec<BTreeMap<String, String>> {
    let t = table(name);
    t.rows
        .iter()
        .map(|r| t.headers.iter().cloned().zip(r.fields.iter().cloned()).collect())
        .collect()
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("{s:?} is not a number"))
}

/// The valid scores of parsed_scores.csv, read here without the report's code.
fn valid_scores() -> Vec<BTreeMap<String, String>> {
    rows("parsed_scores.csv")
        .into_iter()
        .filter(|r| r["error"].is_empty() && !r["score"].is_empty())
        .collect()
}

/// The scores of the rows whose columns hold these values.
fn scores_where(valid: &[BTreeMap<String, String>], key: [(&str, &String); 2]) -> Vec<f64> {
    valid
        .iter()
        .filter(|r| key.iter().all(|(column, value)| &&r[*column] == value))
        .map(|r| num(&r["score"]))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The final_results row of this analysis whose id columns hold `key`.
fn final_row(analysis: &str, column: &str, key: &str) -> BTreeMap<String, String> {
    rows("final_results.csv")
        .into_iter()
        .find(|r| r["analysis_type"] == analysis && r[column] == key)
        .unwrap_or_else(|| panic!("no {analysis} row for {key}"))
}

#[test]
fn overall_counts_are_final_results_overall_statistics() {
    let d = data();
    let o = d.overall.expect("final_results has overall_statistics");
    let row = final_row("overall_statistics", "analysis_type", "overall_statistics");
    assert_eq!(o.count, num(&row["count"]));
    assert_eq!(o.average, num(&row["average"]));
    assert_eq!(o.std_dev, num(&row["std_dev"]));
    assert_eq!(o.perfect, num(&row["perfect_scores"]));
    assert_eq!(o.perfect_pct, num(&row["perfect_score_pct"]));
    assert_eq!(o.high, num(&row["high_scores_8plus"]));
    assert_eq!(o.low, num(&row["low_scores_3minus"]));
    assert_eq!(d.evaluations, rows("parsed_scores.csv").len());
    assert_eq!(d.scored, valid_scores().len());
    assert_eq!(d.scored as f64, o.count);
    assert_eq!((d.evaluations, d.scored), (24, 14));
    assert!(d.missing.is_empty(), "{:?}", d.missing);
}

#[test]
fn heatmap_cells_are_the_means_of_parsed_scores_and_of_the_model_template_pivot() {
    let d = data();
    let valid = valid_scores();
    let pivot = rows("evaluation_model_template_pivot.csv");
    let eval_models: std::collections::BTreeSet<String> = valid.iter().map(|r| r["evaluation_model"].clone()).collect();
    let mut cells = 0;
    for row in &d.heatmap.rows {
        for (template, cell) in d.heatmap.cols.iter().zip(&row.cells) {
            let scores = scores_where(
                &valid,
                [("generation_model", &row.name), ("evaluation_template", template)],
            );
            // one replicate per evaluation: each pivot cell is one score
            let from_pivot: Vec<f64> = pivot
                .iter()
                .filter(|p| p["generation_model"] == row.name)
                .flat_map(|p| eval_models.iter().map(move |m| &p[&format!("{m}_{template}")]))
                .filter(|c| !c.is_empty())
                .map(|c| num(c))
                .collect();
            match cell {
                None => assert!(scores.is_empty() && from_pivot.is_empty()),
                Some(m) => {
                    cells += 1;
                    assert_eq!(m.n, scores.len());
                    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
                    let pivot_mean = from_pivot.iter().sum::<f64>() / from_pivot.len() as f64;
                    assert!(close(m.mean, mean), "{} {template}: {} vs {mean}", row.name, m.mean);
                    assert!(
                        close(m.mean, pivot_mean),
                        "{} {template}: {} vs pivot {pivot_mean}",
                        row.name,
                        m.mean
                    );
                }
            }
        }
        let total = row.total.expect("final_results has every generation model");
        let fr = final_row("by_generation_model", "generation_model", &row.name);
        assert_eq!(total.average, num(&fr["average"]));
        assert_eq!(total.count, num(&fr["count"]));
    }
    assert_eq!(d.heatmap.rows.len(), 2);
    assert_eq!(
        d.heatmap.cols,
        ["daydreaming-verification", "style-coherence", "style-coherence-v3"]
    );
    assert_eq!(cells, 6);
    // gemini_2.5_flash under style-coherence: 8.25 and 0.0 and 0.0
    let flash = d.heatmap.rows.iter().find(|r| r.name == "gemini_2.5_flash").unwrap();
    assert!(close(flash.cells[1].unwrap().mean, 8.25 / 3.0));
}

#[test]
fn headline_cells_and_totals_match_parsed_scores_and_final_results() {
    let d = data();
    let valid = valid_scores();
    for row in &d.combos.rows {
        for (template, cell) in d.combos.cols.iter().zip(&row.cells) {
            let scores = scores_where(&valid, [("combo_id", &row.name), ("generation_template", template)]);
            let m = cell.expect("every combination has scores");
            assert_eq!(m.n, scores.len());
            assert!(close(m.mean, scores.iter().sum::<f64>() / scores.len() as f64));
        }
        let total = row.total.unwrap();
        let fr = final_row("by_combo_id", "combo_id", &row.name);
        assert_eq!(
            (total.average, total.count, total.perfect),
            (num(&fr["average"]), num(&fr["count"]), num(&fr["perfect_scores"]))
        );
    }
    for (template, total) in d.combos.cols.iter().zip(&d.combos.col_totals) {
        let fr = final_row("by_generation_template", "generation_template", template);
        assert_eq!(total.unwrap().average, num(&fr["average"]));
    }
    assert_eq!(d.combos.rows.len(), 2);
}

#[test]
fn perfect_paths_are_perfect_score_paths_csv_with_links_from_the_page() {
    let d = data();
    let table = rows("perfect_score_paths.csv");
    assert_eq!(d.perfect.len(), table.len());
    assert_eq!(d.perfect.len(), 3);
    for (p, r) in d.perfect.iter().zip(&table) {
        assert_eq!(p.combo_id, r["combo_id"]);
        assert_eq!(p.generation_template, r["generation_template"]);
        assert_eq!(p.generation_model, r["generation_model"]);
        assert_eq!(p.evaluation_model, r["evaluation_model"]);
        assert_eq!(p.score, num(&r["score"]));
        let under_data = |path: &str| path.strip_prefix("data/").unwrap().to_owned();
        assert_eq!(
            p.generation_response,
            format!("../{}", under_data(&r["generation_response_path"]))
        );
        assert_eq!(
            p.evaluation_response,
            format!("../{}", under_data(&r["evaluation_response_path"]))
        );
    }
}

#[test]
fn distribution_counts_every_valid_score_once_per_evaluator() {
    let d = data();
    assert_eq!(
        d.distribution.iter().map(|e| e.model.as_str()).collect::<Vec<_>>(),
        ["gemini_25_pro", "sonnet-4"]
    );
    for e in &d.distribution {
        let fr = final_row("by_evaluation_model", "evaluation_model", &e.model);
        let summary = e.summary.unwrap();
        assert_eq!(summary.count, num(&fr["count"]));
        assert_eq!(summary.average, num(&fr["average"]));
        assert_eq!(e.bins.iter().sum::<usize>() as f64, summary.count);
        assert_eq!(e.bins.len(), 11, "bins 0 to 10");
        for (k, n) in e.bins.iter().enumerate() {
            let in_bin = valid_scores()
                .iter()
                .filter(|r| r["evaluation_model"] == e.model)
                .filter(|r| (num(&r["score"]).floor() as usize).min(10) == k)
                .count();
            assert_eq!(*n, in_bin, "{} bin {k}", e.model);
        }
    }
}

#[test]
fn agreement_is_evaluator_agreement_analysis_with_its_scores() {
    let d = data();
    let table = rows("evaluator_agreement_analysis.csv");
    assert_eq!(d.agreement.len(), table.len());
    for (a, r) in d.agreement.iter().zip(&table) {
        assert_eq!(a.combo_id, r["combo_id"]);
        assert_eq!(a.generation_model, r["generation_model"]);
        assert_eq!(a.mean, num(&r["mean_score"]));
        assert_eq!(a.std_dev, num(&r["std_dev"]));
        assert_eq!((a.min, a.max), (num(&r["min_score"]), num(&r["max_score"])));
        assert_eq!(a.range, num(&r["score_range"]));
        assert_eq!(a.classification, r["agreement_classification"]);
        assert_eq!(a.scores.len() as f64, num(&r["evaluator_count"]));
        let lowest = a.scores.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = a.scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!((lowest, highest), (a.min, a.max));
    }
}

#[test]
fn parse_failures_per_template_add_up_to_parsed_scores() {
    let d = data();
    let all = rows("parsed_scores.csv");
    for p in &d.parses {
        let of: Vec<_> = all.iter().filter(|r| r["evaluation_template"] == p.template).collect();
        let missing = of.iter().filter(|r| r["error"] == "File not found").count();
        let unparseable = of.iter().filter(|r| r["error"].starts_with("Parse error")).count();
        assert_eq!(
            (p.scored, p.unparseable, p.missing),
            (of.len() - missing - unparseable, unparseable, missing)
        );
    }
    let dv = &d.parses[0];
    assert_eq!(
        (dv.template.as_str(), dv.scored, dv.unparseable, dv.missing),
        ("daydreaming-verification", 4, 1, 3)
    );
    assert_eq!(d.parses.iter().map(|p| p.scored).sum::<usize>(), 14);
}

#[test]
fn top_essays_show_the_generation_pivot_and_link_every_evaluation() {
    let d = data();
    assert_eq!(d.essays_scored, 4);
    let order: Vec<(&str, &str)> = d
        .essays
        .iter()
        .map(|e| (e.combo_id.as_str(), e.generation_model.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("combo_v1_f0c9d41797ca", "gemini_2.5_flash"), // 8.78 (agreement table)
            ("combo_v1_13c725cf02fa", "deepseek_r1_p"),    // 8.17
            ("combo_v1_f0c9d41797ca", "deepseek_r1_p"),    // 2.33, its one score
            ("combo_v1_13c725cf02fa", "gemini_2.5_flash"), // 0.0
        ]
    );
    let agreement = rows("evaluator_agreement_analysis.csv");
    let pivot = rows("generation_scores_pivot.csv");
    // where a link from data/6_summary/report.html leads (the fixture has no 6_summary directory)
    let follow = |href: &str| {
        let mut path = fixture().join("data/6_summary");
        for part in href.split('/') {
            if part == ".." {
                path.pop();
            } else {
                path.push(part);
            }
        }
        path
    };
    for e in &d.essays {
        let key =
            |r: &BTreeMap<String, String>| r["combo_id"] == e.combo_id && r["generation_model"] == e.generation_model;
        match agreement.iter().find(|r| key(r)) {
            Some(r) => assert_eq!(e.mean, num(&r["mean_score"])),
            None => assert_eq!(e.scored, 1),
        }
        let p = pivot.iter().find(|r| key(r)).unwrap();
        assert_eq!(e.sum_scores, Some(num(&p["sum_scores"])));
        for ((template, model), cell) in d.evaluators.iter().zip(&e.cells) {
            let in_pivot = &p[&format!("{template}_{model}")];
            assert_eq!(
                cell.score,
                (!in_pivot.is_empty()).then(|| num(in_pivot)),
                "{template} {model}"
            );
            for (href, error) in &cell.responses {
                match href {
                    // every linked evaluation response exists where the page's link leads
                    Some(href) => assert!(follow(href).is_file(), "{href}"),
                    None => assert_eq!(error.as_deref(), Some("File not found")),
                }
            }
        }
        let id = format!("{}_{}_{}", e.combo_id, e.generation_template, e.generation_model);
        assert_eq!(
            e.prompt.as_deref(),
            Some(format!("../3_generation/generation_prompts/{id}.txt").as_str())
        );
        assert_eq!(
            e.essay.as_deref(),
            Some(format!("../3_generation/parsed_generation_responses/{id}.txt").as_str())
        );
    }
}

#[test]
fn the_page_is_deterministic_and_holds_every_section() {
    let page = render(&data());
    assert_eq!(page, render(&data()), "the same tables give the same bytes");
    for needle in [
        "<meta name=\"viewport\"",
        "id=\"run\"",
        "id=\"headline\"",
        "id=\"charts\"",
        "id=\"essays\"",
        "data-chart=\"heatmap\"",
        "data-chart=\"distribution\"",
        "data-chart=\"agreement\"",
        "data-chart=\"parse-failures\"",
        "8.78 (5)",
        "<code>deepseek_r1_p</code> 7.33 (7)",
        "timeout: 4",
    ] {
        assert!(page.contains(needle), "{needle} missing");
    }
    // sections in the order
    let at = |s: &str| page.find(s).unwrap();
    assert!(at("id=\"run\"") < at("id=\"headline\""));
    assert!(at("id=\"headline\"") < at("id=\"charts\""));
    assert!(at("id=\"charts\"") < at("id=\"essays\""));
    assert_eq!(page.matches("<svg").count(), 4);
    assert!(!page.contains("<script") && !page.contains("https://"));
    let without_namespaces = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_namespaces.contains("http://"));
    // the legend's text is the browser's to render: no font is embedded
    assert!(!page.contains("@font-face") && !page.contains("<image"));
}

#[test]
fn strings_from_the_data_are_escaped() {
    let mut i = inputs();
    let scores = i
        .parsed_scores
        .take()
        .unwrap()
        .replace("combo_v1_13c725cf02fa", "<script>alert(1)</script>");
    i.parsed_scores = Some(scores);
    let page = render(&report_data(&i, run()));
    assert!(!page.contains("<script>"), "a combo id reached the page unescaped");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn with_no_tables_the_page_says_what_is_missing() {
    let d = report_data(&ReportInputs::default(), RunSummary::default());
    assert_eq!((d.evaluations, d.scored), (0, 0));
    let page = render(&d);
    assert!(page.contains("What is missing"));
    for needle in [
        "No run is recorded",
        "<code>parsed_scores.csv</code> does not exist",
        "<code>final_results.csv</code> does not exist",
        "<code>evaluator_agreement_analysis.csv</code> does not exist",
        "No essay has a score yet.",
    ] {
        assert!(page.contains(needle), "{needle} missing");
    }
    assert_eq!(page.matches("Nothing to show yet.").count(), 4, "one per chart");
    assert!(!page.contains("<svg"));
}

#[test]
fn with_header_only_tables_the_page_says_nothing_is_scored_yet() {
    let header = |name: &str| Some(expected(name).lines().next().unwrap().to_owned() + "\n");
    let i = ReportInputs {
        parsed_scores: header("parsed_scores.csv"),
        final_results: header("final_results.csv"),
        generation_pivot: header("generation_scores_pivot.csv"),
        perfect_paths: header("perfect_score_paths.csv"),
        evaluator_agreement: header("evaluator_agreement_analysis.csv"),
        links: Links::default(),
    };
    let d = report_data(&i, run());
    assert!(d.overall.is_none() && d.essays.is_empty() && d.heatmap.rows.is_empty());
    let page = render(&d);
    assert!(
        page.contains("holds no score yet (0 evaluation rows, none scored)"),
        "{:?}",
        d.missing
    );
    assert!(page.contains("0 rows of <code>perfect_score_paths.csv</code>"));
    assert!(page.contains("data-chart=\"heatmap\""));

    // evaluations that all failed: the parse-failure chart still shows them
    let failed: String = expected("parsed_scores.csv")
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.contains("File not found"))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let d = report_data(
        &ReportInputs {
            parsed_scores: Some(failed),
            ..i
        },
        run(),
    );
    assert_eq!((d.evaluations, d.scored), (6, 0));
    assert_eq!(d.parses.iter().map(|p| p.missing).sum::<usize>(), 6);
    assert_eq!(render(&d).matches("<svg").count(), 1);
}

#[test]
fn unreadable_tables_become_notes() {
    let mut i = inputs();
    i.final_results = Some("a,b\n1,2,3\n".into());
    let d = report_data(&i, run());
    assert!(d.overall.is_none());
    assert!(
        d.missing
            .iter()
            .any(|m| m.contains("`final_results.csv` could not be read")),
        "{:?}",
        d.missing
    );
    assert!(!d.heatmap.rows.is_empty(), "the other tables are still shown");
    assert!(Path::new(&fixture()).is_dir());
}
