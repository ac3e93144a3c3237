//! `cross`: the cross product of the rows of other stages (its *axes*), each axis filtered, with
//! an id made from the axes' columns and chosen output columns, written as a CSV table. The
//! first axis varies slowest, as nested loops would.

use std::sync::Arc;

use crate::engine::cx::{ComputeCx, PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, maybe, opt, req};
use crate::engine::keys::{FastMap, Input, Manifest};
use crate::engine::kind::{Artifact, Computed, Decl, Kind, Planned, Ref, Shape, Stage, Value, Work, value_hash};
use crate::engine::rows::{Column, Format, Rows, replicate_id};
use crate::engine::table::write_csv;
use crate::engine::table::{BOOL_SPELLINGS, TASK_ID_MAX, Table, parse_bool};
use crate::engine::yaml::{Loc, Value as Yaml};
use crate::kinds::table::{Cond, Filter, id_grammar, parse_filters, valid_id};

pub struct CrossKind;

const FIELDS: &[FieldDoc] = &[
    req(
        "axes",
        FieldType::Map,
        "name: stage, or name: {from: stage, where: {column: value}}; the first axis varies slowest",
    ),
    req(
        "id",
        FieldType::Str,
        "each row's id from the axes: `{axis.column}` or `{axis.id}`, e.g. {combo.id}_{template.id}_{model.id}",
    ),
    req(
        "columns",
        FieldType::Map,
        "output column: `id`, `axis.column`, `axis.id` or `replicate`, in order",
    ),
    opt(
        "replicates",
        FieldType::Int { min: 1 },
        "1",
        "rows per combination; ids get _run01, _run02, ... and a `replicate` column",
    ),
    maybe(
        "output",
        FieldType::Output,
        "the CSV file written (default: rows kept in memory only)",
    ),
];

#[derive(Debug, PartialEq)]
struct Axis {
    name: String,
    from: Ref,
    filters: Vec<Filter>,
}

/// Where an output column's cells come from.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    Id,
    Replicate,
    AxisId(usize),
    AxisColumn(usize, String),
}

#[derive(Debug, PartialEq)]
pub struct CrossStage {
    axes: Vec<Axis>,
    id: (Format, Loc),
    /// The id format as written.
    id_text: String,
    columns: Vec<(String, String, Loc)>,
    replicates: u32,
    output: Option<Decl>,
    refs: Vec<Ref>,
}

impl Kind for CrossKind {
    fn name(&self) -> &'static str {
        "cross"
    }

    fn about(&self) -> &'static str {
        "the cross product of other stages' rows (axes), filtered, with an id format and chosen columns"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        let axes_node = f.node("axes")?;
        let Some(map) = axes_node.as_map().filter(|m| !m.is_empty()) else {
            return Err(f.wrong("axes", axes_node, "a mapping of axis name: stage"));
        };
        let mut axes = Vec::new();
        for e in map {
            let (from, filters) = match &e.value.value {
                Yaml::Str(s) => (
                    crate::engine::fields::At {
                        value: s.clone(),
                        loc: e.value.loc,
                    },
                    Vec::new(),
                ),
                Yaml::Map(m) => {
                    for k in m {
                        if k.key != "from" && k.key != "where" {
                            return Err(f
                                .diag(
                                    format!("unknown key `{}` in axis `{}` of stage `{}`", k.key, e.key, f.stage),
                                    k.key_loc,
                                )
                                .help("an axis is `name: stage` or `name: {from: stage, where: {column: value}}`"));
                        }
                    }
                    let from = e.value.get("from").ok_or_else(|| {
                        f.diag(
                            format!("axis `{}` of stage `{}` has no `from:`", e.key, f.stage),
                            e.value.loc,
                        )
                        .help("write `{from: stage, where: {column: value}}`")
                    })?;
                    let from = f.string_of("axes", from)?;
                    let filters = match e.value.get("where") {
                        Some(w) => parse_filters(f, w, "where")?,
                        None => Vec::new(),
                    };
                    (from, filters)
                }
                _ => return Err(f.wrong("axes", &e.value, "a mapping of axis name: stage")),
            };
            let from = f.push_ref("axes", from, Shape::Rows)?;
            axes.push(Axis {
                name: e.key.clone(),
                from,
                filters,
            });
        }
        let id = f.string("id")?;
        let id_format =
            Format::parse(&id.value).map_err(|e| f.diag(format!("`id` of stage `{}`: {e}", f.stage), id.loc))?;
        let columns_node = f.node("columns")?;
        let Some(cols) = columns_node.as_map().filter(|m| !m.is_empty()) else {
            return Err(f.wrong("columns", columns_node, "a mapping of output column: source"));
        };
        let mut columns = Vec::new();
        for c in cols {
            let src = f.string_of("columns", &c.value)?;
            columns.push((c.key.clone(), src.value, src.loc));
        }
        let replicates = f.int("replicates", 1, Some(1))?.value as u32;
        let output = match f.opt_node("output") {
            Some(_) => Some(f.output_file("output")?),
            None => None,
        };
        let stage = CrossStage {
            axes,
            id: (id_format, id.loc),
            id_text: id.value.clone(),
            columns,
            replicates,
            output,
            refs: f.refs(),
        };
        // names must resolve to axes (columns are checked against the rows when they are known)
        for h in stage.id.0.holes() {
            stage
                .source(h)
                .map_err(|m| f.diag(format!("`id` of stage `{}`: {m}", f.stage), id.loc))?;
        }
        for (name, src, loc) in &stage.columns {
            stage
                .source(src)
                .map_err(|m| f.diag(format!("column `{name}` of stage `{}`: {m}", f.stage), *loc))?;
        }
        Ok(Arc::new(stage))
    }
}

