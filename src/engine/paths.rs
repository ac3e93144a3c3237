//! The paths a pipeline declares: their normal form, and the overlaps refused between them.
//!
//! An output may not be, or be inside, or hold, anything the pipeline reads (a declared input
//! file, a directory inputs are read from, the files an input pattern names), `pipeline.yaml`,
//! `.env`, `.daydream/`, or another output. An `{id}` pattern stands for every file name an id
//! could give it, and files written beside each output (an LLM answer's `.json` record) count
//! too. All of it is pure but [`check_on_disk`], which asks `fsutil::Inside` whether an output's
//! directory leads out of the project through a symbolic link.

use super::diag::Diag;
use super::kind::{Decl, DeclKind};
use super::spec::{PIPELINE_FILE, Pipeline, STATE_DIR};
use super::table::{TASK_ID_MAX, is_id_char};
use super::yaml::Loc;

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

/// The component with its `{...}` hole written `{id}` (an input pattern's `{template_id}` stands
/// for any id too).
fn as_id(c: &str) -> std::borrow::Cow<'_, str> {
    match (c.find('{'), c.find('}')) {
        (Some(a), Some(b)) if a < b => std::borrow::Cow::Owned(format!("{}{{id}}{}", &c[..a], &c[b + 1..])),
        _ => std::borrow::Cow::Borrowed(c),
    }
}

/// Whether two path components (either may hold `{id}`) can be the same name.
fn names_meet(a: &str, b: &str) -> bool {
    let (a, b) = (as_id(a), as_id(b));
    let (a, b) = (a.as_ref(), b.as_ref());
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

fn label(d: &Decl, stage: &str) -> String {
    format!("`{}: {}` of stage `{stage}`", d.field, d.path)
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
        protected(STATE_DIR, true, ".daydream/, where daydream keeps its store"),
        protected(PIPELINE_FILE, false, PIPELINE_FILE),
        protected(".env", false, ".env, which holds API keys"),
    ];
    for s in &p.stages {
        for d in s.stage.inputs() {
            claims.push(Claim {
                path: normalize(&d.path),
                tree: d.what == DeclKind::Dir && d.path != ".",
                role: Role::Input,
                label: label(&d, &s.name),
                loc: Some(d.loc),
            });
        }
    }
    let first_output = claims.len();
    for s in &p.stages {
        for d in s.stage.outputs() {
            for (from, to) in s.stage.sidecars() {
                let side = match d.path.strip_suffix(from) {
                    Some(stem) => format!("{stem}{to}"),
                    None => format!("{}{to}", d.path),
                };
                claims.push(Claim {
                    path: side,
                    tree: false,
                    role: Role::Output,
                    label: format!("the `{to}` records beside {}", label(&d, &s.name)),
                    loc: Some(d.loc),
                });
            }
            claims.push(Claim {
                path: normalize(&d.path),
                tree: false,
                role: Role::Output,
                label: label(&d, &s.name),
                loc: Some(d.loc),
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
pub fn check_on_disk(p: &Pipeline, inside: &super::fsutil::Inside) -> Result<(), Diag> {
    for s in &p.stages {
        for d in s.stage.outputs() {
            if let Err(why) = inside.output(&d.path, d.what == DeclKind::Pattern) {
                return Err(p
                    .diag(format!("{}: {why}", label(&d, &s.name)), d.loc)
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
        assert!(
            names_meet("{template_id}.txt", "scores.txt"),
            "an input pattern's hole is any id"
        );
    }

    #[test]
    fn patterns_keep_id_in_the_file_name_and_leave_room_for_it() {
        assert_eq!(pattern_problem("data/out/{id}.txt"), None);
        assert!(pattern_problem("data/{id}/x.txt").unwrap().contains("file name"));
        assert!(pattern_problem("data/{id}_{id}.txt").unwrap().contains("exactly once"));
        let long = format!("data/{}{{id}}.txt", "x".repeat(PATTERN_AFFIX_MAX));
        assert!(pattern_problem(&long).unwrap().contains("besides `{id}`"));
    }
}
