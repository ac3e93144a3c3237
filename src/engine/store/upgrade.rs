//! Upgrades of stores written by earlier versions of daydream, made when a store is opened.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::{Store, hash_col};
use crate::engine::keys::Manifest;

impl Store {
    /// Once per store: every LLM answer recorded under an endpoint spelled otherwise than
    /// `llmstage::endpoint_identity` spells it (stores written before endpoints were normalised:
    /// `http://127.0.0.1:8080/v1/`) is also recorded under the normalised key, and the records of
    /// its files follow, so that no paid answer is asked again. The old actions stay, but for
    /// those whose URL held a password.
    pub(super) fn key_calls_by_normalised_endpoint(&mut self) -> Result<()> {
        const DONE: &str = "call_endpoints_normalised";
        let done: Option<String> = self
            .conn
            .query_row("SELECT v FROM meta WHERE k=?1", [DONE], |r| r.get(0))
            .optional()?;
        if done.is_some() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        let mut adopted = 0usize;
        {
            let mut read =
                tx.prepare("SELECT key, stage, manifest, output, created_at, info FROM actions WHERE kind=?1")?;
            let rows = read
                .query_map([crate::llm::provider::CALL_KIND], |r| {
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
                let Ok(mut m) = serde_json::from_str::<Manifest>(&manifest) else {
                    continue;
                };
                let Some(endpoint) = m.params.get("endpoint").filter(|e| !e.starts_with("local:")) else {
                    continue;
                };
                let normal = crate::llm::provider::endpoint_identity(endpoint);
                let has_userinfo = crate::llm::secrets::without_userinfo(endpoint) != *endpoint;
                if normal == *endpoint {
                    continue;
                }
                m.params.insert("endpoint".into(), normal);
                let new = m.key();
                add.execute(params![
                    &new.0[..],
                    stage,
                    m.kind,
                    m.to_json(),
                    &output.0[..],
                    created_at,
                    info
                ])?;
                follow.execute(params![&old.0[..], &new.0[..]])?;
                if has_userinfo {
                    // a password has no business in the store
                    drop_old.execute([&old.0[..]])?;
                }
                adopted += 1;
            }
        }
        tx.execute(
            "INSERT INTO meta(k, v) VALUES(?1, ?2)",
            params![DONE, adopted.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::keys::Hash;
    use crate::engine::store::{CallRow, OutputRecord};

    #[test]
    fn answers_keyed_by_an_unnormalised_endpoint_are_rekeyed_once_and_a_password_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let call = |endpoint: &str| {
            Manifest::new(crate::llm::provider::CALL_KIND)
                .param("endpoint", endpoint)
                .param("model", "m")
        };
        let old = [
            call("http://u:pw-123456@127.0.0.1:9/v1/"),
            call("http://127.0.0.1:8/v1"),
        ];
        {
            let mut s = Store::open(dir.path()).unwrap();
            for (i, m) in old.iter().enumerate() {
                let row = CallRow {
                    key: m.key(),
                    stage: "generation_response".into(),
                    task: format!("t{i}"),
                    status: "ok".into(),
                    manifest: m.clone(),
                    response: Some(format!("answer {i}")),
                    record: "{}".into(),
                };
                s.put_calls(&[row], false).unwrap();
                let out = OutputRecord {
                    path: format!("r{i}.txt"),
                    stage: "generation_response".into(),
                    task: Some(format!("t{i}")),
                    key: m.key(),
                    hash: Hash::of(format!("answer {i}").as_bytes()),
                    size: 8,
                    mtime_ns: 1,
                };
                s.put_outputs([&out]).unwrap();
            }
            // as a store of the version before
            s.conn
                .execute("DELETE FROM meta WHERE k='call_endpoints_normalised'", [])
                .unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let new = [call("http://localhost:9/v1"), call("http://localhost:8/v1")];
        for (i, (o, n)) in old.iter().zip(&new).enumerate() {
            let a = s.action(&n.key()).unwrap().expect("re-keyed");
            assert_eq!(a.output, Hash::of(format!("answer {i}").as_bytes()));
            assert_eq!(s.output(&format!("r{i}.txt")).unwrap().unwrap().key, n.key());
            // the old row stays, unless its URL held a password
            assert_eq!(s.has_action(&o.key()).unwrap(), i == 1);
        }
        let manifests: String = s
            .conn
            .query_row("SELECT group_concat(manifest) FROM actions", [], |r| r.get(0))
            .unwrap();
        assert!(!manifests.contains("pw-123456"), "{manifests}");
        // once: a later old-style row is left as it is
        drop(s);
        let mut s = Store::open(dir.path()).unwrap();
        s.put_actions("generation_response", [(&call("http://127.0.0.1:7/v1"), &b"x"[..])])
            .unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert!(!s.has_action(&call("http://localhost:7/v1").key()).unwrap());
    }
}
