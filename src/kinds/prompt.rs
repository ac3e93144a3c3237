//! `prompt`: one prompt per row, rendered from a Jinja template (one file for every row, or a
//! file chosen by the row's columns) with the row's columns and named lookups as its context.
//!
//! A prompt's key covers the template and exactly the variables the template uses, so an edit
//! to a column no template reads changes nothing, and rows that render the same prompt share
//! one key. When nothing the prompts read waits for the run, the keys are computed with salsa,
//! one part per template file, so an edit to one template re-plans only its prompts.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::engine::cx::{ComputeCx, PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, maybe, opt, req};
use crate::engine::keys::{FastMap, Hash, Input, KeyHead, Manifest};
use crate::engine::kind::{
    Artifact, Computed, Data, Decl, DeclKind, Done, Kind, Planned, Ref, Shape, Stage, Value, Work,
};
use crate::engine::rows::{Format, Rows};
use crate::engine::text::{lossy, py_strip};
use crate::engine::yaml::Loc;
use crate::kinds::jinja::{Renderer, Undefined};
use crate::kinds::lookup::{Bound, Lookup, Taken, inputs_of};
use crate::kinds::table::{id_grammar, valid_id};

pub struct PromptKind;

const FIELDS: &[FieldDoc] = &[
    req("rows", FieldType::Stage, "the stage whose rows get a prompt each"),
    req(
        "template",
        FieldType::FilePattern,
        "the Jinja template: one file, or one chosen by columns, e.g. templates/generation/{generation_template}.txt",
    ),
    maybe(
        "context",
        FieldType::Map,
        "template variables beyond the row's columns: name: {from: stage, by: column[, on: column][, take: column or field]}",
    ),
    opt(
        "undefined",
        FieldType::Choice(&["strict", "lenient"]),
        "strict",
        "an undefined variable is an error naming template, line and variable (strict), or renders empty as the seed did (lenient)",
    ),
    req("output", FieldType::Pattern, "one file per row; must contain {id}"),
    opt(
        "materialize",
        FieldType::Bool,
        "true",
        "write the prompt files (false: keep them in the store only)",
    ),
];

#[derive(Debug, PartialEq)]
pub struct PromptStage {
    rows: Ref,
    template: (Format, Decl),
    context: Vec<(String, Lookup)>,
    undefined: Undefined,
    output: Decl,
    materialize: bool,
    refs: Vec<Ref>,
}

impl Kind for PromptKind {
    fn name(&self) -> &'static str {
        "prompt"
    }

    fn about(&self) -> &'static str {
        "one prompt per row, rendered from a Jinja template with the row's columns and lookups"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        let rows = f.stage_ref("rows", Shape::Rows)?;
        let template = f.path("template", DeclKind::InputPattern, true)?.expect("required");
        let format = Format::parse(&template.path).map_err(|e| f.diag(e, template.loc))?;
        let mut context = Vec::new();
        if let Some(node) = f.opt_node("context") {
            let Some(map) = node.as_map() else {
                return Err(f.wrong("context", node, "a mapping of variable: lookup"));
            };
            for e in map {
                context.push((e.key.clone(), Lookup::parse(f, "context", &e.value)?));
            }
        }
        let undefined = Undefined::from_name(f.choice("undefined", &["strict", "lenient"], "strict")?);
        let output = f.output_pattern("output", true)?.expect("required");
        let materialize = f.bool("materialize", true)?;
        Ok(Arc::new(PromptStage {
            rows,
            template: (format, template),
            context,
            undefined,
            output,
            materialize,
            refs: f.refs(),
        }))
    }
}

/// Each row's template.
#[derive(Debug, PartialEq)]
struct RowTemplates {
    paths: Vec<String>,
    of_row: Vec<u32>,
}

/// One template: its text (as the seed used it: stripped), the variables it reads, and, when the
/// prompts are planned before the run, the key of each of its rows.
#[derive(Debug, PartialEq)]
struct TemplatePart {
    path: String,
    text: Arc<str>,
    used: Vec<String>,
    rows: Vec<u32>,
    keys: Vec<Hash>,
}

