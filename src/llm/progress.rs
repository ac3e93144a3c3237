//! Progress of an LLM stage: an indicatif bar on a terminal (done/cached/failed, in flight,
//! tokens, cost, elapsed time and time left), plain lines otherwise. Counters are atomics shared
//! with the executor.
//!
//! Plain lines come every 10% of the calls, and at least every heartbeat (10 s, or
//! `DAYDREAM_HEARTBEAT_MS`) while the stage runs, even when no call ends: a call can take minutes
//! (the default timeout of an attempt is 600 s), and silence would look like a hang. The last
//! line of a stage is always printed.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// When each call in flight started, by its number in the stage.
    started: Mutex<HashMap<u64, Instant>>,
}

impl Counters {
    pub fn add_cost(&self, usd: f64) {
        self.cost_micro
            .fetch_add((usd * 1e6).round().max(0.0) as u64, Ordering::Relaxed);
    }

    pub fn cost(&self) -> f64 {
        self.cost_micro.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Call `n` is in flight from now on.
    pub fn call_started(&self, n: u64) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.lock().expect("progress lock").insert(n, Instant::now());
    }

    pub fn call_ended(&self, n: u64) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.started.lock().expect("progress lock").remove(&n);
    }

    /// How long the oldest call in flight has been running.
    fn oldest(&self) -> Option<Duration> {
        self.started
            .lock()
            .expect("progress lock")
            .values()
            .min()
            .map(Instant::elapsed)
    }
}

/// The interval of heartbeat lines: `DAYDREAM_HEARTBEAT_MS` (for tests), else 10 s.
pub fn heartbeat_interval() -> Duration {
    std::env::var("DAYDREAM_HEARTBEAT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

/// A duration as people read it: `41s`, `1m02s`, `1h05m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

pub struct Progress {
    pub counters: Arc<Counters>,
    bar: Option<ProgressBar>,
    stage: String,
    total: u64,
    cached: u64,
    start: Instant,
    heartbeat: Duration,
    /// When the last plain line was printed (or the stage started), and how many calls had
    /// ended then.
    last_line: Mutex<(Instant, u64)>,
    /// Where plain lines go: stderr (a buffer in tests).
    sink: Mutex<Box<dyn Write + Send>>,
}

impl Progress {
    /// `total` calls to make; `cached` tasks already answered from the store.
    pub fn new(stage: &str, total: u64, cached: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(5));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>20} [{bar:30}] {pos}/{len} {msg} (elapsed {elapsed}, ~{eta} left)",
                )
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
            heartbeat: heartbeat_interval(),
            last_line: Mutex::new((Instant::now(), 0)),
            sink: Mutex::new(Box::new(std::io::stderr())),
        }
    }

    fn ended(&self) -> u64 {
        self.counters.done.load(Ordering::Relaxed) + self.counters.failed.load(Ordering::Relaxed)
    }

    fn message(&self) -> String {
        let c = &self.counters;
        let in_flight = c.in_flight.load(Ordering::Relaxed);
        let oldest = match c.oldest() {
            Some(d) if in_flight > 0 => format!(" (oldest {})", human(d)),
            _ => String::new(),
        };
        format!(
            "{} cached, {} failed, {in_flight} in flight{oldest}, {} tokens, ${:.4}",
            self.cached,
            c.failed.load(Ordering::Relaxed),
            c.tokens.load(Ordering::Relaxed),
            c.cost()
        )
    }

    fn line(&self, last: &mut (Instant, u64), ended: u64) {
        let _ = writeln!(
            self.sink.lock().expect("progress lock"),
            "{}: {ended}/{} calls, {}, elapsed {}",
            self.stage,
            self.total,
            self.message(),
            human(self.start.elapsed())
        );
        *last = (Instant::now(), ended);
    }

    /// Redraws (terminal) or prints a line every 10% of the calls (otherwise).
    pub fn tick(&self) {
        let ended = self.ended();
        match &self.bar {
            Some(b) => {
                b.set_position(ended);
                b.set_message(self.message());
            }
            None => {
                let mut last = self.last_line.lock().expect("progress lock");
                let step = (self.total / 10).max(1);
                if ended >= last.1 + step {
                    self.line(&mut last, ended);
                }
            }
        }
    }

    /// When the next heartbeat is due.
    pub fn next_heartbeat(&self) -> Instant {
        match &self.bar {
            Some(_) => Instant::now() + self.heartbeat.min(Duration::from_secs(1)),
            None => self.last_line.lock().expect("progress lock").0 + self.heartbeat,
        }
    }

    /// Prints a line (or refreshes the bar) when none came for a heartbeat.
    pub fn heartbeat(&self) {
        let ended = self.ended();
        match &self.bar {
            Some(b) => b.set_message(self.message()),
            None => {
                let mut last = self.last_line.lock().expect("progress lock");
                if last.0.elapsed() >= self.heartbeat {
                    self.line(&mut last, ended);
                }
            }
        }
    }

    /// Ends the stage's progress: clears the bar, or prints the last line unless it was printed.
    pub fn finish(&self) {
        match &self.bar {
            Some(b) => b.finish_and_clear(),
            None => {
                let ended = self.ended();
                let mut last = self.last_line.lock().expect("progress lock");
                if last.1 != ended || ended == 0 {
                    self.line(&mut last, ended);
                }
            }
        }
    }
}

