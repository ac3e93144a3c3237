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
    let (tmp, _) = write_tmp(tmp_dir, bytes, durable)?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating directory {}", parent.display()))?;
    }
    move_into_place(&tmp, path)?;
    if durable && let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", parent.display()))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically, as [`write_atomic`] without syncing, into a directory that
/// exists already, and returns the file's stat (taken from the open file: a rename keeps it).
///
/// With `aside`, the file it replaces is first moved into `tmp_dir` rather than renamed over:
/// replacing a file makes ext4 free the old one's blocks and flush the new one's data there and
/// then (`auto_da_alloc`), about three quarters of the cost of rewriting a small file. The old
/// files go with `tmp_dir` at the next [`reset_tmp`], which deletes them off the run's path. For an
/// instant, or after a `kill -9` between the two renames, `path` is absent (never partial): only
/// for outputs whose content the store holds, so the next run restores them.
pub fn write_atomic_in_dir(tmp_dir: &Path, path: &Path, bytes: &[u8], aside: bool) -> Result<Stat> {
    let (tmp, stat) = write_tmp(tmp_dir, bytes, false)?;
    if aside {
        let old = tmp.with_extension("old");
        match fs::rename(path, &old) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("moving the old {} aside", path.display())),
        }
    }
    move_into_place(&tmp, path)?;
    Ok(stat)
}

/// A new temporary file in `tmp_dir` holding `bytes`, and its stat.
fn write_tmp(tmp_dir: &Path, bytes: &[u8], durable: bool) -> Result<(PathBuf, Stat)> {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = tmp_dir.join(format!("{}-{n}.tmp", std::process::id()));
    let write = || -> std::io::Result<Stat> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        let m = f.metadata()?;
        Ok(stat_of(&m))
    };
    let stat = write().with_context(|| format!("writing {}", tmp.display()))?;
    Ok((tmp, stat))
}

fn move_into_place(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path).with_context(|| format!("moving {} into place at {}", tmp.display(), path.display()))
}

/// Size and modification time: a cheap fingerprint of a file on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
}

pub fn stat(path: &Path) -> Option<Stat> {
    let m = fs::metadata(path).ok()?;
    m.is_file().then(|| stat_of(&m))
}

fn stat_of(m: &fs::Metadata) -> Stat {
    let mtime_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    Stat {
        size: m.len(),
        mtime_ns,
    }
}

/// Stats files relative to an open directory: a no-op run stats every output, and most of a
/// stat by full path is walking the path's directories again. Keeps the last directory open.
pub struct DirStat<'r> {
    root: &'r Path,
    dir: Option<(&'r str, Option<std::os::fd::OwnedFd>)>,
}

