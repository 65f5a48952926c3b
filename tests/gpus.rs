//! GPU jobs through the real Grid Engine cell: `qsub -l gpu=N` on this machine's host, whose
//! four fake GPUs `bin/setup-cluster --fake-gpus 4` made and registered (`complex_values
//! gpu=4`, `[gpus] devices` in /etc/qdock/qdock.toml, mode `devices`). Each job lists the
//! GPU nodes it sees and writes to them. The tests of this file take the host's GPUs one at
//! a time ([`GPUS`]): each counts on all four being free when it starts. One more test, for
//! the mixed cell's Podman host, is `#[ignore]`d as tests/podman_cell.rs is. The modes' own
//! translations and the race for the last device: tests/gpu_modes.rs.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use common::cell::*;
use common::hosts::*;
use common::*;

/// The host's GPUs, held by one test at a time.
static GPUS: Mutex<()> = Mutex::new(());

const NODES: [&str; 4] = [
    "/dev/qdock-gpu0",
    "/dev/qdock-gpu1",
    "/dev/qdock-gpu2",
    "/dev/qdock-gpu3",
];
const LOCK_DIR: &str = "/var/lib/qdock/gpus";

/// What a job sees: `visible=…`, then each GPU node present, written to.
const SEE: &str = "echo \"visible=${CUDA_VISIBLE_DEVICES-unset}\"\n\
                   for d in /dev/qdock-gpu*; do [ -c \"$d\" ] && echo x > \"$d\" && echo \"$d\"; done\ntrue\n";

fn take_gpus() -> std::sync::MutexGuard<'static, ()> {
    for node in NODES {
        assert!(
            Path::new(node).exists(),
            "{node} is missing: bin/setup-cluster --fake-gpus 4 makes the fake GPUs (bin/test does)"
        );
    }
    GPUS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `qsub` of a job in the image on this machine's host, whose four GPUs these tests count (a
/// mixed cell's Podman host has two of its own).
fn qsub_here(case: &Case, args: &[&str]) -> u32 {
    let queue = home_queue();
    let mut all = vec!["-q", queue.as_str()];
    all.extend_from_slice(args);
    case.qsub_image(IMAGE, &all)
}

/// The GPU nodes a job's output names, and its `visible=` line.
fn seen(output: &str) -> (BTreeSet<String>, String) {
    let nodes = output
        .lines()
        .filter(|l| l.starts_with("/dev/qdock-gpu"))
        .map(String::from)
        .collect();
    let visible = output
        .lines()
        .find_map(|l| l.strip_prefix("visible="))
        .unwrap_or_else(|| panic!("no visible= line in {output:?}"))
        .to_string();
    (nodes, visible)
}

/// The holdings in the ledger `dir` naming `container`.
fn holdings_in(dir: &str, container: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path())
                        .is_ok_and(|t| t.trim_end().ends_with(container))
                })
                .count()
        })
        .unwrap_or(0)
}

/// The holdings in this machine's ledger naming `container`.
fn holdings_of(container: &str) -> usize {
    holdings_in(LOCK_DIR, container)
}

/// Two GPUs granted: the container sees exactly two nodes, numbered 0 and 1 for CUDA, and
/// writes to them; the two others are absent. The grant is in the usage record, and the
/// holdings are gone with the job.
#[test]
fn a_job_granted_two_gpus_sees_exactly_its_two() {
    require_cell!();
    let _gpus = take_gpus();
    let case = Case::new("gpu-two");
    case.script("see.sh", SEE);
    let job = qsub_here(&case, &["-l", "gpu=2", "-o", "out", "-j", "y", "see.sh"]);
    let acct = case.wait_done(job, 1);
    assert_eq!(acct[0].exit_status(), 0, "{acct:?}");
    let out = case.read("out");
    let (nodes, visible) = seen(&out);
    assert_eq!(nodes.len(), 2, "{out}");
    assert!(nodes.iter().all(|n| NODES.contains(&n.as_str())), "{out}");
    assert_eq!(visible, "0,1", "{out}");
    let record = case.client("qdock", &["usage", &job.to_string()]);
    let granted = record
        .lines()
        .find_map(|l| l.trim().strip_prefix("gpus"))
        .unwrap_or_else(|| panic!("no gpus line in the record: {record}"));
    for node in &nodes {
        assert!(granted.contains(node.as_str()), "{record}");
    }
    assert_eq!(holdings_of(&task_container(job, 0)), 0);
    case.assert_clean();
}

