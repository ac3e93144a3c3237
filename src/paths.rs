//! The paths a pipeline declares: their normal form, and the overlaps refused between them.
//!
//! An output may not be, or be inside, or hold, anything the pipeline reads (a declared input
//! file, a directory inputs are read from), `pipeline.yaml`, `.env`, `.daydream/`, or another
//! output. An `{id}` pattern stands for every file name an id could give it, and an LLM stage's
//! pattern also for the `.json` record beside each answer. All of it is pure but
//! [`check_on_disk`], which asks `fsutil::Inside` whether an output's directory leads out of the
//! project through a symbolic link.

use crate::diag::Diag;
use crate::spec::{FieldType, Kind, Loc, Pipeline, Stage};
use crate::table::{TASK_ID_MAX, is_id_char};

/// `path` with `.` components and repeated or trailing `/` dropped; the project root is `.`.
/// (`..` and absolute paths are refused before this is called.)
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

/// What the replicate suffix can add to a task id in a file name (`_run` and a u32's digits).
const REPLICATE_SUFFIX: usize = 4 + 10;
/// What the `.json` record beside an answer can add to its file name (`x` -> `x.json`).
const SIDECAR_SUFFIX: usize = 5;
/// The bytes of a file name, on the file systems daydream runs on.
const NAME_MAX: usize = 255;

/// The most an output pattern's file name may hold besides `{id}`.
pub const PATTERN_AFFIX_MAX: usize = NAME_MAX - TASK_ID_MAX - REPLICATE_SUFFIX - SIDECAR_SUFFIX;

/// Why a normalised output pattern is refused: `{id}` must appear once, in the file name (so that
/// all of a stage's files share one directory), and the name around it must leave room for the
/// longest task id.
pub fn pattern_problem(pattern: &str) -> Option<String> {
    let (dir, name) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    if dir.contains("{id}") {
        return Some("`{id}` may appear only in the file name, not in a directory".into());
    }
    if name.matches("{id}").count() != 1 {
        return Some("the file name must hold `{id}` exactly once".into());
    }
    let affix = name.len() - "{id}".len();
    (affix > PATTERN_AFFIX_MAX).then(|| {
        format!(
            "the file name holds {affix} bytes besides `{{id}}`; at most {PATTERN_AFFIX_MAX} leave room for a \
             task id of {TASK_ID_MAX} characters in a file name of {NAME_MAX} bytes"
        )
    })
}

