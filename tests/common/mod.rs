//! Shared harness for qdock's integration tests against the real Docker engine.
//!
//! Every test drives a qdock binary the way Grid Engine's execd would: as an ordinary user,
//! in a cleared environment that looks like a job's, with the job script in a root-owned
//! spool directory and the working directory in the user's home. The tests run as root
//! (CI runs them as root) so the harness can prepare directories, switch users and talk to
//! the engine itself.
//!
//! ```ignore
//! #[macro_use]
//! mod common;
//! use common::*;
//!
//! #[test]
//! fn hello() {
//!     require_engine!();
//!     // Exit 0, exactly this stdout, no container left.
//!     Job::new("echo hello").expect(0, "hello\n");
//! }
//! ```
//!
//! [`Job::run_ok`], [`Job::run_expecting`] and [`Job::expect`] run a job and check the
//! usual end (exit code, stdout, no container); [`Job::expect_refusal`] checks the refusal
//! contract of bad input (one `qdock:` line, the exit code, empty stdout, no container).
//!
//! # How a binary is run
//! - [`Mode::Installed`]: as in production. The cargo-built binaries are copied once per
//!   test process into `/var/lib/qdock-test/bin-<pid>/`, owned `root:docker` with mode
//!   2755 (setgid docker), and run there as the user through `setpriv`, with the user's
//!   group and [`JOB_GROUP`] (like Grid Engine's per-job group from `gid_range`) only. Being
//!   setgid they read only `/etc/qdock/qdock.toml`.
//! - [`Mode::Config`]: the un-installed cargo binary as the user, with the docker group added
//!   to the supplementary groups and `QDOCK_CONFIG` pointing at a test's own config (see
//!   [`Job::with_config`]).
//! - [`Mode::Root`]: the cargo binary as root, optionally with `QDOCK_CONFIG`; for error paths.
//!
//! # The job's proof
//! The binaries act only for a job that Grid Engine proves (src/job_proof.rs): the caller
//! holds the group recorded in the execd spool, `<spool>/<host>/active_jobs/<job>.<task>/
//! addgrpid`. Each [`Job`] emulates the shepherd honestly: as root it writes that entry
//! (owned by the Grid Engine admin, with `addgrpid` = [`Job::group`] and the `config` lines
//! qdock reads: `job_owner`, `tmpdir`) into the real execd spool of this host, and runs the
//! binaries with that group. Test job ids (above 10^9) never meet Grid Engine's. Dropping the
//! `Job` removes the entry.
//!
//! # Isolation
//! Each [`Job`] gets a job id unique across concurrently running test processes (derived
//! from the pid and a counter), so container names never collide. Dropping a `Job`
//! force-removes its container and deletes its directories (they are kept, and their paths
//! printed, when the test panicked).
//!
//! Two things from outside can still kill a test's processes, so keep them apart from a run:
//! a real Grid Engine job ending SIGKILLs every process carrying its `gid_range` group
//! (hence [`JOB_GROUP`] lies outside that range), and tests that take the engine away
//! (tests/gridengine.rs moves the socket aside) fail every job running meanwhile. Cargo runs
//! the test binaries one after another, so `cargo test` and `bin/test` are safe.
//!
//! # Waiting
//! [`Running::wait_until`] polls a condition while a job runs and, on failure, shows what the
//! starter wrote; [`Running::wait`] and [`Job::run`] kill a starter that outlives their
//! timeout and fail the test. [`Outcome::assert_code`] accepts only a real exit, never death
//! by a signal.
//!
//! Order is decided by events, never by a sleep: a job holds in [`UNTIL_GO`] until
//! [`Job::go`]; a test waits for a file, a container or a process state. A check that
//! nothing moved (a suspended job) waits for a [`Ticker`], an independent clock of the job's
//! pace, to advance, so that it cannot pass merely by looking too soon.
//!
//! # Fake engines
//! [`FakeEngine`] stands in for a hung dockerd on a socket of the test's own: it answers
//! nothing, or only the version ping ([`FakeAnswers`]), and records every request, so a test
//! proves where its client hung.
//!
//! # Grid Engine
//! [`cell`] drives the real cell through `qsub`, `qstat`, `qmod`, `qdel` and `qacct` as
//! alice (tests/gridengine.rs); `require_cell!()` stands for `require_engine!()` there.
//!
//! # Docker missing
//! [`require_engine`] checks the prerequisites once per process. Outside CI a test without
//! them is skipped with a printed reason (on stderr, past libtest's capture); under
//! `CI=true` it fails.

#![allow(dead_code)]

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

/// Skips (or under CI fails) a test that cannot reach the engine: `require_engine!();` at
/// the top of a test (the test file declares `#[macro_use] mod common;`).
#[allow(unused_macros)] // each test file uses one of the two
macro_rules! require_engine {
    () => {
        if !$crate::common::require_engine() {
            return;
        }
    };
}

/// Skips (or under CI fails) a test that cannot use the Grid Engine cell:
/// `require_cell!();` at the top of a test (see [`cell`]).
#[allow(unused_macros)]
macro_rules! require_cell {
    () => {
        if !$crate::common::cell::require_cell() {
            return;
        }
    };
}

/// Skips (or under CI fails) a test that needs the mixed cell's Podman host
/// ([`hosts::PODMAN_HOST`]).
#[allow(unused_macros)]
macro_rules! require_podman_host {
    () => {
        if !$crate::common::hosts::require_podman_host() {
            return;
        }
    };
}

pub mod cell;
pub mod engine;
pub mod hosts;
pub mod private_engine;
pub mod pty;
pub mod registry;
pub mod shepherd;

/// The test image: `FROM scratch` + static busybox, with `/qdock-image-marker` and
/// `/etc/os-release` `ID=qdock-busybox`.
pub const IMAGE: &str = "qdock/busybox:1";
/// A file only the test image has: its absence proves a job ran natively.
pub const IMAGE_MARKER: &str = "/qdock-image-marker";
/// Stands for Grid Engine's per-job supplementary group (from `gid_range`, 65400-65500 on
/// the test cell), but lies outside that range on purpose: when a Grid Engine job ends,
/// execd SIGKILLs every process carrying the job's group, so test processes holding 65400
/// died whenever a real job with that group ended meanwhile (tests/gridengine.rs).
pub const JOB_GROUP: u32 = 65390;
/// Root of everything the harness creates outside home directories and /tmp.
pub const TEST_ROOT: &str = "/var/lib/qdock-test";
/// The helper the starter mounts into every container to open the job's output pipes.
pub const STDIO_HELPER: &str = "qdock-stdio";
/// Where the starters make the job's output pipes (`bin/install` creates it).
pub const STDIO_DIR: &str = "/var/lib/qdock/stdio";
/// The config the installed (setgid) binaries read.
pub const SYSTEM_CONFIG: &str = "/etc/qdock/qdock.toml";
/// How long [`Job::run`] waits before it kills the starter and fails the test.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// An ordinary user the tests run jobs as (created by `bin/setup-cluster`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

