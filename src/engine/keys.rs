//! Action keys: blake3 over one canonical, serializable manifest of everything an action reads.
//!
//! The same `Manifest` value is hashed for the key and printed by `explain`, so the explanation
//! can never disagree with the cache. Changing what goes into a manifest changes every key:
//! bump `FORMAT` when the meaning of a field changes.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Version of the manifest layout; part of every key.
pub const FORMAT: u32 = 1;

/// A blake3 content hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, as printed in summaries.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }

    pub fn from_hex(s: &str) -> Option<Hash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Hash(out))
    }

    pub fn from_slice(b: &[u8]) -> Option<Hash> {
        Some(Hash(b.try_into().ok()?))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.short())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl Hash {
    /// Lower-case hex into a stack buffer (keys are computed by the hundred thousand).
    fn hex_bytes(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[(b >> 4) as usize];
            out[2 * i + 1] = DIGITS[(b & 15) as usize];
        }
        out
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = self.hex_bytes();
        s.serialize_str(std::str::from_utf8(&hex).expect("hex is ASCII"))
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// One thing an action reads: a name, where it came from, and the hash of its content.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Input {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    pub hash: Hash,
}

impl Input {
    pub fn new(name: impl Into<String>, path: Option<&str>, content: &[u8]) -> Input {
        Input {
            name: name.into(),
            path: path.map(str::to_owned),
            hash: Hash::of(content),
        }
    }
}

/// Everything an action reads. Its blake3 is the action's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub kind: String,
    pub params: BTreeMap<String, String>,
    pub inputs: Vec<Input>,
}

impl Manifest {
    pub fn new(kind: &str) -> Manifest {
        Manifest {
            format: FORMAT,
            kind: kind.to_owned(),
            params: BTreeMap::new(),
            inputs: Vec::new(),
        }
    }

    pub fn param(mut self, name: &str, value: impl ToString) -> Manifest {
        self.params.insert(name.to_owned(), value.to_string());
        self
    }

    pub fn input(mut self, input: Input) -> Manifest {
        self.inputs.push(input);
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a manifest always serializes")
    }

    /// blake3 of `to_json()`, streamed into the hasher without building the string.
    pub fn key(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        serde_json::to_writer(&mut h, self).expect("a manifest always serializes");
        Hash(*h.finalize().as_bytes())
    }

    /// The inputs that differ from `old`'s, as (name, old hash, new hash); a missing side is None.
    pub fn changed_inputs<'a>(&'a self, old: &'a Manifest) -> Vec<(&'a str, Option<&'a Input>, Option<&'a Input>)> {
        let mut out = Vec::new();
        for new in &self.inputs {
            match old.inputs.iter().find(|o| o.name == new.name) {
                Some(o) if o.hash == new.hash && o.path == new.path => {}
                other => out.push((new.name.as_str(), other, Some(new))),
            }
        }
        for o in &old.inputs {
            if !self.inputs.iter().any(|n| n.name == o.name) {
                out.push((o.name.as_str(), Some(o), None));
            }
        }
        out
    }
}

/// Keys of many manifests that share a head (format, kind, params and leading inputs) and differ
/// only in further inputs, hashed from pre-serialized pieces: `key(parts)` equals the key of the
/// head with the parts' inputs appended, without building or serializing each manifest.
pub struct KeyHead {
    /// The head's JSON up to (not including) the closing `]}` of its inputs.
    json: Vec<u8>,
    has_inputs: bool,
}

impl KeyHead {
    pub fn new(head: &Manifest) -> KeyHead {
        let mut json = serde_json::to_vec(head).expect("a manifest always serializes");
        debug_assert!(json.ends_with(b"]}"), "inputs are the manifest's last field");
        json.truncate(json.len() - 2);
        KeyHead {
            json,
            has_inputs: !head.inputs.is_empty(),
        }
    }

    /// One part: the JSON of `inputs`, comma-separated, to pass to `key`.
    pub fn part(inputs: &[Input]) -> Vec<u8> {
        let mut out = Vec::with_capacity(inputs.len() * 128);
        for (i, input) in inputs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_input(&mut out, input);
        }
        out
    }

    /// The key of the head followed by the inputs of `parts` (each made by `part`), in order.
    pub fn key<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&self.json);
        let mut first = !self.has_inputs;
        for p in parts {
            if p.is_empty() {
                continue;
            }
            if !first {
                h.update(b",");
            }
            first = false;
            h.update(p);
        }
        h.update(b"]}");
        Hash(*h.finalize().as_bytes())
    }
}