/// Says, before an LLM stage's first call, which provider it calls and how many calls it makes
/// (to stderr: a long stage must not look like a hang). `told` keeps each note to once a run.
pub fn announce(
    stage: &str,
    choice: &crate::llm::provider::Choice,
    calls: usize,
    cached: usize,
    told: &mut Vec<String>,
) {
    if let Some(note) = &choice.note
        && !told.contains(note)
    {
        eprintln!("note: {note}");
        told.push(note.clone());
    }
    let on = match &choice.local_model {
        Some(m) => format!("the local model `{m}` (provider `{}`)", choice.provider.name),
        None => format!("provider `{}`", choice.provider.name),
    };
    eprintln!(
        "{stage}: {calls} call{} to make on {on}, {cached} answered from the store",
        if calls == 1 { "" } else { "s" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test reads back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn plain(total: u64, heartbeat: Duration) -> (Progress, Buffer) {
        let buffer = Buffer::default();
        let mut p = Progress::new("stage", total, 0);
        p.bar = None;
        p.heartbeat = heartbeat;
        p.sink = Mutex::new(Box::new(buffer.clone()));
        (p, buffer)
    }

    fn text(b: &Buffer) -> String {
        String::from_utf8(b.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_last_line_is_printed_though_the_last_calls_end_between_steps() {
        let (p, out) = plain(20, Duration::ZERO);
        p.counters.done.store(19, Ordering::Relaxed);
        p.heartbeat(); // a heartbeat line at 19: the next 10% step would be 21
        p.counters.done.store(20, Ordering::Relaxed);
        p.tick();
        assert!(!text(&out).contains("20/20"), "{}", text(&out));
        p.finish();
        assert!(text(&out).contains("stage: 20/20 calls"), "{}", text(&out));
        p.finish();
        assert_eq!(text(&out).matches("20/20").count(), 1, "printed once");
    }

    #[test]
    fn a_heartbeat_names_the_calls_in_flight_and_the_oldest_one() {
        let (p, out) = plain(25, Duration::ZERO);
        p.counters.call_started(1);
        p.counters.call_started(2);
        p.counters.call_ended(1);
        p.heartbeat();
        let line = text(&out);
        assert!(
            line.starts_with("stage: 0/25 calls, 0 cached, 0 failed, 1 in flight (oldest 0s)"),
            "{line}"
        );
        assert!(line.trim_end().ends_with("elapsed 0s"), "{line}");
        let (quiet, out) = plain(25, Duration::from_secs(3600));
        quiet.heartbeat();
        assert_eq!(text(&out), "", "no line before a heartbeat is due");
    }

    #[test]
    fn durations_read_as_people_read_them() {
        assert_eq!(human(Duration::from_secs(41)), "41s");
        assert_eq!(human(Duration::from_secs(62)), "1m02s");
        assert_eq!(human(Duration::from_secs(3900)), "1h05m");
    }
}