impl User {
    pub fn home(&self) -> PathBuf {
        if self.uid == 0 {
            "/root".into()
        } else {
            Path::new("/home").join(self.name)
        }
    }
}

pub const ALICE: User = User {
    name: "alice",
    uid: 2001,
    gid: 2001,
};
pub const BOB: User = User {
    name: "bob",
    uid: 2002,
    gid: 2002,
};
pub const ROOT: User = User {
    name: "root",
    uid: 0,
    gid: 0,
};

/// How a qdock binary is run; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The setgid `root:docker` copy, as the user, reading only `/etc/qdock/qdock.toml`.
    Installed,
    /// The cargo binary, as the user plus the docker group, with `QDOCK_CONFIG` = this path.
    /// The file must sit in a root-owned directory nobody else may write
    /// ([`Job::write_config`] makes one).
    Config(PathBuf),
    /// The cargo binary as root (no `setpriv`), with `QDOCK_CONFIG` when given.
    Root(Option<PathBuf>),
}

// ---------------------------------------------------------------------------------------------
// Prerequisites

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

pub fn check_prerequisites() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the integration tests must run as root".into());
    }
    // An engine that is just (re)starting gets a few seconds to answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = docker_command()
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
        if info.status.success() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the {:?} engine is not reachable (docker info: {}){}",
                engine::test_engine(),
                String::from_utf8_lossy(&info.stderr).trim(),
                if engine::podman() {
                    "; bin/setup-cluster --engine podman starts it"
                } else {
                    ""
                }
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let image = docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    if !image.status.success() {
        return Err(format!(
            "the test image {IMAGE} is missing; build it (examples/images, bin/test does)"
        ));
    }
    for user in [ALICE, BOB] {
        match nix::unistd::User::from_name(user.name) {
            Ok(Some(u)) if u.uid.as_raw() == user.uid && u.gid.as_raw() == user.gid => {}
            Ok(Some(u)) => {
                return Err(format!(
                    "user {} has uid {} gid {}, the tests expect {} {}",
                    user.name, u.uid, u.gid, user.uid, user.gid
                ));
            }
            _ => {
                return Err(format!(
                    "user {} (uid {}) does not exist; bin/setup-cluster creates it",
                    user.name, user.uid
                ));
            }
        }
    }
    for tool in ["/usr/bin/setpriv", "/usr/bin/prlimit"] {
        if !Path::new(tool).exists() {
            return Err(format!("{tool} is missing (Debian package util-linux)"));
        }
    }
    if docker_gid().is_none() {
        return Err("there is no docker group".into());
    }
    if !Path::new(SYSTEM_CONFIG).is_file() {
        return Err(format!(
            "{SYSTEM_CONFIG} is missing; bin/install puts it there"
        ));
    }
    if !Path::new(STDIO_DIR).is_dir() {
        return Err(format!("{STDIO_DIR} is missing; bin/install creates it"));
    }
    Ok(())
}

/// True when the engine, the test image, the users and the tools are all there. Otherwise
/// prints why and returns false (skip the test), or panics under `CI=true`, where a test
/// that cannot run must fail rather than pass unseen.
pub fn require_engine() -> bool {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    prerequisites_met(&CHECKED, check_prerequisites)
}

/// Runs `check` once per process (`once` keeps its verdict) and says whether the test may
/// run; see [`require_engine`].
pub fn prerequisites_met(
    once: &OnceLock<Result<(), String>>,
    check: impl FnOnce() -> Result<(), String>,
) -> bool {
    let checked = once.get_or_init(|| {
        let checked = check();
        if let Err(reason) = &checked {
            // Straight to fd 2, past libtest's capture: a skip must not pass unseen.
            let _ = writeln!(
                std::io::stderr(),
                "qdock integration tests cannot run: {reason}"
            );
        }
        checked
    });
    match checked {
        Ok(()) => true,
        Err(reason) if under_ci() => panic!("CI=true and the test cannot run: {reason}"),
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            false
        }
    }
}

/// The docker group's gid, the key the setgid binaries hold.
pub fn docker_gid() -> Option<u32> {
    static GID: OnceLock<Option<u32>> = OnceLock::new();
    *GID.get_or_init(|| {
        nix::unistd::Group::from_name("docker")
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    })
}

// ---------------------------------------------------------------------------------------------
// Binaries

/// The directory cargo built the package's binaries into.
fn cargo_bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_qdock-starter"))
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

/// A cargo-built binary of this package, e.g. `cargo_bin("qdock-suspend")`.
pub fn cargo_bin(name: &str) -> PathBuf {
    let path = cargo_bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} does not exist; is {name} a [[bin]] of the package?",
        path.display()
    );
    path
}

fn is_qdock_binary(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (name == "qdock" || name.starts_with("qdock-"))
        && !name.contains('.')
        && fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `/var/lib/qdock-test/bin-<pid>/`: this process's setgid copies of every qdock binary.
pub fn installed_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = test_root().join(format!("bin-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        set_owner_mode(&dir, 0, 0, 0o755);
        let docker = docker_gid().expect("a docker group");
        for entry in fs::read_dir(cargo_bin_dir()).expect("read the cargo bin dir") {
            let source = entry.expect("dir entry").path();
            if !is_qdock_binary(&source) {
                continue;
            }
            let target = dir.join(source.file_name().expect("a file name"));
            fs::copy(&source, &target).unwrap_or_else(|e| {
                panic!("copy {} to {}: {e}", source.display(), target.display())
            });
            // chown clears the setgid bit, so the mode comes after it. The output helper runs
            // the job's command: it holds no privilege (the starter refuses it otherwise).
            match source.file_name().and_then(|n| n.to_str()) {
                Some(STDIO_HELPER) => set_owner_mode(&target, 0, 0, 0o755),
                _ => set_owner_mode(&target, 0, docker, 0o2755),
            }
        }
        dir
    })
}

/// The installed (setgid) copy of a binary, e.g. `installed_bin("qdock-starter")`.
pub fn installed_bin(name: &str) -> PathBuf {
    let path = installed_dir().join(name);
    assert!(path.is_file(), "{} was not installed", path.display());
    path
}

// ---------------------------------------------------------------------------------------------
// Directories

/// `/var/lib/qdock-test`, root-owned, mode 0755 (configs below it must be trusted).
pub fn test_root() -> &'static Path {
    static ROOT_DIR: OnceLock<PathBuf> = OnceLock::new();
    ROOT_DIR.get_or_init(|| {
        let root = PathBuf::from(TEST_ROOT);
        fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {TEST_ROOT}: {e}"));
        set_owner_mode(&root, 0, 0, 0o755);
        remove_dead_process_dirs(&root, &["bin-", "job-", "engine-"]);
        for home in [ALICE.home(), BOB.home()] {
            remove_dead_process_dirs(&home, &["qdock-test-"]);
        }
        remove_dead_process_dirs(Path::new("/tmp"), &["qdock-test-"]);
        root
    })
}

