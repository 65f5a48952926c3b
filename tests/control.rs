//! The control methods (`qdock-suspend`, `qdock-resume`, `qdock-terminate`) and `qdock gc`
//! against the real engine, run as ordinary users the way Grid Engine runs them:
//! `qdock-suspend $job_id $ja_task_id $job_pid` with the job's environment, `$job_pid` being
//! the starter, leader of the job's process group.

#[macro_use]
mod common;

use std::fs;
use std::time::Duration;

use common::*;

const METHOD_TIMEOUT: Duration = Duration::from_secs(60);
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts in `counter` (written atomically) every 0.1 s; exits 0 on SIGTERM.
const COUNTER: &str = "trap 'exit 0' TERM
i=0
while :; do
  i=$((i+1))
  echo $i > counter.tmp
  mv counter.tmp counter
  sleep 0.1
done
";

/// Cleans up on SIGTERM and exits 0.
const TRAPS_TERM: &str = "trap 'echo cleaned up > cleaned; exit 0' TERM
echo started > started
while :; do sleep 0.1; done
";

/// Ignores SIGTERM: only SIGKILL ends it.
const IGNORES_TERM: &str = "trap '' TERM
echo started > started
while :; do sleep 0.1; done
";

/// Runs `qdock-<action> JOB_ID 0 PID` for `job` (its user, mode and environment).
fn method(job: &Job, action: &str, pid: i32) -> Outcome {
    let id = job.id.to_string();
    let pid = pid.to_string();
    job.run_method(
        &format!("qdock-{action}"),
        &[&id, "0", &pid],
        METHOD_TIMEOUT,
    )
}

/// Runs `qdock-terminate` for `job`'s `starter`, which must succeed within `within`.
fn terminate_within(job: &Job, starter: &Running, within: Duration) -> Outcome {
    let out = method(job, "terminate", starter.pid);
    out.assert_code(0);
    assert!(out.elapsed < within, "terminate took too long\n{out:?}");
    out
}

/// Waits for `starter` to end with `code` (at most [`METHOD_TIMEOUT`]) and fails if the
/// job's container is still there.
fn assert_ends(job: &Job, starter: Running, code: i32) {
    starter.wait(METHOD_TIMEOUT).assert_code(code);
    job.assert_no_container();
}

fn counter(job: &Job) -> u64 {
    fs::read_to_string(job.file("counter"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn state(job: &Job) -> String {
    inspect(&job.container_name(), "{{.State.Status}}")
}

/// Starts `job` and waits until its container runs and the script wrote `marker`.
fn start(job: &Job, marker: &str) -> Running {
    let mut starter = job.spawn();
    starter.wait_until("the job started", START_TIMEOUT, |_| {
        job.file(marker).exists() && job.container_running()
    });
    starter
}

/// The live members of process group `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let pgid = pgid.to_string();
    live_pids()
        .into_iter()
        .filter(|pid| {
            // Field 5 of /proc/PID/stat, the third after the command's closing parenthesis.
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(2).map(|f| f == pgid))
                    .unwrap_or(false)
            })
        })
        .collect()
}

/// A process group of `user` standing in for a job: a leader `sleep` and a background one.
fn sleep_group(user: User) -> Running {
    sleep_group_holding(user, JOB_GROUP)
}

/// [`sleep_group`] holding the additional group of a job of its own: terminating a job
/// without the engine kills every process of the owner holding the job's group, and
/// [`JOB_GROUP`] is every other test's.
fn sleep_group_holding(user: User, group: u32) -> Running {
    let command = as_user_holding(
        user,
        group,
        &["/bin/sh", "-c", "sleep 120 & exec sleep 120"],
    );
    let group = Running::spawn(command, format!("sleep group of {}", user.name));
    wait_until("the sleep group has two members", START_TIMEOUT, || {
        group_members(group.pid).len() == 2
    });
    group
}

// ---------------------------------------------------------------------------------------------
// Suspend and resume

