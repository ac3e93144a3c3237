//! `pipeline.yaml`: settings, providers, and the stages, each read by its kind into a typed
//! stage. Then the checks between stages: every reference names a stage of the shape it needs,
//! there is no cycle, and no output is an input, the pipeline file, the state directory, or
//! another stage's output. Every error names the file, line and column.
//!
//! This module does no I/O besides asking whether an input file exists.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::fields::{Fields, SpecCx, check_provider};
use super::kind::{Kind, Ref, Shape, Stage};
use super::yaml::{self, Entry, Loc, Node, Value};
use crate::engine::diag::{Diag, nearest};
pub use crate::engine::providers::{F64, Provider, local_servers};

pub const PIPELINE_FILE: &str = "pipeline.yaml";
pub const STATE_DIR: &str = ".daydream";
/// The version of the pipeline language this daydream reads.
pub const VERSION: i64 = 2;

/// The kinds a pipeline may use: the engine is given them, it does not know them.
pub struct Registry {
    pub kinds: Vec<&'static dyn Kind>,
    /// What each store is brought up to date with when opened (stores of earlier versions),
    /// supplied by the layers that own the kinds of action they re-key.
    pub upgrades: Vec<StoreUpgrade>,
}

/// One upgrade of a store written by an earlier version (see `Store::rekey_once`).
pub type StoreUpgrade = fn(&mut super::store::Store) -> anyhow::Result<()>;

impl Registry {
    pub fn get(&self, name: &str) -> Option<&'static dyn Kind> {
        self.kinds.iter().copied().find(|k| k.name() == name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name()).collect()
    }
}

/// One stage as declared: its name, kind and typed configuration.
#[derive(Clone, Debug)]
pub struct StageSpec {
    pub name: String,
    pub kind: &'static str,
    pub loc: Loc,
    pub stage: Arc<dyn Stage>,
    /// Planned in the run (after what it reads was made), not before: it acts, or reads a
    /// stage that does.
    pub dynamic: bool,
}

impl PartialEq for StageSpec {
    fn eq(&self, o: &StageSpec) -> bool {
        self.name == o.name && self.kind == o.kind && self.loc == o.loc && *self.stage == *o.stage
    }
}

impl Eq for StageSpec {}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    /// `auto` or a provider name: the provider of LLM stages that say `provider: auto`.
    pub provider: String,
    pub max_cost_usd: Option<F64>,
    /// A run whose paid calls could cost more than this (worst case) asks first (`--yes`).
    pub confirm_above_usd: F64,
}

/// `cache:`: where answers are shared, and how much history the local store keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// The remote answer cache (`cache: remote:`); `DAYDREAM_REMOTE` may name one instead.
    pub remote: Option<super::cache::RemoteConfig>,
    /// How many earlier versions of each output `daydream gc` keeps, so that reverting a recent
    /// edit restores without recomputing.
    pub keep_versions: u32,
}

/// The default of `cache.keep_versions`.
pub const KEEP_VERSIONS: u32 = 1;

/// The default of `settings.confirm_above_usd`: a few dollars.
pub const CONFIRM_ABOVE_USD: f64 = 5.0;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pipeline {
    pub file: String,
    pub source: String,
    pub settings: Settings,
    pub providers: Vec<Provider>,
    pub cache: CacheSettings,
    /// In dependency order: every stage comes after the stages it reads.
    pub stages: Vec<StageSpec>,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&StageSpec> {
        self.stages.iter().find(|s| s.name == name)
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    pub fn diag(&self, message: impl Into<String>, loc: Loc) -> Diag {
        Diag::new(message)
            .in_file(&self.file)
            .at(Some(&self.source), loc.line, loc.column)
    }

    /// The named stages and everything they read, in dependency order (all when `targets` is
    /// empty).
    pub fn closure(&self, targets: &[String]) -> Result<Vec<usize>, Diag> {
        if targets.is_empty() {
            return Ok((0..self.stages.len()).collect());
        }
        let mut wanted = vec![false; self.stages.len()];
        let mut stack = Vec::new();
        for t in targets {
            let i = self.index(t).ok_or_else(|| {
                let d = Diag::new(format!("no stage named `{t}` in {}", self.file));
                match nearest(t, self.stages.iter().map(|s| s.name.as_str())) {
                    Some(n) => d.help(format!("did you mean `{n}`?")),
                    None => d.help("`daydream dag` lists the stages"),
                }
            })?;
            stack.push(i);
        }
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut wanted[i], true) {
                stack.extend(self.stages[i].stage.refs().iter().filter_map(|r| self.index(&r.stage)));
            }
        }
        Ok((0..self.stages.len()).filter(|&i| wanted[i]).collect())
    }
}

