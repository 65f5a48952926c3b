//! Workflow managers through the real Grid Engine: Snakemake from PyPI (the pinned venv
//! `bin/test` makes, tests/workflow/requirements.txt) with qdock's profile
//! (sge-conf/snakemake), run by alice over the whole cell (this machine, node1, node2).
//! A shell rule with `container:` runs its command alone in the image, which holds no
//! Python; the other rules run Snakemake's own job script natively.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use common::cell::*;
use common::hosts::*;
use common::*;

const SNAKEMAKE: &str = "/opt/qdock-test/snakemake/bin/snakemake";
const PROFILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sge-conf/snakemake");
/// A whole Snakemake run of this file's small workflows, submissions to the last status.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The rules: `boxed` and `failing` in the test image (a `docker://` URI and a plain
/// reference), `native` on the host, `python_in_image` (a `run:` rule with `container:`)
/// refused; each appends its name to runs.log, so a rerun shows
/// which rules ran again. `failing` writes its output, then exits with `code` (3 unless the
/// config says otherwise): Snakemake must remove that output. `slow` waits in both kinds.
const SNAKEFILE: &str = r#"
rule all:
    input: "out/boxed.txt", "out/native.txt", "out/after.txt"

rule boxed:
    output: "out/boxed.txt"
    container: "docker://qdock/busybox:1"
    params: greeting="hi there"
    shell: "cat /qdock-image-marker > {output}; echo {params.greeting:q} >> {output}; echo boxed >> runs.log"

rule native:
    output: "out/native.txt"
    shell: "test ! -e /qdock-image-marker; echo native > {output}; echo native >> runs.log"

rule failing:
    input: "out/boxed.txt"
    output: "out/after.txt"
    container: "qdock/busybox:1"
    params: code=config.get("code", 3)
    shell: "echo failing >> runs.log; echo partial > {output}; exit {params.code}"

rule python_in_image:
    output: "out/python.txt"
    container: "qdock/busybox:1"
    run:
        open(output[0], "w").write("ran")

rule slow:
    input: "out/slow_boxed.txt", "out/slow_native.txt"

rule slow_boxed:
    output: "out/slow_boxed.txt"
    container: "qdock/busybox:1"
    shell: "sleep 600; touch {output}"

rule slow_native:
    output: "out/slow_native.txt"
    shell: "sleep 600; touch {output}"
"#;

