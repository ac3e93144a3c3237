//! Scaffolding while the generic engine replaces the old one: the shipped experiment run by both
//! against one mock must give the same files.

mod common;

use common::Space;
use common::mock::{MockServer, Reply, Request};

fn reply(req: &Request) -> Reply {
    let h = req
        .prompt
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    if req.prompt.contains("SCORE") || req.prompt.to_lowercase().contains("score") {
        match h % 5 {
            0 => Reply::text("I cannot score this."),
            1 => Reply::text(&format!("Reasoning {h}.\nSCORE: {}", h % 10)),
            2 => Reply::text(&format!("**SCORE: {}/10**", h % 11)),
            _ => Reply::text(&format!("Some analysis\n\nSCORE: {}", (h / 7) % 10)),
        }
    } else {
        Reply::text(&format!(
            "<thinking>t {h}</thinking>\n<essay>Essay number {h} about things.</essay>"
        ))
    }
}

fn strip_column(text: &str, names: &[&str]) -> String {
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = r.headers().unwrap().clone();
    let keep: Vec<usize> = (0..headers.len()).filter(|&i| !names.contains(&&headers[i])).collect();
    let mut out = String::new();
    out.push_str(&keep.iter().map(|&i| &headers[i]).collect::<Vec<_>>().join(","));
    out.push('\n');
    for rec in r.records() {
        let rec = rec.unwrap();
        out.push_str(
            &keep
                .iter()
                .map(|&i| rec.get(i).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

#[test]
fn the_generic_engine_makes_the_same_files() {
    let mock = MockServer::start(reply);
    let old = Space::shipped_with_llm();
    old.use_mock(&mock.base_url());
    let new = Space::shipped_with_llm();
    new.use_mock(&mock.base_url());
    std::fs::copy(
        common::repo().join("tests/next_pipeline.yaml"),
        new.path("pipeline.yaml"),
    )
    .unwrap();
    new.edit(
        "pipeline.yaml",
        "    timeout_s: 600\n",
        "    timeout_s: 2\n    backoff_base_ms: 20\n    backoff_max_s: 0.2\n",
    );
    old.ok(&["run"]);
    let old_requests = mock.count();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_next"))
        .arg("-C")
        .arg(new.dir.path())
        .env("OPENROUTER_BASE_URL", mock.base_url())
        .env("OPENROUTER_API_KEY", "sk-test-SECRET-0123456789")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "next failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    assert_eq!(mock.count(), 2 * old_requests, "the engines asked different calls");
    let a = old.snapshot("data");
    let b = new.snapshot("data");
    let names = |m: &std::collections::BTreeMap<String, (std::time::SystemTime, Vec<u8>)>| -> Vec<String> {
        m.keys().cloned().collect()
    };
    assert_eq!(names(&a), names(&b));
    for (path, (_, bytes)) in &a {
        if path.ends_with(".json") || path.ends_with("report.html") {
            continue;
        }
        let (x, y) = (String::from_utf8_lossy(bytes), String::from_utf8_lossy(&b[path].1));
        let (x, y) = if path.contains("combo_mappings") {
            (strip_column(&x, &["created_at"]), strip_column(&y, &["created_at"]))
        } else if path.contains("generation_results") || path.contains("evaluation_results.csv") {
            let t = ["generation_timestamp", "evaluation_timestamp"];
            (strip_column(&x, &t), strip_column(&y, &t))
        } else {
            (x.into_owned(), y.into_owned())
        };
        assert_eq!(x, y, "{path} differs");
    }
    // an upgrade: the old engine's store, the new pipeline: nothing is asked again
    let before = mock.count();
    std::fs::copy(new.path("pipeline.yaml"), old.path("pipeline.yaml")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_next"))
        .arg("-C")
        .arg(old.dir.path())
        .env("OPENROUTER_BASE_URL", mock.base_url())
        .env("OPENROUTER_API_KEY", "sk-test-SECRET-0123456789")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "next failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
    assert_eq!(mock.count(), before, "the upgrade paid again");
    let c = old.snapshot("data");
    for (path, (_, bytes)) in &a {
        if path.ends_with(".json") || path.ends_with("report.html") || path.contains("_results") {
            continue;
        }
        assert_eq!(
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&c[path].1),
            "{path} changed in the upgrade"
        );
    }
}
