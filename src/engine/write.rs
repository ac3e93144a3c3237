//! Writing a prepared stage: new actions go to the store in one transaction while the files are
//! written atomically (both cores), then the records of what is on disk now.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use super::kind::{Artifact, Planned, Value, Work};
use super::plan::{Prepared, Standing};
use super::spec::StageSpec;
use crate::engine::fsutil::{self, Stat};
use crate::engine::keys::Hash;
use crate::engine::store::{OutputRecord, Store};

pub fn write_stage(
    root: &Path,
    store: &mut Store,
    spec: &StageSpec,
    value: &Value,
    planned: &Planned,
    prep: &Prepared,
    tmp: &Path,
) -> Result<()> {
    let name = &spec.name;
    let artifacts = &planned.artifacts;
    let t0 = Instant::now();
    let timing = |what: &str, n: usize| {
        if std::env::var_os("DAYDREAM_TIMING").is_some() && n > 0 {
            eprintln!(
                "timing:          {name}: {what} ({n}) at {:.3}s",
                t0.elapsed().as_secs_f64()
            );
        }
    };
    // 1. New actions (their manifests are built one at a time as they are stored: a cold run
    // has tens of thousands).
    let mut seen = std::collections::HashSet::new();
    let new: Vec<&Artifact> = artifacts
        .iter()
        .filter(|a| matches!(a.work, Work::Compute(_)))
        .filter(|a| prep.computed.contains_key(&a.key) && seen.insert(a.key))
        .collect();
    drop(seen);
    // ledgers merged anew: kept as actions too, so that the store knows when they were made
    let merged: Vec<(&Artifact, &Arc<[u8]>)> = artifacts
        .iter()
        .enumerate()
        .filter(|(i, _)| prep.standing[*i].0 == Standing::Execute)
        .filter_map(|(i, a)| Some((a, prep.merged.get(&i)?)))
        .collect();
    let new_actions = new.len() + prep.actions.len() + merged.len();
    // 2. What each file gets (restored contents are read from the store here, before it is lent
    // to the commit below).
    let mut jobs: Vec<(&Artifact, Arc<[u8]>)> = Vec::new();
    let mut sidecars: Vec<(String, Vec<u8>)> = Vec::new();
    let mut touched: Vec<&Artifact> = Vec::new();
    let known = &prep.known;
    for (i, (a, (standing, _))) in artifacts.iter().zip(&prep.standing).enumerate() {
        if !a.materialize {
            continue;
        }
        let content: Arc<[u8]> = match (standing, a.work) {
            (Standing::Unchanged, _) => continue,
            (Standing::Touched, _) => {
                // the same content under another key (another call gave the same answer): the
                // file stays, and the record beside it tells of the call its key now names
                if prep.records.find_at(i, &a.path).is_none_or(|(_, r)| r.key != a.key)
                    && let Some(side) = spec.stage.sidecar(store, &spec.name, a)?
                {
                    sidecars.push(side);
                }
                touched.push(a);
                continue;
            }
            (_, Work::Merge(_)) => match prep.merged.get(&i) {
                Some(text) => text.clone(),
                None => continue,
            },
            // effects are written by the stage as they are made
            (Standing::Execute, Work::Effect(_)) => continue,
            (Standing::Execute, Work::Compute(_)) => {
                let content = prep.computed[&a.key].clone();
                let rec = prep.records.find_at(i, &a.path).map(|(_, r)| r);
                if unchanged_on_disk(root, a, rec, &content) {
                    // Early cutoff: a new key with the same content; keep the file, update its record.
                    touched.push(a);
                    continue;
                }
                content
            }
            (Standing::Restore, _) => {
                let out = known
                    .get(&a.key)
                    .with_context(|| format!("the store lost the action of {}", a.path))?;
                let bytes = store
                    .blob(out)?
                    .with_context(|| format!("the store lost the content of {} ({})", a.path, out.short()))?;
                if let Some(side) = spec.stage.sidecar(store, &spec.name, a)? {
                    sidecars.push(side);
                }
                Arc::from(bytes)
            }
        };
        jobs.push((a, content));
    }
    // 3. The new actions are committed while the files are written. Nothing depends on the
    // order: every file is replaced whole, and a file whose action a crash kept from the store
    // matches no record, so the next run recomputes it.
    let (committed, written) = std::thread::scope(|s| {
        let commit = (new_actions > 0).then(|| {
            let store = &mut *store;
            let new = &new;
            s.spawn(move || {
                let items = new
                    .iter()
                    .map(|a| {
                        let m = match &a.manifest {
                            Some(m) => Cow::Borrowed(&**m),
                            None => Cow::Owned(spec.stage.manifest(value, planned, a)),
                        };
                        (m, &prep.computed[&a.key][..], prep.info.get(&a.key).map(String::as_str))
                    })
                    .chain(prep.actions.iter().map(|(m, c)| (Cow::Borrowed(m), &c[..], None)))
                    .chain(merged.iter().map(|(a, c)| {
                        let m = match &a.manifest {
                            Some(m) => Cow::Borrowed(&**m),
                            None => Cow::Owned(spec.stage.manifest(value, planned, a)),
                        };
                        (m, &c[..], None)
                    }));
                store.put_actions_with_info(name, items)?;
                timing("actions stored", new_actions);
                anyhow::Ok(())
            })
        });
        let written = (|| {
            // sidecars first: a response file on disk always has its sidecar
            for (path, bytes) in &sidecars {
                fsutil::write_atomic(tmp, &root.join(path), bytes, false)?;
            }
            let records = write_files(root, tmp, name, &jobs)?;
            timing("files written", jobs.len());
            anyhow::Ok(records)
        })();
        (commit.map_or(Ok(()), |h| h.join().expect("commit thread")), written)
    });
    committed?;
    let mut records = written?;
    for a in touched {
        let stat = fsutil::stat(&root.join(&a.path)).with_context(|| format!("{} vanished", a.path))?;
        let hash = match (a.work, known.get(&a.key), prep.computed.get(&a.key)) {
            // a ledger: recorded as it stands on disk
            (Work::Merge(_), _, _) | (_, None, None) => {
                Hash::of(&std::fs::read(root.join(&a.path)).with_context(|| format!("reading {}", a.path))?)
            }
            (_, Some(h), _) => *h,
            (_, None, Some(c)) => Hash::of(c),
        };
        records.push(record(name, a, hash, stat));
    }
    // 4. Records of what is on disk now.
    store.put_outputs(&records)?;
    timing("records stored", records.len());
    Ok(())
}

