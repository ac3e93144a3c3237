//! `table`: a CSV file read as rows, with an id column, optional row filters (`where`), chosen
//! columns, and optionally a file every row must have (a template per row).
//!
//! Booleans in filtered columns are read strictly: a cell that is not a boolean is an error
//! naming its file, line and column, never a silent "false".

use std::sync::Arc;

use crate::engine::cx::{PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, maybe, req};
use crate::engine::kind::{Decl, DeclKind, Kind, Planned, Ref, Shape, Stage, Value};
use crate::engine::rows::{Column, Format, Rows};
use crate::engine::table::Table;
use crate::engine::yaml::{Loc, Value as Yaml};

pub struct TableKind;

const FIELDS: &[FieldDoc] = &[
    req(
        "csv",
        FieldType::File,
        "the CSV file (a header row, then one row per item)",
    ),
    maybe(
        "id",
        FieldType::Str,
        "the column holding each row's id (unique; default: the first column)",
    ),
    maybe(
        "where",
        FieldType::Map,
        "keep only rows whose cells equal these values: `{active: true}` (a boolean column must hold true/false, 1/0 or yes/no)",
    ),
    maybe(
        "columns",
        FieldType::List,
        "keep only these columns, in this order (default: all)",
    ),
    maybe(
        "files",
        FieldType::FilePattern,
        "a file every row must have, e.g. templates/generation/{template_id}.txt (checked for every row, filtered or not)",
    ),
];

/// One `where` condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    Bool(bool),
    Text(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    pub column: String,
    pub cond: Cond,
    pub loc: Loc,
}

#[derive(Debug, PartialEq)]
pub struct TableStage {
    csv: Decl,
    id: Option<(String, Loc)>,
    filters: Vec<Filter>,
    columns: Option<Vec<(String, Loc)>>,
    files: Option<Decl>,
}

/// Reads a `where:` mapping (shared with the axes of a cross product).
pub fn parse_filters(f: &Fields, node: &crate::engine::yaml::Node, field: &str) -> Result<Vec<Filter>, Diag> {
    let Some(map) = node.as_map() else {
        return Err(f.wrong(field, node, "a mapping of column: value"));
    };
    map.iter()
        .map(|e| {
            let cond = match &e.value.value {
                Yaml::Bool(b) => Cond::Bool(*b),
                Yaml::Str(s) => Cond::Text(s.clone()),
                Yaml::Int(_) | Yaml::Float(_) => Cond::Text(e.value.scalar_text().unwrap_or_default()),
                _ => return Err(f.wrong(field, &e.value, "a mapping of column: value (true, false or a text)")),
            };
            Ok(Filter {
                column: e.key.clone(),
                cond,
                loc: e.key_loc,
            })
        })
        .collect()
}

/// Reads a list of column names.
pub fn parse_names(f: &Fields, node: &crate::engine::yaml::Node, field: &str) -> Result<Vec<(String, Loc)>, Diag> {
    let Yaml::Seq(items) = &node.value else {
        return Err(f.wrong(field, node, "a list of column names"));
    };
    items
        .iter()
        .map(|n| match &n.value {
            Yaml::Str(s) => Ok((s.clone(), n.loc)),
            _ => Err(f.wrong(field, n, "a list of column names")),
        })
        .collect()
}

impl Kind for TableKind {
    fn name(&self) -> &'static str {
        "table"
    }

    fn about(&self) -> &'static str {
        "a CSV file read as rows: an id column, row filters, chosen columns"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        let csv = f.input_file("csv")?;
        let id = f.opt_string("id")?.map(|s| (s.value, s.loc));
        let filters = match f.opt_node("where") {
            Some(n) => parse_filters(f, n, "where")?,
            None => Vec::new(),
        };
        let columns = match f.opt_node("columns") {
            Some(n) => Some(parse_names(f, n, "columns")?),
            None => None,
        };
        let files = f.path("files", DeclKind::InputPattern, false)?;
        Ok(Arc::new(TableStage {
            csv,
            id,
            filters,
            columns,
            files,
        }))
    }
}

/// The accepted spellings of a boolean cell, for messages.
/// Whether a text may stand in a file name as an id (`table::id_problem`, with the bound of a
/// task id, the longest).
pub fn valid_id(s: &str) -> bool {
    crate::engine::table::id_problem(s, crate::engine::table::TASK_ID_MAX).is_none()
}

/// The id grammar, as messages state it.
pub fn id_grammar() -> String {
    crate::engine::table::id_grammar(crate::engine::table::TASK_ID_MAX)
}

impl TableStage {
    /// The CSV file it reads.
    pub fn csv(&self) -> &str {
        &self.csv.path
    }

