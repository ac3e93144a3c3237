//! The `templates` stage: a template CSV plus one `<template_id>.txt` per row (spec 2.3, 4.3).
//! Every row, active or not, must have its file: the seed failed on a missing one, and so do we,
//! naming the CSV line.

use crate::diag::Diag;
use crate::table::Table;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TemplateRow {
    pub id: String,
    pub active: bool,
    /// Path of the template text, relative to the project.
    pub path: String,
    /// The `parser` column: how responses to this template are parsed (empty: the seed's choice).
    pub parser: Option<String>,
    /// The `score_range` column of an evaluation template, e.g. `0-9` (empty: `0-10`).
    pub score_range: Option<String>,
    /// Line of the row in the CSV, for messages.
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Templates {
    pub csv_path: String,
    pub rows: Vec<TemplateRow>,
}

impl Templates {
    pub fn active(&self) -> impl Iterator<Item = (usize, &TemplateRow)> {
        self.rows.iter().enumerate().filter(|(_, t)| t.active)
    }

    pub fn summary(&self) -> String {
        format!("{} of {} templates active", self.active().count(), self.rows.len())
    }
}

/// `exists(path)` says whether a template file is there.
pub fn load(csv_path: &str, text: &str, dir: &str, exists: impl Fn(&str) -> bool) -> Result<Templates, Diag> {
    let t = Table::parse(csv_path, text)?;
    let id_col = t.require("template_id")?;
    let active_col = t.column("active");
    let parser_col = t.column("parser");
    let range_col = t.column("score_range");
    let optional = |row, col: Option<usize>| {
        col.map(|c| crate::text::py_strip(t.get(row, c)))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let mut rows: Vec<TemplateRow> = Vec::new();
    for row in &t.rows {
        let id = t.id(text, row, id_col)?;
        let path = format!("{dir}/{id}.txt");
        if !exists(&path) {
            return Err(Diag::new(format!(
                "template `{id}` listed in {csv_path} line {} has no file {path}",
                row.line
            ))
            .in_file(csv_path)
            .at(Some(text), row.line, 1)
            .help(format!("create {path}, or delete the row from {csv_path}")));
        }
        if rows.iter().any(|r| r.id == id) {
            return Err(
                Diag::new(format!("duplicate template_id `{id}` in {csv_path} line {}", row.line))
                    .in_file(csv_path)
                    .at(Some(text), row.line, 1),
            );
        }
        let active = match active_col {
            Some(c) => t.bool_cell(text, row, c)?,
            None => true,
        };
        rows.push(TemplateRow {
            id: id.to_owned(),
            active,
            path,
            parser: optional(row, parser_col),
            score_range: optional(row, range_col),
            line: row.line,
        });
    }
    Ok(Templates {
        csv_path: csv_path.to_owned(),
        rows,
    })
}