/// `input` as serde_json writes it (the bytes keys are made of), without serde's per-character
/// escaping loop for the usual strings, which have nothing to escape: a prompt's key has a
/// part per row, and this was a seventh of a no-op run at 100k prompts.
fn write_input(out: &mut Vec<u8>, input: &Input) {
    out.extend_from_slice(b"{\"name\":");
    write_str(out, &input.name);
    if let Some(path) = &input.path {
        out.extend_from_slice(b",\"path\":");
        write_str(out, path);
    }
    out.extend_from_slice(b",\"hash\":\"");
    out.extend_from_slice(&input.hash.hex_bytes());
    out.extend_from_slice(b"\"}");
}

/// A JSON string as serde_json writes it: quoted, escaped only when it holds `"`, `\\` or a
/// control character.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        serde_json::to_writer(&mut *out, s).expect("a string always serializes");
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// A fast hasher for maps keyed by content hashes and paths (not exposed to untrusted input
/// in a way that matters: the keys are daydream's own).
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(c.try_into().expect("8 bytes"))).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
}

pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_written_as_serde_json_writes_them() {
        for (name, path) in [
            ("concept:a.name", Some("data/1_raw/concepts_metadata.csv")),
            ("plain", None),
            ("quote \" back \\ slash", Some("tab\there\nnew line \u{1}")),
            ("non-ASCII é ✓ and DEL \u{7f}", Some("/")),
        ] {
            let input = Input::new(name, path, name.as_bytes());
            let parts = KeyHead::part(std::slice::from_ref(&input));
            assert_eq!(parts, serde_json::to_vec(&input).unwrap(), "{name}");
        }
    }

    #[test]
    fn fast_hex_and_streamed_keys_match_the_plain_ones() {
        let h = Hash::of(b"x");
        assert_eq!(std::str::from_utf8(&h.hex_bytes()).unwrap(), hex::encode(h.0));
        let m = Manifest::new("k").param("p", 1).input(Input::new("x", Some("f"), b"v"));
        assert_eq!(m.key(), Hash::of(m.to_json().as_bytes()));
    }

    #[test]
    fn key_head_gives_the_full_manifests_key() {
        let a = Input::new("a", Some("a.txt"), b"1");
        let b = Input::new("b", None, b"2");
        let c = Input::new("c", Some("c \"quoted\".txt"), b"3");
        for head in [
            Manifest::new("k"),
            Manifest::new("k")
                .param("p", "x")
                .input(Input::new("t", Some("t.txt"), b"t")),
        ] {
            let kh = KeyHead::new(&head);
            let (pa, pbc) = (
                KeyHead::part(std::slice::from_ref(&a)),
                KeyHead::part(&[b.clone(), c.clone()]),
            );
            let full = head.clone().input(a.clone()).input(b.clone()).input(c.clone());
            assert_eq!(kh.key([&pa[..], &pbc[..]]), full.key());
            assert_eq!(kh.key([&pbc[..]]), head.clone().input(b.clone()).input(c.clone()).key());
            assert_eq!(kh.key(std::iter::empty()), head.key());
        }
    }

    #[test]
    fn key_covers_params_and_inputs() {
        let a = Manifest::new("k")
            .param("p", 1)
            .input(Input::new("x", Some("f.txt"), b"hello"));
        let b = Manifest::new("k")
            .param("p", 2)
            .input(Input::new("x", Some("f.txt"), b"hello"));
        let c = Manifest::new("k")
            .param("p", 1)
            .input(Input::new("x", Some("f.txt"), b"hello!"));
        assert_ne!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
        assert_eq!(a.key(), a.clone().key());
        let changed = c.changed_inputs(&a);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0, "x");
    }

    #[test]
    fn manifest_round_trips_through_json() {
        let a = Manifest::new("k").input(Input::new("x", None, b"v"));
        let back: Manifest = serde_json::from_str(&a.to_json()).unwrap();
        assert_eq!(back.key(), a.key());
    }
}
