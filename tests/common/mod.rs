//! A test project in a temp directory, and helpers to run the real binary on it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod mock;

pub struct Space {
    pub dir: tempfile::TempDir,
    /// Environment for every command (the caller's LLM settings are removed first).
    pub env: std::cell::RefCell<Vec<(String, String)>>,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Space {
    pub fn empty() -> Space {
        Space {
            dir: tempfile::tempdir().unwrap(),
            env: Default::default(),
        }
    }

    /// The shipped project up to the prompts: pipeline.yaml without its LLM stages, data/1_raw
    /// and templates/ of this repository.
    pub fn shipped() -> Space {
        let s = Space::shipped_with_llm();
        let yaml = s.read("pipeline.yaml");
        let cut = yaml
            .find("\n  generation_response:")
            .expect("the shipped pipeline has LLM stages");
        s.write("pipeline.yaml", &format!("{}\n", &yaml[..cut]));
        s
    }

    /// The whole shipped project, LLM stages included.
    pub fn shipped_with_llm() -> Space {
        let s = Space::empty();
        std::fs::copy(repo().join("pipeline.yaml"), s.path("pipeline.yaml")).unwrap();
        copy_dir(&repo().join("data/1_raw"), &s.path("data/1_raw"));
        copy_dir(&repo().join("templates"), &s.path("templates"));
        s
    }

    /// An example of `examples/` as a user gets it: its tracked (or new, not ignored) files,
    /// never the store or the outputs a run in the repository left there.
    pub fn example(name: &str) -> Space {
        let s = Space::empty();
        let from = repo().join("examples").join(name);
        assert!(from.join("pipeline.yaml").is_file(), "no example {name}");
        let listed = Command::new("git")
            .arg("-C")
            .arg(&from)
            .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard", "."])
            .output()
            .ok()
            .filter(|o| o.status.success() && !o.stdout.is_empty());
        let files: Vec<PathBuf> = match listed {
            Some(o) => o
                .stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
                .filter(|p| from.join(p).is_file())
                .collect(),
            // not a git checkout (a source archive): it holds no run's leftovers
            None => walkdir::WalkDir::new(&from)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .map(|e| e.path().strip_prefix(&from).unwrap().to_path_buf())
                .collect(),
        };
        for rel in files {
            assert!(
                !rel.starts_with(".daydream"),
                "examples/{name} ships a store: {}",
                rel.display()
            );
            let dest = s.dir.path().join(&rel);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(from.join(&rel), dest).unwrap();
        }
        s
    }

    /// Points the `openrouter` provider at a mock server with a test key, through the
    /// environment only, as a user would point a pipeline at any OpenAI-compatible server.
    pub fn mock_env(&self, base_url: &str) {
        self.set_env("OPENROUTER_BASE_URL", base_url);
        self.set_env("OPENROUTER_API_KEY", "sk-test-SECRET-0123456789");
    }

    /// Points the shipped `openrouter` provider at a mock server, with a test key and fast retries,
    /// and no spending question (the mock costs nothing; tests/money.rs tests the question).
    pub fn use_mock(&self, base_url: &str) {
        self.mock_env(base_url);
        self.edit(
            "pipeline.yaml",
            "  provider: auto\n",
            "  provider: auto\n  confirm_above_usd: 1000000\n",
        );
        self.edit(
            "pipeline.yaml",
            "    timeout_s: 600\n",
            "    timeout_s: 2\n    backoff_base_ms: 20\n    backoff_max_s: 0.2\n",
        );
    }

    /// Generation models `g0`, `g1`, ... with these API names, and one evaluation model
    /// `judge` (`vendor/judge`); all priced at $1 / $2 per million tokens.
    pub fn use_models(&self, gen_models: &[&str]) {
        let mut csv = String::from("id,model,for_generation,for_evaluation,input_usd_per_mtok,output_usd_per_mtok\n");
        for (i, m) in gen_models.iter().enumerate() {
            csv.push_str(&format!("g{i},{m},true,false,1.0,2.0\n"));
        }
        csv.push_str("judge,vendor/judge,false,true,1.0,2.0\n");
        self.write("data/1_raw/llm_models.csv", &csv);
    }

    /// Only these evaluation templates active (the others switched off).
    pub fn use_rubrics(&self, ids: &[&str]) {
        let csv = self.read("data/1_raw/evaluation_templates.csv");
        let mut lines = csv.lines();
        let mut out = format!("{}\n", lines.next().unwrap());
        for line in lines {
            let mut cells: Vec<&str> = line.split(',').collect();
            cells[3] = if ids.contains(&cells[0]) { "true" } else { "false" };
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        self.write("data/1_raw/evaluation_templates.csv", &out);
    }

    pub fn set_env(&self, k: &str, v: &str) {
        self.env.borrow_mut().push((k.to_owned(), v.to_owned()));
    }

    pub fn copy_in(&self, from: &Path, rel: &str) {
        copy_dir(from, &self.path(rel));
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    /// Replaces `from` by `to` in a file; the file must contain `from`.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let s = self.read(rel);
        assert!(s.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &s.replacen(from, to, 1));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_daydream"));
        c.arg("-C").arg(self.dir.path()).args(args);
        for var in [
            "OPENROUTER_API_KEY",
            "OPENROUTER_BASE_URL",
            "LOCAL_BASE_URL",
            "DAYDREAM_PROVIDER",
            "DAYDREAM_REMOTE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
        ] {
            c.env_remove(var);
        }
        for (k, v) in self.env.borrow().iter() {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = self.command(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "daydream {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    /// Runs and expects exit `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, code,
            "daydream {args:?}: expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        );
        r.stderr
    }

    /// Every file under `rel` with its modification time and content.
    pub fn snapshot(&self, rel: &str) -> BTreeMap<String, (std::time::SystemTime, Vec<u8>)> {
        let root = self.path(rel);
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(&root)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            let rel = e
                .path()
                .strip_prefix(self.dir.path())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let m = e.metadata().unwrap().modified().unwrap();
            out.insert(rel, (m, std::fs::read(e.path()).unwrap()));
        }
        out
    }
}

/// The files of docs/pipeline.md's "A pipeline from scratch": each code block, under the path
/// that starts the paragraph before it (`` `templates/judge.txt`: ... ``).
pub fn from_scratch_files() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(repo().join("docs/pipeline.md")).unwrap();
    let section = doc
        .split("\n## A pipeline from scratch\n")
        .nth(1)
        .expect("the section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut files = Vec::new();
    let mut named: Option<String> = None;
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let path = named
                .take()
                .unwrap_or_else(|| panic!("a ```{lang} block of the section names no file"));
            let mut body = String::new();
            for l in lines.by_ref().take_while(|l| *l != "```") {
                body.push_str(l);
                body.push('\n');
            }
            files.push((path, body));
        } else if let Some(rest) = line.strip_prefix('`') {
            named = Some(rest.split('`').next().unwrap().to_owned());
        }
    }
    files
}

/// A CSV file of the project as rows of column -> cell.
pub fn read_csv(s: &Space, rel: &str) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(s.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"));
    let header = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap_or_else(|e| panic!("{rel}: {e}"));
            header
                .iter()
                .map(str::to_owned)
                .zip(rec.iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

/// The counts a `run` printed for a stage: (executed, reused, unchanged).
pub fn counts(stdout: &str, stage: &str) -> (usize, usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(stage))
        .unwrap_or_else(|| panic!("no line for {stage} in:\n{stdout}"));
    let num = |word: &str| -> usize {
        let i = line.find(word).unwrap_or_else(|| panic!("no `{word}` in {line}"));
        line[i + word.len()..]
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (num("executed"), num("reused"), num("unchanged"))
}

/// Files under `rel` whose mtime or content differs between two snapshots, plus added/removed ones.
pub fn changed(
    before: &BTreeMap<String, (std::time::SystemTime, Vec<u8>)>,
    after: &BTreeMap<String, (std::time::SystemTime, Vec<u8>)>,
) -> Vec<String> {
    let mut out: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    out.extend(before.keys().filter(|k| !after.contains_key(*k)).cloned());
    out.sort();
    out
}

/// A synthetic project: the shipped templates and models with `n` made-up concepts and `k_max = k`.
pub fn synthetic(n: usize, k: usize) -> Space {
    synthetic_in(Space::shipped(), n, k)
}

/// `synthetic` with the LLM stages kept.
pub fn synthetic_with_llm(n: usize, k: usize) -> Space {
    synthetic_in(Space::shipped_with_llm(), n, k)
}

fn synthetic_in(s: Space, n: usize, k: usize) -> Space {
    let mut csv = String::from("concept_id,name,active\n");
    for i in 0..n {
        csv.push_str(&format!("concept-{i:03},Concept {i},True\n"));
        let text: String = (0..12)
            .map(|j| {
                format!(
                    "Sentence {j} about concept {i} and its {} neighbours. ",
                    (i * 7 + j) % 13
                )
            })
            .collect();
        s.write(
            &format!("data/1_raw/concepts/descriptions-paragraph/concept-{i:03}.txt"),
            &text,
        );
    }
    s.write("data/1_raw/concepts/concepts_metadata.csv", &csv);
    s.edit("pipeline.yaml", "k_max: 4", &format!("k_max: {k}"));
    s
}

/// Every file under data/ but the call records (which say where each answer came from), the
/// results page (which says when it was made) and the combination registry (which says when
/// each combination was first seen on that machine).
pub fn outputs(s: &Space) -> BTreeMap<String, Vec<u8>> {
    s.snapshot("data")
        .into_iter()
        .filter(|(p, _)| !p.ends_with(".json") && !p.ends_with(".html") && !p.ends_with("combo_mappings.csv"))
        .map(|(p, (_, b))| (p, b))
        .collect()
}
