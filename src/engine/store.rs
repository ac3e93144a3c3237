//! The persistent store in `.daydream/`: one SQLite database holding action records (key ->
//! manifest, output hash, when), content-addressed blobs, and the record of every file
//! materialized under the project (path -> key, content hash, size, mtime).
//!
//! Only this module writes `.daydream/store.db`. Every write is a transaction; a blob is always
//! committed before (or with) the action that names it, so a `kill -9` leaves either the whole
//! action or none of it. The database is queryable by users with any SQLite client.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

use crate::engine::keys::{FastMap, Hash, Manifest};

mod gc;
mod shared;
mod upgrade;

pub use gc::{AnswersGc, GcOptions, GcReport};

pub use upgrade::Rekeyed;

pub use shared::StoredAnswer;

const SCHEMA_VERSION: i64 = 1;

/// Commits that are synced to disk: every commit but those `Store::recomputable` makes.
const SYNCED: &str = "PRAGMA synchronous=FULL";

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// An empty store in memory (see `open_or_empty`): there is no file for a second connection.
    in_memory: bool,
    /// In a long session (`run --watch`, which holds the project lock, so nothing else writes):
    /// per stage, the actions and output records last read, kept up to date by this store's own
    /// writes, so a rebuild does not read every record again.
    session: Option<std::sync::Mutex<SessionCache>>,
    /// In a session: the checkpoint running beside it (see `checkpoint_in_background`).
    checkpoint: Option<std::thread::JoinHandle<()>>,
}

/// A stage's output records in the order the store holds them: the order they were first written,
/// which is the order of the stage's artifacts, so a plan reads them by position; an index by path
/// is built the first time a position does not match.
#[derive(Clone, Default)]
pub struct Records {
    rows: Vec<(String, OutputRecord)>,
    index: std::sync::OnceLock<FastMap<String, usize>>,
}

impl Records {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Where `path`'s record is, by the index (built on first use).
    fn position(&self, path: &str) -> Option<usize> {
        self.index
            .get_or_init(|| self.rows.iter().enumerate().map(|(i, (p, _))| (p.clone(), i)).collect())
            .get(path)
            .copied()
    }

    pub fn get(&self, path: &str) -> Option<&OutputRecord> {
        self.position(path).map(|i| &self.rows[i].1)
    }

    /// The record of `path` and its position, looked for first at position `at`.
    pub fn find_at(&self, at: usize, path: &str) -> Option<(usize, &OutputRecord)> {
        match self.rows.get(at) {
            Some((p, r)) if p == path => Some((at, r)),
            _ => self.position(path).map(|i| (i, &self.rows[i].1)),
        }
    }

    /// Adds or replaces the record of `rec.path`.
    fn put(&mut self, rec: OutputRecord) {
        match self.position(&rec.path) {
            Some(i) => self.rows[i].1 = rec,
            None => {
                let path = rec.path.clone();
                self.index
                    .get_mut()
                    .expect("position built the index")
                    .insert(path.clone(), self.rows.len());
                self.rows.push((path, rec));
            }
        }
    }
}

#[derive(Default)]
struct SessionCache {
    /// Per stage: output hash by key, of the keys the last plan asked about.
    actions: HashMap<String, FastMap<Hash, Hash>>,
    /// Per stage: the records of its files, by path, shared with the run that reads them.
    outputs: HashMap<String, Arc<Records>>,
    /// Per stage: records written since its map was last handed out, added to it when it is next
    /// asked for (by then the run that held the map has let it go, so adding copies nothing).
    pending: HashMap<String, Vec<OutputRecord>>,
}

/// What the store knows about one action.
#[derive(Clone, Debug)]
pub struct ActionRecord {
    pub key: Hash,
    pub stage: String,
    pub manifest: Manifest,
    pub output: Hash,
    pub created_at: String,
}

/// One finished LLM call, as the executor hands it to the store.
pub struct CallRow {
    pub key: Hash,
    pub stage: String,
    pub task: String,
    pub status: String,
    pub manifest: Manifest,
    /// The response text, for a call that counts as answered (ok, or truncated when kept).
    pub response: Option<String>,
    /// The call record (JSON), kept with the action and written as the sidecar.
    pub record: String,
}