#[test]
fn suspend_pauses_the_container_and_resume_continues_it() {
    require_engine!();
    let job = Job::new(COUNTER);
    let mut starter = job.spawn();
    wait_until("the job counts", START_TIMEOUT, || {
        assert!(!starter.has_exited(), "{}", starter.stderr_so_far());
        counter(&job) >= 3
    });
    let pid = starter.pid;

    method(&job, "suspend", pid).assert_code(0);
    assert_eq!(state(&job), "paused");
    // A clock of the job's own pace ticks 10 times: a running job would have counted as often.
    let frozen = Ticker::start(Duration::from_millis(100)).assert_unchanged(
        "the counter advanced while paused",
        10,
        || counter(&job),
    );

    let again = method(&job, "suspend", pid);
    again.assert_code(0);
    assert!(again.qdock_lines().is_empty(), "{again:?}");
    assert_eq!(state(&job), "paused");

    method(&job, "resume", pid).assert_code(0);
    assert_eq!(state(&job), "running");
    wait_until(
        "the counter advances after resume",
        Duration::from_secs(10),
        || counter(&job) > frozen + 2,
    );

    let again = method(&job, "resume", pid);
    again.assert_code(0);
    assert!(again.qdock_lines().is_empty(), "{again:?}");
    assert_eq!(state(&job), "running");

    method(&job, "terminate", pid).assert_code(0);
    assert_ends(&job, starter, 0);
}

// ---------------------------------------------------------------------------------------------
// Terminate

#[test]
fn terminate_lets_the_job_clean_up_within_the_grace_period() {
    require_engine!();
    let job = Job::new(TRAPS_TERM);
    let starter = start(&job, "started");
    // stop_grace_secs is 10 in /etc/qdock/qdock.toml; the job needs a fraction of a second.
    terminate_within(&job, &starter, Duration::from_secs(6));
    assert_ends(&job, starter, 0);
    assert_eq!(
        fs::read_to_string(job.file("cleaned")).expect("the job's trap ran"),
        "cleaned up\n"
    );
}

#[test]
fn terminate_kills_a_job_that_ignores_sigterm_after_the_grace_period() {
    require_engine!();
    let job = Job::new(IGNORES_TERM).with_config("[container]\nstop_grace_secs = 2\n");
    let starter = start(&job, "started");
    let out = terminate_within(&job, &starter, Duration::from_secs(7));
    assert!(
        out.elapsed >= Duration::from_millis(1900),
        "terminate should take about the 2 s grace period\n{out:?}"
    );
    assert_ends(&job, starter, 137);
}

#[test]
fn terminate_of_a_paused_container_unpauses_and_stops_it() {
    require_engine!();
    let job = Job::new(TRAPS_TERM);
    let starter = start(&job, "started");
    method(&job, "suspend", starter.pid).assert_code(0);
    assert_eq!(state(&job), "paused");
    terminate_within(&job, &starter, Duration::from_secs(6));
    assert_ends(&job, starter, 0);
    assert!(
        job.file("cleaned").exists(),
        "the paused job got no SIGTERM"
    );
}

// ---------------------------------------------------------------------------------------------
// Ownership

#[test]
fn another_user_cannot_control_the_container() {
    require_engine!();
    let job = Job::new(COUNTER);
    let mut starter = job.spawn();
    wait_until("the job counts", START_TIMEOUT, || {
        assert!(!starter.has_exited(), "{}", starter.stderr_so_far());
        counter(&job) >= 1
    });
    let pid = starter.pid;
    // Bob, with the same job's environment and method line.
    let mut bob = Job::new("").user(BOB);
    bob.id = job.id;
    let refused = |action: &str, expected_state: &str| {
        let out = method(&bob, action, pid);
        out.assert_code(100);
        let lines = out.qdock_lines();
        assert_eq!(lines.len(), 1, "{action}: {out:?}");
        // Bob is not the job: refused before the engine is even asked.
        out.assert_qdock_line(&[&job.id.to_string(), "not proven", "alice", "bob"]);
        assert_eq!(
            state(&job),
            expected_state,
            "bob's {action} changed the container"
        );
        let starter_state = proc_state(pid);
        assert!(
            starter_state.is_some_and(|s| s != 'T'),
            "bob's {action} signalled the starter (state {starter_state:?})"
        );
    };
    refused("suspend", "running");
    refused("terminate", "running");
    method(&job, "suspend", pid).assert_code(0);
    refused("resume", "paused");
    refused("terminate", "paused");
    method(&job, "resume", pid).assert_code(0);
    method(&job, "terminate", pid).assert_code(0);
    assert_ends(&job, starter, 0);
}

// ---------------------------------------------------------------------------------------------
// Native jobs (no IMAGE): Grid Engine's own signals, to the whole process group

#[test]
fn native_jobs_get_stop_cont_and_kill() {
    require_engine!();
    let job = Job::new("").native();
    let group = sleep_group(ALICE);
    let pgid = group.pid;
    let members = group_members(pgid);
    let all_in = |s: char| members.iter().all(|&p| proc_state(p) == Some(s));

    method(&job, "suspend", group.pid).assert_code(0);
    wait_until("the group is stopped", Duration::from_secs(5), || {
        all_in('T')
    });
    method(&job, "resume", group.pid).assert_code(0);
    wait_until("the group runs again", Duration::from_secs(5), || {
        all_in('S')
    });
    method(&job, "terminate", group.pid).assert_code(0);
    group
        .wait(Duration::from_secs(5))
        .assert_killed_by(Signal::SIGKILL);
    wait_until("the whole group is gone", Duration::from_secs(5), || {
        group_members(pgid).is_empty()
            && members
                .iter()
                .all(|&p| proc_state(p).is_none_or(|s| s == 'Z'))
    });
}