/// Removes the entries of `dir` named `<prefix><pid>…` whose test process is gone (failed
/// tests keep theirs for inspection; the next run clears them).
fn remove_dead_process_dirs(dir: &Path, prefixes: &[&str]) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = prefixes
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .and_then(|rest| rest.split(['-', '.']).next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: u32) {
    chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {uid}:{gid} {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// Creates `path` (and its parents) and sets its owner and mode.
pub fn make_dir(path: &Path, uid: u32, gid: u32, mode: u32) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    set_owner_mode(path, uid, gid, mode);
}

/// Writes a file and sets its owner and mode.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>, uid: u32, gid: u32, mode: u32) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_owner_mode(path, uid, gid, mode);
}

// ---------------------------------------------------------------------------------------------
// The execd spool

/// The execd spool directory the installed config names (qdock's default).
pub const EXECD_SPOOL: &str = "/var/spool/gridengine/execd";

/// This host's directory in the execd spool: the only one with `active_jobs`, as qdock
/// finds it.
pub fn spool_host_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let hosts: Vec<PathBuf> = fs::read_dir(EXECD_SPOOL)
            .unwrap_or_else(|e| panic!("read {EXECD_SPOOL}: {e} (bin/setup-cluster makes it)"))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("active_jobs").is_dir())
            .collect();
        match hosts.as_slice() {
            [only] => {
                remove_dead_test_entries(&only.join("active_jobs"));
                only.clone()
            }
            _ => panic!("expected one host directory in {EXECD_SPOOL}, found {hosts:?}"),
        }
    })
}

