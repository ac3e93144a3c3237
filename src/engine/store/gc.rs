//! Garbage collection of the store (`daydream gc`, and watch mode between rebuilds): removes
//! what no current output, no recent version and no paid answer needs, then gives the space back.
//!
//! What is current comes from the caller, who plans the pipeline as `run --dry-run` does and
//! hands over every key the plan names, per stage. This is the only robust source: a prompt stage
//! with `materialize: false` keeps its prompts in the store only, so the `outputs` table does not
//! name them, and only the plan knows which of them the pipeline reads now.
//!
//! Recent versions: each time an output is made anew, its stage writes a new action. So per
//! stage, with `n` current keys, the `keep × n` most recently written actions that are not
//! current are kept (written order is the rowid order: `INSERT OR REPLACE` gives a new rowid).
//! An edit that rewrites every output of a stage adds `n` of them, so the last `keep` versions
//! of each output are there and reverting a recent edit restores without recomputing; the
//! store holds at most `keep + 1` versions of each stage's outputs however long a session is.
//! This needs no kind's knowledge and no history table.
//!
//! Never removed: an action some call record names, or an old answer in `superseded` (paid
//! answers: the rule is kind-agnostic, "an action that has a call record is paid"), unless the
//! caller asks for answers (`--answers`): then the actions of answers a remote holds (or all,
//! forced) go, with their content unless something kept names it. Call records are never
//! removed: they are the cost ledger and the key a run uses to fetch the answer back.
//!
//! Deletions run in bounded transactions, each a consistent store (a `kill -9` between two leaves
//! fewer versions, never a dangling record), and the caller may stop between two (watch mode
//! stops when a change arrives). Space goes back to the file by incremental vacuum in bounded
//! steps, then a checkpoint truncates the write-ahead log.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::engine::keys::Hash;

/// Which answers a collection removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswersGc {
    /// None (the default).
    Keep,
    /// Those the remote with this URL is known to hold (the `shared` table).
    Shared(String),
    /// All of them (`--force`).
    All,
}

pub struct GcOptions<'a> {
    /// Per stage of the pipeline: the keys its plan names now.
    pub current: &'a HashMap<String, Vec<Hash>>,
    /// Earlier versions kept per output, besides the current one.
    pub keep: u32,
    pub answers: AnswersGc,
    pub dry_run: bool,
    /// The explicit command: also converts a store made before incremental vacuum (a full
    /// `VACUUM`, as long as the store is big) and sweeps contents nothing names (left by `clean`,
    /// or by a collection stopped between its steps), which reads the whole blob table. Watch mode
    /// does neither: freed pages are reused by later writes all the same.
    pub convert: bool,
    /// The project root: records of files of stages no longer in the pipeline go once the file
    /// is gone.
    pub root: &'a Path,
}

/// What one stage loses.
#[derive(Clone, Debug, Default)]
pub struct StageGc {
    pub stage: String,
    pub versions: usize,
    pub bytes: u64,
}

/// What a collection removed (or, dry, would remove).
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    /// Old versions no current output needs, per stage (stages with none left out).
    pub stages: Vec<StageGc>,
    pub answers_removed: usize,
    pub answers_bytes: u64,
    /// Paid answers the store keeps (after the collection).
    pub answers_kept: usize,
    /// Records of files of stages no longer in the pipeline, whose file is gone.
    pub lost_records: usize,
    /// Blobs nothing named even before (left by `clean`, say).
    pub loose_blobs: usize,
    pub loose_bytes: u64,
    /// The database file (and its log) before and after.
    pub file_before: u64,
    pub file_after: u64,
    /// The store was converted to incremental vacuum (a one-time full `VACUUM`).
    pub converted: bool,
    /// Stopped early by the caller: the rest is for the next collection.
    pub interrupted: bool,
}

impl GcReport {
    pub fn versions(&self) -> usize {
        self.stages.iter().map(|s| s.versions).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.stages.iter().map(|s| s.bytes).sum::<u64>() + self.answers_bytes + self.loose_bytes
    }
}

