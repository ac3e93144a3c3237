//! The seed's analyses of the parsed scores (spec 4.13-4.19), computed the way pandas computed
//! them so that the tables are byte-identical: the same groups in the same order, the same
//! summation order (Kahan sums in `groupby().mean()`, numpy's pairwise sums in `Series.mean()`,
//! Welford in `groupby().std()`), numpy rounding, and pandas' column types (a count column
//! that meets a missing value is written `3.0`).
//!
//! Deliberate differences from the seed (spec 13, README): an empty table is a header-only CSV
//! with its full column list, "perfect" is the top of the evaluation template's declared range,
//! and `generation_scores_pivot` ends with `sum_scores`.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::table::{Table, write_csv};
use crate::seed::pyfmt::{float_repr, pandas_float, round_half_even};

/// One row of `parsed_scores.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreRow {
    pub combo_id: String,
    pub generation_template: String,
    pub generation_model: String,
    pub evaluation_template: String,
    pub evaluation_model: String,
    pub score: Option<f64>,
    pub error: Option<String>,
    pub evaluation_response_path: String,
}

pub const PARSED_SCORES_COLUMNS: [&str; 8] = [
    "combo_id",
    "generation_template",
    "generation_model",
    "evaluation_template",
    "evaluation_model",
    "score",
    "error",
    "evaluation_response_path",
];

impl ScoreRow {
    /// The row's cells as the seed writes them, without the path (the first 7 columns).
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.combo_id.clone(),
            self.generation_template.clone(),
            self.generation_model.clone(),
            self.evaluation_template.clone(),
            self.evaluation_model.clone(),
            self.score.map(float_repr).unwrap_or_default(),
            self.error.clone().unwrap_or_default(),
        ]
    }
}

/// `parsed_scores.csv` as the seed writes it (4.13).
pub fn parsed_scores_csv(rows: &[ScoreRow]) -> String {
    write_csv(
        &PARSED_SCORES_COLUMNS,
        rows.iter().map(|r| {
            let mut cells = r.cells();
            cells.push(r.evaluation_response_path.clone());
            cells
        }),
    )
}

/// Reads `parsed_scores.csv` back (scores exactly as written; the summaries apply pandas'
/// reading themselves).
pub fn read_parsed_scores(text: &str) -> Result<Vec<ScoreRow>, String> {
    let t = Table::parse("parsed_scores.csv", text).map_err(|d| d.to_string())?;
    let cols: Vec<usize> = PARSED_SCORES_COLUMNS
        .iter()
        .map(|c| t.require(c).map_err(|d| d.to_string()))
        .collect::<Result<_, _>>()?;
    t.rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let cell = |c: usize| t.get(row, cols[c]).to_owned();
            let score = match t.get(row, cols[5]) {
                "" => None,
                s => Some(
                    s.trim()
                        .parse::<f64>()
                        .map_err(|_| format!("parsed_scores.csv row {}: score {s:?} is not a number", i + 2))?,
                ),
            };
            let error = Some(cell(6)).filter(|e| !e.is_empty());
            Ok(ScoreRow {
                combo_id: cell(0),
                generation_template: cell(1),
                generation_model: cell(2),
                evaluation_template: cell(3),
                evaluation_model: cell(4),
                score,
                error,
                evaluation_response_path: cell(7),
            })
        })
        .collect()
}

/// What the summaries need beyond the scores.
pub struct Context<'a> {
    /// The top of an evaluation template's declared score range: a score equal to it is perfect.
    pub perfect: &'a dyn Fn(&str) -> f64,
    /// Whether any evaluation template is active (the seed's pivot is empty when none is).
    pub any_active_template: bool,
    /// Where the generation response of a row is (for `perfect_score_paths`).
    pub generation_response_path: &'a dyn Fn(&ScoreRow) -> String,
}

/// The six CSVs of the summaries, in the seed's format.
pub struct Tables {
    pub evaluator_agreement: String,
    pub variance: String,
    pub generation_pivot: String,
    pub final_results: String,
    pub perfect_paths: String,
    pub model_template_pivot: String,
}

