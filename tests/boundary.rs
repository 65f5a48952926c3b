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
