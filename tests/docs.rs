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

#[test]
fn the_readme_excerpt_of_a_pipeline_is_the_tested_one_of_the_docs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/pipeline.md")).unwrap();
    let marker = "# an excerpt of docs/pipeline.md's \"A pipeline from scratch\"";
    let start = readme.find(marker).expect("the README shows the excerpt");
    let block = &readme[start..];
    let block = &block[block.find('\n').unwrap() + 1..block.find("```").unwrap()];
    let scratch = &doc[doc.find("## A pipeline from scratch").unwrap()..];
    // every line of the excerpt is a line of the docs' pipeline, in the same order
    let mut rest = scratch;
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let at = rest
            .find(&format!("\n{line}\n"))
            .unwrap_or_else(|| panic!("README line {line:?} is not (in order) in docs/pipeline.md's pipeline"));
        rest = &rest[at + line.len()..];
    }
}
