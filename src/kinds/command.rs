//! `command`: a shell command with declared dependencies and outputs, as a Makefile rule or a
//! DVC stage. It runs again only when its command text, a parameter, or the content of a
//! dependency (a file, a directory, or the outputs of the stages it comes `after`) changes; its
//! outputs are kept in the store, so a deleted output comes back and a reverted edit restores
//! the old outputs without running. Its stdout and stderr are kept for `explain`; a non-zero
//! exit, or an output not written, fails the stage and shows the command's last lines, with its
//! outputs as they were before it ran.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use crate::engine::cx::{ExecCx, PlanCx, ValueCx};
use crate::engine::diag::Diag;
use crate::engine::fields::{FieldDoc, FieldType, Fields, maybe, req};
use crate::engine::fsutil;
use crate::engine::keys::{Hash, Input, Manifest};
use crate::engine::kind::{
    Artifact, Decl, DeclKind, Detail, Kind, Planned, Ref, Shape, Stage, Value, Work, value_hash,
};
use crate::engine::store::OutputRecord;
use crate::engine::yaml::Value as Yaml;

pub struct CommandKind;

const FIELDS: &[FieldDoc] = &[
    req(
        "run",
        FieldType::Str,
        "the command, run by `sh -c` in the project directory",
    ),
    maybe(
        "deps",
        FieldType::List,
        "files and directories it reads (their contents are part of its key)",
    ),
    maybe(
        "after",
        FieldType::List,
        "stages whose outputs it reads (their outputs are part of its key)",
    ),
    maybe(
        "params",
        FieldType::Map,
        "values it is run with, as environment variables DAYDREAM_PARAM_<NAME> (part of its key)",
    ),
    req(
        "outputs",
        FieldType::List,
        "the files it writes (each kept in the store)",
    ),
];

/// How many bytes of stdout and of stderr are kept.
const KEPT: usize = 64 * 1024;

#[derive(Debug, PartialEq)]
pub struct CommandStage {
    run: String,
    deps: Vec<Decl>,
    after: Vec<Ref>,
    params: BTreeMap<String, String>,
    outputs: Vec<Decl>,
}

impl Kind for CommandKind {
    fn name(&self) -> &'static str {
        "command"
    }

    fn about(&self) -> &'static str {
        "a shell command with declared dependencies and outputs, run again only when they change"
    }

    fn fields(&self) -> &'static [FieldDoc] {
        FIELDS
    }

    fn parse(&self, f: &mut Fields) -> Result<Arc<dyn Stage>, Diag> {
        let run = f.string("run")?.value;
        let list = |f: &mut Fields, name: &'static str| -> Result<Vec<crate::engine::fields::At<String>>, Diag> {
            let Some(n) = f.opt_node(name) else {
                return Ok(Vec::new());
            };
            let items: Vec<&crate::engine::yaml::Node> = match &n.value {
                Yaml::Seq(items) => items.iter().collect(),
                Yaml::Str(_) => vec![n],
                _ => return Err(f.wrong(name, n, "a list")),
            };
            items.into_iter().map(|i| f.string_of(name, i)).collect()
        };
        let mut deps = Vec::new();
        for d in list(f, "deps")? {
            let path = crate::engine::fields::normalize(&d.value).ok_or_else(|| {
                f.diag(
                    format!(
                        "`deps: {}` in stage `{}` must be a relative path inside the project",
                        d.value, f.stage
                    ),
                    d.loc,
                )
            })?;
            let what = if (f.cx.exists)(&path) {
                DeclKind::File
            } else {
                DeclKind::Dir
            };
            deps.push(Decl {
                field: "deps",
                path,
                loc: d.loc,
                what,
            });
        }
        let mut after = Vec::new();
        for a in list(f, "after")? {
            after.push(f.push_ref("after", a, Shape::Files)?);
        }
        let mut params = BTreeMap::new();
        if let Some(n) = f.opt_node("params") {
            let Some(map) = n.as_map() else {
                return Err(f.wrong("params", n, "a mapping of name: value"));
            };
            for e in map {
                if !e.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(f
                        .diag(
                            format!(
                                "parameter `{}` of stage `{}` must be a word (letters, digits, `_`)",
                                e.key, f.stage
                            ),
                            e.key_loc,
                        )
                        .help("it becomes the environment variable DAYDREAM_PARAM_<NAME>"));
                }
                let v = e
                    .value
                    .scalar_text()
                    .ok_or_else(|| f.wrong("params", &e.value, "a mapping of name: value"))?;
                params.insert(e.key.clone(), v);
            }
        }
        let mut outputs = Vec::new();
        let outs = list(f, "outputs")?;
        if outs.is_empty() {
            return Err(f
                .diag(
                    format!("stage `{}` (kind `command`) declares no `outputs`", f.stage),
                    f.loc,
                )
                .help("list the files the command writes: they are kept in the store and restored when deleted"));
        }
        for o in outs {
            let path = crate::engine::fields::normalize(&o.value).ok_or_else(|| {
                f.diag(
                    format!(
                        "`outputs: {}` in stage `{}` must be a relative path inside the project",
                        o.value, f.stage
                    ),
                    o.loc,
                )
            })?;
            outputs.push(Decl {
                field: "outputs",
                path,
                loc: o.loc,
                what: DeclKind::File,
            });
        }
        Ok(Arc::new(CommandStage {
            run,
            deps,
            after,
            params,
            outputs,
        }))
    }
}

