//! Reads a running container's usage from its cgroup, the files the engine's stats come
//! from, exactly at its end. The engine cannot tell: once the container exited its cgroup
//! is gone, and its stats stream samples once a second, missing the last one. The kernel
//! can: a pidfd of the container's first process becomes readable the moment that process
//! has exited, and with it (it is PID 1 of the container's pid namespace) every other
//! process of the container. Then every nanosecond of CPU is charged, and the cgroup stays
//! until the engine has heard of the exit and asked runc to delete it, milliseconds later.
//! A sample each second stands in when that moment is missed.
//!
//! Both cgroup hierarchies are read the same way, told apart at run time by the file system
//! type at the cgroup mount: v1 keeps each controller's files in a hierarchy of its own, v2
//! all in one directory ([`Hierarchy`] knows which files and where; [`Files`] opens and reads
//! them).
//!
//! A job over within milliseconds ends before the engine has even answered the start, and
//! its cgroup may be gone by then. So the cgroup is looked for from the moment the start is
//! asked for ([`watch_start`]): the engine makes it during the start, at its default place
//! (elsewhere the engine says where once it answered), and the job itself waits until its
//! first process is pinned: the starter's go-ahead, which the output helper in the container
//! waits for before it execs the job.
//!
//! The looking and the following run on a thread of their own, blocked in poll(2): the
//! starter's runtime is busiest with the container's output and the engine's replies just
//! when the job ends. On a loaded host even that thread can wake after the engine removed
//! the cgroup (in 8 of 18 test runs of ten one-millisecond jobs, three runs at once on two
//! CPUs here; in none of 300 jobs one run at a time); the last sample then stands, and says
//! so.

use std::fs::File;
use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Hierarchy, Measured, Memory, Usage, is_namespace_init, is_within};
use crate::engine::Engine;

/// Where the cgroup hierarchies are mounted: v1 one directory per controller below it, v2
/// here itself.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The fallback's pace, in ms: the engine's own stats are no finer.
const SAMPLE_EVERY_MS: u16 = 1000;
/// How often, in ms, the cgroup and its first process are looked for while the start is
/// under way: runc takes milliseconds between making the cgroup and running the job, the
/// engine more between the job's exit and removing the cgroup.
const LOOK_EVERY_MS: u8 = 1;
/// The follower needs little stack: it reads a few small files.
const FOLLOWER_STACK: usize = 64 * 1024;

type Latest = Arc<Mutex<Option<Measured>>>;

/// Follows one container until [`Watch::finish`].
pub struct Watch {
    latest: Latest,
    follower: Option<Follower>,
    /// Why nothing can be measured, when that was clear from the start.
    problem: Option<String>,
}

/// The thread that follows the container, and the pipe whose closing stops it.
struct Follower {
    stop: OwnedFd,
    thread: JoinHandle<()>,
}

impl Follower {
    /// Runs `follow` on its own thread, handing it the end of a pipe that turns readable
    /// (hung up) when the follower is stopped. None when no thread or pipe can be had: the
    /// job runs all the same, unmeasured.
    fn spawn(follow: impl FnOnce(OwnedFd) + Send + 'static) -> Option<Follower> {
        // Close-on-exec, as every descriptor of a setgid process should be.
        let (stopped, stop) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
        let thread = std::thread::Builder::new()
            .name("usage".into())
            .stack_size(FOLLOWER_STACK)
            .spawn(move || follow(stopped))
            .ok()?;
        Some(Follower { stop, thread })
    }
}