// ---------------------------------------------------------------------------------------------
// Before the container exists

/// The starter is held before its container exists (here: its engine hangs). Suspend must
/// stop it, resume continue it, and terminate of a stopped one continue and end it, with no
/// container ever created. The methods themselves reach the real engine.
#[test]
fn methods_drive_a_starter_that_has_no_container_yet() {
    require_engine!();
    let job = Job::new("echo ran > ran");
    let hung = FakeEngine::start(job.dir.join("hung.sock"), FakeAnswers::Nothing);
    let mut job = job.with_config(&hung.config(60));
    let starter = job.spawn();
    // The starter asked and waits for the answer.
    hung.wait_for_request("HEAD /_ping", START_TIMEOUT);
    let pid = starter.pid;
    job.mode = Mode::Installed;

    method(&job, "suspend", pid).assert_code(0);
    wait_until("the starter is stopped", Duration::from_secs(5), || {
        proc_state(pid) == Some('T')
    });
    method(&job, "resume", pid).assert_code(0);
    wait_until("the starter runs again", Duration::from_secs(5), || {
        proc_state(pid) != Some('T')
    });
    method(&job, "suspend", pid).assert_code(0);
    wait_until("the starter is stopped", Duration::from_secs(5), || {
        proc_state(pid) == Some('T')
    });

    // A starter left stopped would only die of the SIGKILL after the 10 s grace (137).
    terminate_within(&job, &starter, Duration::from_secs(5));
    starter.wait(Duration::from_secs(10)).assert_code(143);
    assert!(!job.file("ran").exists());
    job.assert_no_container();
}

// ---------------------------------------------------------------------------------------------
// The engine is gone or hangs: terminate must still end the job

/// A job holding `group` (of its own: see [`sleep_group_holding`]) whose config names an
/// engine socket that does not exist.
fn job_without_engine(group: u32) -> Job {
    let job = Job::new("").group(group);
    let config = format!(
        "[engine]\nsocket = \"{}\"\n",
        job.dir.join("missing.sock").display()
    );
    job.with_config(&config)
}

#[test]
fn terminate_without_the_engine_kills_the_job_and_leaves_the_container_to_gc() {
    require_engine!();
    let job = job_without_engine(65386);
    let group = sleep_group_holding(ALICE, job.group);
    let out = method(&job, "terminate", group.pid);
    out.assert_code(0);
    out.assert_qdock_line(&["qdock gc", &job.container_name()]);
    group
        .wait(Duration::from_secs(5))
        .assert_killed_by(Signal::SIGKILL);
}

/// Open Cluster Scheduler leaves ENABLE_ADDGRP_KILL off, so no shepherd kills what the job
/// runs outside its process group (a container's processes) when terminate cannot reach the
/// engine: terminate kills every process of the owner holding the job's group itself, and
/// no other of the owner's.
#[test]
fn terminate_without_the_engine_kills_every_process_holding_the_jobs_group() {
    require_engine!();
    let job = job_without_engine(65389);
    let group = sleep_group_holding(ALICE, job.group);
    // Stands for a container's process: the job's group, another process group.
    let holder = Running::spawn(
        as_user_holding(ALICE, job.group, &["/bin/sleep", "120"]),
        "a process holding the job's group".into(),
    );
    // Alice's other work, of another job.
    let other = Running::spawn(
        as_user_holding(ALICE, 65385, &["/bin/sleep", "120"]),
        "another job's process".into(),
    );
    wait_until("both sleep", START_TIMEOUT, || {
        [holder.pid, other.pid]
            .iter()
            .all(|&p| proc_state(p) == Some('S'))
    });
    method(&job, "terminate", group.pid).assert_code(0);
    holder
        .wait(Duration::from_secs(5))
        .assert_killed_by(Signal::SIGKILL);
    group
        .wait(Duration::from_secs(5))
        .assert_killed_by(Signal::SIGKILL);
    assert_eq!(
        proc_state(other.pid),
        Some('S'),
        "another job's process died"
    );
}

