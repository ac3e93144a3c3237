//! Rows: what table-like stages yield and per-row stages inherit. Every row has an id (unique
//! within its stage) and named text cells. Columns are stored once per distinct value, so a
//! cross product of 100,000 rows over a few models holds each model name once.
//!
//! Also the small expression language stages use to name things in rows: `column`,
//! `axis.column`, and id formats such as `{combo.combo_id}_{template.template_id}`.

use std::sync::{Arc, OnceLock};

/// One column: each row's index into the distinct values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Column {
    pub values: Arc<[Arc<str>]>,
    pub codes: Vec<u32>,
}

impl Column {
    pub fn get(&self, row: usize) -> &str {
        &self.values[self.codes[row] as usize]
    }

    /// A column of distinct texts, one per row (ids).
    pub fn distinct(texts: Vec<String>) -> Column {
        let n = texts.len() as u32;
        Column {
            values: texts.into_iter().map(Arc::from).collect(),
            codes: (0..n).collect(),
        }
    }

    /// A column of distinct ids, sharing their texts.
    pub fn of_ids(ids: &[Arc<str>]) -> Column {
        Column {
            values: ids.iter().cloned().collect(),
            codes: (0..ids.len() as u32).collect(),
        }
    }

    /// A column from texts that repeat: each distinct text stored once.
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Column {
        let mut values: Vec<Arc<str>> = Vec::new();
        let mut seen: crate::engine::keys::FastMap<&'a str, u32> = Default::default();
        let codes = texts
            .into_iter()
            .map(|t| {
                *seen.entry(t).or_insert_with(|| {
                    values.push(Arc::from(t));
                    (values.len() - 1) as u32
                })
            })
            .collect();
        Column {
            values: values.into(),
            codes,
        }
    }

    /// The rows of `other` picked by `rows` (a cross product's axis), sharing its values.
    pub fn pick(other: &Column, rows: &[u32]) -> Column {
        Column {
            values: other.values.clone(),
            codes: rows.iter().map(|&r| other.codes[r as usize]).collect(),
        }
    }
}

/// Rows with an id and named columns.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    /// Column names, in order.
    pub names: Vec<String>,
    pub columns: Vec<Column>,
    pub ids: Vec<Arc<str>>,
    /// Where each row came from, for messages: the file and the line of each row.
    pub origin: Option<(String, Arc<[u32]>)>,
    index: OnceLock<crate::engine::keys::FastMap<Arc<str>, u32>>,
}

impl PartialEq for Rows {
    fn eq(&self, o: &Rows) -> bool {
        self.names == o.names && self.ids == o.ids && self.columns == o.columns && self.origin == o.origin
    }
}

impl Eq for Rows {}

impl std::hash::Hash for Rows {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.names.hash(h);
        self.ids.hash(h);
        self.columns.hash(h);
    }
}