/// Runs `start`, which starts container `id`, and follows the container from the moment it
/// is asked for; returns what `start` returned and the watch. `go` lets the job itself start
/// (the output helper waits for it): called once the container's first process is pinned,
/// or once it is clear that it cannot be, and at the latest on return. Until then even a
/// job of a millisecond cannot end, nor its cgroup go, unseen.
pub async fn watch_start<T>(
    engine: &Engine,
    id: &str,
    start: impl Future<Output = T>,
    go: impl Fn() + Send + Sync + 'static,
) -> (T, Watch) {
    let go = Arc::new(go);
    let latest = Latest::default();
    let answered = Arc::new(AtomicBool::new(false));
    let (placed, found) = tokio::sync::oneshot::channel();
    let follower = {
        let (id, latest, answered) = (id.to_string(), latest.clone(), answered.clone());
        let go = go.clone();
        Follower::spawn(move |stopped| early(&id, &latest, &answered, placed, &*go, &stopped))
    };
    let outcome = start.await;
    answered.store(true, Ordering::SeqCst);
    // Within a millisecond: the thread looks once more, now that the start has answered.
    let watch = if found.await == Ok(true) {
        Watch {
            latest,
            follower,
            problem: None,
        }
    } else {
        // Not at a default place: the engine says where.
        watch(engine, id).await
    };
    go();
    (outcome, watch)
}

/// Looks for container `id`'s cgroup at the engine's default places until the start has
/// `answered`, telling `placed` whether it is there once its first process is pinned (and
/// then letting the job `go`); then follows that process, or reads at once when it has
/// already ended.
fn early(
    id: &str,
    latest: &Latest,
    answered: &AtomicBool,
    placed: tokio::sync::oneshot::Sender<bool>,
    go: &dyn Fn(),
    stopped: &OwnedFd,
) {
    let (path, files) = loop {
        // Read before looking: a cgroup made before the answer is seen below.
        let over = answered.load(Ordering::SeqCst);
        // runc makes the cgroup one controller after another: it is there once every file
        // opens.
        let made =
            default_place(id).and_then(|path| Files::open(&path).ok().map(|files| (path, files)));
        if let Some(made) = made {
            break made;
        }
        if over || !pause(stopped) {
            let _ = placed.send(false);
            return;
        }
    };
    loop {
        let over = answered.load(Ordering::SeqCst);
        match first_process(&path) {
            Ok(Some(pidfd)) => {
                go();
                let _ = placed.send(true);
                return follow(&pidfd, &files, latest, stopped);
            }
            // Started and already over (a container without the output helper's wait): the
            // cgroup holds its final figures.
            Ok(None) if over => {
                if let Ok(usage) = files.read() {
                    keep(latest, Measured { usage, exact: true });
                }
                let _ = placed.send(true);
                return;
            }
            Ok(None) if pause(stopped) => {}
            Ok(None) | Err(_) => {
                let _ = placed.send(true);
                return;
            }
        }
    }
}

/// Waits a moment while looking; false once the follower is stopped.
fn pause(stopped: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(stopped.as_fd(), PollFlags::POLLIN)];
    !matches!(poll(&mut fds, PollTimeout::from(LOOK_EVERY_MS)), Ok(n) if n > 0)
}

/// Keeps a reading as the latest, with what the readings before it saw (see
/// [`Usage::after`]).
fn keep(latest: &Latest, measured: Measured) {
    let mut latest = latest.lock().unwrap_or_else(|e| e.into_inner());
    let usage = measured.usage.after(latest.as_ref().map(|m| &m.usage));
    *latest = Some(Measured { usage, ..measured });
}

/// Starts following container `id`, which runs.
async fn watch(engine: &Engine, id: &str) -> Watch {
    let latest = Latest::default();
    match attach(engine, id).await {
        Ok((Some(pidfd), files)) => {
            let follower = {
                let latest = latest.clone();
                Follower::spawn(move |stopped| follow(&pidfd, &files, &latest, &stopped))
            };
            Watch {
                latest,
                follower,
                problem: None,
            }
        }
        // Over already: read now, while the cgroup is still there.
        Ok((None, files)) => Watch {
            latest: Arc::new(Mutex::new(
                files
                    .read()
                    .ok()
                    .map(|usage| Measured { usage, exact: true }),
            )),
            follower: None,
            problem: None,
        },
        Err(problem) => Watch {
            latest,
            follower: None,
            problem: Some(problem),
        },
    }
}