pub fn tables(rows: &[ScoreRow], cx: &Context) -> Tables {
    // The seed's summaries read parsed_scores back from its CSV, through pandas' float reader.
    let scores: Vec<Option<f64>> = rows
        .iter()
        .map(|r| r.score.map(|s| pandas_float(&float_repr(s)).unwrap_or(s)))
        .collect();
    let valid: Vec<Valid> = rows
        .iter()
        .zip(&scores)
        .filter(|(r, _)| r.error.is_none())
        .filter_map(|(r, s)| Some(Valid { row: r, score: (*s)? }))
        .collect();
    Tables {
        evaluator_agreement: evaluator_agreement(&valid).csv(),
        variance: variance(&valid).csv(),
        generation_pivot: generation_pivot(&valid, cx.any_active_template).csv(),
        final_results: final_results(&valid, cx).csv(),
        perfect_paths: perfect_paths(rows, &scores, cx).csv(),
        model_template_pivot: model_template_pivot(&valid).csv(),
    }
}

// ---------------------------------------------------------------------------------------------
// A small typed frame, written like pandas `to_csv(index=False)`.

#[derive(Clone, Debug)]
enum V {
    S(String),
    I(i64),
    F(f64),
    Na,
}

fn f(x: f64) -> V {
    if x.is_nan() { V::Na } else { V::F(x) }
}

fn s(x: &str) -> V {
    if x.is_empty() { V::Na } else { V::S(x.to_owned()) }
}

struct Frame {
    columns: Vec<String>,
    rows: Vec<BTreeMap<String, V>>,
}

impl Frame {
    fn new<S: AsRef<str>>(columns: &[S]) -> Frame {
        Frame {
            columns: columns.iter().map(|c| c.as_ref().to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<(&str, V)>) {
        self.rows
            .push(row.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    }

    fn csv(&self) -> String {
        // A column holding a float or a missing value is a float column: its integers are
        // written as floats (`3.0`), as pandas does after a concat or a merge brings in NaN.
        let float_col: Vec<bool> = self
            .columns
            .iter()
            .map(|c| {
                self.rows
                    .iter()
                    .any(|r| matches!(r.get(c), None | Some(V::F(_) | V::Na)))
            })
            .collect();
        let header: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        write_csv(
            &header,
            self.rows.iter().map(|r| {
                self.columns
                    .iter()
                    .zip(&float_col)
                    .map(|(c, &float)| match r.get(c).unwrap_or(&V::Na) {
                        V::S(s) => s.clone(),
                        V::I(i) if float => float_repr(*i as f64),
                        V::I(i) => i.to_string(),
                        V::F(x) => float_repr(*x),
                        V::Na => String::new(),
                    })
                    .collect::<Vec<_>>()
            }),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// pandas' and numpy's arithmetic.

/// `groupby().mean()`: a Kahan-compensated sum divided by the count.
fn kahan_mean(xs: &[f64]) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for &x in xs {
        let y = x - c;
        let t = sum + y;
        c = t - sum - y;
        if c.is_nan() {
            c = 0.0;
        }
        sum = t;
    }
    sum / xs.len() as f64
}

/// `groupby().std()`: Welford's running variance, ddof 1.
fn welford_std(xs: &[f64]) -> f64 {
    let (mut mean, mut m2) = (0.0f64, 0.0f64);
    for (i, &x) in xs.iter().enumerate() {
        let old = mean;
        mean += (x - old) / (i + 1) as f64;
        m2 += (x - mean) * (x - old);
    }
    if xs.len() <= 1 {
        f64::NAN
    } else {
        (m2 / (xs.len() - 1) as f64).sqrt()
    }
}

/// numpy's pairwise summation (`np.add.reduce` on a contiguous float64 array).
fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, &x| acc + x)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[i..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// `Series.mean()` (nanops.nanmean).
fn series_mean(xs: &[f64]) -> f64 {
    np_sum(xs) / xs.len() as f64
}

/// `Series.std()` (nanops.nanvar, ddof 1, then the square root).
fn series_std(xs: &[f64]) -> f64 {
    if xs.len() <= 1 {
        return f64::NAN;
    }
    let avg = series_mean(xs);
    let sq: Vec<f64> = xs.iter().map(|x| (avg - x) * (avg - x)).collect();
    (np_sum(&sq) / (xs.len() - 1) as f64).sqrt()
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2] + v[n / 2 - 1]) / 2.0
    }
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn r(x: f64, n: i32) -> f64 {
    round_half_even(x, n)
}

/// The seed's agreement thresholds on a score range (4.14).
fn classify(range: f64) -> &'static str {
    if range <= 1.0 {
        "high_agreement"
    } else if range <= 2.0 {
        "moderate_agreement"
    } else if range <= 3.0 {
        "low_agreement"
    } else {
        "poor_agreement"
    }
}

// ---------------------------------------------------------------------------------------------
// Groups.

/// A row with a score and no error, the score as pandas read it back.
struct Valid<'a> {
    row: &'a ScoreRow,
    score: f64,
}

#[derive(Clone, Copy)]
enum Col {
    Combo,
    GenTemplate,
    GenModel,
    EvalTemplate,
    EvalModel,
}

impl Col {
    fn of(self, r: &ScoreRow) -> &str {
        match self {
            Col::Combo => &r.combo_id,
            Col::GenTemplate => &r.generation_template,
            Col::GenModel => &r.generation_model,
            Col::EvalTemplate => &r.evaluation_template,
            Col::EvalModel => &r.evaluation_model,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Col::Combo => "combo_id",
            Col::GenTemplate => "generation_template",
            Col::GenModel => "generation_model",
            Col::EvalTemplate => "evaluation_template",
            Col::EvalModel => "evaluation_model",
        }
    }
}

const ESSAY: [Col; 3] = [Col::Combo, Col::GenTemplate, Col::GenModel];

/// `groupby(cols)`: groups sorted by key (code point order), rows in their original order, and
/// rows with a missing key dropped.
fn group_by<'v, 'a>(valid: &'v [Valid<'a>], cols: &[Col]) -> BTreeMap<Vec<&'a str>, Vec<&'v Valid<'a>>> {
    let mut groups: BTreeMap<Vec<&'a str>, Vec<&'v Valid<'a>>> = BTreeMap::new();
    for v in valid {
        let key: Vec<&'a str> = cols.iter().map(|c| c.of(v.row)).collect();
        if key.iter().any(|k| k.is_empty()) {
            continue;
        }
        groups.entry(key).or_default().push(v);
    }
    groups
}