/// What the store knows about one file it wrote under the project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    pub path: String,
    pub stage: String,
    pub task: Option<String>,
    pub key: Hash,
    pub hash: Hash,
    pub size: u64,
    pub mtime_ns: i64,
}

fn hash_col(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Hash> {
    let b = row
        .get_ref(i)?
        .as_blob()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, Box::new(e)))?;
    Hash::from_slice(b).ok_or_else(|| rusqlite::Error::InvalidColumnType(i, "hash".into(), rusqlite::types::Type::Blob))
}

impl Store {
    pub fn open(state_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
        let path = state_dir.join("store.db");
        let conn = Connection::open(&path).with_context(|| format!("opening the store {}", path.display()))?;
        Store::init(conn, path.clone(), false).map_err(|e| damaged(&path, e))
    }

    /// The store when there is one, else an empty one in memory: for commands that only read
    /// (`run --dry-run`, `status`, `explain`), which must not create `.daydream/`.
    pub fn open_or_empty(state_dir: &Path) -> Result<Store> {
        let path = state_dir.join("store.db");
        if path.exists() {
            return Store::open(state_dir);
        }
        let conn = Connection::open_in_memory().context("opening an empty store in memory")?;
        Store::init(conn, path, true)
    }

    fn init(conn: Connection, path: PathBuf, in_memory: bool) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // a new store gives freed pages back (`gc`); an existing one is converted by `gc`. Only
        // when new: on an existing file the pragma rewrites its header, and commands that only
        // read (`status`, `--dry-run`) must leave the file as it was
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        if pages == 0 {
            conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL;")?;
        }
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA mmap_size=1073741824;
             PRAGMA wal_autocheckpoint=10000;
             CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS blobs(hash BLOB PRIMARY KEY, data BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS actions(
                key BLOB PRIMARY KEY,
                stage TEXT NOT NULL,
                kind TEXT NOT NULL,
                manifest TEXT NOT NULL,
                output BLOB NOT NULL,
                created_at TEXT NOT NULL,
                info TEXT);
             CREATE INDEX IF NOT EXISTS actions_stage_key ON actions(stage, key, output);
             CREATE INDEX IF NOT EXISTS actions_kind ON actions(kind);
             CREATE TABLE IF NOT EXISTS calls(
                id INTEGER PRIMARY KEY,
                key BLOB NOT NULL,
                stage TEXT NOT NULL,
                task TEXT NOT NULL,
                status TEXT NOT NULL,
                record TEXT NOT NULL,
                created_at TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS calls_stage ON calls(stage, task);
             CREATE TABLE IF NOT EXISTS superseded(
                key BLOB NOT NULL,
                output BLOB NOT NULL,
                info TEXT,
                created_at TEXT NOT NULL,
                superseded_at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS outputs(
                path TEXT PRIMARY KEY,
                stage TEXT NOT NULL,
                task TEXT,
                key BLOB NOT NULL,
                hash BLOB NOT NULL,
                size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS outputs_stage ON outputs(stage);
             CREATE INDEX IF NOT EXISTS outputs_task ON outputs(task);",
        )
        .with_context(|| format!("initialising the store {}", path.display()))?;
        let version: Option<String> = conn
            .query_row("SELECT v FROM meta WHERE k='schema'", [], |r| r.get(0))
            .optional()?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta(k, v) VALUES('schema', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(v) => anyhow::bail!(
                "the store {} has schema version {v}, this daydream reads version {SCHEMA_VERSION}; \
                 use a matching daydream, or move .daydream/ away to start afresh",
                path.display()
            ),
        }
        Ok(Store {
            conn,
            path,
            in_memory,
            session: None,
            checkpoint: None,
        })
    }

    /// Starts reading, on a second connection and thread, what `prepare` reads of `stages`: their
    /// actions and output records. A run plans meanwhile; nothing is written until every stage
    /// read through the prefetch is prepared. None in a session (its cache answers instead).
    pub fn prefetch(&self, stages: Vec<String>) -> Prefetch {
        if self.session.is_some() || stages.is_empty() || self.in_memory {
            return Prefetch(None);
        }
        let path = self.path.clone();
        Prefetch(Some(std::thread::spawn(move || {
            let conn = open_read_only(&path, true)?;
            let mut out = HashMap::new();
            for stage in stages {
                let known = read_action_outputs(&conn, &stage)?;
                let records = read_outputs_of_stage(&conn, &stage)?;
                out.insert(stage, (known, records));
            }
            Ok(out)
        })))
    }

    /// Keeps what rebuilds read in memory from now on (the caller holds the project lock).
    /// Also leaves checkpoints (copying the write-ahead log into the database, which syncs both)
    /// to `checkpoint_in_background`, so a rebuild's commit waits for its own log only.
    pub fn keep_in_memory(&mut self) -> Result<()> {
        self.session = Some(Default::default());
        self.conn.execute_batch("PRAGMA wal_autocheckpoint=0;")?;
        Ok(())
    }

    /// Starts a checkpoint on a second connection and thread, unless one is still running. It
    /// takes no lock that this store's writes wait for, and a failed one only leaves the log
    /// longer (the next one, or the next open of the store, finishes the work).
    pub fn checkpoint_in_background(&mut self) {
        // outside a session, commits checkpoint as they go
        if self.session.is_none() || self.checkpoint.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let path = self.path.clone();
        self.checkpoint = Some(std::thread::spawn(move || {
            if let Ok(conn) = Connection::open(&path) {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        }));
    }

    fn cache(&self) -> Option<std::sync::MutexGuard<'_, SessionCache>> {
        self.session.as_ref().map(|m| m.lock().expect("store cache lock"))
    }

    fn forget_cache(&self) {
        if let Some(mut c) = self.cache() {
            *c = SessionCache::default();
        }
    }

    /// The output hash of each of `keys` that `stage` has an action for. Outside a session this
    /// is every action of the stage; in one, the keys asked last time are answered from memory
    /// and only new ones are looked up.
    pub fn action_outputs_for<'k>(
        &self,
        stage: &str,
        keys: impl Iterator<Item = &'k Hash>,
    ) -> Result<FastMap<Hash, Hash>> {
        let Some(mut cache) = self.cache() else {
            return self.action_outputs(stage);
        };
        let (all, fresh) = match cache.actions.remove(stage) {
            Some(known) => (known, false),
            None => (self.action_outputs(stage)?, true),
        };
        let mut out = FastMap::default();
        let mut look = self
            .conn
            .prepare_cached("SELECT output FROM actions WHERE key=?1 AND stage=?2")?;
        for k in keys {
            if let Some(o) = all.get(k) {
                out.insert(*k, *o);
            } else if !fresh
                && let Some(o) = look
                    .query_row(params![&k.0[..], stage], |r| hash_col(r, 0))
                    .optional()?
            {
                out.insert(*k, o);
            }
        }
        cache.actions.insert(stage.to_owned(), out.clone());
        Ok(out)
    }

    /// Output hash of every action of `stage`, by key.
    pub fn action_outputs(&self, stage: &str) -> Result<FastMap<Hash, Hash>> {
        read_action_outputs(&self.conn, stage)
    }

    pub fn action(&self, key: &Hash) -> Result<Option<ActionRecord>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT stage, manifest, output, created_at FROM actions WHERE key=?1")?;
        let row = st
            .query_row([&key.0[..]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    hash_col(r, 2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .optional()?;
        row.map(|(stage, manifest, output, created_at)| {
            let manifest = serde_json::from_str(&manifest).context("a manifest in the store is not valid JSON")?;
            Ok(ActionRecord {
                key: *key,
                stage,
                manifest,
                output,
                created_at,
            })
        })
        .transpose()
    }

    pub fn blob(&self, hash: &Hash) -> Result<Option<Vec<u8>>> {
        read_blob(&self.conn, hash)
    }

    /// A second, read-only connection for reading blobs beside this one's writes.
    pub fn reader(&self) -> Result<BlobReader> {
        let conn = open_read_only(&self.path, false)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(BlobReader(conn))
    }

    /// Size in bytes of a blob, without reading it.
    pub fn blob_size(&self, hash: &Hash) -> Result<Option<u64>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT length(data) FROM blobs WHERE hash=?1")?;
        Ok(st
            .query_row([&hash.0[..]], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|n| n as u64))
    }

    /// Stores content that no action names (the combo registry, which is a ledger, not a function
    /// of its inputs).
    pub fn put_blob(&mut self, bytes: &[u8]) -> Result<Hash> {
        let h = Hash::of(bytes);
        self.conn.execute_batch(SYNCED)?;
        self.conn.execute(
            "INSERT OR IGNORE INTO blobs(hash, data) VALUES(?1, ?2)",
            params![&h.0[..], bytes],
        )?;
        Ok(h)
    }

    /// Runs `write` with commits that are not synced to disk (`synchronous=NORMAL`; every other
    /// commit is `FULL`). For what the next run can recompute from the inputs: deterministic
    /// actions and the records of files on disk. A process killed at any moment loses none of them
    /// (the WAL is in the page cache); a power cut may lose the last of them, never a synced commit
    /// before them, and the next run recomputes what it lost. Paid answers and the registry's
    /// history are always synced.
    fn recomputable<T>(&mut self, write: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("PRAGMA synchronous=NORMAL")?;
        let result = write(self);
        let reset = self.conn.execute_batch(SYNCED);
        let value = result?;
        reset?;
        Ok(value)
    }

    /// Records actions and their output blobs in one transaction.
    pub fn put_actions<'a>(
        &mut self,
        stage: &str,
        items: impl IntoIterator<Item = (&'a Manifest, &'a [u8])>,
    ) -> Result<()> {
        self.put_actions_with_info(stage, items.into_iter().map(|(m, b)| (Cow::Borrowed(m), b, None)))
    }

    /// Records actions, their output blobs and what is known of how each was made (`info`, JSON).
    pub fn put_actions_with_info<'a>(
        &mut self,
        stage: &str,
        items: impl IntoIterator<Item = (Cow<'a, Manifest>, &'a [u8], Option<&'a str>)>,
    ) -> Result<()> {
        self.recomputable(|s| s.insert_actions(stage, items))
    }

    fn insert_actions<'a>(
        &mut self,
        stage: &str,
        items: impl IntoIterator<Item = (Cow<'a, Manifest>, &'a [u8], Option<&'a str>)>,
    ) -> Result<()> {
        let now = crate::engine::clock::now_utc();
        let mut added = Vec::new();
        let tx = self.conn.transaction()?;
        {
            let mut blob = tx.prepare_cached("INSERT OR IGNORE INTO blobs(hash, data) VALUES(?1, ?2)")?;
            let mut act = tx.prepare_cached(
                "INSERT OR REPLACE INTO actions(key, stage, kind, manifest, output, created_at, info) VALUES(?1,?2,?3,?4,?5,?6,?7)",
            )?;
            for (manifest, bytes, info) in items {
                let out = Hash::of(bytes);
                blob.execute(params![&out.0[..], bytes])?;
                let json = manifest.to_json();
                let key = Hash::of(json.as_bytes());
                act.execute(params![&key.0[..], stage, manifest.kind, json, &out.0[..], now, info])?;
                added.push((key, out));
            }
        }
        tx.commit().context("committing actions to the store")?;
        if let Some(mut c) = self.cache()
            && let Some(known) = c.actions.get_mut(stage)
        {
            known.extend(added);
        }
        Ok(())
    }

    /// Output hash of every action of one kind (across stages: an LLM answer is reused wherever
    /// the same call is asked for), by key.
    pub fn action_outputs_of_kind(&self, kind: &str) -> Result<FastMap<Hash, Hash>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT key, output FROM actions WHERE kind=?1")?;
        let rows = st.query_map([kind], |r| Ok((hash_col(r, 0)?, hash_col(r, 1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether an action of `key` is recorded.
    pub fn has_action(&self, key: &Hash) -> Result<bool> {
        let mut st = self.conn.prepare_cached("SELECT 1 FROM actions WHERE key=?1")?;
        Ok(st.query_row([&key.0[..]], |_| Ok(())).optional()?.is_some())
    }

    /// The call record kept with an LLM action.
    pub fn action_info(&self, key: &Hash) -> Result<Option<String>> {
        let mut st = self.conn.prepare_cached("SELECT info FROM actions WHERE key=?1")?;
        Ok(st
            .query_row([&key.0[..]], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    /// Records finished calls in one transaction (one fsync): every call in `calls`, and each
    /// answer as a blob and an action. With `replacing` (`--refresh`, or an import), an answer
    /// that replaces another keeps the old one in `superseded`; otherwise no answer of these keys
    /// exists (they were asked because the store had none, and the project lock keeps it so).
    pub fn put_calls(&mut self, rows: &[CallRow], replacing: bool) -> Result<()> {
        if let Some(mut c) = self.cache() {
            for r in rows {
                c.actions.remove(&r.stage);
            }
        }
        let now = crate::engine::clock::now_utc();
        // synced whatever an earlier write left the connection at (see `recomputable`)
        self.conn.execute_batch(SYNCED)?;
        let tx = self.conn.transaction()?;
        {
            let mut call = tx.prepare_cached(
                "INSERT INTO calls(key, stage, task, status, record, created_at) VALUES(?1,?2,?3,?4,?5,?6)",
            )?;
            let mut blob = tx.prepare_cached("INSERT OR IGNORE INTO blobs(hash, data) VALUES(?1, ?2)")?;
            let mut keep = tx.prepare_cached(
                "INSERT INTO superseded(key, output, info, created_at, superseded_at)
                 SELECT key, output, info, created_at, ?2 FROM actions WHERE key=?1 AND output<>?3",
            )?;
            let mut act = tx.prepare_cached(
                "INSERT OR REPLACE INTO actions(key, stage, kind, manifest, output, created_at, info) VALUES(?1,?2,?3,?4,?5,?6,?7)",
            )?;
            for r in rows {
                call.execute(params![&r.key.0[..], r.stage, r.task, r.status, r.record, now])?;
                if let Some(text) = &r.response {
                    let out = Hash::of(text.as_bytes());
                    blob.execute(params![&out.0[..], text.as_bytes()])?;
                    if replacing {
                        keep.execute(params![&r.key.0[..], now, &out.0[..]])?;
                    }
                    act.execute(params![
                        &r.key.0[..],
                        r.stage,
                        r.manifest.kind,
                        r.manifest.to_json(),
                        &out.0[..],
                        now,
                        r.record
                    ])?;
                }
            }
        }
        tx.commit().context("committing LLM responses to the store")?;
        Ok(())
    }

    /// The record of the latest call of `task` (of `stage`) that answered `key`.
    pub fn answered_call(&self, stage: &str, key: &Hash, task: &str) -> Result<Option<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT record FROM calls WHERE stage=?1 AND task=?2 AND key=?3
             AND status IN ('ok', 'truncated', 'imported') ORDER BY id DESC LIMIT 1",
        )?;
        Ok(st
            .query_row(params![stage, task, &key.0[..]], |r| r.get(0))
            .optional()?)
    }

    /// The latest call record of every task of a stage: (status, record JSON).
    pub fn latest_calls(&self, stage: &str) -> Result<HashMap<String, (String, String)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT task, status, record FROM calls WHERE stage=?1 ORDER BY id")?;
        let rows = st.query_map([stage], |r| {
            Ok((r.get::<_, String>(0)?, (r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// What a stage left on record: its output files, how many distinct actions made them, and
    /// when it last recorded an action or a call.
    pub fn stage_facts(&self, stage: &str) -> Result<(usize, usize, Option<String>)> {
        let (files, distinct): (i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), COUNT(DISTINCT key) FROM outputs WHERE stage=?1",
            [stage],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let last: Option<String> = self.conn.query_row(
            "SELECT MAX(t) FROM (SELECT MAX(created_at) AS t FROM actions WHERE stage=?1
                                UNION ALL SELECT MAX(created_at) FROM calls WHERE stage=?1)",
            [stage],
            |r| r.get(0),
        )?;
        Ok((files as usize, distinct as usize, last))
    }

    /// Every call record of a task, oldest first.
    pub fn calls_of_task(&self, task: &str) -> Result<Vec<(String, String, String)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT stage, status, record FROM calls WHERE task=?1 ORDER BY id")?;
        let rows = st.query_map([task], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The records of a stage's files (see [`Records`]). For speed, `path`, `stage` and `task` of
    /// the returned records are left empty: `Records` keeps each path beside its record.
    pub fn outputs_of_stage(&self, stage: &str) -> Result<Arc<Records>> {
        if let Some(mut c) = self.cache() {
            let c = &mut *c;
            if let Some(records) = c.outputs.get_mut(stage) {
                if let Some(new) = c.pending.remove(stage) {
                    let map = Arc::make_mut(records);
                    for o in new {
                        map.put(o);
                    }
                }
                return Ok(records.clone());
            }
        }
        let out = Arc::new(read_outputs_of_stage(&self.conn, stage)?);
        if let Some(mut c) = self.cache() {
            c.pending.remove(stage);
            c.outputs.insert(stage.to_owned(), out.clone());
        }
        Ok(out)
    }

    pub fn output(&self, path: &str) -> Result<Option<OutputRecord>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT path, stage, task, key, hash, size, mtime_ns FROM outputs WHERE path=?1")?;
        Ok(st.query_row([path], output_row).optional()?)
    }

    pub fn outputs_of_task(&self, task: &str) -> Result<Vec<OutputRecord>> {
        let mut st = self.conn.prepare_cached(
            "SELECT path, stage, task, key, hash, size, mtime_ns FROM outputs WHERE task=?1 ORDER BY path",
        )?;
        let rows = st.query_map([task], output_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records files written under the project (path -> key, content hash, size, mtime).
    pub fn put_outputs<'a>(&mut self, records: impl IntoIterator<Item = &'a OutputRecord>) -> Result<()> {
        let records: Vec<&OutputRecord> = records.into_iter().collect();
        self.recomputable(|s| s.insert_outputs(&records))
    }

    fn insert_outputs(&mut self, records: &[&OutputRecord]) -> Result<()> {
        let kept = self.session.is_some().then_some(records).into_iter().flatten();
        let tx = self.conn.transaction()?;
        {
            // Most records replace one of the same path, stage and task: updating the columns no
            // index holds changes one page per row, where replacing the row changes every index.
            let mut update = tx.prepare_cached(
                "UPDATE outputs SET key=?4, hash=?5, size=?6, mtime_ns=?7 WHERE path=?1 AND stage=?2 AND task IS ?3",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO outputs(path, stage, task, key, hash, size, mtime_ns) VALUES(?1,?2,?3,?4,?5,?6,?7)",
            )?;
            for o in records {
                let row = params![
                    o.path,
                    o.stage,
                    o.task,
                    &o.key.0[..],
                    &o.hash.0[..],
                    o.size as i64,
                    o.mtime_ns
                ];
                if update.execute(row)? == 0 {
                    insert.execute(row)?;
                }
            }
        }
        tx.commit().context("committing output records to the store")?;
        if let Some(mut c) = self.cache() {
            let c = &mut *c;
            for o in kept {
                if c.outputs.contains_key(&o.stage) {
                    c.pending.entry(o.stage.clone()).or_default().push((*o).clone());
                }
            }
        }
        Ok(())
    }

    /// Forgets a stage: its actions and its output records, except the records of `keep`.
    /// Returns the paths it had written (less `keep`).
    pub fn forget_stage(&mut self, stage: &str, keep: &[&str]) -> Result<Vec<String>> {
        self.forget_cache();
        let tx = self.conn.transaction()?;
        let paths = {
            let mut st = tx.prepare("SELECT path FROM outputs WHERE stage=?1 ORDER BY path")?;
            let all = st
                .query_map([stage], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            all.into_iter()
                .filter(|p| !keep.contains(&p.as_str()))
                .collect::<Vec<_>>()
        };
        {
            let mut del = tx.prepare("DELETE FROM outputs WHERE path=?1")?;
            for p in &paths {
                del.execute([p])?;
            }
        }
        tx.execute("DELETE FROM actions WHERE stage=?1", [stage])?;
        tx.execute("DELETE FROM calls WHERE stage=?1", [stage])?;
        tx.commit()?;
        Ok(paths)
    }

    /// Forgets the records of content the store no longer holds (a blob deleted by hand, say):
    /// the unpaid actions that made `hash` and the file records naming it, so that the next run
    /// makes it anew. Records of paid calls are kept. Returns how many records went; none while
    /// the blob is there.
    pub fn forget_lost(&mut self, hash: &Hash) -> Result<usize> {
        self.forget_cache();
        let h = &hash.0[..];
        let tx = self.conn.transaction()?;
        let present = tx
            .query_row("SELECT 1 FROM blobs WHERE hash=?1", [h], |_| Ok(()))
            .optional()?
            .is_some();
        let mut n = 0;
        if !present {
            n += tx.execute(
                "DELETE FROM actions WHERE output=?1 AND key NOT IN (SELECT key FROM calls)",
                [h],
            )?;
            n += tx.execute("DELETE FROM outputs WHERE hash=?1", [h])?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Deletes blobs that no action and no output record names any more. Returns how many went.
    pub fn collect_garbage(&mut self) -> Result<usize> {
        let n = self
            .conn
            .execute("DELETE FROM blobs WHERE hash NOT IN (SELECT output FROM actions) AND hash NOT IN (SELECT hash FROM outputs) \
             AND hash NOT IN (SELECT output FROM superseded)", [])?;
        Ok(n)
    }
}

/// A store SQLite cannot read (not a database, or corrupt) is named with what to do: the files
/// under data/ are not touched by it, and `import` adopts the answers they hold.
fn damaged(path: &Path, e: anyhow::Error) -> anyhow::Error {
    let broken = e.chain().any(|c| {
        c.downcast_ref::<rusqlite::Error>().is_some_and(|r| {
            matches!(
                r.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            )
        })
    });
    if !broken {
        return e;
    }
    anyhow::anyhow!(
        "the store {} is damaged ({e:#}); the files under data/ are as they were. To go on: move it away \
         (`mv .daydream .daydream.damaged`), run `daydream import .` to adopt the LLM answers the files under data/ \
         hold (so they are not paid for again; a remote cache, if you use one, also gives them back), then \
         `daydream run`",
        path.display()
    )
}

/// What `Store::prefetch` read: per stage, its actions (key -> output) and its output records.
pub type Prefetched = HashMap<String, (FastMap<Hash, Hash>, Records)>;

/// Reads blobs on a connection of its own (see `Store::reader`).
pub struct BlobReader(Connection);

impl BlobReader {
    /// Several blobs in one read transaction, in the order asked. Each read transaction that
    /// finds a commit since the last one drops the connection's page cache, so reading beside a
    /// writer that commits every answer is much cheaper in batches.
    pub fn blobs(&self, hashes: &[Hash]) -> Result<Vec<Option<Vec<u8>>>> {
        let tx = self.0.unchecked_transaction()?;
        let out = hashes.iter().map(|h| read_blob(&tx, h)).collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(out)
    }
}

fn read_blob(conn: &Connection, hash: &Hash) -> Result<Option<Vec<u8>>> {
    let mut st = conn.prepare_cached("SELECT data FROM blobs WHERE hash=?1")?;
    Ok(st.query_row([&hash.0[..]], |r| r.get(0)).optional()?)
}

/// A read-only connection to the store at `path`, beside the one that writes.
///
/// `mmap` maps the database file, which suits reads done before anything is written. A reader
/// beside commits must not: every read transaction that finds the log changed since the last
/// unmaps the file (SQLite's `sqlite3OsUnfetch`), and on a VM each `munmap` is a TLB shootdown
/// across the CPUs. With one commit per answer at 16 in flight that was a quarter of the run's
/// CPU (bench/llm/README.md).
fn open_read_only(path: &Path, mmap: bool) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening the store {}", path.display()))?;
    if mmap {
        conn.execute_batch("PRAGMA mmap_size=1073741824;")?;
    }
    Ok(conn)
}

/// A prefetch under way (see `Store::prefetch`).
pub struct Prefetch(Option<std::thread::JoinHandle<Result<Prefetched>>>);

impl Prefetch {
    pub fn none() -> Prefetch {
        Prefetch(None)
    }

    /// Waits for the prefetch; empty when there was none.
    pub fn take(&mut self) -> Result<Prefetched> {
        match self.0.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| anyhow::bail!("the store prefetch thread panicked")),
            None => Ok(HashMap::new()),
        }
    }
}

fn read_action_outputs(conn: &Connection, stage: &str) -> Result<FastMap<Hash, Hash>> {
    let mut st = conn.prepare_cached("SELECT key, output FROM actions WHERE stage=?1")?;
    let rows = st.query_map([stage], |r| Ok((hash_col(r, 0)?, hash_col(r, 1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The records of a stage's files, in the order written, with `path`, `stage` and `task` left empty.
fn read_outputs_of_stage(conn: &Connection, stage: &str) -> Result<Records> {
    // the bulk read of a no-op run: only what classification needs, one allocation a row, in
    // the order written (the stage index holds it: no sort)
    let mut st =
        conn.prepare_cached("SELECT path, key, hash, size, mtime_ns FROM outputs WHERE stage=?1 ORDER BY rowid")?;
    let mut rows = st.query([stage])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let path: String = r.get(0)?;
        let rec = OutputRecord {
            path: String::new(),
            stage: String::new(),
            task: None,
            key: hash_col(r, 1)?,
            hash: hash_col(r, 2)?,
            size: r.get::<_, i64>(3)? as u64,
            mtime_ns: r.get(4)?,
        };
        out.push((path, rec));
    }
    Ok(Records {
        rows: out,
        index: Default::default(),
    })
}

fn output_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutputRecord> {
    Ok(OutputRecord {
        path: r.get(0)?,
        stage: r.get(1)?,
        task: r.get(2)?,
        key: hash_col(r, 3)?,
        hash: hash_col(r, 4)?,
        size: r.get::<_, i64>(5)? as u64,
        mtime_ns: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(s: &Store) -> i64 {
        s.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn paid_answers_and_the_registry_are_synced_whatever_came_before() {
        const FULL: i64 = 2;
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(synchronous(&s), FULL);
        // a recomputable write leaves the connection synced again
        s.put_outputs(std::iter::empty()).unwrap();
        assert_eq!(synchronous(&s), FULL);
        // and should anything leave it unsynced, a paid answer or the registry syncs anyway
        for write in [
            |s: &mut Store| s.put_calls(&[], false),
            |s: &mut Store| s.put_blob(b"registry").map(drop),
        ] {
            s.conn.execute_batch("PRAGMA synchronous=NORMAL").unwrap();
            write(&mut s).unwrap();
            assert_eq!(synchronous(&s), FULL);
        }
    }

    #[test]
    fn a_reader_beside_commits_sees_each_new_blob_in_order_and_does_not_map_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let r = s.reader().unwrap();
        let mmap: i64 = r.0.query_row("PRAGMA mmap_size", [], |r| r.get(0)).unwrap();
        assert_eq!(mmap, 0);
        let missing = Hash::of(b"never stored");
        let mut stored = Vec::new();
        for i in 0..3 {
            // a commit between reads: the reader must see it
            let bytes = format!("prompt {i}").into_bytes();
            stored.push((s.put_blob(&bytes).unwrap(), bytes));
            let (h, bytes) = stored.last().unwrap();
            assert_eq!(r.blobs(&[*h]).unwrap(), [Some(bytes.clone())]);
        }
        let ask = [stored[2].0, missing, stored[0].0, stored[1].0];
        let got = r.blobs(&ask).unwrap();
        let want = [Some(&stored[2].1), None, Some(&stored[0].1), Some(&stored[1].1)];
        assert_eq!(got.iter().map(Option::as_ref).collect::<Vec<_>>(), want);
        assert!(r.blobs(&[]).unwrap().is_empty());
    }

    #[test]
    fn forgetting_lost_content_drops_unpaid_records_only_and_only_when_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let m = Manifest::new("prompt").param("template", "t");
        s.put_actions("generation_prompt", [(&m, &b"a prompt"[..])]).unwrap();
        let prompt = Hash::of(b"a prompt");
        let paid = CallRow {
            key: Hash::of(b"call"),
            stage: "generation_response".into(),
            task: "t1".into(),
            status: "ok".into(),
            manifest: Manifest::new("generation_response"),
            response: Some("an answer".into()),
            record: "{}".into(),
        };
        s.put_calls(std::slice::from_ref(&paid), false).unwrap();
        let answer = Hash::of(b"an answer");
        let actions = |s: &Store| -> i64 {
            s.conn
                .query_row("SELECT COUNT(*) FROM actions", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(actions(&s), 2);
        // still there: nothing is forgotten
        assert_eq!(s.forget_lost(&prompt).unwrap(), 0);
        for h in [prompt, answer] {
            s.conn.execute("DELETE FROM blobs WHERE hash=?1", [&h.0[..]]).unwrap();
        }
        // a paid answer's record stays even when its text is gone; the prompt's goes
        assert_eq!(s.forget_lost(&answer).unwrap(), 0);
        assert_eq!(s.forget_lost(&prompt).unwrap(), 1);
        assert_eq!(actions(&s), 1);
    }
}
