//! `collect`: one CSV table with a row per row of a per-row stage (a parse stage's scores),
//! its columns taken from the rows, from lookups into other stages, and from each row's value:
//! `$value`, `$error` (why there is no value), `$path` (the row's output file) and `$source`
//! (the file its value was parsed from).

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::engine::cx::{ComputeCx, PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, opt, req};
use crate::engine::keys::{Hash, Input, Manifest};
use crate::engine::kind::{Artifact, Computed, Data, Decl, Kind, Planned, Ref, Shape, Stage, Value, Work, value_hash};
use crate::engine::table::write_csv;
use crate::engine::yaml::{Loc, Value as Yaml};
use crate::kinds::lookup::{Bound, Lookup, Taken};

pub struct CollectKind;

const FIELDS: &[FieldDoc] = &[
    req(
        "from",
        FieldType::Stage,
        "the per-row stage with one table row per row (a parse stage)",
    ),
    req(
        "columns",
        FieldType::Map,
        "output column: a column of the rows, a lookup {from: stage, by: column, take: column}, or $value, $error, $path, $source",
    ),
    opt(
        "missing",
        FieldType::Str,
        "File not found",
        "`$error` of a row with nothing to parse",
    ),
    opt(
        "error_format",
        FieldType::Str,
        "Parse error: {error}",
        "`$error` of a row whose parse failed",
    ),
    req("output", FieldType::Output, "the CSV file"),
];

#[derive(Clone, Debug, PartialEq)]
enum Source {
    Column(String),
    Lookup(Lookup),
    Value,
    Error,
    Path,
    Origin,
}

#[derive(Debug, PartialEq)]
pub struct CollectStage {
    from: Ref,
    columns: Vec<(String, Source, Loc)>,
    missing: String,
    error_format: String,
    output: Decl,
    refs: Vec<Ref>,
}

impl Kind for CollectKind {
    fn name(&self) -> &'static str {
        "collect"
    }

    fn about(&self) -> &'static str {
        "one CSV table from a per-row stage: its rows' columns, lookups, and each row's value or error"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        let from = f.stage_ref("from", Shape::PerRow)?;
        let node = f.node("columns")?;
        let Some(map) = node.as_map().filter(|m| !m.is_empty()) else {
            return Err(f.wrong("columns", node, "a mapping of output column: source"));
        };
        let mut columns = Vec::new();
        for e in map {
            let src = match &e.value.value {
                Yaml::Str(s) => match s.as_str() {
                    "$value" => Source::Value,
                    "$error" => Source::Error,
                    "$path" => Source::Path,
                    "$source" => Source::Origin,
                    s if s.starts_with('$') => {
                        return Err(f
                            .diag(
                                format!("unknown `{s}` in column `{}` of stage `{}`", e.key, f.stage),
                                e.value.loc,
                            )
                            .help("the row's own values are $value, $error, $path and $source"));
                    }
                    s => Source::Column(s.to_owned()),
                },
                Yaml::Map(_) => {
                    let l = Lookup::parse(f, "columns", &e.value)?;
                    if l.take.is_none() {
                        return Err(f
                            .diag(
                                format!("the lookup of column `{}` in stage `{}` needs `take:`", e.key, f.stage),
                                e.value.loc,
                            )
                            .help("name the column of the other stage to take"));
                    }
                    Source::Lookup(l)
                }
                _ => {
                    return Err(f.wrong(
                        "columns",
                        &e.value,
                        "a column name, a lookup, or $value/$error/$path/$source",
                    ));
                }
            };
            columns.push((e.key.clone(), src, e.key_loc));
        }
        let missing = f
            .opt_string("missing")?
            .map_or("File not found".to_owned(), |s| s.value);
        let error_format = f
            .opt_string("error_format")?
            .map_or("Parse error: {error}".to_owned(), |s| s.value);
        let output = f.output_file("output")?;
        Ok(Arc::new(CollectStage {
            from,
            columns,
            missing,
            error_format,
            output,
            refs: f.refs(),
        }))
    }
}

impl CollectStage {
    fn names(&self) -> Vec<String> {
        self.columns.iter().map(|(n, _, _)| n.clone()).collect()
    }
}

/// What `plan` keeps for `compute`.
struct Collecting {
    rows: Arc<crate::engine::rows::Rows>,
    bound: Vec<Option<Bound>>,
    /// The per-row stage, and the stage its values were made from (for `$path`, `$source`).
    from: Arc<dyn Stage>,
    source: Option<Arc<dyn Stage>>,
}

impl Stage for CollectStage {
    fn refs(&self) -> Vec<Ref> {
        self.refs.clone()
    }

