//! Reading a stage's YAML into typed values. A kind asks for each field by name and type; the
//! reader checks the type, range, path rules and stage references, remembers the field's place
//! for later messages, and at the end rejects any key the kind did not ask for ("did you mean").
//! Every error names the file, line and column of the value. No I/O beyond "does this exist".

use super::kind::{Decl, DeclKind, Ref, Shape};
use super::yaml::{Entry, Loc, Node, Value};
use crate::engine::diag::{Diag, nearest};

/// A field of a kind, for docs, the JSON Schema and suggestions.
#[derive(Clone, Copy, Debug)]
pub struct FieldDoc {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub enum FieldType {
    Str,
    /// An input file that must exist.
    File,
    /// An input directory (may be absent).
    Dir,
    /// An output file.
    Output,
    /// An output path with `{id}`: one file per row.
    Pattern,
    /// A path with `{column}` holes: one input file per row (a template chosen by a column).
    FilePattern,
    /// The name of another stage.
    Stage,
    Int {
        min: i64,
    },
    Num {
        min: f64,
        max: f64,
    },
    Bool,
    Choice(&'static [&'static str]),
    /// A provider declared under `providers:`, or `auto`.
    Provider,
    /// A mapping whose shape the doc describes.
    Map,
    /// A list whose items the doc describes.
    List,
    /// A string, or a mapping the doc describes (a lookup).
    StrOrMap,
}

pub const fn req(name: &'static str, ty: FieldType, doc: &'static str) -> FieldDoc {
    FieldDoc {
        name,
        ty,
        required: true,
        default: None,
        doc,
    }
}

pub const fn opt(name: &'static str, ty: FieldType, default: &'static str, doc: &'static str) -> FieldDoc {
    FieldDoc {
        name,
        ty,
        required: false,
        default: Some(default),
        doc,
    }
}

/// A field that may be absent, with no default value.
pub const fn maybe(name: &'static str, ty: FieldType, doc: &'static str) -> FieldDoc {
    FieldDoc {
        name,
        ty,
        required: false,
        default: None,
        doc,
    }
}

/// A value with the place it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct At<T> {
    pub value: T,
    pub loc: Loc,
}

/// What the reader needs of the whole file.
pub struct SpecCx<'a> {
    pub file: &'a str,
    pub source: &'a str,
    pub exists: &'a dyn Fn(&str) -> bool,
    pub providers: Vec<String>,
}

impl SpecCx<'_> {
    pub fn diag(&self, message: impl Into<String>, loc: Loc) -> Diag {
        Diag::new(message)
            .in_file(self.file)
            .at(Some(self.source), loc.line, loc.column)
    }
}

/// The fields of one stage, read one by one.
pub struct Fields<'a> {
    pub stage: String,
    pub kind: &'static str,
    pub loc: Loc,
    docs: &'static [FieldDoc],
    entries: &'a [Entry],
    used: Vec<bool>,
    pub cx: &'a SpecCx<'a>,
    refs: Vec<Ref>,
}