/// Removes the spool entries that test processes now gone left behind: only test job ids
/// (see [`unique_job_id`]), never Grid Engine's.
fn remove_dead_test_entries(active_jobs: &Path) {
    let Ok(entries) = fs::read_dir(active_jobs) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.split('.').next().and_then(|j| j.parse::<u64>().ok()) else {
            continue;
        };
        let pid = (id >= 1_000_000_000).then(|| (id - 1_000_000_000) / 1000);
        if let Some(pid) = pid
            && pid != u64::from(std::process::id()) % 1_000_000
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The Grid Engine admin user, who owns the spool.
pub fn spool_owner() -> (u32, u32) {
    let meta = fs::metadata(EXECD_SPOOL).expect("the execd spool");
    use std::os::unix::fs::MetadataExt;
    (meta.uid(), meta.gid())
}

// ---------------------------------------------------------------------------------------------
// Jobs

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A job id no other test (in this or a concurrent test process) uses: 1 000 000 000 +
/// (pid mod 1 000 000) × 1000 + a per-process counter.
fn unique_job_id() -> (u64, u64) {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    assert!(n < 1000, "more than 999 jobs in one test process");
    let pid = u64::from(std::process::id());
    (1_000_000_000 + (pid % 1_000_000) * 1000 + n, n)
}

/// One Grid Engine job (or one array task) and everything around it: its script in a
/// spool directory, its working directory, its TMPDIR, its environment and its container.
pub struct Job {
    pub id: u64,
    /// The job's additional group (Grid Engine's `gid_range`), held by its processes and
    /// recorded in its spool entry; [`JOB_GROUP`] unless a test chooses another.
    pub group: u32,
    /// `Some(n)` for task n of an array job; `None` for an ordinary job (`SGE_TASK_ID=undefined`).
    pub task: Option<u64>,
    pub user: User,
    pub mode: Mode,
    /// `Some` sets `IMAGE`; `None` leaves it unset (the job runs natively).
    pub image: Option<String>,
    pub script: Vec<u8>,
    pub args: Vec<OsString>,
    /// Extra variables, set after (so overriding) the Grid Engine ones.
    pub env: Vec<(String, String)>,
    /// The starter's rlimits as `prlimit` options (`--as=300:300`), as Grid Engine's `-l`
    /// limits and the shepherd's own arrive.
    pub rlimits: Vec<String>,
    pub cell: String,
    pub nslots: u32,
    /// Root-owned `/var/lib/qdock-test/job-<pid>-<n>/`: spool and configs.
    pub dir: PathBuf,
    /// Where the script lives, like execd's `job_scripts/<job_id>`.
    pub script_path: PathBuf,
    /// The job's working directory, owned by the user.
    pub cwd: PathBuf,
    /// The job's TMPDIR, owned by the user.
    pub tmpdir: PathBuf,
}

impl Job {
    /// A job of [`ALICE`] running `script` with `/bin/sh` in [`IMAGE`], [`Mode::Installed`].
    pub fn new(script: impl Into<Vec<u8>>) -> Job {
        let (id, n) = unique_job_id();
        let pid = std::process::id();
        let dir = test_root().join(format!("job-{pid}-{n}"));
        make_dir(&dir.join("job_scripts"), 0, 0, 0o755);
        set_owner_mode(&dir, 0, 0, 0o755);
        let mut job = Job {
            id,
            group: JOB_GROUP,
            task: None,
            user: ALICE,
            mode: Mode::Installed,
            image: Some(IMAGE.into()),
            script: script.into(),
            args: Vec::new(),
            env: Vec::new(),
            rlimits: Vec::new(),
            cell: "default".into(),
            nslots: 1,
            script_path: dir.join("job_scripts").join(id.to_string()),
            cwd: PathBuf::new(),
            tmpdir: PathBuf::new(),
            dir,
        };
        job.make_user_dirs();
        job
    }

    fn make_user_dirs(&mut self) {
        let _ = fs::remove_dir_all(&self.cwd);
        let _ = fs::remove_dir_all(&self.tmpdir);
        let tag = format!("qdock-test-{}-{}", std::process::id(), self.id % 1000);
        self.cwd = self.user.home().join(&tag);
        // Grid Engine's is /tmp/<job>.<task>.<queue>; the prefix lets later runs clean up.
        self.tmpdir = PathBuf::from(format!("/tmp/{tag}.{}.all.q", self.task.unwrap_or(1)));
        // A directory of the same name may be left from a dead test process with our pid.
        let _ = fs::remove_dir_all(&self.cwd);
        let _ = fs::remove_dir_all(&self.tmpdir);
        make_dir(&self.cwd, self.user.uid, self.user.gid, 0o755);
        make_dir(&self.tmpdir, self.user.uid, self.user.gid, 0o700);
        self.write_spool_entry();
    }

    /// `<spool>/<host>/active_jobs/<job>.<task>/`, as the execd names it (task 1 for a job
    /// that is no array).
    pub fn spool_entry(&self) -> PathBuf {
        spool_host_dir()
            .join("active_jobs")
            .join(format!("{}.{}", self.id, self.task.unwrap_or(1)))
    }

    /// Writes the job's spool entry as the execd does: owned by the admin user, world-readable.
    fn write_spool_entry(&self) {
        let dir = self.spool_entry();
        let _ = fs::remove_dir_all(&dir);
        let (uid, gid) = spool_owner();
        make_dir(&dir, uid, gid, 0o755);
        write_file(
            &dir.join("addgrpid"),
            format!("{}\n", self.group),
            uid,
            gid,
            0o644,
        );
        let mut config = format!(
            "job_owner={}\ntmpdir={}\nqueue=all.q\nscript_file={}\n",
            self.user.name,
            self.tmpdir.display(),
            self.script_path.display()
        );
        // A test cell is stated as Open Cluster Scheduler's execd states it; without it the
        // cell is the config's (`default`), as on 8.1.9.
        if self.cell != "default" {
            config += &format!("sge_cell={}\n", self.cell);
        }
        write_file(&dir.join("config"), config, uid, gid, 0o644);
    }

    /// Each start of a job is a run of its own: the execd writes a new `addgrpid` for it (a
    /// requeued job gets a new entry), and qdock lets only a run's first starter act
    /// (src/run_mark.rs). A new modification time makes a new run; what a test did to the
    /// entry (removed it, changed its group or mode) stays.
    fn new_run(&self) {
        if let Ok(addgrpid) = fs::File::options()
            .write(true)
            .open(self.spool_entry().join("addgrpid"))
        {
            addgrpid
                .set_modified(std::time::SystemTime::now())
                .expect("a new run of the job's spool entry");
        }
    }

    /// Grants the job `n` (at most 9) of the consumable `gpu` per slot, as the execd records a
    /// `qsub -l gpu=n` job: its packed copy of the job in `<spool>/<host>/jobs/…` (see
    /// src/packed_job.rs), made from one this cell's execd wrote (job 2651, `-l gpu=2`) with
    /// the job number and the amount replaced. Removed with the spool entry.
    pub fn granted_gpus(self, n: u32) -> Job {
        const SPOOLED: &[u8] = include_bytes!("../data/packed-job-gpu2");
        // `gpu`, no shortcut, an INT, "2", 2.0: the request, once in the file.
        const REQUEST: &[u8] = b"gpu\0\0\0\0\0\x01\x32\0\x40\0\0\0\0\0\0\0";
        assert!(n <= 9, "granted_gpus takes 0 to 9");
        let mut packed = SPOOLED.to_vec();
        assert_eq!(
            packed[27..31],
            2651u32.to_be_bytes(),
            "the fixture's job number"
        );
        let id = u32::try_from(self.id).expect("a job id Grid Engine could give");
        packed[27..31].copy_from_slice(&id.to_be_bytes());
        let at = packed
            .windows(REQUEST.len())
            .position(|w| w == REQUEST)
            .expect("the fixture's gpu request");
        packed[at + 9] = b'0' + n as u8;
        packed[at + 11..at + 19].copy_from_slice(&f64::from(n).to_be_bytes());
        let path = self.packed_job_path();
        let (uid, gid) = spool_owner();
        for dir in path
            .ancestors()
            .skip(1)
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if !dir.exists() {
                make_dir(dir, uid, gid, 0o755);
            }
        }
        write_file(&path, packed, uid, gid, 0o644);
        self
    }

    /// Where the execd keeps its packed copy of the job (src/job_proof.rs).
    pub fn packed_job_path(&self) -> PathBuf {
        let id = self.id;
        spool_host_dir().join("jobs").join(format!(
            "{:02}/{:04}/{:04}.{}",
            (id / 100_000_000) % 10_000,
            (id / 10_000) % 10_000,
            id % 10_000,
            self.task.unwrap_or(1)
        ))
    }

    /// Runs the job in another cell, which its spool entry states (see
    /// [`Job::write_spool_entry`]).
    pub fn cell(mut self, cell: &str) -> Job {
        self.cell = cell.into();
        self.write_spool_entry();
        self
    }

    /// Gives the job another additional group (rewrites its spool entry).
    pub fn group(mut self, group: u32) -> Job {
        self.group = group;
        self.write_spool_entry();
        self
    }

    /// Runs as another user (recreates the working directory and TMPDIR for them).
    pub fn user(mut self, user: User) -> Job {
        self.user = user;
        self.make_user_dirs();
        self
    }

    pub fn mode(mut self, mode: Mode) -> Job {
        self.mode = mode;
        self
    }

    /// Writes `toml` to a trusted file in the job's directory and selects [`Mode::Config`].
    pub fn with_config(self, toml: &str) -> Job {
        let path = self.write_config(toml);
        self.mode(Mode::Config(path))
    }

    /// Writes `toml` to `<job dir>/qdock.toml` (root-owned, 0644) and returns its path. It
    /// names the engine under test (see [`engine::config_for_engine`]).
    pub fn write_config(&self, toml: &str) -> PathBuf {
        let path = self.dir.join("qdock.toml");
        write_file(&path, engine::config_for_engine(toml), 0, 0, 0o644);
        path
    }

    /// Asks for `image` (`IMAGE=image`); `""` sets an empty `IMAGE`.
    pub fn image(mut self, image: &str) -> Job {
        self.image = Some(image.into());
        self
    }

    /// Leaves `IMAGE` unset: the job runs natively.
    pub fn native(mut self) -> Job {
        self.image = None;
        self
    }

    /// Makes this task `task` of an array job.
    pub fn task(mut self, task: u64) -> Job {
        self.task = Some(task);
        self.make_user_dirs();
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Job {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Job {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Limits the starter's address space as `-l h_vmem=bytes` would.
    pub fn rlimit_as(self, bytes: u64) -> Job {
        self.rlimit("as", bytes, bytes)
    }

    /// Sets the starter's `resource` limit (a `prlimit` option name: `fsize`, `nofile` …).
    pub fn rlimit(mut self, resource: &str, soft: u64, hard: u64) -> Job {
        self.rlimits.push(format!("--{resource}={soft}:{hard}"));
        self
    }

    /// `qdock-<cell>-<job>-<task>`, task 0 for a non-array job.
    pub fn container_name(&self) -> String {
        format!("qdock-{}-{}-{}", self.cell, self.id, self.task.unwrap_or(0))
    }

    /// A path in the job's working directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.cwd.join(name)
    }

    /// The user the binary runs as, which is root in [`Mode::Root`].
    pub fn runs_as(&self) -> User {
        match self.mode {
            Mode::Root(_) => ROOT,
            _ => self.user,
        }
    }

    /// The environment execd gives a job (then `IMAGE` and [`Job::env`]).
    pub fn environment(&self) -> Vec<(String, String)> {
        let who = self.runs_as();
        let mut env: Vec<(String, String)> = [
            ("JOB_ID", self.id.to_string()),
            (
                "SGE_TASK_ID",
                self.task.map_or("undefined".into(), |t| t.to_string()),
            ),
            ("SGE_CELL", self.cell.clone()),
            ("SGE_ROOT", "/var/lib/gridengine".into()),
            ("QUEUE", "all.q".into()),
            ("JOB_NAME", format!("qdock-test-{}", self.id)),
            ("NSLOTS", self.nslots.to_string()),
            ("HOME", who.home().display().to_string()),
            ("USER", who.name.into()),
            ("LOGNAME", who.name.into()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
            ("TMPDIR", self.tmpdir.display().to_string()),
            ("SGE_STARTER_SHELL_PATH", "/bin/sh".into()),
            ("SGE_STARTER_SHELL_START_MODE", "posix_compliant".into()),
            ("SGE_STARTER_USE_LOGIN_SHELL", "false".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(image) = &self.image {
            env.push(("IMAGE".into(), image.clone()));
        }
        if let Mode::Config(path) | Mode::Root(Some(path)) = &self.mode {
            env.push(("QDOCK_CONFIG".into(), path.display().to_string()));
        }
        env.extend(self.env.iter().cloned());
        env
    }

    /// The command that runs qdock binary `name` with `args` for this job: the right binary
    /// for the mode, as the right user, in the job's cwd and environment, in a new process
    /// group (as Grid Engine's shepherd starts a job).
    pub fn command(&self, name: &str, args: &[OsString]) -> Command {
        if name == "qdock-starter" {
            self.new_run();
        }
        let binary = match self.mode {
            Mode::Installed => installed_bin(name),
            Mode::Config(_) | Mode::Root(_) => cargo_bin(name),
        };
        self.command_for(binary, args)
    }

    /// The command that runs `program` with `args` as qdock's binaries run for this job: the
    /// same user, groups, limits, cwd, environment and process group. `program` is any
    /// program: what a job sees without qdock.
    /// Under Podman it sees [`engine::system_config`] as `/etc/qdock/qdock.toml`.
    pub fn command_for(&self, program: impl Into<OsString>, args: &[OsString]) -> Command {
        let mut argv: Vec<OsString> = Vec::new();
        if !self.rlimits.is_empty() {
            argv.push("/usr/bin/prlimit".into());
            argv.extend(self.rlimits.iter().map(OsString::from));
            argv.push("--".into());
        }
        if !matches!(self.mode, Mode::Root(_)) {
            let mut groups = format!("{},{}", self.user.gid, self.group);
            if matches!(self.mode, Mode::Config(_)) {
                groups += &format!(",{}", docker_gid().expect("a docker group"));
            }
            argv.extend(
                [
                    "/usr/bin/setpriv".to_string(),
                    format!("--reuid={}", self.user.uid),
                    format!("--regid={}", self.user.gid),
                    format!("--groups={groups}"),
                    "--inh-caps=-all".into(),
                    "--".into(),
                ]
                .map(OsString::from),
            );
        }
        argv.push(program.into());
        argv.extend(args.iter().cloned());
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env_clear()
            .envs(self.environment())
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .process_group(0);
        engine::seeing_system_config(&mut command);
        command
    }

    /// Writes the job script to its spool path (root-owned, as the execd does).
    pub fn write_script(&self) {
        write_file(&self.script_path, &self.script, 0, 0, 0o755);
    }

    /// Starts `qdock-starter SCRIPT ARGS…` in the background.
    pub fn spawn(&self) -> Running {
        self.write_script();
        // script_from_stdin: the shepherd hands a starter `-s` and the script as its stdin,
        // as it would the shell (`builtin_starter.c`).
        let on_stdin = self
            .env
            .iter()
            .any(|(k, v)| k == "SGE_STARTER_SHELL_START_MODE" && v == "script_from_stdin");
        let mut argv = vec![if on_stdin {
            "-s".into()
        } else {
            self.script_path.clone().into_os_string()
        }];
        argv.extend(self.args.iter().cloned());
        let mut command = self.command("qdock-starter", &argv);
        if on_stdin {
            let script = fs::File::open(&self.script_path).expect("open the job script");
            command.stdin(script);
        }
        Running::spawn(command, self.describe())
    }

    /// Runs the starter to its end (at most [`DEFAULT_TIMEOUT`]).
    pub fn run(&self) -> Outcome {
        self.spawn().wait(DEFAULT_TIMEOUT)
    }

    /// Runs the starter and fails unless it exited with `code` and left no container.
    pub fn run_expecting(&self, code: i32) -> Outcome {
        let out = self.run();
        out.assert_code(code);
        self.assert_no_container();
        out
    }

    /// Runs the starter and fails unless it exited 0 and left no container.
    pub fn run_ok(&self) -> Outcome {
        self.run_expecting(0)
    }

    /// Runs the starter and fails unless it exited with `code`, wrote exactly `stdout` and
    /// left no container.
    pub fn expect(&self, code: i32, stdout: &str) -> Outcome {
        let out = self.run_expecting(code);
        out.assert_stdout(stdout);
        out
    }

    /// The refusal contract: `out` exited with `code`, with exactly one `qdock:` line, which
    /// contains every one of `needles`, nothing on stdout and no container.
    pub fn assert_refused(&self, out: &Outcome, code: i32, needles: &[&str]) {
        out.assert_code(code);
        assert_eq!(
            out.qdock_lines().len(),
            1,
            "expected exactly one qdock: line\n{out:?}"
        );
        out.assert_qdock_line(needles);
        assert!(out.stdout.is_empty(), "stdout: {out:?}");
        self.assert_no_container();
    }

    /// Runs the starter and fails unless it kept [`Job::assert_refused`]'s contract.
    pub fn expect_refusal(&self, code: i32, needles: &[&str]) -> Outcome {
        let out = self.run();
        self.assert_refused(&out, code, needles);
        out
    }

    /// Creates (does not start) a container under this job's name, as a crashed node leaves
    /// one, labelled `qdock.owner-uid=<owner's uid>` and with `labels` (`key=value`).
    /// Returns its name.
    pub fn create_leftover(&self, owner: User, labels: &[&str]) -> String {
        let name = self.container_name();
        let owner_label = format!("qdock.owner-uid={}", owner.uid);
        let mut args = vec!["create", "--name", &name, "--label", &owner_label];
        for label in labels {
            args.extend(["--label", label]);
        }
        args.extend([IMAGE, "true"]);
        docker_text(&args);
        name
    }

    /// Runs another qdock binary (`qdock-suspend` …) for this job, e.g. with
    /// `["<job id>", "<task>", "<pid>"]`, to its end.
    pub fn run_method(&self, name: &str, args: &[&str], timeout: Duration) -> Outcome {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        Running::spawn(
            self.command(name, &args),
            format!("{name} {args:?} for {}", self.describe()),
        )
        .wait(timeout)
    }

    /// Runs a control method the way the queue's method line does:
    /// `NAME $job_id $ja_task_id $job_pid` (`job_pid` is the starter's pid).
    pub fn method(&self, name: &str, job_pid: i32) -> Outcome {
        let task = self.task.unwrap_or(0).to_string();
        self.run_method(
            name,
            &[&self.id.to_string(), &task, &job_pid.to_string()],
            DEFAULT_TIMEOUT,
        )
    }

    /// Waits until the job's container runs; panics after `timeout`.
    pub fn wait_for_container(&self, timeout: Duration) {
        wait_until(
            &format!("container {} runs", self.container_name()),
            timeout,
            || self.container_running(),
        );
    }

    fn describe(&self) -> String {
        format!(
            "job {} ({}, {:?}, image {:?})",
            self.container_name(),
            self.runs_as().name,
            self.mode,
            self.image
        )
    }

    /// True when a container with this job's name exists (running or not).
    pub fn container_exists(&self) -> bool {
        container_exists(&self.container_name())
    }

    /// True when this job's container is running.
    pub fn container_running(&self) -> bool {
        container_running(&self.container_name())
    }

    /// Fails the test if the job's container is still there.
    pub fn assert_no_container(&self) {
        let name = self.container_name();
        assert!(
            !container_exists(&name),
            "container {name} was left behind: {}",
            docker_text(&["ps", "-a", "--filter", &name_filter(&name)])
        );
    }

    /// The job's pipes' directories in [`STDIO_DIR`] (`<container>.…`): a starter has one
    /// from making its pipes until its container has started.
    pub fn pipes_dirs(&self) -> Vec<PathBuf> {
        let prefix = format!("{}.", self.container_name());
        // Never panics: Drop calls it too.
        let mut dirs: Vec<PathBuf> = fs::read_dir(STDIO_DIR)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        dirs.sort();
        dirs
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.spool_entry());
        let _ = fs::remove_file(self.packed_job_path());
        let name = self.container_name();
        if remove_container(&name) && !std::thread::panicking() {
            eprintln!("harness: removed container {name}, which the test left behind");
        }
        // Its starters are dead by now (a Running kills its group when dropped, before the
        // Job it was spawned for).
        for dir in self.pipes_dirs() {
            if fs::remove_dir_all(&dir).is_ok() && !std::thread::panicking() {
                eprintln!(
                    "harness: removed {}, which the test left behind",
                    dir.display()
                );
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "harness: kept {}, {} and {} for inspection",
                self.dir.display(),
                self.cwd.display(),
                self.tmpdir.display()
            );
            return;
        }
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(&self.cwd);
        let _ = fs::remove_dir_all(&self.tmpdir);
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A qdock binary running in the background. Its output is collected as it arrives;
/// dropping it kills its process group.
pub struct Running {
    child: Option<Child>,
    pub pid: i32,
    started: Instant,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    what: String,
}

fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

impl Running {
    /// Spawns `command` with stdout and stderr captured.
    pub fn spawn(mut command: Command, what: String) -> Running {
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        Running::collecting(child, what)
    }

    /// Collects the child's stdout and stderr where they are piped.
    fn collecting(mut child: Child, what: String) -> Running {
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(piped) = child.stdout.take() {
            readers.push(collect(piped, stdout.clone()));
        }
        if let Some(piped) = child.stderr.take() {
            readers.push(collect(piped, stderr.clone()));
        }
        Running {
            pid: i32::try_from(child.id()).expect("pid fits i32"),
            child: Some(child),
            started: Instant::now(),
            stdout,
            stderr,
            readers,
            what,
        }
    }

    /// Like [`Running::spawn`], but the process's stderr is a pipe already full: its first
    /// write to stderr blocks until [`StderrGate::open`]. The starter writes its first line
    /// right after it created the container and before it starts it, so a test can act in
    /// between, as an attacker holding the pipe can.
    pub fn spawn_with_stderr_blocked(mut command: Command, what: String) -> (Running, StderrGate) {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        fill_pipe(&write);
        command.stdout(Stdio::piped()).stderr(Stdio::from(write));
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        // The parent's copy of the write end goes with the Command.
        drop(command);
        let running = Running::collecting(child, what);
        (running, StderrGate(fs::File::from(read)))
    }

    /// Sends `signal` to the process (the starter itself).
    pub fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), signal)
            .unwrap_or_else(|e| panic!("kill -{signal} {}: {e}", self.pid));
    }

    /// Sends `signal` to the process group, as Grid Engine's `-notify` does.
    pub fn signal_group(&self, signal: Signal) {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pid), signal)
            .unwrap_or_else(|e| panic!("kill -{signal} -{}: {e}", self.pid));
    }

    /// The stdout collected so far.
    pub fn stdout_so_far(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    /// The stderr collected so far.
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// What the process wrote so far, for a failure's message.
    fn transcript(&self) -> String {
        format!(
            "stdout: {:?}\nstderr: {}",
            abbreviate(&self.stdout_so_far()),
            self.stderr_so_far()
        )
    }

    /// True once the process has exited (it is then reaped by [`Running::wait`]).
    pub fn has_exited(&mut self) -> bool {
        let child = self.child.as_mut().expect("not yet waited for");
        matches!(child.try_wait(), Ok(Some(_)))
    }

    /// Polls `condition` (given this process) every 20 ms for at most `timeout`. Fails the
    /// test, with what the process wrote, on timeout or when the process ends first.
    /// Returns how long it took.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&Running) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if condition(self) {
                return start.elapsed();
            }
            let exited = self.has_exited();
            if exited || start.elapsed() >= timeout {
                let why = if exited {
                    "it ended first".to_string()
                } else {
                    format!("timed out after {timeout:?}")
                };
                panic!(
                    "{} while waiting until {what}: {why}\n{}",
                    self.what,
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits at most `timeout` for the exit; on timeout kills the process group and panics
    /// with what the process wrote.
    pub fn wait(mut self, timeout: Duration) -> Outcome {
        let mut child = self.child.take().expect("waited for once");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ =
                    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pid), Signal::SIGKILL);
                let _ = child.wait();
                panic!(
                    "{} did not end within {timeout:?}; killed it.\n{}",
                    self.what,
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        // A process left behind by a native job may hold the pipes: do not wait for it long.
        let readers_deadline = Instant::now() + Duration::from_secs(5);
        for reader in std::mem::take(&mut self.readers) {
            while !reader.is_finished() && Instant::now() < readers_deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        let stderr_raw = self.stderr.lock().unwrap().clone();
        Outcome {
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: String::from_utf8_lossy(&stderr_raw).into_owned(),
            stderr_raw,
            status,
            elapsed,
            what: self.what.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pid), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// How a run ended and what it wrote.
pub struct Outcome {
    pub stdout: Vec<u8>,
    /// stderr, lossily decoded; qdock's own lines start with `qdock:`.
    pub stderr: String,
    pub stderr_raw: Vec<u8>,
    pub status: ExitStatus,
    pub elapsed: Duration,
    what: String,
}

impl Outcome {
    /// The exit code, or 128+N when the process itself died of signal N (as a shell reports).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .or_else(|| self.status.signal().map(|s| 128 + s))
            .expect("exit code or signal")
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// qdock's own stderr lines (`qdock: …`).
    pub fn qdock_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("qdock:"))
            .collect()
    }

    /// The job's stderr: everything but qdock's own lines.
    pub fn job_stderr(&self) -> String {
        self.stderr
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("qdock:"))
            .collect()
    }

    /// Fails with the whole story unless the process exited with code `expected` (a
    /// process killed by a signal never passes, whatever 128+N makes).
    pub fn assert_code(&self, expected: i32) -> &Outcome {
        assert_eq!(
            self.status.code(),
            Some(expected),
            "exit code of {}\n{self:?}",
            self.what
        );
        self
    }

    /// Fails unless the process died of `signal` itself (as a shell reports 128+N); an
    /// exit with code 128+N does not pass.
    pub fn assert_killed_by(&self, signal: Signal) -> &Outcome {
        assert_eq!(
            (self.status.code(), self.status.signal()),
            (None, Some(signal as i32)),
            "{} should have died of {signal}\n{self:?}",
            self.what
        );
        self
    }

    /// Fails unless stdout is exactly `expected`, byte for byte.
    pub fn assert_stdout(&self, expected: &str) -> &Outcome {
        assert!(
            self.stdout == expected.as_bytes(),
            "stdout of {}: expected {expected:?}\n{self:?}",
            self.what
        );
        self
    }

    /// Fails unless some `qdock:` line contains every one of `needles`.
    pub fn assert_qdock_line(&self, needles: &[&str]) -> &Outcome {
        assert!(
            self.qdock_lines()
                .iter()
                .any(|l| needles.iter().all(|n| l.contains(n))),
            "no qdock: line with {needles:?}\n{self:?}"
        );
        self
    }
}

fn abbreviate(bytes: &[u8]) -> String {
    const SHOWN: usize = 2000;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN)]).into_owned();
    if bytes.len() > SHOWN {
        format!("{text}… ({} bytes in all)", bytes.len())
    } else {
        text
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "status: {:?} after {:?}\nstdout: {:?}\nstderr:\n{}",
            self.status,
            self.elapsed,
            abbreviate(&self.stdout),
            self.stderr
        )
    }
}

