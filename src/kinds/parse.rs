//! `parse`: one value per row, parsed from another stage's per-row text (an LLM answer) by a
//! named parser, fixed or chosen per row through a lookup (the templates CSV's `parser`).
//!
//! Text parsers give text (an essay); number parsers give a number or a parse error, kept as
//! JSON (`{"value": 7.0}` or `{"error": "..."}`). Each parse is an action: a response is
//! parsed once, and its result is cached by the response's content hash.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;

use crate::engine::cx::{ComputeCx, PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, maybe, opt, req};
use crate::engine::keys::{Hash, Input, Manifest};
use crate::engine::kind::{Artifact, Computed, Decl, Kind, Planned, Ref, Shape, Stage, Value, Work};
use crate::engine::rows::Rows;
use crate::engine::text::lossy;
use crate::engine::yaml::{Loc, Value as Yaml};
use crate::kinds::lookup::{Bound, Lookup, Taken};
use crate::seed::parsing::{EssayStrategy, ScoreRange, ScoreStrategy, parse_score};

pub struct ParseKind;

pub const PARSERS: &[&str] = &[
    "xml_tags",
    "last_tag",
    "section_headers",
    "fallback",
    "copy",
    "regex",
    "json_field",
    "in_last_line",
    "complex",
];

const FIELDS: &[FieldDoc] = &[
    req(
        "input",
        FieldType::Stage,
        "the per-row stage whose texts are parsed (an llm stage)",
    ),
    req(
        "parser",
        FieldType::StrOrMap,
        "a parser name, or a lookup giving one per row: {from: templates, by: template_column, take: parser}",
    ),
    maybe(
        "default",
        FieldType::Str,
        "the parser of rows whose looked-up parser is empty",
    ),
    maybe(
        "range",
        FieldType::StrOrMap,
        "score parsers: the valid range MIN-MAX (default 0-10), or a lookup giving one per row",
    ),
    opt(
        "tag",
        FieldType::Str,
        "essay",
        "xml_tags and last_tag: the element whose text is taken",
    ),
    maybe(
        "pattern",
        FieldType::Str,
        "regex: the regular expression (its first capture group is taken, or `group`)",
    ),
    opt(
        "group",
        FieldType::Int { min: 0 },
        "1",
        "regex: the capture group taken",
    ),
    maybe(
        "field",
        FieldType::Str,
        "json_field: the field taken, dotted for nested objects (a.b.0.c)",
    ),
    opt(
        "type",
        FieldType::Choice(&["text", "number"]),
        "text",
        "regex and json_field: what the taken text is",
    ),
    maybe(
        "output",
        FieldType::Pattern,
        "one file per row (default: kept in the store only)",
    ),
];

/// A parser name, or a lookup giving one per row.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    Fixed(String, Loc),
    PerRow(Lookup),
}

#[derive(Debug, PartialEq)]
pub struct ParseStage {
    input: Ref,
    parser: Choice,
    default: Option<String>,
    range: Option<Choice>,
    tag: String,
    pattern: Option<(String, Loc)>,
    group: usize,
    field: Option<String>,
    number: bool,
    output: Option<Decl>,
    refs: Vec<Ref>,
}

pub fn choice(f: &mut Fields, name: &'static str, node: &crate::engine::yaml::Node) -> Result<Choice, Diag> {
    match &node.value {
        Yaml::Str(s) => Ok(Choice::Fixed(s.clone(), node.loc)),
        Yaml::Map(_) => Ok(Choice::PerRow(Lookup::parse(f, name, node)?)),
        _ => Err(f.wrong(
            name,
            node,
            "a name, or a lookup {from: stage, by: column, take: column}",
        )),
    }
}

