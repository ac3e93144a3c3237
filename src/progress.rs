//! Progress of an LLM stage: an indicatif bar on a terminal (done/cached/failed, in flight,
//! tokens, cost, ETA), plain lines otherwise. Counters are atomics shared with the executor.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Default)]
pub struct Counters {
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub in_flight: AtomicU64,
    pub tokens: AtomicU64,
    /// Micro-dollars.
    pub cost_micro: AtomicU64,
}

impl Counters {
    pub fn add_cost(&self, usd: f64) {
        self.cost_micro
            .fetch_add((usd * 1e6).round().max(0.0) as u64, Ordering::Relaxed);
    }

    pub fn cost(&self) -> f64 {
        self.cost_micro.load(Ordering::Relaxed) as f64 / 1e6
    }
}

pub struct Progress {
    pub counters: Arc<Counters>,
    bar: Option<ProgressBar>,
    stage: String,
    total: u64,
    cached: u64,
    start: Instant,
    last_line: std::sync::Mutex<(Instant, u64)>,
}

impl Progress {
    /// `total` calls to make; `cached` tasks already answered from the store.
    pub fn new(stage: &str, total: u64, cached: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(5));
            b.set_style(
                ProgressStyle::with_template("{prefix:>20} [{bar:30}] {pos}/{len} {msg} ({eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(stage.to_owned());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Progress {
            counters: Arc::default(),
            bar,
            stage: stage.to_owned(),
            total,
            cached,
            start: Instant::now(),
            last_line: std::sync::Mutex::new((Instant::now(), 0)),
        }
    }

    fn message(&self) -> String {
        let c = &self.counters;
        format!(
            "{} cached, {} failed, {} in flight, {} tokens, ${:.4}",
            self.cached,
            c.failed.load(Ordering::Relaxed),
            c.in_flight.load(Ordering::Relaxed),
            c.tokens.load(Ordering::Relaxed),
            c.cost()
        )
    }

    /// Redraws (terminal) or prints a line every 10% or 10 s (otherwise).
    pub fn tick(&self) {
        let done = self.counters.done.load(Ordering::Relaxed) + self.counters.failed.load(Ordering::Relaxed);
        match &self.bar {
            Some(b) => {
                b.set_position(done);
                b.set_message(self.message());
            }
            None => {
                let mut last = self.last_line.lock().expect("progress lock");
                let step = (self.total / 10).max(1);
                if done >= last.1 + step || (last.0.elapsed() >= Duration::from_secs(10) && done > last.1) {
                    eprintln!(
                        "{}: {done}/{} calls, {} ({:.0}s)",
                        self.stage,
                        self.total,
                        self.message(),
                        self.start.elapsed().as_secs_f64()
                    );
                    *last = (Instant::now(), done);
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