impl CrossStage {
    fn source(&self, s: &str) -> Result<Source, String> {
        match s {
            "id" => return Ok(Source::Id),
            "replicate" => return Ok(Source::Replicate),
            _ => {}
        }
        let axes: Vec<&str> = self.axes.iter().map(|a| a.name.as_str()).collect();
        let Some((axis, col)) = s.split_once('.') else {
            return Err(format!(
                "`{s}` names no axis: write `id`, `replicate`, or `axis.column` with an axis of {}",
                axes.join(", ")
            ));
        };
        let i = self
            .axes
            .iter()
            .position(|a| a.name == axis)
            .ok_or_else(|| format!("`{axis}` in `{s}` is not an axis (the axes are {})", axes.join(", ")))?;
        Ok(if col == "id" {
            Source::AxisId(i)
        } else {
            Source::AxisColumn(i, col.to_owned())
        })
    }

    fn build(&self, cx: &ValueCx) -> Result<Value, Diag> {
        // each axis: its rows, filtered
        let mut picked: Vec<(Arc<Rows>, Vec<u32>)> = Vec::new();
        for a in &self.axes {
            let v = cx.upstream(&a.from.stage)?;
            let rows = v.rows.clone().ok_or_else(|| {
                cx.diag(
                    format!("axis `{}` reads `{}`, which has no rows", a.name, a.from.stage),
                    a.from.loc,
                )
            })?;
            let mut keep = Vec::new();
            let conds: Vec<(usize, &Filter)> = a
                .filters
                .iter()
                .map(|flt| {
                    rows.column(&flt.column).map(|c| (c, flt)).ok_or_else(|| {
                        cx.diag(
                            format!(
                                "axis `{}` filters on `{}`, which the rows of `{}` do not have",
                                a.name, flt.column, a.from.stage
                            ),
                            flt.loc,
                        )
                        .help(format!("its columns are: {}", rows.names.join(", ")))
                    })
                })
                .collect::<Result<_, _>>()?;
            for r in 0..rows.len() {
                let mut ok = true;
                for (c, flt) in &conds {
                    let cell = rows.get(r, *c);
                    ok &= match &flt.cond {
                        Cond::Text(t) => cell.trim() == t,
                        Cond::Bool(b) => match parse_bool(cell) {
                            Some(x) => x == *b,
                            None => return Err(not_a_boolean(cx, &rows, r, flt, &a.from.stage)),
                        },
                    };
                }
                if ok {
                    keep.push(r as u32);
                }
            }
            picked.push((rows, keep));
        }
        // resolve each output column and the id's holes against the axes' columns
        let resolve = |s: &str, loc: Loc| -> Result<Source, Diag> {
            let src = self.source(s).map_err(|m| cx.diag(m, loc))?;
            if let Source::AxisColumn(i, col) = &src
                && picked[*i].0.column(col).is_none()
            {
                let a = &self.axes[*i];
                return Err(cx
                    .diag(
                        format!(
                            "`{s}`: the rows of `{}` (axis `{}`) have no column `{col}`",
                            a.from.stage, a.name
                        ),
                        loc,
                    )
                    .help(format!("its columns are: id, {}", picked[*i].0.names.join(", "))));
            }
            Ok(src)
        };
        let id_sources: Vec<(String, Source)> = self
            .id
            .0
            .holes()
            .map(|h| resolve(h, self.id.1).map(|s| (h.to_owned(), s)))
            .collect::<Result<_, _>>()?;
        let col_sources: Vec<Source> = self
            .columns
            .iter()
            .map(|(_, s, loc)| resolve(s, *loc))
            .collect::<Result<_, _>>()?;
        // the product: one index per axis for each row, first axis slowest
        let n: usize = picked.iter().map(|(_, k)| k.len()).product::<usize>() * self.replicates as usize;
        let mut index: Vec<Vec<u32>> = vec![Vec::with_capacity(n); self.axes.len()];
        let mut counter = vec![0usize; self.axes.len()];
        let total: usize = picked.iter().map(|(_, k)| k.len()).product();
        for _ in 0..total {
            for (a, c) in counter.iter().enumerate() {
                index[a].push(picked[a].1[*c]);
            }
            for a in (0..counter.len()).rev() {
                counter[a] += 1;
                if counter[a] < picked[a].1.len() {
                    break;
                }
                counter[a] = 0;
            }
        }
        let cell = |src: &Source, row: usize| -> &str {
            match src {
                Source::AxisId(a) => picked[*a].0.id(index[*a][row] as usize),
                Source::AxisColumn(a, col) => {
                    let r = &picked[*a].0;
                    r.get(index[*a][row] as usize, r.column(col).expect("resolved"))
                }
                Source::Id | Source::Replicate => "",
            }
        };
        let base_ids: Vec<String> = (0..total)
            .map(|row| self.id.0.render_at(|h| cell(&id_sources[h].1, row)))
            .collect();
        for (row, id) in base_ids.iter().enumerate() {
            if valid_id(id) {
                continue;
            }
            let what = format!("the id of row {} of stage `{}`", row + 1, cx.stage.name);
            let n = id.chars().count();
            let parts_ok = id_sources.iter().all(|(_, src)| valid_id(cell(src, row)));
            if n > TASK_ID_MAX && parts_ok {
                // each part is a fine id; together they are too long: name them, longest first
                let mut parts: Vec<(usize, String)> = id_sources
                    .iter()
                    .filter_map(|(hole, src)| {
                        let (Source::AxisId(a) | Source::AxisColumn(a, _)) = src else {
                            return None;
                        };
                        let (rows, r) = (&picked[*a].0, index[*a][row] as usize);
                        let value = cell(src, row);
                        let place = rows
                            .place(r)
                            .map_or(format!("a row of `{}`", self.axes[*a].from.stage), |(f, l)| {
                                format!("{f} line {l}")
                            });
                        let name = hole.strip_suffix(".id").unwrap_or(hole);
                        Some((
                            value.len(),
                            format!("{name} id `{value}` ({} characters, {place})", value.len()),
                        ))
                    })
                    .collect();
                parts.sort_by_key(|p| std::cmp::Reverse(p.0));
                let parts: Vec<String> = parts.into_iter().map(|(_, p)| p).collect();
                return Err(cx
                    .diag(
                        format!("{what} would be {n} characters, more than the {TASK_ID_MAX} a task id may have"),
                        self.id.1,
                    )
                    .help(format!("ids become file names; shorten {}", parts.join(", or "))));
            }
            let why = crate::engine::table::id_problem(id, TASK_ID_MAX).unwrap_or_default();
            return Err(cx
                .diag(
                    format!(
                        "{what} is {}, which cannot stand in a file name: {why}",
                        crate::engine::table::shown(id)
                    ),
                    self.id.1,
                )
                .help(id_grammar()));
        }
        let mut seen = FastMap::with_capacity_and_hasher(total, Default::default());
        for (row, id) in base_ids.iter().enumerate() {
            if let Some(first) = seen.insert(id.as_str(), row) {
                return Err(cx
                    .diag(
                        format!(
                            "rows {} and {} of stage `{}` both have the id `{id}`",
                            first + 1,
                            row + 1,
                            cx.stage.name
                        ),
                        self.id.1,
                    )
                    .help("make the id format name every axis that varies"));
            }
        }
        drop(seen);
        let reps = self.replicates;
        let expand = |row: usize| (0..reps).map(move |r| (row, r + 1));
        let ids: Vec<Arc<str>> = if reps <= 1 {
            base_ids.iter().map(|id| Arc::from(id.as_str())).collect()
        } else {
            (0..total)
                .flat_map(expand)
                .map(|(row, r)| Arc::from(replicate_id(&base_ids[row], r, reps)))
                .collect()
        };
        let columns: Vec<Column> = col_sources
            .iter()
            .map(|src| match src {
                Source::Id => Column::of_ids(&ids),
                Source::Replicate => Column::from_texts(
                    (0..total)
                        .flat_map(expand)
                        .map(|(_, r)| &*REPLICATES[(r as usize).min(REPLICATES.len() - 1)]),
                ),
                Source::AxisId(a) => {
                    let r = &picked[*a].0;
                    let picks: Vec<u32> = (0..total).flat_map(expand).map(|(row, _)| index[*a][row]).collect();
                    Column::pick(&Column::of_ids(&r.ids), &picks)
                }
                Source::AxisColumn(a, col) => {
                    let r = &picked[*a].0;
                    let picks: Vec<u32> = (0..total).flat_map(expand).map(|(row, _)| index[*a][row]).collect();
                    Column::pick(&r.columns[r.column(col).expect("resolved")], &picks)
                }
            })
            .collect();
        let names = self.columns.iter().map(|(n, _, _)| n.clone()).collect();
        let rows = Rows::new(names, columns, ids);
        let summary = format!("{} rows", rows.len());
        Ok(Value {
            rows: Some(Arc::new(rows)),
            data: None,
            summary,
        })
    }
}

