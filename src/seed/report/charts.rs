//! The report's charts, drawn by plotters' SVG backend into strings that the page inlines.
//! Text is left to the browser (`<text>` elements): plotters only estimates its size to lay out
//! the axes, so no font is read or embedded. Each chart is sized to its content and scaled down
//! by the page's CSS on a narrow screen.

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue::{self, CenterOf, Exact, Last};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::html::{esc, num};
use super::{Agreement, EvaluatorScores, Grid, TemplateParses};

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

/// plotters writes a font of size s as `font-size` s / 1.24: this is 13.7 px.
const FONT: (&str, u32) = ("sans-serif", 17);
/// Okabe-Ito: told apart with every kind of colour blindness.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
];
const GRID_LINE: RGBColor = RGBColor(225, 225, 225);

/// Draws a chart of `w` x `h` pixels into an SVG string.
fn svg(w: u32, h: u32, label: &str, draw: impl FnOnce(&Area) -> Drawn) -> Result<String, String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    let attrs = format!(
        "<svg role=\"img\" aria-label=\"{}\" style=\"max-width:{w}px\" ",
        esc(label)
    );
    Ok(buf.replacen("<svg ", &attrs, 1))
}

/// A chart with room for the axis labels: `y_area` pixels for those left of the plot.
fn chart_on<'a, 'b>(root: &'a Area<'b>, y_area: u32) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .margin(10)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(y_area);
    builder
}

/// Pixels for the widest of these labels at [`FONT`]'s size.
fn label_width<'a>(labels: impl Iterator<Item = &'a str>) -> u32 {
    labels.map(|l| l.chars().count() as u32 * 9).max().unwrap_or(0) + 16
}

/// `n` categories on a segmented axis: segment `i` runs from `edge(i)` to `edge(i + 1)`.
fn edge(i: usize, n: usize) -> SegmentValue<i32> {
    if i >= n { Last } else { Exact(i as i32) }
}

fn name_of(v: &SegmentValue<i32>, names: &[&str]) -> String {
    match v {
        CenterOf(i) => names.get(*i as usize).map_or(String::new(), |s| (*s).to_owned()),
        _ => String::new(),
    }
}

/// Background and text colours for a score at `t` of the top (a light-to-dark blue ramp).
pub fn score_colors(t: f64) -> (String, &'static str) {
    let RGBColor(r, g, b) = score_rgb(t);
    (
        format!("#{r:02x}{g:02x}{b:02x}"),
        if t > 0.55 { "#fff" } else { "#111" },
    )
}

fn score_rgb(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (247.0, 251.0, 255.0),
        (198.0, 219.0, 239.0),
        (107.0, 174.0, 214.0),
        (33.0, 113.0, 181.0),
        (8.0, 48.0, 107.0),
    ];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Rows of the grid top down, columns left to right, each cell shaded by its mean.
pub fn heatmap(g: &Grid, top: f64) -> Result<String, String> {
    let (nx, ny) = (g.cols.len(), g.rows.len());
    let cols: Vec<&str> = g.cols.iter().map(String::as_str).collect();
    let rows: Vec<&str> = g.rows.iter().rev().map(|r| r.name.as_str()).collect();
    let y_area = label_width(rows.iter().copied());
    let cell = label_width(cols.iter().copied()).max(96);
    let (w, h) = (y_area + 30 + cell * nx as u32, 70 + 46 * ny as u32);
    svg(w, h, "heatmap of mean scores", |root| {
        let mut chart = chart_on(root, y_area)
            .build_cartesian_2d((0..nx as i32 - 1).into_segmented(), (0..ny as i32 - 1).into_segmented())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nx)
            .y_labels(ny)
            .label_style(FONT)
            .x_label_formatter(&|v| name_of(v, &cols))
            .y_label_formatter(&|v| name_of(v, &rows))
            .draw()?;
        for (j, row) in g.rows.iter().enumerate() {
            let y = ny - 1 - j;
            for (i, m) in row.cells.iter().enumerate() {
                let Some(m) = m else { continue };
                let corners = [(edge(i, nx), edge(y, ny)), (edge(i + 1, nx), edge(y + 1, ny))];
                let mut cell = Rectangle::new(corners, score_rgb(m.mean / top).filled());
                cell.set_margin(1, 1, 1, 1);
                chart.draw_series([cell])?;
                let fg = if m.mean / top > 0.55 { WHITE } else { BLACK };
                let style = TextStyle::from(FONT.into_font())
                    .color(&fg)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                let at = (CenterOf(i as i32), CenterOf(y as i32));
                chart.draw_series([Text::new(format!("{} ({})", num(m.mean), m.n), at, style)])?;
            }
        }
        Ok(())
    })
}

