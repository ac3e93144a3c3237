//! Scaffolding while the generic engine replaces the old one: `next [-C DIR] [--dry-run] [STAGE...]`.
use daydream::next::engine::run::{Project, RunOptions, run};
use daydream::store::Store;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut root = std::path::PathBuf::from(".");
    if let Some(i) = args.iter().position(|a| a == "-C") {
        root = args[i + 1].clone().into();
        args.drain(i..i + 2);
    }
    let dry = args.iter().any(|a| a == "--dry-run");
    args.retain(|a| a != "--dry-run");
    let project = match Project::open(&root, daydream::next::kinds::registry()) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("error: {d}");
            std::process::exit(2)
        }
    };
    let mut store = Store::open(&project.state_dir()).unwrap();
    let mut opts = RunOptions::dry(&args);
    opts.dry_run = dry;
    match run(&project, &mut store, &opts) {
        Ok(r) => {
            for n in &r.notes {
                println!("note: {n}");
            }
            for s in &r.stages {
                println!(
                    "{:<28} {}: executed {}, reused {}, unchanged {}, failed {}, waiting {}",
                    s.name, s.summary, s.executed, s.reused, s.unchanged, s.failed, s.blocked
                );
                for n in &s.notes {
                    println!("    note: {n}");
                }
                if let Some(d) = &s.detail {
                    for l in &d.lines {
                        println!("    {l}");
                    }
                }
            }
            println!("done in {:.2}s, spent ${:.4}", r.elapsed.as_secs_f64(), r.spent);
            std::process::exit(if r.failed() > 0 { 1 } else { 0 })
        }
        Err(daydream::next::engine::run::RunError::Config(d)) => {
            eprintln!("error: {d}");
            std::process::exit(2)
        }
        Err(daydream::next::engine::run::RunError::Failed(e)) => {
            eprintln!("error: {e:#}");
            std::process::exit(1)
        }
    }
}