/// The value's data: the templates, and (planned before the run) every row's key.
#[derive(Debug, PartialEq)]
struct PromptPlan {
    templates: RowTemplates,
    parts: Vec<Arc<TemplatePart>>,
    keys: Vec<Hash>,
}

/// How a stage reaches the value and the stage of another stage.
type Upstream<'a> = &'a dyn Fn(&str) -> Result<(Value, Arc<dyn Stage>), Diag>;

/// What `plan` keeps for `compute` and `manifest`.
struct Planning {
    rows: Arc<Rows>,
    of_row: Vec<u32>,
    parts: Vec<Arc<TemplatePart>>,
    bound: Vec<Bound>,
}

fn template_manifest(undefined: Undefined, path: &str, text: &str) -> Manifest {
    crate::kinds::jinja::template_manifest("prompt", undefined, path, Hash::of(text.as_bytes()))
}

impl PromptStage {
    /// The stage whose rows get a prompt each.
    pub fn rows_stage(&self) -> &str {
        &self.rows.stage
    }

    fn row_templates(&self, rows: &Rows, diag: &dyn Fn(String, Loc) -> Diag) -> Result<RowTemplates, Diag> {
        let format = &self.template.0;
        let loc = self.template.1.loc;
        if format.is_fixed() {
            return Ok(RowTemplates {
                paths: vec![self.template.1.path.clone()],
                of_row: vec![0; rows.len()],
            });
        }
        let cols: Vec<(&str, usize)> = format
            .holes()
            .map(|h| {
                let c = rows.column(h).ok_or_else(|| {
                    diag(
                        format!(
                            "`template` names `{{{h}}}`, which is not a column of the rows of `{}`",
                            self.rows.stage
                        ),
                        loc,
                    )
                    .help(format!("their columns are: {}", rows.names.join(", ")))
                })?;
                Ok((h, c))
            })
            .collect::<Result<_, Diag>>()?;
        let mut paths: Vec<String> = Vec::new();
        // a row's template is named by the codes of its cells in the holes' columns (a format has
        // one or two holes; more share the last slot's hash, which only costs a second look)
        let mut by_codes: FastMap<[u32; 4], Vec<(Vec<u32>, u32)>> = FastMap::default();
        let mut of_row = Vec::with_capacity(rows.len());
        for r in 0..rows.len() {
            let mut short = [u32::MAX; 4];
            for (i, (_, c)) in cols.iter().enumerate() {
                let code = rows.columns[*c].codes[r];
                short[i.min(3)] = if i < 3 {
                    code
                } else {
                    short[3].wrapping_mul(31).wrapping_add(code)
                };
            }
            let codes = || -> Vec<u32> { cols.iter().map(|(_, c)| rows.columns[*c].codes[r]).collect() };
            if let Some(seen) = by_codes.get(&short)
                && let Some(&(_, t)) = seen.iter().find(|(k, _)| cols.len() <= 3 || *k == codes())
            {
                of_row.push(t);
                continue;
            }
            for (name, c) in &cols {
                let v = rows.get(r, *c);
                if !valid_id(v) {
                    return Err(diag(
                        format!(
                            "row `{}` has `{name}` {v:?}, which cannot name a template file",
                            rows.id(r)
                        ),
                        loc,
                    )
                    .help(id_grammar()));
                }
            }
            let path = format.render(|h| rows.get(r, cols.iter().find(|(n, _)| *n == h).expect("resolved").1));
            let t = match paths.iter().position(|p| *p == path) {
                Some(i) => i as u32,
                None => {
                    paths.push(path);
                    (paths.len() - 1) as u32
                }
            };
            by_codes.entry(short).or_default().push((codes(), t));
            of_row.push(t);
        }
        Ok(RowTemplates { paths, of_row })
    }