    fn read(&self, cx: &ValueCx) -> Result<Value, Diag> {
        let path = &self.csv.path;
        let text = cx.require_text(path, "table")?;
        let t = Table::parse(path, &text)?;
        let id_col = match &self.id {
            Some((name, loc)) => t.column(name).ok_or_else(|| {
                cx.diag(
                    format!("{path} has no column `{name}` for the ids of stage `{}`", cx.stage.name),
                    *loc,
                )
                .help(format!("its columns are: {}", t.headers.join(", ")))
            })?,
            None if t.headers.is_empty() => {
                return Err(Diag::new(format!("{path} has no header row")).in_file(path));
            }
            None => 0,
        };
        // every row's id: present, unique, fit to stand in a file name
        let mut seen: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        for row in &t.rows {
            let id = t.id(&text, row, id_col)?;
            if let Some(first) = seen.insert(id, row.line) {
                return Err(t
                    .cell_diag(
                        &text,
                        row,
                        id_col,
                        format_args!("duplicate id `{id}` (first at line {first})"),
                    )
                    .help("ids must be unique"));
            }
        }
        if let Some(files) = &self.files {
            let f = Format::parse(&files.path).map_err(|e| cx.diag(e, files.loc))?;
            let cols: Vec<(String, usize)> = f
                .holes()
                .map(|h| {
                    t.column(h).map(|c| (h.to_owned(), c)).ok_or_else(|| {
                        cx.diag(
                            format!(
                                "`files` of stage `{}` names `{{{h}}}`, which is not a column of {path}",
                                cx.stage.name
                            ),
                            files.loc,
                        )
                        .help(format!("its columns are: {}", t.headers.join(", ")))
                    })
                })
                .collect::<Result<_, _>>()?;
            for row in &t.rows {
                for (_, c) in &cols {
                    t.id(&text, row, *c)?;
                }
                let file = f.render(|h| {
                    let c = cols.iter().find(|(n, _)| n == h).expect("checked").1;
                    t.get(row, c).trim()
                });
                if !cx.exists(&file) {
                    let c = cols.first().map_or(0, |c| c.1);
                    return Err(t
                        .cell_diag(
                            &text,
                            row,
                            c,
                            format_args!("row `{}` has no file {file}", t.get(row, id_col).trim()),
                        )
                        .help(format!("create {file}, or delete the row from {path}")));
                }
            }
        }
        // the filters, with booleans read strictly
        let mut conds = Vec::new();
        for flt in &self.filters {
            let c = t.column(&flt.column).ok_or_else(|| {
                cx.diag(
                    format!(
                        "`where` of stage `{}` names column `{}`, which {path} does not have",
                        cx.stage.name, flt.column
                    ),
                    flt.loc,
                )
                .help(format!("its columns are: {}", t.headers.join(", ")))
            })?;
            conds.push((c, flt));
        }
        let mut keep = Vec::new();
        for (i, row) in t.rows.iter().enumerate() {
            let mut ok = true;
            for (c, flt) in &conds {
                let cell = t.get(row, *c);
                let pass = match &flt.cond {
                    Cond::Text(v) => cell.trim() == v,
                    Cond::Bool(b) => t.bool_cell(&text, row, *c)? == *b,
                };
                ok &= pass;
            }
            if ok {
                keep.push(i);
            }
        }
        let names: Vec<(String, usize)> = match &self.columns {
            None => t.headers.iter().enumerate().map(|(i, h)| (h.clone(), i)).collect(),
            Some(cols) => cols
                .iter()
                .map(|(name, loc)| {
                    t.column(name).map(|c| (name.clone(), c)).ok_or_else(|| {
                        cx.diag(
                            format!(
                                "`columns` of stage `{}` names `{name}`, which {path} does not have",
                                cx.stage.name
                            ),
                            *loc,
                        )
                        .help(format!("its columns are: {}", t.headers.join(", ")))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let columns = names
            .iter()
            .map(|(_, c)| Column::from_texts(keep.iter().map(|&i| t.get(&t.rows[i], *c))))
            .collect();
        let ids = keep
            .iter()
            .map(|&i| Arc::from(t.get(&t.rows[i], id_col).trim()))
            .collect();
        let mut rows = Rows::new(names.into_iter().map(|(n, _)| n).collect(), columns, ids);
        rows.origin = Some((path.clone(), keep.iter().map(|&i| t.rows[i].line).collect()));
        let summary = if self.filters.is_empty() {
            format!("{} rows", t.rows.len())
        } else {
            let what: Vec<String> = self
                .filters
                .iter()
                .map(|f| match &f.cond {
                    Cond::Bool(true) => f.column.clone(),
                    Cond::Bool(false) => format!("not {}", f.column),
                    Cond::Text(v) => format!("{}={v}", f.column),
                })
                .collect();
            format!("{} of {} rows ({})", keep.len(), t.rows.len(), what.join(", "))
        };
        Ok(Value {
            rows: Some(Arc::new(rows)),
            data: None,
            summary,
        })
    }
}

impl Stage for TableStage {
    fn refs(&self) -> Vec<Ref> {
        Vec::new()
    }

    fn offers(&self) -> &'static [Shape] {
        &[Shape::Rows]
    }

    fn inputs(&self) -> Vec<Decl> {
        let mut v = vec![self.csv.clone()];
        v.extend(self.files.clone());
        v
    }

    fn outputs(&self) -> Vec<Decl> {
        Vec::new()
    }

    fn value(&self, cx: &ValueCx) -> Result<Value, Diag> {
        self.read(cx)
    }

    fn plan(&self, _cx: &PlanCx) -> Result<Planned, Diag> {
        Ok(Planned::default())
    }
}
