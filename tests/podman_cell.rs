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
//! --ignored` (under `CI=true` a missing Podman host then fails them), with the one such test
//! each of drmaa.rs, workflow.rs and gpus.rs (DRMAA, Snakemake and a GPU job on the host).

#[macro_use]
mod common;

use common::cell::*;
use common::hosts::*;
use common::pty::{qrsh_shell, session_job};
use common::*;

use std::fs;
use std::time::Duration;

const HOST: Host = PODMAN_HOST;

/// The state of `job`'s container (task 0) in the Podman host's Podman; None once it is gone.
fn podman_state(job: u32) -> Option<String> {
    HOST.inspect(job, 0, "{{.State.Status}}")
}

/// Waits until the container of `job`'s task `task` runs in the host's Podman.
fn wait_running_in_podman(case: &Case, job: u32, task: u32) {
    case.wait_until(
        &format!("{} runs in Podman", task_container(job, task)),
        JOB_TIMEOUT,
        || HOST.inspect(job, task, "{{.State.Status}}").as_deref() == Some("running"),
    );
}

/// What happened to `job`'s container (task 0) in Podman: `create`, `start`, `pause` …
fn podman_events(job: u32) -> Vec<String> {
    HOST.container_events(job, 0, "{{.Status}}")
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
    HOST.assert_ran_in_podman(script, 0);

    assert_ran_on_host(&case, binary, 0);
    assert_eq!(case.read(format!("echo.o{binary}")), "hi there\n");
    assert_runs_line(&case.read(format!("echo.e{binary}")), binary);
    HOST.assert_ran_in_podman(binary, 0);
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
    HOST.assert_ran_in_podman(job, 0);
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

/// Unix seconds now, as the usage record's `start`.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// `-t 1-3` on the Podman host: one container per task, each created, started, ended with
/// its task's own exit status (`qacct` and Podman's `died` event) and removed. `qdock usage
/// JOB` as alice gives each task's record: node3, its container, the image's ID in node3's
/// Podman, an exact measure.
#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3): cargo test --test podman_cell -- --ignored"]
fn an_array_job_runs_a_podman_container_per_task_each_in_the_usage_record() {
    require_podman_host!();
    let case = Case::cluster("podman-array");
    case.script(
        "task.sh",
        "echo \"task $SGE_TASK_ID\"\ncat /qdock-image-marker\nexit $((SGE_TASK_ID + 10))\n",
    );
    let began = unix_now();
    let job = case.qsub_image(
        IMAGE,
        &["-q", &HOST.queue(), "-t", "1-3", "-N", "arr", "task.sh"],
    );
    let acct = case.wait_done(job, 3);
    let mut ended: Vec<(String, &str, i32, i32)> = acct
        .iter()
        .map(|a| {
            let task = a.get("taskid").to_string();
            (task, a.get("hostname"), a.failed(), a.exit_status())
        })
        .collect();
    ended.sort();
    let expected: Vec<(String, &str, i32, i32)> = (1..=3)
        .map(|t| (t.to_string(), HOST.name, 0, t + 10))
        .collect();
    assert_eq!(ended, expected, "{acct:?}");
    for task in 1..=3 {
        assert_eq!(
            case.read(format!("arr.o{job}.{task}")),
            format!("task {task}\n{IMAGE}\n")
        );
        HOST.assert_ran_in_podman(job, task);
        let died = HOST.container_events(job, task, "{{.Status}} {{.ContainerExitCode}}");
        assert!(
            died.contains(&format!("died {}", task + 10)),
            "task {task}: {died:?}"
        );
    }

    let image_id = HOST.docker_text(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    let json = case.client("qdock", &["usage", "--json", &job.to_string()]);
    // An earlier run's job of the same number (a qmaster started anew) started before.
    let mut records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .filter(|r: &serde_json::Value| r["start"].as_i64() >= Some(began))
        .collect();
    records.sort_by_key(|r| r["task"].as_u64());
    assert_eq!(records.len(), 3, "{json}");
    for (r, task) in records.iter().zip(1..=3) {
        assert_eq!(
            (&r["task"], &r["owner"], &r["host"]),
            (&task.into(), &"alice".into(), &HOST.name.into()),
            "{json}"
        );
        let c = &r["container"];
        assert_eq!(c["name"], task_container(job, task), "{json}");
        assert_eq!(c["exit"], task + 10, "{json}");
        // Podman's CLI shows the ID without the `sha256:` its API gives.
        assert_eq!(
            c["image_id"]
                .as_str()
                .map(|id| id.trim_start_matches("sha256:")),
            Some(image_id.trim_start_matches("sha256:")),
            "{json}"
        );
        assert_eq!(c["usage"]["exact"], true, "{json}");
    }
    assert_clean(&case);
}

/// The resource requests on the Podman host, three jobs at once in its four slots, each
/// container seen by Podman and from inside its cgroups:
/// - `-pe smp 2`: `NSLOTS=2`, two CPUs' quota, the execd's `$PE_HOSTFILE` mounted read-only
///   at its own path;
/// - `-binding linear:1 -l h_vmem=256M`: the cpuset is the one core Grid Engine bound the job
///   to (its starter's affinity); the memory limit is 256 MiB, no swap beyond it, and a child
///   allocating more is killed while the job goes on;
/// - `-l h_rt=0:0:5`: Grid Engine ends the job at its limit (`failed` 37), its container
///   stopped and gone from Podman.
#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3): cargo test --test podman_cell -- --ignored"]
fn pe_smp_binding_h_vmem_and_h_rt_act_on_the_podman_container() {
    require_podman_host!();
    let case = Case::cluster("podman-resources");
    let queue = HOST.queue();
    case.script(
        "smp.sh",
        &format!(
            "echo \"slots=$NSLOTS pe=$PE\"\ncat \"$PE_HOSTFILE\"\n\
             cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us\n{UNTIL_GO}"
        ),
    );
    case.script(
        "bound.sh",
        &format!(
            "grep Cpus_allowed_list /proc/self/status\ncat /sys/fs/cgroup/cpuset/cpuset.cpus\n\
             cat /sys/fs/cgroup/memory/memory.limit_in_bytes\n{UNTIL_GO}\
             head -c 600m /dev/zero | tail > /dev/null\necho \"survived $?\"\n"
        ),
    );
    case.script("long.sh", "echo started\nsleep 60\necho not-reached\n");
    let timed = case.qsub_image(IMAGE, &["-q", &queue, "-l", "h_rt=0:0:5", "long.sh"]);
    let smp = case.qsub_image(IMAGE, &["-q", &queue, "-pe", "smp", "2", "smp.sh"]);
    let bound = case.qsub_image(
        IMAGE,
        &[
            "-q",
            &queue,
            "-binding",
            "linear:1",
            "-l",
            "h_vmem=256M",
            "bound.sh",
        ],
    );
    for job in [timed, smp, bound] {
        wait_running_in_podman(&case, job, 0);
    }
    let look = |job, format| HOST.inspect(job, 0, format).unwrap_or_default();

    assert_eq!(look(smp, "{{.HostConfig.NanoCpus}}"), "2000000000");
    let mounts = look(smp, BIND_MOUNTS);
    assert_pe_hostfile_mounted(&mounts, smp);
    // The execd's own file: node3's spool.
    let spool = format!("/{}/active_jobs/{smp}.1/pe_hostfile ", HOST.name);
    assert!(mounts.contains(&spool), "{mounts}");

    let starter = look(bound, "{{index .Config.Labels \"qdock.starter-pid\"}}");
    let status = fs::read_to_string(format!("/proc/{starter}/status"))
        .unwrap_or_else(|e| panic!("the starter {starter:?}: {e}"));
    let job_cores = cpus_allowed(&status).to_string();
    assert!(
        job_cores.parse::<u32>().is_ok(),
        "bound to one core: {job_cores}"
    );
    assert_eq!(look(bound, "{{.HostConfig.CpusetCpus}}"), job_cores);
    let limit = (256u64 << 20).to_string();
    assert_eq!(
        look(bound, "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}"),
        format!("{limit} {limit}")
    );

    let grace = Duration::from_secs(5) + stop_grace() + Duration::from_secs(10);
    case.wait_until("the h_rt job's container gone from Podman", grace, || {
        podman_state(timed).is_none()
    });
    let acct = case.wait_done(timed, 1);
    assert_eq!(acct[0].get("hostname"), HOST.name, "{acct:?}");
    // failed 37: "qmaster enforced h_rt, h_cpu, or h_vmem limit"
    assert_eq!(acct[0].failed(), 37, "{acct:?}");
    assert!(acct[0].exit_status() >= 128, "killed: {acct:?}");
    let wall = acct[0].wallclock_secs();
    assert!((5.0..30.0).contains(&wall), "{acct:?}");
    assert_eq!(case.read(format!("long.sh.o{timed}")), "started\n");
    HOST.assert_ran_in_podman(timed, 0);

    fs::write(case.path("go"), "").expect("go");
    for job in [smp, bound] {
        assert_ran_on_host(&case, job, 0);
        HOST.assert_ran_in_podman(job, 0);
    }
    let out = case.read(format!("smp.sh.o{smp}"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"slots=2 pe=smp"), "{out}");
    // One host, both slots: "node3 2 all.q@node3 UNDEFINED".
    let host_line: Vec<&str> = lines
        .get(1)
        .copied()
        .unwrap_or_default()
        .split(' ')
        .collect();
    assert_eq!(host_line[..3], [HOST.name, "2", queue.as_str()], "{out}");
    let quota: Vec<u64> = lines[2..].iter().filter_map(|l| l.parse().ok()).collect();
    assert!(
        matches!(quota[..], [quota, period] if quota == 2 * period),
        "two CPUs' quota: {out}"
    );
    assert_eq!(
        case.read(format!("bound.sh.o{bound}")),
        format!("Cpus_allowed_list:\t{job_cores}\n{job_cores}\n{limit}\nsurvived 137\n")
    );
    assert_clean(&case);
}

/// `qrsh -pty y` on the Podman host: a shell in the image on a terminal of the container's
/// own (Podman's `Config.Tty`), its size that of the user's terminal, the shell's exit code
/// qrsh's.
#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3): cargo test --test podman_cell -- --ignored"]
fn qrsh_with_a_terminal_gives_a_shell_in_a_podman_container() {
    require_podman_host!();
    let case = Case::cluster("podman-pty");
    let queue = HOST.queue();
    let image = format!("IMAGE={IMAGE}");
    let mut shell = qrsh_shell(&case, &["-q", &queue, "-v", &image]);
    let job = session_job(&case, &mut shell);
    assert_eq!(
        HOST.inspect(job, 0, "{{.State.Status}} {{.Config.Tty}}")
            .as_deref(),
        Some("running true")
    );
    let said = shell.run("hostname; cat /qdock-image-marker; tty; stty size");
    assert!(
        said.contains(&format!("\r\n{}\r\n{IMAGE}\r\n/dev/pts/", HOST.name)),
        "{said:?}"
    );
    assert!(said.contains("\r\n33 97\r\n"), "{said:?}");
    shell.send(b"exit 7\r");
    let status = shell.wait();
    assert_eq!(status.code(), Some(7), "{}", shell.transcript());
    case.wait_until("the job left qstat", JOB_TIMEOUT, || {
        case.states(job).is_empty()
    });
    HOST.assert_ran_in_podman(job, 0);
    assert_clean(&case);
}

/// A starter SIGKILLed under its running container (as the shepherd kills it when qrsh dies):
/// nobody is left to remove the container but node3's `qdock gc --watch`, which does, in
/// Podman.
#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3): cargo test --test podman_cell -- --ignored"]
fn a_killed_starters_podman_container_is_removed_by_the_hosts_gc_watcher() {
    require_podman_host!();
    let case = Case::cluster("podman-orphan");
    case.script("hold.sh", UNTIL_GO);
    let job = case.qsub_image(IMAGE, &["-q", &HOST.queue(), "hold.sh"]);
    wait_running_in_podman(&case, job, 0);
    let removed = format!("removed {} ", task_container(job, 0));
    let log = || HOST.log("qdock-gc-watch.log");
    assert!(!log().contains(&removed), "an earlier {removed:?}");
    let starter: i32 = HOST
        .inspect(job, 0, "{{index .Config.Labels \"qdock.starter-pid\"}}")
        .and_then(|p| p.parse().ok())
        .expect("the starter's pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(starter), Signal::SIGKILL)
        .expect("kill the starter");
    case.wait_until("node3's watcher removed the container", JOB_TIMEOUT, || {
        log().contains(&removed)
    });
    assert_eq!(podman_state(job), None);
    let acct = case.wait_done(job, 1);
    assert_eq!(acct[0].get("hostname"), HOST.name, "{acct:?}");
    assert_eq!(acct[0].exit_status(), 137, "{acct:?}");
    assert!(podman_events(job).iter().any(|e| e == "remove"));
    assert_clean(&case);
}
