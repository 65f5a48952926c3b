//! Through the real Grid Engine across the hosts of `bin/setup-cluster --hosts 2`: node1 and
//! node2, each with its own engine, beside this machine (vm). Jobs are pinned to a host with
//! `qsub -q all.q@<host>` where a test needs one; the harness is in tests/common/hosts.rs
//! and tests/common/cell.rs. Each test holds the cell case exclusively
//! ([`Case::cluster`]): they change hosts' configs and daemons.

#[macro_use]
mod common;

use common::cell::*;
use common::hosts::*;
use common::registry::Registry;
use common::*;

/// Skips (or under CI fails) a test without the hosts.
macro_rules! require_hosts {
    () => {
        if !require_hosts() {
            return;
        }
    };
}

/// Lets the case's jobs that wait in [`UNTIL_GO`] go on.
fn go(case: &Case) {
    write_file(&case.path("go"), "", ALICE.uid, ALICE.gid, 0o644);
}

/// Every record says: ran on `host`, exit 0.
fn assert_all_ran_well_on(acct: &[Acct], host: Host) {
    for record in acct {
        assert_eq!(record.get("hostname"), host.name, "{record:?}");
        assert_eq!(
            (record.failed(), record.exit_status()),
            (0, 0),
            "{record:?}"
        );
    }
}

/// qdock's own lines in a job's `.e` file.
fn qdock_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("qdock:")).collect()
}

/// An image of the test's own in a registry on the bridge, pushed from `from`'s engine and
/// then removed there: no host has it until one pulls it.
struct Pushed {
    registry: Registry,
    reference: String,
}

impl Pushed {
    fn new(from: Host) -> Pushed {
        let registry = Registry::start(GATEWAY);
        let reference = format!("{}/qdock/pulltest:{}", registry.addr, std::process::id());
        let context = registry.image_context().display().to_string();
        from.docker_text(&["build", "-q", "-t", &reference, &context]);
        from.docker_text(&["push", &reference]);
        from.docker_text(&["rmi", &reference]);
        Pushed {
            registry,
            reference,
        }
    }
}

impl Drop for Pushed {
    fn drop(&mut self) {
        for host in Host::all() {
            let _ = host.docker(&["rmi", &self.reference]);
        }
    }
}

#[test]
fn tasks_starting_together_on_a_host_pull_its_image_once() {
    require_hosts!();
    let case = Case::cluster("pull-once");
    let pushed = Pushed::new(NODE2);
    let _pull = NODE1.set_config_value("images", "pull", "\"missing\"");
    assert!(!NODE1.has_image(&pushed.reference));
    case.script("marker.sh", "cat /qdock-image-marker\n");
    let tasks = 4;
    let job = case.qsub_image(
        &pushed.reference,
        // The JSV asks for hosts holding the image (hard: this machine's config says
        // pull = "never"); naming qdock_images itself keeps it from asking, so the job can
        // go to node1, whose own config lets it pull.
        &[
            "-q",
            &NODE1.queue(),
            "-l",
            "qdock_images=*",
            "-t",
            &format!("1-{tasks}"),
            "marker.sh",
        ],
    );
    let acct = case.wait_done(job, tasks);
    assert_all_ran_well_on(&acct, NODE1);
    assert!(NODE1.has_image(&pushed.reference));
    assert!(!NODE2.has_image(&pushed.reference), "pulled on node1 only");

    // Every layer left the registry once, whichever of the tasks asked first: the engine
    // joined the other pulls to the one under way. Each pull reads the image's config (its
    // ID, a few kB) itself.
    let config = NODE1.docker_text(&["image", "inspect", "--format", "{{.Id}}", &pushed.reference]);
    let gets = pushed.registry.requests("\"GET /v2/qdock/pulltest/blobs/");
    let layers: Vec<&str> = gets
        .iter()
        .filter_map(|l| l.split("/blobs/").nth(1)?.split_whitespace().next())
        .filter(|blob| *blob != config)
        .collect();
    assert!(!layers.is_empty(), "no layer was fetched: {gets:#?}");
    let mut once = layers.clone();
    once.sort();
    once.dedup();
    assert_eq!(layers.len(), once.len(), "a layer fetched twice: {gets:#?}");

    for task in 1..=tasks {
        assert_eq!(
            case.read(format!("marker.sh.o{job}.{task}")),
            format!("{IMAGE}\n")
        );
        let stderr = case.read(format!("marker.sh.e{job}.{task}"));
        let lines = qdock_lines(&stderr);
        // A line before and after the pull, one per layer, the job's "runs" line: a few.
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("qdock: pulling image {}", pushed.reference))),
            "task {task}: {stderr}"
        );
        assert!(
            lines.iter().any(|l| l.contains("pulled image")),
            "task {task}: {stderr}"
        );
        assert!(lines.len() <= 8, "task {task}: a flood: {stderr}");
    }
    case.assert_clean();
}