/// Actions deleted per transaction: small enough that a rebuild waiting for the store waits
/// little, large enough that the commits' syncs do not dominate.
const BATCH: usize = 2000;
/// Pages given back per incremental vacuum step (4 MB of 4 KB pages).
const VACUUM_PAGES: i64 = 1024;

/// Paid actions: a call record names them, or they are an old answer kept in `superseded`.
const PAID: &str = "(key IN (SELECT key FROM calls) OR key IN (SELECT key FROM superseded))";

impl Store {
    /// Collects the store's garbage (see the module doc). `stop` is asked between transactions;
    /// when it says so, the collection ends there (a consistent store, less collected).
    pub fn gc(&mut self, opts: &GcOptions<'_>, stop: &dyn Fn() -> bool) -> Result<GcReport> {
        let mut report = GcReport {
            file_before: self.file_size(),
            ..Default::default()
        };
        // DAYDREAM_TIMING=1 prints where a collection spends its time (to stderr)
        let timing = std::env::var_os("DAYDREAM_TIMING").is_some();
        let mut t = std::time::Instant::now();
        let mut phase = |name: &str| {
            if timing {
                eprintln!("  gc {name}: {:.2}s", t.elapsed().as_secs_f64());
            }
            t = std::time::Instant::now();
        };
        self.mark_drops(opts)
            .context("choosing what the store can do without")?;
        phase("mark");
        self.measure(&mut report, opts.convert)?;
        let lost = self.lost_records(opts)?;
        report.lost_records = lost.len();
        phase("measure");
        if !opts.dry_run {
            self.forget_cache();
            report.interrupted = self.delete_drops(opts, &lost, stop)?;
            phase("delete");
            if !report.interrupted {
                self.reclaim(&mut report, opts.convert, stop)?;
                phase("reclaim");
            }
        }
        report.answers_kept = self
            .conn
            .query_row(&format!("SELECT count(*) FROM actions WHERE {PAID}"), [], |r| {
                r.get::<_, i64>(0)
            })? as usize;
        if opts.dry_run {
            report.answers_kept -= report.answers_removed;
        }
        self.conn
            .execute_batch("DROP TABLE IF EXISTS temp.gc_drop; DROP TABLE IF EXISTS temp.gc_blobs;")?;
        report.file_after = self.file_size();
        Ok(report)
    }

    fn file_size(&self) -> u64 {
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        len(&self.path) + len(Path::new(&wal))
    }

