//! qdock's own words: one `qdock:` line on stderr (the job's `.e` file) and the same in
//! syslog, where admins look. stdout is never used: it belongs to the job, byte for byte.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

use crate::error::Error;

struct Reporter {
    program: &'static str,
    job: Mutex<Option<String>>,
    /// The proven job's cell: job ids are per cell, and a host may run several.
    cell: Mutex<Option<String>>,
    syslog: Mutex<Option<Option<Logger<LoggerBackend, Formatter3164>>>>,
}

static REPORTER: OnceLock<Reporter> = OnceLock::new();

/// Where stderr's lines go instead of a write(2) of the caller's: see [`divert_stderr`].
type Diverted = Box<dyn Fn(Vec<u8>) + Send>;
static DIVERTED: Mutex<Option<Diverted>> = Mutex::new(None);

/// From now on, every line meant for stderr is handed to `to` instead of written by the
/// thread that reports it: the starter's terminal may be one nobody reads, and a write to it
/// would then hold that thread for good. `to` must not block.
pub fn divert_stderr(to: impl Fn(Vec<u8>) + Send + 'static) {
    *DIVERTED.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(to));
}

/// Writes to stderr again (after [`divert_stderr`]).
pub fn restore_stderr() {
    DIVERTED.lock().unwrap_or_else(|e| e.into_inner()).take();
}

fn reporter() -> &'static Reporter {
    REPORTER.get_or_init(|| Reporter {
        program: "qdock",
        job: Mutex::new(None),
        cell: Mutex::new(None),
        syslog: Mutex::new(None),
    })
}

/// Names the program in syslog; call once at the top of main.
pub fn init(program: &'static str) {
    let _ = REPORTER.set(Reporter {
        program,
        job: Mutex::new(None),
        cell: Mutex::new(None),
        syslog: Mutex::new(None),
    });
}

/// Names the job in every later syslog line.
pub fn set_job(job: impl std::fmt::Display) {
    *reporter().job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job.to_string());
}

/// Names the proven job's cell in syslog from now on (only a proof knows it).
pub fn set_cell(cell: &str) {
    *reporter().cell.lock().unwrap_or_else(|e| e.into_inner()) = Some(cell.to_string());
}

#[derive(Clone, Copy)]
enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

/// A message is one line, whatever a caller put into the values it names: a newline in a
/// path or variable would otherwise forge a `qdock:` line in the `.e` file or in syslog.
pub fn one_line(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn emit(level: Level, message: &str, to_stderr: bool) {
    let message = &one_line(message);
    let r = reporter();
    if to_stderr {
        let line = format!("qdock: {message}\n").into_bytes();
        match &*DIVERTED.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(to) => to(line),
            // One write, so lines from concurrent methods do not interleave in the .e file.
            None => {
                let _ = std::io::stderr().write_all(&line);
            }
        }
    }
    let line = match &*r.job.lock().unwrap_or_else(|e| e.into_inner()) {
        Some(job) if !message.starts_with(&format!("job {job} ")) => {
            format!("job {job}: {message}")
        }
        _ => message.to_string(),
    };
    let line = match &*r.cell.lock().unwrap_or_else(|e| e.into_inner()) {
        Some(cell) => format!("cell {cell}: {line}"),
        None => line,
    };
    let mut slot = r.syslog.lock().unwrap_or_else(|e| e.into_inner());
    let logger = slot.get_or_insert_with(|| {
        let formatter = Formatter3164 {
            facility: Facility::LOG_DAEMON,
            hostname: None,
            process: r.program.to_string(),
            pid: std::process::id(),
        };
        syslog::unix(formatter).ok()
    });
    if let Some(logger) = logger {
        let _ = match level {
            Level::Error => logger.err(line),
            Level::Warning => logger.warning(line),
            Level::Info => logger.info(line),
            Level::Debug => logger.debug(line),
        };
    }
}

pub fn error(e: &Error) {
    emit(Level::Error, &e.to_string(), true);
}

pub fn warn(message: &str) {
    emit(Level::Warning, message, true);
}

pub fn info(message: &str) {
    emit(Level::Info, message, true);
}

/// Syslog only: for admins, not for the job's `.e` file.
pub fn log(message: &str) {
    emit(Level::Info, message, false);
}

/// Syslog at debug level; on stderr too when `QDOCK_DEBUG` is set.
pub fn debug(message: &str) {
    emit(
        Level::Debug,
        message,
        std::env::var_os("QDOCK_DEBUG").is_some(),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_are_one_line() {
        assert_eq!(
            super::one_line("script /x\nqdock: forged\r\u{1b}[2J ok"),
            "script /x\\nqdock: forged\\r\\u{1b}[2J ok"
        );
        assert_eq!(super::one_line("plain é"), "plain é");
    }
}
