//! The mixed cell: Podman through the real Grid Engine. `bin/setup-cluster --hosts 3
//! --podman-host node3` makes node1 and node2 with dockerd and node3 ([`PODMAN_HOST`]) with
//! rootful Podman, whose API service listens on `/run/podman/podman.sock` in node3's own
//! /run and which node3's `/etc/qdock/qdock.toml` names in `[engine] socket`, nothing else
//! changed. Jobs go to node3 by `-q all.q@node3`, or by the image only node3's Podman holds
//! (the load sensor and the JSV); their containers are checked in node3's Podman with its
//! own CLI and its event log. Each test holds the cell exclusively ([`Case::cluster`]).
//!
//! The tests are `#[ignore]`d: `bin/test`'s cell has two hosts, both on dockerd. `.ci/run`
//! makes the mixed cell after it and runs them with `cargo test --test podman_cell --
//! --ignored` (under `CI=true` a missing Podman host then fails them).

#[macro_use]
mod common;

use common::cell::*;
use common::hosts::*;
use common::*;

use std::fs;
use std::time::Duration;

const HOST: Host = PODMAN_HOST;

/// Skips (or under CI fails) a test without the Podman host.
macro_rules! require_podman_host {
    () => {
        if !require_podman_host() {
            return;
        }
    };
}