    /// Fills `temp.gc_drop` with the actions to delete (a temporary table: a dry run writes
    /// nothing to the store's file).
    fn mark_drops(&mut self, opts: &GcOptions<'_>) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "DROP TABLE IF EXISTS temp.gc_current; DROP TABLE IF EXISTS temp.gc_drop;
             CREATE TEMP TABLE gc_current(stage TEXT NOT NULL, key BLOB NOT NULL, PRIMARY KEY(stage, key)) WITHOUT ROWID;
             CREATE TEMP TABLE gc_drop(key BLOB PRIMARY KEY, stage TEXT NOT NULL, answer INTEGER NOT NULL) WITHOUT ROWID;",
        )?;
        {
            let mut ins = tx.prepare("INSERT OR IGNORE INTO temp.gc_current(stage, key) VALUES(?1, ?2)")?;
            for (stage, keys) in opts.current {
                for k in keys {
                    ins.execute(params![stage, &k.0[..]])?;
                }
            }
        }
        // old versions: per stage, all but the `keep × n` most recent non-current ones. Every
        // set is a temporary table made once, so the statement is one pass over `actions`
        tx.execute_batch(
            "CREATE TEMP TABLE gc_n AS SELECT stage, count(*) AS n FROM temp.gc_current GROUP BY stage;
             CREATE TEMP TABLE gc_keep(key BLOB PRIMARY KEY) WITHOUT ROWID;
             INSERT OR IGNORE INTO temp.gc_keep SELECT key FROM temp.gc_current;
             INSERT OR IGNORE INTO temp.gc_keep SELECT key FROM outputs;
             INSERT OR IGNORE INTO temp.gc_keep SELECT key FROM calls;
             INSERT OR IGNORE INTO temp.gc_keep SELECT key FROM superseded;",
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO temp.gc_drop(key, stage, answer)
             SELECT v.key, v.stage, 0 FROM (
               SELECT a.key, a.stage, ROW_NUMBER() OVER (PARTITION BY a.stage ORDER BY a.rowid DESC) AS rn
               FROM actions a WHERE a.key NOT IN (SELECT key FROM temp.gc_keep)) v
             LEFT JOIN temp.gc_n n ON n.stage = v.stage
             WHERE v.rn > ?1 * coalesce(n.n, 0)",
            [i64::from(opts.keep)],
        )?;
        match &opts.answers {
            AnswersGc::Keep => {}
            AnswersGc::Shared(remote) => {
                let has_shared = tx
                    .query_row(
                        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='shared'",
                        [],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if has_shared {
                    tx.execute(
                        "INSERT OR REPLACE INTO temp.gc_drop(key, stage, answer)
                         SELECT key, stage, 1 FROM actions WHERE key IN (SELECT key FROM calls)
                           AND key IN (SELECT key FROM shared WHERE remote=?1)",
                        [remote],
                    )?;
                }
            }
            AnswersGc::All => {
                tx.execute(
                    "INSERT OR REPLACE INTO temp.gc_drop(key, stage, answer)
                     SELECT key, stage, 1 FROM actions WHERE key IN (SELECT key FROM calls)",
                    [],
                )?;
            }
        }
        // the contents only dropped actions name: not a kept action, not an old answer in
        // `superseded`, not a file record (unless it is a dropped answer's: the file, and the
        // remote, hold it). Each is counted for the first stage (by name) dropping it.
        tx.execute_batch(
            "DROP TABLE IF EXISTS temp.gc_blobs;
             CREATE TEMP TABLE gc_blobs(hash BLOB PRIMARY KEY, stage TEXT NOT NULL, answer INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO temp.gc_blobs(hash, stage, answer)
               SELECT a.output, min(d.stage), max(d.answer) FROM actions a JOIN temp.gc_drop d ON a.key = d.key
               GROUP BY a.output;
             DELETE FROM temp.gc_blobs WHERE hash IN
               (SELECT output FROM actions WHERE key NOT IN (SELECT key FROM temp.gc_drop));
             DELETE FROM temp.gc_blobs WHERE hash IN (SELECT output FROM superseded);
             DELETE FROM temp.gc_blobs WHERE answer = 0 AND hash IN (SELECT hash FROM outputs);
             DROP TABLE temp.gc_current; DROP TABLE temp.gc_n; DROP TABLE temp.gc_keep;",
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Counts what the drops free: per stage, the answers, and (`loose`) blobs nothing named
    /// before.
    fn measure(&self, report: &mut GcReport, loose: bool) -> Result<()> {
        let mut freed: HashMap<(String, i64), i64> = HashMap::new();
        {
            let mut st = self.conn.prepare(
                "SELECT g.stage, g.answer, sum(length(b.data)) FROM temp.gc_blobs g JOIN blobs b ON b.hash = g.hash
                 GROUP BY g.stage, g.answer",
            )?;
            let rows = st.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
            for row in rows {
                let (k, v) = row?;
                freed.insert(k, v);
            }
        }
        let mut st = self
            .conn
            .prepare("SELECT stage, answer, count(*) FROM temp.gc_drop GROUP BY stage, answer ORDER BY stage")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })?;
        for row in rows {
            let (stage, answer, n) = row?;
            let bytes = freed.get(&(stage.clone(), answer)).copied().unwrap_or(0) as u64;
            if answer == 1 {
                report.answers_removed += n as usize;
                report.answers_bytes += bytes;
            } else {
                report.stages.push(StageGc {
                    stage,
                    versions: n as usize,
                    bytes,
                });
            }
        }
        if loose {
            let (n, bytes): (i64, i64) = self.conn.query_row(
                "SELECT count(*), coalesce(sum(length(data)), 0) FROM blobs
                 WHERE hash NOT IN (SELECT output FROM actions) AND hash NOT IN (SELECT hash FROM outputs)
                   AND hash NOT IN (SELECT output FROM superseded)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            report.loose_blobs = n as usize;
            report.loose_bytes = bytes as u64;
        }
        Ok(())
    }

    /// Records of files of stages the pipeline no longer has, whose file is gone.
    fn lost_records(&self, opts: &GcOptions<'_>) -> Result<Vec<String>> {
        let mut st = self.conn.prepare("SELECT path, stage FROM outputs")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut lost = Vec::new();
        for row in rows {
            let (path, stage) = row?;
            if !opts.current.contains_key(&stage) && !opts.root.join(&path).exists() {
                lost.push(path);
            }
        }
        Ok(lost)
    }

    /// Deletes the marked actions and the blobs only they named, in bounded transactions.
    /// True when `stop` ended it early.
    fn delete_drops(&mut self, opts: &GcOptions<'_>, lost: &[String], stop: &dyn Fn() -> bool) -> Result<bool> {
        if !lost.is_empty() {
            let tx = self.conn.transaction()?;
            {
                let mut del = tx.prepare("DELETE FROM outputs WHERE path=?1")?;
                for p in lost {
                    del.execute([p])?;
                }
            }
            tx.commit()?;
        }
        // each dropped action with its content; a content goes in the transaction that deletes
        // the last dropped action naming it, so every step leaves a consistent store
        let drops: Vec<(Vec<u8>, Vec<u8>)> = {
            let mut st = self
                .conn
                .prepare("SELECT d.key, a.output FROM temp.gc_drop d JOIN actions a ON a.key = d.key")?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut refs: HashMap<Vec<u8>, usize> = {
            let mut st = self.conn.prepare("SELECT hash FROM temp.gc_blobs")?;
            st.query_map([], |r| Ok((r.get(0)?, 0)))?
                .collect::<rusqlite::Result<_>>()?
        };
        for (_, output) in &drops {
            if let Some(n) = refs.get_mut(output) {
                *n += 1;
            }
        }
        for (i, batch) in drops.chunks(BATCH).enumerate() {
            // the first step always runs: a collection that a change interrupts still progresses
            if i > 0 && stop() {
                return Ok(true);
            }
            let tx = self.conn.transaction()?;
            {
                let mut del_action = tx.prepare_cached("DELETE FROM actions WHERE key = ?1")?;
                let mut del_blob = tx.prepare_cached("DELETE FROM blobs WHERE hash = ?1")?;
                for (key, output) in batch {
                    del_action.execute([key])?;
                    if let Some(n) = refs.get_mut(output) {
                        *n -= 1;
                        if *n == 0 {
                            del_blob.execute([output])?;
                        }
                    }
                }
            }
            tx.commit().context("committing a step of the collection")?;
        }
        if opts.convert {
            self.collect_garbage()?;
        }
        Ok(false)
    }

    /// Gives freed pages back to the file system: converts the store to incremental vacuum once
    /// (a full `VACUUM`: it rewrites the file, the one step whose length grows with the store),
    /// then frees pages in bounded steps, then truncates the log.
    fn reclaim(&mut self, report: &mut GcReport, convert: bool, stop: &dyn Fn() -> bool) -> Result<()> {
        let mode: i64 = self.conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
        // watch mode gives nothing back: freed pages are reused by the next rebuilds' writes, so
        // the file stops growing, and moving pages would compete with the session
        if !convert {
            let _ = self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            return Ok(());
        }
        let free: i64 = self.conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        // a tenth or more free: rewriting the live pages once (VACUUM) is much faster than moving
        // them one by one into the freed ones (incremental vacuum: 53 s against 10 s after 20
        // template saves at 99,200 tasks, 1 GB; bench/gc-results.md)
        if mode != 2 || free * 10 > pages {
            self.conn
                .execute_batch("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;")
                .context("giving the freed space back (VACUUM)")?;
            report.converted = mode != 2;
        }
        loop {
            let free: i64 = self.conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            if free == 0 || stop() {
                break;
            }
            self.conn
                .execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES});"))?;
        }
        // a busy reader (a checkpoint in the background) only leaves the log longer this time
        let _ = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(())
    }
}
