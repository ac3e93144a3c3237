//! Preparing a planned stage: each artifact is compared with the store and the file on disk
//! (its *standing*), and the content of every artifact whose key is new is computed. Any error in
//! the user's inputs surfaces here, before the stage writes anything.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use super::cx::ComputeCx;
use super::kind::{Artifact, Done, Planned, Value, Work};
use super::spec::StageSpec;
use crate::engine::fsutil;
use crate::engine::keys::{FastMap, Hash, Manifest};
use crate::engine::store::{Records, Store};

/// How an artifact stands against the store and the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Key known, file current.
    Unchanged,
    /// Key known, file matches by content but its stat changed (touched): record only.
    Touched,
    /// Key known, file missing or different: restore from the store.
    Restore,
    /// Key new: compute it (or make it, for effects).
    Execute,
}

/// Where an artifact's file stands on disk relative to its record.
/// `next` is where `a`'s record is looked for first (records are listed in artifact order); it
/// moves past the record found.
fn classify<'a>(
    root: &Path,
    dirs: &mut fsutil::DirStat<'a>,
    a: &'a Artifact,
    known: &FastMap<Hash, Hash>,
    records: &Records,
    next: &mut usize,
) -> (Standing, bool) {
    let Some(out) = known.get(&a.key) else {
        *next += 1;
        return (Standing::Execute, false);
    };
    if !a.materialize {
        return (Standing::Unchanged, false);
    }
    let rec = records.find_at(*next, &a.path).map(|(at, r)| {
        *next = at + 1;
        r
    });
    let stat = dirs.stat(&a.path);
    match (rec, stat) {
        (Some(r), Some(s)) if r.key == a.key && r.hash == *out && s.size == r.size && s.mtime_ns == r.mtime_ns => {
            (Standing::Unchanged, false)
        }
        (_, Some(_)) => {
            // The stat differs: compare by content before deciding it needs restoring.
            if std::fs::read(root.join(&a.path)).is_ok_and(|b| Hash::of(&b) == *out) {
                (Standing::Touched, false)
            } else {
                (Standing::Restore, rec.is_some_and(|r| r.key == a.key))
            }
        }
        (_, None) => (Standing::Restore, false),
    }
}

/// Classifies many artifacts on both cores.
fn classify_all(
    root: &Path,
    artifacts: &[Artifact],
    known: &FastMap<Hash, Hash>,
    records: &Records,
) -> Vec<(Standing, bool)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if artifacts.len() < 2048 || threads == 1 {
        let mut dirs = fsutil::DirStat::new(root);
        let mut next = 0;
        return artifacts
            .iter()
            .map(|a| classify(root, &mut dirs, a, known, records, &mut next))
            .collect();
    }
    let chunk = artifacts.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = artifacts
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                s.spawn(move || {
                    let mut dirs = fsutil::DirStat::new(root);
                    let mut next = n * chunk;
                    part.iter()
                        .map(|a| classify(root, &mut dirs, a, known, records, &mut next))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("classify thread"))
            .collect()
    })
}

pub struct Prepared {
    pub standing: Vec<(Standing, bool)>,
    /// What the store recorded of this stage's files before the run.
    pub records: Arc<Records>,
    /// Output hash of every known key of this stage.
    pub known: FastMap<Hash, Hash>,
    /// Content of every new key.
    pub computed: HashMap<Hash, Arc<[u8]>>,
    /// New content of ledgers (by artifact index), to write and record but not to store as an
    /// action: it depends on what the file held.
    pub merged: HashMap<usize, Arc<[u8]>>,
    /// What is known of how a new key's content was made (JSON, kept as the action's info).
    pub info: HashMap<Hash, String>,
    /// Further actions computed on the way (cached sub-results).
    pub actions: Vec<(Manifest, Arc<[u8]>)>,
    /// Lines for the run's summary of this stage.
    pub notes: Vec<String>,
}

pub struct Prepare<'a> {
    pub root: &'a Path,
    pub store: &'a Store,
    pub spec: &'a StageSpec,
    pub value: &'a Value,
    pub planned: &'a Planned,
    pub done: &'a HashMap<String, Done>,
    /// Every artifact is made anew (`--refresh`).
    pub refresh: bool,
    /// What the store holds of the stage, read ahead while salsa planned.
    pub prefetched: Option<(FastMap<Hash, Hash>, Records)>,
}