#[test]
fn terminate_kills_the_job_when_the_engine_hangs_half_way() {
    require_engine!();
    let job = Job::new("").group(65387);
    // Answers the version negotiation, then never answers the container look-up.
    let engine = FakeEngine::start(job.dir.join("half.sock"), FakeAnswers::Ping);
    let job = job.with_config(&engine.config(1));
    let group = sleep_group_holding(ALICE, job.group);
    let out = method(&job, "terminate", group.pid);
    out.assert_code(0);
    out.assert_qdock_line(&["did not answer within 1 s"]);
    out.assert_qdock_line(&["qdock gc", &job.container_name()]);
    // Half way: connected, then hung at the container look-up (bollard 0.21 sends it without
    // the API version in the path, so only its end is fixed).
    let requests = engine.requests();
    let look_up = format!("/containers/{}/json", job.container_name());
    assert!(
        matches!(&requests[..], [ping, get]
            if ping == "HEAD /_ping" && get.starts_with("GET /") && get.ends_with(&look_up)),
        "requests to the fake engine: {requests:?}\n{out:?}"
    );
    group
        .wait(Duration::from_secs(5))
        .assert_killed_by(Signal::SIGKILL);
}

/// Grid Engine waits for the terminate method's job to end: with the engine hung at the
/// look-up (and a 30 s engine timeout), the job still ends within the grace period + 5 s.
#[test]
fn terminate_with_a_hung_engine_ends_the_job_within_grace_and_five_seconds() {
    require_engine!();
    let job = Job::new("").group(65388);
    let engine = FakeEngine::start(job.dir.join("hung.sock"), FakeAnswers::Ping);
    let grace = 2;
    let config = format!(
        "{}[container]\nstop_grace_secs = {grace}\n",
        engine.config(30)
    );
    let job = job.with_config(&config);
    let group = sleep_group_holding(ALICE, job.group);
    let out = method(&job, "terminate", group.pid);
    out.assert_code(0);
    out.assert_qdock_line(&["qdock gc", &job.container_name()]);
    assert!(
        out.elapsed < Duration::from_secs(grace + 5),
        "terminate took {:?}\n{out:?}",
        out.elapsed
    );
    group
        .wait(Duration::from_secs(5))
        .assert_killed_by(Signal::SIGKILL);
}

// ---------------------------------------------------------------------------------------------
// qdock gc

#[test]
fn gc_removes_only_containers_whose_starter_is_gone() {
    require_engine!();
    // A cell of its own: a running `qdock gc --watch` (bin/setup-cluster starts one for the
    // cell `default`) would remove the orphan before this test looks at it, and `--cell`
    // keeps this sweep away from other tests' orphans.
    let cell = format!("gc-test-{}", std::process::id());
    let in_cell = |job: Job| job.cell(&cell);
    let orphan = in_cell(Job::new(TRAPS_TERM));
    let live = in_cell(Job::new(TRAPS_TERM));
    let orphan_starter = start(&orphan, "started");
    let live_starter = start(&live, "started");
    orphan_starter.signal(Signal::SIGKILL);
    orphan_starter
        .wait(Duration::from_secs(10))
        .assert_killed_by(Signal::SIGKILL);
    assert!(
        orphan.container_running(),
        "the container should outlive its starter"
    );

    let admin = Job::new("").native().mode(Mode::Root(None));
    let dry = admin.run_method(
        "qdock",
        &["gc", "--dry-run", "--cell", &cell],
        METHOD_TIMEOUT,
    );
    dry.assert_code(0);
    let listed = dry.stdout_text();
    assert!(
        listed.contains(&format!("would remove {}", orphan.container_name())),
        "{dry:?}"
    );
    assert!(!listed.contains(&live.container_name()), "{dry:?}");
    assert!(orphan.container_running(), "--dry-run removed the orphan");

    let gc = admin.run_method("qdock", &["gc", "--cell", &cell], METHOD_TIMEOUT);
    gc.assert_code(0);
    let text = gc.stdout_text();
    assert!(
        text.contains(&format!("removed {}", orphan.container_name())),
        "{gc:?}"
    );
    assert!(!text.contains(&live.container_name()), "{gc:?}");
    orphan.assert_no_container();
    assert!(
        live.container_running(),
        "gc touched a live job's container"
    );

    method(&live, "terminate", live_starter.pid).assert_code(0);
    assert_ends(&live, live_starter, 0);
}