impl Kind for ParseKind {
    fn name(&self) -> &'static str {
        "parse"
    }

    fn about(&self) -> &'static str {
        "one value per row parsed from another stage's text by a named parser (fixed, or per row)"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        let input = f.stage_ref("input", Shape::PerRow)?;
        let node = f.node("parser")?;
        let parser = choice(f, "parser", node)?;
        if let Choice::Fixed(name, loc) = &parser
            && !PARSERS.contains(&name.as_str())
        {
            return Err(unknown_parser(&f.diag(String::new(), *loc), name, *loc, f));
        }
        let default = f.opt_string("default")?.map(|s| s.value);
        let range = match f.opt_node("range") {
            Some(n) => Some(choice(f, "range", n)?),
            None => None,
        };
        if let Some(Choice::Fixed(r, loc)) = &range {
            ScoreRange::parse(r).map_err(|e| f.diag(format!("`range` of stage `{}`: {e}", f.stage), *loc))?;
        }
        let tag = f.opt_string("tag")?.map_or("essay".to_owned(), |s| s.value);
        let pattern = f.opt_string("pattern")?.map(|s| (s.value, s.loc));
        if let Some((p, loc)) = &pattern {
            regex::Regex::new(p).map_err(|e| {
                f.diag(
                    format!("`pattern` of stage `{}` is not a regular expression: {e}", f.stage),
                    *loc,
                )
            })?;
        }
        let group = f.int("group", 0, Some(1))?.value as usize;
        let field = f.opt_string("field")?.map(|s| s.value);
        let number = f.choice("type", &["text", "number"], "text")? == "number";
        let output = f.output_pattern("output", false)?;
        Ok(Arc::new(ParseStage {
            input,
            parser,
            default,
            range,
            tag,
            pattern,
            group,
            field,
            number,
            output,
            refs: f.refs(),
        }))
    }
}

fn unknown_parser(_d: &Diag, name: &str, loc: Loc, f: &Fields) -> Diag {
    let d = f.diag(format!("unknown parser `{name}` in stage `{}`", f.stage), loc);
    match crate::engine::diag::nearest(name, PARSERS.iter().copied()) {
        Some(n) => d.help(format!("did you mean `{n}`? (parsers: {})", PARSERS.join(", "))),
        None => d.help(format!("the parsers are: {}", PARSERS.join(", "))),
    }
}

/// One row's parser, resolved.
#[derive(Clone, Debug, PartialEq)]
enum Parser {
    Essay(EssayStrategy),
    Element { tag: String, last: bool },
    Copy,
    Regex,
    Json,
    Score(ScoreStrategy, ScoreRange),
}

impl Parser {
    fn name(&self) -> String {
        match self {
            Parser::Essay(s) => s.name().to_owned(),
            Parser::Element { tag, last } => format!("{}:{tag}", if *last { "last_tag" } else { "xml_tags" }),
            Parser::Copy => "copy".into(),
            Parser::Regex => "regex".into(),
            Parser::Json => "json_field".into(),
            Parser::Score(s, r) => format!("{}:{r}", s.name()),
        }
    }
}

/// Where a looked-up cell came from: its file and line.
type Place = Option<(String, u32)>;

/// What `plan` keeps: each artifact's parser and input.
struct Parses {
    items: Vec<(Parser, Hash)>,
}

/// One row's parser as named (the default applied), its score range text, and where both
/// came from, for messages.
pub struct RowRule {
    pub name: String,
    pub range: String,
    /// The column the range was looked up in (for messages).
    range_column: Option<String>,
    place: Place,
    loc: Loc,
    range_place: Place,
    range_loc: Loc,
}

impl RowRule {
    /// The score range of a score parser (0-10 when none is named).
    pub fn score_range(&self, cx: &PlanCx, row: &str) -> Result<ScoreRange, Diag> {
        if self.range.is_empty() {
            return Ok(ScoreRange::SEED);
        }
        ScoreRange::parse(&self.range).map_err(|e| {
            let what = self
                .range_column
                .as_deref()
                .map_or("score range".to_owned(), |c| format!("`{c}`"));
            at(
                cx,
                format!("bad {what} `{}` of row `{row}`: {e}", self.range),
                &self.range_place,
                self.range_loc,
            )
            .help("write the inclusive range as MIN-MAX, e.g. 0-9")
        })
    }
}

/// An error about a row's looked-up cell (file and line when known), or about the stage.
fn at(cx: &PlanCx, what: String, place: &Place, l: Loc) -> Diag {
    match place {
        Some((f, line)) => Diag::new(format!("{what} ({f} line {line}, read by stage `{}`)", cx.stage.name))
            .in_file(f)
            .at(None, *line, 0),
        None => cx.diag(format!("stage `{}`: {what}", cx.stage.name), l),
    }
}