/// `CUDA_VISIBLE_DEVICES` and `SGE_HGR_gpu` are the user's to set: forged, they give a job
/// without `-l gpu` no device, and a job granted one no more than its one, numbered 0.
#[test]
fn a_grant_forged_in_the_environment_gives_nothing_more() {
    require_cell!();
    let _gpus = take_gpus();
    let case = Case::new("gpu-forged");
    case.script("see.sh", SEE);
    // qsub -v splits at commas: one GPU each, the last.
    let forged = ["-v", "CUDA_VISIBLE_DEVICES=3", "-v", "SGE_HGR_gpu=0 1 2 3"];
    let submit = |extra: &[&str], out: &str| {
        let mut args = forged.to_vec();
        args.extend_from_slice(extra);
        args.extend(["-o", out, "-j", "y", "see.sh"]);
        qsub_here(&case, &args)
    };
    let none = submit(&[], "none");
    let one = submit(&["-l", "gpu=1"], "one");
    for job in [none, one] {
        assert_eq!(case.wait_done(job, 1)[0].exit_status(), 0);
    }
    let (nodes, visible) = seen(&case.read("none"));
    assert!(nodes.is_empty(), "{nodes:?}");
    assert_eq!(visible, "unset");
    let (nodes, visible) = seen(&case.read("one"));
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(visible, "0");
    case.assert_clean();
}

/// A job without an image gets `CUDA_VISIBLE_DEVICES` of its grant, by the host's numbers,
/// in place of a forged one, as a native job on a GPU cluster expects.
#[test]
fn a_native_job_gets_the_host_numbers_of_its_gpus() {
    require_cell!();
    let _gpus = take_gpus();
    let case = Case::new("gpu-native");
    case.script("env.sh", "echo \"visible=$CUDA_VISIBLE_DEVICES\"\n");
    let queue = home_queue();
    let job = case.qsub(&[
        "-q",
        &queue,
        "-cwd",
        "-l",
        "gpu=3",
        "-v",
        "CUDA_VISIBLE_DEVICES=7",
        "-o",
        "out",
        "-j",
        "y",
        "env.sh",
    ]);
    assert_eq!(case.wait_done(job, 1)[0].exit_status(), 0);
    let (_, visible) = seen(&case.read("out"));
    let numbers: BTreeSet<&str> = visible.split(',').collect();
    assert_eq!(numbers.len(), 3, "{visible}");
    assert!(
        numbers.iter().all(|n| ["0", "1", "2", "3"].contains(n)),
        "{visible}"
    );
    case.assert_clean();
}

/// A consumable per slot: `-pe smp 2 -l gpu=1` holds one GPU per slot granted on the host,
/// two, as Grid Engine counts it.
#[test]
fn a_parallel_job_holds_its_hosts_share_per_slot() {
    require_cell!();
    let _gpus = take_gpus();
    let case = Case::new("gpu-pe");
    case.script("see.sh", SEE);
    let job = qsub_here(
        &case,
        &[
            "-pe", "smp", "2", "-l", "gpu=1", "-o", "out", "-j", "y", "see.sh",
        ],
    );
    assert_eq!(case.wait_done(job, 1)[0].exit_status(), 0);
    let (nodes, visible) = seen(&case.read("out"));
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert_eq!(visible, "0,1");
    case.assert_clean();
}

