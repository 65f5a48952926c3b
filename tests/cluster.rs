//! Through the real Grid Engine across the hosts of `bin/setup-cluster --hosts 2`: node1 and
//! node2, each with its own engine, beside this machine (vm). Jobs are pinned to a host with
//! `qsub -q all.q@<host>` where a test needs one; the harness is in tests/common/hosts.rs
//! and tests/common/cell.rs. Each test holds the cell case exclusively
//! ([`Case::cluster`]): they change hosts' configs and daemons. The cell is wired for
//! image-aware scheduling (sge-conf/register-scheduling: every host's load sensor, the JSV).
//! Every host's config has images.pull = "never", as the example, unless a test changes one:
//! a job's image then decides where it runs.

#[macro_use]
mod common;

use common::cell::*;
use common::hosts::*;
use common::registry::Registry;
use common::*;

use std::fs;
use std::time::Instant;

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
        let context = registry.image_context();
        // A layer of its own: an engine that once pulled the test image's layers knows
        // their digests for good and fetches none of them again.
        write_file(&context.join("unique"), &reference, 0, 0, 0o644);
        let dockerfile = context.join("Dockerfile");
        let text = fs::read_to_string(&dockerfile).expect("Dockerfile") + "COPY unique /\n";
        fs::write(&dockerfile, text).expect("Dockerfile");
        let context = context.display().to_string();
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
    // node1 alone pulls, by its own config (this machine's says "never"): its load sensor
    // says so, and the JSV's request sends the job where the image is or can come.
    let _pull = NODE1.set_config_value("images", "pull", "\"missing\"");
    wait_for_load_value(NODE1.name, "qdock_images", |v| {
        advertised_images(v).contains(&PULL_MARK)
    });
    assert!(!NODE1.has_image(&pushed.reference));
    case.script("marker.sh", "cat /qdock-image-marker\n");
    let tasks = 4;
    let job = case.qsub_image(
        &pushed.reference,
        &["-t", &format!("1-{tasks}"), "marker.sh"],
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

    // A line before and after the pull, at most one per layer, the job's "runs" and usage
    // lines: a few.
    let image_layers: usize = NODE1
        .docker_text(&[
            "image",
            "inspect",
            "--format",
            "{{len .RootFS.Layers}}",
            &pushed.reference,
        ])
        .parse()
        .expect("a layer count");
    // A task that starts after the pull ended finds the image there and says nothing of it
    // (seen in CI: the four started in one second, the pull from the bridge takes less).
    let mut pulled = 0;
    for task in 1..=tasks {
        assert_eq!(
            case.read(format!("marker.sh.o{job}.{task}")),
            format!("{IMAGE}\n")
        );
        let stderr = case.read(format!("marker.sh.e{job}.{task}"));
        let lines = qdock_lines(&stderr);
        let pulling = lines
            .iter()
            .any(|l| l.starts_with(&format!("qdock: pulling image {}", pushed.reference)));
        assert_eq!(
            pulling,
            lines.iter().any(|l| l.contains("pulled image")),
            "task {task}: a pull without its end, or an end without its start: {stderr}"
        );
        pulled += usize::from(pulling);
        assert!(
            lines.len() <= image_layers + 4,
            "task {task}: a flood: {stderr}"
        );
    }
    assert!(pulled >= 1, "no task said it pulled the image");
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

/// The JSV sends a job to the one host that advertises its image.
#[test]
fn a_job_for_an_image_only_node2_holds_runs_on_node2() {
    require_hosts!();
    wait_until_no_host_pulls();
    let case = Case::cluster("only-node2");
    let name = format!("qdock/only-node2-{}:1", std::process::id());
    let _tag = NODE2.tag(IMAGE, &name);
    assert!(!NODE1.has_image(&name));
    assert!(
        !docker(&["image", "inspect", &name]).status.success(),
        "{name} on this machine"
    );
    wait_for_load_value(NODE2.name, "qdock_images", |v| {
        advertised_images(v).contains(&name.as_str())
    });
    case.script("marker.sh", "cat /qdock-image-marker\n");
    let job = case.qsub_image(&name, &["marker.sh"]);
    let acct = case.wait_done(job, 1);
    assert_all_ran_well_on(&acct, NODE2);
    assert_eq!(case.read(format!("marker.sh.o{job}")), format!("{IMAGE}\n"));
    case.assert_clean();
}

/// No host holds the image and none may pull it: qsub refuses the job at once, with one line
/// naming what each of the three hosts holds, instead of leaving it in `qw` for ever.
#[test]
fn a_job_for_an_image_no_host_holds_is_refused_naming_what_each_host_holds() {
    require_hosts!();
    wait_until_no_host_pulls();
    let case = Case::cluster("nowhere");
    case.script("never.sh", "echo must-not-run\n");
    let absent = format!("qdock/absent-cluster-{}:404", std::process::id());
    let said = case.qsub_refused(&absent, &["never.sh"]);
    let line = refusal_line(&said, &absent);
    for host in [this_host().as_str(), NODE1.name, NODE2.name] {
        assert!(
            line.split([' ', ';', '('])
                .any(|word| word.trim_end_matches(':') == host),
            "{host} not named: {line}"
        );
    }
    assert!(line.contains(IMAGE), "{line}");
    case.assert_clean();
}

/// node1's engine stopped: its qdock_engine turns 0, a container job asking for node1
/// waits with the scheduler's reason while one for any node runs on node2, and a native job
/// still runs on node1; with the engine back the waiting job runs there.
#[test]
fn a_host_without_its_engine_gets_native_jobs_and_no_container_job() {
    require_hosts!();
    let case = Case::cluster("engine-down");
    case.script("marker.sh", "cat /qdock-image-marker\n");
    case.script("native.sh", "hostname\n");
    wait_for_load_value(NODE1.name, "qdock_engine", is_true);
    let engine = NODE1.stop_engine();
    wait_for_load_value(NODE1.name, "qdock_engine", is_false);

    let pinned = case.qsub_image(IMAGE, &["-q", &NODE1.queue(), "marker.sh"]);
    let nodes = format!("{QUEUE}@node*");
    let elsewhere = case.qsub_image(IMAGE, &["-q", &nodes, "marker.sh"]);
    let native = case.qsub(&["-cwd", "-q", &NODE1.queue(), "native.sh"]);
    let acct = case.wait_done(elsewhere, 1);
    assert_all_ran_well_on(&acct, NODE2);
    let acct = case.wait_done(native, 1);
    assert_all_ran_well_on(&acct, NODE1);
    assert_eq!(case.read(format!("native.sh.o{native}")), "node1\n");
    let shown = case.wait_for_reason(pinned, "qdock_engine");
    assert_eq!(case.states(pinned), ["qw"], "{shown}");

    engine.restart();
    wait_for_load_value(NODE1.name, "qdock_engine", is_true);
    let acct = case.wait_done(pinned, 1);
    assert_all_ran_well_on(&acct, NODE1);
    assert_eq!(
        case.read(format!("marker.sh.o{pinned}")),
        format!("{IMAGE}\n")
    );
    case.assert_clean();
}

/// `qdel` of a container job on node1 after node1's engine stopped under it (live-restore:
/// the container runs on). qdock-terminate cannot reach the engine, so it kills the job's
/// process group (the starter), and the shepherd kills every process holding the job's
/// group, the container's too (ENABLE_ADDGRP_KILL): the job ends as fast as with the engine
/// there, as a native job's qdel does. When the engine is back it finds the container dead
/// and does not start it again (no restart policy); the host's gc watcher removes it.
#[test]
fn qdel_ends_a_job_whose_engine_is_stopped() {
    require_hosts!();
    let case = Case::cluster("qdel-engine-down");
    case.script("long.sh", "echo started\nsleep 300\n");
    wait_for_load_value(NODE1.name, "qdock_engine", is_true);
    let job = case.qsub_image(IMAGE, &["-q", &NODE1.queue(), "long.sh"]);
    let container = task_container(job, 0);
    let look = |format: &str| NODE1.docker_text(&["inspect", "--format", format, &container]);
    case.wait_until(&format!("{container} runs on node1"), JOB_TIMEOUT, || {
        NODE1
            .docker(&["inspect", "--format", "{{.State.Status}}", &container])
            .stdout
            .starts_with(b"running")
    });
    let id = look("{{.Id}}");
    let init: i32 = look("{{.State.Pid}}").parse().expect("the container's pid");
    let group = NODE1.job_group(job, 0);
    assert!(
        processes_holding_group(group).contains(&init),
        "the container's init holds the job's group {group}"
    );
    // Anything else would have the engine start the job's container again on its return.
    let policy = look("{{.HostConfig.RestartPolicy.Name}}");
    assert!(
        matches!(policy.as_str(), "" | "no"),
        "restart policy {policy:?}"
    );

    let engine = NODE1.stop_engine();
    assert!(
        proc_state(init).is_some_and(|s| s != 'Z'),
        "the container outlived its engine"
    );
    let syslog = syslog_mark();
    let start = Instant::now();
    case.client("qdel", &[&job.to_string()]);
    case.wait_until(&format!("job {job} out of qstat"), qdel_limit(), || {
        case.states(job).is_empty()
    });
    eprintln!(
        "job gone {:?} after qdel, with node1's engine stopped",
        start.elapsed()
    );
    assert_eq!(processes_holding_group(group), Vec::<i32>::new());
    assert!(
        proc_state(init).is_none_or(|s| s == 'Z'),
        "the container's init {init} runs on"
    );
    let said = format!("job {job}.0: killing job {job}.0 without the engine");
    wait_until("qdock-terminate's line in syslog", DEFAULT_TIMEOUT, || {
        syslog_since(syslog).contains(&said)
    });
    let acct = case.wait_done(job, 1);
    assert_eq!(acct[0].get("hostname"), NODE1.name, "{acct:?}");
    // SIGKILL, as a native job's qdel.
    assert_eq!(acct[0].exit_status(), 137, "{acct:?}");
    assert_eq!(case.read(format!("long.sh.o{job}")), "started\n");
    wait_for_load_value(NODE1.name, "qdock_engine", is_false);

    // The engine forgets its events when it stops: all it did since it is back is there.
    let back = unix_time();
    engine.restart();
    case.wait_until(
        &format!("{container} removed on node1"),
        DEFAULT_TIMEOUT,
        || !NODE1.qdock_containers().contains(&container),
    );
    let events = NODE1.docker_text(&[
        "events",
        "--since",
        &back.to_string(),
        // Whole seconds: the one under way too.
        "--until",
        &(unix_time() + 1).to_string(),
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Action}}",
    ]);
    assert!(events.lines().any(|a| a == "destroy"), "events: {events}");
    assert!(
        !events.lines().any(|a| a == "start" || a == "restart"),
        "the engine started the dead job's container again: {events}"
    );
    let swept = NODE1.run_text(&["qdock", "gc", "--cell", "default"]);
    assert_eq!(swept, "no orphaned containers");
    wait_for_load_value(NODE1.name, "qdock_engine", is_true);
    case.assert_clean();
}