/// The distinct non-missing values of a column in a group, sorted (`nunique`, `sorted(unique)`).
fn distinct<'a>(g: &[&Valid<'a>], c: Col) -> BTreeSet<&'a str> {
    g.iter().map(|v| c.of(v.row)).filter(|x| !x.is_empty()).collect()
}

fn scores(g: &[&Valid]) -> Vec<f64> {
    g.iter().map(|v| v.score).collect()
}

fn key_cells(cols: &[Col], key: &[&str]) -> Vec<(&'static str, V)> {
    cols.iter().zip(key).map(|(c, k)| (c.name(), s(k))).collect()
}

// ---------------------------------------------------------------------------------------------
// The tables.

const AGREEMENT_COLUMNS: [&str; 14] = [
    "combo_id",
    "generation_template",
    "generation_model",
    "evaluator_count",
    "mean_score",
    "std_dev",
    "min_score",
    "max_score",
    "median_score",
    "score_range",
    "coefficient_of_variation",
    "agreement_classification",
    "relative_std_dev",
    "relative_range",
];

/// 4.14: per essay, how far its evaluators agree.
fn evaluator_agreement(valid: &[Valid]) -> Frame {
    let mut out = Frame::new(&AGREEMENT_COLUMNS);
    for (key, g) in group_by(valid, &ESSAY) {
        let xs = scores(&g);
        if xs.len() < 2 {
            continue;
        }
        let (mean, std, lo, hi) = (kahan_mean(&xs), welford_std(&xs), min(&xs), max(&xs));
        let range = hi - lo;
        let class = if std.is_nan() {
            "insufficient_data"
        } else {
            classify(range)
        };
        let mut row = key_cells(&ESSAY, &key);
        row.extend([
            ("evaluator_count", V::I(xs.len() as i64)),
            ("mean_score", f(mean)),
            ("std_dev", f(std)),
            ("min_score", f(lo)),
            ("max_score", f(hi)),
            ("median_score", f(median(&xs))),
            ("score_range", f(range)),
            ("coefficient_of_variation", f(std / mean)),
            ("agreement_classification", s(class)),
            ("relative_std_dev", f(std / 10.0)),
            ("relative_range", f(range / 10.0)),
        ]);
        out.push(row);
    }
    out
}