const TOP_KEYS: &[&str] = &["version", "settings", "providers", "cache", "stages"];
const CACHE_KEYS: &[&str] = &["remote", "keep_versions"];
const SETTINGS_KEYS: &[&str] = &["provider", "max_cost_usd", "confirm_above_usd"];

fn unknown_key(cx: &SpecCx, e: &Entry, place: &str, known: &[&str]) -> Diag {
    let d = cx.diag(format!("unknown key `{}` {place}", e.key), e.key_loc);
    match nearest(&e.key, known.iter().copied()) {
        Some(n) => d.help(format!("did you mean `{n}`?")),
        None => d.help(format!("the keys here are: {}", known.join(", "))),
    }
}

/// Parses and checks pipeline.yaml. `exists(path)` says whether an input file is there.
pub fn parse(registry: &Registry, exists: &dyn Fn(&str) -> bool, file: &str, source: &str) -> Result<Pipeline, Diag> {
    let root = yaml::parse(source).map_err(|e| yaml_diag(file, source, e))?;
    let mut cx = SpecCx {
        file,
        source,
        exists,
        providers: Vec::new(),
    };
    let top = match &root.value {
        Value::Map(m) => m,
        Value::Null => {
            return Err(Diag::new(format!("{file} is empty"))
                .in_file(file)
                .help("declare `version: 2` and the experiment's `stages:` (see docs/pipeline.md; `daydream schema` prints its JSON Schema)"));
        }
        _ => {
            return Err(cx
                .diag(
                    format!("{file} must be a mapping of version, settings, providers and stages"),
                    root.loc,
                )
                .help("see docs/pipeline.md for the layout"));
        }
    };
    for e in top {
        if !TOP_KEYS.contains(&e.key.as_str()) {
            return Err(unknown_key(&cx, e, &format!("at the top of {file}"), TOP_KEYS));
        }
    }
    let get = |k: &str| top.iter().find(|e| e.key == k);
    match get("version").map(|e| &e.value) {
        Some(Node {
            value: Value::Int(VERSION),
            ..
        }) => {}
        Some(
            n @ Node {
                value: Value::Int(1), ..
            },
        ) => {
            return Err(cx
                .diag("this pipeline is written in version 1 of the language, which named the DayDreaming stages as kinds", n.loc)
                .help("version 2 builds pipelines from generic kinds (table, cross, prompt, llm, parse, collect, command); see docs/pipeline.md, and the shipped pipeline.yaml for the DayDreaming experiment written in them"));
        }
        Some(n) => {
            return Err(cx
                .diag(
                    format!("unsupported pipeline version `{}`", n.scalar_text().unwrap_or_default()),
                    n.loc,
                )
                .help(format!("this daydream reads `version: {VERSION}`")));
        }
        None => {
            return Err(cx
                .diag(
                    format!("{file} does not say which version of the language it is written in"),
                    root.loc,
                )
                .help(format!("add `version: {VERSION}` at the top")));
        }
    }
    let mut providers = Vec::new();
    if let Some(e) = get("providers") {
        let Some(map) = e.value.as_map() else {
            return Err(cx.diag("`providers` must map provider names to their settings", e.value.loc));
        };
        for p in map {
            providers.push(super::providers::parse(&cx, p)?);
        }
    }
    cx.providers = providers.iter().map(|p| p.name.clone()).collect();
    let mut settings = Settings {
        provider: "auto".into(),
        max_cost_usd: None,
        confirm_above_usd: F64(CONFIRM_ABOVE_USD),
    };
    if let Some(e) = get("settings") {
        let Some(map) = e.value.as_map() else {
            return Err(cx.diag("`settings` must be a mapping", e.value.loc));
        };
        for s in map {
            match (s.key.as_str(), &s.value.value) {
                ("provider", Value::Str(p)) => {
                    check_provider(&cx, p, s.value.loc, "settings.provider")?;
                    settings.provider = p.clone();
                }
                ("max_cost_usd" | "confirm_above_usd", v) => {
                    let x = match v {
                        Value::Int(i) => *i as f64,
                        Value::Float(x) => *x,
                        _ => f64::NAN,
                    };
                    if !(x.is_finite() && x >= 0.0) {
                        return Err(cx.diag(
                            format!("settings.{} must be a number of dollars, at least 0", s.key),
                            s.value.loc,
                        ));
                    }
                    if s.key == "max_cost_usd" {
                        settings.max_cost_usd = Some(F64(x));
                    } else {
                        settings.confirm_above_usd = F64(x);
                    }
                }
                ("provider", _) => {
                    return Err(cx.diag("settings.provider must be a provider name or `auto`", s.value.loc));
                }
                _ => return Err(unknown_key(&cx, s, "in `settings`", SETTINGS_KEYS)),
            }
        }
    }
    let cache = match get("cache") {
        Some(e) => parse_cache(&cx, &e.value)?,
        None => CacheSettings {
            remote: None,
            keep_versions: KEEP_VERSIONS,
        },
    };
    let Some(stages_entry) = get("stages") else {
        return Err(cx
            .diag(format!("{file} declares no `stages:`"), root.loc)
            .help("declare the experiment's stages under `stages:` (see docs/pipeline.md)"));
    };
    let Some(stage_map) = stages_entry.value.as_map().filter(|m| !m.is_empty()) else {
        return Err(cx
            .diag("no stages declared", stages_entry.value.loc)
            .help("declare at least one stage under `stages:`"));
    };
    let mut declared = Vec::new();
    for e in stage_map {
        declared.push(parse_stage(registry, &cx, e)?);
    }
    let stages = check_refs(&cx, declared)?;
    let p = Pipeline {
        file: file.to_owned(),
        source: source.to_owned(),
        settings,
        providers,
        cache,
        stages,
    };
    super::paths::check_overlaps(&p)?;
    Ok(p)
}