/// One bar per evaluator model in each integer bin of the score.
pub fn distribution(evaluators: &[EvaluatorScores]) -> Result<String, String> {
    let bins = evaluators.first().map_or(0, |e| e.bins.len());
    let most = evaluators.iter().flat_map(|e| &e.bins).copied().max().unwrap_or(0) as i32;
    let (w, h) = (60 + 56 * bins as u32, 320);
    svg(w, h, "score distribution per evaluator model", |root| {
        let mut chart = chart_on(root, 40).build_cartesian_2d(-0.5..bins as f64 - 0.5, 0..most + most / 2 + 2)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .bold_line_style(GRID_LINE)
            .light_line_style(WHITE)
            .x_labels(bins)
            .y_labels((most + 2).min(11) as usize)
            .label_style(FONT)
            .axis_desc_style(FONT)
            .x_desc("score")
            .y_desc("scores")
            .x_label_formatter(&|x| {
                let r = x.round();
                if (x - r).abs() < 1e-6 {
                    format!("{r}")
                } else {
                    String::new()
                }
            })
            .draw()?;
        let width = 0.8 / evaluators.len() as f64;
        for (k, e) in evaluators.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let x0 = |i: usize| i as f64 - 0.4 + k as f64 * width;
            chart
                .draw_series(
                    e.bins
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| **n > 0)
                        .map(|(i, n)| Rectangle::new([(x0(i), 0), (x0(i) + width, *n as i32)], color.filled())),
                )?
                .label(e.model.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

fn legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    at: SeriesLabelPosition,
) -> Drawn {
    chart
        .configure_series_labels()
        .position(at)
        .label_font(FONT)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

/// Per generation response (numbered as the table below the chart): its scores, their range and
/// mean.
pub fn agreement(rows: &[Agreement], top: f64) -> Result<String, String> {
    let n = rows.len();
    let names: Vec<String> = (1..=n).rev().map(|i| format!("#{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (w, h) = (680, 70 + 30 * n as u32);
    svg(w, h, "evaluator agreement per generation response", |root| {
        let mut chart = chart_on(root, 44).build_cartesian_2d(0.0..top, (0..n as i32 - 1).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(GRID_LINE)
            .light_line_style(WHITE)
            .x_labels(top as usize + 1)
            .y_labels(n)
            .label_style(FONT)
            .axis_desc_style(FONT)
            .x_desc("score")
            .x_label_formatter(&|x| num(*x))
            .y_label_formatter(&|v| name_of(v, &names))
            .draw()?;
        for (j, a) in rows.iter().enumerate() {
            let y = CenterOf((n - 1 - j) as i32);
            let color = PALETTE[0];
            chart.draw_series([PathElement::new(
                [(a.min, y.clone()), (a.max, y.clone())],
                color.mix(0.5).stroke_width(4),
            )])?;
            chart.draw_series(
                a.scores
                    .iter()
                    .map(|s| Circle::new((*s, y.clone()), 4, BLACK.stroke_width(1))),
            )?;
            chart.draw_series([Circle::new((a.mean, y), 6, PALETTE[5].filled())])?;
        }
        Ok(())
    })
}

/// Per evaluation template, its rows of `parsed_scores.csv` stacked: scored, unparseable, missing.
pub fn parses(templates: &[TemplateParses]) -> Result<String, String> {
    let n = templates.len();
    let names: Vec<&str> = templates.iter().rev().map(|t| t.template.as_str()).collect();
    let most = templates
        .iter()
        .map(|t| t.scored + t.unparseable + t.missing)
        .max()
        .unwrap_or(0) as i32;
    let y_area = label_width(names.iter().copied());
    let (w, h) = ((y_area + 500).max(640), 110 + 40 * n as u32);
    type Kind = (&'static str, RGBColor, fn(&TemplateParses) -> usize);
    let kinds: [Kind; 3] = [
        ("scored", PALETTE[2], |t| t.scored),
        ("parse error", PALETTE[5], |t| t.unparseable),
        ("no response", RGBColor(160, 160, 160), |t| t.missing),
    ];
    svg(w, h, "parse failures per evaluation template", |root| {
        let mut chart =
            chart_on(root, y_area).build_cartesian_2d(0..most + most / 2 + 1, (0..n as i32 - 1).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(GRID_LINE)
            .light_line_style(WHITE)
            .x_labels(11)
            .y_labels(n)
            .label_style(FONT)
            .axis_desc_style(FONT)
            .x_desc("evaluation rows")
            .y_label_formatter(&|v| name_of(v, &names))
            .draw()?;
        for (name, color, count) in kinds {
            let bars = templates
                .iter()
                .enumerate()
                .filter(|(_, t)| count(t) > 0)
                .map(|(j, t)| {
                    let y = n - 1 - j;
                    // the kinds before this one, stacked to its left
                    let start: usize = kinds.iter().take_while(|k| k.0 != name).map(|k| (k.2)(t)).sum();
                    let corners = [(start as i32, edge(y, n)), ((start + count(t)) as i32, edge(y + 1, n))];
                    let mut bar = Rectangle::new(corners, color.filled());
                    bar.set_margin(7, 7, 0, 0);
                    bar
                });
            chart
                .draw_series(bars)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}