/// 4.15: the overall, per-evaluator-model and per-evaluation-template spread of each essay's
/// scores, concatenated as pandas does (a block's own columns exist only when it has rows).
fn variance(valid: &[Valid]) -> Frame {
    const OVERALL: [&str; 13] = [
        "combo_id",
        "generation_template",
        "generation_model",
        "total_evaluations",
        "mean_score",
        "std_dev",
        "min_score",
        "max_score",
        "num_templates",
        "num_models",
        "score_range",
        "coefficient_of_variation",
        "analysis_type",
    ];
    const TEMPLATE: [&str; 3] = ["eval_model", "template_evaluations", "templates_used"];
    const MODEL: [&str; 3] = ["eval_template", "model_evaluations", "models_used"];
    let mut out = Frame::new(&OVERALL);
    if valid.is_empty() {
        let mut all = Frame::new(&OVERALL);
        all.columns.extend(TEMPLATE.iter().chain(&MODEL).map(|c| c.to_string()));
        all.columns.push("stability_classification".into());
        return all;
    }
    for (key, g) in group_by(valid, &ESSAY) {
        let xs = scores(&g);
        let (mean, std) = (r(kahan_mean(&xs), 3), r(welford_std(&xs), 3));
        let (lo, hi) = (r(min(&xs), 3), r(max(&xs), 3));
        let mut row = key_cells(&ESSAY, &key);
        row.extend([
            ("total_evaluations", V::I(xs.len() as i64)),
            ("mean_score", f(mean)),
            ("std_dev", f(std)),
            ("min_score", f(lo)),
            ("max_score", f(hi)),
            ("num_templates", V::I(distinct(&g, Col::EvalTemplate).len() as i64)),
            ("num_models", V::I(distinct(&g, Col::EvalModel).len() as i64)),
            ("score_range", f(hi - lo)),
            ("coefficient_of_variation", f(std / mean)),
            ("analysis_type", s("overall_variance")),
        ]);
        let class = if (std / mean).is_nan() || xs.len() < 2 {
            "insufficient_data"
        } else {
            classify(hi - lo)
        };
        row.push(("stability_classification", s(class)));
        out.push(row);
    }
    // by: the column a block groups on beyond the essay; other: the one whose spread it shows.
    let blocks = [
        (
            Col::EvalModel,
            Col::EvalTemplate,
            TEMPLATE,
            "num_templates",
            "template_variance",
        ),
        (Col::EvalTemplate, Col::EvalModel, MODEL, "num_models", "model_variance"),
    ];
    for (by, other, names, num, kind) in blocks {
        let cols = [ESSAY[0], ESSAY[1], ESSAY[2], by];
        let mut any = false;
        for (key, g) in group_by(valid, &cols) {
            if g.len() < 2 {
                continue;
            }
            any = true;
            let xs = scores(&g);
            let (mean, std, lo, hi) = (series_mean(&xs), series_std(&xs), min(&xs), max(&xs));
            let used = distinct(&g, other);
            let cv = if mean != 0.0 { std / mean } else { 0.0 };
            let mut row = key_cells(&ESSAY, &key[..3]);
            row.extend([
                (names[0], s(key[3])),
                (names[1], V::I(g.len() as i64)),
                ("mean_score", f(mean)),
                ("std_dev", f(std)),
                ("min_score", f(lo)),
                ("max_score", f(hi)),
                (num, V::I(used.len() as i64)),
                (names[2], V::S(used.into_iter().collect::<Vec<_>>().join(", "))),
                ("analysis_type", s(kind)),
                ("score_range", f(hi - lo)),
                ("coefficient_of_variation", f(cv)),
                // The seed's `.get` chain finds total_evaluations (NaN here), so only the
                // coefficient decides.
                (
                    "stability_classification",
                    s(if cv.is_nan() {
                        "insufficient_data"
                    } else {
                        classify(hi - lo)
                    }),
                ),
            ]);
            out.push(row);
        }
        if any {
            out.columns.extend(names.iter().map(|c| c.to_string()));
        }
    }
    out.columns.push("stability_classification".into());
    out
}

fn essay_index() -> Vec<String> {
    ESSAY.iter().map(|c| c.name().to_owned()).collect()
}

