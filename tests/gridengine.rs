//! End to end through the real Grid Engine cell: jobs are submitted as the ordinary user alice
//! with the real `qsub` and observed with `qstat`, `qmod`, `qdel` and `qacct`; the scheduler
//! runs them through the qdock methods installed in /usr/local/bin (`bin/install`). Root only
//! uses `docker` to observe containers.
//!
//! Prerequisites (`bin/setup-cluster`, `bin/install`): the cell `default` under
//! /var/lib/gridengine with the qdock methods on a queue, the user alice (2001, not in the
//! docker group), the image qdock/busybox:1, the tests running as root. Without them a test
//! is skipped with a printed reason, or fails under `CI=true`.
//!
//! Isolation: each test works in its own directory `/home/alice/qdock-e2e-<pid>-<test>/` and
//! only looks at its own job ids, so the tests run in parallel with each other (and with other
//! users of the cell). The one test that makes the engine unreachable takes [`ENGINE`]
//! exclusively; every other test holds it shared. When a test ends, its jobs must have left
//! `qstat` and their containers must be gone; its leftover jobs are deleted and its directory
//! removed (kept, and its path printed, when the test failed).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

const SGE_ROOT: &str = "/var/lib/gridengine";
const SGE_CELL: &str = "default";
const USER: &str = "alice";
const UID: u32 = 2001;
const GID: u32 = 2001;
const IMAGE: &str = "qdock/busybox:1";
const CONFIG: &str = "/etc/qdock/qdock.toml";
/// `qstat`/`qacct` polling period.
const POLL: Duration = Duration::from_millis(500);
/// How long a job may take from submission to its accounting record (other users of the
/// cell may hold the slots for a while).
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// Held shared by every test, exclusively by the one that makes the engine unreachable.
static ENGINE: RwLock<()> = RwLock::new(());

// ---------------------------------------------------------------------------------------------
// Prerequisites

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// True when the cell, the engine, the image and the user are there. Otherwise prints why and
/// returns false (skip), or panics under `CI=true`: there a test that cannot run fails.
fn cell_ready() -> bool {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    match CHECKED.get_or_init(check_cell) {
        Ok(()) => true,
        Err(why) if under_ci() => panic!("CI=true and the Grid Engine cell is not usable: {why}"),
        Err(why) => {
            eprintln!("skipped: {why} (run bin/setup-cluster and bin/install as root)");
            false
        }
    }
}

macro_rules! require_cell {
    () => {
        if !cell_ready() {
            return;
        }
    };
}

fn check_cell() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the tests must run as root (they submit as alice)".into());
    }
    // A test process killed while the engine's socket was moved away leaves it moved.
    restore_socket();
    let id = Command::new("id").args(["-u", USER]).output();
    if !id.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == UID.to_string()) {
        return Err(format!("user {USER} with uid {UID} is missing"));
    }
    for tool in [
        "qsub", "qstat", "qmod", "qdel", "qacct", "setpriv", "docker",
    ] {
        if !Path::new("/usr/bin").join(tool).exists() && which(tool).is_none() {
            return Err(format!("{tool} is not installed"));
        }
    }
    let qstat = as_alice(Path::new("/"), "qstat", &["-f"]);
    if !qstat.status.success() {
        return Err(format!(
            "qstat -f as {USER} fails: {}",
            String::from_utf8_lossy(&qstat.stderr).trim()
        ));
    }
    if !Path::new("/usr/local/bin/qdock-starter").exists() {
        return Err("/usr/local/bin/qdock-starter is missing".into());
    }
    let info = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output();
    if !info.is_ok_and(|o| o.status.success()) {
        return Err(format!("docker does not answer or has no image {IMAGE}"));
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.exists())
    })
}

