//! `table`: a CSV file read as rows, with an id column, optional row filters (`where`), chosen
//! columns, and optionally a file every row must have (a template per row).
//!
//! Booleans in filtered columns are read strictly: a cell that is not a boolean is an error
//! naming its file, line and column, never a silent "false".

use std::sync::Arc;

use crate::diag::Diag;
use crate::next::engine::cx::{PlanCx, ValueCx};
use crate::next::engine::fields::{FieldDoc, FieldType, Fields, maybe, req};
use crate::next::engine::kind::{Decl, DeclKind, Kind, Planned, Ref, Shape, Stage, Value};
use crate::next::engine::rows::{Column, Format, Rows};
use crate::next::engine::yaml::{Loc, Value as Yaml};
use crate::table::Table;

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
pub fn parse_filters(f: &Fields, node: &crate::next::engine::yaml::Node, field: &str) -> Result<Vec<Filter>, Diag> {
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
pub fn parse_names(
    f: &Fields,
    node: &crate::next::engine::yaml::Node,
    field: &str,
) -> Result<Vec<(String, Loc)>, Diag> {
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
pub const BOOLEANS: &str = "true/false, 1/0 or yes/no (any letter case), or empty for false";

/// A boolean cell: true/false, 1/0, yes/no in any letter case; empty is false.
pub fn parse_bool(cell: &str) -> Option<bool> {
    let c = cell.trim();
    if c.is_empty() {
        return Some(false);
    }
    for (t, f) in [("true", "false"), ("1", "0"), ("yes", "no"), ("1.0", "0.0")] {
        if c.eq_ignore_ascii_case(t) {
            return Some(true);
        }
        if c.eq_ignore_ascii_case(f) {
            return Some(false);
        }
    }
    None
}

/// The id grammar: what may stand in a file name. Letters, digits, `.`, `_` and `-`, starting
/// with a letter, digit or `_`, at most 128 characters.
pub const ID_GRAMMAR: &str =
    "letters, digits, `.`, `_` and `-`, starting with a letter, digit or `_`, at most 128 characters";

pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !s.starts_with(['.', '-'])
}

/// An error about one cell of a CSV file.
pub fn cell_diag(t: &Table, text: &str, line: u32, col: usize, message: String) -> Diag {
    let column = text
        .lines()
        .nth(line.saturating_sub(1) as usize)
        .map_or(1, |l| column_of(l, col));
    Diag::new(message).in_file(&t.file).at(Some(text), line, column)
}

/// The 1-based character column where field `col` of a CSV line starts.
fn column_of(line: &str, col: usize) -> u32 {
    let mut field = 0;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        if field == col {
            return line[..i].chars().count() as u32 + 1;
        }
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => field += 1,
            _ => {}
        }
    }
    line.chars().count() as u32 + 1
}

impl TableStage {
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
            let id = t.get(row, id_col).trim();
            if id.is_empty() {
                return Err(cell_diag(
                    &t,
                    &text,
                    row.line,
                    id_col,
                    format!("empty `{}` in {path} line {}", t.headers[id_col], row.line),
                )
                .help("every row needs an id; fill it in or delete the row"));
            }
            if !valid_id(id) {
                return Err(cell_diag(
                    &t,
                    &text,
                    row.line,
                    id_col,
                    format!(
                        "`{}` {:?} in {path} line {} cannot be an id: ids become file names",
                        t.headers[id_col], id, row.line
                    ),
                )
                .help(format!("an id is {ID_GRAMMAR}")));
            }
            if let Some(first) = seen.insert(id, row.line) {
                return Err(cell_diag(
                    &t,
                    &text,
                    row.line,
                    id_col,
                    format!(
                        "duplicate `{}` `{id}` in {path} line {} (first at line {first})",
                        t.headers[id_col], row.line
                    ),
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
                for (name, c) in &cols {
                    let v = t.get(row, *c).trim();
                    if !valid_id(v) {
                        return Err(cell_diag(
                            &t,
                            &text,
                            row.line,
                            *c,
                            format!(
                                "`{name}` {v:?} in {path} line {} names a file, and cannot: it must be {ID_GRAMMAR}",
                                row.line
                            ),
                        ));
                    }
                }
                let file = f.render(|h| {
                    let c = cols.iter().find(|(n, _)| n == h).expect("checked").1;
                    t.get(row, c).trim()
                });
                if !cx.exists(&file) {
                    return Err(cell_diag(
                        &t,
                        &text,
                        row.line,
                        cols.first().map_or(0, |c| c.1),
                        format!(
                            "row `{}` in {path} line {} has no file {file}",
                            t.get(row, id_col).trim(),
                            row.line
                        ),
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
                    Cond::Bool(b) => match parse_bool(cell) {
                        Some(x) => x == *b,
                        None => {
                            return Err(cell_diag(
                                &t,
                                &text,
                                row.line,
                                *c,
                                format!(
                                    "`{}` of row `{}` in {path} line {} is {cell:?}, not a boolean",
                                    flt.column,
                                    t.get(row, id_col).trim(),
                                    row.line
                                ),
                            )
                            .help(format!("write {BOOLEANS}")));
                        }
                    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_strict() {
        for t in ["True", "true", "TRUE", "1", "yes", "Yes"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["False", "false", "0", "no", "", " "] {
            assert_eq!(parse_bool(f), Some(false), "{f:?}");
        }
        for bad in ["y", "2", "active", "tru"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_are_file_names() {
        for ok in ["gemini_2.5_flash", "qwen3-235b-a22b", "creative-synthesis-v6", "_x"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "x/../../y",
            "a\nb",
            "-x",
            &"a".repeat(129),
            "a:b",
            "a b",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn csv_columns_are_found_by_position() {
        assert_eq!(column_of("a,b,c", 0), 1);
        assert_eq!(column_of("a,b,c", 2), 5);
        assert_eq!(column_of("\"x,y\",b", 1), 7);
    }
}
