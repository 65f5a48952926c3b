//! The Grid Engine part of the harness (tests/gridengine.rs): jobs are submitted as [`ALICE`]
//! with the real `qsub` and observed with `qstat`, `qmod`, `qdel` and `qacct`; the scheduler
//! runs them through the installed qdock methods: bin/install's in /usr/local/bin, or the Debian
//! package's in /usr/bin (`bin/test --package`), whichever all.q names. Root only uses
//! `docker` to observe containers.
//!
//! Prerequisites (`bin/setup-cluster`, `bin/install`): those of [`require_engine`], the cell
//! `default` under /var/lib/gridengine with the qdock methods on a queue, its clients working
//! for alice. Without them [`require_cell`] skips the test with a printed reason, or fails it
//! under `CI=true`.
//!
//! Placement: the cell may have more execution hosts than this machine (`bin/setup-cluster
//! --hosts N` adds node1…nodeN, each with an engine of its own), but most tests look at the
//! local engine, so [`Case::new`] pins every `qsub` and `qrsh` to this machine's queue
//! instance ([`home_queue`]); [`Case::cluster`] leaves placement to the scheduler
//! (tests/cluster.rs).
//!
//! Isolation: each [`Case`] works in its own directory `/home/alice/qdock-e2e-<pid>-<test>/`
//! and only looks at its own job ids, so the tests run in parallel with each other (and with
//! other users of the cell). A test that makes the engine unreachable takes [`ENGINE`]
//! exclusively ([`Case::exclusive`]); every other test holds it shared. When a test ends,
//! its jobs must have left `qstat` and their containers must be gone ([`Case::assert_clean`]);
//! dropping the case deletes its leftover jobs and removes its directory (kept, and its path
//! printed, when the test failed).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{LazyLock, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::*;

pub const SGE_ROOT: &str = "/var/lib/gridengine";
pub const SGE_CELL: &str = "default";
/// `qstat`/`qacct`/`docker` polling period: the cell is shared, and its scheduler runs every
/// second anyway.
pub const POLL: Duration = Duration::from_millis(500);
/// How long a job may take from submission to its accounting record (other users of the
/// cell may hold the slots for a while).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// Held shared by every test, exclusively by the one that makes the engine unreachable.
static ENGINE: RwLock<()> = RwLock::new(());

/// The queue holding the qdock methods.
pub const QUEUE: &str = "all.q";

/// This machine's queue instance (`all.q@vm`): where [`Case::new`] sends its jobs.
pub fn home_queue() -> String {
    let host = nix::unistd::gethostname().expect("gethostname");
    format!("{QUEUE}@{}", host.to_string_lossy())
}

// ---------------------------------------------------------------------------------------------
// Prerequisites

/// True when the engine and the cell are usable; see the module docs.
pub fn require_cell() -> bool {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    prerequisites_met(&CHECKED, || {
        if super::engine::podman() {
            return Err(super::engine::cell_on_docker());
        }
        // A test process killed while the engine's socket was moved away left it moved.
        restore_socket();
        check_prerequisites().and_then(|()| check_cell())
    })
}

fn check_cell() -> Result<(), String> {
    for tool in ["qsub", "qstat", "qmod", "qdel", "qacct"] {
        if !Path::new("/usr/bin").join(tool).exists() {
            return Err(format!(
                "/usr/bin/{tool} is missing; bin/setup-cluster installs Grid Engine"
            ));
        }
    }
    let qstat = client(Path::new("/"), "qstat", &["-f"]);
    if !qstat.status.success() {
        return Err(format!(
            "qstat -f as {} fails: {}",
            ALICE.name,
            text(&qstat.stderr).trim()
        ));
    }
    let starter = cell_bin_dir()?.join("qdock-starter");
    if !starter.exists() {
        return Err(format!(
            "{} is missing; bin/install (or the package, bin/test --package) puts it there",
            starter.display()
        ));
    }
    Ok(())
}