/// The read end of a full stderr pipe (see [`Running::spawn_with_stderr_blocked`]).
pub struct StderrGate(fs::File);

impl StderrGate {
    /// Drains the pipe from now on, into `running`'s stderr: the blocked write completes.
    pub fn open(self, running: &mut Running) {
        let mut pipe = self.0;
        // What filled the pipe is not the process's output: skip it.
        let mut filler = vec![0u8; PIPE_FILL];
        pipe.read_exact(&mut filler).expect("drain the filler");
        running.readers.push(collect(pipe, running.stderr.clone()));
    }
}

/// Bytes written to fill a pipe (its capacity on Linux: 64 KiB).
const PIPE_FILL: usize = 64 << 10;

/// Writes exactly [`PIPE_FILL`] bytes, which fills a default pipe; fails the test if the
/// pipe took more, as then the process's writes would not block.
fn fill_pipe(write: &std::os::fd::OwnedFd) {
    use std::os::fd::AsFd;
    let mut file = fs::File::from(write.try_clone().expect("dup"));
    file.write_all(&vec![b'x'; PIPE_FILL])
        .expect("fill the pipe");
    let flags = nix::fcntl::fcntl(write.as_fd(), nix::fcntl::FcntlArg::F_GETFL).expect("getfl");
    let nonblocking = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(write.as_fd(), nix::fcntl::FcntlArg::F_SETFL(nonblocking)).expect("setfl");
    let more = nix::unistd::write(write.as_fd(), b"x");
    assert_eq!(more, Err(nix::errno::Errno::EAGAIN), "the pipe is not full");
    let blocking = nix::fcntl::OFlag::from_bits_truncate(flags);
    nix::fcntl::fcntl(write.as_fd(), nix::fcntl::FcntlArg::F_SETFL(blocking)).expect("setfl");
}

