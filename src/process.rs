//! Processes on this host: signalling a job's process group, and telling whether a starter
//! recorded in a container's labels is still the same living process.

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

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

    /// Resolves once this process has ended, at once when it is gone already. The kernel
    /// tells us (a pidfd turns readable at the exit), so a waiter costs no polling.
    pub async fn ended(&self) {
        match self.pidfd() {
            Ok(Some(pidfd)) => {
                let _ = pidfd.readable().await;
            }
            Ok(None) => {}
            // No pidfd (a kernel before 5.3, gVisor, out of descriptors): ask /proc each
            // second instead, which still ends the wait within a second of the exit.
            Err(e) => {
                crate::report::debug(&format!(
                    "pidfd_open({}): {e}; polling /proc instead",
                    self.pid
                ));
                while self.is_alive() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// A pidfd for this very process, or None when it has ended.
    fn pidfd(&self) -> std::io::Result<Option<AsyncFd<OwnedFd>>> {
        let fd = match pidfd_open(self.pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => return Ok(None),
            Err(e) => return Err(e),
        };
        // The pid may have passed to a new process before the open: only the start time
        // says whether the descriptor refers to the process we mean.
        if !self.is_alive() {
            return Ok(None);
        }
        // SAFETY: OwnedFd keeps the descriptor open and unchanged for the AsyncFd's life.
        let pidfd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(Some(pidfd))
    }
}

/// A descriptor that turns readable when process `pid` exits (pidfd_open(2)). It names
/// whatever process holds `pid` at the call: callers check afterwards that it is theirs.
pub fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor (close-on-exec)
    // or -1; it touches no memory of ours. (nix 0.30 has no wrapper, and std's PidFd serves
    // only children it spawned.)
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor is new and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
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

/// SIGKILLs every process of `uid` that holds the additional group `group`: what Grid
/// Engine's `ENABLE_ADDGRP_KILL` does at a job's end, for a job whose container's processes
/// (which hold the job's group, outside its process group) cannot be stopped through the
/// engine; never one of `spare` (the caller and its ancestors, which on Son of Grid Engine
/// hold the group too). Returns how many were signalled.
pub fn kill_group_holders(uid: u32, group: u32, spare: &[i32]) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| !spare.contains(pid))
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|status| holds(&status, uid, group))
        })
        .filter(|&pid| kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok())
        .count()
}

/// Does a `/proc/PID/status` text tell a process of real uid `uid` holding `group`?
fn holds(status: &str, uid: u32, group: u32) -> bool {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
    };
    let real_uid = field("Uid:").split_whitespace().next();
    real_uid == Some(uid.to_string().as_str())
        && field("Groups:")
            .split_whitespace()
            .any(|g| g == group.to_string())
}

/// True while the process exists (zombies count as gone).
pub fn exists(pid: i32) -> bool {
    start_time(pid).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_holders_are_told_by_real_uid_and_groups() {
        let status = |uid: &str, groups: &str| {
            format!("Name:\tsleep\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGroups:\t{groups}\n")
        };
        assert!(holds(&status("2001", "2001 65401 "), 2001, 65401));
        assert!(!holds(&status("2001", "2001 65402"), 2001, 65401));
        assert!(!holds(&status("2002", "65401"), 2001, 65401));
        assert!(!holds(&status("2001", "654011"), 2001, 65401));
        assert!(!holds("Name:\tx\n", 2001, 65401));
    }

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
    fn ended_waits_for_the_exit_and_not_for_a_stale_identity() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let id = ProcessId {
            pid,
            start: start_time(pid).unwrap(),
        };
        rt.block_on(async {
            let early = tokio::time::timeout(Duration::from_millis(200), id.ended()).await;
            assert!(early.is_err(), "ended() resolved while the process lived");
            child.kill().unwrap();
            tokio::time::timeout(Duration::from_secs(10), id.ended())
                .await
                .expect("ended() resolves at the exit");
            let me = ProcessId::of_self().unwrap();
            let stale = ProcessId {
                start: me.start + 1,
                ..me
            };
            tokio::time::timeout(Duration::from_secs(1), stale.ended())
                .await
                .expect("a stale identity has ended already");
        });
        child.wait().unwrap();
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