/// The cell with its hosts, and Snakemake installed.
fn require_snakemake() -> bool {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    require_hosts()
        && prerequisites_met(&CHECKED, || {
            let out = std::process::Command::new(SNAKEMAKE)
                .arg("--version")
                .output()
                .map_err(|e| format!("{SNAKEMAKE}: {e}; bin/test installs Snakemake"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{SNAKEMAKE} --version fails: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        })
}

macro_rules! require_snakemake {
    () => {
        if !require_snakemake() {
            return;
        }
    };
}

/// A workflow directory of alice's with [`SNAKEFILE`].
fn workflow(name: &str) -> Case {
    let case = Case::cluster(name);
    write_file(
        &case.path("Snakefile"),
        SNAKEFILE,
        ALICE.uid,
        ALICE.gid,
        0o644,
    );
    case
}

/// Snakemake with qdock's profile, as alice in the case's directory, running; its jobs
/// submitted with the profile's `QDOCK_QSUB_OPTIONS` set to `qsub_options`.
fn start(case: &Case, args: &[&str], qsub_options: &str) -> Running {
    let mut all = vec!["--profile", PROFILE, "--seconds-between-status-checks", "1"];
    all.extend_from_slice(args);
    let mut command = case.command(SNAKEMAKE, &all);
    command
        .env("QDOCK_QSUB_OPTIONS", qsub_options)
        .stdin(Stdio::null())
        .process_group(0);
    Running::spawn(command, format!("snakemake {args:?}"))
}

/// The Grid Engine jobs Snakemake says it submitted (`… with external jobid '12'.`).
fn submitted(log: &str) -> Vec<u32> {
    log.lines()
        .filter_map(|l| l.split("external jobid '").nth(1)?.split('\'').next())
        .map(|id| id.parse().expect("a job id"))
        .collect()
}

/// Runs Snakemake to its end; registers its jobs with the case and checks that none left a
/// container on any host; returns its exit code, its log and the jobs' accounting records
/// by rule (the job name is `snakejob.RULE.N`).
fn run(case: &Case, args: &[&str], qsub_options: &str) -> (i32, String, Vec<(String, Acct)>) {
    let out = start(case, args, qsub_options).wait(RUN_TIMEOUT);
    let jobs = submitted(&out.stderr);
    let mut records = Vec::new();
    for &job in &jobs {
        case.adopt(job);
        let acct = case.wait_done(job, 1).pop().expect("a record");
        assert_no_container_anywhere(job);
        let rule = acct
            .get("jobname")
            .split('.')
            .nth(1)
            .unwrap_or("")
            .to_string();
        records.push((rule, acct));
    }
    records.sort_by(|a, b| a.0.cmp(&b.0));
    (out.code(), out.stderr, records)
}

fn runs_log(case: &Case) -> Vec<String> {
    case.read("runs.log").lines().map(str::to_string).collect()
}

/// No host's engine (this machine's, node1's, node2's) holds a container of `job`.
fn assert_no_container_anywhere(job: u32) {
    assert_eq!(containers_of(job), Vec::<String>::new(), "job {job} here");
    let label = format!("label=qdock.job-id={job}");
    for host in Host::all() {
        let left = host.docker_text(&["ps", "-a", "--filter", &label, "--format", "{{.Names}}"]);
        assert_eq!(left, "", "job {job} on {}", host.name);
    }
}

/// The running containers of `job` on any host.
fn running_container_hosts(job: u32) -> Vec<String> {
    let label = format!("label=qdock.job-id={job}");
    let filter = ["ps", "--filter", &label, "--filter", "status=running", "-q"];
    let mut hosts = Vec::new();
    if !docker_text(&filter).is_empty() {
        hosts.push(this_host());
    }
    for host in Host::all() {
        if !host.docker_text(&filter).is_empty() {
            hosts.push(host.name.to_string());
        }
    }
    hosts
}

/// A failing rule fails the workflow as it does locally (Snakemake exits 1, removes the
/// rule's output, keeps the others'), with the rule's own exit code in qacct; the rerun
/// runs only what is missing; a rule the image cannot run is refused at submission.
#[test]
fn snakemake_runs_container_rules_in_their_image_and_reruns_only_what_failed() {
    require_snakemake!();
    let case = workflow("snakemake");

    let (code, log, jobs) = run(&case, &["--keep-going"], "");
    assert_eq!(code, 1, "Snakemake's exit with a failed rule:\n{log}");
    let rules: Vec<&str> = jobs.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(rules, ["boxed", "failing", "native"], "{log}");
    let outcome = |rule: &str| {
        let acct = &jobs.iter().find(|(r, _)| r == rule).unwrap().1;
        (acct.exit_status(), acct.failed())
    };
    assert_eq!(outcome("boxed"), (0, 0), "{jobs:?}");
    assert_eq!(outcome("native"), (0, 0), "{jobs:?}");
    // The rule's own exit code, not Snakemake's: the job was the rule's command.
    assert_eq!(outcome("failing"), (3, 0), "{jobs:?}");
    assert!(log.contains("Error in rule failing"), "{log}");
    assert!(
        log.contains("exit_status 3"),
        "the status command says why: {log}"
    );
    // In the image: its marker; Snakemake formatted the command (params, quoting).
    assert_eq!(case.read("out/boxed.txt"), format!("{IMAGE}\nhi there\n"));
    // On the host: the native rule found no marker.
    assert_eq!(case.read("out/native.txt"), "native\n");
    assert!(
        !case.path("out/after.txt").exists(),
        "the failed rule's output was removed"
    );
    let ran: BTreeSet<String> = runs_log(&case).into_iter().collect();
    assert_eq!(ran, ["boxed", "failing", "native"].map(String::from).into());

    let (code, log, jobs) = run(&case, &["--config", "code=0"], "");
    assert_eq!(code, 0, "the rerun:\n{log}");
    let rules: Vec<&str> = jobs.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(rules, ["failing"], "only the failed rule runs again: {log}");
    assert_eq!((jobs[0].1.exit_status(), jobs[0].1.failed()), (0, 0));
    assert_eq!(case.read("out/after.txt"), "partial\n");
    assert_eq!(runs_log(&case).last().map(String::as_str), Some("failing"));
    assert_eq!(runs_log(&case).len(), 4, "{:?}", runs_log(&case));

    // A run: block is Python in Snakemake: refused at submission, one line saying why.
    let (code, log, jobs) = run(&case, &["out/python.txt"], "");
    assert_eq!((code, jobs.len()), (1, 0), "{log}");
    assert!(
        log.contains("qdock: rule python_in_image asks for container 'qdock/busybox:1', but run:"),
        "{log}"
    );
    case.assert_clean();
}

/// Ctrl-C (SIGINT) to Snakemake deletes its running jobs (the cancel command, and the
/// sidecar for the jobs Snakemake's status loop held at that moment): the container job's
/// container goes from whatever host ran it, the native job ends too.
#[test]
fn interrupting_snakemake_deletes_its_jobs_and_leaves_no_container() {
    require_snakemake!();
    let case = workflow("snakemake-cancel");
    let mut snakemake = start(&case, &["slow"], "");
    let mut jobs = Vec::new();
    snakemake.wait_until("Snakemake submitted both jobs", JOB_TIMEOUT, |s| {
        jobs = submitted(&s.stderr_so_far());
        jobs.len() == 2
    });
    for &job in &jobs {
        case.adopt(job);
        case.wait_state(job, "running", |s| s == "r");
    }
    let mut boxed = Vec::new();
    snakemake.wait_until("the container job's container runs", JOB_TIMEOUT, |_| {
        boxed = jobs
            .iter()
            .filter(|&&job| !running_container_hosts(job).is_empty())
            .copied()
            .collect();
        !boxed.is_empty()
    });
    assert_eq!(boxed.len(), 1, "one container job of {jobs:?}");

    snakemake.signal(Signal::SIGINT);
    let out = snakemake.wait(RUN_TIMEOUT);
    assert_ne!(
        out.code(),
        0,
        "an interrupted Snakemake fails:\n{}",
        out.stderr
    );
    // The sidecar ended with Snakemake: it deleted what was left of the run, and its list.
    let lists = std::fs::read_dir(case.path(".snakemake/qdock/runs")).expect("the sidecar's list");
    assert_eq!(lists.count(), 0, "the run's job list is gone");
    for &job in &jobs {
        case.wait_until(&format!("job {job} gone"), qdel_limit(), || {
            case.states(job).is_empty()
        });
        assert_no_container_anywhere(job);
    }
    case.assert_clean();
}

/// The workflow on the mixed cell's Podman host, every job sent there with the profile's
/// `QDOCK_QSUB_OPTIONS`: the container rules run in Podman (the rule's own exit code in
/// qacct), the native rule on the host, and no container is left anywhere.
#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3): cargo test --test workflow -- --ignored"]
fn snakemake_runs_container_rules_in_podman_on_the_podman_host() {
    require_snakemake!();
    require_podman_host!();
    let case = workflow("snakemake-podman");
    let pinned = format!("-q {}", PODMAN_HOST.queue());
    let (code, log, jobs) = run(&case, &["--keep-going"], &pinned);
    assert_eq!(code, 1, "Snakemake's exit with a failed rule:\n{log}");
    let outcomes: Vec<(&str, i32, i32)> = jobs
        .iter()
        .map(|(rule, acct)| (rule.as_str(), acct.exit_status(), acct.failed()))
        .collect();
    assert_eq!(
        outcomes,
        [("boxed", 0, 0), ("failing", 3, 0), ("native", 0, 0)],
        "{log}"
    );
    for (rule, acct) in &jobs {
        assert_eq!(acct.get("hostname"), PODMAN_HOST.name, "{rule}: {acct:?}");
        let job: u32 = acct.get("jobnumber").parse().expect("a job number");
        if rule != "native" {
            PODMAN_HOST.assert_ran_in_podman(job, 0);
        }
    }
    assert_eq!(case.read("out/boxed.txt"), format!("{IMAGE}\nhi there\n"));
    assert_eq!(case.read("out/native.txt"), "native\n");
    assert!(!case.path("out/after.txt").exists(), "{log}");
    assert_eq!(PODMAN_HOST.qdock_containers(), Vec::<String>::new());
    case.assert_clean();
}
