//! Lookups: a value of another stage's row, found through a column of this row.
//!
//! `{from: stage, by: column}` finds the row of `stage` whose id is this row's `column`
//! (`on: column` matches another column of `stage` instead; the first matching row wins) and
//! gives its per-row output (an essay, an answer), or with `take:` one of its columns or a
//! structured field the stage offers (the concepts of a combination).

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::diag::Diag;
use crate::engine::fields::{At, Fields};
use crate::engine::keys::Input;
use crate::engine::kind::{Done, Field, Ref, Shape, Stage, Value};
use crate::engine::rows::Rows;
use crate::engine::yaml::{Loc, Node};

#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    pub from: Ref,
    pub by: String,
    pub on: Option<String>,
    pub take: Option<String>,
    pub loc: Loc,
}

const KEYS: &[&str] = &["from", "by", "on", "take"];

impl Lookup {
    /// Reads `{from: stage, by: column[, on: column][, take: column]}` at `node`.
    pub fn parse(f: &mut Fields, field: &'static str, node: &Node) -> Result<Lookup, Diag> {
        let Some(map) = node.as_map() else {
            return Err(f.wrong(
                field,
                node,
                "a lookup `{from: stage, by: column}` (with `on:` and `take:` if needed)",
            ));
        };
        for e in map {
            if !KEYS.contains(&e.key.as_str()) {
                let d = f.diag(
                    format!("unknown key `{}` in a lookup of stage `{}`", e.key, f.stage),
                    e.key_loc,
                );
                return Err(match crate::engine::diag::nearest(&e.key, KEYS.iter().copied()) {
                    Some(n) => d.help(format!("did you mean `{n}`?")),
                    None => d.help("a lookup takes from, by, on and take"),
                });
            }
        }
        let text = |f: &Fields, k: &str| -> Result<Option<At<String>>, Diag> {
            map.iter()
                .find(|e| e.key == k)
                .map(|e| f.string_of(field, &e.value))
                .transpose()
        };
        let from = text(f, "from")?.ok_or_else(|| {
            f.diag(format!("a lookup of stage `{}` has no `from:`", f.stage), node.loc)
                .help("write `{from: stage, by: column}`")
        })?;
        let by = text(f, "by")?.ok_or_else(|| {
            f.diag(format!("a lookup of stage `{}` has no `by:`", f.stage), node.loc)
                .help("`by:` names the column of this row that holds the other stage's row id")
        })?;
        let on = text(f, "on")?.map(|s| s.value);
        let take = text(f, "take")?.map(|s| s.value);
        let needs = if take.is_some() { Shape::Rows } else { Shape::PerRow };
        let from = f.push_ref(field, from, needs)?;
        Ok(Lookup {
            from,
            by: by.value,
            on,
            take,
            loc: node.loc,
        })
    }
}

/// What a lookup gives for one row.
pub enum Taken {
    /// A column's text.
    Text(Arc<str>),
    /// A structured field.
    Field(Field),
    /// The row's per-row output: the target artifact's path and content hash (`None` when it
    /// does not exist yet).
    Content {
        path: String,
        hash: Option<crate::engine::keys::Hash>,
    },
}

/// A lookup bound to the rows it reads from (owned, so a plan can keep it).
pub struct Bound {
    pub lookup: Lookup,
    target: Arc<Rows>,
    value: Value,
    stage: Arc<dyn Stage>,
    by: Option<usize>,
    on: Option<HashMap<Arc<str>, usize>>,
    take: Take,
}

enum Take {
    Column(usize),
    Field(String),
    Content,
}

impl Bound {
    /// Binds a lookup. `rows` are this stage's rows; `value`/`stage` the target's.
    pub fn new(
        lookup: &Lookup,
        rows: &Rows,
        value: Value,
        stage: Arc<dyn Stage>,
        diag: &dyn Fn(String, Loc) -> Diag,
    ) -> Result<Bound, Diag> {
        let target = value.rows.clone().ok_or_else(|| {
            diag(
                format!("`{}` has no rows to look up", lookup.from.stage),
                lookup.from.loc,
            )
        })?;
        let by = match lookup.by.as_str() {
            "id" => None,
            c => Some(rows.column(c).ok_or_else(|| {
                diag(format!("`by: {c}`: the rows have no column `{c}`"), lookup.loc)
                    .help(format!("their columns are: id, {}", rows.names.join(", ")))
            })?),
        };
        let on = match &lookup.on {
            None => None,
            Some(c) => {
                let col = target.column(c).ok_or_else(|| {
                    diag(
                        format!("`on: {c}`: the rows of `{}` have no column `{c}`", lookup.from.stage),
                        lookup.loc,
                    )
                    .help(format!("their columns are: {}", target.names.join(", ")))
                })?;
                let mut m = HashMap::new();
                for r in 0..target.len() {
                    let column = &target.columns[col];
                    m.entry(column.values[column.codes[r] as usize].clone()).or_insert(r);
                }
                Some(m)
            }
        };
        let take = match &lookup.take {
            None => Take::Content,
            Some(t) => match target.column(t) {
                Some(c) => Take::Column(c),
                None if target.is_empty() || stage.field(&value, 0, t).is_some() => Take::Field(t.clone()),
                None => {
                    return Err(diag(
                        format!(
                            "`take: {t}`: the rows of `{}` have no column or field `{t}`",
                            lookup.from.stage
                        ),
                        lookup.loc,
                    )
                    .help(format!("their columns are: {}", target.names.join(", "))));
                }
            },
        };
        Ok(Bound {
            lookup: lookup.clone(),
            target,
            value,
            stage,
            by,
            on,
            take,
        })
    }

    /// The target row for one of this stage's rows.
    pub fn row(&self, rows: &Rows, row: usize) -> Option<usize> {
        let key = self.key_of(rows, row);
        match &self.on {
            None => self.target.find(key),
            Some(m) => m.get(key).copied(),
        }
    }

    /// The text this row matches by (for messages).
    pub fn key_of<'r>(&self, rows: &'r Rows, row: usize) -> &'r str {
        match self.by {
            None => rows.id(row),
            Some(c) => rows.get(row, c),
        }
    }

    pub fn is_content(&self) -> bool {
        matches!(self.take, Take::Content)
    }

    /// What the lookup gives for the target row; `done` holds the target's outputs when the
    /// lookup reads per-row contents (`None` then: it does not exist yet).
    pub fn take(&self, target_row: usize, done: Option<&Done>) -> Option<Taken> {
        Some(match &self.take {
            Take::Column(c) => {
                let col = &self.target.columns[*c];
                Taken::Text(col.values[col.codes[target_row] as usize].clone())
            }
            Take::Field(name) => Taken::Field(self.stage.field(&self.value, target_row, name)?),
            Take::Content => {
                let (a, hash) = done?.of_task(self.target.id(target_row))?;
                Taken::Content {
                    path: a.path.clone(),
                    hash,
                }
            }
        })
    }
}

/// The inputs a taken value adds to a key, under the variable's name.
pub fn inputs_of(name: &str, t: &Taken) -> Vec<Input> {
    match t {
        Taken::Text(s) => vec![Input {
            name: name.to_owned(),
            path: None,
            hash: crate::engine::keys::Hash::of(s.as_bytes()),
        }],
        Taken::Field(f) => f.inputs.clone(),
        Taken::Content { path, hash } => hash
            .map(|h| {
                vec![Input {
                    name: name.to_owned(),
                    path: Some(path.clone()),
                    hash: h,
                }]
            })
            .unwrap_or_default(),
    }
}