static REPLICATES: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (0..=999).map(|r| r.to_string()).collect());

impl Stage for CrossStage {
    fn refs(&self) -> Vec<Ref> {
        self.refs.clone()
    }

    fn offers(&self) -> &'static [Shape] {
        &[Shape::Rows, Shape::Table]
    }

    fn outputs(&self) -> Vec<Decl> {
        self.output.iter().cloned().collect()
    }

    fn table(&self) -> Option<(String, Vec<String>)> {
        let out = self.output.as_ref()?;
        Some((
            out.path.clone(),
            self.columns.iter().map(|(n, _, _)| n.clone()).collect(),
        ))
    }

    fn value(&self, cx: &ValueCx) -> Result<Value, Diag> {
        self.build(cx)
    }

    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag> {
        let Some(out) = &self.output else {
            return Ok(Planned::default());
        };
        let mut m = Manifest::new("cross")
            .param(
                "columns",
                self.columns
                    .iter()
                    .map(|(n, s, _)| format!("{n}={s}"))
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .param("id", &self.id_text);
        for a in &self.axes {
            let spec = cx.spec_of(&a.from.stage);
            // where the axis's rows come from, to show: its table, or what it reads
            let path = spec
                .stage
                .table()
                .map(|t| t.0)
                .or_else(|| spec.stage.inputs().first().map(|d| d.path.clone()));
            m = m.input(Input {
                name: a.from.stage.clone(),
                path,
                hash: value_hash(&**cx.value_of(&a.from.stage).rows.as_ref().expect("axes have rows")),
            });
        }
        Ok(Planned {
            artifacts: vec![Artifact {
                path: out.path.clone(),
                task: None,
                key: m.key(),
                work: Work::Compute(0),
                materialize: true,
                group: None,
                manifest: Some(Arc::new(m)),
            }],
            ..Default::default()
        })
    }

    fn compute(&self, cx: &mut ComputeCx, _a: &Artifact) -> anyhow::Result<Computed> {
        Ok(Computed::of(csv_of(cx.value.rows.as_ref().expect("rows")).into_bytes()))
    }
}

