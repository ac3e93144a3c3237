//! Packs: many answers in one object, so that a fresh clone downloads thousands of answers in a
//! few requests instead of two per answer.
//!
//! Layout (under `<prefix>/daydream/v1/packs/`):
//! - `<id>.pack`: answers, one per line, each the record of `answers/` with its content inline
//!   (`"content": TEXT`); `<id>` is the blake3 of the pack's bytes. At most [`PACK_MAX_BYTES`].
//! - `<id>.idx`, written after its pack: `{"layout": "daydream/v1", "pack": ID,
//!   "entries": [[KEY, OFFSET, LENGTH], …]}`, where each entry's bytes are one line's record.
//!
//! A pack only copies answers that are also stored one by one (`answers/` and `blobs/`), so it
//! can be lost, or be broken, without losing anything: each entry read from a pack is verified
//! like a single record (its key, its manifest's hash, its content's hash), and whatever a pack
//! does not give is read one by one. Both objects are created only if absent; two writers of one
//! pack write the same bytes.

use std::collections::HashMap;
use std::ops::Range;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use super::{LAYOUT, Remote, RemoteAnswer, RemoteError};
use crate::engine::keys::Hash;

/// Small enough for one request to finish within the default timeout on a slow link.
pub const PACK_MAX_BYTES: usize = 4 << 20;

#[derive(Serialize, Deserialize)]
struct PackIndex {
    layout: String,
    pack: Hash,
    entries: Vec<(Hash, u64, u64)>,
}

/// Where one answer is: which pack, which bytes.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pack: Hash,
    range: Range<u64>,
}

impl Remote {
    fn pack_path(&self, id: &Hash, ext: &str) -> ObjectPath {
        self.inner
            .root
            .clone()
            .join("packs")
            .join(format!("{}.{ext}", id.hex()))
    }

    /// Writes `answers` as packs of at most [`PACK_MAX_BYTES`]; returns how many. The answers are
    /// expected to be stored one by one already ([`Remote::put`]): a pack only speeds up reading.
    pub async fn put_packs(&self, answers: &[RemoteAnswer]) -> Result<usize, RemoteError> {
        let mut packs = 0;
        let mut body = Vec::new();
        let mut entries = Vec::new();
        for a in answers {
            let rec = self.record_json(a, true)?;
            if !body.is_empty() && body.len() + rec.len() + 1 > PACK_MAX_BYTES {
                self.put_pack(std::mem::take(&mut body), std::mem::take(&mut entries))
                    .await?;
                packs += 1;
            }
            entries.push((a.key, body.len() as u64, rec.len() as u64));
            body.extend_from_slice(&rec);
            body.push(b'\n');
        }
        if !body.is_empty() {
            self.put_pack(body, entries).await?;
            packs += 1;
        }
        Ok(packs)
    }

    async fn put_pack(&self, body: Vec<u8>, entries: Vec<(Hash, u64, u64)>) -> Result<(), RemoteError> {
        let id = Hash::of(&body);
        self.create(&self.pack_path(&id, "pack"), body).await?;
        let index = PackIndex {
            layout: LAYOUT.to_owned(),
            pack: id,
            entries,
        };
        let index = serde_json::to_vec(&index).expect("an index always serializes");
        self.create(&self.pack_path(&id, "idx"), index).await?;
        Ok(())
    }

    /// Where each answer of every pack is, from the packs' indexes. An index that cannot be read
    /// or makes no sense is skipped (its pack's answers are read one by one); an error that stops
    /// the remote is returned.
    pub(super) async fn pack_index(&self, concurrency: usize) -> Result<HashMap<Hash, Entry>, RemoteError> {
        let ids = self.list_hashes("packs", ".idx").await?;
        let indexes: Vec<Result<Option<PackIndex>, RemoteError>> = futures_util::stream::iter(ids)
            .map(|id| async move {
                let Some(bytes) = self.read(&self.pack_path(&id, "idx")).await? else {
                    return Ok(None);
                };
                Ok(serde_json::from_slice::<PackIndex>(&bytes)
                    .ok()
                    .filter(|i| i.layout == LAYOUT && i.pack == id))
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut out = HashMap::new();
        for index in indexes {
            match index {
                Ok(Some(index)) => {
                    for (key, offset, len) in index.entries {
                        let Some(end) = offset.checked_add(len) else { continue };
                        out.entry(key).or_insert(Entry {
                            pack: index.pack,
                            range: offset..end,
                        });
                    }
                }
                Ok(None) => {}
                Err(e) if e.stops_remote() => return Err(e),
                Err(_) => {}
            }
        }
        Ok(out)
    }

    /// The verified answers of `keys` that `index` places in packs (each pack read whole). A key whose entry cannot be
    /// read or is broken is left out, for the caller to read one by one; an error that stops the
    /// remote is returned.
    pub(super) async fn read_packs(
        &self,
        index: &HashMap<Hash, Entry>,
        keys: &[Hash],
        concurrency: usize,
    ) -> Result<Vec<RemoteAnswer>, RemoteError> {
        let mut by_pack: HashMap<Hash, Vec<(Hash, Range<u64>)>> = HashMap::new();
        for key in keys {
            if let Some(e) = index.get(key) {
                by_pack.entry(e.pack).or_default().push((*key, e.range.clone()));
            }
        }
        let results: Vec<Result<Vec<RemoteAnswer>, RemoteError>> = futures_util::stream::iter(by_pack)
            .map(|(pack, wanted)| async move {
                let path = self.pack_path(&pack, "pack");
                // the whole pack in one request (at most 4 MB): object_store's `get_ranges` panics
                // on a range past the end of a short object, and a pack is not to be trusted
                let Some(bytes) = self.read_at_most(&path, PACK_MAX_BYTES).await? else {
                    return Ok(Vec::new());
                };
                let got = wanted.iter().map(|(_, r)| {
                    let range = usize::try_from(r.start).ok()?..usize::try_from(r.end).ok()?;
                    bytes.get(range)
                });
                Ok(wanted
                    .iter()
                    .zip(got)
                    .filter_map(|((key, _), bytes)| {
                        let rec = self.check_record(key, bytes?, &path).ok()?;
                        let inline = rec.content.clone()?;
                        let content = self.check_content(key, &rec, inline.as_bytes(), &path).ok()?;
                        Some(rec.into_answer(*key, content))
                    })
                    .collect())
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut out = Vec::new();
        for r in results {
            match r {
                Ok(answers) => out.extend(answers),
                Err(e) if e.stops_remote() => return Err(e),
                Err(_) => {}
            }
        }
        Ok(out)
    }
}