impl Rows {
    pub fn new(names: Vec<String>, columns: Vec<Column>, ids: Vec<Arc<str>>) -> Rows {
        debug_assert_eq!(names.len(), columns.len());
        Rows {
            names,
            columns,
            ids,
            origin: None,
            index: OnceLock::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn get(&self, row: usize, col: usize) -> &str {
        self.columns[col].get(row)
    }

    pub fn id(&self, row: usize) -> &str {
        &self.ids[row]
    }

    /// The row whose id is `id`.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.index
            .get_or_init(|| {
                let mut m = crate::engine::keys::FastMap::with_capacity_and_hasher(self.ids.len(), Default::default());
                for (i, id) in self.ids.iter().enumerate() {
                    m.entry(id.clone()).or_insert(i as u32);
                }
                m
            })
            .get(id)
            .map(|&i| i as usize)
    }

    /// The file and line a row came from, when known ("data/1_raw/llm_models.csv line 4").
    pub fn place(&self, row: usize) -> Option<(&str, u32)> {
        self.origin.as_ref().map(|(f, lines)| (f.as_str(), lines[row]))
    }

    /// The same rows, each repeated `n` times as replicates: ids get `_run01`, `_run02`, ...
    /// (unchanged when `n` is 1) and a `replicate` column holds 1..n.
    pub fn replicated(&self, n: u32) -> Rows {
        if n <= 1 {
            let mut r = self.clone();
            if r.column("replicate").is_none() {
                r.names.push("replicate".into());
                r.columns.push(Column {
                    values: vec![Arc::from("1")].into(),
                    codes: vec![0; self.len()],
                });
            }
            return r;
        }
        let picks: Vec<u32> = (0..self.len() as u32)
            .flat_map(|r| std::iter::repeat_n(r, n as usize))
            .collect();
        let mut names = self.names.clone();
        let mut columns: Vec<Column> = self.columns.iter().map(|c| Column::pick(c, &picks)).collect();
        let replicate_values: Arc<[Arc<str>]> = (1..=n).map(|r| Arc::from(r.to_string())).collect();
        let codes = (0..self.len()).flat_map(|_| 0..n).collect();
        match self.column("replicate") {
            Some(i) => {
                columns[i] = Column {
                    values: replicate_values,
                    codes,
                }
            }
            None => {
                names.push("replicate".into());
                columns.push(Column {
                    values: replicate_values,
                    codes,
                });
            }
        }
        let ids = picks
            .iter()
            .enumerate()
            .map(|(i, &r)| Arc::from(replicate_id(&self.ids[r as usize], i as u32 % n + 1, n)))
            .collect();
        let mut out = Rows::new(names, columns, ids);
        out.origin = self
            .origin
            .as_ref()
            .map(|(f, lines)| (f.clone(), picks.iter().map(|&r| lines[r as usize]).collect()));
        out
    }
}

/// Task id of replicate `r` of `n`.
pub fn replicate_id(task: &str, r: u32, n: u32) -> String {
    if n <= 1 {
        task.to_owned()
    } else {
        format!("{task}_run{r:02}")
    }
}

/// A text with `{name}` holes (`{{` and `}}` for braces), such as an id format or a path
/// pattern. Names are whatever the stage resolves (`id`, a column, `axis.column`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Format {
    pub pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Piece {
    Text(String),
    Hole(String),
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("`{{{name}` is not closed with `}}`")),
                        }
                    }
                    let name = name.trim().to_owned();
                    if name.is_empty() {
                        return Err("`{}` names nothing: write `{column}`".into());
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Hole(name));
                }
                '}' => return Err("a lone `}`: write `}}` for a brace".into()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Format { pieces })
    }

    pub fn holes(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Hole(h) => Some(h.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The text with every hole filled by `fill`.
    pub fn render<'a>(&self, mut fill: impl FnMut(&str) -> &'a str) -> String {
        let mut out = String::with_capacity(64);
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Hole(h) => out.push_str(fill(h)),
            }
        }
        out
    }

    /// The text with each hole filled by `fill` of its position among `holes()`: for callers
    /// that resolved the holes once and render many rows.
    pub fn render_at<'a>(&self, mut fill: impl FnMut(usize) -> &'a str) -> String {
        let mut out = String::with_capacity(64);
        let mut hole = 0;
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Hole(_) => {
                    out.push_str(fill(hole));
                    hole += 1;
                }
            }
        }
        out
    }

    /// The fixed text before the first hole and after the last (for overlap checks).
    pub fn prefix_suffix(&self) -> (&str, &str) {
        let first = match self.pieces.first() {
            Some(Piece::Text(t)) if self.pieces.len() > 1 => t.as_str(),
            _ => "",
        };
        let last = match self.pieces.last() {
            Some(Piece::Text(t)) if self.pieces.len() > 1 => t.as_str(),
            _ => "",
        };
        (first, last)
    }

    pub fn is_fixed(&self) -> bool {
        self.holes().next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fill_holes_and_keep_braces() {
        let f = Format::parse("{a.b}_x_{c}{{lit}}").unwrap();
        assert_eq!(f.holes().collect::<Vec<_>>(), ["a.b", "c"]);
        assert_eq!(f.render(|h| if h == "c" { "3" } else { "1" }), "1_x_3{lit}");
        assert!(Format::parse("{open").is_err());
        assert!(Format::parse("x}").is_err());
        assert!(Format::parse("{}").is_err());
        let p = Format::parse("data/{id}.txt").unwrap();
        assert_eq!(p.prefix_suffix(), ("data/", ".txt"));
    }

    #[test]
    fn replicates_repeat_rows_with_ids_and_a_column() {
        let r = Rows::new(
            vec!["m".into()],
            vec![Column::from_texts(["x", "y"])],
            vec![Arc::from("a"), Arc::from("b")],
        );
        let three = r.replicated(3);
        assert_eq!(three.len(), 6);
        assert_eq!(three.id(0), "a_run01");
        assert_eq!(three.id(5), "b_run03");
        let rep = three.column("replicate").unwrap();
        assert_eq!(three.get(4, rep), "2");
        assert_eq!(three.get(4, 0), "y");
        let one = r.replicated(1);
        assert_eq!(one.id(1), "b");
        assert_eq!(one.get(1, one.column("replicate").unwrap()), "1");
        assert_eq!(three.find("b_run02"), Some(4));
    }
}