/// A value from /etc/qdock/qdock.toml (`key = value` lines; good enough for two keys).
fn config_value(key: &str) -> Option<String> {
    let text = fs::read_to_string(CONFIG).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn stop_grace() -> Duration {
    let secs = config_value("stop_grace_secs").and_then(|v| v.parse().ok());
    Duration::from_secs(secs.unwrap_or(10))
}

fn socket_path() -> PathBuf {
    config_value("socket")
        .unwrap_or_else(|| "/var/run/docker.sock".into())
        .into()
}

// ---------------------------------------------------------------------------------------------
// Commands

/// Runs a Grid Engine client as alice in `dir`, with a login-like environment.
fn as_alice(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid", USER, "--regid", USER, "--init-groups", "--"])
        .arg(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs([
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", "/home/alice"),
            ("USER", USER),
            ("LOGNAME", USER),
            ("LANG", "C.UTF-8"),
            ("SGE_ROOT", SGE_ROOT),
            ("SGE_CELL", SGE_CELL),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run setpriv {program}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

/// `docker inspect -f {{.State.Status}}`, or None when there is no such container.
fn container_status(name: &str) -> Option<String> {
    let out = docker(&["inspect", "-f", "{{.State.Status}}", name]);
    out.status
        .success()
        .then(|| text(&out.stdout).trim().to_string())
}

/// `name status` of every container of this cell labelled with the job id.
fn containers_of(job: u32) -> Vec<String> {
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

fn container_name(job: u32, task: u32) -> String {
    format!("qdock-{SGE_CELL}-{job}-{task}")
}

/// Polls `condition` every [`POLL`] until it holds; panics with `what` after `timeout`.
/// Returns how long it took.
fn wait_until(what: &str, timeout: Duration, condition: impl FnMut() -> bool) -> Duration {
    wait_or_explain(what, timeout, condition, String::new)
}

/// [`wait_until`], with `explain()`'s words in the panic message.
fn wait_or_explain(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
    explain: impl FnOnce() -> String,
) -> Duration {
    let start = Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                explain()
            );
        }
        sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// Accounting

/// One `qacct -j` record: `key value` lines.
#[derive(Debug, Clone)]
struct Acct(HashMap<String, String>);

impl Acct {
    fn get(&self, key: &str) -> &str {
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
    fn exit_status(&self) -> i32 {
        self.number("exit_status")
    }

    /// `failed`'s number (0: the job ran; 25: rescheduled; 37: a limit was enforced ...).
    fn failed(&self) -> i32 {
        self.number("failed")
    }

    fn wallclock_secs(&self) -> f64 {
        self.get("ru_wallclock")
            .trim_end_matches('s')
            .parse()
            .unwrap_or(f64::NAN)
    }
}

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

enum Lock {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// One test: its directory under alice's home, the jobs it submitted, its hold on [`ENGINE`].
/// Dropping it deletes the jobs still in the cell and the directory (kept on failure).
struct Case {
    dir: PathBuf,
    jobs: std::cell::RefCell<Vec<u32>>,
    _lock: Lock,
}

impl Case {
    fn new(name: &str) -> Case {
        let lock = Lock::Shared(ENGINE.read().unwrap_or_else(|e| e.into_inner()));
        Case::with_lock(name, lock)
    }

    /// A test that disturbs the engine: no other test of this file runs meanwhile.
    fn exclusive(name: &str) -> Case {
        let lock = Lock::Exclusive(ENGINE.write().unwrap_or_else(|e| e.into_inner()));
        Case::with_lock(name, lock)
    }

    fn with_lock(name: &str, lock: Lock) -> Case {
        let dir = PathBuf::from(format!(
            "/home/{USER}/qdock-e2e-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        make_dir(&dir);
        Case {
            dir,
            jobs: Default::default(),
            _lock: lock,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes an executable job script owned by alice.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod script");
        std::os::unix::fs::chown(&path, Some(UID), Some(GID)).expect("chown script");
        path
    }

    /// `qsub -terse ARGS` as alice in `dir`; returns the job id.
    fn qsub_in(&self, dir: &Path, args: &[&str]) -> u32 {
        let mut all = vec!["-terse"];
        all.extend_from_slice(args);
        let out = as_alice(dir, "qsub", &all);
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

    fn qsub(&self, args: &[&str]) -> u32 {
        self.qsub_in(&self.dir, args)
    }

    /// `qsub -terse -v IMAGE=<image> -cwd ARGS` as alice in the test's directory.
    fn qsub_image(&self, image: &str, args: &[&str]) -> u32 {
        let image = format!("IMAGE={image}");
        let mut all = vec!["-v", &image, "-cwd"];
        all.extend_from_slice(args);
        self.qsub(&all)
    }

    /// A Grid Engine client as alice; panics when it fails.
    fn client(&self, program: &str, args: &[&str]) -> String {
        let out = as_alice(&self.dir, program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The job's state letters in `qstat` (one entry per listed task), empty once it left.
    fn states(&self, job: u32) -> Vec<String> {
        // A busy qmaster may fail a request now and then: retry before giving up.
        let mut out = as_alice(&self.dir, "qstat", &["-u", USER]);
        for _ in 0..3 {
            if out.status.success() {
                break;
            }
            sleep(Duration::from_secs(1));
            out = as_alice(&self.dir, "qstat", &["-u", USER]);
        }
        assert!(out.status.success(), "qstat: {}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(job.to_string().as_str()))
            .filter_map(|line| line.split_whitespace().nth(4).map(str::to_string))
            .collect()
    }

    fn qstat_j(&self, job: u32) -> String {
        let out = as_alice(&self.dir, "qstat", &["-j", &job.to_string()]);
        text(&out.stdout) + &text(&out.stderr)
    }

    fn acct(&self, job: u32) -> Vec<Acct> {
        let out = as_alice(&self.dir, "qacct", &["-j", &job.to_string()]);
        if out.status.success() {
            parse_qacct(&text(&out.stdout))
        } else {
            Vec::new()
        }
    }

    /// What the cell says about the job and its queues, for a timeout's message.
    fn explain(&self, job: u32) -> String {
        let queues = as_alice(&self.dir, "qstat", &["-f", "-u", "*"]);
        format!(
            "qstat -f -u '*':\n{}\nqstat -j {job}:\n{}\ncontainers: {:?}",
            text(&queues.stdout),
            self.qstat_j(job),
            containers_of(job)
        )
    }

    /// Waits until a state of the job satisfies `wanted` (e.g. `|s| s == "r"`).
    fn wait_state(&self, job: u32, what: &str, wanted: impl Fn(&str) -> bool) {
        wait_or_explain(
            &format!("job {job} {what}"),
            JOB_TIMEOUT,
            || {
                let states = self.states(job);
                self.fail_on_error_state(job, &states);
                states.iter().any(|s| wanted(s))
            },
            || self.explain(job),
        );
    }

    fn fail_on_error_state(&self, job: u32, states: &[String]) {
        if states.iter().any(|s| s.contains('E')) {
            panic!(
                "job {job} is in error state {states:?}:\n{}",
                self.qstat_j(job)
            );
        }
    }

    /// Waits until the job left `qstat` and has `records` accounting records (one per task
    /// and attempt); returns them.
    fn wait_done(&self, job: u32, records: usize) -> Vec<Acct> {
        let start = Instant::now();
        wait_or_explain(
            &format!("job {job} to leave qstat"),
            JOB_TIMEOUT,
            || {
                let states = self.states(job);
                self.fail_on_error_state(job, &states);
                states.is_empty()
            },
            || self.explain(job),
        );
        let left = JOB_TIMEOUT.saturating_sub(start.elapsed()) + Duration::from_secs(10);
        let mut acct = Vec::new();
        wait_until(
            &format!("{records} qacct records of job {job}"),
            left,
            || {
                acct = self.acct(job);
                acct.len() >= records
            },
        );
        acct
    }

    fn read(&self, path: impl AsRef<Path>) -> String {
        let path = self.dir.join(path);
        fs::read_to_string(&path).unwrap_or_else(|e| {
            let listing: Vec<_> = fs::read_dir(path.parent().unwrap_or(&self.dir))
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            panic!("{}: {e}; the directory holds {listing:?}", path.display())
        })
    }

    fn wait_for_container(&self, job: u32, task: u32, status: &str) {
        let name = container_name(job, task);
        wait_or_explain(
            &format!("container {name} {status}"),
            JOB_TIMEOUT,
            || {
                self.fail_on_error_state(job, &self.states(job));
                container_status(&name).as_deref() == Some(status)
            },
            || self.explain(job),
        );
    }

    /// The end of every test: none of its jobs in `qstat`, none of their containers left.
    fn assert_clean(&self) {
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
                sleep(POLL);
            }
            assert_eq!(containers_of(job), Vec::<String>::new(), "job {job}");
        }
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let jobs: Vec<String> = self.jobs.borrow().iter().map(u32::to_string).collect();
        // No panics here: this may run while a failed test unwinds.
        let listed = text(&as_alice(&self.dir, "qstat", &["-u", USER]).stdout);
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
            let _ = as_alice(&self.dir, "qdel", &live);
        }
        if std::thread::panicking() {
            eprintln!("kept {} for inspection (jobs {jobs:?})", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn make_dir(dir: &Path) {
    fs::create_dir_all(dir).expect("create the test directory");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(dir, Some(UID), Some(GID)).expect("chown");
}

/// The `.e` file's first line and the rest.
fn split_first_line(text: &str) -> (&str, &str) {
    text.split_once('\n').unwrap_or((text, ""))
}

fn assert_runs_line(line: &str, job: u32, task: u32) {
    assert!(
        line.starts_with(&format!(
            "qdock: job {job}.{task} runs {IMAGE} (image sha256:"
        )),
        "first .e line: {line:?}"
    );
    assert!(
        line.ends_with(&format!("as container {}", container_name(job, task))),
        "first .e line: {line:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn container_job_output_exit_status_and_ownership() {
    require_cell!();
    let case = Case::new("basic");
    case.script(
        "ok.sh",
        "echo \"marker: $(cat /qdock-image-marker)\"\n\
         echo \"uid: $(id -u) gid: $(id -g)\"\n\
         echo 'to stderr' >&2\n\
         echo written >written.txt\n",
    );
    case.script("fail.sh", "echo failing >&2\nexit 3\n");
    let ok = case.qsub_image(IMAGE, &["ok.sh"]);
    let failing = case.qsub_image(IMAGE, &["fail.sh"]);

    let acct = case.wait_done(ok, 1);
    assert_eq!(acct[0].exit_status(), 0, "{acct:?}");
    assert_eq!(acct[0].failed(), 0, "{acct:?}");
    assert_eq!(
        case.read(format!("ok.sh.o{ok}")),
        format!("marker: {IMAGE}\nuid: {UID} gid: {GID}\n")
    );
    let stderr = case.read(format!("ok.sh.e{ok}"));
    let (first, rest) = split_first_line(&stderr);
    assert_runs_line(first, ok, 0);
    assert_eq!(rest, "to stderr\n");
    let written = case.path("written.txt");
    assert_eq!(case.read(&written), "written\n");
    let meta = fs::metadata(&written).expect("written.txt");
    assert_eq!((meta.uid(), meta.gid()), (UID, GID), "owner of written.txt");
    let meta = fs::metadata(case.path(&format!("ok.sh.o{ok}"))).expect(".o");
    assert_eq!(meta.uid(), UID, "owner of the .o file");

    let acct = case.wait_done(failing, 1);
    assert_eq!(acct[0].exit_status(), 3, "{acct:?}");
    let stderr = case.read(format!("fail.sh.e{failing}"));
    let (first, rest) = split_first_line(&stderr);
    assert_runs_line(first, failing, 0);
    assert_eq!(rest, "failing\n");
    assert_eq!(case.read(format!("fail.sh.o{failing}")), "");
    case.assert_clean();
}

#[test]
fn working_directory_arguments_and_odd_name() {
    require_cell!();
    let case = Case::new("wd-args");
    let wd = case.path("wd");
    make_dir(&wd);
    let script = case.script(
        "args.sh",
        "for a in \"$@\"; do echo \"[$a]\"; done\n\
         echo \"argc=$#\"\n\
         echo \"pwd=$(pwd)\"\n\
         echo \"name=$JOB_NAME\"\n\
         cat /qdock-image-marker\n\
         touch here\n",
    );
    let image = format!("IMAGE={IMAGE}");
    let name = "odd.name-1_x";
    // Submitted from / : only -wd makes the job run (and write its output) in wd.
    let job = case.qsub_in(
        Path::new("/"),
        &[
            "-v",
            &image,
            "-wd",
            wd.to_str().unwrap(),
            "-N",
            name,
            script.to_str().unwrap(),
            "one arg",
            "two",
        ],
    );
    let acct = case.wait_done(job, 1);
    assert_eq!(acct[0].exit_status(), 0, "{acct:?}");
    assert_eq!(acct[0].get("jobname"), name);
    assert_eq!(
        case.read(wd.join(format!("{name}.o{job}"))),
        format!(
            "[one arg]\n[two]\nargc=2\npwd={}\nname={name}\n{IMAGE}\n",
            wd.display()
        )
    );
    let stderr = case.read(wd.join(format!("{name}.e{job}")));
    let (first, rest) = split_first_line(&stderr);
    assert_runs_line(first, job, 0);
    assert_eq!(rest, "");
    assert!(wd.join("here").exists(), "the job wrote into -wd");
    case.assert_clean();
}

#[test]
fn array_job_runs_each_task_in_its_own_container() {
    require_cell!();
    let case = Case::new("array");
    case.script(
        "task.sh",
        "echo \"task $SGE_TASK_ID\"\ncat /qdock-image-marker\n",
    );
    let job = case.qsub_image(IMAGE, &["-t", "1-3", "-N", "arr", "task.sh"]);
    let acct = case.wait_done(job, 3);
    let mut tasks: Vec<&str> = acct.iter().map(|a| a.get("taskid")).collect();
    tasks.sort();
    assert_eq!(tasks, ["1", "2", "3"], "{acct:?}");
    assert!(acct.iter().all(|a| a.exit_status() == 0), "{acct:?}");
    for task in 1..=3 {
        assert_eq!(
            case.read(format!("arr.o{job}.{task}")),
            format!("task {task}\n{IMAGE}\n")
        );
        let stderr = case.read(format!("arr.e{job}.{task}"));
        let (first, rest) = split_first_line(&stderr);
        assert_runs_line(first, job, task);
        assert_eq!(rest, "");
    }
    case.assert_clean();
}

#[test]
fn job_without_image_runs_natively() {
    require_cell!();
    let case = Case::new("native");
    case.script(
        "native.sh",
        "if [ -e /qdock-image-marker ]; then echo marker; else echo no-marker; fi\n\
         echo \"uid=$(id -u)\"\n\
         echo \"groups=$(id -G)\"\n\
         echo \"id=$(sed -n 's/^ID=//p' /etc/os-release)\"\n",
    );
    let job = case.qsub(&["-cwd", "native.sh"]);
    let acct = case.wait_done(job, 1);
    assert_eq!(acct[0].exit_status(), 0, "{acct:?}");
    let stdout = case.read(format!("native.sh.o{job}"));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "no-marker", "{stdout}");
    assert_eq!(lines[1], format!("uid={UID}"), "{stdout}");
    let docker_gid = Command::new("getent")
        .args(["group", "docker"])
        .output()
        .ok()
        .and_then(|o| text(&o.stdout).split(':').nth(2).map(str::to_string))
        .expect("the docker group");
    let groups: Vec<&str> = lines[2]
        .trim_start_matches("groups=")
        .split_whitespace()
        .collect();
    assert!(groups.contains(&GID.to_string().as_str()), "{stdout}");
    assert!(
        !groups.contains(&docker_gid.as_str()),
        "a native job keeps the docker group ({docker_gid}): {stdout}"
    );
    assert_ne!(lines[3], "id=qdock-busybox", "{stdout}");
    assert_eq!(case.read(format!("native.sh.e{job}")), "", "no qdock line");
    case.assert_clean();
}

#[test]
fn suspend_pauses_the_container_and_resume_continues() {
    require_cell!();
    let case = Case::new("suspend");
    let count = 6;
    case.script(
        "count.sh",
        &format!("i=0\nwhile [ $i -lt {count} ]; do i=$((i+1)); echo $i; sleep 1; done\n"),
    );
    let job = case.qsub_image(IMAGE, &["-N", "count", "count.sh"]);
    let name = container_name(job, 0);
    let out = case.path(&format!("count.o{job}"));
    case.wait_for_container(job, 0, "running");
    wait_until("the first count", JOB_TIMEOUT, || {
        fs::read_to_string(&out).is_ok_and(|s| !s.is_empty())
    });

    case.client("qmod", &["-sj", &job.to_string()]);
    case.wait_state(job, "suspended", |s| s.contains('s'));
    case.wait_for_container(job, 0, "paused");
    // Frozen: no more output while suspended.
    let before = fs::read_to_string(&out).unwrap_or_default();
    sleep(Duration::from_secs(2));
    assert_eq!(fs::read_to_string(&out).unwrap_or_default(), before);
    assert_eq!(container_status(&name).as_deref(), Some("paused"));
    assert!(
        before.lines().count() < count,
        "the job finished before it was suspended: {before:?}"
    );

    case.client("qmod", &["-usj", &job.to_string()]);
    case.wait_state(job, "running again", |s| s == "r");
    let acct = case.wait_done(job, 1);
    assert_eq!(acct[0].exit_status(), 0, "{acct:?}");
    let expected: String = (1..=count).map(|i| format!("{i}\n")).collect();
    assert_eq!(case.read(format!("count.o{job}")), expected);
    assert!(
        acct[0].wallclock_secs() >= (count + 2) as f64,
        "suspension time missing from the wall clock: {acct:?}"
    );
    case.assert_clean();
}

#[test]
fn qdel_stops_running_and_suspended_containers() {
    require_cell!();
    let case = Case::new("qdel");
    case.script("long.sh", "echo started\nsleep 300\necho not-reached\n");
    let running = case.qsub_image(IMAGE, &["-N", "del-run", "long.sh"]);
    let suspended = case.qsub_image(IMAGE, &["-N", "del-susp", "long.sh"]);
    case.wait_for_container(running, 0, "running");
    case.wait_for_container(suspended, 0, "running");
    case.client("qmod", &["-sj", &suspended.to_string()]);
    case.wait_state(suspended, "suspended", |s| s.contains('s'));
    case.wait_for_container(suspended, 0, "paused");

    let limit = stop_grace() + Duration::from_secs(8);
    case.client("qdel", &[&running.to_string(), &suspended.to_string()]);
    let took = wait_until("both containers gone", limit, || {
        containers_of(running).is_empty() && containers_of(suspended).is_empty()
    });
    eprintln!("containers gone {took:?} after qdel");
    wait_until("both jobs out of qstat", limit, || {
        case.states(running).is_empty() && case.states(suspended).is_empty()
    });
    for (job, name) in [(running, "del-run"), (suspended, "del-susp")] {
        let acct = case.wait_done(job, 1);
        assert!(acct[0].exit_status() >= 128, "killed: {acct:?}");
        assert!(acct[0].wallclock_secs() < 60.0, "{acct:?}");
        assert_eq!(case.read(format!("{name}.o{job}")), "started\n");
    }
    case.assert_clean();
}

#[test]
fn missing_image_puts_the_job_in_error_state() {
    require_cell!();
    let case = Case::new("no-image");
    case.script("never.sh", "echo must-not-run\n");
    let absent = "qdock/absent-e2e:404";
    let job = case.qsub_image(absent, &["never.sh"]);
    wait_until(&format!("job {job} in Eqw"), JOB_TIMEOUT, || {
        case.states(job).iter().any(|s| s.contains('E'))
    });
    let why = case.qstat_j(job);
    assert!(
        why.contains("exit_status of job start = 100"),
        "qstat -j {job}:\n{why}"
    );
    let stderr = case.read(format!("never.sh.e{job}"));
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("qdock:") && l.contains(absent)),
        ".e file: {stderr:?}"
    );
    assert_eq!(case.read(format!("never.sh.o{job}")), "");
    assert_eq!(containers_of(job), Vec::<String>::new());
    case.client("qdel", &[&job.to_string()]);
    wait_until(&format!("job {job} deleted"), JOB_TIMEOUT, || {
        case.states(job).is_empty()
    });
    case.assert_clean();
}

#[test]
fn h_rt_exceeded_stops_and_removes_the_container() {
    require_cell!();
    let case = Case::new("h-rt");
    case.script("long.sh", "echo started\nsleep 60\necho not-reached\n");
    let job = case.qsub_image(IMAGE, &["-l", "h_rt=0:0:5", "long.sh"]);
    case.wait_for_container(job, 0, "running");
    let limit = Duration::from_secs(5) + stop_grace() + Duration::from_secs(10);
    wait_until(&format!("container of job {job} gone"), limit, || {
        containers_of(job).is_empty()
    });
    let acct = case.wait_done(job, 1);
    // failed 37: "qmaster enforced h_rt, h_cpu, or h_vmem limit"
    assert_eq!(acct[0].failed(), 37, "{acct:?}");
    assert!(acct[0].exit_status() >= 128, "killed: {acct:?}");
    assert!(acct[0].wallclock_secs() < 30.0, "{acct:?}");
    assert_eq!(case.read(format!("long.sh.o{job}")), "started\n");
    case.assert_clean();
}

/// The engine's socket moved aside: every client gets "socket not found", exactly what a
/// stopped dockerd gives, while the containers of other users of this machine keep running.
/// Dropping it puts the socket back; if the engine then does not answer, `bin/setup-cluster`
/// starts it the way it always does.
struct SocketAway {
    socket: PathBuf,
}

fn aside_path(socket: &Path) -> PathBuf {
    let mut aside = socket.as_os_str().to_owned();
    aside.push(".qdock-e2e");
    aside.into()
}

impl SocketAway {
    fn new() -> SocketAway {
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
            sleep(POLL);
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

/// The slots of the cell's queues: (used + reserved, total), from `qstat -f`.
fn slots(case: &Case) -> (u32, u32) {
    let out = case.client("qstat", &["-f"]);
    out.lines()
        .filter_map(|line| {
            let field = line.split_whitespace().nth(2)?;
            let n: Vec<u32> = field.split('/').filter_map(|n| n.parse().ok()).collect();
            (n.len() == 3).then(|| (n[0] + n[1], n[2]))
        })
        .fold((0, 0), |(u, t), (du, dt)| (u + du, t + dt))
}

#[test]
fn unreachable_engine_requeues_the_job() {
    require_cell!();
    let case = Case::exclusive("unreachable");
    case.script("marker.sh", "cat /qdock-image-marker\n");
    // The socket stays away from submission until the first attempt failed: wait for a free
    // slot first (other users of the cell), so that this window lasts a second or two.
    wait_until("a free slot", JOB_TIMEOUT, || {
        let (used, total) = slots(&case);
        used < total
    });
    // Away before the submission: the job cannot start before the engine is gone.
    let away = SocketAway::new();
    let job = case.qsub_image(IMAGE, &["marker.sh"]);
    let mut first = Vec::new();
    let took = wait_until(
        &format!("a first attempt of job {job} without the engine"),
        Duration::from_secs(30),
        || {
            first = case.acct(job);
            !first.is_empty()
        },
    );
    drop(away);
    eprintln!("engine unreachable for {took:?}");
    assert_eq!(first[0].exit_status(), 99, "{first:?}");
    // failed 25: "rescheduling": Grid Engine requeued the job rather than failing it.
    assert_eq!(first[0].failed(), 25, "{first:?}");
    let states = case.states(job);
    assert!(
        !states.iter().any(|s| s.contains('E')),
        "requeued, not in error: {states:?}"
    );

    let acct = case.wait_done(job, 2);
    let last = acct.last().unwrap();
    assert_eq!(last.exit_status(), 0, "{acct:?}");
    assert_eq!(last.failed(), 0, "{acct:?}");
    assert_eq!(case.read(format!("marker.sh.o{job}")), format!("{IMAGE}\n"));
    let stderr = case.read(format!("marker.sh.e{job}"));
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("qdock: cannot reach the Docker engine"),
        ".e file: {stderr:?}"
    );
    assert_runs_line(lines[1], job, 0);
    assert_eq!(lines.len(), 2, ".e file: {stderr:?}");
    case.assert_clean();
}