/// Rows as a CSV table: their columns, in order.
pub fn csv_of(rows: &Rows) -> String {
    let headers: Vec<&str> = rows.names.iter().map(String::as_str).collect();
    write_csv(
        &headers,
        (0..rows.len()).map(|r| (0..rows.names.len()).map(|c| rows.get(r, c)).collect::<Vec<&str>>()),
    )
}

/// The error for a cell an axis filters on as a boolean that is not one: the cell itself,
/// underlined in its CSV file when the rows come from one, else the row and the filter's line.
fn not_a_boolean(cx: &ValueCx, rows: &Rows, r: usize, flt: &Filter, stage: &str) -> Diag {
    let cell = rows.get(r, rows.column(&flt.column).expect("filtered columns exist"));
    let in_file = rows.place(r).and_then(|(file, line)| {
        let text = cx.text(file).ok()??;
        let t = Table::parse(file, &text).ok()?;
        let row = t.rows.iter().find(|row| row.line == line)?;
        let col = t.column(&flt.column)?;
        t.bool_cell(&text, row, col).err()
    });
    in_file.unwrap_or_else(|| {
        cx.diag(
            format!(
                "`{}` is {cell:?} in row `{}` of `{stage}`, not a boolean",
                flt.column,
                rows.id(r)
            ),
            flt.loc,
        )
        .help(format!("write {BOOL_SPELLINGS}"))
    })
}