/// Every row's parser name and score range, through the lookups: what `parse` parses with, and
/// what an llm stage's `local_score_line` holds the local model to. A table without the
/// looked-up column reads as empty cells: then the `default` parser, and the range 0-10 (as the
/// seed read templates CSVs without these columns).
pub fn row_rules(
    cx: &PlanCx,
    rows: &Rows,
    parser: &Choice,
    default: Option<&str>,
    range: Option<&Choice>,
) -> Result<Vec<RowRule>, Diag> {
    let bind = |l: &Lookup| -> Result<Bound, Diag> {
        Bound::new(
            l,
            rows,
            cx.value_of(&l.from.stage).clone(),
            cx.spec_of(&l.from.stage).stage.clone(),
            &|m, at| cx.diag(format!("stage `{}`: {m}", cx.stage.name), at),
        )
    };
    let per_row = |c: &Choice, r: usize, b: Option<&Bound>| -> Result<(String, Place, Loc), Diag> {
        match (c, b) {
            (Choice::Fixed(s, loc), _) => Ok((s.clone(), None, *loc)),
            (Choice::PerRow(l), Some(b)) => {
                let Some(t) = b.row(rows, r) else {
                    return Err(cx.diag(
                        format!(
                            "stage `{}`: row `{}` looks up `{}` in `{}`, which has no such row",
                            cx.stage.name,
                            rows.id(r),
                            b.key_of(rows, r),
                            l.from.stage
                        ),
                        l.loc,
                    ));
                };
                let text = match b.take(t, None) {
                    Some(Taken::Text(x)) => x.trim().to_owned(),
                    _ => String::new(),
                };
                let target = cx.value_of(&l.from.stage).rows.clone().expect("rows");
                let place = target.place(t).map(|(f, line)| (f.to_owned(), line));
                Ok((text, place, l.loc))
            }
            (Choice::PerRow(l), None) => Ok((String::new(), None, l.loc)),
        }
    };
    let has_column = |l: &Lookup| {
        let target = cx.value_of(&l.from.stage).rows.clone().expect("rows");
        l.take.as_deref().is_none_or(|t| target.column(t).is_some())
    };
    let pb = match parser {
        Choice::PerRow(l) if has_column(l) || default.is_none() => Some(bind(l)?),
        Choice::PerRow(_) | Choice::Fixed(..) => None,
    };
    let rb = match range {
        Some(Choice::PerRow(l)) if has_column(l) => Some(bind(l)?),
        _ => None,
    };
    let range_choice_column: Option<&String> = match range {
        Some(Choice::PerRow(l)) => l.take.as_ref(),
        _ => None,
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in 0..rows.len() {
        let (mut name, place, loc) = per_row(parser, r, pb.as_ref())?;
        if name.is_empty() {
            name = default.unwrap_or_default().to_owned();
        }
        let (range, range_place, range_loc) = match range {
            None => (String::new(), None, loc),
            Some(c) => per_row(c, r, rb.as_ref())?,
        };
        out.push(RowRule {
            name,
            range,
            range_column: range_choice_column.cloned(),
            place,
            loc,
            range_place,
            range_loc,
        });
    }
    Ok(out)
}

impl ParseStage {
    fn is_number(&self, p: &Parser) -> bool {
        match p {
            Parser::Score(..) => true,
            Parser::Regex | Parser::Json => self.number,
            _ => false,
        }
    }

    /// Every row's parser; an unknown name or a bad range names the row it came from.
    fn parsers(&self, cx: &PlanCx, rows: &Rows) -> Result<Vec<Parser>, Diag> {
        let rules = row_rules(cx, rows, &self.parser, self.default.as_deref(), self.range.as_ref())?;
        let mut cache: HashMap<(String, String), Parser> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        let mut kinds: Option<(bool, usize)> = None;
        for (r, rule) in rules.iter().enumerate() {
            let name = rule.name.as_str();
            let key = (rule.name.clone(), rule.range.clone());
            let p = match cache.get(&key) {
                Some(p) => p.clone(),
                None => {
                    let p = match name {
                        "xml_tags" if self.tag == "essay" => Parser::Essay(EssayStrategy::XmlTags),
                        "xml_tags" => Parser::Element {
                            tag: self.tag.clone(),
                            last: false,
                        },
                        "last_tag" => Parser::Element {
                            tag: self.tag.clone(),
                            last: true,
                        },
                        "section_headers" => Parser::Essay(EssayStrategy::SectionHeaders),
                        "fallback" => Parser::Essay(EssayStrategy::Fallback),
                        "copy" => Parser::Copy,
                        "regex" if self.pattern.is_some() => Parser::Regex,
                        "json_field" if self.field.is_some() => Parser::Json,
                        "regex" | "json_field" => {
                            return Err(cx.diag(
                                format!(
                                    "stage `{}`: parser `{name}` needs `{}:`",
                                    cx.stage.name,
                                    if name == "regex" { "pattern" } else { "field" }
                                ),
                                rule.loc,
                            ));
                        }
                        "in_last_line" | "complex" => Parser::Score(
                            ScoreStrategy::from_name(name).expect("listed"),
                            rule.score_range(cx, rows.id(r))?,
                        ),
                        "" => {
                            return Err(
                                at(cx, format!("row `{}` has no parser", rows.id(r)), &rule.place, rule.loc).help(
                                    format!(
                                        "fill in one of: {} (or give the stage a `default:`)",
                                        PARSERS.join(", ")
                                    ),
                                ),
                            );
                        }
                        other => {
                            let d = at(
                                cx,
                                format!("unknown parser `{other}` for row `{}`", rows.id(r)),
                                &rule.place,
                                rule.loc,
                            );
                            return Err(match crate::engine::diag::nearest(other, PARSERS.iter().copied()) {
                                Some(n) => d.help(format!("did you mean `{n}`? (parsers: {})", PARSERS.join(", "))),
                                None => d.help(format!("the parsers are: {}", PARSERS.join(", "))),
                            });
                        }
                    };
                    cache.insert(key, p.clone());
                    p
                }
            };
            let number = self.is_number(&p);
            match kinds {
                None => kinds = Some((number, r)),
                Some((n, first)) if n != number => {
                    return Err(cx.diag(
                        format!(
                            "stage `{}`: rows `{}` and `{}` have parsers giving {} and {}; one stage gives one kind of value",
                            cx.stage.name,
                            rows.id(first),
                            rows.id(r),
                            if n { "numbers" } else { "text" },
                            if number { "numbers" } else { "text" }
                        ),
                        rule.loc,
                    ));
                }
                _ => {}
            }
            out.push(p);
        }
        Ok(out)
    }

    fn run(&self, p: &Parser, text: &str) -> (Vec<u8>, Option<String>) {
        let number = |r: Result<f64, String>| match r {
            Ok(x) => json!({ "value": x }),
            Err(e) => json!({ "error": e }),
        };
        let text_or_error = |r: Result<String, String>| match r {
            Ok(t) => (t.into_bytes(), None),
            Err(e) => (Vec::new(), Some(json!({ "error": e }).to_string())),
        };
        match p {
            Parser::Essay(s) => {
                let (essay, info) = crate::seed::parsing::essay(text, *s);
                (essay.into_bytes(), Some(info))
            }
            Parser::Element { tag, last } => text_or_error(element(text, tag, *last)),
            Parser::Copy => (text.as_bytes().to_vec(), None),
            Parser::Regex => {
                let re = regex::Regex::new(&self.pattern.as_ref().expect("checked").0).expect("checked");
                let found = re
                    .captures_iter(text)
                    .last()
                    .and_then(|c| c.get(self.group).map(|m| m.as_str().to_owned()))
                    .ok_or_else(|| format!("no match for /{}/", re.as_str()));
                self.typed(found, number, text_or_error)
            }
            Parser::Json => {
                let found = json_field(text, self.field.as_deref().expect("checked"));
                self.typed(found, number, text_or_error)
            }
            Parser::Score(s, range) => (number(parse_score(text, *s, *range)).to_string().into_bytes(), None),
        }
    }

    fn typed(
        &self,
        found: Result<String, String>,
        number: impl Fn(Result<f64, String>) -> serde_json::Value,
        text: impl Fn(Result<String, String>) -> (Vec<u8>, Option<String>),
    ) -> (Vec<u8>, Option<String>) {
        if self.number {
            let n = found.and_then(|s| {
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("`{}` is not a number", s.trim()))
            });
            (number(n).to_string().into_bytes(), None)
        } else {
            text(found)
        }
    }
}

