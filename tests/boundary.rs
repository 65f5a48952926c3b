//! The job boundary, attacked the way the security review did: as the ordinary user alice,
//! with the installed setgid binaries, against bob's job and against the engine's mounts.
//! Each test states the attack, makes sure it really happened (the case ran), and asserts
//! that it gained nothing.

#[macro_use]
mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Another additional group than [`JOB_GROUP`], for the job of a second user: a group
/// identifies one job.
const BOBS_GROUP: u32 = 65391;

fn chown(path: &Path, user: User) {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn mkdir(path: &Path, user: User, mode: u32) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    chown(path, user);
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

const SECRET: &str = "BOB-SECRET-7f3a";

/// A private directory (0700) in `owner`'s home holding `proj/secret`, which no one else can
/// reach: bob's, which alice must not read; root's, which neither alice nor bob may read.
struct Secret {
    dir: PathBuf,
}

impl Secret {
    fn new(owner: User, tag: &str) -> Secret {
        let dir = owner
            .home()
            .join(format!("qdock-test-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        mkdir(&dir.join("proj"), owner, 0o755);
        mkdir(&dir, owner, 0o700);
        write_file(
            &dir.join("proj/secret"),
            SECRET,
            owner.uid,
            owner.gid,
            0o644,
        );
        Secret { dir }
    }

    fn proj(&self) -> PathBuf {
        self.dir.join("proj")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Proof of the job

#[test]
fn a_starter_outside_any_job_is_refused() {
    require_engine!();
    let job = Job::new("echo ran");
    fs::remove_dir_all(job.spool_entry()).expect("remove the spool entry");
    let out = job.expect_refusal(100, &["not proven", "no such job on this host"]);
    assert!(!out.stdout_text().contains("ran"));
}

#[test]
fn a_caller_without_the_jobs_group_is_refused() {
    require_engine!();
    let job = Job::new("echo ran");
    // The execd recorded another group for this job than the one the caller holds.
    fs::write(job.spool_entry().join("addgrpid"), "65392\n").expect("rewrite addgrpid");
    job.expect_refusal(100, &["not proven", "group 65392"]);
}

#[test]
fn a_spool_entry_a_user_could_write_proves_nothing() {
    require_engine!();
    let job = Job::new("echo ran");
    let addgrpid = job.spool_entry().join("addgrpid");
    fs::set_permissions(&addgrpid, fs::Permissions::from_mode(0o666)).expect("chmod");
    job.expect_refusal(100, &["not proven", "writable by group or others"]);
}

/// The review's hijack: alice runs the starter herself with bob's job id, to make bob's job
/// attach to a container she controls, or hers to attach to bob's. Now she is refused before
/// anything is created, and bob's job runs intact.
#[test]
fn alice_cannot_start_or_control_bobs_job() {
    require_engine!();
    let bob = Job::new("echo bob-start; sleep 2; echo bob-end")
        .user(BOB)
        .group(BOBS_GROUP);
    let mut bobs = bob.spawn();
    bobs.wait_until("bob's container runs", TIMEOUT, |_| bob.container_running());
    let mut alice = Job::new("echo alice-ran");
    // Alice claims bob's job id; the spool entry there is bob's.
    fs::remove_dir_all(alice.spool_entry()).expect("remove alice's own entry");
    alice.id = bob.id;
    let out = alice.run();
    out.assert_code(100);
    assert_eq!(out.qdock_lines().len(), 1, "{out:?}");
    out.assert_qdock_line(&["not proven", "\"bob\", not to you (alice)"]);
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(bob.container_running(), "alice's starter touched bob's job");
    for method in ["qdock-suspend", "qdock-terminate"] {
        let out = alice.method(method, bobs.pid);
        out.assert_code(100);
        out.assert_qdock_line(&["not proven"]);
        assert!(
            bob.container_running(),
            "alice's {method} touched bob's job"
        );
    }
    let done = bobs.wait(TIMEOUT);
    done.assert_code(0).assert_stdout("bob-start\nbob-end\n");
    bob.assert_no_container();
}

// ---------------------------------------------------------------------------------------------
// Acting on IDs

/// A container that takes the job's name after the starter created its own is never touched:
/// the starter acts on its container's ID.
#[test]
fn a_container_that_takes_the_name_later_is_never_touched() {
    require_engine!();
    let job = Job::new("echo started; sleep 30");
    let mut starter = job.spawn();
    starter.wait_until("the container runs", TIMEOUT, |_| job.container_running());
    let name = job.container_name();
    // Hold the starter, replace its container by an impostor of the same name.
    starter.signal(Signal::SIGSTOP);
    docker_text(&["rm", "-f", &name]);
    let impostor = docker_text(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "qdock.owner-uid=2002",
        IMAGE,
        "sleep",
        "60",
    ]);
    // SIGTERM makes the starter stop and remove its container: its own, not the impostor.
    starter.signal(Signal::SIGTERM);
    starter.signal(Signal::SIGCONT);
    let _ = starter.wait(TIMEOUT);
    let state = inspect(&impostor, "{{.State.Status}}");
    docker_text(&["rm", "-f", &impostor]);
    assert_eq!(state, "running", "the starter acted on the impostor");
}

// ---------------------------------------------------------------------------------------------
// Mounts

/// Starts `command`, `job`'s starter, with its stderr on a full pipe, and waits until it
/// holds there: its container is created and not yet started.
fn held_after_create(
    job: &Job,
    command: std::process::Command,
    what: &str,
) -> (Running, StderrGate) {
    let (mut starter, gate) = Running::spawn_with_stderr_blocked(command, what.into());
    let name = job.container_name();
    starter.wait_until("the container is created", TIMEOUT, |_| {
        container_exists(&name)
    });
    assert_eq!(inspect(&name, "{{.State.Status}}"), "created");
    (starter, gate)
}

/// The review's symlink swap: alice's job starts from a directory of hers; while the starter
/// is held between create and start (a full stderr pipe), she replaces that directory by a
/// link to bob's private project. The engine, mounting as root at start, must not follow it.
#[test]
fn a_swapped_working_directory_does_not_reach_bobs_files() {
    require_engine!();
    let secret = Secret::new(BOB, "swap");
    let job = Job::new("cat secret; cat $PWD/secret; echo job-ran");
    let aw = job.cwd.join("aw");
    mkdir(&aw, ALICE, 0o755);
    let script_args: Vec<std::ffi::OsString> = vec![job.script_path.clone().into()];
    job.write_script();
    let mut command = job.command("qdock-starter", &script_args);
    command.current_dir(&aw);
    let (mut starter, gate) = held_after_create(&job, command, "alice's starter in aw");
    fs::rename(&aw, job.cwd.join("aw.orig")).expect("move aw aside");
    symlink(secret.proj(), &aw).expect("plant the link");
    chown(&aw, ALICE);
    gate.open(&mut starter);
    let out = starter.wait(TIMEOUT);
    // The engine mounted alice's home, where the working directory is now a link that leads
    // nowhere inside the container: runc refuses to enter it, and bob's file stays unread.
    assert!(
        !out.stdout_text().contains(SECRET) && !out.stderr.contains(SECRET),
        "alice read bob's file through the swapped link\n{out:?}"
    );
    assert!(
        out.stdout_text().contains("job-ran") || out.stderr.contains("failed to start container"),
        "{out:?}"
    );
    job.assert_no_container();
}

/// `HOME` and `TMPDIR` are the caller's to set: `/etc` must not be mounted for either.
#[test]
fn home_and_tmpdir_from_the_environment_are_not_mounted() {
    require_engine!();
    let job = Job::new("cat /proc/self/mountinfo")
        .env("HOME", "/etc")
        .env("TMPDIR", "/etc");
    let out = job.run_ok();
    let targets: Vec<String> = out
        .stdout_text()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect();
    assert!(
        targets.iter().any(|t| t == "/home/alice"),
        "the passwd home is mounted: {targets:?}"
    );
    assert!(
        !targets.iter().any(|t| t == "/etc"),
        "/etc was mounted: {targets:?}"
    );
}

/// `PE_HOSTFILE` and `SGE_BINDING` are the caller's to set too: the hostfile mounted is the
/// one the execd's spool names (none for this job), and the cores are the starter's own
/// affinity. A forged hostfile pointing at bob's private file must not be mounted (the engine
/// would mount it as root), and a forged binding must not narrow or choose the cpuset.
#[test]
fn pe_hostfile_and_binding_from_the_environment_are_not_trusted() {
    require_engine!();
    let secret = Secret::new(BOB, "pe-hostfile");
    let forged = secret.proj().join("secret");
    let job = Job::new(
        "cat /proc/self/mountinfo; cat \"$PE_HOSTFILE\" 2>/dev/null; grep Cpus_allowed_list /proc/self/status",
    )
    .env("PE_HOSTFILE", forged.to_str().unwrap())
    .env("SGE_BINDING", "0");
    let out = job.run_ok();
    let text = out.stdout_text();
    assert!(!text.contains(SECRET), "bob's file was read: {text}");
    assert!(
        !text.contains(forged.to_str().unwrap()),
        "the forged hostfile was mounted: {text}"
    );
    let online = fs::read_to_string("/sys/devices/system/cpu/online").expect("online cpus");
    let affinity = fs::read_to_string("/proc/self/status")
        .expect("own status")
        .lines()
        .find_map(|l| {
            l.strip_prefix("Cpus_allowed_list:")
                .map(|v| v.trim().to_string())
        })
        .expect("Cpus_allowed_list");
    assert_eq!(
        affinity,
        online.trim(),
        "this test needs an unbound test process"
    );
    assert!(
        text.contains(&format!("Cpus_allowed_list:\t{affinity}\n")),
        "SGE_BINDING chose the cores: {text}"
    );
}

/// A user mount through a link that the user swaps is refused or anchored: never bob's.
#[test]
fn a_user_mount_in_a_directory_the_user_owns_is_anchored() {
    require_engine!();
    let secret = Secret::new(BOB, "usermount");
    let job = Job::new("cat $QDOCK_IN/secret; echo job-ran");
    let data = job.cwd.join("data");
    mkdir(&data, ALICE, 0o755);
    // data's anchor is alice's home (she can change everything in it): allowed whole.
    let config = "[[mounts.user_allow]]\nprefix = \"/home/alice\"\n";
    let job = job
        .with_config(config)
        .env("QDOCK_MOUNTS", &format!("{}:ro", data.display()))
        .env("QDOCK_IN", &data.display().to_string());
    job.write_script();
    let argv = vec![job.script_path.clone().into_os_string()];
    let (mut starter, gate) = Running::spawn_with_stderr_blocked(
        job.command("qdock-starter", &argv),
        "alice's starter with a user mount".into(),
    );
    let name = job.container_name();
    starter.wait_until("the container is created", TIMEOUT, |_| {
        container_exists(&name)
    });
    fs::rename(&data, job.cwd.join("data.orig")).expect("move data aside");
    symlink(secret.proj(), &data).expect("plant the link");
    chown(&data, ALICE);
    gate.open(&mut starter);
    let out = starter.wait(TIMEOUT);
    assert!(
        out.stdout_text().contains("job-ran"),
        "the job did not run\n{out:?}"
    );
    assert!(
        !out.stdout_text().contains(SECRET),
        "alice read bob's file through the swapped mount\n{out:?}"
    );
    job.assert_no_container();
}

/// `/srv/qdock-test-<pid>-<tag>` (root's, 0755) holding `lab`, a directory of bob's, and in
/// it alice's `work`: the layout of a shared project where a second account can change the
/// entries alice's job depends on.
struct BobsLab {
    base: PathBuf,
    tag: String,
}

impl BobsLab {
    fn new(tag: &str) -> BobsLab {
        let base = Path::new("/srv").join(format!("qdock-test-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        mkdir(&base, ROOT, 0o755);
        mkdir(&base.join("lab"), BOB, 0o755);
        mkdir(&base.join("lab/work"), ALICE, 0o755);
        write_file(
            &base.join("lab/readme"),
            "LAB-README\n",
            BOB.uid,
            BOB.gid,
            0o644,
        );
        BobsLab {
            base,
            tag: tag.into(),
        }
    }

    fn lab(&self) -> PathBuf {
        self.base.join("lab")
    }

    fn work(&self) -> PathBuf {
        self.lab().join("work")
    }

    /// Bob, with his own rights, replaces alice's `work` by a link to `target`.
    fn swap_work_for(&self, target: &Path) {
        let work = self.work().display().to_string();
        let status = as_user(
            BOB,
            &[
                "/bin/sh",
                "-c",
                "mv \"$1\" \"$1.orig\" && ln -s \"$2\" \"$1\"",
                "swap",
                &work,
                &target.display().to_string(),
            ],
        )
        .status()
        .expect("run bob's swap");
        assert!(status.success(), "bob could not swap {work}");
        assert!(fs::symlink_metadata(self.work()).is_ok_and(|m| m.is_symlink()));
    }
}

impl Drop for BobsLab {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// Starts `command` (alice's starter) held between create and start, lets bob swap `work`
/// for a link to root's secret directory, then lets the starter go on.
fn run_swapped_by_bob(job: &Job, command: std::process::Command, lab: &BobsLab) -> Outcome {
    let secret = Secret::new(ROOT, &lab.tag);
    let (mut starter, gate) = held_after_create(job, command, "alice's held starter");
    lab.swap_work_for(&secret.proj());
    gate.open(&mut starter);
    let out = starter.wait(TIMEOUT);
    assert!(
        !out.stdout_text().contains(SECRET) && !out.stderr.contains(SECRET),
        "the job read root's file through bob's swap\n{out:?}"
    );
    job.assert_no_container();
    out
}

/// The third review's collusion: alice's job runs from her `work` in bob's `lab`. While her
/// starter is held, bob (who owns `lab`) swaps `work` for a link into root's 0700 area. The
/// engine must never mount it: `work` is not fixed (bob can change it), so `lab` is mounted,
/// and the link resolves inside the container, where it leads nowhere.
#[test]
fn a_working_directory_another_user_can_swap_does_not_reach_roots_files() {
    require_engine!();
    let lab = BobsLab::new("cwd");
    let job = Job::new("cat secret; echo job-ran");
    job.write_script();
    let mut command = job.command("qdock-starter", &[job.script_path.clone().into()]);
    command.current_dir(lab.work());
    let out = run_swapped_by_bob(&job, command, &lab);
    // runc cannot enter a working directory that is a dangling link in the container.
    assert!(
        out.stdout_text().contains("job-ran") || out.stderr.contains("to start container"),
        "{out:?}"
    );
}

/// The same collusion through a user mount: `lab/work` is below the allowed prefix, and bob
/// swaps it for a link out of the prefix while alice's starter is held.
#[test]
fn a_user_mount_another_user_can_swap_does_not_reach_roots_files() {
    require_engine!();
    let lab = BobsLab::new("usermount");
    let work = lab.work().display().to_string();
    let config = format!(
        "[[mounts.user_allow]]\nprefix = \"{}\"\n",
        lab.base.display()
    );
    let job = Job::new("cat \"$QDOCK_IN/secret\"; cat \"$QDOCK_LAB/readme\"; echo job-ran")
        .with_config(&config)
        .env("QDOCK_MOUNTS", &format!("{work}:ro"))
        .env("QDOCK_IN", &work)
        .env("QDOCK_LAB", &lab.lab().display().to_string());
    job.write_script();
    let command = job.command("qdock-starter", &[job.script_path.clone().into()]);
    let out = run_swapped_by_bob(&job, command, &lab);
    // The job ran, and what it can see is bob's lab, mounted whole: not root's directory.
    assert!(out.stdout_text().contains("job-ran"), "{out:?}");
    assert!(out.stdout_text().contains("LAB-README"), "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// Messages and listings

/// A script path with a newline cannot forge a `qdock:` line in the `.e` file.
#[test]
fn caller_values_cannot_forge_a_qdock_line() {
    require_engine!();
    let job = Job::new("true");
    let forged = "/nonexistent\nqdock: job 1.0 runs trusted:1 (forged)";
    let out = Running::spawn(
        job.command("qdock-starter", &[forged.into()]),
        "starter with a forged script path".into(),
    )
    .wait(TIMEOUT);
    out.assert_code(100);
    assert_eq!(out.qdock_lines().len(), 1, "{out:?}");
    assert!(!out.stderr.contains("\nqdock: job 1.0"), "{out:?}");
    out.assert_qdock_line(&["\\nqdock: job 1.0 runs trusted:1"]);
}

/// `qdock ps` shows a user their own containers only.
#[test]
fn qdock_ps_shows_alice_only_her_own_containers() {
    require_engine!();
    let bob = Job::new("sleep 30").user(BOB).group(BOBS_GROUP);
    let mut bobs = bob.spawn();
    bobs.wait_until("bob's container runs", TIMEOUT, |_| bob.container_running());
    let alice = Job::new("true");
    let ps = |job: &Job| {
        let out =
            Running::spawn(job.command("qdock", &["ps".into()]), "qdock ps".into()).wait(TIMEOUT);
        out.assert_code(0);
        out.stdout_text()
    };
    assert!(ps(&bob).contains(&bob.container_name()), "bob sees his own");
    assert!(
        !ps(&alice).contains(&bob.container_name()),
        "alice sees bob's container"
    );
    bob.method("qdock-terminate", bobs.pid).assert_code(0);
    bobs.wait(TIMEOUT);
    bob.assert_no_container();
}

// ---------------------------------------------------------------------------------------------
// Names come from the proof; one run, one starter

/// The job's records in the host's usage record (read as root).
fn records_of(job: &Job) -> Vec<serde_json::Value> {
    let text = fs::read_to_string("/var/lib/qdock/usage.jsonl").unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["job"].as_u64() == Some(job.id))
        .collect()
}

/// The review's escape: alice sets SGE_CELL and QUEUE before her starter runs, to get a
/// container named and labelled for a cell no watcher looks at. The names are the proof's:
/// the config's cell and the spool's queue, in the container's name, labels and record.
#[test]
fn a_forged_cell_and_queue_name_nothing() {
    require_engine!();
    let job = Job::new(format!("{UNTIL_GO}echo ran\n"))
        .env("SGE_CELL", "x")
        .env("QUEUE", "forged.q");
    let forged = format!("qdock-x-{}-0", job.id);
    let mut running = job.spawn();
    running.wait_until("the job's container runs", TIMEOUT, |_| {
        job.container_running() || container_exists(&forged)
    });
    assert!(
        !container_exists(&forged),
        "a container took the forged cell"
    );
    let labels = inspect(&job.container_name(), "{{json .Config.Labels}}");
    for expected in ["\"qdock.cell\":\"default\"", "\"qdock.queue\":\"all.q\""] {
        assert!(labels.contains(expected), "{expected} not in {labels}");
    }
    job.go();
    running.wait(TIMEOUT).assert_code(0).assert_stdout("ran\n");
    let records = records_of(&job);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["cell"], "default", "{records:?}");
    assert_eq!(records[0]["queue"], "all.q", "{records:?}");
}

/// The review's flood: a native job runs the starter again from inside, with an image (a
/// second container for the job) and without (one more record each time). Only the run's
/// first starter acts: every later one is refused with one line and creates nothing.
#[test]
fn a_starter_run_again_inside_the_job_creates_nothing_and_records_nothing() {
    require_engine!();
    let starter = installed_bin("qdock-starter");
    let mut job = Job::new("").native();
    let inner = job.file("inner.sh");
    job.script = format!(
        "IMAGE={IMAGE} {starter} {inner} 2>err-image; echo image=$?\n\
         {starter} {inner} 2>err-native; echo native=$?\n\
         exec {starter} {inner}\n",
        starter = starter.display(),
        inner = inner.display(),
    )
    .into_bytes();
    fs::write(&inner, "echo inner-ran\n").expect("write inner.sh");
    chown(&inner, ALICE);
    let out = job.run();
    assert_eq!(out.stdout_text(), "image=100\nnative=100\n", "{out:?}");
    out.assert_code(100);
    assert!(
        out.qdock_lines()
            .iter()
            .any(|l| l.contains("already has its starter")),
        "{out:?}"
    );
    for name in ["err-image", "err-native"] {
        let err = fs::read_to_string(job.file(name)).expect("the inner starter's stderr");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains("already has its starter"), "{name}: {err}");
    }
    job.assert_no_container();
    assert_eq!(records_of(&job).len(), 1, "{:?}", records_of(&job));
}

/// A run's mark outlives nothing: `qdock gc` removes the marks of runs the spool no longer
/// holds, and keeps a running job's.
#[test]
fn gc_removes_the_marks_of_ended_runs_only() {
    require_engine!();
    let marks = |job: &Job| -> Vec<String> {
        fs::read_dir("/var/lib/qdock/runs")
            .expect("the run marks' directory (bin/install)")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("default.{}.0@", job.id)))
            .collect()
    };
    let ended = Job::new("echo ended").native();
    ended.run().assert_code(0);
    let live = Job::new(format!("touch started\n{UNTIL_GO}")).native();
    let mut running = live.spawn();
    running.wait_until("the live job runs", TIMEOUT, |_| {
        live.file("started").exists()
    });
    assert_eq!(marks(&ended).len(), 1, "the ended run's mark");
    assert_eq!(marks(&live).len(), 1, "the live run's mark");
    // The execd removes an ended job's entry.
    fs::remove_dir_all(ended.spool_entry()).expect("end the job's spool entry");
    let admin = Job::new("").native().mode(Mode::Root(None));
    admin
        .run_method("qdock", &["gc", "--dry-run"], TIMEOUT)
        .assert_code(0);
    assert_eq!(marks(&ended).len(), 1, "--dry-run removed a mark");
    let gc = admin.run_method("qdock", &["gc"], TIMEOUT);
    gc.assert_code(0);
    assert!(marks(&ended).is_empty(), "{gc:?}");
    assert_eq!(marks(&live).len(), 1, "a live run's mark went: {gc:?}");
    live.go();
    running.wait(TIMEOUT).assert_code(0);
}

// ---------------------------------------------------------------------------------------------
// Open Cluster Scheduler's methods: no job group, proven by their shepherd

/// The method line sge-conf/register-queue writes for Open Cluster Scheduler, as its
/// shepherd expands it: no `$ja_task_id` (OCS refuses it), no `$job_pid` (the spool has it).
fn ocs_line(method: &str, job: &Job) -> String {
    format!("{} {}", installed_bin(method).display(), job.id)
}

/// Starts `job`'s starter under the shepherd stand-in (tests/common/shepherd.rs).
fn under_shepherd(job: &Job) -> shepherd::Shepherd {
    job.write_script();
    let starter = job.command("qdock-starter", &[job.script_path.clone().into()]);
    shepherd::Shepherd::start(job, &starter)
}

/// A container job of alice's under the shepherd, waiting in [`UNTIL_GO`] once it runs.
fn waiting_under_shepherd() -> (Job, shepherd::Shepherd) {
    let job = Job::new(format!("{UNTIL_GO}echo done\n"));
    let shepherd = under_shepherd(&job);
    job.wait_for_container(TIMEOUT);
    (job, shepherd)
}

/// OCS's shepherd starts the methods as the job owner without the job's group: they prove
/// themselves by descent (src/lineage.rs), and drive the container as on 8.1.9.
#[test]
fn methods_the_shepherd_starts_without_the_group_drive_the_container() {
    require_engine!();
    let (job, mut shepherd) = waiting_under_shepherd();
    let state = || inspect(&job.container_name(), "{{.State.Status}}");
    assert_eq!(shepherd.method(ALICE, &ocs_line("qdock-suspend", &job)), 0);
    assert_eq!(state(), "paused");
    assert_eq!(shepherd.method(ALICE, &ocs_line("qdock-resume", &job)), 0);
    assert_eq!(state(), "running");
    assert_eq!(
        shepherd.method(ALICE, &ocs_line("qdock-terminate", &job)),
        0
    );
    // The job ends on the stop signal: 143 (SIGTERM) through the shell.
    assert_eq!(shepherd.wait_job(), 143);
    job.assert_no_container();
}

/// What must never pass without the group: the method run by hand, by a process of the job
/// itself, or by another user under this job's shepherd. Each is refused and the container
/// keeps running.
#[test]
fn methods_not_started_by_the_shepherd_as_the_owner_are_refused() {
    require_engine!();
    let (job, mut shepherd) = waiting_under_shepherd();
    let running = || inspect(&job.container_name(), "{{.State.Status}}") == "running";

    // By hand, from alice's login session (her own groups), with the job's environment.
    let mut hand = std::process::Command::new("/usr/bin/setpriv");
    hand.args([
        "--reuid=2001",
        "--regid=2001",
        "--init-groups",
        "--inh-caps=-all",
        "--",
    ])
    .arg(installed_bin("qdock-suspend"))
    .arg(job.id.to_string())
    .env_clear()
    .envs(job.environment())
    .current_dir(&job.cwd);
    let out = Running::spawn(hand, "qdock-suspend by hand".into()).wait(TIMEOUT);
    out.assert_code(100);
    assert!(
        out.stderr.contains("not started by the job's shepherd"),
        "{out:?}"
    );
    assert!(running(), "a method run by hand paused the job");

    // Bob, under alice's shepherd.
    assert_eq!(shepherd.method(BOB, &ocs_line("qdock-suspend", &job)), 100);
    assert!(running(), "bob paused alice's job");

    job.go();
    assert_eq!(shepherd.wait_job(), 0);
    let printed = fs::read_to_string(job.dir.join(shepherd::Shepherd::OUTPUT));
    assert_eq!(printed.expect("the job's output"), "done\n");
    job.assert_no_container();
}

/// A native job on a host where Grid Engine gave it no group (OCS on a systemd host may
/// record `add_grp_id=0`): its own processes descend from the shepherd through the job, so
/// a method they run is refused, and the job's processes are not stopped.
#[test]
fn a_jobs_own_process_is_no_method() {
    require_engine!();
    let mut job = Job::new("").native();
    // The spool records the job's group, but its processes do not hold it.
    job.group = ALICE.gid;
    job.script = format!(
        "{} $JOB_ID 2>err; echo suspend=$?\n",
        installed_bin("qdock-suspend").display()
    )
    .into_bytes();
    let shepherd = under_shepherd(&job);
    assert_eq!(shepherd.wait_job(), 0);
    let printed = fs::read_to_string(job.dir.join(shepherd::Shepherd::OUTPUT));
    assert_eq!(printed.expect("the job's output"), "suspend=100\n");
    let out = fs::read_to_string(job.file("err")).expect("the method's stderr");
    assert!(out.contains("descends from the job's own process"), "{out}");
}

/// Two cells on one host (an Open Cluster Scheduler cell beside Son of Grid Engine's): job
/// ids are per cell, so one id can run in both. Each job is proven against its own cell's
/// spool and named after that cell; the other cell's job of the same id is not the caller.
#[test]
fn two_cells_on_one_host_prove_each_job_against_its_own_spool() {
    require_engine!();
    let job = Job::new("echo ran");
    let (uid, gid) = spool_owner();
    let write_entry = |entry: &Path, group: u32, owner: &str, queue: &str| {
        make_dir(entry, uid, gid, 0o755);
        write_file(
            &entry.join("addgrpid"),
            format!("{group}\n"),
            uid,
            gid,
            0o644,
        );
        let config = format!(
            "job_owner={owner}\ntmpdir={}\nqueue={queue}\n",
            job.tmpdir.display()
        );
        write_file(&entry.join("config"), config, uid, gid, 0o644);
    };
    // In the default cell, this job id is bob's.
    write_entry(&job.spool_entry(), BOBS_GROUP, "bob", "all.q");
    // In the second cell, it is alice's: the one she runs.
    let spool = job.dir.join("second-spool");
    make_dir(&spool, uid, gid, 0o755);
    make_dir(&spool.join("vm"), uid, gid, 0o755);
    make_dir(&spool.join("vm/active_jobs"), uid, gid, 0o755);
    let entry = spool.join("vm/active_jobs").join(format!("{}.1", job.id));
    write_entry(&entry, JOB_GROUP, "alice", "second.q");
    let config = format!(
        "[[gridengine.cells]]\ncell = \"second\"\nexecd_spool_dir = \"{}\"\n",
        spool.display()
    );
    let job = job.with_config(&config);
    let out = job.run();
    out.assert_code(0).assert_stdout("ran\n");
    out.assert_qdock_line(&["as container", &format!("qdock-second-{}-0", job.id)]);
    let records = records_of(&job);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["cell"], "second", "{records:?}");
    assert_eq!(records[0]["queue"], "second.q", "{records:?}");
}