    /// The template's text as the seed used it (stripped), checked for syntax, and the
    /// variables it reads.
    fn load(&self, path: &str, text: &str) -> Result<(Arc<str>, Vec<String>), Diag> {
        let text: Arc<str> = Arc::from(py_strip(text));
        let mut r = Renderer::new(self.undefined);
        r.load(path, &text)?;
        let used = r.variables(path);
        Ok((text, used))
    }

    /// The lookups bound to the rows they read, given a way to reach other stages.
    fn bind(&self, rows: &Rows, get: Upstream, diag: &dyn Fn(String, Loc) -> Diag) -> Result<Vec<Bound>, Diag> {
        self.context
            .iter()
            .map(|(_, l)| {
                let (v, s) = get(&l.from.stage)?;
                Bound::new(l, rows, v, s, diag)
            })
            .collect()
    }

    /// The key inputs of one row for the variables `used`, or `None` when a looked-up output
    /// does not exist yet.
    fn row_inputs<'d>(
        &self,
        rows: &Rows,
        row: usize,
        used: &[String],
        bound: &[Bound],
        done: &dyn Fn(&str) -> Option<&'d Done>,
        diag: &dyn Fn(String, Loc) -> Diag,
    ) -> Result<Option<Vec<Input>>, Diag> {
        let mut inputs = Vec::new();
        for v in used {
            if let Some(i) = self.context.iter().position(|(n, _)| n == v) {
                let b = &bound[i];
                let Some(t) = b.row(rows, row) else {
                    return Err(diag(
                        format!(
                            "row `{}`: `{v}` looks up `{}` in `{}`, which has no such row",
                            rows.id(row),
                            b.key_of(rows, row),
                            b.lookup.from.stage
                        ),
                        b.lookup.loc,
                    ));
                };
                match b.take(t, done(&b.lookup.from.stage)) {
                    Some(Taken::Content { hash: None, .. }) => return Ok(None),
                    None if b.is_content() => return Ok(None),
                    Some(taken) => inputs.extend(inputs_of(v, &taken)),
                    None => {}
                }
            } else if v == "id" {
                inputs.push(Input::new("row.id", None, rows.id(row).as_bytes()));
            } else if let Some(c) = rows.column(v) {
                inputs.push(Input::new(format!("row.{v}"), None, rows.get(row, c).as_bytes()));
            }
        }
        Ok(Some(inputs))
    }

    /// The template context of one row: its columns, its id, and the lookups it uses.
    /// `content(hash)` reads a looked-up output; `None` for a hash means "not made yet" (a
    /// stand-in is used when checking templates).
    fn context<'d>(
        &self,
        rows: &Rows,
        row: usize,
        used: &[String],
        bound: &[Bound],
        done: &dyn Fn(&str) -> Option<&'d Done>,
        content: &dyn Fn(Option<Hash>) -> Result<String>,
    ) -> Result<minijinja::Value> {
        let mut vars: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        for v in used {
            if let Some(i) = self.context.iter().position(|(n, _)| n == v) {
                let b = &bound[i];
                let Some(t) = b.row(rows, row) else { continue };
                let value = match b.take(t, done(&b.lookup.from.stage)) {
                    Some(Taken::Text(x)) => minijinja::Value::from(x),
                    Some(Taken::Field(f)) => f.value,
                    Some(Taken::Content { hash, .. }) => minijinja::Value::from(content(hash)?),
                    None if b.is_content() => minijinja::Value::from(content(None)?),
                    None => continue,
                };
                vars.insert(v.clone(), value);
            } else if v == "id" {
                vars.insert(v.clone(), minijinja::Value::from(rows.id(row)));
            } else if let Some(c) = rows.column(v) {
                vars.insert(v.clone(), minijinja::Value::from(rows.get(row, c)));
            }
        }
        Ok(minijinja::Value::from(vars))
    }
}