/// Whether the file at `a.path` is exactly what daydream last wrote there and holds `content`.
fn unchanged_on_disk(root: &Path, a: &Artifact, rec: Option<&OutputRecord>, content: &[u8]) -> bool {
    let Some(rec) = rec else { return false };
    rec.hash == Hash::of(content)
        && fsutil::stat(&root.join(&a.path)).is_some_and(|s| s.size == rec.size && s.mtime_ns == rec.mtime_ns)
}

pub fn record(stage: &str, a: &Artifact, hash: Hash, stat: Stat) -> OutputRecord {
    OutputRecord {
        path: a.path.clone(),
        stage: stage.to_owned(),
        task: a.task.clone(),
        key: a.key,
        hash,
        size: stat.size,
        mtime_ns: stat.mtime_ns,
    }
}

/// Writes files atomically on both cores and returns their records.
fn write_files(root: &Path, tmp: &Path, stage: &str, jobs: &[(&Artifact, Arc<[u8]>)]) -> Result<Vec<OutputRecord>> {
    if jobs.is_empty() {
        return Ok(Vec::new()); // most stages of most runs: no spare directory to list
    }
    // each directory once, rather than once per file
    let dirs: std::collections::BTreeSet<&str> = jobs
        .iter()
        .map(|(a, _)| a.path.rfind('/').map_or("", |i| &a.path[..i]))
        .collect();
    for dir in dirs {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating directory {}", dir.display()))?;
    }
    let one = |w: &mut fsutil::Writer, (a, content): &(&Artifact, Arc<[u8]>)| -> Result<OutputRecord> {
        // a ledger's old text is not in the store: never let it be absent
        let may_vanish = !matches!(a.work, Work::Merge(_));
        let stat = w.write(&root.join(&a.path), content, may_vanish)?;
        Ok(record(stage, a, Hash::of(content), stat))
    };
    let threads = if jobs.len() < 256 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
    };
    let mut writers = fsutil::Writer::many(tmp, threads)?;
    if threads == 1 {
        let w = &mut writers[0];
        return jobs.iter().map(|j| one(w, j)).collect();
    }
    let chunk = jobs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .zip(&mut writers)
            .map(|(part, w)| s.spawn(move || part.iter().map(|j| one(w, j)).collect::<Result<Vec<_>>>()))
            .collect();
        let mut out = Vec::with_capacity(jobs.len());
        for h in handles {
            out.extend(h.join().expect("writer thread")?);
        }
        Ok(out)
    })
}