/// Seconds since the epoch, as `docker events --since` takes them.
fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock")
        .as_secs()
}

/// dockerd restarted under a job on node2 (live-restore on, as on every host): the output
/// flows on while the engine is away, the starter finds the job when it is back.
#[test]
fn an_engine_restart_under_a_job_loses_no_line_and_keeps_its_exit_code() {
    require_hosts!();
    let case = Case::cluster("engine-restart");
    case.script("count.sh", GO_COUNTER);
    let job = case.qsub_image(IMAGE, &["-q", &NODE2.queue(), "count.sh"]);
    let out = || case.read(format!("count.sh.o{job}"));
    // 0 until the file exists: the shepherd creates it when the job starts.
    let printed = || {
        let path = case.path(&format!("count.sh.o{job}"));
        fs::read_to_string(path).map_or(0, |text| go_counted(&text))
    };
    case.wait_until("the job printed 5 lines", JOB_TIMEOUT, || printed() >= 5);
    let container = task_container(job, 0);
    let engine = NODE2.stop_engine();
    let before = printed();
    case.wait_until("lines arrive while the engine is away", JOB_TIMEOUT, || {
        printed() >= before + 5
    });
    engine.restart();
    let status = NODE2.docker_text(&["inspect", "--format", "{{.State.Status}}", &container]);
    assert_eq!(status, "running", "the container outlived its engine");
    assert_eq!(case.states(job), ["r"]);
    go(&case);
    let acct = case.wait_done(job, 1);
    assert_eq!(acct[0].get("hostname"), NODE2.name, "{acct:?}");
    assert_eq!(acct[0].exit_status(), 7, "{acct:?}");
    let text = out();
    let n = go_counted(&text);
    let expected: String = (0..n).map(|i| format!("{i}\n")).collect::<String>() + "end\n";
    assert_eq!(text, expected);
    let stderr = case.read(format!("count.sh.e{job}"));
    assert!(stderr.contains("lost the container engine"), "{stderr}");
    assert!(stderr.contains("engine is back"), "{stderr}");
    case.assert_clean();
}