/// `cache: {remote: URL | {url: URL, OPTION: VALUE...}, keep_versions: N}`.
fn parse_cache(cx: &SpecCx, node: &Node) -> Result<CacheSettings, Diag> {
    let Some(map) = node.as_map() else {
        return Err(cx.diag("`cache` must be a mapping of remote and keep_versions", node.loc));
    };
    let mut out = CacheSettings {
        remote: None,
        keep_versions: KEEP_VERSIONS,
    };
    let help = "write `remote: s3://BUCKET/PREFIX` (options after `?`, or as a map with `url:`), or \
                `remote: file:///SHARED/DIR`; credentials come from the AWS environment, never from pipeline.yaml";
    for e in map {
        match e.key.as_str() {
            "remote" => {
                // the line is named but not shown: what is wrong in it may be a credential
                let located = |err: super::cache::ConfigError, loc: Loc| {
                    Diag::new(format!("cache.remote: {err}"))
                        .in_file(cx.file)
                        .at(None, loc.line, loc.column)
                        .help(help)
                };
                out.remote = Some(match &e.value.value {
                    Value::Str(url) => {
                        super::cache::RemoteConfig::parse(url).map_err(|err| located(err, e.value.loc))?
                    }
                    Value::Map(options) => {
                        let url = e.value.get("url").ok_or_else(|| {
                            cx.diag("cache.remote as a mapping needs `url:`", e.value.loc)
                                .help(help)
                        })?;
                        let text = url
                            .as_str()
                            .ok_or_else(|| cx.diag("cache.remote.url must be a URL", url.loc).help(help))?;
                        let mut config =
                            super::cache::RemoteConfig::parse(text).map_err(|err| located(err, url.loc))?;
                        for o in options.iter().filter(|o| o.key != "url") {
                            let value = o.value.scalar_text().ok_or_else(|| {
                                cx.diag(format!("cache.remote.{} must be a single value", o.key), o.value.loc)
                            })?;
                            config.set(&o.key, &value).map_err(|err| located(err, o.key_loc))?;
                        }
                        config
                    }
                    _ => {
                        return Err(cx
                            .diag("cache.remote must be a URL or a mapping with `url:`", e.value.loc)
                            .help(help));
                    }
                });
            }
            "keep_versions" => match e.value.value {
                Value::Int(n) if (0..=1000).contains(&n) => out.keep_versions = n as u32,
                _ => {
                    return Err(cx
                        .diag("cache.keep_versions must be a whole number from 0 to 1000", e.value.loc)
                        .help(format!("the default is {KEEP_VERSIONS}")));
                }
            },
            _ => return Err(unknown_key(cx, e, "in `cache`", CACHE_KEYS)),
        }
    }
    Ok(out)
}

