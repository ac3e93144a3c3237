//! Upgrades of stores written by earlier versions of daydream: the generic means (re-keying the
//! actions of a kind once); the layers that own the kinds say how (`Registry::upgrades`).

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::{Store, hash_col};
use crate::engine::keys::Manifest;

/// How one action is re-keyed: its new manifest, and whether the old action goes (it holds
/// what the store should not keep, such as a password in a URL).
pub struct Rekeyed {
    pub manifest: Manifest,
    pub drop_old: bool,
}

impl Store {
    /// Once per store (`marker` names the upgrade in the store's `meta`): every action of `kind`
    /// that `rekey` maps to another manifest is also recorded under that manifest's key, with the
    /// same output, record and time, and the records of its files follow. The layer that owns
    /// the kind supplies `rekey` (an LLM call's endpoint spelled in its normal form). Returns
    /// how many were re-keyed (0 when done before).
    pub fn rekey_once(
        &mut self,
        marker: &str,
        kind: &str,
        rekey: &dyn Fn(&Manifest) -> Option<Rekeyed>,
    ) -> Result<usize> {
        let done: Option<String> = self
            .conn
            .query_row("SELECT v FROM meta WHERE k=?1", [marker], |r| r.get(0))
            .optional()?;
        if done.is_some() || self.in_memory {
            return Ok(0);
        }
        let tx = self.conn.transaction()?;
        let mut adopted = 0usize;
        {
            let mut read =
                tx.prepare("SELECT key, stage, manifest, output, created_at, info FROM actions WHERE kind=?1")?;
            let rows = read
                .query_map([kind], |r| {
                    Ok((
                        hash_col(r, 0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        hash_col(r, 3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut add = tx.prepare(
                "INSERT OR IGNORE INTO actions(key, stage, kind, manifest, output, created_at, info) VALUES(?1,?2,?3,?4,?5,?6,?7)",
            )?;
            let mut follow = tx.prepare("UPDATE outputs SET key=?2 WHERE key=?1")?;
            let mut drop_old = tx.prepare("DELETE FROM actions WHERE key=?1")?;
            for (old, stage, manifest, output, created_at, info) in rows {
                let Ok(m) = serde_json::from_str::<Manifest>(&manifest) else {
                    continue;
                };
                let Some(r) = rekey(&m) else { continue };
                let new = r.manifest.key();
                if new == old {
                    continue;
                }
                add.execute(params![
                    &new.0[..],
                    stage,
                    r.manifest.kind,
                    r.manifest.to_json(),
                    &output.0[..],
                    created_at,
                    info
                ])?;
                follow.execute(params![&old.0[..], &new.0[..]])?;
                if r.drop_old {
                    drop_old.execute([&old.0[..]])?;
                }
                adopted += 1;
            }
        }
        tx.execute(
            "INSERT INTO meta(k, v) VALUES(?1, ?2)",
            params![marker, adopted.to_string()],
        )?;
        tx.commit()?;
        Ok(adopted)
    }

    /// The distinct values of parameter `param` in the manifests of the actions of `kind`.
    pub fn param_values(&self, kind: &str, param: &str) -> Result<Vec<String>> {
        let mut st = self.conn.prepare_cached(
            "SELECT DISTINCT json_extract(manifest, '$.params.' || ?2) FROM actions WHERE kind=?1 ORDER BY 1",
        )?;
        let rows = st.query_map([kind, param], |r| r.get::<_, Option<String>>(0))?;
        Ok(rows
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect())
    }
}
