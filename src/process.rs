//! Processes on this host: signalling a job's process group, and telling whether a starter
//! recorded in a container's labels is still the same living process.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// A process identity that survives pid reuse: pid plus start time in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: i32,
    pub start: u64,
}

impl ProcessId {
    pub fn of_self() -> Option<ProcessId> {
        let pid = std::process::id() as i32;
        Some(ProcessId {
            pid,
            start: start_time(pid)?,
        })
    }

    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Field 22 of /proc/PID/stat; None when there is no such process.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // A zombie is dead for our purposes: it runs nothing and waits only to be reaped.
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Parses Grid Engine's `$job_pid`. Anything but a plain number above 1 is refused: 0, 1 and
/// negative numbers would signal far more than one job.
pub fn parse_pid(text: &str) -> Result<i32> {
    let ok = !text.is_empty() && text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<i32>() {
        Ok(pid) if ok && pid > 1 => Ok(pid),
        _ => Err(Error::BadJobEnv {
            value: format!("job pid {text:?}"),
            expected: "a process id",
            fix: "pass Grid Engine's $job_pid",
        }),
    }
}

/// Signals the job's process group (`$job_pid` leads it), or the process alone when it
/// leads none. A group that is already gone is not an error.
pub fn signal_job(pid: i32, signal: Signal) -> Result<()> {
    let target = Pid::from_raw(pid);
    let result = match killpg(target, signal) {
        Err(nix::errno::Errno::ESRCH) => kill(target, signal),
        other => other,
    };
    match result {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(source) => Err(Error::Signal {
            signal: signal.as_str().into(),
            pid,
            source,
        }),
    }
}

/// True while the process exists (zombies count as gone).
pub fn exists(pid: i32) -> bool {
    start_time(pid).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_are_strict() {
        assert_eq!(parse_pid("1234").unwrap(), 1234);
        for bad in [
            "",
            "0",
            "1",
            "-1",
            "-1234",
            "12a",
            " 12",
            "99999999999",
            "+5",
        ] {
            assert!(parse_pid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_process_is_alive_and_stale_one_is_not() {
        let me = ProcessId::of_self().unwrap();
        assert!(me.is_alive());
        assert!(
            !ProcessId {
                start: me.start + 1,
                ..me
            }
            .is_alive()
        );
    }
}