impl Watch {
    /// What the container used, once it ended.
    pub fn finish(mut self) -> Result<Measured, String> {
        if let Some(Follower { stop, thread }) = self.follower.take() {
            // The container is gone, so its first process is too: the thread has read its
            // figures or reads them now, seeing the exit before the stop.
            drop(stop);
            let _ = thread.join();
        }
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner()).take();
        latest.ok_or_else(|| {
            self.problem
                .take()
                .unwrap_or_else(|| "its cgroup could not be read".into())
        })
    }
}

/// Where the engine puts a container's cgroup (below each controller's hierarchy on v1)
/// unless told otherwise: dockerd's cgroupfs driver, its systemd driver, Podman's systemd
/// manager (Podman's default wherever systemd runs) and its cgroupfs manager (without
/// systemd, as on this cell's hosts: `/libpod_parent/libpod-<id>` in `/proc/<pid>/cgroup`).
const DEFAULT_PLACES: [(&str, &str); 4] = [
    ("docker/", ""),
    ("system.slice/docker-", ".scope"),
    ("machine.slice/libpod-", ".scope"),
    ("libpod_parent/libpod-", ""),
];

/// The container's cgroup files and, unless it has ended already, a pidfd of its first
/// process. Found without asking the engine when the cgroup is where the engine puts it by
/// default: a job may be over before the engine answers, its cgroup gone soon after.
async fn attach(engine: &Engine, id: &str) -> Result<(Option<OwnedFd>, Files), String> {
    let path = match default_place(id) {
        Some(path) => path,
        None => path_from_engine(engine, id).await?,
    };
    let files = Files::open(&path)?;
    Ok((first_process(&path)?, files))
}

/// The container's cgroup below the hierarchy's root, when it is at a default place.
fn default_place(id: &str) -> Option<String> {
    DEFAULT_PLACES
        .iter()
        .map(|(before, after)| format!("{before}{id}{after}"))
        .find(|path| cgroup_dir(path).is_dir())
}

/// The cgroup of the engine's pid for the container (below a cgroup parent of the admin's,
/// or where an engine's other driver puts it).
async fn path_from_engine(engine: &Engine, id: &str) -> Result<String, String> {
    let pid = engine
        .inspect(id)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|c| c.pid)
        .ok_or_else(gone)?;
    let proc_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|_| gone())?;
    let hierarchy = hierarchy();
    match hierarchy.cgroup_of(&proc_cgroup) {
        Some(path) if path.contains(id) => Ok(path.trim_start_matches('/').to_string()),
        Some(_) => Err(gone()),
        None => Err(format!(
            "its process is in no cgroup of the {} hierarchy",
            match hierarchy {
                Hierarchy::V1 => "cgroup v1 cpuacct",
                Hierarchy::V2 => "cgroup v2",
            }
        )),
    }
}

fn gone() -> String {
    "the job ended before its cgroup could be found".into()
}

/// The hierarchy the kernel keeps the controllers in, by the file system mounted at the
/// cgroup root (cgroup2 on v2; a tmpfs of per-controller mounts on v1 and hybrid hosts).
fn hierarchy() -> Hierarchy {
    static HIERARCHY: OnceLock<Hierarchy> = OnceLock::new();
    *HIERARCHY.get_or_init(|| {
        use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};
        match statfs(CGROUP_ROOT) {
            Ok(fs) if fs.filesystem_type() == CGROUP2_SUPER_MAGIC => Hierarchy::V2,
            _ => Hierarchy::V1,
        }
    })
}

/// The container's cgroup `path` in the hierarchy that holds `controller`.
fn controller_dir(controller: &'static str, path: &str) -> PathBuf {
    Path::new(CGROUP_ROOT)
        .join(hierarchy().mount_of(controller))
        .join(path)
}

/// The container's cgroup `path` in the hierarchy that lists its processes.
fn cgroup_dir(path: &str) -> PathBuf {
    Path::new(CGROUP_ROOT)
        .join(hierarchy().procs_mount())
        .join(path)
}