/// With the host's network (the default), a job in a container on node1, a host of its own
/// network, name and /etc/hosts, sees what a native job there sees: the same host name,
/// /etc/hosts, resolver and network interfaces.
#[test]
fn a_container_job_sees_the_network_of_a_native_job() {
    require_hosts!();
    let case = Case::cluster("network");
    let _host_network = NODE1.set_config_value("container", "network", "\"host\"");
    case.script(
        "net.sh",
        "hostname\necho ---\ncat /etc/hosts\necho ---\ncat /etc/resolv.conf\necho ---\n\
         sed -n 's/^ *\\([^:]*\\):.*/\\1/p' /proc/net/dev | sort\n",
    );
    let queue = NODE1.queue();
    let contained = case.qsub_image(IMAGE, &["-q", &queue, "net.sh"]);
    let native = case.qsub(&["-cwd", "-q", &queue, "net.sh"]);
    assert_all_ran_well_on(&case.wait_done(contained, 1), NODE1);
    assert_all_ran_well_on(&case.wait_done(native, 1), NODE1);
    let seen = case.read(format!("net.sh.o{contained}"));
    let native_seen = case.read(format!("net.sh.o{native}"));
    assert!(seen.starts_with("node1\n---\n"), "{seen}");
    // node1's own interfaces, not this machine's (its bridge to the hosts, qdock0).
    assert!(seen.lines().any(|l| l == "eth0"), "{seen}");
    assert!(!seen.lines().any(|l| l == "qdock0"), "{seen}");
    assert_eq!(seen, native_seen);
    case.assert_clean();
}

/// node1's dockerd puts its containers below a cgroup parent (`/qdock-node1`), where the
/// starter cannot look before the engine says: a job of a millisecond used to end before
/// that answer, its line saying "not measured" (5 of 6 `-b y true` jobs on the earlier
/// build). The output helper now holds the job until the starter follows the container, so
/// every one is measured exactly.
#[test]
fn millisecond_jobs_below_an_engines_cgroup_parent_are_measured_exactly() {
    require_hosts!();
    let case = Case::cluster("cgroup-parent");
    let queue = NODE1.queue();
    let jobs: Vec<u32> = (0..6)
        .map(|_| case.qsub_image(IMAGE, &["-q", &queue, "-b", "y", "true"]))
        .collect();
    for &job in &jobs {
        assert_all_ran_well_on(&case.wait_done(job, 1), NODE1);
        let stderr = case.read(format!("true.e{job}"));
        let usage = stderr.lines().last().unwrap_or_default();
        assert!(usage.starts_with("qdock: usage: wall "), "{stderr}");
        for absent in ["not measured", "missing"] {
            assert!(!usage.contains(absent), "job {job}: {usage}");
        }
    }
    case.assert_clean();
}