impl<'r> DirStat<'r> {
    pub fn new(root: &'r Path) -> DirStat<'r> {
        DirStat { root, dir: None }
    }

    /// The stat of `root/rel`, a regular file; None when it is missing or not a file.
    pub fn stat(&mut self, rel: &'r str) -> Option<Stat> {
        let (parent, name) = match rel.rfind('/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => ("", rel),
        };
        if self.dir.as_ref().is_none_or(|(p, _)| *p != parent) {
            self.dir = Some((parent, open_dir(&self.root.join(parent))));
        }
        let Some((_, Some(fd))) = &self.dir else {
            return stat(&self.root.join(rel));
        };
        fstatat(fd, name).or_else(|| stat(&self.root.join(rel)))
    }
}

fn open_dir(dir: &Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
        .open(dir)
        .ok()?;
    Some(f.into())
}

/// `fstatat(dir, name)`; None when the file is missing or not a regular file.
fn fstatat(dir: &std::os::fd::OwnedFd, name: &str) -> Option<Stat> {
    use std::os::fd::AsRawFd;
    let name = std::ffi::CString::new(name).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `dir` is an open descriptor, `name` a NUL-terminated string, and `st` is written by
    // the call before it is read (only when the call succeeds).
    let st = unsafe {
        if libc::fstatat(dir.as_raw_fd(), name.as_ptr(), st.as_mut_ptr(), 0) != 0 {
            return None;
        }
        st.assume_init()
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    Some(Stat {
        size: st.st_size as u64,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
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

/// Empties (or creates) the temporary directory used by `write_atomic`: what it holds moves to a
/// `trash` directory beside it, deleted on a background thread (what a process ends before
/// deleting stays there for the next run).
pub fn reset_tmp(tmp_dir: &Path) -> Result<PathBuf> {
    let trash = tmp_dir.with_file_name("trash");
    if tmp_dir.exists() {
        fs::create_dir_all(&trash).with_context(|| format!("creating {}", trash.display()))?;
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let to = trash.join(format!("{}-{n}", std::process::id()));
        fs::rename(tmp_dir, &to).with_context(|| format!("moving {} to {}", tmp_dir.display(), to.display()))?;
    }
    fs::create_dir_all(tmp_dir).with_context(|| format!("creating {}", tmp_dir.display()))?;
    if trash.exists() {
        empty_in_background(trash);
    }
    Ok(tmp_dir.to_path_buf())
}

/// Deletes what `dir` holds on a background thread, one thread at a time.
fn empty_in_background(dir: PathBuf) {
    static EMPTYING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if EMPTYING.swap(true, Ordering::AcqRel) {
        return; // the thread at work picks up what was added
    }
    std::thread::spawn(move || {
        loop {
            let entries: Vec<PathBuf> = fs::read_dir(&dir)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            if entries.is_empty() {
                break;
            }
            for e in entries {
                // a failure leaves the entry for the next run; nothing depends on it
                let _ = fs::remove_dir_all(&e).or_else(|_| fs::remove_file(&e));
            }
        }
        EMPTYING.store(false, Ordering::Release);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_replaced_aside_is_whole_and_its_old_self_goes_with_the_next_reset() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = reset_tmp(&dir.path().join(".daydream/tmp")).unwrap();
        let out = dir.path().join("out");
        fs::create_dir_all(&out).unwrap();
        let path = out.join("a.txt");
        // a first write (nothing to move aside), then a replacement
        let first = write_atomic_in_dir(&tmp, &path, b"old", true).unwrap();
        assert_eq!(first.size, 3);
        let second = write_atomic_in_dir(&tmp, &path, b"newer", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"newer");
        assert_eq!(
            stat(&path),
            Some(second),
            "the stat taken before the rename is the file's"
        );
        let held: Vec<Vec<u8>> = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| fs::read(e.unwrap().path()).unwrap())
            .collect();
        assert_eq!(held, vec![b"old".to_vec()], "only the old file waits in tmp");
        // the next reset leaves tmp empty and deletes the old file in the background
        reset_tmp(&tmp).unwrap();
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        let trash = tmp.with_file_name("trash");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fs::read_dir(&trash).unwrap().count() > 0 {
            assert!(std::time::Instant::now() < deadline, "trash never emptied");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(fs::read(&path).unwrap(), b"newer");
    }

    #[test]
    fn dir_stat_agrees_with_stat_and_misses_what_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/x.txt"), b"xyz").unwrap();
        fs::write(dir.path().join("top.txt"), b"t").unwrap();
        let mut ds = DirStat::new(dir.path());
        assert_eq!(ds.stat("a/b/x.txt"), stat(&dir.path().join("a/b/x.txt")));
        assert_eq!(ds.stat("a/b/x.txt").unwrap().size, 3);
        assert_eq!(ds.stat("top.txt").unwrap().size, 1);
        assert_eq!(ds.stat("a/b/missing.txt"), None);
        assert_eq!(ds.stat("a/b"), None, "a directory is not a file");
        assert_eq!(ds.stat("nowhere/x.txt"), None);
    }
}