/// The text of the first (or last) `<tag ...>...</tag>` element.
fn element(text: &str, tag: &str, last: bool) -> Result<String, String> {
    let re =
        regex::Regex::new(&format!(r"(?s)<{t}(?:\s[^>]*)?>(.*?)</{t}\s*>", t = regex::escape(tag))).expect("escaped");
    let mut it = re.captures_iter(text);
    let c = if last { it.last() } else { it.next() };
    c.map(|c| c[1].trim().to_owned())
        .ok_or_else(|| format!("no <{tag}> element"))
}

/// A field of a JSON answer (the first JSON object in the text), dotted for nested ones.
fn json_field(text: &str, path: &str) -> Result<String, String> {
    let start = text.find('{').ok_or("no JSON object in the answer")?;
    let mut de = serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>();
    let mut v = de
        .next()
        .ok_or("no JSON object in the answer")?
        .map_err(|e| format!("the JSON does not parse: {e}"))?;
    for part in path.split('.') {
        v = match v {
            serde_json::Value::Object(mut m) => m.remove(part),
            serde_json::Value::Array(mut a) => part
                .parse::<usize>()
                .ok()
                .filter(|&i| i < a.len())
                .map(|i| a.swap_remove(i)),
            _ => None,
        }
        .ok_or_else(|| format!("no field `{path}`"))?;
    }
    Ok(match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

/// A parse result as `collect` reads it: the value's text, or the error.
pub fn decode(content: &[u8], info: Option<&str>, number: bool) -> Result<String, String> {
    if number {
        let v: serde_json::Value =
            serde_json::from_slice(content).map_err(|e| format!("unreadable parse result: {e}"))?;
        if let Some(x) = v.get("value").and_then(|x| x.as_f64()) {
            return Ok(crate::seed::pyfmt::float_repr(x));
        }
        return Err(v
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("unreadable parse result")
            .to_owned());
    }
    match info.and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok()) {
        Some(v) if content.is_empty() && v.get("error").is_some() => {
            Err(v["error"].as_str().unwrap_or("parse failed").to_owned())
        }
        _ => Ok(lossy(content).into_owned()),
    }
}

impl ParseStage {
    /// Whether this stage gives numbers (its first row's parser tells; they all agree).
    pub fn gives_numbers(&self, planned: &Planned) -> bool {
        planned
            .data::<Parses>()
            .and_then(|p| p.items.first())
            .is_some_and(|(p, _)| self.is_number(p))
    }

    /// The input stage (for `collect`'s `$source`).
    pub fn input(&self) -> &Ref {
        &self.input
    }
}

impl Stage for ParseStage {
    fn refs(&self) -> Vec<Ref> {
        self.refs.clone()
    }

    fn offers(&self) -> &'static [Shape] {
        &[Shape::Rows, Shape::PerRow]
    }

    fn outputs(&self) -> Vec<Decl> {
        self.output.iter().cloned().collect()
    }

    fn reads_outputs(&self) -> bool {
        true
    }

    fn row_source(&self) -> Option<&str> {
        Some(&self.input.stage)
    }

    fn size_bound(
        &self,
        cx: &PlanCx,
        _spec: &crate::engine::spec::StageSpec,
        _value: &Value,
        row: usize,
    ) -> Option<u64> {
        // a parsed text is at most the text it was parsed from
        let input = cx.spec_of(&self.input.stage);
        input.stage.size_bound(cx, input, cx.value_of(&self.input.stage), row)
    }

    fn value(&self, cx: &ValueCx) -> Result<Value, Diag> {
        let up = cx.upstream(&self.input.stage)?;
        let rows = up.rows.clone().expect("a per-row stage has rows");
        let summary = format!("{} parsed", rows.len());
        Ok(Value {
            rows: Some(rows),
            data: None,
            summary,
        })
    }

    fn check(&self, cx: &PlanCx) -> Result<(), Diag> {
        self.parsers(cx, cx.value.rows.as_ref().expect("rows")).map(|_| ())
    }

    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag> {
        let rows = cx.value.rows.clone().expect("rows");
        let parsers = self.parsers(cx, &rows)?;
        let input = cx.done_of(&self.input.stage).expect("the input was made before");
        let pattern: Option<Vec<&str>> = self.output.as_ref().map(|o| o.path.split("{id}").collect());
        let mut artifacts = Vec::new();
        let mut items = Vec::new();
        let mut blocked = 0;
        for (r, p) in parsers.into_iter().enumerate() {
            let id = rows.id(r);
            let Some((a, Some(hash))) = input.of_task(id) else {
                blocked += 1;
                continue;
            };
            let gives = if self.is_number(&p) { "number" } else { "text" };
            let m = Manifest::new("parse")
                .param("parser", p.name())
                .param("gives", gives)
                .param(
                    "options",
                    match &p {
                        Parser::Regex => format!(
                            "pattern={} group={} type={}",
                            self.pattern.as_ref().expect("checked").0,
                            self.group,
                            if self.number { "number" } else { "text" }
                        ),
                        Parser::Json => format!(
                            "field={} type={}",
                            self.field.as_deref().unwrap_or(""),
                            if self.number { "number" } else { "text" }
                        ),
                        _ => String::new(),
                    },
                )
                .input(Input {
                    name: "input".into(),
                    path: Some(a.path.clone()),
                    hash,
                });
            artifacts.push(Artifact {
                path: match &pattern {
                    Some(p) => p.join(id),
                    None => format!("{}/{id}", cx.stage.name),
                },
                task: Some(id.to_owned()),
                key: m.key(),
                work: Work::Compute(items.len() as u32),
                materialize: self.output.is_some(),
                group: None,
                manifest: Some(Arc::new(m)),
            });
            items.push((p, hash));
        }
        Ok(Planned {
            summary: None,
            artifacts,
            blocked,
            data: Some(Arc::new(Parses { items })),
        })
    }

    fn compute(&self, cx: &mut ComputeCx, a: &Artifact) -> Result<Computed> {
        let parses: &Parses = cx.planned.data().expect("parses");
        let Work::Compute(i) = a.work else {
            unreachable!("parses are computed")
        };
        let (p, hash) = &parses.items[i as usize];
        let text = cx
            .content(hash)?
            .with_context(|| format!("the store lost the text parsed into {}", a.path))?;
        let (content, info) = self.run(p, &lossy(&text));
        Ok(Computed {
            content: Arc::from(content),
            info,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_first_and_last() {
        let t = "<idea>one</idea> and <idea kind=\"x\">\n two \n</idea>";
        assert_eq!(element(t, "idea", false).unwrap(), "one");
        assert_eq!(element(t, "idea", true).unwrap(), "two");
        assert!(element(t, "essay", false).is_err());
    }

    #[test]
    fn json_fields_nested_and_missing() {
        let t = "Here: {\"a\": {\"b\": [1, {\"c\": 7.5}]}, \"s\": \"x\"} done";
        assert_eq!(json_field(t, "a.b.1.c").unwrap(), "7.5");
        assert_eq!(json_field(t, "s").unwrap(), "x");
        assert!(json_field(t, "a.z").is_err());
        assert!(json_field("no json", "a").is_err());
    }

    #[test]
    fn decoded_values_and_errors() {
        assert_eq!(decode(br#"{"value": 7.0}"#, None, true), Ok("7.0".into()));
        assert_eq!(decode(br#"{"error": "no score"}"#, None, true), Err("no score".into()));
        assert_eq!(decode(b"an essay", None, false), Ok("an essay".into()));
        assert_eq!(
            decode(b"", Some(r#"{"error": "no <x> element"}"#), false),
            Err("no <x> element".into())
        );
    }
}
