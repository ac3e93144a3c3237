//! `pipeline.yaml` as a tree of nodes that remember where they stand in the file.
//!
//! serde-saphyr parses the text; every node (scalar, list or map, and every map key) keeps its
//! line and column, so that a kind validating its fields can point at the exact value it rejects.
//! A key given twice in one map is an error here, before any kind sees the map. Pure: no I/O.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A position in the file, 1-based (0 when unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub loc: Loc,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// A map entry: the key (with its own position) and the value.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_loc: Loc,
    pub value: Node,
}

impl Node {
    /// What the node is, for messages: "a string", "a list", ...
    pub fn what(&self) -> &'static str {
        match self.value {
            Value::Null => "empty",
            Value::Bool(_) => "true or false",
            Value::Int(_) => "a whole number",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value under `key`, when this node is a map holding it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// A scalar as text (numbers and booleans as written in YAML's core schema).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(x) => Some(x.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

fn loc_of(l: &serde_saphyr::Location) -> Loc {
    Loc {
        line: l.line() as u32,
        column: l.column() as u32,
    }
}

/// What a map's duplicate key was, when the tree could not be built for that reason.
#[derive(Debug)]
pub struct Duplicate {
    pub key: String,
    pub first: Loc,
    pub again: Loc,
}

/// The node's value, built by serde; positions are filled in by `Spanned` around it.
struct Raw(Value);

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

/// serde's errors carry only text: a duplicate key is encoded in it and decoded by `parse`.
const DUPLICATE_MARK: &str = "\u{1}duplicate key\u{1}";

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw(Value::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        match i64::try_from(v) {
            Ok(i) => Ok(Raw(Value::Int(i))),
            Err(_) => Ok(Raw(Value::Float(v as f64))),
        }
    }

    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw(Value::Float(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw(Value::Str(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw(Value::Str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut out = Vec::new();
        while let Some(n) = seq.next_element::<Spanned<Raw>>()? {
            out.push(node(n));
        }
        Ok(Raw(Value::Seq(out)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut out: Vec<Entry> = Vec::new();
        while let Some(k) = map.next_key::<Spanned<Raw>>()? {
            let key_loc = loc_of(&k.referenced);
            let key = match k.value.0 {
                Value::Str(s) => s,
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Float(x) => x.to_string(),
                Value::Null => String::new(),
                Value::Seq(_) | Value::Map(_) => {
                    return Err(de::Error::custom("a map key must be a plain word, not a list or a map"));
                }
            };
            let value = node(map.next_value::<Spanned<Raw>>()?);
            if let Some(first) = out.iter().find(|e| e.key == key) {
                return Err(de::Error::custom(format!(
                    "{DUPLICATE_MARK}{key}\u{1}{}\u{1}{}\u{1}{}\u{1}{}",
                    first.key_loc.line, first.key_loc.column, key_loc.line, key_loc.column
                )));
            }
            out.push(Entry { key, key_loc, value });
        }
        Ok(Raw(Value::Map(out)))
    }
}

fn node(s: Spanned<Raw>) -> Node {
    Node {
        loc: loc_of(&s.referenced),
        value: s.value.0,
    }
}

/// Why the text is not a YAML tree.
#[derive(Debug)]
pub enum Error {
    /// The YAML syntax is broken: serde-saphyr's message and position.
    Syntax {
        message: String,
        at: Option<Loc>,
    },
    Duplicate(Duplicate),
}

/// Parses YAML text into a located tree. An empty document is `Value::Null`.
pub fn parse(source: &str) -> Result<Node, Error> {
    if source.trim().is_empty() {
        return Ok(Node {
            loc: Loc { line: 1, column: 1 },
            value: Value::Null,
        });
    }
    match serde_saphyr::from_str::<Spanned<Raw>>(source) {
        Ok(s) => Ok(node(s)),
        Err(e) => {
            let text = e.to_string();
            if let Some(i) = text.find(DUPLICATE_MARK) {
                let parts: Vec<&str> = text[i + DUPLICATE_MARK.len()..].split('\u{1}').collect();
                let n = |i: usize| parts.get(i).and_then(|p| p.trim().parse::<u32>().ok()).unwrap_or(0);
                return Err(Error::Duplicate(Duplicate {
                    key: parts.first().copied().unwrap_or("").to_owned(),
                    first: Loc {
                        line: n(1),
                        column: n(2),
                    },
                    again: Loc {
                        line: n(3),
                        column: n(4),
                    },
                }));
            }
            let message = first_line(&text);
            let at = e.location().map(|l| loc_of(&l));
            // serde-saphyr finds a repeated key itself, before the tree sees it
            if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
                let key = rest.split(", set ").next().unwrap_or(rest).trim().to_owned();
                return Err(Error::Duplicate(Duplicate {
                    key,
                    first: Loc::default(),
                    again: at.unwrap_or_default(),
                }));
            }
            Err(Error::Syntax { message, at })
        }
    }
}

/// serde-saphyr's message without its own rendering of the location.
fn first_line(text: &str) -> String {
    let mut first = text
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim_start_matches("error: ");
    if first.starts_with("line ")
        && let Some((_, rest)) = first.split_once(": ")
    {
        first = rest;
    }
    first.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_and_key_knows_its_place() {
        let n = parse("a: 1\nb:\n  - x\n  - {c: true, d: 2.5}\ne: \"7\"\n").unwrap();
        let m = n.as_map().unwrap();
        assert_eq!(m[0].key, "a");
        assert_eq!(m[0].key_loc, Loc { line: 1, column: 1 });
        assert_eq!(m[0].value.value, Value::Int(1));
        let Value::Seq(items) = &m[1].value.value else { panic!() };
        assert_eq!(items[0].loc.line, 3);
        assert_eq!(items[1].get("c").unwrap().value, Value::Bool(true));
        assert_eq!(items[1].get("d").unwrap().value, Value::Float(2.5));
        assert_eq!(m[2].value.value, Value::Str("7".into()));
        assert_eq!(m[2].value.loc.line, 5);
    }

    #[test]
    fn a_key_given_twice_names_both_places() {
        let Err(Error::Duplicate(d)) = parse("stages:\n  a: 1\n  b: 2\n  a: 3\n") else {
            panic!("expected a duplicate")
        };
        assert_eq!(d.key, "a");
        assert_eq!(d.again.line, 4);
    }

    #[test]
    fn empty_text_is_null_and_broken_text_says_where() {
        assert_eq!(parse("  \n").unwrap().value, Value::Null);
        let Err(Error::Syntax { at, .. }) = parse("a: [1, 2\n") else {
            panic!()
        };
        assert!(at.is_some());
    }
}
