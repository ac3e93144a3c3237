//! The language reference (docs/pipeline.md) names every kind and field daydream accepts, and the
//! README's test command is what CI runs.

#[test]
fn the_language_reference_documents_every_kind_and_field() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/pipeline.md")).unwrap();
    for kind in &daydream::kinds::registry().kinds {
        let section = doc
            .split(&format!("\n### {}\n", kind.name()))
            .nth(1)
            .unwrap_or_else(|| panic!("kind {} has no section in docs/pipeline.md", kind.name()))
            .split("\n### ")
            .next()
            .unwrap();
        for f in kind.fields() {
            assert!(
                section.contains(&format!("`{}`", f.name)),
                "field {} of {} is not in its section of docs/pipeline.md",
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