/// Two jobs of two GPUs each, running at once, hold disjoint devices: all four between them.
#[test]
fn two_concurrent_jobs_hold_disjoint_gpus() {
    require_cell!();
    let _gpus = take_gpus();
    let case = Case::new("gpu-disjoint");
    // Each holds its devices until both have them.
    case.script(
        "both.sh",
        &format!("{SEE}touch \"started-$JOB_ID\"\nwhile [ $(ls started-* | wc -l) -lt 2 ]; do sleep 0.1; done\n"),
    );
    let jobs: Vec<u32> = ["a", "b"]
        .iter()
        .map(|o| qsub_here(&case, &["-l", "gpu=2", "-o", o, "-j", "y", "both.sh"]))
        .collect();
    for &job in &jobs {
        assert_eq!(case.wait_done(job, 1)[0].exit_status(), 0);
    }
    let (a, _) = seen(&case.read("a"));
    let (b, _) = seen(&case.read("b"));
    assert_eq!((a.len(), b.len()), (2, 2), "{a:?} {b:?}");
    assert!(a.is_disjoint(&b), "{a:?} {b:?}");
    case.assert_clean();
}

/// Array tasks of two GPUs each on a host of four (and four slots): never more than two run
/// at once, and no two share a device. Each task takes a directory per device it sees, which
/// fails if another task holds it, and counts the tasks running beside it.
#[test]
fn array_tasks_never_share_a_gpu_nor_run_beyond_the_hosts_gpus() {
    require_cell!();
    let _gpus = take_gpus();
    let case = Case::new("gpu-array");
    let body = "mkdir -p held running\n\
                for d in /dev/qdock-gpu*; do [ -c \"$d\" ] || continue; \
                mkdir \"held/${d##*/}\" || echo \"shared $d\" >> clash; done\n\
                touch \"running/$SGE_TASK_ID\"\n\
                n=$(ls running | wc -l); echo \"$n\" >> widths\n\
                [ \"$n\" -le 2 ] || echo \"$n at once\" >> clash\n\
                i=0; while [ $i -lt 20 ]; do i=$((i+1)); sleep 0.05; done\n\
                rm \"running/$SGE_TASK_ID\"\n\
                for d in /dev/qdock-gpu*; do [ -c \"$d\" ] && rmdir \"held/${d##*/}\"; done\n\
                true\n";
    case.script("task.sh", body);
    let job = qsub_here(&case, &["-t", "1-6", "-l", "gpu=2", "task.sh"]);
    let acct = case.wait_done(job, 6);
    assert!(acct.iter().all(|a| a.exit_status() == 0), "{acct:?}");
    assert!(!case.path("clash").exists(), "{}", case.read("clash"));
    let widths = case.read("widths");
    assert_eq!(widths.lines().count(), 6, "{widths}");
    // The case ran: tasks did overlap on the host (the scheduler starts two at a time).
    assert!(
        widths.lines().any(|w| w == "2"),
        "no two tasks ever ran at once: {widths}"
    );
    case.assert_clean();
}

/// More GPUs than the host has: the job waits in `qw` with the scheduler's reason, and
/// never starts without its devices.
#[test]
fn a_request_beyond_the_hosts_gpus_waits_with_the_reason() {
    require_cell!();
    let case = Case::new("gpu-beyond");
    case.script("never.sh", "echo must-not-run\n");
    let job = qsub_here(&case, &["-l", "gpu=5", "never.sh"]);
    let shown = case.wait_for_reason(job, "gpu");
    assert!(shown.contains("gpu"), "{shown}");
    assert_eq!(case.states(job), vec!["qw".to_string()]);
    case.delete(job);
    case.assert_clean();
}