#[test]
fn gc_on_one_host_leaves_the_other_hosts_containers_alone() {
    require_hosts!();
    let case = Case::cluster("gc-per-host");
    // The watchers would remove the orphans at once: this is about the one-shot sweep.
    let _watchers = Host::all().map(|h| h.stop_gc_watcher());
    let name = |host: Host| format!("qdock-default-gc-test-{}-{}", std::process::id(), host.name);
    // Orphans as a crashed starter leaves them: labelled with the cell, no starter alive.
    for host in Host::all() {
        host.docker_text(&[
            "create",
            "--name",
            &name(host),
            "--label",
            "qdock.cell=default",
            "--label",
            "qdock.job-id=999999",
            "--label",
            "qdock.starter-pid=999999999",
            "--label",
            "qdock.starter-start=1",
            IMAGE,
            "true",
        ]);
    }
    let swept = NODE1.run_text(&["qdock", "gc", "--cell", "default"]);
    assert!(swept.contains(&name(NODE1)), "gc on node1 said: {swept}");
    assert!(!swept.contains(&name(NODE2)), "gc on node1 said: {swept}");
    assert!(!NODE1.qdock_containers().contains(&name(NODE1)));
    assert!(
        NODE2.qdock_containers().contains(&name(NODE2)),
        "node2's orphan is node2's to remove"
    );
    let swept = NODE2.run_text(&["qdock", "gc", "--cell", "default"]);
    assert!(swept.contains(&name(NODE2)), "gc on node2 said: {swept}");
    assert!(!NODE2.qdock_containers().contains(&name(NODE2)));
    case.assert_clean();
}

#[test]
fn execd_killed_and_restarted_under_container_jobs_loses_nothing() {
    require_hosts!();
    let case = Case::cluster("execd-restart");
    case.script("hold.sh", &format!("{UNTIL_GO}echo done $SGE_TASK_ID\n"));
    let job = case.qsub_image(IMAGE, &["-q", &NODE1.queue(), "-t", "1-2", "hold.sh"]);
    case.wait_until("both containers run on node1", JOB_TIMEOUT, || {
        (1..=2).all(|t| {
            NODE1
                .docker(&[
                    "inspect",
                    "--format",
                    "{{.State.Status}}",
                    &task_container(job, t),
                ])
                .stdout
                .starts_with(b"running")
        })
    });
    NODE1.kill_daemon("sge_execd", Signal::SIGKILL);
    // The jobs end while their execd is away: the shepherds keep what it must learn.
    go(&case);
    case.wait_until("the jobs' containers are gone", JOB_TIMEOUT, || {
        NODE1.qdock_containers().is_empty()
    });
    restart_missing_daemons();
    let acct = case.wait_done(job, 2);
    assert_all_ran_well_on(&acct, NODE1);
    for task in 1..=2 {
        assert_eq!(
            case.read(format!("hold.sh.o{job}.{task}")),
            format!("done {task}\n")
        );
    }
    let swept = NODE1.run_text(&["qdock", "gc", "--cell", "default"]);
    assert_eq!(swept, "no orphaned containers");
    case.assert_clean();
}

/// Tasks of an array spread over the hosts; each runs in its host's engine and sees its
/// host's name.
#[test]
fn an_array_spreads_over_the_hosts_each_in_its_own_engine() {
    require_hosts!();
    let case = Case::cluster("spread");
    case.script("where.sh", &format!("{UNTIL_GO}hostname\n"));
    // One task per free slot: all must run at once, so every host with free slots gets
    // some; node1 and node2 have all theirs free (nobody else's jobs go there).
    let (used, total) = case.slots();
    let tasks = total - used;
    let job = case.qsub_image(IMAGE, &["-t", &format!("1-{tasks}"), "where.sh"]);
    case.wait_until("every task runs", JOB_TIMEOUT, || {
        case.states(job)
            .iter()
            .filter(|s| s.as_str() == "r")
            .count()
            == tasks as usize
    });
    for host in Host::all() {
        let running = host.qdock_containers();
        assert!(!running.is_empty(), "no container on {}", host.name);
        assert!(
            running
                .iter()
                .all(|c| c.starts_with(&format!("qdock-default-{job}-"))),
            "{}: {running:?}",
            host.name
        );
    }
    go(&case);
    let acct = case.wait_done(job, tasks as usize);
    for record in &acct {
        let task = record.get("taskid");
        // The container's hostname is the host's: the job saw where it ran.
        assert_eq!(
            case.read(format!("where.sh.o{job}.{task}")),
            format!("{}\n", record.get("hostname")),
            "{record:?}"
        );
    }
    case.assert_clean();
}
