//! The report page: HTML with inline CSS around the charts. Every string from the data is
//! escaped here; nothing of "now" is written.

use std::fmt::Write;

use super::{Essay, Grid, Mean, ReportData, Summary, charts};

const CSS: &str = "
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:#1c1c1c;background:#fff}
main{max-width:64rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.5rem 0}
h2{font-size:1.3rem;margin:2rem 0 .5rem;border-bottom:2px solid #234;padding-bottom:.2rem}
h3{font-size:1.05rem;margin:1.2rem 0 .4rem}
p{margin:.4rem 0}
nav a{margin-right:1rem}
a{color:#1a5490}
code{font:.85em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:break-word}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0}
th,td{border-bottom:1px solid #d8d8d8;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f7;font-weight:600}
th.group{text-align:center;border-bottom:none}
td.essay{min-width:15rem}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bad{color:#a33}
.dim{color:#666}
.missing{background:#fff6dc;border-left:4px solid #d9a400;padding:.5rem 1rem;margin:1rem 0}
.missing ul{margin:.3rem 0;padding-left:1.2rem}
figure{margin:1.5rem 0;break-inside:avoid}
figure svg{display:block;width:100%;height:auto}
figcaption{font-size:.9rem;color:#444;margin-top:.3rem}
@media (max-width:40rem){body{font-size:14px}main{padding:.6rem}th,td{padding:.25rem .35rem}}
@media print{body{font-size:10pt}main{max-width:none;padding:0}nav{display:none}
a{color:inherit;text-decoration:none}.scroll{overflow:visible}
h2{break-after:avoid}figure,tr{break-inside:avoid}th{background:none}}
";

pub fn render(d: &ReportData) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = match &d.run.offline {
        Some(_) => "DayDreaming experiment: results (offline, local model)",
        None => "DayDreaming experiment: results",
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>"
    );
    h.push_str(CSS);
    let _ = writeln!(h, "</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>");
    h.push_str(
        "<p>Can a pre-June-2025 LLM reinvent Gwern's Daydreaming Loop from a few concept hints? \
         Generator models wrote essays from combinations of concepts; evaluator models scored them. \
         Every number here comes from the results tables beside this page \
         (<code>data/5_parsing</code>, <code>data/6_summary</code>).</p>\n\
         <nav><a href=\"#run\">The run</a><a href=\"#headline\">Headline</a>\
         <a href=\"#charts\">Charts</a><a href=\"#essays\">Top essays</a></nav>\n",
    );
    if let Some(o) = &d.run.offline {
        offline(&mut h, o);
    }
    if !d.missing.is_empty() {
        h.push_str("<div class=\"missing\"><strong>What is missing</strong><ul>\n");
        for m in &d.missing {
            let _ = writeln!(h, "<li>{}</li>", inline_code(m));
        }
        h.push_str("</ul></div>\n");
    }
    run(&mut h, d);
    headline(&mut h, d);
    charts_section(&mut h, d);
    essays(&mut h, d);
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

/// Says, before any number, that the answers are the local model's and not the named models'.
fn offline(h: &mut String, o: &super::Offline) {
    let served: Vec<String> = o
        .served
        .iter()
        .map(|m| {
            let known = (m == crate::llm::local::DEFAULT_ALIAS).then_some(crate::llm::local::MODEL_DESCRIPTION);
            format!(
                "<code>{}</code>{}",
                esc(m),
                known.map(|k| format!(" ({k})")).unwrap_or_default()
            )
        })
        .collect();
    let named: Vec<String> = o.named.iter().map(|m| format!("<code>{}</code>", esc(m))).collect();
    let _ = writeln!(
        h,
        "<div class=\"missing\"><strong>Offline run.</strong> {} of {} answer{} came from the local model \
         {}, not from the models the tasks name ({}): the scores below say how that one small model \
         answered, nothing about those models. Set the provider's API key to run the real experiment.</div>",
        o.answers,
        o.of,
        plural(o.of),
        if served.is_empty() {
            "(unnamed)".to_owned()
        } else {
            served.join(", ")
        },
        named.join(", "),
    );
}

fn run(h: &mut String, d: &ReportData) {
    h.push_str("<section id=\"run\">\n<h2>The run</h2>\n");
    let r = &d.run;
    if r.stages.is_empty() {
        h.push_str("<p class=\"dim\">No run is recorded.</p>\n");
    } else {
        h.push_str(
            "<div class=\"scroll\"><table><thead><tr><th>stage</th><th class=\"n\">done</th>\
             <th class=\"n\">cached</th><th class=\"n\">failed</th><th>last ran</th></tr></thead><tbody>\n",
        );
        for s in &r.stages {
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n{}\">{}</td><td>{}</td></tr>",
                esc(&s.name),
                // the shipped pipeline names most stages after their kind
                if s.kind == s.name {
                    String::new()
                } else {
                    format!(" <span class=\"dim\">({})</span>", esc(&s.kind))
                },
                s.done,
                s.cached,
                if s.failed > 0 { " bad" } else { "" },
                s.failed,
                s.last_ran.as_deref().map_or("never".into(), esc),
            );
        }
        h.push_str("</tbody></table></div>\n");
    }
    if !r.in_memory.is_empty() {
        let names: Vec<String> = r.in_memory.iter().map(|n| format!("<code>{}</code>", esc(n))).collect();
        let _ = writeln!(
            h,
            "<p class=\"dim\">Read anew by every run, writing no file: {}.</p>",
            names.join(", ")
        );
    }
    // who answered, when it is not (only) the model asked
    let served_column = r.calls.iter().any(|c| c.served.iter().any(|s| *s != c.model));
    if !r.calls.is_empty() {
        let _ = write!(
            h,
            "<h3>LLM calls</h3>\n<div class=\"scroll\"><table><thead><tr><th>stage</th><th>model</th>{}",
            if served_column { "<th>served by</th>" } else { "" }
        );
        h.push_str(
            "<th class=\"n\">calls</th><th class=\"n\">failed</th><th class=\"n\">truncated</th>\
             <th class=\"n\">empty</th><th class=\"n\">tokens in</th><th class=\"n\">tokens out</th>\
             <th class=\"n\">cost recorded</th><th class=\"n\">cost estimated</th></tr></thead><tbody>\n",
        );
        for c in &r.calls {
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td><code>{}</code></td>{}<td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">${:.4}</td><td class=\"n\">${:.4}</td></tr>",
                esc(&c.stage),
                esc(&c.model),
                if served_column {
                    let s: Vec<String> = c.served.iter().map(|m| format!("<code>{}</code>", esc(m))).collect();
                    format!("<td>{}</td>", s.join(", "))
                } else {
                    String::new()
                },
                c.calls,
                c.failed,
                c.truncated,
                c.empty,
                thousands(c.prompt_tokens),
                thousands(c.completion_tokens),
                c.cost_recorded_usd,
                c.cost_estimated_usd,
            );
        }
        let sum = |f: &dyn Fn(&super::ModelCalls) -> f64| r.calls.iter().map(f).sum::<f64>();
        let _ = writeln!(
            h,
            "</tbody><tfoot><tr><th colspan=\"{}\">total</th><th class=\"n\">{}</th><th class=\"n\">{}</th>\
             <th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th>\
             <th class=\"n\">${:.4}</th><th class=\"n\">${:.4}</th></tr></tfoot></table></div>",
            if served_column { 3 } else { 2 },
            sum(&|c| c.calls as f64),
            sum(&|c| c.failed as f64),
            sum(&|c| c.truncated as f64),
            sum(&|c| c.empty as f64),
            thousands(r.calls.iter().map(|c| c.prompt_tokens).sum()),
            thousands(r.calls.iter().map(|c| c.completion_tokens).sum()),
            sum(&|c| c.cost_recorded_usd),
            sum(&|c| c.cost_estimated_usd),
        );
    }
    if !r.failures.is_empty() {
        h.push_str("<h3>Failed calls by cause</h3>\n<ul>\n");
        for (cause, n) in &r.failures {
            let _ = writeln!(h, "<li>{}: {n}</li>", esc(cause));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n");
}

fn headline(h: &mut String, d: &ReportData) {
    h.push_str(
        "<section id=\"headline\">\n<h2>Which combinations and generation templates led evaluators to \
         recognise the Daydreaming Loop?</h2>\n",
    );
    let _ = write!(
        h,
        "<p>{} evaluation{} in <code>parsed_scores.csv</code>, {} with a score.",
        d.evaluations,
        plural(d.evaluations),
        d.scored
    );
    if let Some(o) = &d.overall {
        let _ = write!(
            h,
            " Overall (<code>final_results.csv</code>): {} scores, mean {}, std {}, range {} to {}; \
             {} perfect ({}%), {} of 8 or more ({}%), {} of 3 or less.",
            num(o.count),
            num(o.average),
            num(o.std_dev),
            num(o.min),
            num(o.max),
            num(o.perfect),
            num(o.perfect_pct),
            num(o.high),
            num(o.high_pct),
            num(o.low)
        );
    }
    h.push_str("</p>\n<h3>Mean score per combination and generation template</h3>\n");
    if d.combos.rows.is_empty() {
        h.push_str("<p class=\"dim\">No score yet.</p>\n");
    } else {
        h.push_str(
            "<p class=\"dim\">Each cell: the mean of the valid scores in <code>parsed_scores.csv</code> \
             (how many). Totals and perfect scores: <code>final_results.csv</code>.</p>\n",
        );
        grid_table(h, &d.combos, "combination", d.score_top);
    }
    let _ = writeln!(
        h,
        "<h3>Perfect-score paths</h3>\n<p class=\"dim\">{} row{} of <code>perfect_score_paths.csv</code>: \
         a score at the top of the evaluation template's range.</p>",
        d.perfect.len(),
        plural(d.perfect.len())
    );
    if !d.perfect.is_empty() {
        h.push_str(
            "<div class=\"scroll\"><table><thead><tr><th>combination</th><th>generation template</th>\
             <th>generation model</th><th>evaluation model</th><th class=\"n\">score</th><th>texts</th>\
             </tr></thead><tbody>\n",
        );
        for p in &d.perfect {
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td>\
                 <td class=\"n\">{}</td><td><a href=\"{}\">response</a> · <a href=\"{}\">evaluation</a></td></tr>",
                esc(&p.combo_id),
                esc(&p.generation_template),
                esc(&p.generation_model),
                esc(&p.evaluation_model),
                num(p.score),
                esc(&p.generation_response),
                esc(&p.evaluation_response),
            );
        }
        h.push_str("</tbody></table></div>\n");
    }
    h.push_str("</section>\n");
}

/// A grid of means as a table whose cells are shaded by score, with the final_results totals.
fn grid_table(h: &mut String, g: &Grid, row_title: &str, top: f64) {
    let _ = write!(h, "<div class=\"scroll\"><table><thead><tr><th>{}</th>", esc(row_title));
    for c in &g.cols {
        let _ = write!(h, "<th class=\"n\">{}</th>", esc(c));
    }
    h.push_str("<th class=\"n\">all (final_results)</th><th class=\"n\">perfect</th></tr></thead><tbody>\n");
    let total = |h: &mut String, t: &Option<Summary>, tag: &str| match t {
        Some(t) => {
            let _ = write!(
                h,
                "<{tag} class=\"n\">{} ({})</{tag}><{tag} class=\"n\">{}</{tag}>",
                num(t.average),
                num(t.count),
                num(t.perfect)
            );
        }
        None => {
            let _ = write!(h, "<{tag} class=\"n\">–</{tag}><{tag} class=\"n\">–</{tag}>");
        }
    };
    for r in &g.rows {
        let _ = write!(h, "<tr><td><code>{}</code></td>", esc(&r.name));
        for c in &r.cells {
            mean_cell(h, c.as_ref(), top);
        }
        total(h, &r.total, "td");
        h.push_str("</tr>\n");
    }
    if g.col_totals.iter().any(Option::is_some) {
        h.push_str("</tbody><tfoot><tr><th>all (final_results)</th>");
        for t in &g.col_totals {
            let _ = write!(
                h,
                "<th class=\"n\">{}</th>",
                t.map_or("–".into(), |t| format!("{} ({})", num(t.average), num(t.count)))
            );
        }
        h.push_str("<th></th><th></th></tr></tfoot></table></div>\n");
    } else {
        h.push_str("</tbody></table></div>\n");
    }
}

fn mean_cell(h: &mut String, m: Option<&Mean>, top: f64) {
    match m {
        Some(m) => {
            let (bg, fg) = charts::score_colors(m.mean / top);
            let _ = write!(
                h,
                "<td class=\"n\" style=\"background:{bg};color:{fg}\">{} ({})</td>",
                num(m.mean),
                m.n
            );
        }
        None => h.push_str("<td class=\"n dim\">–</td>"),
    }
}

fn charts_section(h: &mut String, d: &ReportData) {
    h.push_str("<section id=\"charts\">\n<h2>Charts</h2>\n");
    let figure = |h: &mut String, name: &str, title: &str, chart: Option<Result<String, String>>, caption: &str| {
        let _ = write!(h, "<figure data-chart=\"{name}\">\n<h3>{}</h3>\n", esc(title));
        match chart {
            Some(Ok(svg)) => h.push_str(&svg),
            Some(Err(e)) => {
                let _ = write!(h, "<p class=\"bad\">The chart could not be drawn: {}</p>", esc(&e));
            }
            None => h.push_str("<p class=\"dim\">Nothing to show yet.</p>"),
        }
        let _ = writeln!(h, "\n<figcaption>{caption}</figcaption>\n</figure>");
    };
    let some_if = |empty: bool, f: &dyn Fn() -> Result<String, String>| (!empty).then(f);

    let model_totals: Vec<String> = d
        .heatmap
        .rows
        .iter()
        .filter_map(|r| {
            let t = r.total?;
            Some(format!(
                "<code>{}</code> {} ({})",
                esc(&r.name),
                num(t.average),
                num(t.count)
            ))
        })
        .collect();
    let mut caption = "The mean of the valid scores in <code>parsed_scores.csv</code> of each generation model \
                       under each evaluation template (how many in brackets)."
        .to_owned();
    if !model_totals.is_empty() {
        let _ = write!(
            caption,
            " Under every template (<code>final_results.csv</code>): {}.",
            model_totals.join(", ")
        );
    }
    figure(
        h,
        "heatmap",
        "Mean score: generation model x evaluation template",
        some_if(d.heatmap.rows.is_empty(), &|| charts::heatmap(&d.heatmap, d.score_top)),
        &caption,
    );
    figure(
        h,
        "distribution",
        "Score distribution per evaluator model",
        some_if(d.distribution.is_empty(), &|| charts::distribution(&d.distribution)),
        "How many valid scores of each evaluator model fall in each bin (bin k: k &lt;= score &lt; k + 1).",
    );
    if d.distribution.iter().any(|e| e.summary.is_some()) {
        h.push_str(
            "<div class=\"scroll\"><table><thead><tr><th>evaluator model (final_results)</th><th class=\"n\">scores</th>\
             <th class=\"n\">mean</th><th class=\"n\">std</th><th class=\"n\">perfect</th><th class=\"n\">8 or more</th>\
             <th class=\"n\">3 or less</th></tr></thead><tbody>\n",
        );
        for e in &d.distribution {
            let Some(s) = &e.summary else { continue };
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{} ({}%)</td><td class=\"n\">{} ({}%)</td><td class=\"n\">{}</td></tr>",
                esc(&e.model),
                num(s.count),
                num(s.average),
                num(s.std_dev),
                num(s.perfect),
                num(s.perfect_pct),
                num(s.high),
                num(s.high_pct),
                num(s.low)
            );
        }
        h.push_str("</tbody></table></div>\n");
    }
    figure(
        h,
        "agreement",
        "Evaluator agreement per generation response",
        some_if(d.agreement.is_empty(), &|| charts::agreement(&d.agreement, d.score_top)),
        "Per generation response with two scores or more (<code>evaluator_agreement_analysis.csv</code>): \
         the line spans its lowest to highest score, the large dot is the mean, the small rings are the scores.",
    );
    if !d.agreement.is_empty() {
        h.push_str(
            "<div class=\"scroll\"><table><thead><tr><th class=\"n\">#</th><th>combination</th>\
             <th>generation template</th><th>generation model</th><th class=\"n\">scores</th><th class=\"n\">mean</th>\
             <th class=\"n\">std</th><th class=\"n\">range</th><th>agreement</th></tr></thead><tbody>\n",
        );
        for (i, a) in d.agreement.iter().enumerate() {
            let _ = writeln!(
                h,
                "<tr><td class=\"n\">{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{} to {}</td>\
                 <td>{}</td></tr>",
                i + 1,
                esc(&a.combo_id),
                esc(&a.generation_template),
                esc(&a.generation_model),
                num(a.evaluator_count),
                num(a.mean),
                num(a.std_dev),
                num(a.min),
                num(a.max),
                esc(&a.classification.replace('_', " ")),
            );
        }
        h.push_str("</tbody></table></div>\n");
    }
    figure(
        h,
        "parse-failures",
        "Parse failures per evaluation template",
        some_if(d.parses.is_empty(), &|| charts::parses(&d.parses)),
        "Rows of <code>parsed_scores.csv</code> per evaluation template: scored, parse error \
         (<code>Parse error: ...</code>), and no response (<code>File not found</code>).",
    );
    h.push_str("</section>\n");
}

fn essays(h: &mut String, d: &ReportData) {
    h.push_str("<section id=\"essays\">\n<h2>Top essays</h2>\n");
    if d.essays.is_empty() {
        h.push_str("<p class=\"dim\">No essay has a score yet.</p>\n</section>\n");
        return;
    }
    let _ = writeln!(
        h,
        "<p class=\"dim\">The {} best of {} scored essay{} by mean score (<code>evaluator_agreement_analysis.csv</code>; \
         the score itself for an essay scored once). Cells: <code>generation_scores_pivot.csv</code>, each linked to \
         the evaluation response it came from.</p>",
        d.essays.len(),
        d.essays_scored,
        plural(d.essays_scored)
    );
    // evaluation templates over their evaluator models
    h.push_str(
        "<div class=\"scroll\"><table><thead><tr><th rowspan=\"2\" class=\"n\">#</th><th rowspan=\"2\">essay</th>\
         <th rowspan=\"2\" class=\"n\">mean</th><th rowspan=\"2\" class=\"n\">sum</th>",
    );
    for group in d.evaluators.chunk_by(|a, b| a.0 == b.0) {
        let _ = write!(
            h,
            "<th class=\"group\" colspan=\"{}\">{}</th>",
            group.len(),
            esc(&group[0].0)
        );
    }
    h.push_str("</tr><tr>");
    for (_, model) in &d.evaluators {
        let _ = write!(h, "<th class=\"n\"><code>{}</code></th>", esc(model));
    }
    h.push_str("</tr></thead><tbody>\n");
    for (i, e) in d.essays.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td class=\"n\">{}</td><td class=\"essay\"><code>{}</code><br>{} · <code>{}</code><br>{}</td>\
             <td class=\"n\">{} ({})</td><td class=\"n\">{}</td>",
            i + 1,
            esc(&e.combo_id),
            esc(&e.generation_template),
            esc(&e.generation_model),
            essay_links(e),
            num(e.mean),
            e.scored,
            e.sum_scores.map_or("–".into(), num),
        );
        for c in &e.cells {
            h.push_str("<td class=\"n\">");
            essay_cell(h, c);
            h.push_str("</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n</section>\n");
}

fn essay_links(e: &Essay) -> String {
    [("prompt", &e.prompt), ("essay", &e.essay), ("response", &e.response)]
        .iter()
        .filter_map(|(name, href)| {
            href.as_ref()
                .map(|href| format!("<a href=\"{}\">{name}</a>", esc(href)))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn essay_cell(h: &mut String, c: &super::EssayCell) {
    if c.responses.is_empty() {
        h.push_str("<span class=\"dim\">–</span>");
        return;
    }
    let label = c.score.map(num);
    for (i, (href, error)) in c.responses.iter().enumerate() {
        if i > 0 {
            h.push(' ');
        }
        let text = match (error, &label, c.responses.len()) {
            (Some(e), _, _) if e == "File not found" => "missing".to_owned(),
            (Some(_), _, _) => "parse error".to_owned(),
            (None, Some(l), 1) => l.clone(),
            (None, _, _) => format!("[{}]", i + 1),
        };
        let title = error
            .as_deref()
            .map(|e| format!(" title=\"{}\"", esc(e)))
            .unwrap_or_default();
        let class = if error.is_some() { " class=\"bad\"" } else { "" };
        match href {
            Some(href) => {
                let _ = write!(h, "<a href=\"{}\"{class}{title}>{text}</a>", esc(href));
            }
            None => {
                let _ = write!(h, "<span{class}{title}>{text}</span>");
            }
        }
    }
    if c.responses.len() > 1
        && let Some(l) = label
    {
        let _ = write!(h, " {l}");
    }
}

/// A number with at most two decimals and no trailing zeros; `–` for an empty cell (NaN).
pub fn num(x: f64) -> String {
    if x.is_nan() {
        return "–".into();
    }
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

/// `43280` as `43,280`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a sentence and shows its `backquoted` parts as code.
fn inline_code(s: &str) -> String {
    esc(s)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_escapes() {
        assert_eq!(num(6.8), "6.8");
        assert_eq!(num(10.0), "10");
        assert_eq!(num(8.166666666666666), "8.17");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(num(-0.001), "0");
        assert_eq!(
            (thousands(43280), thousands(999), thousands(1_000_000)),
            ("43,280".into(), "999".into(), "1,000,000".into())
        );
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(inline_code("`a<b` is missing"), "<code>a&lt;b</code> is missing");
    }
}
