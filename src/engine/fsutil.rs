//! File system helpers: atomic writes, the project lock, stat fingerprints.
//!
//! Outputs are written to a temporary file inside `.daydream/tmp/` and renamed into place, or
//! written over a spare file in `.daydream/spare/` (an output's earlier version) and swapped into
//! place (see [`Writer`]), so a reader (or a `kill -9`) never sees half a file. `.daydream/tmp/`
//! is emptied at the start of every run, under the lock.

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

/// Writes many outputs, each atomically and without syncing, into directories that exist already,
/// recycling the files they replace.
///
/// Creating a file and freeing the one it replaces (its inode, its blocks, and on a filesystem
/// mounted with `discard` a trim of them) is most of the cost of rewriting a small file. So the
/// file an output replaces is kept in `.daydream/spare/`, and the next output is written over it
/// (no new blocks when the sizes are alike) and swapped into place in one atomic
/// `renameat2(RENAME_EXCHANGE)`, which leaves the old version in the spare's place for the next.
/// At no instant is an output absent or partial, and a `kill -9` leaves at worst a spare half
/// rewritten. The spares stay few: a writer starts with its share of them, gains one only when it
/// has none, and a new output (nothing to swap with) uses one up.
///
/// As with any write that is not synced: after a power cut (not a crash) an output rewritten in the
/// last half minute may hold older bytes under its new size and time. The store has every
/// output's content: `daydream explain` tells such a file as edited, and deleting it then running
/// again puts it back.
///
/// Where the swap is not supported (another OS or filesystem, or `.daydream/` on another
/// filesystem than the output), each output is a new file renamed into place; with `may_vanish`
/// the old one is first moved aside (cheaper than renaming over it on ext4, which frees its blocks
/// and flushes the new data there and then), so for an instant, or after a `kill -9` between the
/// two renames, the output is absent: only for outputs whose content the store holds.
pub struct Writer {
    tmp_dir: PathBuf,
    spare_dir: PathBuf,
    spares: Vec<PathBuf>,
    swap: bool,
    buf: Vec<u8>,
}

impl Writer {
    /// `n` writers (for `n` threads) sharing the spares in the `spare` directory beside `tmp_dir`.
    pub fn many(tmp_dir: &Path, n: usize) -> Result<Vec<Writer>> {
        let spare_dir = tmp_dir.with_file_name("spare");
        fs::create_dir_all(&spare_dir).with_context(|| format!("creating {}", spare_dir.display()))?;
        let mut spares: Vec<PathBuf> = fs::read_dir(&spare_dir)
            .with_context(|| format!("listing {}", spare_dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect();
        let n = n.max(1);
        let share = spares.len().div_ceil(n);
        Ok((0..n)
            .map(|_| Writer {
                tmp_dir: tmp_dir.to_path_buf(),
                spare_dir: spare_dir.clone(),
                spares: spares.split_off(spares.len().saturating_sub(share)),
                swap: true,
                buf: Vec::new(),
            })
            .collect())
    }

    /// Writes `bytes` to `path` and returns the file's stat (taken from the open file: the swap
    /// or rename keeps it).
    pub fn write(&mut self, path: &Path, bytes: &[u8], may_vanish: bool) -> Result<Stat> {
        while self.swap
            && let Some(spare) = self.spares.pop()
        {
            let Some(stat) =
                rewrite(&spare, bytes, &mut self.buf).with_context(|| format!("rewriting {}", spare.display()))?
            else {
                // linked elsewhere too, or not a plain file: not ours to rewrite; out of the pool
                if fs::symlink_metadata(&spare).is_ok_and(|m| m.is_file()) {
                    let _ = fs::remove_file(&spare);
                }
                continue;
            };
            match exchange(&spare, path) {
                Ok(()) => {
                    self.spares.push(spare); // now the old version: the next one's spare
                    return Ok(stat);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // a new output: the spare becomes it
                    move_into_place(&spare, path)?;
                    return Ok(stat);
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINVAL | libc::ENOSYS | libc::EXDEV | libc::EOPNOTSUPP)
                    ) || e.kind() == std::io::ErrorKind::Unsupported =>
                {
                    self.swap = false;
                    self.spares.push(spare);
                }
                Err(e) => return Err(e).with_context(|| format!("swapping {} into place", path.display())),
            }
        }
        let (tmp, stat) = write_tmp(&self.tmp_dir, bytes, false)?;
        if may_vanish {
            // the old file becomes a spare (or, without swaps, waits in tmp for the next reset)
            let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = if self.swap { &self.spare_dir } else { &self.tmp_dir };
            let old = dir.join(format!("{}-{n}.old", std::process::id()));
            match fs::rename(path, &old) {
                Ok(()) if self.swap => self.spares.push(old),
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("moving the old {} aside", path.display())),
            }
        }
        move_into_place(&tmp, path)?;
        Ok(stat)
    }
}

