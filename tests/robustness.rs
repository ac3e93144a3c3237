//! A run killed at any moment leaves no corrupt store and no partial file; the next run finishes
//! the job with the same outputs. Two runs on one project cannot interleave.

mod common;

use std::time::{Duration, Instant};

use common::{Space, synthetic};

/// Generated files and their contents, with the registry's created_at column blanked.
fn outputs(s: &Space) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut m: std::collections::BTreeMap<String, Vec<u8>> =
        s.snapshot("data/2_tasks").into_iter().map(|(k, v)| (k, v.1)).collect();
    m.extend(s.snapshot("data/3_generation").into_iter().map(|(k, v)| (k, v.1)));
    let registry: String = s
        .read("data/combo_mappings.csv")
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_owned() + "\n")
        .collect();
    m.insert("data/combo_mappings.csv".into(), registry.into_bytes());
    m
}

#[test]
fn kill_9_at_random_moments_then_run_again() {
    // 12 concepts, k=3: 220 combinations, 1,100 prompts
    let reference = synthetic(12, 3);
    let t = Instant::now();
    reference.ok(&["run"]);
    let full = t.elapsed();
    let expected = outputs(&reference);

    // deterministic "random" kill points spread over the run's duration
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for round in 0..6 {
        let s = synthetic(12, 3);
        for _ in 0..2 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let delay = Duration::from_micros(seed % (full.as_micros() as u64).max(1));
            let mut child = s
                .command(&["run"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
        // no partial file ever stands in data/: every file under data/3_generation is a full prompt
        for (path, (_, bytes)) in s.snapshot("data/3_generation") {
            assert_eq!(
                Some(&bytes),
                expected.get(&path),
                "round {round}: {path} is partial or wrong after kill -9"
            );
        }
        s.ok(&["run"]);
        assert_eq!(outputs(&s), expected, "round {round}: outputs differ after recovery");
        let again = s.ok(&["run"]);
        assert!(
            again.contains("executed 0, reused 0"),
            "round {round}: second run still had work:\n{again}"
        );
        let tmp = std::fs::read_dir(s.path(".daydream/tmp")).unwrap().count();
        assert_eq!(tmp, 0, "temporary files left behind");
    }
}

#[test]
fn a_second_process_is_refused_while_the_first_holds_the_lock() {
    let s = Space::shipped();
    s.ok(&["run"]);
    // hold the project lock as a running daydream would
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(s.path(".daydream/lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let err = s.fails(&["run"], 1);
    assert!(
        err.contains("another daydream process") && err.contains("is working on this project"),
        "{err}"
    );
    let err = s.fails(&["clean"], 1);
    assert!(err.contains("another daydream process"), "{err}");
    // reading commands do not need the lock
    s.ok(&["status"]);
    s.ok(&["run", "--dry-run"]);
    lock.unlock().unwrap();
    s.ok(&["run"]);
}

#[test]
fn two_concurrent_runs_on_one_project() {
    let s = synthetic(12, 3);
    let first = s
        .command(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let second = s.command(&["run"]).output().unwrap();
    let first = first.wait_with_output().unwrap();
    // whichever lost the race was refused with the lock message, never corrupted anything
    for out in [&first, &second] {
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("another daydream process"),
                "{err} {:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    let last = s.ok(&["run"]);
    assert!(last.contains("executed 0, reused 0"), "{last}");
}