/// The content hash of a dependency: a file's bytes, or a directory's files (paths and bytes).
fn hash_dep(root: &Path, d: &Decl) -> Result<Hash> {
    let full = root.join(&d.path);
    if full.is_file() {
        return Ok(Hash::of(
            &std::fs::read(&full).with_context(|| format!("reading {}", d.path))?,
        ));
    }
    let mut files = Vec::new();
    if full.is_dir() {
        for e in walkdir::WalkDir::new(&full).sort_by_file_name() {
            let e = e.with_context(|| format!("listing {}", d.path))?;
            if e.file_type().is_file() {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap_or(e.path())
                    .to_string_lossy()
                    .into_owned();
                let bytes = std::fs::read(e.path()).with_context(|| format!("reading {rel}"))?;
                files.push((rel, Hash::of(&bytes)));
            }
        }
    }
    Ok(value_hash(&files))
}

/// Puts a failed command's outputs back as they were before it ran: what it wrote over an
/// output is undone, what it created is removed.
fn put_back(cx: &ExecCx, before: &[(&Decl, Option<Vec<u8>>)]) -> Result<()> {
    for (o, old) in before {
        let path = cx.root.join(&o.path);
        if std::fs::read(&path).ok() == *old {
            continue;
        }
        match old {
            Some(bytes) => {
                fsutil::write_atomic(cx.tmp, &path, bytes, false).with_context(|| format!("putting back {}", o.path))?
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}, which the failed command wrote", o.path));
                }
                _ => {}
            },
        }
    }
    Ok(())
}

impl Stage for CommandStage {
    fn refs(&self) -> Vec<Ref> {
        self.after.clone()
    }