/// A pivot of the valid scores: one row per essay, one column per `column(row)` value (sorted),
/// each cell `agg` of its scores.
fn pivot(valid: &[Valid], column: impl Fn(&ScoreRow) -> Option<String>, agg: impl Fn(&[f64]) -> f64) -> Frame {
    let mut cells: BTreeMap<Vec<&str>, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for (key, g) in group_by(valid, &ESSAY) {
        for v in g {
            if let Some(c) = column(v.row) {
                cells
                    .entry(key.clone())
                    .or_default()
                    .entry(c)
                    .or_default()
                    .push(v.score);
            }
        }
    }
    let names: BTreeSet<String> = cells.values().flat_map(|m| m.keys().cloned()).collect();
    let mut out = Frame::new(&essay_index());
    out.columns.extend(names.iter().cloned());
    for (key, m) in cells {
        let mut row = key_cells(&ESSAY, &key);
        for (c, xs) in &m {
            row.push((c.as_str(), f(agg(xs))));
        }
        out.push(row);
    }
    out
}

fn joined(a: &str, b: &str) -> Option<String> {
    (!a.is_empty() && !b.is_empty()).then(|| format!("{a}_{b}"))
}

/// 4.16: per essay, the first score of each evaluation template x model, rounded to 2, with
/// their sum (`sum_scores`, as the seed's next version) last.
fn generation_pivot(valid: &[Valid], any_active: bool) -> Frame {
    let mut cols = essay_index();
    cols.push("sum_scores".into());
    if !any_active || valid.is_empty() {
        return Frame::new(&cols);
    }
    let mut out = pivot(
        valid,
        |r| joined(&r.evaluation_template, &r.evaluation_model),
        |xs| r(xs[0], 2),
    );
    let evals: Vec<String> = out.columns[3..].to_vec();
    for row in &mut out.rows {
        let sum = evals.iter().fold(0.0, |acc, c| match row.get(c) {
            Some(V::F(x)) => acc + x,
            _ => acc,
        });
        row.insert("sum_scores".into(), f(r(sum, 2)));
    }
    out.columns.push("sum_scores".into());
    out
}

/// 4.19: per essay, the mean score of each evaluation model x template, unrounded.
fn model_template_pivot(valid: &[Valid]) -> Frame {
    if valid.is_empty() {
        return Frame::new(&essay_index());
    }
    pivot(
        valid,
        |r| joined(&r.evaluation_model, &r.evaluation_template),
        kahan_mean,
    )
}

const FINAL_COLUMNS: [&str; 15] = [
    "analysis_type",
    "generation_template",
    "generation_model",
    "evaluation_model",
    "combo_id",
    "count",
    "average",
    "std_dev",
    "min_score",
    "max_score",
    "perfect_scores",
    "perfect_score_pct",
    "high_scores_8plus",
    "high_score_pct",
    "low_scores_3minus",
];

/// 4.17: counts, means and the share of perfect, high and low scores, per generation template,
/// generation model, evaluation model, combination and pairs of them, then overall.
fn final_results(valid: &[Valid], cx: &Context) -> Frame {
    let mut out = Frame::new(&FINAL_COLUMNS);
    if valid.is_empty() {
        return out;
    }
    // the statistics of a group: mean and std as the group's pandas call computes them, the
    // percentages rounded to `pct` decimals
    let stats = |g: &[&Valid], mean: fn(&[f64]) -> f64, std: fn(&[f64]) -> f64, pct: i32| {
        let xs = scores(g);
        let n = xs.len();
        let count = |keep: &dyn Fn(&Valid) -> bool| g.iter().filter(|v| keep(v)).count();
        let perfect = count(&|v| v.score == (cx.perfect)(&v.row.evaluation_template));
        let high = count(&|v| v.score >= 8.0);
        let low = count(&|v| v.score <= 3.0);
        let share = |k: usize| f(r(k as f64 / n as f64 * 100.0, pct));
        vec![
            ("count", V::I(n as i64)),
            ("average", f(r(mean(&xs), 2))),
            ("std_dev", f(r(std(&xs), 2))),
            ("min_score", f(r(min(&xs), 2))),
            ("max_score", f(r(max(&xs), 2))),
            ("perfect_scores", V::I(perfect as i64)),
            ("perfect_score_pct", share(perfect)),
            ("high_scores_8plus", V::I(high as i64)),
            ("high_score_pct", share(high)),
            ("low_scores_3minus", V::I(low as i64)),
        ]
    };
    let blocks: [(&[Col], &str); 6] = [
        (&[Col::GenTemplate], "by_generation_template"),
        (&[Col::GenModel], "by_generation_model"),
        (&[Col::EvalModel], "by_evaluation_model"),
        (&[Col::Combo], "by_combo_id"),
        (&[Col::GenTemplate, Col::GenModel], "by_template_and_generation_model"),
        (&[Col::GenModel, Col::EvalModel], "by_generation_vs_evaluation_model"),
    ];
    for (cols, kind) in blocks {
        for (key, g) in group_by(valid, cols) {
            let mut row = vec![("analysis_type", s(kind))];
            row.extend(key_cells(cols, &key));
            // groupby: Kahan mean, Welford std, percentages to 1 decimal
            row.extend(stats(&g, kahan_mean, welford_std, 1));
            out.push(row);
        }
    }
    // the overall row: Series.mean/std, and the whole row rounded to 2
    let all: Vec<&Valid> = valid.iter().collect();
    let mut row = vec![("analysis_type", s("overall_statistics"))];
    row.extend(stats(&all, series_mean, series_std, 2));
    out.push(row);
    out
}