/// Polls `condition` every 20 ms for at most `timeout`; panics naming `what` on timeout.
/// Returns how long it took.
pub fn wait_until(what: &str, timeout: Duration, condition: impl FnMut() -> bool) -> Duration {
    poll_until(
        what,
        timeout,
        Duration::from_millis(20),
        condition,
        String::new,
    )
}

/// Polls `condition` every `every` for at most `timeout`; on timeout panics naming `what`,
/// with `explain()`'s words. Returns how long it took.
pub fn poll_until(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut condition: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) -> Duration {
    let start = Instant::now();
    while !condition() {
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {timeout:?} waiting until {what}\n{}",
                explain()
            );
        }
        std::thread::sleep(every);
    }
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Docker CLI

/// The docker CLI (as root), talking to the engine under test ([`engine::test_engine`]).
pub fn docker_command() -> Command {
    let mut command = Command::new("docker");
    if let Some(socket) = engine::socket() {
        command.env("DOCKER_HOST", format!("unix://{socket}"));
    }
    command
}

/// Runs the docker CLI (as root) and returns its output.
pub fn docker(args: &[&str]) -> std::process::Output {
    docker_command()
        .args(engine::docker_args(args))
        .output()
        .unwrap_or_else(|e| panic!("run docker {args:?}: {e}"))
}