impl Prepare<'_> {
    pub fn run(self) -> Result<Prepared> {
        let name = &self.spec.name;
        let artifacts = &self.planned.artifacts;
        let t0 = Instant::now();
        let (known, records) = match self.prefetched {
            Some((known, records)) => (known, Arc::new(records)),
            None => {
                let known = match self.spec.stage.shared_actions() {
                    Some(kind) => self.store.action_outputs_of_kind(kind)?,
                    None => self.store.action_outputs_for(name, artifacts.iter().map(|a| &a.key))?,
                };
                (known, self.store.outputs_of_stage(name)?)
            }
        };
        let t1 = t0.elapsed();
        let mut standing = if self.refresh {
            vec![(Standing::Execute, false); artifacts.len()]
        } else {
            classify_all(self.root, artifacts, &known, &records)
        };
        if std::env::var_os("DAYDREAM_TIMING").is_some() && !artifacts.is_empty() {
            eprintln!(
                "timing:          {name}: {} known keys, {} records loaded in {:.3}s, classified in {:.3}s",
                known.len(),
                records.len(),
                t1.as_secs_f64(),
                (t0.elapsed() - t1).as_secs_f64()
            );
        }
        let mut out = Prepared {
            standing: Vec::new(),
            records,
            known,
            computed: HashMap::new(),
            merged: HashMap::new(),
            info: HashMap::new(),
            actions: Vec::new(),
            notes: Vec::new(),
        };
        let mut scratch = None;
        let mut cx = ComputeCx {
            root: self.root,
            store: self.store,
            done: self.done,
            stage: self.spec,
            value: self.value,
            planned: self.planned,
            scratch: &mut scratch,
        };
        for (i, (a, st)) in artifacts.iter().zip(standing.iter_mut()).enumerate() {
            match a.work {
                Work::Merge(_) => {
                    *st = merge(&mut cx, &out.records, i, a, &mut out.merged)?;
                }
                Work::Effect(_) => {}
                Work::Compute(_) if st.0 != Standing::Execute || out.computed.contains_key(&a.key) => {}
                Work::Compute(_) => {
                    let c = self
                        .spec
                        .stage
                        .compute(&mut cx, a)
                        .with_context(|| format!("computing {}", a.path))?;
                    if let Some(info) = c.info {
                        out.info.insert(a.key, info);
                    }
                    out.actions.extend(c.actions);
                    out.notes.extend(c.notes);
                    out.computed.insert(a.key, c.content);
                }
            }
        }
        out.standing = standing;
        Ok(out)
    }
}

/// A ledger's standing and new content: untouched when its inputs and file are as daydream left
/// them; otherwise this run's rows are merged into what the file holds (or, when the file is
/// gone, into what daydream last wrote there).
fn merge(
    cx: &mut ComputeCx,
    records: &Records,
    i: usize,
    a: &Artifact,
    merged: &mut HashMap<usize, Arc<[u8]>>,
) -> Result<(Standing, bool)> {
    let full = cx.root.join(&a.path);
    let rec = records.get(&a.path);
    let stat = fsutil::stat(&full);
    if let (Some(r), Some(s)) = (rec, stat)
        && r.key == a.key
        && s.size == r.size
        && s.mtime_ns == r.mtime_ns
    {
        return Ok((Standing::Unchanged, false));
    }
    let on_disk = stat.is_some();
    let existing = if on_disk {
        let bytes = std::fs::read(&full).with_context(|| format!("reading {}", a.path))?;
        Some(crate::engine::text::decode(bytes, &full).with_context(|| format!("reading {}", a.path))?)
    } else {
        match rec {
            Some(r) => cx
                .store
                .blob(&r.hash)?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            None => None,
        }
    };
    let new = cx
        .stage
        .stage
        .merge(cx, a, existing.as_deref())
        .with_context(|| format!("computing {}", a.path))?;
    let changed = new.as_deref() != existing.as_deref();
    Ok(match (new, on_disk) {
        (Some(text), _) if changed => {
            merged.insert(i, Arc::from(text.into_bytes()));
            (Standing::Execute, false)
        }
        (_, true) if rec.is_some_and(|r| r.key == a.key) => (Standing::Unchanged, false),
        (_, true) => (Standing::Touched, false),
        (_, false) => match existing {
            Some(text) => {
                merged.insert(i, Arc::from(text.into_bytes()));
                (Standing::Restore, false)
            }
            None => (Standing::Unchanged, false),
        },
    })
}