fn parse_stage(registry: &Registry, cx: &SpecCx, e: &Entry) -> Result<StageSpec, Diag> {
    let name = &e.key;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(cx
            .diag(format!("invalid stage name `{name}`"), e.key_loc)
            .help("use letters, digits, `_` and `-`"));
    }
    let Some(body) = e.value.as_map() else {
        return Err(cx
            .diag(
                format!("stage `{name}` must be a mapping with `kind:` and its fields"),
                e.value.loc,
            )
            .help(format!(
                "for example:\n  {name}:\n    kind: table\n    csv: data/1_raw/models.csv"
            )));
    };
    let kinds = registry.names();
    let Some(kind_entry) = body.iter().find(|b| b.key == "kind") else {
        return Err(cx
            .diag(format!("stage `{name}` has no `kind`"), e.key_loc)
            .help(format!("add `kind:` with one of: {}", kinds.join(", "))));
    };
    let Value::Str(kind_name) = &kind_entry.value.value else {
        return Err(cx.diag(
            format!("`kind` of stage `{name}` must be a string"),
            kind_entry.value.loc,
        ));
    };
    let kind = registry.get(kind_name).ok_or_else(|| {
        let d = cx.diag(
            format!("unknown stage kind `{kind_name}` in stage `{name}`"),
            kind_entry.value.loc,
        );
        match nearest(kind_name, kinds.iter().copied()) {
            Some(n) => d.help(format!("did you mean `{n}`? (kinds: {})", kinds.join(", "))),
            None => d.help(format!("the kinds are: {}", kinds.join(", "))),
        }
    })?;
    let mut f = Fields::new(cx, name, kind.name(), e.key_loc, kind.fields(), body);
    let stage = kind.parse(&mut f)?;
    f.finish()?;
    Ok(StageSpec {
        name: name.clone(),
        kind: kind.name(),
        loc: e.key_loc,
        stage,
        dynamic: false,
    })
}

/// Whether a stage offers a shape: as it declares, and any stage that writes files offers them.
fn offers(s: &dyn Stage, shape: Shape) -> bool {
    s.offers().contains(&shape) || (shape == Shape::Files && !s.outputs().is_empty())
}