impl<'a> Fields<'a> {
    pub fn new(
        cx: &'a SpecCx<'a>,
        stage: &str,
        kind: &'static str,
        loc: Loc,
        docs: &'static [FieldDoc],
        entries: &'a [Entry],
    ) -> Fields<'a> {
        Fields {
            stage: stage.to_owned(),
            kind,
            loc,
            docs,
            entries,
            used: entries.iter().map(|e| e.key == "kind").collect(),
            cx,
            refs: Vec::new(),
        }
    }

    pub fn diag(&self, message: impl Into<String>, loc: Loc) -> Diag {
        self.cx.diag(message, loc)
    }

    fn doc(&self, name: &str) -> &'static str {
        self.docs.iter().find(|d| d.name == name).map_or("", |d| d.doc)
    }

    /// The node of a field, if written (marks it as read).
    pub fn opt_node(&mut self, name: &str) -> Option<&'a Node> {
        let i = self.entries.iter().position(|e| e.key == name)?;
        self.used[i] = true;
        let n = &self.entries[i].value;
        (n.value != Value::Null).then_some(n)
    }

    /// The node of a required field. When it is missing but a key the kind does not know is a
    /// near miss of it (`kmax`), that key is the error: "did you mean `k_max`?".
    pub fn node(&mut self, name: &str) -> Result<&'a Node, Diag> {
        if self.entries.iter().all(|e| e.key != name)
            && let Some(e) = self.entries.iter().find(|e| {
                !self.docs.iter().any(|d| d.name == e.key)
                    && e.key != "kind"
                    && nearest(&e.key, self.docs.iter().map(|d| d.name)) == Some(name)
            })
        {
            return Err(self
                .diag(
                    format!(
                        "unknown key `{}` in stage `{}` (kind `{}`)",
                        e.key, self.stage, self.kind
                    ),
                    e.key_loc,
                )
                .help(format!("did you mean `{name}`?")));
        }
        self.opt_node(name).ok_or_else(|| {
            self.diag(
                format!("stage `{}` (kind `{}`) is missing `{name}`", self.stage, self.kind),
                self.loc,
            )
            .help(format!("add `{name}:` ({})", self.doc(name)))
        })
    }

    /// An error about the value of a field: "`x` in stage `s` must be ...".
    pub fn wrong(&self, name: &str, n: &Node, what: &str) -> Diag {
        let d = self.diag(format!("`{name}` in stage `{}` must be {what}", self.stage), n.loc);
        match self.doc(name) {
            "" => d,
            doc => d.help(doc),
        }
    }

    pub fn string(&mut self, name: &str) -> Result<At<String>, Diag> {
        let n = self.node(name)?;
        self.string_of(name, n)
    }

    pub fn opt_string(&mut self, name: &str) -> Result<Option<At<String>>, Diag> {
        match self.opt_node(name) {
            Some(n) => self.string_of(name, n).map(Some),
            None => Ok(None),
        }
    }

    pub fn string_of(&self, name: &str, n: &Node) -> Result<At<String>, Diag> {
        match &n.value {
            Value::Str(s) => Ok(At {
                value: s.clone(),
                loc: n.loc,
            }),
            _ => Err(self.wrong(name, n, "a string")),
        }
    }

    /// A reference to another stage that must offer `needs` (checked once every stage is read).
    pub fn stage_ref(&mut self, name: &'static str, needs: Shape) -> Result<Ref, Diag> {
        let s = self.string(name)?;
        self.push_ref(name, s, needs)
    }

    pub fn opt_stage_ref(&mut self, name: &'static str, needs: Shape) -> Result<Option<Ref>, Diag> {
        match self.opt_string(name)? {
            Some(s) => self.push_ref(name, s, needs).map(Some),
            None => Ok(None),
        }
    }

    /// A reference found inside a field's structure (a lookup's `from:`).
    pub fn push_ref(&mut self, field: &'static str, s: At<String>, needs: Shape) -> Result<Ref, Diag> {
        let r = Ref {
            field,
            stage: s.value,
            loc: s.loc,
            needs,
        };
        self.refs.push(r.clone());
        Ok(r)
    }

    /// The references read so far (the stage returns them from `Stage::refs`).
    pub fn refs(&self) -> Vec<Ref> {
        self.refs.clone()
    }

    pub fn int(&mut self, name: &str, min: i64, default: Option<i64>) -> Result<At<i64>, Diag> {
        let Some(n) = self.opt_node(name) else {
            return match default {
                Some(v) => Ok(At {
                    value: v,
                    loc: self.loc,
                }),
                None => Err(self.node(name).expect_err("absent")),
            };
        };
        match n.value {
            Value::Int(i) if i >= min => Ok(At { value: i, loc: n.loc }),
            Value::Int(_) => Err(self.wrong(name, n, &format!("a whole number of at least {min}"))),
            _ => Err(self.wrong(name, n, "a whole number")),
        }
    }

    pub fn float(&mut self, name: &str, min: f64, max: f64, default: f64) -> Result<f64, Diag> {
        let Some(n) = self.opt_node(name) else {
            return Ok(default);
        };
        let x = match n.value {
            Value::Int(i) => i as f64,
            Value::Float(x) => x,
            _ => f64::NAN,
        };
        if (min..=max).contains(&x) {
            Ok(x)
        } else {
            Err(self.wrong(name, n, &format!("a number from {min} to {max}")))
        }
    }

    pub fn bool(&mut self, name: &str, default: bool) -> Result<bool, Diag> {
        match self.opt_node(name) {
            None => Ok(default),
            Some(Node {
                value: Value::Bool(b), ..
            }) => Ok(*b),
            Some(n) => Err(self.wrong(name, n, "true or false")),
        }
    }

    pub fn choice(
        &mut self,
        name: &str,
        choices: &[&'static str],
        default: &'static str,
    ) -> Result<&'static str, Diag> {
        let Some(n) = self.opt_node(name) else {
            return Ok(default);
        };
        let Value::Str(s) = &n.value else {
            return Err(self.wrong(name, n, &format!("one of: {}", choices.join(", "))));
        };
        if let Some(c) = choices.iter().find(|c| **c == s) {
            return Ok(c);
        }
        let d = self.diag(
            format!(
                "`{name}` in stage `{}` is `{s}`, expected one of: {}",
                self.stage,
                choices.join(", ")
            ),
            n.loc,
        );
        Err(match nearest(s, choices.iter().copied()) {
            Some(x) => d.help(format!("did you mean `{x}`?")),
            None => d,
        })
    }

    /// A provider name declared under `providers:`, or `auto`.
    pub fn provider(&mut self, name: &str) -> Result<String, Diag> {
        let Some(n) = self.opt_node(name) else {
            return Ok("auto".into());
        };
        let s = self.string_of(name, n)?;
        check_provider(self.cx, &s.value, s.loc, &format!("`{name}` of stage `{}`", self.stage))?;
        Ok(s.value)
    }

    /// A path relative to the project, checked and normalised.
    pub fn path(&mut self, name: &'static str, what: DeclKind, required: bool) -> Result<Option<Decl>, Diag> {
        let n = if required {
            Some(self.node(name)?)
        } else {
            self.opt_node(name)
        };
        let Some(n) = n else { return Ok(None) };
        let s = self.string_of(name, n)?;
        let path = normalize(&s.value).ok_or_else(|| {
            self.diag(
                format!(
                    "`{name}: {}` in stage `{}` must be a relative path inside the project",
                    s.value, self.stage
                ),
                s.loc,
            )
            .help("write paths relative to the directory holding pipeline.yaml, without `..`")
        })?;
        let decl = Decl {
            field: name,
            path,
            loc: s.loc,
            what,
        };
        match what {
            DeclKind::File if (self.cx.exists)(&decl.path) => {}
            DeclKind::File => {
                return Err(self
                    .diag(
                        format!("input file `{}` of stage `{}` does not exist", decl.path, self.stage),
                        s.loc,
                    )
                    .help(format!("create it, or point `{name}` at an existing file")));
            }
            DeclKind::Pattern => {
                if let Some(problem) = super::paths::pattern_problem(&decl.path) {
                    return Err(self
                        .diag(
                            format!("`{name}: {}` in stage `{}`: {problem}", decl.path, self.stage),
                            s.loc,
                        )
                        .help("one file is written per row; `{id}` is replaced by the row's id"));
                }
            }
            DeclKind::InputPattern => {
                super::rows::Format::parse(&decl.path)
                    .map_err(|e| self.diag(format!("`{name}` in stage `{}`: {e}", self.stage), s.loc))?;
            }
            _ => {}
        }
        Ok(Some(decl))
    }

    pub fn input_file(&mut self, name: &'static str) -> Result<Decl, Diag> {
        Ok(self.path(name, DeclKind::File, true)?.expect("required"))
    }

    pub fn input_dir(&mut self, name: &'static str) -> Result<Decl, Diag> {
        Ok(self.path(name, DeclKind::Dir, true)?.expect("required"))
    }

    /// An output file (not an input: existence is not required).
    pub fn output_file(&mut self, name: &'static str) -> Result<Decl, Diag> {
        let n = self.node(name)?;
        let s = self.string_of(name, n)?;
        let path = normalize(&s.value).ok_or_else(|| {
            self.diag(
                format!(
                    "`{name}: {}` in stage `{}` must be a relative path inside the project",
                    s.value, self.stage
                ),
                s.loc,
            )
            .help("write paths relative to the directory holding pipeline.yaml, without `..`")
        })?;
        Ok(Decl {
            field: name,
            path,
            loc: s.loc,
            what: DeclKind::File,
        })
    }

    pub fn output_pattern(&mut self, name: &'static str, required: bool) -> Result<Option<Decl>, Diag> {
        self.path(name, DeclKind::Pattern, required)
    }

    /// Ends reading: a key the kind did not ask for is an error.
    pub fn finish(self) -> Result<(), Diag> {
        for (e, used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let d = self.diag(
                format!(
                    "unknown key `{}` in stage `{}` (kind `{}`)",
                    e.key, self.stage, self.kind
                ),
                e.key_loc,
            );
            let names: Vec<&str> = self.docs.iter().map(|d| d.name).collect();
            return Err(match nearest(&e.key, names.iter().copied()) {
                Some(n) => d.help(format!("did you mean `{n}`?")),
                None => d.help(format!("a `{}` stage takes: kind, {}", self.kind, names.join(", "))),
            });
        }
        Ok(())
    }
}

/// `./a//b/c` -> `a/b/c`; `None` for an absolute path, `..`, or an empty one.
pub fn normalize(s: &str) -> Option<String> {
    let p = std::path::Path::new(s);
    if s.is_empty() || p.is_absolute() || s.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(x) => parts.push(x.to_str()?),
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

pub fn check_provider(cx: &SpecCx, name: &str, at: Loc, what: &str) -> Result<(), Diag> {
    if name == "auto" || cx.providers.iter().any(|p| p == name) {
        return Ok(());
    }
    let names: Vec<&str> = cx.providers.iter().map(String::as_str).chain(["auto"]).collect();
    let d = cx.diag(
        format!("{what} names `{name}`, which is not a provider declared under `providers:`"),
        at,
    );
    Err(match nearest(name, names.iter().copied()) {
        Some(n) => d.help(format!("did you mean `{n}`?")),
        None => d.help(format!("the providers are: {}", names.join(", "))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(normalize("./a//b/c.txt").as_deref(), Some("a/b/c.txt"));
        assert_eq!(normalize(".daydream/store.db").as_deref(), Some(".daydream/store.db"));
        assert_eq!(normalize("a/../b"), None);
        assert_eq!(normalize("/etc/passwd"), None);
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("."), None);
    }
}