/// The directory of the qdock binaries the cell runs, the one its `all.q` starter_method
/// names: `/usr/local/bin` after bin/install, `/usr/bin` with the Debian package.
fn cell_bin_dir() -> Result<&'static Path, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let conf = qconf_root(&["-sq", "all.q"]);
        let starter = conf
            .lines()
            .find_map(|l| l.strip_prefix("starter_method"))
            .map(str::trim)
            .ok_or_else(|| format!("all.q has no starter_method: {conf}"))?;
        Path::new(starter)
            .parent()
            .filter(|_| starter.ends_with("/qdock-starter"))
            .map(Path::to_path_buf)
            .ok_or_else(|| format!("all.q's starter_method is {starter}, not qdock-starter"))
    });
    dir.as_deref().map_err(Clone::clone)
}

/// A qdock binary as the cell runs it (see [`cell_bin_dir`]).
pub fn cell_bin(name: &str) -> PathBuf {
    cell_bin_dir()
        .expect("require_cell! checked the installation")
        .join(name)
}

/// A value from /etc/qdock/qdock.toml (`key = value` lines; good enough for two keys).
fn config_value(key: &str) -> Option<String> {
    let text = fs::read_to_string(SYSTEM_CONFIG).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The installed config's `images.pull`.
pub fn pull_policy() -> String {
    config_value("pull").unwrap_or_else(|| "never".into())
}

/// The installed config's `stop_grace_secs`.
pub fn stop_grace() -> Duration {
    let secs = config_value("stop_grace_secs").and_then(|v| v.parse().ok());
    Duration::from_secs(secs.unwrap_or(10))
}

/// How long a `qdel`ed container job may take to leave `qstat`: the terminate method's grace
/// period, then the shepherd's report and the qmaster's.
pub fn qdel_limit() -> Duration {
    stop_grace() + Duration::from_secs(8)
}

fn socket_path() -> PathBuf {
    config_value("socket")
        .unwrap_or_else(|| "/var/run/docker.sock".into())
        .into()
}

// ---------------------------------------------------------------------------------------------
// Commands and containers

/// A Grid Engine client as alice in `dir`, with her groups and a login-like environment.
fn client_command(dir: &Path, program: &str, args: &[&str]) -> Command {
    let mut command = setpriv(ALICE, "--init-groups");
    command
        .arg(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs([
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", "/home/alice"),
            ("USER", ALICE.name),
            ("LOGNAME", ALICE.name),
            ("LANG", "C.UTF-8"),
            ("TERM", "xterm"),
            ("SGE_ROOT", SGE_ROOT),
            ("SGE_CELL", SGE_CELL),
        ]);
    command
}

/// Runs a Grid Engine client (see [`client_command`]) with no input.
fn client(dir: &Path, program: &str, args: &[&str]) -> Output {
    client_command(dir, program, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run setpriv {program}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `name status` of every container of this cell labelled with the job id.
pub fn containers_of(job: u32) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=qdock.job-id={job}"),
        "--filter",
        &format!("label=qdock.cell={SGE_CELL}"),
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(out.status.success(), "docker ps: {}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// A job script that prints 0, 1, 2 … every 0.1 s until a file `go` appears in its working
/// directory, then "end", and exits 7: for a job that must outlive an engine's restart.
pub const GO_COUNTER: &str =
    "i=0\nwhile [ ! -e go ]; do echo $i; i=$((i+1)); sleep 0.1; done\necho end\nexit 7\n";

/// The counter lines of [`GO_COUNTER`] in a job's output so far.
pub fn go_counted(stdout: &str) -> usize {
    stdout.lines().filter(|l| l.parse::<u32>().is_ok()).count()
}

/// The name of the container of task `task` (0 for a non-array job) of `job`.
pub fn task_container(job: u32, task: u32) -> String {
    format!("qdock-{SGE_CELL}-{job}-{task}")
}

/// `docker inspect --format` (or `podman inspect`) of a container's bind mounts, a line each:
/// `SOURCE DESTINATION RW`.
pub const BIND_MOUNTS: &str =
    "{{range .Mounts}}{{if eq .Type \"bind\"}}{{.Source}} {{.Destination}} {{.RW}}\n{{end}}{{end}}";

/// The container of `-pe` job `job` has the execd's `$PE_HOSTFILE` mounted read-only at its
/// own path; `mounts` is the container's [`BIND_MOUNTS`].
pub fn assert_pe_hostfile_mounted(mounts: &str, job: u32) {
    let hostfile = mounts
        .lines()
        .find(|l| l.contains("pe_hostfile"))
        .unwrap_or_else(|| panic!("no pe_hostfile mount: {mounts}"));
    let fields: Vec<&str> = hostfile.split(' ').collect();
    assert_eq!(fields[0], fields[1], "mounted at its own path: {hostfile}");
    assert_eq!(fields[2], "false", "read-only: {hostfile}");
    assert!(
        fields[0].ends_with(&format!("/active_jobs/{job}.1/pe_hostfile")),
        "{hostfile}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hosts and their load values (qdock load-sensor)

/// How long a new load value may take to reach the scheduler: the sensor answers when the
/// execd asks, every `load_report_time` (10 s on the test cell), and a report may be one
/// interval stale.
pub const LOAD_REPORT_TIMEOUT: Duration = Duration::from_secs(45);

/// The name of the execution host this test runs on, as Grid Engine knows it.
pub fn this_host() -> String {
    nix::unistd::gethostname()
        .expect("gethostname")
        .to_string_lossy()
        .into_owned()
}

/// A host's load values and fixed attributes as `qhost -F -h HOST` shows them: the `hl:`
/// lines, name to value (`qdock_engine` shows as `1.000000` or `0.000000`, BOOL as a number).
pub fn load_values(host: &str) -> HashMap<String, String> {
    let out = client(Path::new("/"), "qhost", &["-F", "-h", host]);
    assert!(
        out.status.success(),
        "qhost -F -h {host}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("hl:")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Waits until the load value `name` of `host` satisfies `wanted` (at most
/// [`LOAD_REPORT_TIMEOUT`]); returns it.
pub fn wait_for_load_value(host: &str, name: &str, wanted: impl Fn(&str) -> bool) -> String {
    let mut value = String::new();
    poll_until(
        &format!("load value {name} of {host}"),
        LOAD_REPORT_TIMEOUT,
        POLL,
        || {
            value = load_values(host).remove(name).unwrap_or_default();
            wanted(&value)
        },
        || format!("{host} reports: {:?}", load_values(host)),
    );
    value
}

/// A BOOL load value (`qdock_engine`) that is true: `qhost -F` shows `1.000000`.
pub fn is_true(value: &str) -> bool {
    value.parse::<f64>() == Ok(1.0) || value.eq_ignore_ascii_case("true")
}

/// A BOOL load value that the host reported false (not merely absent).
pub fn is_false(value: &str) -> bool {
    value.parse::<f64>() == Ok(0.0) || value.eq_ignore_ascii_case("false")
}

/// The `qdock_images` entries of `host` (see src/advertise.rs): `;a:1;b:2;` -> [a:1, b:2].
pub fn advertised_images(value: &str) -> Vec<&str> {
    value.split(';').filter(|e| !e.is_empty()).collect()
}

/// The execution hosts of the cell, as `qhost` lists them.
pub fn execution_hosts() -> Vec<String> {
    let out = client(Path::new("/"), "qhost", &[]);
    assert!(out.status.success(), "qhost: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|h| !matches!(*h, "HOSTNAME" | "global") && !h.starts_with('-'))
        .map(str::to_string)
        .collect()
}

/// No host pulls, so a job runs only where its image is: every host's sensor says so (a
/// test that let one pull may have restored its config a report ago).
pub fn wait_until_no_host_pulls() {
    for host in execution_hosts() {
        wait_for_load_value(&host, "qdock_images", |v| {
            !advertised_images(v).contains(&PULL_MARK)
        });
    }
}

/// The one `qdock:` line of a JSV refusal of `image` in what qsub (or DRMAA) said.
pub fn refusal_line<'a>(said: &'a str, image: &str) -> &'a str {
    let lines: Vec<&str> = said.lines().filter(|l| l.contains("qdock:")).collect();
    assert_eq!(lines.len(), 1, "one qdock: line: {said}");
    let line = lines[0];
    assert!(
        line.contains(&format!(
            "no execution host holds or may pull image {image} ("
        )),
        "{line}"
    );
    line
}

/// The entry of a host whose config pulls missing images (src/advertise.rs).
pub const PULL_MARK: &str = "+pull";

/// The `-l` request that finds a host advertising `image` (familiar form with tag).
pub fn image_request(image: &str) -> String {
    format!("qdock_images=*;{image};*")
}

/// The `-l` request that finds a host advertising `image` or pulling what it lacks.
pub fn image_or_pull_request(image: &str) -> String {
    format!("{}|*;{PULL_MARK};*", image_request(image))
}

// ---------------------------------------------------------------------------------------------
// Accounting

/// One `qacct -j` record: `key value` lines.
#[derive(Debug, Clone)]
pub struct Acct(HashMap<String, String>);

impl Acct {
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }

    /// The number that starts `key`'s value (a note such as "(Terminated)" may follow).
    fn number(&self, key: &str) -> i32 {
        let value = self.get(key);
        value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} {value:?} in {self:?}"))
    }

    /// `exit_status` without its "(Terminated)" note.
    pub fn exit_status(&self) -> i32 {
        self.number("exit_status")
    }

    /// `failed`'s number (0: the job ran; 25: rescheduled; 37: a limit was enforced ...).
    pub fn failed(&self) -> i32 {
        self.number("failed")
    }

    pub fn wallclock_secs(&self) -> f64 {
        self.get("ru_wallclock")
            .trim_end_matches('s')
            .parse()
            .unwrap_or(f64::NAN)
    }
}

/// A local time as `qacct` prints it (`Sat Dec  5 15:46:05 2026`), as (year, month, day,
/// hour, minute, second).
type QacctTime = (u32, u32, u32, u32, u32, u32);

fn qacct_time(text: &str) -> Option<QacctTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_, month, day, time, year] = fields[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let hms: Vec<u32> = time.split(':').filter_map(|n| n.parse().ok()).collect();
    let [h, m, s] = hms[..] else { return None };
    Some((year.parse().ok()?, month, day.parse().ok()?, h, m, s))
}

/// When this test process made its first case, in the cell's local time: every job of this
/// run was submitted since.
static BEGAN: LazyLock<QacctTime> = LazyLock::new(|| {
    let out = Command::new("date")
        .arg("+%a %b %e %H:%M:%S %Y")
        .output()
        .expect("date");
    qacct_time(&text(&out.stdout)).expect("date's local time")
});

fn parse_qacct(output: &str) -> Vec<Acct> {
    let mut records = Vec::new();
    let mut current = HashMap::new();
    for line in output.lines() {
        if line.starts_with("====") {
            if !current.is_empty() {
                records.push(Acct(std::mem::take(&mut current)));
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(char::is_whitespace) {
            current.insert(key.to_string(), value.trim().to_string());
        }
    }
    if !current.is_empty() {
        records.push(Acct(current));
    }
    records
}

// ---------------------------------------------------------------------------------------------
// A test's working directory and jobs

/// A guard held only to be dropped with its [`Case`].
enum Lock {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// One test: its directory under alice's home, the jobs it submitted, its hold on [`ENGINE`].
/// Dropping it deletes the jobs still in the cell and the directory (kept on failure).
pub struct Case {
    pub dir: PathBuf,
    jobs: RefCell<Vec<u32>>,
    /// The queue (instance) every `qsub` and `qrsh` asks for; None: any host.
    pin: Option<String>,
    _lock: Lock,
}

impl Case {
    /// A test whose jobs run on this machine, beside the local engine.
    pub fn new(name: &str) -> Case {
        let lock = Lock::Shared(ENGINE.read().unwrap_or_else(|e| e.into_inner()));
        Case::with_lock(name, lock, Some(home_queue()))
    }

    /// A test that disturbs the engine: no other test of this file runs meanwhile.
    pub fn exclusive(name: &str) -> Case {
        let lock = Lock::Exclusive(ENGINE.write().unwrap_or_else(|e| e.into_inner()));
        Case::with_lock(name, lock, Some(home_queue()))
    }

    /// A test whose jobs go wherever the scheduler (or the test's own `-l`/`-q`) sends them,
    /// over every host of the cell; it holds the local engine exclusively, since it may
    /// take engines away.
    pub fn cluster(name: &str) -> Case {
        let lock = Lock::Exclusive(ENGINE.write().unwrap_or_else(|e| e.into_inner()));
        Case::with_lock(name, lock, None)
    }

    fn with_lock(name: &str, lock: Lock, pin: Option<String>) -> Case {
        LazyLock::force(&BEGAN);
        let dir = ALICE
            .home()
            .join(format!("qdock-e2e-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        make_dir(&dir, ALICE.uid, ALICE.gid, 0o755);
        Case {
            dir,
            jobs: Default::default(),
            pin,
            _lock: lock,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes an executable job script owned by alice.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        write_file(
            &path,
            format!("#!/bin/sh\n{body}"),
            ALICE.uid,
            ALICE.gid,
            0o755,
        );
        path
    }

    /// `qsub -terse ARGS` as alice in `dir`; returns the job id.
    pub fn qsub_in(&self, dir: &Path, args: &[&str]) -> u32 {
        let mut all = vec!["-terse"];
        all.extend_from_slice(args);
        let out = self.run_client(dir, "qsub", &all);
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "qsub {args:?} failed: {}{}",
            stdout,
            text(&out.stderr)
        );
        // "12" or, for an array job, "12.1-3:1".
        let id: u32 = stdout
            .trim()
            .split('.')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("qsub said {stdout:?}"));
        self.jobs.borrow_mut().push(id);
        id
    }

    /// A job this test started otherwise (qrsh): checked and cleaned up like its own.
    pub fn track(&self, job: u32) {
        self.jobs.borrow_mut().push(job);
    }

    pub fn qsub(&self, args: &[&str]) -> u32 {
        self.qsub_in(&self.dir, args)
    }

    /// `qsub -terse -v IMAGE=<image> -cwd ARGS` as alice in the test's directory.
    pub fn qsub_image(&self, image: &str, args: &[&str]) -> u32 {
        let image = format!("IMAGE={image}");
        let mut all = vec!["-v", &image, "-cwd"];
        all.extend_from_slice(args);
        self.qsub(&all)
    }

    /// A Grid Engine client as alice in the test's directory, to spawn with pipes of the
    /// test's choosing (a DRMAA program, say); register what it submits with [`Case::adopt`].
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        client_command(&self.dir, program, args)
    }

    /// `qsub -v IMAGE=<image> -cwd ARGS` as alice, which must be refused: returns what qsub
    /// said (stdout and stderr).
    pub fn qsub_refused(&self, image: &str, args: &[&str]) -> String {
        let image = format!("IMAGE={image}");
        let mut all = vec!["-terse", "-v", &image, "-cwd"];
        all.extend_from_slice(args);
        let out = self.run_client(&self.dir, "qsub", &all);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        if out.status.success() {
            // Deleted with the case.
            if let Some(id) = said.trim().split('.').next().and_then(|i| i.parse().ok()) {
                self.jobs.borrow_mut().push(id);
            }
            panic!("qsub {args:?} was not refused: {said}");
        }
        said
    }

    /// A job submitted by other means than [`Case::qsub`]: deleted with the case, checked by
    /// [`Case::assert_clean`].
    pub fn adopt(&self, job: u32) {
        self.jobs.borrow_mut().push(job);
    }

    /// A Grid Engine client as alice, whatever its exit code.
    pub fn client_output(&self, program: &str, args: &[&str]) -> Output {
        self.run_client(&self.dir, program, args)
    }

    /// A Grid Engine client as alice; panics when it fails.
    pub fn client(&self, program: &str, args: &[&str]) -> String {
        let out = self.run_client(&self.dir, program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `program` as alice in `dir`; a job it submits is pinned to the case's queue.
    fn run_client(&self, dir: &Path, program: &str, args: &[&str]) -> Output {
        client(dir, program, &self.pinned(program, args))
    }

    /// [`client_command`] in the case's directory, a job it submits pinned to the case's
    /// queue: for a test that drives the client's stdin and terminal itself.
    pub fn client_command(&self, program: &str, args: &[&str]) -> Command {
        client_command(&self.dir, program, &self.pinned(program, args))
    }

    fn pinned<'a>(&'a self, program: &str, args: &[&'a str]) -> Vec<&'a str> {
        match &self.pin {
            Some(queue) if matches!(program, "qsub" | "qrsh") => {
                let mut all = vec!["-q", queue.as_str()];
                all.extend_from_slice(args);
                all
            }
            _ => args.to_vec(),
        }
    }

    /// Polls `condition` every [`POLL`] (the cell's pace) for at most `timeout`; panics
    /// naming `what` on timeout. Returns how long it took.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl FnMut() -> bool,
    ) -> Duration {
        poll_until(what, timeout, POLL, condition, String::new)
    }

    /// The job's state letters in `qstat` (one entry per listed task), empty once it left.
    pub fn states(&self, job: u32) -> Vec<String> {
        // A busy qmaster may fail a request now and then: retry before giving up.
        let mut out = client(&self.dir, "qstat", &["-u", ALICE.name]);
        for _ in 0..3 {
            if out.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            out = client(&self.dir, "qstat", &["-u", ALICE.name]);
        }
        assert!(out.status.success(), "qstat: {}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(job.to_string().as_str()))
            .filter_map(|line| line.split_whitespace().nth(4).map(str::to_string))
            .collect()
    }

    pub fn qstat_j(&self, job: u32) -> String {
        let out = client(&self.dir, "qstat", &["-j", &job.to_string()]);
        text(&out.stdout) + &text(&out.stderr)
    }

    /// The accounting records of this run's job `job`: a qmaster killed and started again
    /// hands out job numbers anew (its `jobseqnum` is written at shutdown), so `qacct -j`
    /// may also give an earlier run's job of that number (job 1926 twice within the hour).
    pub fn acct(&self, job: u32) -> Vec<Acct> {
        let out = client(&self.dir, "qacct", &["-j", &job.to_string()]);
        if !out.status.success() {
            return Vec::new();
        }
        parse_qacct(&text(&out.stdout))
            .into_iter()
            .filter(|record| qacct_time(record.get("qsub_time")).is_some_and(|t| t >= *BEGAN))
            .collect()
    }

    /// The slots where the case's jobs may run (the pinned queue instance, or every one):
    /// (used + reserved, total), from `qstat -f`.
    pub fn slots(&self) -> (u32, u32) {
        let out = self.client("qstat", &["-f"]);
        out.lines()
            .filter(|line| {
                self.pin
                    .as_deref()
                    .is_none_or(|q| line.split_whitespace().next() == Some(q))
            })
            .filter_map(|line| {
                let field = line.split_whitespace().nth(2)?;
                let n: Vec<u32> = field.split('/').filter_map(|n| n.parse().ok()).collect();
                (n.len() == 3).then(|| (n[0] + n[1], n[2]))
            })
            .fold((0, 0), |(u, t), (du, dt)| (u + du, t + dt))
    }

    /// What the cell says about the job and its queues, for a timeout's message.
    fn explain(&self, job: u32) -> String {
        let queues = client(&self.dir, "qstat", &["-f", "-u", "*"]);
        format!(
            "qstat -f -u '*':\n{}\nqstat -j {job}:\n{}\ncontainers: {:?}",
            text(&queues.stdout),
            self.qstat_j(job),
            containers_of(job)
        )
    }

    /// Polls `condition` at the cell's pace until it holds; on timeout panics with what the
    /// cell says about `job`, and at once when the job is in an error state.
    fn wait_for_job(&self, job: u32, what: &str, mut condition: impl FnMut(&[String]) -> bool) {
        poll_until(
            what,
            JOB_TIMEOUT,
            POLL,
            || {
                let states = self.states(job);
                self.fail_on_error_state(job, &states);
                condition(&states)
            },
            || self.explain(job),
        );
    }

    /// Waits until a state of the job satisfies `wanted` (e.g. `|s| s == "r"`).
    pub fn wait_state(&self, job: u32, what: &str, wanted: impl Fn(&str) -> bool) {
        self.wait_for_job(job, &format!("job {job} {what}"), |states| {
            states.iter().any(|s| wanted(s))
        });
    }

    fn fail_on_error_state(&self, job: u32, states: &[String]) {
        if states.iter().any(|s| s.contains('E')) {
            panic!(
                "job {job} is in error state {states:?}:\n{}",
                self.qstat_j(job)
            );
        }
    }

    /// Waits until `qstat -j` gives the scheduler's reason why the job cannot run that names
    /// `complex` (the cell's schedd_job_info is on); returns what `qstat -j` showed.
    pub fn wait_for_reason(&self, job: u32, complex: &str) -> String {
        let mut shown = String::new();
        self.wait_until(
            &format!("the scheduler's reason about {complex} for job {job}"),
            JOB_TIMEOUT,
            || {
                shown = self.qstat_j(job);
                shown
                    .lines()
                    .any(|l| l.contains(complex) && l.contains("cannot run"))
            },
        );
        shown
    }

    /// `qdel` of a job, then waits until it left `qstat`.
    pub fn delete(&self, job: u32) {
        self.client("qdel", &[&job.to_string()]);
        self.wait_until(&format!("job {job} deleted"), JOB_TIMEOUT, || {
            self.states(job).is_empty()
        });
    }

    /// Waits until the job left `qstat` and has `records` accounting records (one per task
    /// and attempt); returns them.
    pub fn wait_done(&self, job: u32, records: usize) -> Vec<Acct> {
        let start = Instant::now();
        self.wait_for_job(job, &format!("job {job} to leave qstat"), |states| {
            states.is_empty()
        });
        let left = JOB_TIMEOUT.saturating_sub(start.elapsed()) + Duration::from_secs(10);
        let mut acct = Vec::new();
        self.wait_until(
            &format!("{records} qacct records of job {job}"),
            left,
            || {
                acct = self.acct(job);
                acct.len() >= records
            },
        );
        acct
    }

    /// Waits until the container of `job`'s task `task` has `status` (`running`, `paused`).
    pub fn wait_for_container(&self, job: u32, task: u32, status: &str) {
        let name = task_container(job, task);
        self.wait_for_job(job, &format!("container {name} {status}"), |_| {
            container_status(&name).as_deref() == Some(status)
        });
    }

    pub fn read(&self, path: impl AsRef<Path>) -> String {
        let path = self.dir.join(path);
        fs::read_to_string(&path).unwrap_or_else(|e| {
            let listing: Vec<_> = fs::read_dir(path.parent().unwrap_or(&self.dir))
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            panic!("{}: {e}; the directory holds {listing:?}", path.display())
        })
    }

    /// The end of every test: none of its jobs in `qstat`, none of their containers left.
    pub fn assert_clean(&self) {
        for &job in self.jobs.borrow().iter() {
            assert!(
                self.states(job).is_empty(),
                "job {job} is still in qstat: {:?}",
                self.states(job)
            );
            // The starter removes the container before it exits, so before the job leaves
            // qstat; a short grace covers a slow engine.
            let left = Instant::now() + Duration::from_secs(5);
            while !containers_of(job).is_empty() && Instant::now() < left {
                std::thread::sleep(POLL);
            }
            assert_eq!(containers_of(job), Vec::<String>::new(), "job {job}");
        }
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let jobs: Vec<String> = self.jobs.borrow().iter().map(u32::to_string).collect();
        // No panics here: this may run while a failed test unwinds.
        let listed = text(&client(&self.dir, "qstat", &["-u", ALICE.name]).stdout);
        let live: Vec<&str> = jobs
            .iter()
            .filter(|j| {
                listed
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(j.as_str()))
            })
            .map(String::as_str)
            .collect();
        if !live.is_empty() {
            let _ = client(&self.dir, "qdel", &live);
        }
        if std::thread::panicking() {
            eprintln!("kept {} for inspection (jobs {jobs:?})", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The engine taken away

/// The engine's socket moved aside: every client gets "socket not found", exactly what a
/// stopped dockerd gives, while the containers of other users of this machine keep running.
/// Dropping it puts the socket back; if the engine then does not answer, `bin/setup-cluster`
/// starts it the way it always does.
pub struct SocketAway {
    socket: PathBuf,
}

fn aside_path(socket: &Path) -> PathBuf {
    let mut aside = socket.as_os_str().to_owned();
    aside.push(".qdock-e2e");
    aside.into()
}

impl SocketAway {
    pub fn new() -> SocketAway {
        let socket = socket_path();
        let aside = aside_path(&socket);
        fs::rename(&socket, &aside).expect("move the engine's socket aside");
        SocketAway { socket }
    }
}

impl Drop for SocketAway {
    fn drop(&mut self) {
        restore_socket();
        let answers = || docker(&["version"]).status.success();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if !answers() {
            let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("bin/setup-cluster");
            eprintln!(
                "the engine does not answer at {}: running {}",
                self.socket.display(),
                setup.display()
            );
            let _ = Command::new(setup).stdin(Stdio::null()).status();
        }
    }
}

/// Puts a socket moved aside by [`SocketAway`] back (also after a killed test process).
fn restore_socket() {
    let socket = socket_path();
    let aside = aside_path(&socket);
    if aside.exists() {
        if socket.exists() {
            // dockerd was restarted meanwhile and made a new one: the old one is dead.
            let _ = fs::remove_file(&aside);
        } else if let Err(e) = fs::rename(&aside, &socket) {
            eprintln!(
                "cannot move {} back to {}: {e}",
                aside.display(),
                socket.display()
            );
        }
    }
}

/// A queue attribute set for one test (`qconf -mattr`, as root), put back when dropped,
/// whatever the test did. Hold it only in a [`Case::exclusive`] test: the queue serves the
/// file's other tests too.
pub struct QueueAttr {
    queue: &'static str,
    attr: &'static str,
    old: String,
}

impl QueueAttr {
    pub fn set(queue: &'static str, attr: &'static str, value: &str) -> QueueAttr {
        let conf = qconf_root(&["-sq", queue]);
        let old = conf
            .lines()
            .find_map(|l| l.strip_prefix(attr))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{queue} has no {attr}: {conf}"));
        qconf_root(&["-mattr", "queue", attr, value, queue]);
        QueueAttr { queue, attr, old }
    }
}

impl Drop for QueueAttr {
    fn drop(&mut self) {
        qconf_root(&["-mattr", "queue", self.attr, &self.old, self.queue]);
    }
}

/// `qconf ARGS` as root (a manager); its stdout.
fn qconf_root(args: &[&str]) -> String {
    let out = Command::new("qconf")
        .args(args)
        .env("SGE_ROOT", SGE_ROOT)
        .env("SGE_CELL", SGE_CELL)
        .output()
        .expect("run qconf");
    assert!(
        out.status.success(),
        "qconf {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}