/// The docker CLI's stdout, trimmed; panics when it fails.
pub fn docker_text(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `name=` filter matching exactly one container name (the filter is a regex otherwise).
pub fn name_filter(name: &str) -> String {
    format!("name=^/?{name}$")
}

pub fn container_exists(name: &str) -> bool {
    !docker_text(&["ps", "-a", "-q", "--filter", &name_filter(name)]).is_empty()
}

pub fn container_running(name: &str) -> bool {
    !docker_text(&[
        "ps",
        "-q",
        "--filter",
        &name_filter(name),
        "--filter",
        "status=running",
    ])
    .is_empty()
}

/// The container's `State.Status` (`running`, `paused` …), or None when there is none.
pub fn container_status(name: &str) -> Option<String> {
    let out = docker(&["inspect", "--format", "{{.State.Status}}", name]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `docker inspect --format FORMAT NAME`.
pub fn inspect(name: &str, format: &str) -> String {
    docker_text(&["inspect", "--format", format, name])
}

/// Force-removes a container; true when there was one. Never panics (it runs in `Drop`).
pub fn remove_container(name: &str) -> bool {
    let removed = docker_command()
        .args(["rm", "-f", name])
        .stdin(Stdio::null())
        .output();
    // The docker CLI 28 exits 0 for a missing container too, and says so on stderr.
    matches!(removed, Ok(out) if out.status.success()
        && !String::from_utf8_lossy(&out.stderr).contains("No such container"))
}

// ---------------------------------------------------------------------------------------------
// Processes of users

/// `setpriv` to `user`'s uid and gid with the supplementary groups `groups` (a `setpriv`
/// option) and no inheritable capabilities; the program's argv follows.
fn setpriv(user: User, groups: &str) -> Command {
    let mut command = Command::new("/usr/bin/setpriv");
    command
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg(groups)
        .args(["--inh-caps=-all", "--"]);
    engine::seeing_system_config(&mut command);
    command
}

/// `argv` as a process of one of `user`'s jobs: the user's group and [`JOB_GROUP`] only, no
/// capabilities, only `PATH` in the environment, in `/`, leading a process group of its own
/// (as the shepherd starts a job).
pub fn as_user(user: User, argv: &[&str]) -> Command {
    as_user_holding(user, JOB_GROUP, argv)
}

/// [`as_user`] with another job's additional group than [`JOB_GROUP`].
pub fn as_user_holding(user: User, group: u32, argv: &[&str]) -> Command {
    let mut command = setpriv(user, &format!("--groups={},{group}", user.gid));
    command
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .stdin(Stdio::null())
        .process_group(0);
    command
}

/// The state letter of /proc/PID/stat (R, S, T, Z …), None when there is no such process.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Every process of this machine but zombies (the test hosts share its process table).
pub fn live_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| proc_state(pid).is_some_and(|s| s != 'Z'))
        .collect()
}

/// The live processes holding `group` among their supplementary groups. Every process of a
/// Grid Engine job holds the job's additional group (`gid_range`), those in its container
/// too, and no process can give it to itself: these are the job's processes, wherever they
/// run.
pub fn processes_holding_group(group: u32) -> Vec<i32> {
    let group = group.to_string();
    live_pids()
        .into_iter()
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Groups:"))
                    .is_some_and(|groups| groups.split_whitespace().any(|g| g == group))
            })
        })
        .collect()
}