/// The page size the padding of [`rewrite`] assumes (a larger one only makes it pad less well).
const PAGE: usize = 4096;

/// Writes `bytes` over the file `spare` (in place, then cut to length) and returns its stat; None
/// when `spare` is not a plain file of one link (a hard link elsewhere would see the change).
fn rewrite(spare: &Path, bytes: &[u8], buf: &mut Vec<u8>) -> Result<Option<Stat>> {
    use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
    let f = match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(spare)
    {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EISDIR | libc::ENOENT)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let m = f.metadata()?;
    if !m.is_file() || m.nlink() != 1 {
        return Ok(None);
    }
    // Whole pages: a write that ends inside a page first reads that page from disk when the
    // spare is no longer cached (most are: they are old versions), so the write is padded with
    // zeros to the page's end, which the cut to length then drops.
    let padded = bytes.len().next_multiple_of(PAGE).max(PAGE);
    buf.clear();
    buf.extend_from_slice(bytes);
    buf.resize(padded, 0);
    f.write_all_at(buf, 0)?;
    if m.len() != bytes.len() as u64 || padded != bytes.len() {
        f.set_len(bytes.len() as u64)?;
    }
    Ok(Some(stat_of(&f.metadata()?)))
}

/// Swaps two paths atomically (`renameat2(RENAME_EXCHANGE)`); NotFound when `b` does not exist.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are NUL-terminated paths that live across the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
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

/// Keeps what daydream reads and writes for a project inside it once symbolic links are resolved:
/// a path through a link that leads out of the project, or into its `.daydream/`, is refused
/// rather than followed. Paths are relative to the project root, without `..` (pipeline.yaml's
/// paths and the ids are checked for that when read); this is the check on the disk. A directory
/// is resolved once, not each file in it.
pub struct Inside {
    root: PathBuf,
    real_root: PathBuf,
    known: std::sync::Mutex<std::collections::HashMap<String, Result<(), String>>>,
}

impl Inside {
    pub fn new(root: &Path) -> Inside {
        Inside {
            root: root.to_path_buf(),
            real_root: fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
            known: Default::default(),
        }
    }

    /// A directory daydream reads from or writes into (it may not exist yet), or a file: the
    /// deepest part of it that exists, resolved, must be in the project and not in `.daydream/`.
    pub fn dir(&self, rel: &str) -> Result<(), String> {
        if rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
            return Err(format!("{rel} is not a path inside the project"));
        }
        let mut p = self.root.join(rel);
        loop {
            match fs::canonicalize(&p) {
                Ok(real) => return self.within(rel, &real),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if let Ok(to) = fs::read_link(&p) {
                        return Err(format!(
                            "{} is a link to {}, which does not exist; daydream does not follow links",
                            shown_rel(&self.root, &p),
                            to.display()
                        ));
                    }
                    match p.parent() {
                        Some(parent) if p != self.root => p = parent.to_path_buf(),
                        _ => return Ok(()),
                    }
                }
                Err(e) => return Err(format!("cannot resolve {}: {e}", shown_rel(&self.root, &p))),
            }
        }
    }

    /// `dir`, remembered: each directory is resolved once for the life of the value (or until
    /// [`Inside::forget`]).
    pub fn dir_cached(&self, rel: &str) -> Result<(), String> {
        if let Some(r) = self.known.lock().expect("inside lock").get(rel) {
            return r.clone();
        }
        let r = self.dir(rel);
        self.known
            .lock()
            .expect("inside lock")
            .insert(rel.to_owned(), r.clone());
        r
    }

    /// A file daydream reads: its directory (remembered), and the file itself when it is a link.
    pub fn file(&self, rel: &str) -> Result<(), String> {
        self.dir_cached(parent(rel))?;
        self.link(rel)
    }

    /// An output of a run: its directory, resolved now (a run checks each output directory once,
    /// not each file), and, for a single file (not an `{id}` pattern), the file itself when it is
    /// a link (the registry and the ledgers are read before they are rewritten).
    pub fn output(&self, rel: &str, pattern: bool) -> Result<(), String> {
        self.dir(parent(rel))?;
        if pattern { Ok(()) } else { self.link(rel) }
    }

    fn link(&self, rel: &str) -> Result<(), String> {
        match fs::symlink_metadata(self.root.join(rel)) {
            Ok(m) if m.file_type().is_symlink() => self.dir(rel),
            _ => Ok(()),
        }
    }

    /// Forgets the directories resolved so far (a watch session, after a change on disk).
    pub fn forget(&self) {
        self.known.lock().expect("inside lock").clear();
    }

    fn within(&self, rel: &str, real: &Path) -> Result<(), String> {
        let state = self.real_root.join(crate::engine::spec::STATE_DIR);
        if !real.starts_with(&self.real_root) {
            Err(format!(
                "{rel} leads to {}, outside the project, through a symbolic link; daydream does not \
                 follow links out of the project (replace the link by a directory, or copy what it points to \
                 into the project)",
                real.display()
            ))
        } else if real.starts_with(&state) {
            Err(format!(
                "{rel} leads into {}/ through a symbolic link, where daydream keeps its store",
                crate::engine::spec::STATE_DIR
            ))
        } else {
            Ok(())
        }
    }
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or(".", |(d, _)| d)
}