    fn offers(&self) -> &'static [Shape] {
        &[Shape::Files]
    }

    fn inputs(&self) -> Vec<Decl> {
        self.deps.clone()
    }

    fn outputs(&self) -> Vec<Decl> {
        self.outputs.clone()
    }

    fn effectful(&self) -> bool {
        true
    }

    fn reads_outputs(&self) -> bool {
        !self.after.is_empty()
    }

    fn value(&self, _cx: &ValueCx) -> Result<Value, Diag> {
        Ok(Value {
            summary: format!("1 command, {} outputs", self.outputs.len()),
            ..Default::default()
        })
    }

    fn plan(&self, cx: &PlanCx) -> Result<Planned, Diag> {
        let mut head = Manifest::new("command").param("run", &self.run);
        for (k, v) in &self.params {
            head = head.param(&format!("param.{k}"), v);
        }
        for d in &self.deps {
            let hash = hash_dep(cx.root, d).map_err(|e| cx.diag(format!("stage `{}`: {e:#}", cx.stage.name), d.loc))?;
            head = head.input(Input {
                name: format!("dep:{}", d.path),
                path: Some(d.path.clone()),
                hash,
            });
        }
        let mut blocked = 0;
        for a in &self.after {
            let done = cx.done_of(&a.stage).expect("made before");
            let mut outs: Vec<(&str, Option<Hash>)> = done
                .artifacts
                .iter()
                .map(|x| (x.path.as_str(), done.outputs.get(&x.key).copied()))
                .collect();
            outs.sort();
            if outs.iter().any(|(_, h)| h.is_none()) {
                blocked += 1;
            }
            head = head.input(Input {
                name: format!("after:{}", a.stage),
                path: None,
                hash: value_hash(&outs),
            });
        }
        if blocked > 0 {
            return Ok(Planned {
                blocked: self.outputs.len(),
                summary: Some("1 command".into()),
                ..Default::default()
            });
        }
        let artifacts = self
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let m = head.clone().param("output", &o.path);
                Artifact {
                    path: o.path.clone(),
                    task: None,
                    key: m.key(),
                    work: Work::Effect(i as u32),
                    materialize: true,
                    group: None,
                    manifest: Some(Arc::new(m)),
                }
            })
            .collect();
        Ok(Planned {
            artifacts,
            summary: Some("1 command".into()),
            ..Default::default()
        })
    }

    fn estimate(&self, _cx: &PlanCx, _planned: &Planned, pending: &[&Artifact]) -> Result<Detail> {
        let mut d = Detail {
            estimate: true,
            ..Default::default()
        };
        if !pending.is_empty() {
            d.lines.push(format!("would run: {}", self.run));
        }
        Ok(d)
    }

    fn execute(&self, cx: &mut ExecCx, pending: Vec<&Artifact>) -> Result<Detail> {
        if pending.is_empty() {
            return Ok(Detail::default());
        }
        // Its outputs are removed before it runs (as DVC and Snakemake do), so an output it does
        // not write is told from one it wrote; a command that fails gets them back as they were,
        // never half-written.
        let before: Vec<(&Decl, Option<Vec<u8>>)> = self
            .outputs
            .iter()
            .map(|o| (o, std::fs::read(cx.root.join(&o.path)).ok()))
            .collect();
        for (o, old) in &before {
            if old.is_some() {
                std::fs::remove_file(cx.root.join(&o.path))
                    .with_context(|| format!("removing {} before running the command", o.path))?;
            }
        }
        let start = Instant::now();
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(&self.run).current_dir(cx.root);
        for (k, v) in &self.params {
            cmd.env(format!("DAYDREAM_PARAM_{}", k.to_ascii_uppercase()), v);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `sh -c {}`", self.run))?;
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        });
        let mut stdout = Vec::new();
        let _ = out.read_to_end(&mut stdout);
        let stderr = reader.join().unwrap_or_default();
        let status = child.wait().context("waiting for the command")?;
        let tail = |b: &[u8]| -> String { String::from_utf8_lossy(&b[b.len().saturating_sub(KEPT)..]).into_owned() };
        let (stdout, stderr) = (tail(&stdout), tail(&stderr));
        let mut d = Detail {
            made: 1,
            ..Default::default()
        };
        let last_lines = |s: &str| -> Vec<String> {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(10)..]
                .iter()
                .map(|l| format!("| {l}"))
                .collect()
        };
        if !status.success() {
            d.failed = self.outputs.len();
            d.lines
                .push(format!("`{}` failed ({status}); its last lines:", self.run));
            d.lines
                .extend(last_lines(if stderr.trim().is_empty() { &stdout } else { &stderr }));
            put_back(cx, &before)?;
            return Ok(d);
        }
        let missing: Vec<&str> = self
            .outputs
            .iter()
            .filter(|o| !cx.root.join(&o.path).is_file())
            .map(|o| o.path.as_str())
            .collect();
        if !missing.is_empty() {
            d.failed = self.outputs.len();
            d.lines.push(format!(
                "`{}` exited 0 but did not write {}",
                self.run,
                missing.join(", ")
            ));
            d.lines.extend(last_lines(&stderr));
            put_back(cx, &before)?;
            return Ok(d);
        }
        let info = json!({
            "command": self.run,
            "exit": status.code(),
            "seconds": (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            "stdout": stdout,
            "stderr": stderr,
        })
        .to_string();
        let mut items = Vec::new();
        let mut records = Vec::new();
        for a in &cx.planned.artifacts {
            let bytes = std::fs::read(cx.root.join(&a.path)).with_context(|| format!("reading {}", a.path))?;
            let stat = fsutil::stat(&cx.root.join(&a.path)).with_context(|| format!("{} vanished", a.path))?;
            records.push(OutputRecord {
                path: a.path.clone(),
                stage: cx.stage.name.clone(),
                task: None,
                key: a.key,
                hash: Hash::of(&bytes),
                size: stat.size,
                mtime_ns: stat.mtime_ns,
            });
            items.push((
                a.manifest.as_deref().cloned().expect("command outputs carry manifests"),
                bytes,
            ));
        }
        cx.store.put_actions_with_info(
            &cx.stage.name,
            items
                .iter()
                .map(|(m, b)| (std::borrow::Cow::Borrowed(m), &b[..], Some(info.as_str()))),
        )?;
        cx.store.put_outputs(&records)?;
        d.executed = self.outputs.len();
        d.lines
            .push(format!("ran `{}` in {:.2}s", self.run, start.elapsed().as_secs_f64()));
        Ok(d)
    }
}