/// Where this machine's syslog ends now; [`syslog_since`] reads what follows. The methods
/// log there from every test host too (the hosts share /dev/log).
pub fn syslog_mark() -> u64 {
    fs::metadata(SYSLOG).map_or(0, |m| m.len())
}

/// What syslog got after `mark`.
pub fn syslog_since(mark: u64) -> String {
    let log = fs::read(SYSLOG).unwrap_or_default();
    let from = usize::try_from(mark).map_or(log.len(), |m| m.min(log.len()));
    String::from_utf8_lossy(&log[from..]).into_owned()
}

const SYSLOG: &str = "/var/log/syslog";

// ---------------------------------------------------------------------------------------------
// Holding a job until the test lets it go

/// A script line that waits until [`Job::go`]: the job stays alive (its container running)
/// exactly as long as the test needs it, however slow the machine is.
pub const UNTIL_GO: &str = "while [ ! -e go ]; do sleep 0.1; done\n";

impl Job {
    /// Lets a job waiting in [`UNTIL_GO`] go on.
    pub fn go(&self) {
        write_file(&self.file("go"), "", self.user.uid, self.user.gid, 0o644);
    }
}

/// The CPUs in the `Cpus_allowed_list` line of a `/proc/<pid>/status`, or of a job's output
/// of `grep Cpus_allowed_list /proc/self/status`.
pub fn cpus_allowed(status: &str) -> &str {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {status:?}"))
}

// ---------------------------------------------------------------------------------------------
// An independent clock

static TICKERS: AtomicU64 = AtomicU64::new(0);

/// A shell on the host, apart from every job, that counts in a file every `period`, the
/// way the tests' jobs count. When it has advanced N times, a job counting at the same pace
/// would have advanced too, unless something held it: a "nothing moved" check that waits
/// for the ticker cannot pass merely because it looked too soon.
pub struct Ticker {
    file: PathBuf,
    _shell: Running,
}

impl Ticker {
    /// Starts counting and returns after the first tick.
    pub fn start(period: Duration) -> Ticker {
        let n = TICKERS.fetch_add(1, Ordering::Relaxed);
        // /tmp/qdock-test-<pid>… is cleared by later runs should this process die.
        let file = PathBuf::from(format!("/tmp/qdock-test-{}-ticker-{n}", std::process::id()));
        let script = format!(
            "i=0\nwhile :; do\n  i=$((i+1))\n  echo $i > \"$1.tmp\"\n  mv \"$1.tmp\" \"$1\"\n  sleep {}\ndone\n",
            period.as_secs_f64()
        );
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", &script, "ticker"])
            .arg(&file)
            .stdin(Stdio::null())
            .process_group(0);
        let ticker = Ticker {
            _shell: Running::spawn(command, format!("ticker every {period:?}")),
            file,
        };
        wait_until("the ticker ticks", Duration::from_secs(10), || {
            ticker.ticks() >= 1
        });
        ticker
    }

    /// How many times it has ticked so far.
    pub fn ticks(&self) -> u64 {
        fs::read_to_string(&self.file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Fails unless `observe()` gives the same value at every look until this ticker has
    /// ticked `ticks` more times (the last look comes after the last tick). Returns the value.
    pub fn assert_unchanged<T: PartialEq + fmt::Debug>(
        &self,
        what: &str,
        ticks: u64,
        mut observe: impl FnMut() -> T,
    ) -> T {
        let first = observe();
        let until = self.ticks() + ticks;
        wait_until(
            &format!("the ticker ticks {ticks} times ({what})"),
            Duration::from_secs(60),
            || {
                let ticked = self.ticks() >= until;
                assert_eq!(observe(), first, "{what}");
                ticked
            },
        );
        first
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
    }
}

// ---------------------------------------------------------------------------------------------
// A fake engine

/// What a [`FakeEngine`] answers. Every other request it leaves unanswered for good, with the
/// connection open, like a hung dockerd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeAnswers {
    /// Nothing: a qdock binary hangs at its first request, `HEAD /_ping`, while connecting.
    Nothing,
    /// `HEAD /_ping`, with API version 1.41: a qdock binary connects, then hangs at its first
    /// request about a container.
    Ping,
}

/// A stand-in for the Docker engine on a unix socket anyone may connect to. It records the
/// request line (`METHOD PATH`) of every request it gets, so a test can prove how far a
/// client got before the engine hung.
pub struct FakeEngine {
    path: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeEngine {
    pub fn start(path: PathBuf, answers: FakeAnswers) -> FakeEngine {
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind the fake engine's socket");
        // The users run the binaries: let them connect.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut connections = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (requests, stop) = (requests.clone(), stop.clone());
                            connections.push(std::thread::spawn(move || {
                                serve(stream, answers, &requests, &stop)
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                for connection in connections {
                    let _ = connection.join();
                }
            })
        };
        FakeEngine {
            path,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// The request lines received so far, in order, e.g. `HEAD /_ping`.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until the request line `request` arrived: its client now waits for the answer.
    pub fn wait_for_request(&self, request: &str, timeout: Duration) {
        wait_until(
            &format!("the fake engine gets {request:?}"),
            timeout,
            || self.requests().iter().any(|r| r == request),
        );
    }

    /// A config whose engine is this one, with `timeout_secs`.
    pub fn config(&self, timeout_secs: u64) -> String {
        format!(
            "[engine]\nsocket = \"{}\"\ntimeout_secs = {timeout_secs}\n",
            self.path.display()
        )
    }
}

/// One connection of a [`FakeEngine`]: records each request and answers as `answers` says.
fn serve(
    mut stream: UnixStream,
    answers: FakeAnswers,
    requests: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) {
    // Reads time out now and then so that the thread notices `stop`.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        }
        // The requests qdock sends before a create carry no body: each ends at the blank line.
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            let head = String::from_utf8_lossy(&head);
            // "GET /v1.41/containers/x/json HTTP/1.1" is recorded as "GET /v1.41/containers/x/json".
            let line = head.lines().next().unwrap_or_default();
            let request = line.rsplit_once(' ').map_or(line, |(request, _)| request);
            requests.lock().unwrap().push(request.to_string());
            if answers == FakeAnswers::Ping && request == "HEAD /_ping" {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                // qdock asks for the version with `Connection: close`.
                return;
            }
        }
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}
