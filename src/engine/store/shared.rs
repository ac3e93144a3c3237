//! What the store tells and remembers about sharing answers with a remote cache: which actions
//! are answers (an effect whose outcome the `calls` table records: paid, or adopted), what one
//! of them is made of, and which of them a given remote is known to hold, so that a run uploads
//! only what is missing there (after a `kill -9` or a remote that was down, the rest).

use anyhow::{Context, Result};
use rusqlite::{OptionalExtension, params};

use super::{Store, hash_col};
use crate::engine::keys::Hash;

/// One answer as the store holds it, for upload.
pub struct StoredAnswer {
    pub key: Hash,
    /// The manifest JSON (its blake3 is `key`).
    pub manifest: String,
    pub info: Option<String>,
    pub created_at: String,
    pub content: Vec<u8>,
}

const SHARED_TABLE: &str = "CREATE TABLE IF NOT EXISTS shared(
    remote TEXT NOT NULL,
    key BLOB NOT NULL,
    PRIMARY KEY(remote, key)) WITHOUT ROWID";

/// The answers: actions some recorded effect (a call) produced.
const ANSWERS: &str = "SELECT key FROM actions WHERE key IN (SELECT key FROM calls)";

impl Store {
    fn shared_table(&self) -> Result<()> {
        self.conn
            .execute_batch(SHARED_TABLE)
            .context("creating the store's table of shared answers")
    }

    /// The keys of every answer the store holds.
    pub fn answer_keys(&self) -> Result<Vec<Hash>> {
        let mut st = self.conn.prepare(ANSWERS)?;
        let keys = st
            .query_map([], |r| hash_col(r, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(keys)
    }

    /// The answers the store holds that `remote` is not known to hold.
    pub fn unshared(&self, remote: &str) -> Result<Vec<Hash>> {
        self.shared_table()?;
        let mut st = self.conn.prepare(&format!(
            "{ANSWERS} AND key NOT IN (SELECT key FROM shared WHERE remote=?1)"
        ))?;
        let keys = st
            .query_map([remote], |r| hash_col(r, 0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(keys)
    }

    /// Notes that `remote` holds the answers of `keys`.
    pub fn mark_shared(&mut self, remote: &str, keys: &[Hash]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.shared_table()?;
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT OR IGNORE INTO shared(remote, key) VALUES(?1, ?2)")?;
            for k in keys {
                st.execute(params![remote, &k.0[..]])?;
            }
        }
        tx.commit().context("noting the answers the remote cache holds")?;
        Ok(())
    }

    /// One answer, whole, for upload; `None` if the store has no such answer.
    pub fn stored_answer(&self, key: &Hash) -> Result<Option<StoredAnswer>> {
        let row = self
            .conn
            .prepare_cached("SELECT manifest, info, created_at, output FROM actions WHERE key=?1")?
            .query_row([&key.0[..]], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    hash_col(r, 3)?,
                ))
            })
            .optional()?;
        let Some((manifest, info, created_at, output)) = row else {
            return Ok(None);
        };
        let Some(content) = self.blob(&output)? else {
            return Ok(None);
        };
        Ok(Some(StoredAnswer {
            key: *key,
            manifest,
            info,
            created_at,
            content,
        }))
    }
}