/// References name declared stages of the right shape, without a cycle; returns the stages in
/// dependency order with `dynamic` set.
fn check_refs(cx: &SpecCx, declared: Vec<StageSpec>) -> Result<Vec<StageSpec>, Diag> {
    let index: HashMap<&str, usize> = declared.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    let offering = |shape: Shape| -> Vec<&str> {
        declared
            .iter()
            .filter(|s| offers(&*s.stage, shape))
            .map(|s| s.name.as_str())
            .collect()
    };
    for s in &declared {
        for r in s.stage.refs() {
            let Some(&t) = index.get(r.stage.as_str()) else {
                let d = cx.diag(
                    format!(
                        "stage `{}` reads `{}: {}`, but there is no stage named `{}`",
                        s.name, r.field, r.stage, r.stage
                    ),
                    r.loc,
                );
                let fit = offering(r.needs);
                return Err(match nearest(&r.stage, fit.iter().copied()) {
                    Some(n) => d.help(format!("did you mean `{n}`?")),
                    None if fit.is_empty() => d.help(format!("declare a stage that offers {}", r.needs.describe())),
                    None => d.help(format!("stages that offer {}: {}", r.needs.describe(), fit.join(", "))),
                });
            };
            let target = &declared[t];
            if !offers(&*target.stage, r.needs) {
                let fit = offering(r.needs);
                let d = cx.diag(
                    format!(
                        "`{}: {}` in stage `{}` needs {}, but `{}` is a `{}` stage, which does not offer it",
                        r.field,
                        r.stage,
                        s.name,
                        r.needs.describe(),
                        r.stage,
                        target.kind
                    ),
                    r.loc,
                );
                return Err(if fit.is_empty() {
                    d.help("no stage of this pipeline offers it")
                } else {
                    d.help(format!("stages that do: {}", fit.join(", ")))
                });
            }
        }
    }
    // depth-first order; a cycle is reported as the path that closes it
    let mut state = vec![0u8; declared.len()];
    let mut order = Vec::new();
    fn visit(
        i: usize,
        declared: &[StageSpec],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
        path: &mut Vec<(usize, Ref)>,
        order: &mut Vec<usize>,
    ) -> Result<(), (Vec<String>, Loc)> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let start = path.iter().position(|(j, _)| *j == i).expect("on the path");
                let mut names: Vec<String> = path[start..].iter().map(|(j, _)| declared[*j].name.clone()).collect();
                names.push(declared[i].name.clone());
                return Err((names, path.last().expect("non-empty").1.loc));
            }
            _ => {}
        }
        state[i] = 1;
        for r in declared[i].stage.refs() {
            let j = index[r.stage.as_str()];
            path.push((i, r));
            visit(j, declared, index, state, path, order)?;
            path.pop();
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }
    for i in 0..declared.len() {
        let mut path = Vec::new();
        if let Err((names, at)) = visit(i, &declared, &index, &mut state, &mut path, &mut order) {
            return Err(cx
                .diag(format!("the stages form a cycle: {}", names.join(" -> ")), at)
                .help("a stage cannot read its own output, directly or through other stages"));
        }
    }
    let mut slots: Vec<Option<StageSpec>> = declared.into_iter().map(Some).collect();
    let mut out: Vec<StageSpec> = Vec::with_capacity(order.len());
    for i in order {
        let mut s = slots[i].take().expect("each stage once");
        s.dynamic = s.stage.effectful()
            || s.stage.reads_outputs()
            || s.stage
                .refs()
                .iter()
                .any(|r| out.iter().any(|o| o.name == r.stage && o.dynamic));
        out.push(s);
    }
    Ok(out)
}

fn yaml_diag(file: &str, source: &str, e: yaml::Error) -> Diag {
    match e {
        yaml::Error::Duplicate(d) => Diag::new(format!(
            "{file}: `{}` is given twice in one mapping{}",
            d.key,
            if d.first.line > 0 {
                format!(" (first at line {})", d.first.line)
            } else {
                String::new()
            }
        ))
        .in_file(file)
        .at(Some(source), d.again.line, d.again.column)
        .help("keep one of the two: YAML keeps only the last, which is rarely what was meant"),
        yaml::Error::Syntax { message, at } => {
            let d = Diag::new(format!("{file}: {message}")).in_file(file);
            let d = match at {
                Some(l) => d.at(Some(source), l.line, l.column),
                None => d,
            };
            d.help("fix the YAML at this place (indentation, a missing `:`, an unclosed quote or bracket)")
        }
    }
}

/// The stages in dependency order, by name (for messages and `dag`).
pub fn stage_names(p: &Pipeline) -> BTreeMap<&str, &StageSpec> {
    p.stages.iter().map(|s| (s.name.as_str(), s)).collect()
}
