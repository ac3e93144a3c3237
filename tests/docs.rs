//! The README's pipeline.yaml reference names every kind and field daydream accepts.

#[test]
fn readme_documents_every_kind_and_field() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let reference = readme
        .split("## pipeline.yaml reference")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    for kind in daydream::spec::Kind::ALL {
        assert!(
            reference.contains(&format!("| `{}` |", kind.name())),
            "kind {} is not in the README",
            kind.name()
        );
        for f in kind.fields() {
            assert!(
                reference.contains(&format!("`{}`", f.name)),
                "field {} of {} is not in the README",
                f.name,
                kind.name()
            );
        }
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    // the second line of the README's first code block
    let test_cmd = readme
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .split('#')
        .next()
        .unwrap()
        .trim();
    assert!(!test_cmd.is_empty() && !test_cmd.starts_with("```"));
    assert!(
        ci.lines()
            .any(|l| l.trim() == test_cmd || l.trim() == format!("exec {test_cmd}")),
        ".ci/run must run `{test_cmd}`"
    );
}
