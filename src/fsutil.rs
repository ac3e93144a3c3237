//! File system helpers: atomic writes, the project lock, stat fingerprints.
//!
//! Outputs are written to a temporary file inside `.daydream/tmp/` and renamed into place, so a
//! reader (or a `kill -9`) never sees half a file. `.daydream/tmp/` is emptied at the start of
//! every run, under the lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result, bail};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: temp file in `tmp_dir`, then rename. Creates parents.
pub fn write_atomic(tmp_dir: &Path, path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = tmp_dir.join(format!("{}-{n}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        Ok(())
    };
    write().with_context(|| format!("writing {}", tmp.display()))?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating directory {}", parent.display()))?;
    }
    fs::rename(&tmp, path).with_context(|| format!("moving {} into place at {}", tmp.display(), path.display()))?;
    if durable && let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", parent.display()))?;
    }
    Ok(())
}

/// Size and modification time: a cheap fingerprint of a file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
}

pub fn stat(path: &Path) -> Option<Stat> {
    let m = fs::metadata(path).ok()?;
    if !m.is_file() {
        return None;
    }
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    Some(Stat {
        size: m.len(),
        mtime_ns,
    })
}

/// An exclusive lock on the project, held for the life of the value.
pub struct ProjectLock {
    _file: File,
}

impl ProjectLock {
    pub fn acquire(state_dir: &Path) -> Result<ProjectLock> {
        fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
        let path = state_dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                bail!(
                    "another daydream process{} is working on this project (lock {} is held); \
                     wait for it to finish, then run again",
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    },
                    path.display()
                );
            }
            Err(fs::TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(ProjectLock { _file: file })
    }
}

/// Empties (or creates) the temporary directory used by `write_atomic`.
pub fn reset_tmp(tmp_dir: &Path) -> Result<PathBuf> {
    if tmp_dir.exists() {
        fs::remove_dir_all(tmp_dir).with_context(|| format!("clearing {}", tmp_dir.display()))?;
    }
    fs::create_dir_all(tmp_dir).with_context(|| format!("creating {}", tmp_dir.display()))?;
    Ok(tmp_dir.to_path_buf())
}
