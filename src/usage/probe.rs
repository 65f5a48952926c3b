//! Reads a running container's usage from its cgroup, the files the engine's stats come
//! from, exactly at its end. The engine cannot tell: once the container exited its cgroup
//! is gone, and its stats stream samples once a second, missing the last one. The kernel
//! can: a pidfd of the container's first process becomes readable the moment that process
//! has exited, and with it (it is PID 1 of the container's pid namespace) every other
//! process of the container. Then every nanosecond of CPU is charged, and the cgroup stays
//! until the engine has heard of the exit and asked runc to delete it, milliseconds later.
//! A sample each second stands in when that moment is missed.

use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{CgroupV1Text, Measured, Usage, cgroup_v1_path};
use crate::engine::Engine;

/// Where the cgroup v1 hierarchies are mounted, one directory per controller.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The fallback's pace: the engine's own stats are no finer.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Follows one container until [`Watch::finish`].
pub struct Watch {
    latest: Arc<Mutex<Option<Measured>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Why nothing can be measured, when that was clear from the start.
    problem: Option<String>,
}

/// Starts following container `id`, which runs.
pub async fn watch(engine: &Engine, id: &str) -> Watch {
    let latest = Arc::new(Mutex::new(None));
    match attach(engine, id).await {
        Ok((pidfd, files)) => Watch {
            task: Some(tokio::spawn(follow(pidfd, files, latest.clone()))),
            latest,
            problem: None,
        },
        Err(problem) => Watch {
            latest,
            task: None,
            problem: Some(problem),
        },
    }
}

impl Watch {
    /// What the container used, once it ended.
    pub fn finish(self) -> Result<Measured, String> {
        if let Some(task) = &self.task {
            task.abort();
        }
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner()).take();
        latest.ok_or_else(|| {
            self.problem
                .unwrap_or_else(|| "its cgroup could not be read".into())
        })
    }
}

async fn attach(engine: &Engine, id: &str) -> Result<(AsyncFd<OwnedFd>, Files), String> {
    let gone = || "the job ended before its cgroup could be found".to_string();
    let pid = engine
        .inspect(id)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|c| c.pid)
        .ok_or_else(gone)?;
    // The pidfd pins the process: if the pid was reused meanwhile, its cgroup is not the
    // container's, and the check in `Files::open` says so.
    let pidfd = pidfd_open(pid).map_err(|_| gone())?;
    let proc_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|_| gone())?;
    let files = Files::open(&proc_cgroup, id)?;
    // SAFETY: an OwnedFd is an open descriptor that stays the same until it is dropped,
    // which only the AsyncFd that owns it does.
    let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(|e| format!("cannot poll a pidfd: {e}"))?;
    Ok((pidfd, files))
}

async fn follow(pidfd: AsyncFd<OwnedFd>, files: Files, latest: Arc<Mutex<Option<Measured>>>) {
    let keep = |measured: Measured| {
        *latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(measured);
    };
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            biased;
            _ = pidfd.readable() => {
                // Too late only when this process was not scheduled for the whole time the
                // engine took to reap the container: then the last sample stands.
                if let Ok(usage) = files.read() {
                    keep(Measured { usage, exact: true });
                }
                return;
            }
            _ = tick.tick() => {
                if let Ok(usage) = files.read() {
                    keep(Measured { usage, exact: false });
                }
            }
        }
    }
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor (close-on-exec)
    // or -1; it touches no memory of ours.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor is new and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The container's cgroup files, opened once and read again from offset 0 each time.
struct Files {
    cpu: File,
    cpu_user: File,
    cpu_system: File,
    memory_peak: File,
    blkio: File,
}

impl Files {
    /// `id` is the container's: the cgroup must be named after it (`/docker/<id>`, or
    /// `docker-<id>.scope` under systemd).
    fn open(proc_cgroup: &str, id: &str) -> Result<Files, String> {
        let open = |controller: &str, name: &str| {
            let path = cgroup_v1_path(proc_cgroup, controller).ok_or_else(|| {
                format!("no cgroup v1 {controller} controller (only cgroup v1 is measured)")
            })?;
            if !path.contains(id) {
                return Err(format!(
                    "the job's first process is not in the container's cgroup ({path})"
                ));
            }
            let file = Path::new(CGROUP_ROOT)
                .join(controller)
                .join(path.trim_start_matches('/'))
                .join(name);
            File::open(&file).map_err(|e| format!("cannot open {}: {e}", file.display()))
        };
        Ok(Files {
            cpu: open("cpuacct", "cpuacct.usage")?,
            cpu_user: open("cpuacct", "cpuacct.usage_user")?,
            cpu_system: open("cpuacct", "cpuacct.usage_sys")?,
            memory_peak: open("memory", "memory.max_usage_in_bytes")?,
            blkio: open("blkio", "blkio.throttle.io_service_bytes_recursive")?,
        })
    }

    fn read(&self) -> Result<Usage, String> {
        let cpu = read_all(&self.cpu)?;
        let cpu_user = read_all(&self.cpu_user)?;
        let cpu_system = read_all(&self.cpu_system)?;
        let memory_peak = read_all(&self.memory_peak)?;
        let blkio = read_all(&self.blkio)?;
        Usage::from_cgroup_v1(&CgroupV1Text {
            cpu: &cpu,
            cpu_user: &cpu_user,
            cpu_system: &cpu_system,
            memory_peak: &memory_peak,
            blkio: &blkio,
        })
    }
}

/// The whole file, read afresh: a cgroup file is generated on each read from offset 0. A
/// removed cgroup answers ENODEV.
fn read_all(file: &File) -> Result<String, String> {
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match file.read_at(&mut buf, text.len() as u64) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    String::from_utf8(text).map_err(|e| e.to_string())
}