    fn offers(&self) -> &'static [Shape] {
        &[Shape::Table]
    }

    fn outputs(&self) -> Vec<Decl> {
        vec![self.output.clone()]
    }

    fn reads_outputs(&self) -> bool {
        true
    }

    fn table(&self) -> Option<(String, Vec<String>)> {
        Some((self.output.path.clone(), self.names()))
    }

    fn value(&self, cx: &ValueCx) -> Result<Value, Diag> {
        let up = cx.upstream(&self.from.stage)?;
        let rows = up.rows.as_ref().expect("a per-row stage has rows");
        for (name, src, loc) in &self.columns {
            if let Source::Column(c) = src
                && rows.column(c).is_none()
            {
                return Err(cx
                    .diag(
                        format!(
                            "column `{name}`: the rows of `{}` have no column `{c}`",
                            self.from.stage
                        ),
                        *loc,
                    )
                    .help(format!("their columns are: {}", rows.names.join(", "))));
            }
        }
        Ok(Value {
            rows: None,
            data: Some(Data::new(self.names())),
            summary: format!("1 table of {} rows", rows.len()),
        })
    }

    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag> {
        let rows = cx.value_of(&self.from.stage).rows.clone().expect("rows");
        let diag = |m: String, at: Loc| cx.diag(format!("stage `{}`: {m}", cx.stage.name), at);
        let bound = self
            .columns
            .iter()
            .map(|(_, src, _)| match src {
                Source::Lookup(l) => Bound::new(
                    l,
                    &rows,
                    cx.value_of(&l.from.stage).clone(),
                    cx.spec_of(&l.from.stage).stage.clone(),
                    &diag,
                )
                .map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, Diag>>()?;
        let done = cx.done_of(&self.from.stage).expect("made before");
        let outputs: Vec<(String, Option<Hash>)> = (0..rows.len())
            .map(|r| {
                let id = rows.id(r);
                (id.to_owned(), done.of_task(id).and_then(|(_, h)| h))
            })
            .collect();
        let mut m = Manifest::new("collect")
            .param(
                "columns",
                self.columns
                    .iter()
                    .map(|(n, s, _)| format!("{n}={s:?}"))
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .param("missing", &self.missing)
            .param("error_format", &self.error_format)
            .input(Input {
                name: "rows".into(),
                path: None,
                hash: value_hash(&*rows),
            })
            .input(Input {
                name: "values".into(),
                path: None,
                hash: value_hash(&outputs),
            });
        for b in bound.iter().flatten() {
            let target = cx.value_of(&b.lookup.from.stage).rows.clone().expect("rows");
            m = m.input(Input {
                name: format!("lookup:{}", b.lookup.from.stage),
                path: None,
                hash: value_hash(&*target),
            });
        }
        Ok(Planned {
            summary: Some(format!("1 table of {} rows", rows.len())),
            artifacts: vec![Artifact {
                path: self.output.path.clone(),
                task: None,
                key: m.key(),
                work: Work::Compute(0),
                materialize: true,
                group: None,
                manifest: Some(Arc::new(m)),
            }],
            blocked: 0,
            data: Some(Arc::new(Collecting {
                rows,
                bound,
                from: cx.spec_of(&self.from.stage).stage.clone(),
                source: cx
                    .spec_of(&self.from.stage)
                    .stage
                    .row_source()
                    .map(|s| cx.spec_of(s).stage.clone()),
            })),
        })
    }

    fn compute(&self, cx: &mut ComputeCx, _a: &Artifact) -> Result<Computed> {
        let c: &Collecting = cx.planned.data().expect("collecting");
        let done = cx
            .done
            .get(&self.from.stage)
            .context("the per-row stage was made before")?;
        let rows = &c.rows;
        let mut out: Vec<Vec<String>> = Vec::with_capacity(rows.len());
        for r in 0..rows.len() {
            let id = rows.id(r);
            let (value, error) = match done.of_task(id) {
                Some((a, Some(hash))) => {
                    let content = cx
                        .content(&hash)?
                        .with_context(|| format!("the store lost the value of {}", a.path))?;
                    let number = a
                        .manifest
                        .as_ref()
                        .and_then(|m| m.params.get("gives"))
                        .is_some_and(|g| g == "number");
                    let info = if !number && content.is_empty() {
                        cx.store.action_info(&a.key)?
                    } else {
                        None
                    };
                    match crate::kinds::parse::decode(&content, info.as_deref(), number) {
                        Ok(v) => (v, String::new()),
                        Err(e) => (String::new(), self.error_format.replace("{error}", &e)),
                    }
                }
                _ => (String::new(), self.missing.clone()),
            };
            let mut cells = Vec::with_capacity(self.columns.len());
            for ((_, src, _), b) in self.columns.iter().zip(&c.bound) {
                cells.push(match src {
                    Source::Column(col) => rows.get(r, rows.column(col).expect("checked")).to_owned(),
                    Source::Lookup(_) => {
                        let b = b.as_ref().expect("bound");
                        match b.row(rows, r).and_then(|t| b.take(t, None)) {
                            Some(Taken::Text(t)) => t.to_string(),
                            _ => String::new(),
                        }
                    }
                    Source::Value => value.clone(),
                    Source::Error => error.clone(),
                    Source::Path => c.from.row_path(id).unwrap_or_default(),
                    Source::Origin => c.source.as_ref().and_then(|s| s.row_path(id)).unwrap_or_default(),
                });
            }
            out.push(cells);
        }
        let names: Vec<&str> = self.columns.iter().map(|(n, _, _)| n.as_str()).collect();
        Ok(Computed::of(write_csv(&names, out).into_bytes()))
    }
}
