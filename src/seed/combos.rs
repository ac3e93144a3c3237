//! The `combinations` stage: every k_max-combination of the active concepts, in
//! `itertools.combinations` order, with stable `combo_v1_<12 hex>` ids (spec 4.4, 4.5, 5), and the
//! append-only registry `combo_mappings.csv` with its collision check.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::engine::diag::Diag;
use crate::engine::keys::Hash;
use crate::engine::table::{Table, write_csv};
use crate::seed::concepts::{Concepts, resolve};

/// What one concept contributes to prompts at the requested level.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Resolved {
    pub id: String,
    pub name: Arc<str>,
    pub content: Arc<str>,
    /// The file the content came from (the metadata CSV when it is the name).
    pub source: String,
    pub content_hash: Hash,
    pub name_hash: Hash,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Combo {
    pub id: String,
    /// Indexes into `Combos::concepts`, in concepts-CSV order.
    pub members: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Combos {
    /// The concepts CSV, where names come from.
    pub metadata_path: String,
    pub level: String,
    pub k_max: usize,
    pub concepts: Vec<Resolved>,
    pub combos: Vec<Combo>,
    /// `content_combinations_csv.csv`.
    pub csv: Arc<str>,
}

impl Combos {
    pub fn summary(&self) -> String {
        format!(
            "{} combinations (k_max={}, {})",
            self.combos.len(),
            self.k_max,
            self.level
        )
    }
}

/// `combo_v1_` + the first 12 hex digits of sha256("|".join(sorted(ids)) + "|" + level + "|" + k).
pub fn combo_id(concept_ids: &[&str], level: &str, k_max: usize) -> String {
    let mut sorted = concept_ids.to_vec();
    sorted.sort_unstable();
    // sha256 of "id|id|...|level|k_max", fed in pieces rather than joined
    let mut h = Sha256::new();
    for id in &sorted {
        h.update(id.as_bytes());
        h.update(b"|");
    }
    h.update(level.as_bytes());
    h.update(b"|");
    h.update(k_max.to_string().as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(21);
    id.push_str("combo_v1_");
    id.push_str(&hex::encode(&digest[..6]));
    id
}

/// Index combinations in lexicographic order, like Python's `itertools.combinations(range(n), k)`.
pub fn combinations(n: usize, k: usize) -> impl Iterator<Item = Vec<u32>> {
    let mut next = (k <= n).then(|| (0..k as u32).collect::<Vec<u32>>());
    std::iter::from_fn(move || {
        let current = next.take()?;
        let mut c = current.clone();
        let mut i = k;
        while i > 0 {
            i -= 1;
            if (c[i] as usize) < n - k + i {
                c[i] += 1;
                for j in i + 1..k {
                    c[j] = c[j - 1] + 1;
                }
                next = Some(c);
                break;
            }
        }
        Some(current)
    })
}

/// Builds the combinations. `k_max_at` renders an error pointing at `k_max` in pipeline.yaml.
pub fn build(
    concepts: &Concepts,
    k_max: usize,
    level: &str,
    k_max_at: impl Fn(String) -> Diag,
) -> Result<Combos, Diag> {
    let n = concepts.concepts.len();
    if k_max > n {
        return Err(k_max_at(format!(
            "k_max is {k_max} but only {n} concept{} active in {}",
            if n == 1 { " is" } else { "s are" },
            concepts.metadata_path
        ))
        .help(format!("lower k_max to at most {n}, or set more concepts active")));
    }
    let resolved: Vec<Resolved> = concepts
        .concepts
        .iter()
        .map(|c| {
            let (content, source) = resolve(c, level, &concepts.metadata_path);
            Resolved {
                id: c.id.clone(),
                name: Arc::from(c.name.as_str()),
                content: Arc::from(content),
                source: source.to_owned(),
                content_hash: Hash::of(content.as_bytes()),
                name_hash: Hash::of(c.name.as_bytes()),
            }
        })
        .collect();
    let mut combos = Vec::new();
    let mut rows: Vec<[&str; 2]> = Vec::new();
    for members in combinations(n, k_max) {
        let ids: Vec<&str> = members.iter().map(|&i| resolved[i as usize].id.as_str()).collect();
        combos.push(Combo {
            id: combo_id(&ids, level, k_max),
            members,
        });
    }
    for c in &combos {
        for &m in &c.members {
            rows.push([&c.id, &resolved[m as usize].id]);
        }
    }
    let csv = write_csv(&["combo_id", "concept_id"], rows.into_iter().map(|r| r.to_vec()));
    Ok(Combos {
        metadata_path: concepts.metadata_path.clone(),
        level: level.to_owned(),
        k_max,
        concepts: resolved,
        combos,
        csv: Arc::from(csv),
    })
}

pub const REGISTRY_HEADER: &[&str] = &[
    "combo_id",
    "version",
    "concept_id",
    "description_level",
    "k_max",
    "created_at",
];

/// Checks the current combinations against the registry text and returns the registry with the
/// new combos appended (rows in sorted concept order), or `None` when nothing is new.
pub fn extend_registry(
    path: &str,
    existing: Option<&str>,
    combos: &Combos,
    created_at: &str,
) -> Result<Option<String>, Diag> {
    struct Entry {
        level: String,
        k_max: String,
        concepts: BTreeSet<String>,
    }
    let mut known: HashMap<String, Entry> = HashMap::new();
    if let Some(text) = existing {
        let t = Table::parse(path, text)?;
        let cols = [
            t.require("combo_id")?,
            t.require("concept_id")?,
            t.require("description_level")?,
            t.require("k_max")?,
        ];
        for row in &t.rows {
            let e = known.entry(t.get(row, cols[0]).to_owned()).or_insert_with(|| Entry {
                level: t.get(row, cols[2]).to_owned(),
                k_max: t.get(row, cols[3]).trim().to_owned(),
                concepts: BTreeSet::new(),
            });
            e.concepts.insert(t.get(row, cols[1]).to_owned());
        }
    }
    let mut new_rows: Vec<Vec<String>> = Vec::new();
    for c in &combos.combos {
        let ids: BTreeSet<String> = c
            .members
            .iter()
            .map(|&m| combos.concepts[m as usize].id.clone())
            .collect();
        match known.get(&c.id) {
            Some(e) => {
                let same_k = e.k_max.parse::<f64>().ok() == Some(combos.k_max as f64);
                if e.level != combos.level || !same_k || e.concepts != ids {
                    return Err(Diag::new(format!(
                        "combo_id collision detected for {}: existing params/concepts do not match",
                        c.id
                    ))
                    .in_file(path)
                    .help(format!(
                        "{path} records {} with level {}, k_max {} and concepts {}; now it would be {}, {} and {}. \
                         Fix or remove the conflicting rows in {path}",
                        c.id,
                        e.level,
                        e.k_max,
                        e.concepts.iter().cloned().collect::<Vec<_>>().join("|"),
                        combos.level,
                        combos.k_max,
                        ids.iter().cloned().collect::<Vec<_>>().join("|"),
                    )));
                }
            }
            None => {
                for id in &ids {
                    new_rows.push(vec![
                        c.id.clone(),
                        "v1".into(),
                        id.clone(),
                        combos.level.clone(),
                        combos.k_max.to_string(),
                        created_at.into(),
                    ]);
                }
                known.insert(
                    c.id.clone(),
                    Entry {
                        level: combos.level.clone(),
                        k_max: combos.k_max.to_string(),
                        concepts: ids,
                    },
                );
            }
        }
    }
    if new_rows.is_empty() && existing.is_some() {
        return Ok(None);
    }
    let appended = write_csv(REGISTRY_HEADER, new_rows);
    Ok(Some(match existing {
        // Keep the existing bytes as they are and append rows without a second header.
        Some(text) => {
            let mut out = text.to_owned();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(appended.split_once('\n').map_or("", |(_, rest)| rest));
            out
        }
        None => appended,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combo_ids_match_the_seed() {
        let cases: &[(&[&str], &str, usize, &str)] = &[
            (
                &[
                    "dearth-ai-discoveries",
                    "default-mode-network",
                    "economic-innovation-models",
                    "generator-verifier-gap",
                ],
                "paragraph",
                4,
                "combo_v1_f0c9d41797ca",
            ),
            (
                &[
                    "dearth-ai-discoveries",
                    "default-mode-network",
                    "economic-moat",
                    "generator-verifier-gap",
                ],
                "paragraph",
                4,
                "combo_v1_13c725cf02fa",
            ),
            (&["concept_001", "concept_002"], "brief", 2, "combo_v1_d2a7badb8b82"),
            (
                &["test-concept-2", "test-concept-1"],
                "paragraph",
                2,
                "combo_v1_62ec8fbfc693",
            ),
        ];
        for (ids, level, k, want) in cases {
            assert_eq!(combo_id(ids, level, *k), *want);
        }
    }

    #[test]
    fn combinations_in_itertools_order() {
        let got: Vec<_> = combinations(4, 2).collect();
        assert_eq!(
            got,
            vec![vec![0, 1], vec![0, 2], vec![0, 3], vec![1, 2], vec![1, 3], vec![2, 3]]
        );
        assert_eq!(combinations(5, 4).count(), 5);
        assert_eq!(combinations(3, 3).count(), 1);
        assert_eq!(combinations(2, 3).count(), 0);
        assert_eq!(combinations(60, 3).count(), 34220);
    }
}