/// The `.json` record beside each answer of an LLM stage: `<id>.txt` -> `<id>.json` (as
/// `calls::sidecar_path`).
fn sidecar(pattern: &str) -> String {
    match pattern.strip_suffix(".txt") {
        Some(stem) => format!("{stem}.json"),
        None => format!("{pattern}.json"),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Output,
    Input,
    /// `.daydream/`, `pipeline.yaml`, `.env`.
    Protected,
}

/// A path a pipeline reads or writes: a file, an `{id}` pattern, or (`tree`) everything under a
/// directory.
struct Claim {
    path: String,
    tree: bool,
    role: Role,
    /// How messages name it.
    label: String,
    loc: Option<Loc>,
}

impl Claim {
    fn parts(&self) -> impl Iterator<Item = &str> {
        self.path.split('/').filter(|c| *c != ".")
    }

    /// Whether some file could be both: every component the two have in common can be the same
    /// name (so one is the other, or inside it).
    fn meets(&self, other: &Claim) -> bool {
        self.parts().zip(other.parts()).all(|(a, b)| names_meet(a, b))
    }
}

/// Whether two path components (either may hold `{id}`) can be the same name.
fn names_meet(a: &str, b: &str) -> bool {
    match (a.split_once("{id}"), b.split_once("{id}")) {
        (None, None) => a == b,
        (Some((pre, suf)), None) => fits(b, pre, suf),
        (None, Some((pre, suf))) => fits(a, pre, suf),
        // two patterns: some pair of ids makes them equal when one prefix starts the other and
        // one suffix ends the other (the ids take up the difference; conservative)
        (Some((p1, s1)), Some((p2, s2))) => {
            (p1.starts_with(p2) || p2.starts_with(p1)) && (s1.ends_with(s2) || s2.ends_with(s1))
        }
    }
}

/// Whether `name` is `pre` + an id + `suf`.
fn fits(name: &str, pre: &str, suf: &str) -> bool {
    name.len() > pre.len() + suf.len()
        && name.starts_with(pre)
        && name.ends_with(suf)
        && name[pre.len()..name.len() - suf.len()].chars().all(is_id_char)
}

fn field_label(stage: &Stage, field: &str) -> String {
    format!("`{field}: {}` of stage `{}`", stage.str(field), stage.name)
}

/// What a stage reads from a declared directory: a templates `dir` holds `<id>.txt`, a concepts
/// `descriptions` directory `descriptions-<level>/<id>.txt`. A directory read is a tree no output
/// may enter, unless it is the project root (then only the names read there are claimed).
fn dir_claims(stage: &Stage, field: &str, loc: Loc, out: &mut Vec<Claim>) {
    let dir = stage.str(field);
    let label = field_label(stage, field);
    let mut add = |path: String, tree: bool| {
        out.push(Claim {
            path,
            tree,
            role: Role::Input,
            label: label.clone(),
            loc: Some(loc),
        })
    };
    if stage.kind == Kind::Concepts {
        for level in crate::spec::LEVELS {
            add(normalize(&format!("{dir}/descriptions-{level}")), true);
        }
    } else if dir == "." {
        add("{id}.txt".to_owned(), false);
    } else {
        add(dir.to_owned(), true);
    }
}

/// Refuses every output that could write over an input, `pipeline.yaml`, `.env`, `.daydream/`
/// or another output; the error points at the output's line.
pub fn check_overlaps(p: &Pipeline) -> Result<(), Diag> {
    let protected = |path: &str, tree: bool, label: &str| Claim {
        path: path.to_owned(),
        tree,
        role: Role::Protected,
        label: label.to_owned(),
        loc: None,
    };
    let mut claims = vec![
        protected(
            crate::engine::STATE_DIR,
            true,
            ".daydream/, where daydream keeps its store",
        ),
        protected(crate::db::PIPELINE_FILE, false, crate::db::PIPELINE_FILE),
        protected(".env", false, ".env, which holds API keys"),
    ];
    for s in &p.stages {
        for spec in s.kind.fields() {
            let loc = s.fields[spec.name].loc;
            match spec.ty {
                FieldType::File => claims.push(Claim {
                    path: s.str(spec.name).to_owned(),
                    tree: false,
                    role: Role::Input,
                    label: field_label(s, spec.name),
                    loc: Some(loc),
                }),
                FieldType::Dir => dir_claims(s, spec.name, loc, &mut claims),
                _ => {}
            }
        }
    }
    let first_output = claims.len();
    for s in &p.stages {
        for spec in s.kind.fields() {
            if !matches!(spec.ty, FieldType::Output | FieldType::OutputPattern) {
                continue;
            }
            let path = s.str(spec.name).to_owned();
            let loc = Some(s.fields[spec.name].loc);
            if s.kind.is_llm() {
                claims.push(Claim {
                    path: sidecar(&path),
                    tree: false,
                    role: Role::Output,
                    label: format!("the `.json` records beside {}", field_label(s, spec.name)),
                    loc,
                });
            }
            claims.push(Claim {
                path,
                tree: false,
                role: Role::Output,
                label: field_label(s, spec.name),
                loc,
            });
        }
    }
    for i in first_output..claims.len() {
        let out = &claims[i];
        let Some(other) = claims[..i].iter().find(|c| out.meets(c)) else {
            continue;
        };
        let at = out.loc.expect("outputs are declared");
        let line = |c: &Claim| c.loc.map(|l| format!(" (line {})", l.line)).unwrap_or_default();
        let (message, help) = match other.role {
            Role::Protected if other.tree => (
                format!("{} is inside {}", out.label, other.label),
                "outputs go anywhere in the project but .daydream/ (for example under data/)",
            ),
            Role::Protected => (
                format!("{} would overwrite {}", out.label, other.label),
                "give the output a path of its own (for example under data/)",
            ),
            Role::Input if other.tree => (
                format!(
                    "{} is in a directory the pipeline reads: {}{}",
                    out.label,
                    other.label,
                    line(other)
                ),
                "an output may not be written where inputs are read; give it a path of its own",
            ),
            Role::Input => (
                format!("{} could overwrite an input: {}{}", out.label, other.label, line(other)),
                "an output may not be, hold or be inside a file the pipeline reads; give it a path of its own",
            ),
            Role::Output if out.path == other.path => (
                format!(
                    "{} and {}{} both write `{}`",
                    out.label,
                    other.label,
                    line(other),
                    out.path
                ),
                "give each output its own path",
            ),
            Role::Output => (
                format!(
                    "{} and {}{} could write the same file",
                    out.label,
                    other.label,
                    line(other)
                ),
                "give each output its own directory or file name (an `{id}` stands for any id)",
            ),
        };
        return Err(p.diag(message, at).help(help));
    }
    Ok(())
}

/// Refuses an output whose directory (or, for a single file, the file itself) leads out of the
/// project through a symbolic link; the error points at the output's line. The one check of this
/// module that looks at the disk, once per output (not per file it writes).
pub fn check_on_disk(p: &Pipeline, inside: &crate::fsutil::Inside) -> Result<(), Diag> {
    for s in &p.stages {
        for spec in s.kind.fields() {
            let pattern = match spec.ty {
                FieldType::Output => false,
                FieldType::OutputPattern => true,
                _ => continue,
            };
            if let Err(why) = inside.output(s.str(spec.name), pattern) {
                return Err(p
                    .diag(format!("{}: {why}", field_label(s, spec.name)), s.fields[spec.name].loc)
                    .help("outputs are written only inside the project"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        assert_eq!(normalize("./data//x.csv"), "data/x.csv");
        assert_eq!(normalize("data/./x/"), "data/x");
        assert_eq!(normalize("./"), ".");
        assert_eq!(normalize("."), ".");
    }

    #[test]
    fn names_that_can_meet() {
        assert!(names_meet("a.txt", "a.txt"));
        assert!(!names_meet("a.txt", "b.txt"));
        assert!(names_meet("{id}.txt", "summary.txt"));
        assert!(!names_meet("{id}.txt", "summary.csv"));
        assert!(!names_meet("{id}.txt", ".txt"), "an id is never empty");
        assert!(!names_meet("{id}.txt", "a b.txt"), "no id holds a space");
        assert!(names_meet("{id}.txt", "{id}.txt"));
        assert!(!names_meet("{id}.txt", "{id}.json"), "an answer and its record");
        assert!(names_meet("{id}.txt", "x_{id}.txt"));
        assert!(names_meet("{id}", "{id}.json"));
        assert!(names_meet("p_{id}", "{id}_s"));
        assert!(!names_meet("p_{id}", "q_{id}"));
    }

    #[test]
    fn patterns_keep_id_in_the_file_name_and_leave_room_for_it() {
        assert_eq!(pattern_problem("data/out/{id}.txt"), None);
        assert!(pattern_problem("data/{id}/x.txt").unwrap().contains("file name"));
        assert!(pattern_problem("data/{id}_{id}.txt").unwrap().contains("exactly once"));
        let long = format!("data/{}{{id}}.txt", "x".repeat(PATTERN_AFFIX_MAX));
        assert!(pattern_problem(&long).unwrap().contains("besides `{id}`"));
        assert_eq!(sidecar("a/{id}.txt"), "a/{id}.json");
        assert_eq!(sidecar("a/{id}.md"), "a/{id}.md.json");
    }
}
