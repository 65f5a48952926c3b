//! GPU grants through the starter, with the shepherd's stand-in of tests/common writing the
//! execd's packed copy of the job ([`Job::granted_gpus`]): each `[gpus] mode`'s translation
//! on the engine under test (`QDOCK_TEST_ENGINE`: CDI mode on Podman too), a native job's
//! numbers, and the race of two jobs for the last device. Each test has a ledger of its own
//! (`[gpus] lock_dir` in its job directory). Through the real Grid Engine: tests/gpus.rs.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};

use common::*;

/// What a job sees: `visible=…`, then each fake GPU node present, written to.
const SEE: &str = "echo \"visible=${CUDA_VISIBLE_DEVICES-unset}\"\n\
                   for d in /dev/qdock-gpu*; do [ -c \"$d\" ] && echo x > \"$d\" && echo \"$d\"; done\ntrue\n";

/// A config of `[gpus]` lines with a ledger of the job's own, root:docker 2770 like
/// /var/lib/qdock/gpus.
fn gpu_config(job: &Job, lines: &str) -> (String, PathBuf) {
    for i in 0..4 {
        let node = format!("/dev/qdock-gpu{i}");
        assert!(
            Path::new(&node).exists(),
            "{node} is missing: bin/setup-cluster --fake-gpus 4 makes the fake GPUs (bin/test does)"
        );
    }
    let dir = job.dir.join("gpus");
    make_dir(&dir, 0, docker_gid().expect("the docker group"), 0o2770);
    let config = format!("[gpus]\n{lines}\nlock_dir = \"{}\"\n", dir.display());
    (config, dir)
}

/// The holdings left in a ledger (its lock file aside).
fn holdings(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("the ledger")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect()
}

#[test]
fn devices_mode_hands_over_the_granted_nodes_only() {
    require_engine!();
    let job = Job::new(SEE).granted_gpus(2);
    let (config, ledger) = gpu_config(
        &job,
        "mode = \"devices\"\ndevices = [\"/dev/qdock-gpu2\", \"/dev/qdock-gpu0\", \"/dev/qdock-gpu1\"]",
    );
    let job = job.with_config(&config);
    job.expect(0, "visible=0,1\n/dev/qdock-gpu0\n/dev/qdock-gpu2\n");
    assert_eq!(holdings(&ledger), Vec::<String>::new());
}

#[test]
fn cdi_mode_applies_the_host_cdi_spec_of_the_granted_devices() {
    require_engine!();
    let job = Job::new(SEE).granted_gpus(1);
    let (config, ledger) = gpu_config(&job, "mode = \"cdi\"\ncdi_kind = \"qdock.test/gpu\"");
    let job = job.with_config(&config);
    job.expect(0, "visible=0\n/dev/qdock-gpu0\n");
    assert_eq!(holdings(&ledger), Vec::<String>::new());
}

/// A grant the job's environment claims is no grant: no device, no variable.
#[test]
fn a_grant_forged_in_the_environment_gives_nothing() {
    require_engine!();
    let job = Job::new(SEE)
        .env("CUDA_VISIBLE_DEVICES", "0,1,2,3")
        .env("SGE_HGR_gpu", "0 1 2 3");
    let (config, _) = gpu_config(&job, "devices = [\"/dev/qdock-gpu0\"]");
    job.with_config(&config).expect(0, "visible=unset\n");
}

/// Natively the job gets the host's numbers of its GPUs, in place of its own value.
#[test]
fn a_native_job_gets_the_host_numbers_of_its_grant() {
    require_engine!();
    let job = Job::new("echo \"visible=$CUDA_VISIBLE_DEVICES\"\n")
        .native()
        .env("CUDA_VISIBLE_DEVICES", "0")
        .granted_gpus(2);
    let (config, _) = gpu_config(&job, "devices = [\"/dev/qdock-gpu2\", \"/dev/qdock-gpu3\"]");
    job.with_config(&config).expect(0, "visible=2,3\n");
}

/// Two jobs racing for a host's one free GPU: one gets it, the other is requeued (99) with
/// the holder named, and never runs without it.
#[test]
fn two_jobs_racing_for_the_last_gpu_never_share_it() {
    require_engine!();
    let first = Job::new(format!("{SEE}{UNTIL_GO}")).granted_gpus(1);
    let (config, ledger) = gpu_config(&first, "devices = [\"/dev/qdock-gpu3\"]");
    let config_path = first.write_config(&config);
    let second = Job::new(format!("{SEE}{UNTIL_GO}"))
        .granted_gpus(1)
        .mode(Mode::Config(config_path.clone()));
    let first = first.mode(Mode::Config(config_path));
    let (mut a, mut b) = (first.spawn(), second.spawn());
    // One of them is refused; then the other holds the device.
    wait_until("one of the racing jobs ends", DEFAULT_TIMEOUT, || {
        a.has_exited() || b.has_exited()
    });
    let ((loser, loser_job), (winner, winner_job)) = if a.has_exited() {
        ((a, &first), (b, &second))
    } else {
        ((b, &second), (a, &first))
    };
    let refused = loser.wait(DEFAULT_TIMEOUT);
    loser_job.assert_refused(
        &refused,
        99,
        &["only 0 of this host's are free", "/dev/qdock-gpu3"],
    );
    assert_eq!(holdings(&ledger).len(), 1);
    winner_job.go();
    let out = winner.wait(DEFAULT_TIMEOUT);
    out.assert_code(0);
    out.assert_stdout("visible=0\n/dev/qdock-gpu3\n");
    assert_eq!(holdings(&ledger), Vec::<String>::new());
}

/// Root's `qdock gc` sweeping the ledger before any starter made its lock: the lock it makes
/// is the group's, and a job then takes its GPU (a lock of root's group refused every
/// starter, found on the Open Cluster Scheduler trial).
#[test]
fn a_ledger_roots_gc_made_first_serves_every_starter() {
    require_engine!();
    let job = Job::new(SEE).granted_gpus(1);
    let (config, ledger) = gpu_config(&job, "devices = [\"/dev/qdock-gpu1\"]");
    let path = job.write_config(&config);
    let admin = Job::new("").native().mode(Mode::Root(Some(path.clone())));
    let swept = admin.run_method("qdock", &["gc", "--cell", &job.cell], DEFAULT_TIMEOUT);
    swept.assert_code(0);
    assert!(ledger.join(".lock").exists(), "{swept:?}");
    job.mode(Mode::Config(path))
        .expect(0, "visible=0\n/dev/qdock-gpu1\n");
}

/// A packed copy of the job that the user could have written (owned by them) is no grant:
/// only the execd's counts.
#[test]
fn a_packed_job_the_user_owns_grants_nothing() {
    require_engine!();
    let job = Job::new(SEE).granted_gpus(2);
    let packed = job.packed_job_path();
    std::os::unix::fs::chown(&packed, Some(job.user.uid), Some(job.user.gid))
        .expect("hand the packed job to the user");
    let (config, ledger) = gpu_config(&job, "devices = [\"/dev/qdock-gpu0\", \"/dev/qdock-gpu1\"]");
    let job = job.with_config(&config);
    job.expect(0, "visible=unset\n");
    assert_eq!(holdings(&ledger), Vec::<String>::new());
}