/// 4.18: every perfect score, in parsed_scores order, with the files it came from.
fn perfect_paths(rows: &[ScoreRow], scores: &[Option<f64>], cx: &Context) -> Frame {
    let mut out = Frame::new(&[
        "combo_id",
        "generation_template",
        "generation_model",
        "evaluation_model",
        "score",
        "generation_response_path",
        "evaluation_response_path",
        "notes",
    ]);
    for (row, score) in rows.iter().zip(scores) {
        let Some(score) = *score else { continue };
        if row.error.is_some() || score != (cx.perfect)(&row.evaluation_template) {
            continue;
        }
        out.push(vec![
            ("combo_id", s(&row.combo_id)),
            ("generation_template", s(&row.generation_template)),
            ("generation_model", s(&row.generation_model)),
            ("evaluation_model", s(&row.evaluation_model)),
            ("score", V::F(score)),
            ("generation_response_path", V::S((cx.generation_response_path)(row))),
            ("evaluation_response_path", s(&row.evaluation_response_path)),
            (
                "notes",
                V::S(format!(
                    "Perfect score from {} generation + {} evaluation",
                    row.generation_model, row.evaluation_model
                )),
            ),
        ]);
    }
    out
}

/// The six tables of the seed's analyses from the parsed scores, in the order of the
/// `summaries` kind's fields. `perfect` is the top of each evaluation template's range.
pub fn summary_tables(
    rows: &[ScoreRow],
    perfect: &BTreeMap<String, f64>,
    any_active: bool,
    generation_pattern: &str,
) -> [String; 6] {
    let top = |t: &str| {
        perfect
            .get(t)
            .copied()
            .unwrap_or(crate::seed::parsing::ScoreRange::SEED.max as f64)
    };
    let gen_path = |r: &ScoreRow| {
        generation_pattern.replace(
            "{id}",
            &format!("{}_{}_{}", r.combo_id, r.generation_template, r.generation_model),
        )
    };
    let t = tables(
        rows,
        &Context {
            perfect: &top,
            any_active_template: any_active,
            generation_response_path: &gen_path,
        },
    );
    [
        t.evaluator_agreement,
        t.variance,
        t.generation_pivot,
        t.final_results,
        t.perfect_paths,
        t.model_template_pivot,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_pairwise_sum_differs_from_a_running_sum_as_numpy_does() {
        // 0.1 sixteen times: numpy gives 1.6 (eight partial sums), a running sum gives
        // 1.6000000000000003.
        let xs = [0.1; 16];
        assert_eq!(float_repr(np_sum(&xs)), "1.6");
        assert_eq!(float_repr(xs.iter().sum::<f64>()), "1.6000000000000003");
    }

    #[test]
    fn statistics_as_pandas() {
        let xs = [8.0, 10.0, 8.25, 9.0, 8.666666666666666];
        assert_eq!(float_repr(kahan_mean(&xs)), "8.783333333333333");
        assert_eq!(float_repr(welford_std(&xs)), "0.7808471183414986");
        assert_eq!(median(&xs), 8.666666666666666);
        assert!(welford_std(&[3.0]).is_nan());
        assert!(series_std(&[3.0]).is_nan());
        assert_eq!(median(&[1.0, 4.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn int_columns_with_a_missing_value_are_written_as_floats() {
        let mut fr = Frame::new(&["a", "b", "c"]);
        fr.push(vec![("a", V::I(3)), ("b", V::I(2)), ("c", s("x"))]);
        fr.push(vec![("a", V::I(4)), ("c", s(""))]);
        assert_eq!(fr.csv(), "a,b,c\n3,2.0,x\n4,,\n");
    }
}
