//! Reads a running container's usage from its cgroup, the files the engine's stats come
//! from, exactly at its end. The engine cannot tell: once the container exited its cgroup
//! is gone, and its stats stream samples once a second, missing the last one. The kernel
//! can: a pidfd of the container's first process becomes readable the moment that process
//! has exited, and with it (it is PID 1 of the container's pid namespace) every other
//! process of the container. Then every nanosecond of CPU is charged, and the cgroup stays
//! until the engine has heard of the exit and asked runc to delete it, milliseconds later.
//! A sample each second stands in when that moment is missed.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{CgroupV1Text, Measured, Usage, cgroup_v1_path, is_namespace_init};
use crate::engine::Engine;

/// Where the cgroup v1 hierarchies are mounted, one directory per controller.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The fallback's pace: the engine's own stats are no finer.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Follows one container until [`Watch::finish`].
pub struct Watch {
    latest: Arc<Mutex<Latest>>,
    task: tokio::task::JoinHandle<()>,
}

/// The last figures, or why there are none.
type Latest = Result<Measured, String>;

/// Starts following container `id`, which runs, in a task of its own: the starter waits for
/// the job meanwhile. Looking for the cgroup may take an engine round trip (a cgroup parent
/// of the admin's), and the engine answers that only once it has dealt with an exit under
/// way: a short job would wait for its own end twice.
pub fn watch(engine: &Engine, id: &str) -> Watch {
    let latest = Arc::new(Mutex::new(Err("its cgroup could not be read".into())));
    let (engine, id, into) = (engine.clone(), id.to_string(), latest.clone());
    let keep = move |latest: Latest| *into.lock().unwrap_or_else(|e| e.into_inner()) = latest;
    let task = tokio::spawn(async move {
        match attach(&engine, &id).await {
            Ok((Some(pidfd), files)) => follow(pidfd, files, keep).await,
            // Over already: read now, while the cgroup is still there.
            Ok((None, files)) => keep(files.read().map(|usage| Measured { usage, exact: true })),
            Err(problem) => keep(Err(problem)),
        }
    });
    Watch { latest, task }
}

impl Watch {
    /// What the container used, once it ended.
    pub fn finish(self) -> Result<Measured, String> {
        self.task.abort();
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *latest, Err(String::new()))
    }
}

/// Where the engine puts a container's cgroup below each controller unless told otherwise:
/// the cgroupfs driver's place, then the systemd driver's.
const DEFAULT_PLACES: [(&str, &str); 2] = [("docker/", ""), ("system.slice/docker-", ".scope")];

/// The container's cgroup files and, unless it has ended already, a pidfd of its first
/// process. Found without asking the engine when the cgroup is where the engine puts it by
/// default: a job may be over before the engine answers, its cgroup gone soon after.
async fn attach(engine: &Engine, id: &str) -> Result<(Option<AsyncFd<OwnedFd>>, Files), String> {
    let path = match DEFAULT_PLACES
        .iter()
        .map(|(before, after)| format!("{before}{id}{after}"))
        .find(|path| cgroup_dir(path).is_dir())
    {
        Some(path) => path,
        None => path_from_engine(engine, id).await?,
    };
    let files = Files::open(&path)?;
    let Some(pidfd) = first_process(&path)? else {
        return Ok((None, files));
    };
    // SAFETY: an OwnedFd is an open descriptor that stays the same until it is dropped,
    // which only the AsyncFd that owns it does.
    let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(|e| format!("cannot poll a pidfd: {e}"))?;
    Ok((Some(pidfd), files))
}

/// The cgroup of the engine's pid for the container (a cgroup parent of the admin's).
async fn path_from_engine(engine: &Engine, id: &str) -> Result<String, String> {
    let pid = engine
        .inspect(id)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|c| c.pid)
        .ok_or_else(gone)?;
    let proc_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|_| gone())?;
    match cgroup_v1_path(&proc_cgroup, "cpuacct") {
        Some(path) if path.contains(id) => Ok(path.trim_start_matches('/').to_string()),
        Some(_) => Err(gone()),
        None => Err("there is no cgroup v1 cpuacct controller (only cgroup v1 is measured)".into()),
    }
}

fn gone() -> String {
    "the job ended before its cgroup could be found".into()
}

fn cgroup_dir(path: &str) -> PathBuf {
    Path::new(CGROUP_ROOT).join("cpuacct").join(path)
}

/// A pidfd of the process that is PID 1 in the container's pid namespace, or None when no
/// process is left: the container has ended and its cgroup holds its final figures.
fn first_process(path: &str) -> Result<Option<OwnedFd>, String> {
    let procs =
        std::fs::read_to_string(cgroup_dir(path).join("cgroup.procs")).map_err(|_| gone())?;
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let is_first = || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|status| is_namespace_init(&status))
        };
        if !is_first() {
            continue;
        }
        // Checked again once pinned by the pidfd: the pid may have been reused meanwhile.
        if let Ok(pidfd) = crate::process::pidfd_open(pid) {
            let member = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| cgroup_v1_path(&c, "cpuacct").is_some_and(|p| p.ends_with(path)));
            if member && is_first() {
                return Ok(Some(pidfd));
            }
        }
    }
    // Its first process is gone, and with it (the kernel kills the rest of its pid
    // namespace) the container.
    Ok(None)
}

async fn follow(pidfd: AsyncFd<OwnedFd>, files: Files, keep: impl Fn(Latest)) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            biased;
            _ = pidfd.readable() => {
                // Too late only when this process was not scheduled for the whole time the
                // engine took to reap the container: then the last sample stands.
                if let Ok(usage) = files.read() {
                    keep(Ok(Measured { usage, exact: true }));
                }
                return;
            }
            _ = tick.tick() => {
                if let Ok(usage) = files.read() {
                    keep(Ok(Measured { usage, exact: false }));
                }
            }
        }
    }
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
    /// `path`: the container's cgroup below each controller's hierarchy.
    fn open(path: &str) -> Result<Files, String> {
        let open = |controller: &str, name: &str| {
            let file = Path::new(CGROUP_ROOT)
                .join(controller)
                .join(path)
                .join(name);
            File::open(&file).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => gone(),
                _ => format!("cannot open {}: {e}", file.display()),
            })
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