/// The state of `job`'s container (task 0) in the Podman host's Podman; None once it is gone.
fn podman_state(job: u32) -> Option<String> {
    let name = task_container(job, 0);
    let out = HOST.docker(&["inspect", "--format", "{{.State.Status}}", &name]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What Podman's event log on the host says happened to `job`'s container, in order
/// (`create`, `start`, `pause`, `died`, `remove` …).
fn podman_events(job: u32) -> Vec<String> {
    let filter = format!("container={}", task_container(job, 0));
    HOST.docker_text(&[
        "events",
        "--stream=false",
        "--filter",
        &filter,
        "--format",
        "{{.Status}}",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// The job's container came and went in the host's Podman: created, started, died, removed.
fn assert_ran_in_podman(job: u32) {
    let events = podman_events(job);
    for wanted in ["create", "start", "died", "remove"] {
        assert!(
            events.iter().any(|e| e == wanted),
            "no {wanted} in Podman's events of job {job}: {events:?}"
        );
    }
}

/// `job` ran once, on the Podman host, and exited with `code` by itself (failed 0).
fn assert_ran_on_host(case: &Case, job: u32, code: i32) {
    let acct = case.wait_done(job, 1);
    assert_eq!(acct.len(), 1, "run once, not requeued: {acct:?}");
    assert_eq!(acct[0].get("hostname"), HOST.name, "{acct:?}");
    assert_eq!(
        (acct[0].failed(), acct[0].exit_status()),
        (0, code),
        "{acct:?}"
    );
}

/// The case's jobs are gone, and no container of the cell is left in the host's Podman.
fn assert_clean(case: &Case) {
    case.assert_clean();
    let left = HOST.qdock_containers();
    assert_eq!(left, Vec::<String>::new(), "left in {}'s Podman", HOST.name);
}

/// The `.e` file's first line: `qdock: job <job>.0 runs <image> (image sha256:…) as container
/// qdock-default-<job>-0`.
fn assert_runs_line(stderr: &str, job: u32) {
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("qdock: job {job}.0 runs {IMAGE} (image sha256:"))
            && first.ends_with(&format!("as container {}", task_container(job, 0))),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3): cargo test --test podman_cell -- --ignored"]
fn a_script_job_and_a_binary_job_run_in_podman_with_their_output_and_exit_codes() {
    require_podman_host!();
    let case = Case::cluster("podman-jobs");
    let queue = HOST.queue();
    case.script(
        "job.sh",
        "echo out; cat /qdock-image-marker; echo err >&2; exit 3\n",
    );
    let script = case.qsub_image(IMAGE, &["-q", &queue, "job.sh"]);
    let binary = case.qsub_image(
        IMAGE,
        &["-q", &queue, "-b", "y", "/bin/echo", "hi", "there"],
    );

    assert_ran_on_host(&case, script, 3);
    assert_eq!(
        case.read(format!("job.sh.o{script}")),
        format!("out\n{IMAGE}\n")
    );
    let stderr = case.read(format!("job.sh.e{script}"));
    assert_runs_line(&stderr, script);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.get(1), Some(&"err"), "{stderr}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("qdock: usage: wall ")),
        "{stderr}"
    );
    assert_ran_in_podman(script);

    assert_ran_on_host(&case, binary, 0);
    assert_eq!(case.read(format!("echo.o{binary}")), "hi there\n");
    assert_runs_line(&case.read(format!("echo.e{binary}")), binary);
    assert_ran_in_podman(binary);
    assert_clean(&case);
}

/// `qrsh` on the Podman host: the command's output and exit code come back to qrsh.
#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3): cargo test --test podman_cell -- --ignored"]
fn qrsh_runs_a_command_in_podman_and_returns_its_exit_code() {
    require_podman_host!();
    let case = Case::cluster("podman-qrsh");
    let queue = HOST.queue();
    let image = format!("IMAGE={IMAGE}");
    let args = |command: &'static [&'static str]| {
        let mut all = vec!["-now", "no", "-q", &queue, "-v", &image];
        all.extend_from_slice(command);
        all
    };
    let said = case.client(
        "qrsh",
        &args(&["sh", "-c", "hostname; cat /qdock-image-marker"]),
    );
    assert_eq!(said, format!("{}\n{IMAGE}\n", HOST.name));
    let failed = case.client_output("qrsh", &args(&["exit 4"]));
    assert_eq!(failed.status.code(), Some(4), "{failed:?}");
    assert_clean(&case);
}

/// `qmod -sj` pauses the container in Podman and the job's output stops; `qmod -usj`
/// unpauses it and the output goes on; `qdel` stops and removes it.
#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3): cargo test --test podman_cell -- --ignored"]
fn suspend_resume_and_qdel_act_on_the_container_in_podman() {
    require_podman_host!();
    let case = Case::cluster("podman-control");
    case.script(
        "count.sh",
        "i=0\nwhile :; do i=$((i+1)); echo $i; sleep 1; done\n",
    );
    let job = case.qsub_image(IMAGE, &["-q", &HOST.queue(), "-N", "count", "count.sh"]);
    let out = case.path(&format!("count.o{job}"));
    let printed = || fs::read_to_string(&out).map_or(0, |s| s.lines().count());
    let in_podman = |state: &str| {
        let state = state.to_string();
        move || podman_state(job).as_deref() == Some(state.as_str())
    };
    case.wait_until(
        "the container runs in Podman",
        JOB_TIMEOUT,
        in_podman("running"),
    );
    case.wait_until("the first count", JOB_TIMEOUT, || printed() >= 1);

    case.client("qmod", &["-sj", &job.to_string()]);
    case.wait_state(job, "suspended", |s| s.contains('s'));
    case.wait_until(
        "the container paused in Podman",
        JOB_TIMEOUT,
        in_podman("paused"),
    );
    // Frozen: no new line while a clock of the job's own pace (1 s) ticks 4 times.
    Ticker::start(Duration::from_secs(1)).assert_unchanged(
        "the suspended job wrote output",
        4,
        printed,
    );
    assert_eq!(podman_state(job).as_deref(), Some("paused"));

    case.client("qmod", &["-usj", &job.to_string()]);
    case.wait_state(job, "running again", |s| s == "r");
    case.wait_until(
        "the container runs again",
        JOB_TIMEOUT,
        in_podman("running"),
    );
    let resumed = printed();
    case.wait_until("the count goes on", JOB_TIMEOUT, || printed() > resumed);

    case.client("qdel", &[&job.to_string()]);
    let took = case.wait_until("the container gone from Podman", qdel_limit(), || {
        podman_state(job).is_none()
    });
    eprintln!("container gone from Podman {took:?} after qdel");
    case.wait_until("the job out of qstat", qdel_limit(), || {
        case.states(job).is_empty()
    });
    let acct = case.wait_done(job, 1);
    assert_eq!(acct[0].get("hostname"), HOST.name, "{acct:?}");
    assert!(acct[0].exit_status() >= 128, "killed: {acct:?}");
    let events = podman_events(job);
    let seen: Vec<&str> = ["start", "pause", "unpause", "died", "remove"]
        .into_iter()
        .filter(|e| events.iter().any(|seen| seen == e))
        .collect();
    assert_eq!(
        seen,
        ["start", "pause", "unpause", "died", "remove"],
        "{events:?}"
    );
    assert_clean(&case);
}

/// The Podman host's load sensor reports its engine and its images, Podman's `localhost/`
/// names under the names users type; the JSV sends a job for an image only Podman holds
/// there, with no `-q` from the user.
#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3): cargo test --test podman_cell -- --ignored"]
fn the_jsv_sends_a_job_for_an_image_only_podman_holds_to_the_podman_host() {
    require_podman_host!();
    wait_until_no_host_pulls();
    let case = Case::cluster("podman-only");
    wait_for_load_value(HOST.name, "qdock_engine", is_true);
    let images = wait_for_load_value(HOST.name, "qdock_images", |v| {
        advertised_images(v).contains(&IMAGE)
    });
    assert!(
        advertised_images(&images).contains(&format!("localhost/{IMAGE}").as_str()),
        "{images}"
    );

    let name = format!("qdock/podman-only-{}:1", std::process::id());
    let _tag = HOST.tag(IMAGE, &name);
    for host in [NODE1, NODE2] {
        assert!(!host.has_image(&name), "{name} on {}", host.name);
    }
    assert!(
        !docker(&["image", "inspect", &name]).status.success(),
        "{name} on this machine"
    );
    wait_for_load_value(HOST.name, "qdock_images", |v| {
        advertised_images(v).contains(&name.as_str())
    });
    case.script("marker.sh", "cat /qdock-image-marker\n");
    let job = case.qsub_image(&name, &["marker.sh"]);
    assert!(
        case.qstat_j(job).contains(&image_request(&name)),
        "{}",
        case.qstat_j(job)
    );
    assert_ran_on_host(&case, job, 0);
    assert_eq!(case.read(format!("marker.sh.o{job}")), format!("{IMAGE}\n"));
    assert_ran_in_podman(job);
    assert_clean(&case);
}

/// Podman's API service stopped under a running job, as a package upgrade stops it: its
/// containers run under their own conmon, not under the service, so the job runs on, its
/// output keeps arriving (it never passes through the engine), and it may even end meanwhile.
/// The starter finds it when the service is back: no line lost, the job's own exit code, no
/// requeue (Podman's /info says it has no live-restore; qdock knows better).
#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3): cargo test --test podman_cell -- --ignored"]
fn a_podman_service_restart_under_a_job_loses_no_line_and_keeps_its_exit_code() {
    require_podman_host!();
    let case = Case::cluster("podman-restart");
    case.script("count.sh", GO_COUNTER);
    let job = case.qsub_image(IMAGE, &["-q", &HOST.queue(), "count.sh"]);
    let out = || fs::read_to_string(case.path(&format!("count.sh.o{job}"))).unwrap_or_default();
    // 0 until the file exists: the shepherd creates it when the job starts.
    let printed = || go_counted(&out());
    case.wait_until("the job printed 5 lines", JOB_TIMEOUT, || printed() >= 5);
    let engine = HOST.stop_engine();
    assert!(!HOST.engine_answers(), "Podman's service still answers");
    let before = printed();
    case.wait_until(
        "lines arrive while the service is away",
        JOB_TIMEOUT,
        || printed() >= before + 5,
    );
    write_file(&case.path("go"), "", ALICE.uid, ALICE.gid, 0o644);
    case.wait_until(
        "the job ends while the service is away",
        JOB_TIMEOUT,
        || out().ends_with("end\n"),
    );
    assert_eq!(podman_state(job).as_deref(), Some("exited"));
    assert_eq!(case.states(job), ["r"], "the starter waits for the service");
    engine.restart();
    assert_ran_on_host(&case, job, 7);
    let text = out();
    let n = go_counted(&text);
    let expected: String = (0..n).map(|i| format!("{i}\n")).collect::<String>() + "end\n";
    assert_eq!(text, expected);
    let stderr = case.read(format!("count.sh.e{job}"));
    assert!(
        stderr.contains("qdock: lost the container engine"),
        "{stderr}"
    );
    assert!(
        stderr.contains("qdock: the container engine is back"),
        "{stderr}"
    );
    assert_clean(&case);
}