#[test]
fn gc_is_refused_to_ordinary_users() {
    require_engine!();
    let job = Job::new("").native();
    let out = job.run_method("qdock", &["gc"], METHOD_TIMEOUT);
    out.assert_code(100);
    out.assert_qdock_line(&["root"]);
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// `qdock check` says which engine answers and its version, as the engine's own client sees
/// them; under Podman the installed binaries reach it as on Docker.
#[test]
fn qdock_check_names_the_engine_and_its_version() {
    require_engine!();
    let admin = Job::new("").native().mode(Mode::Root(None));
    let out = admin.run_method("qdock", &["check"], METHOD_TIMEOUT);
    let version = docker_text(&["version", "--format", "{{.Server.Version}}"]);
    let kind = match engine::test_engine() {
        engine::TestEngine::Docker => "Docker",
        engine::TestEngine::Podman => "Podman",
    };
    let stdout = out.stdout_text();
    let line = stdout
        .lines()
        .find(|l| l.contains("engine at "))
        .unwrap_or_else(|| panic!("no engine line: {out:?}"));
    assert!(line.starts_with("ok "), "{out:?}");
    assert!(
        line.contains(&format!("answers: {kind} {version} (API ")),
        "{line}"
    );
}

#[test]
fn gc_with_an_unreachable_engine_fails() {
    require_engine!();
    let admin = Job::new("").native().mode(Mode::Root(None));
    let missing = admin.dir.join("missing.sock");
    let config = admin.write_config(&format!("[engine]\nsocket = \"{}\"\n", missing.display()));
    let config = config.display().to_string();
    let out = admin.run_method("qdock", &["gc", "--config", &config], METHOD_TIMEOUT);
    out.assert_code(99);
    assert_eq!(out.qdock_lines().len(), 1, "{out:?}");
    out.assert_qdock_line(&["missing.sock"]);
}

// ---------------------------------------------------------------------------------------------
// A terminal nobody reads

/// How long the starter may take to end once its job's container was told to stop while its
/// terminal is unread: the container ends once the starter takes its output from the engine
/// again, which it does, dropping it, when its writer has sat 5 s in one write (terminal.rs);
/// the container is then removed at once.
const UNREAD_END: Duration = Duration::from_secs(10);

/// Starts `job`, which floods its output, with the starter on a terminal nobody reads (a
/// `qrsh -pty y` whose client stopped, with nothing between them holding the output), and
/// waits until the starter's output thread sleeps in one write(2) for good. Returns the
/// starter, that write (see `writer_in_write`) and the terminal, to be kept open.
fn flood_an_unread_terminal(job: &Job) -> (Running, String, pty::Unread) {
    job.write_script();
    let terminal = pty::Unread::open(24, 80);
    let command = job.command("qdock-starter", &[job.script_path.clone().into_os_string()]);
    let starter = terminal.spawn(command, "the starter on a terminal nobody reads".into());
    let blocked = pty::wait_for_blocked_writer(starter.pid, START_TIMEOUT);
    (starter, blocked, terminal)
}

/// The starter's output thread blocked on its terminal, the starter still serves the
/// methods: suspend pauses, resume unpauses, terminate (qdel) ends the job, and the
/// starter removes the container and exits with the job's code.
#[test]
fn a_terminal_nobody_reads_holds_the_output_not_the_methods() {
    require_engine!();
    let job = Job::new("exec yes flood\n");
    let (starter, blocked, _terminal) = flood_an_unread_terminal(&job);
    let pid = starter.pid;
    let paused = || inspect(&job.container_name(), "{{.State.Paused}}");
    method(&job, "suspend", pid).assert_code(0);
    assert_eq!(paused(), "true");
    method(&job, "resume", pid).assert_code(0);
    assert_eq!(paused(), "false");
    // Nobody read meanwhile: the same write still waits.
    assert_eq!(
        pty::writer_in_write(pid),
        Some(blocked),
        "the terminal was read"
    );
    // The container ends once the starter drops what the terminal does not take, 5 s after
    // its writer blocked at the latest: what counts here is that it ends, and the starter.
    let out = method(&job, "terminate", pid);
    out.assert_code(0);
    let end = starter.wait(UNREAD_END);
    eprintln!(
        "terminate took {:?}; the starter ended {:?} after its start",
        out.elapsed, end.elapsed
    );
    // `yes` died of the stop signal.
    end.assert_code(143);
    job.assert_no_container();
}

/// SIGTERM to a starter whose output thread is blocked on its terminal: the starter's
/// words about it go the same way as the output, so it stops the container, removes it and
/// exits 143 all the same.
#[test]
fn a_terminal_nobody_reads_holds_the_output_not_sigterm() {
    require_engine!();
    let job = Job::new("exec yes flood\n");
    let (starter, _, _terminal) = flood_an_unread_terminal(&job);
    starter.signal(Signal::SIGTERM);
    let end = starter.wait(UNREAD_END);
    end.assert_code(143);
    job.assert_no_container();
}