/// A pidfd of the process that is PID 1 in the container's pid namespace, or None when no
/// process is left: the container has ended and its cgroup holds its final figures.
fn first_process(path: &str) -> Result<Option<OwnedFd>, String> {
    for pid in pids_within(&cgroup_dir(path))? {
        let is_first = || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|status| is_namespace_init(&status))
        };
        if !is_first() {
            continue;
        }
        // Checked again once pinned by the pidfd: the pid may have been reused meanwhile.
        if let Ok(pidfd) = crate::process::pidfd_open(pid) {
            let member = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| {
                hierarchy()
                    .cgroup_of(&c)
                    .is_some_and(|p| is_within(p, path))
            });
            if member && is_first() {
                return Ok(Some(pidfd));
            }
        }
    }
    // Its first process is gone, and with it (the kernel kills the rest of its pid
    // namespace) the container.
    Ok(None)
}

/// The processes of the cgroup at `dir`, or, when it holds none, of the cgroups below it: a
/// runtime may run the container's processes in a cgroup of its own below the one it was
/// given (crun under systemd on cgroup v2: `<scope>/container`), and on v2 a cgroup that
/// hands controllers to its children holds no process itself.
fn pids_within(dir: &Path) -> Result<Vec<i32>, String> {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).map_err(|_| gone())?;
    let mut pids: Vec<i32> = procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if pids.is_empty() {
        let below = std::fs::read_dir(dir).map_err(|_| gone())?;
        for entry in below.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                // A cgroup removed meanwhile holds nothing.
                pids.extend(pids_within(&entry.path()).unwrap_or_default());
            }
        }
    }
    Ok(pids)
}

/// Samples the cgroup each second until the first process behind `pidfd` exits, then reads
/// the final figures at once; ends early when `stopped`.
fn follow(pidfd: &OwnedFd, files: &Files, latest: &Latest, stopped: &OwnedFd) {
    let sample = |exact| {
        if let Ok(usage) = files.read() {
            keep(latest, Measured { usage, exact });
        }
    };
    // Something stands even when the final read comes too late.
    sample(false);
    loop {
        let mut fds = [
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(stopped.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::from(SAMPLE_EVERY_MS)) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
            Ok(0) => {
                sample(false);
                continue;
            }
            Ok(_) => {}
        }
        // Too late only when this thread was not scheduled for the whole time the engine
        // took to reap the container: then the last sample stands.
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            sample(true);
        }
        return;
    }
}

/// The container's cgroup files, opened once and read again from offset 0 each time.
struct Files {
    hierarchy: Hierarchy,
    memory: Memory,
    /// `hierarchy.files(memory)`, in that order.
    open: Vec<File>,
}

impl Files {
    /// `path`: the container's cgroup below the hierarchies' root.
    fn open(path: &str) -> Result<Files, String> {
        let hierarchy = hierarchy();
        // A v2 kernel before 5.19 has memory.current but no memory.peak; a cgroup whose
        // memory controller is not enabled yet has neither, and is looked at again.
        let memory_dir = controller_dir("memory", path);
        let memory = if hierarchy == Hierarchy::V2
            && !memory_dir.join("memory.peak").exists()
            && memory_dir.join("memory.current").exists()
        {
            Memory::Current
        } else {
            Memory::Peak
        };
        let open_one = |controller: &'static str, name: &str| {
            let dir = controller_dir(controller, path);
            let file = dir.join(name);
            File::open(&file).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound if dir.is_dir() => format!(
                    "{} has no {name}: a controller is not enabled there",
                    dir.display()
                ),
                std::io::ErrorKind::NotFound => gone(),
                _ => format!("cannot open {}: {e}", file.display()),
            })
        };
        let open = hierarchy
            .files(memory)
            .iter()
            .map(|f| open_one(f.controller, f.name))
            .collect::<Result<_, _>>()?;
        Ok(Files {
            hierarchy,
            memory,
            open,
        })
    }

    fn read(&self) -> Result<Usage, String> {
        let texts = self
            .open
            .iter()
            .map(read_all)
            .collect::<Result<Vec<_>, _>>()?;
        self.hierarchy.usage(self.memory, &texts)
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
