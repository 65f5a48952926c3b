//! Where a start's time goes, on request. With `QDOCK_TIMING` set in the job's environment
//! (`qsub -v QDOCK_TIMING=1`), the starter ends with one `qdock: timing:` line on stderr
//! (the job's `.e` file) and in syslog: the wall-clock moment its `main` began, then each step's
//! end in milliseconds after that. The switch only adds that line: it chooses nothing, so it
//! is the caller's to set, like any variable of their own job; a user learns no more from it
//! than the timing of their own job's calls.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The variable that asks for the line.
pub const VARIABLE: &str = "QDOCK_TIMING";

struct Clock {
    /// When `main` began: as a wall-clock time (to line up with the caller's own clock) and
    /// as a monotonic instant (for the steps).
    wall_us: u128,
    at: Instant,
    steps: Vec<(&'static str, Instant)>,
}

static CLOCK: Mutex<Option<Clock>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<Clock>> {
    CLOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the clock when the caller asked for the line; call first thing in `main`.
pub fn start() {
    if std::env::var_os(VARIABLE).is_none_or(|v| v.is_empty()) {
        return;
    }
    let wall_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    *lock() = Some(Clock {
        wall_us,
        at: Instant::now(),
        steps: Vec::new(),
    });
}

/// Marks the end of `step`; nothing unless the clock runs.
pub fn mark(step: &'static str) {
    if let Some(clock) = lock().as_mut() {
        clock.steps.push((step, Instant::now()));
    }
}

/// The line, once: `None` unless the clock runs.
pub fn line() -> Option<String> {
    let clock = lock().take()?;
    Some(format_line(
        clock.wall_us,
        clock
            .steps
            .iter()
            .map(|(step, at)| (*step, at.duration_since(clock.at).as_secs_f64() * 1e3)),
    ))
}

fn format_line<'a>(wall_us: u128, steps: impl Iterator<Item = (&'a str, f64)>) -> String {
    let mut line = format!(
        "timing: main at {}.{:06} s;",
        wall_us / 1_000_000,
        wall_us % 1_000_000
    );
    for (step, ms) in steps {
        line.push_str(&format!(" {step} {ms:.1}"));
    }
    line.push_str(" (ms after main)");
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_line_names_each_step_in_order() {
        let line = super::format_line(
            1_796_475_451_607_179,
            [("proof", 0.42), ("create", 31.96)].into_iter(),
        );
        assert_eq!(
            line,
            "timing: main at 1796475451.607179 s; proof 0.4 create 32.0 (ms after main)"
        );
    }
}