fn stage_diag<'a>(name: &'a str, pipeline: &'a crate::engine::spec::Pipeline) -> impl Fn(String, Loc) -> Diag + 'a {
    move |m: String, l: Loc| pipeline.diag(format!("stage `{name}`: {m}"), l)
}

impl Stage for PromptStage {
    fn refs(&self) -> Vec<Ref> {
        self.refs.clone()
    }

    fn offers(&self) -> &'static [Shape] {
        &[Shape::Rows, Shape::PerRow]
    }

    fn inputs(&self) -> Vec<Decl> {
        vec![self.template.1.clone()]
    }

    fn size_bound(
        &self,
        cx: &PlanCx,
        _spec: &crate::engine::spec::StageSpec,
        value: &Value,
        row: usize,
    ) -> Option<u64> {
        let plan: &PromptPlan = value.data()?;
        let rows = value.rows.as_ref()?;
        let part = plan.parts.get(*plan.templates.of_row.get(row)? as usize)?;
        let mut bound = part.text.chars().count() as u64;
        let bound_lookups = self
            .bind(
                rows,
                &|n| Ok((cx.value_of(n).clone(), cx.spec_of(n).stage.clone())),
                &|m, _| Diag::new(m),
            )
            .ok()?;
        for v in &part.used {
            if let Some(i) = self.context.iter().position(|(n, _)| n == v) {
                let b = &bound_lookups[i];
                let t = b.row(rows, row)?;
                bound += match b.take(t, None) {
                    Some(Taken::Text(x)) => x.chars().count() as u64,
                    Some(Taken::Field(f)) => f.value.to_string().chars().count() as u64,
                    _ => {
                        let target = cx.spec_of(&b.lookup.from.stage);
                        target.stage.size_bound(cx, target, cx.value_of(&target.name), t)?
                    }
                };
            } else if let Some(c) = rows.column(v) {
                bound += rows.get(row, c).chars().count() as u64;
            } else if v == "id" {
                bound += rows.id(row).len() as u64;
            }
        }
        Some(bound)
    }

    fn reads_outputs(&self) -> bool {
        self.context.iter().any(|(_, l)| l.take.is_none())
    }

    fn outputs(&self) -> Vec<Decl> {
        vec![self.output.clone()]
    }

    fn value(&self, cx: &ValueCx) -> Result<Value, Diag> {
        let up = cx.upstream(&self.rows.stage)?;
        let rows = up.rows.clone().expect("a rows stage has rows");
        let diag = stage_diag(&cx.stage.name, cx.pipeline);
        let templates = self.row_templates(&rows, &diag)?;
        let mut parts = Vec::new();
        for path in &templates.paths {
            if cx.stage.dynamic {
                // planned in the run; here only the text and its syntax
                let text = cx.require_text(path, "template")?;
                let (text, used) = self.load(path, &text)?;
                parts.push(Arc::new(TemplatePart {
                    path: path.clone(),
                    text,
                    used,
                    rows: Vec::new(),
                    keys: Vec::new(),
                }));
            } else {
                let part = cx.part(path)?;
                parts.push(part.get::<Arc<TemplatePart>>().expect("a template part").clone());
            }
        }
        let mut keys = Vec::new();
        if !cx.stage.dynamic {
            keys = vec![Hash([0; 32]); rows.len()];
            for p in &parts {
                for (&r, k) in p.rows.iter().zip(&p.keys) {
                    keys[r as usize] = *k;
                }
            }
        }
        let summary = format!("{} prompts", rows.len());
        Ok(Value {
            rows: Some(rows),
            data: Some(Data::new(PromptPlan { templates, parts, keys })),
            summary,
        })
    }

    /// One template's prompts: its rows and their keys.
    fn part(&self, cx: &ValueCx, file: &str) -> Result<Data, Diag> {
        let up = cx.upstream(&self.rows.stage)?;
        let rows = up.rows.clone().expect("a rows stage has rows");
        let diag = stage_diag(&cx.stage.name, cx.pipeline);
        let templates = self.row_templates(&rows, &diag)?;
        let t = templates
            .paths
            .iter()
            .position(|p| p == file)
            .expect("a template of this stage") as u32;
        let text = cx.require_text(file, "template")?;
        let (text, used) = self.load(file, &text)?;
        let bound = self.bind(
            &rows,
            &|name| {
                Ok((
                    cx.upstream(name)?,
                    cx.pipeline.stage(name).expect("checked").stage.clone(),
                ))
            },
            &diag,
        )?;
        let head = KeyHead::new(&template_manifest(self.undefined, file, &text));
        // rows that read the same cells and looked-up rows share a key: one row stands for each
        let mut first_of: FastMap<Vec<u32>, u32> = FastMap::default();
        let mut distinct: Vec<u32> = Vec::new();
        let mut part_rows = Vec::new();
        let mut which = Vec::new();
        for r in (0..rows.len()).filter(|&r| templates.of_row[r] == t) {
            let sig: Vec<u32> = used
                .iter()
                .map(|v| {
                    if let Some(i) = self.context.iter().position(|(n, _)| n == v) {
                        bound[i].row(&rows, r).map_or(u32::MAX, |x| x as u32)
                    } else if v == "id" {
                        r as u32
                    } else {
                        rows.column(v).map_or(u32::MAX, |c| rows.columns[c].codes[r])
                    }
                })
                .collect();
            let n = distinct.len() as u32;
            let d = *first_of.entry(sig).or_insert_with(|| {
                distinct.push(r as u32);
                n
            });
            part_rows.push(r as u32);
            which.push(d);
        }
        // the keys of the distinct rows, on every core (each is a serialization and a hash)
        let key_of = |r: u32| -> Result<Hash, Diag> {
            let inputs = self
                .row_inputs(&rows, r as usize, &used, &bound, &|_| None, &diag)?
                .expect("no lookup waits for the run here");
            Ok(head.key([&KeyHead::part(&inputs)[..]]))
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        let chunk = distinct.len().div_ceil(threads).max(1024);
        let distinct_keys: Vec<Hash> = std::thread::scope(|scope| {
            let handles: Vec<_> = distinct
                .chunks(chunk)
                .map(|rs| scope.spawn(|| rs.iter().map(|&r| key_of(r)).collect::<Result<Vec<Hash>, Diag>>()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a key thread does not panic"))
                .collect::<Result<Vec<Vec<Hash>>, Diag>>()
                .map(|v| v.into_iter().flatten().collect())
        })?;
        let keys: Vec<Hash> = which.iter().map(|&d| distinct_keys[d as usize]).collect();
        Ok(Data::new(Arc::new(TemplatePart {
            path: file.to_owned(),
            text,
            used,
            rows: part_rows,
            keys,
        })))
    }

    fn check(&self, cx: &PlanCx) -> Result<(), Diag> {
        if !cx.stage.dynamic {
            return Ok(()); // every prompt is rendered before anything is written
        }
        // render each template once, with stand-ins for what the run will make
        let plan: &PromptPlan = cx.value.data().expect("prompt plan");
        let rows = cx.value.rows.as_ref().expect("rows");
        let diag = stage_diag(&cx.stage.name, cx.pipeline);
        let bound = self.bind(
            rows,
            &|n| Ok((cx.value_of(n).clone(), cx.spec_of(n).stage.clone())),
            &diag,
        )?;
        let mut r = Renderer::new(self.undefined);
        for (t, part) in plan.parts.iter().enumerate() {
            let Some(row) = plan.templates.of_row.iter().position(|&x| x as usize == t) else {
                continue;
            };
            r.load(&part.path, &part.text)?;
            let vars = self
                .context(rows, row, &part.used, &bound, &|_| None, &|_| Ok("essay".into()))
                .map_err(|e| Diag::new(format!("{e:#}")))?;
            r.render(&part.path, &part.text, vars)?;
        }
        Ok(())
    }

    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag> {
        let plan: &PromptPlan = cx.value.data().expect("prompt plan");
        let rows = cx.value.rows.clone().expect("rows");
        let diag = stage_diag(&cx.stage.name, cx.pipeline);
        let bound = self.bind(
            &rows,
            &|n| Ok((cx.value_of(n).clone(), cx.spec_of(n).stage.clone())),
            &diag,
        )?;
        let pattern: Vec<&str> = self.output.path.split("{id}").collect();
        let mut artifacts = Vec::with_capacity(rows.len());
        let mut blocked = 0;
        if !cx.stage.dynamic {
            for r in 0..rows.len() {
                artifacts.push(Artifact {
                    path: pattern.join(rows.id(r)),
                    task: Some(rows.id(r).to_owned()),
                    key: plan.keys[r],
                    work: Work::Compute(r as u32),
                    materialize: self.materialize,
                    group: None,
                    manifest: None,
                });
            }
        } else {
            let heads: Vec<KeyHead> = plan
                .parts
                .iter()
                .map(|p| KeyHead::new(&template_manifest(self.undefined, &p.path, &p.text)))
                .collect();
            for r in 0..rows.len() {
                let t = plan.templates.of_row[r] as usize;
                let part = &plan.parts[t];
                let Some(inputs) = self.row_inputs(&rows, r, &part.used, &bound, &|s| cx.done_of(s), &diag)? else {
                    blocked += 1;
                    continue;
                };
                let key = heads[t].key([&KeyHead::part(&inputs)[..]]);
                let mut m = template_manifest(self.undefined, &part.path, &part.text);
                m.inputs.extend(inputs);
                artifacts.push(Artifact {
                    path: pattern.join(rows.id(r)),
                    task: Some(rows.id(r).to_owned()),
                    key,
                    work: Work::Compute(r as u32),
                    materialize: self.materialize,
                    group: None,
                    manifest: Some(Arc::new(m)),
                });
            }
        }
        Ok(Planned {
            summary: None,
            artifacts,
            blocked,
            data: Some(Arc::new(Planning {
                rows,
                of_row: plan.templates.of_row.clone(),
                parts: plan.parts.clone(),
                bound,
            })),
        })
    }

    fn manifest(&self, _value: &Value, planned: &Planned, a: &Artifact) -> Manifest {
        if let Some(m) = &a.manifest {
            return (**m).clone();
        }
        let p: &Planning = planned.data().expect("prompt planning");
        let Work::Compute(r) = a.work else {
            unreachable!("prompts are computed")
        };
        let part = &p.parts[p.of_row[r as usize] as usize];
        let mut m = template_manifest(self.undefined, &part.path, &part.text);
        let inputs = self
            .row_inputs(&p.rows, r as usize, &part.used, &p.bound, &|_| None, &|m, _| {
                Diag::new(m)
            })
            .ok()
            .flatten()
            .expect("planned before the run: every lookup resolved");
        m.inputs.extend(inputs);
        m
    }

    fn compute(&self, cx: &mut ComputeCx, a: &Artifact) -> Result<Computed> {
        let p: &Planning = cx.planned.data().expect("prompt planning");
        let Work::Compute(r) = a.work else {
            unreachable!("prompts are computed")
        };
        let part = p.parts[p.of_row[r as usize] as usize].clone();
        let (store, done) = (cx.store, cx.done);
        let vars = self.context(&p.rows, r as usize, &part.used, &p.bound, &|s| done.get(s), &|hash| {
            let hash = hash.with_context(|| format!("{} reads an output that does not exist", a.path))?;
            let bytes = crate::engine::cx::content_of(store, Some(done), &hash)?
                .with_context(|| format!("the store lost the output read by {}", a.path))?;
            Ok(lossy(&bytes).into_owned())
        })?;
        let renderer = cx.scratch(|| Renderer::new(self.undefined));
        renderer.load(&part.path, &part.text)?;
        let text = renderer.render(&part.path, &part.text, vars)?;
        Ok(Computed::of(text.into_bytes()))
    }
}