fn shown_rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
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

    fn spares(tmp: &Path) -> Vec<Vec<u8>> {
        let mut held: Vec<Vec<u8>> = fs::read_dir(tmp.with_file_name("spare"))
            .unwrap()
            .map(|e| fs::read(e.unwrap().path()).unwrap())
            .collect();
        held.sort();
        held
    }

    #[test]
    fn a_replaced_file_becomes_the_spare_the_next_output_is_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = reset_tmp(&dir.path().join(".daydream/tmp")).unwrap();
        let out = dir.path().join("out");
        fs::create_dir_all(&out).unwrap();
        let (a, b, c) = (out.join("a.txt"), out.join("b.txt"), out.join("c.txt"));
        let mut w = Writer::many(&tmp, 1).unwrap().pop().unwrap();
        assert_eq!(w.write(&a, b"first a", true).unwrap().size, 7);
        assert_eq!(w.write(&b, b"first b", true).unwrap().size, 7);
        assert!(spares(&tmp).is_empty(), "new files leave no spare");
        // no spare yet: a new file, and the old one moves aside to become the spare
        let s = w.write(&a, b"second a", true).unwrap();
        assert_eq!((fs::read(&a).unwrap(), stat(&a)), (b"second a".to_vec(), Some(s)));
        assert_eq!(spares(&tmp), vec![b"first a".to_vec()]);
        // then the spare is rewritten (shorter, then longer) and swapped in; the old b is the spare
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let spare_inode = inode(
            &fs::read_dir(tmp.with_file_name("spare"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        );
        let s = w.write(&b, b"b2", true).unwrap();
        assert_eq!((fs::read(&b).unwrap(), stat(&b)), (b"b2".to_vec(), Some(s)));
        assert_eq!(inode(&b), spare_inode, "the spare was written over, not a new file");
        assert_eq!(spares(&tmp), vec![b"first b".to_vec()]);
        let s = w.write(&a, b"third a, longer than before", true).unwrap();
        assert_eq!(
            (fs::read(&a).unwrap(), stat(&a)),
            (b"third a, longer than before".to_vec(), Some(s))
        );
        assert_eq!(spares(&tmp), vec![b"second a".to_vec()]);
        // a new output uses the spare up; a file that must never be absent is renamed over
        w.write(&c, b"c", true).unwrap();
        assert!(spares(&tmp).is_empty());
        w.write(&c, b"c2", false).unwrap();
        assert_eq!(fs::read(&c).unwrap(), b"c2");
        assert!(spares(&tmp).is_empty());
        // the next run's writers find the spares left
        w.write(&c, b"c3", true).unwrap();
        let mut again = Writer::many(&tmp, 2).unwrap();
        assert_eq!(again.iter().map(|w| w.spares.len()).sum::<usize>(), 1);
        again[0].write(&b, b"b3", true).unwrap();
        again[1].write(&b, b"b4", true).unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"b4");
        assert_eq!(fs::read(&a).unwrap(), b"third a, longer than before");
        assert_eq!(fs::read(&c).unwrap(), b"c3");
        assert!(spares(&tmp).len() <= 2, "at most one spare per writer");
    }

    #[test]
    fn a_spare_linked_elsewhere_is_never_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = reset_tmp(&dir.path().join(".daydream/tmp")).unwrap();
        let spare_dir = tmp.with_file_name("spare");
        fs::create_dir_all(&spare_dir).unwrap();
        fs::write(spare_dir.join("s.old"), b"kept by a hard link").unwrap();
        fs::hard_link(spare_dir.join("s.old"), dir.path().join("keep.txt")).unwrap();
        let out = dir.path().join("out.txt");
        fs::write(&out, b"old").unwrap();
        let mut w = Writer::many(&tmp, 1).unwrap().pop().unwrap();
        w.write(&out, b"new", true).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"new");
        assert_eq!(fs::read(dir.path().join("keep.txt")).unwrap(), b"kept by a hard link");
        assert_eq!(spares(&tmp), vec![b"old".to_vec()], "the linked spare left the pool");
    }

    #[test]
    fn a_reset_empties_tmp_and_deletes_what_it_held_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = reset_tmp(&dir.path().join(".daydream/tmp")).unwrap();
        fs::write(tmp.join("left-by-a-crash.tmp"), b"x").unwrap();
        reset_tmp(&tmp).unwrap();
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        let trash = tmp.with_file_name("trash");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fs::read_dir(&trash).unwrap().count() > 0 {
            assert!(std::time::Instant::now() < deadline, "trash never emptied");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
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