/// A starter SIGKILLed under its running container: the watcher removes the orphan and frees
/// its GPUs, and a job asking for all four then runs.
#[test]
fn a_killed_starters_gpus_are_freed_by_the_watcher() {
    require_cell!();
    let _gpus = take_gpus();
    let case = Case::new("gpu-killed");
    case.script("hold.sh", &format!("{SEE}{UNTIL_GO}"));
    let job = qsub_here(&case, &["-l", "gpu=2", "-o", "held", "-j", "y", "hold.sh"]);
    case.wait_for_container(job, 0, "running");
    let container = task_container(job, 0);
    assert_eq!(holdings_of(&container), 2);
    let pid = docker(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"qdock.starter-pid\"}}",
        &container,
    ]);
    let pid: i32 = String::from_utf8_lossy(&pid.stdout)
        .trim()
        .parse()
        .expect("the starter's pid");
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the starter");
    let took = wait_until("the watcher frees the GPUs", JOB_TIMEOUT, || {
        holdings_of(&container) == 0
    });
    eprintln!(
        "gpus: freed {:.3} s after the starter's SIGKILL ({took:?} waited)",
        killed.elapsed().as_secs_f64()
    );
    case.wait_done(job, 1);
    case.script("all.sh", SEE);
    let all = qsub_here(&case, &["-l", "gpu=4", "-o", "all", "-j", "y", "all.sh"]);
    assert_eq!(case.wait_done(all, 1)[0].exit_status(), 0);
    let (nodes, visible) = seen(&case.read("all"));
    assert_eq!(nodes.len(), 4, "{nodes:?}");
    assert_eq!(visible, "0,1,2,3");
    case.assert_clean();
}

/// The mixed cell's Podman host, with two fake GPUs and a ledger of its own (`bin/setup-cluster
/// --hosts 3 --podman-host node3 --fake-gpus 4`): a job granted one there sees exactly one of
/// that host's nodes in its Podman container, numbered 0 for CUDA, and none of this
/// machine's; the grant is in the record, and the holding goes with the job.
#[test]
#[ignore = "needs the mixed cell (bin/setup-cluster --hosts 3 --podman-host node3 --fake-gpus 4): cargo test --test gpus -- --ignored"]
fn a_job_on_the_podman_host_gets_one_of_its_gpus_in_podman() {
    require_podman_host!();
    let host = PODMAN_HOST.name;
    let own: Vec<String> = (0..2)
        .map(|i| format!("/dev/qdock-{host}-gpu{i}"))
        .collect();
    for node in &own {
        assert!(
            Path::new(node).exists(),
            "{node} is missing: bin/setup-cluster --hosts 3 --podman-host {host} --fake-gpus 4 makes it"
        );
    }
    let case = Case::cluster("gpu-podman");
    case.script(
        "see.sh",
        "echo \"visible=${CUDA_VISIBLE_DEVICES-unset}\"\n\
         for d in /dev/qdock-*; do [ -c \"$d\" ] && echo x > \"$d\" && echo \"$d\"; done\ntrue\n",
    );
    let queue = PODMAN_HOST.queue();
    let job = case.qsub_image(
        IMAGE,
        &[
            "-q", &queue, "-l", "gpu=1", "-o", "out", "-j", "y", "see.sh",
        ],
    );
    let acct = case.wait_done(job, 1);
    assert_eq!(
        (acct[0].get("hostname"), acct[0].exit_status()),
        (host, 0),
        "{acct:?}"
    );
    PODMAN_HOST.assert_ran_in_podman(job, 0);
    let out = case.read("out");
    let seen: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("/dev/qdock-"))
        .collect();
    assert_eq!(seen.len(), 1, "{out}");
    assert!(own.iter().any(|n| n == seen[0]), "{out}");
    assert!(out.contains("visible=0\n"), "{out}");
    let record = case.client("qdock", &["usage", &job.to_string()]);
    assert!(
        record
            .lines()
            .any(|l| l.trim().starts_with("gpus") && l.contains(seen[0])),
        "{record}"
    );
    let ledger = PODMAN_HOST.state_dir().join("gpus");
    assert_eq!(
        holdings_in(ledger.to_str().unwrap(), &task_container(job, 0)),
        0
    );
    case.assert_clean();
}
