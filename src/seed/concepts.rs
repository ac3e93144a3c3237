//! The `concepts` stage: active concepts from `concepts_metadata.csv` with their descriptions
//! (spec 2.1, 4.1). Pure: file contents come in through the `read` callback.

use std::sync::Arc;

use crate::engine::diag::Diag;
use crate::engine::table::Table;
use crate::engine::text::py_strip;

/// The description levels, in the order descriptions are kept.
pub const LEVELS: &[&str] = &["sentence", "paragraph", "article"];

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Description {
    pub text: Arc<str>,
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Concept {
    pub id: String,
    pub name: String,
    /// Indexed like `spec::LEVELS`; `None` when the file is absent.
    pub descriptions: Vec<Option<Description>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Concepts {
    pub metadata_path: String,
    pub concepts: Vec<Concept>,
    pub total: usize,
}

impl Concepts {
    pub fn summary(&self) -> String {
        format!("{} of {} concepts active", self.concepts.len(), self.total)
    }
}

/// What a concept contributes to a prompt at a requested level: the level if present and
/// non-empty, else paragraph, else sentence, else the concept's name (article is never a fallback).
pub fn resolve<'a>(c: &'a Concept, level: &str, metadata_path: &'a str) -> (&'a str, &'a str) {
    let at = |l: &str| {
        let i = LEVELS.iter().position(|x| *x == l)?;
        c.descriptions[i].as_ref().filter(|d| !d.text.is_empty())
    };
    at(level)
        .or_else(|| at("paragraph"))
        .or_else(|| at("sentence"))
        .map_or((c.name.as_str(), metadata_path), |d| (&d.text, d.path.as_str()))
}

/// Builds the active concept list. `read(path)` returns a file's text, or `None` if it is absent.
pub fn load(
    metadata_path: &str,
    metadata: &str,
    descriptions_dir: &str,
    mut read: impl FnMut(&str) -> Result<Option<Arc<str>>, Diag>,
) -> Result<Concepts, Diag> {
    let table = Table::parse(metadata_path, metadata)?;
    let id_col = table.require("concept_id")?;
    let name_col = table.require("name")?;
    // Without an `active` column every concept is active (the seed's backward compatibility).
    let active_col = table.column("active");
    let mut concepts: Vec<Concept> = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for row in &table.rows {
        let id = table.id(metadata, row, id_col)?;
        if let Some(first) = seen.insert(id.to_owned(), row.line) {
            return Err(Diag::new(format!(
                "duplicate concept_id `{id}` in {metadata_path} line {} (first at line {first})",
                row.line
            ))
            .in_file(metadata_path)
            .at(Some(metadata), row.line, 1)
            .help("concept ids must be unique"));
        }
        if let Some(c) = active_col
            && !table.bool_cell(metadata, row, c)?
        {
            continue;
        }
        let name = table.get(row, name_col).to_owned();
        let mut descriptions = Vec::with_capacity(LEVELS.len());
        for level in LEVELS {
            let path = format!("{descriptions_dir}/descriptions-{level}/{id}.txt");
            let d = read(&path)?.map(|text| Description {
                text: Arc::from(py_strip(&text)),
                path,
            });
            descriptions.push(d);
        }
        concepts.push(Concept {
            id: id.to_owned(),
            name,
            descriptions,
        });
    }
    Ok(Concepts {
        metadata_path: metadata_path.to_owned(),
        concepts,
        total: table.rows.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concept(levels: [Option<&str>; 3]) -> Concept {
        Concept {
            id: "c".into(),
            name: "The C".into(),
            descriptions: levels
                .iter()
                .map(|t| {
                    t.map(|t| Description {
                        text: Arc::from(t),
                        path: format!("{t}.txt"),
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn fallback_chain() {
        // sentence requested, only paragraph present: the paragraph
        assert_eq!(
            resolve(&concept([None, Some("para"), None]), "sentence", "m.csv").0,
            "para"
        );
        // article requested and absent: paragraph, never article as a fallback
        assert_eq!(
            resolve(&concept([Some("sent"), None, None]), "article", "m.csv").0,
            "sent"
        );
        assert_eq!(
            resolve(&concept([Some("sent"), Some("para"), Some("art")]), "article", "m.csv").0,
            "art"
        );
        assert_eq!(
            resolve(&concept([Some("s"), Some("p"), Some("a")]), "paragraph", "m.csv").0,
            "p"
        );
        // empty description counts as absent
        assert_eq!(
            resolve(&concept([Some("s"), Some(""), None]), "paragraph", "m.csv").0,
            "s"
        );
        // nothing: the name, from the metadata CSV
        assert_eq!(
            resolve(&concept([None, None, None]), "paragraph", "m.csv"),
            ("The C", "m.csv")
        );
    }

    #[test]
    fn active_filter_and_missing_column() {
        let csv = "concept_id,name,active\na,A,True\nb,B,False\nc,C,true\nd,D,\n";
        let got = load("m.csv", csv, "d", |_| Ok(None)).unwrap();
        let ids: Vec<_> = got.concepts.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(got.total, 4);
        // a stray word is an error of its cell, not (as pandas typed the column) every row inactive
        let yes = load("m.csv", "concept_id,name,active\na,A,True\nb,B,yes\n", "d", |_| {
            Ok(None)
        })
        .unwrap();
        assert_eq!(yes.concepts.len(), 2);
        let e = load("m.csv", "concept_id,name,active\na,A,True\nb,B,maybe\n", "d", |_| {
            Ok(None)
        })
        .unwrap_err();
        assert_eq!((e.file.as_deref(), e.line, e.column), (Some("m.csv"), Some(3), Some(5)));
        let all = load("m.csv", "concept_id,name\na,A\nb,B\n", "d", |_| Ok(None)).unwrap();
        assert_eq!(all.concepts.len(), 2);
    }

    #[test]
    fn descriptions_are_stripped_and_missing_dirs_are_fine() {
        let got = load("m.csv", "concept_id,name\na,A\n", "d", |p| {
            Ok(p.contains("paragraph").then(|| Arc::from("\n  text \u{a0}\n")))
        })
        .unwrap();
        assert_eq!(resolve(&got.concepts[0], "sentence", "m.csv").0, "text");
    }
}
