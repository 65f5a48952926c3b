//! Parallel jobs and core binding through the real Grid Engine cell (harness:
//! tests/common/cell.rs): the parallel environments `smp` ($pe_slots) and `mpi` (tightly
//! integrated) that bin/setup-cluster attaches to the queue, and `qsub -binding`.

#[macro_use]
mod common;

use std::time::Duration;

use common::cell::*;
use common::*;

/// The host's online CPUs as a list (`0-1`), what an unbound process may use.
fn online_cpus() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .expect("/sys/devices/system/cpu/online")
        .trim()
        .to_string()
}

/// Waits for `job`'s accounting records, the master's and its tasks', and checks their exit
/// codes, in ascending order.
fn assert_exit_codes<const N: usize>(case: &Case, job: u32, expected: [i32; N]) {
    let acct = case.wait_done(job, N);
    let mut codes: Vec<i32> = acct.iter().map(Acct::exit_status).collect();
    codes.sort_unstable();
    assert_eq!(codes, expected, "{acct:?}");
}

/// `-pe smp 2` in the image: `NSLOTS=2`, a quota of two CPUs on the container, and the
/// execd's `$PE_HOSTFILE` readable inside at the path the variable names; natively the same
/// variables and file.
#[test]
fn smp_job_gets_its_slots_cpu_quota_and_hostfile_in_the_image() {
    require_cell!();
    let case = Case::new("pe-smp");
    // Only the containerised job waits for the test: a native one holding its slots
    // meanwhile could keep the other from starting on a busy cell.
    let body = format!(
        "echo \"slots=$NSLOTS pe=$PE\"\n\
         cat \"$PE_HOSTFILE\"\n\
         if [ -e {IMAGE_MARKER} ]; then\n{UNTIL_GO}fi\n"
    );
    case.script("smp.sh", &body);
    let native = case.qsub(&["-cwd", "-pe", "smp", "2", "-N", "smp_native", "smp.sh"]);
    let image = case.qsub_image(IMAGE, &["-pe", "smp", "2", "-N", "smp_image", "smp.sh"]);
    case.wait_for_container(image, 0, "running");
    let name = task_container(image, 0);
    assert_eq!(inspect(&name, "{{.HostConfig.NanoCpus}}"), "2000000000");
    assert_pe_hostfile_mounted(&inspect(&name, BIND_MOUNTS), image);
    std::fs::write(case.path("go"), "").expect("go");
    for (job, name) in [(native, "smp_native"), (image, "smp_image")] {
        let acct = case.wait_done(job, 1);
        assert_eq!(acct[0].exit_status(), 0, "job {job}: {acct:?}");
        let out = case.read(format!("{name}.o{job}"));
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("slots=2 pe=smp"), "{out}");
        // One host, both slots: "host 2 queue@host binding".
        let host_line: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
        assert_eq!(host_line.get(1), Some(&"2"), "{out}");
        assert!(
            host_line.get(2).is_some_and(|q| q.starts_with("all.q@")),
            "{out}"
        );
    }
    case.assert_clean();
}

/// `-pe mpi 2`, natively: the job starts its slave tasks with `qrsh -inherit`, the way
/// mpirun does under tight integration. qrsh_starter hands qdock-starter the task's command
/// (it is no script, though the master job's spool says "script"); its output and exit code
/// come back to the master, as without qdock.
#[test]
fn tight_integration_starts_native_tasks_with_qrsh_inherit() {
    require_cell!();
    let case = Case::new("pe-mpi");
    case.script(
        "master.sh",
        "for host in $(cut -d' ' -f1 \"$PE_HOSTFILE\"); do\n\
           qrsh -inherit \"$host\" 'echo \"task of $JOB_ID on $(hostname) args:$#\"' a b\n\
           echo \"rc=$?\"\n\
           qrsh -inherit \"$host\" exit 3\n\
           echo \"rc=$?\"\n\
         done\n",
    );
    let job = case.qsub(&["-cwd", "-pe", "mpi", "2", "-N", "mpi_native", "master.sh"]);
    // One record for the job, one for each task: the master exited 0, a task 3.
    assert_exit_codes(&case, job, [0, 0, 3]);
    let out = case.read(format!("mpi_native.o{job}"));
    let host = nix::unistd::gethostname()
        .expect("hostname")
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        out,
        format!("task of {job} on {host} args:0 a b\nrc=0\nrc=3\n"),
        "stderr: {}",
        case.read(format!("mpi_native.e{job}"))
    );
    case.assert_clean();
}

/// A `qrsh -inherit` task asking for an image, with `-v IMAGE=…` or `-V` while the master
/// has `IMAGE` set: qdock cannot run it in a container (its container would take the job's
/// name, and the job's methods would act on that), so the task is refused with one line in
/// the job's `.e` naming the task, the problem and the fix, and exit 100, which reaches the
/// master as qrsh's exit code (Grid Engine accounts the task as failed, 30, and leaves the
/// job alone). Nothing of it runs, and no container is made.
#[test]
fn a_qrsh_inherit_task_asking_for_an_image_is_refused() {
    require_cell!();
    let case = Case::new("pe-mpi-image");
    let body = format!(
        "host=$(cut -d' ' -f1 \"$PE_HOSTFILE\")\n\
         qrsh -inherit -v IMAGE={IMAGE} \"$host\" echo ran\n\
         echo \"rc=$?\"\n\
         IMAGE={IMAGE} qrsh -inherit -V \"$host\" echo ran\n\
         echo \"rc=$?\"\n"
    );
    case.script("master.sh", &body);
    let job = case.qsub(&["-cwd", "-pe", "mpi", "2", "-N", "mpi_image", "master.sh"]);
    assert_exit_codes(&case, job, [0, 100, 100]);
    let errors = case.read(format!("mpi_image.e{job}"));
    assert_eq!(
        case.read(format!("mpi_image.o{job}")),
        "rc=100\nrc=100\n",
        "{errors}"
    );
    let refusal = format!(
        " of job {job}.0 asks for IMAGE=\"{IMAGE}\", but such tasks cannot run in an image; \
         start them without IMAGE (no -v IMAGE=…, no -V while IMAGE is set) and they run natively"
    );
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 2, "{errors}");
    for line in lines {
        // The execd names the task: `1.vm`.
        let task = line
            .strip_prefix("qdock: qrsh -inherit task ")
            .and_then(|rest| rest.strip_suffix(refusal.as_str()))
            .unwrap_or_else(|| panic!("not the refusal: {line:?}"));
        assert!(!task.is_empty() && !task.contains(' '), "{line:?}");
    }
    case.assert_clean();
}

/// The exit code of `method` (`resume`, …) as the shepherd trace `trace` records it: the
/// pid from `[uid:pid]: starting <method>_method command`, then `wait3 returned <pid> (…
/// WEXITSTATUS: N)`.
fn method_exit(trace: &str, method: &str) -> Option<i32> {
    let pid = trace.lines().find_map(|l| {
        let (head, _) = l.split_once(&format!("]: starting {method}_method command"))?;
        head.rsplit(':').next()
    })?;
    trace.lines().find_map(|l| {
        let (_, status) = l.split_once(&format!("wait3 returned {pid} ("))?;
        let (_, code) = status.split_once("WEXITSTATUS: ")?;
        code.trim_end_matches(')').trim().parse().ok()
    })
}

/// The shepherd trace of `job`'s `qrsh -inherit` task on this host (its spool entry below
/// the job's, e.g. `active_jobs/12.1/1.vm/trace`); empty while there is none.
fn task_trace(job: u32) -> String {
    let entry = spool_host_dir()
        .join("active_jobs")
        .join(format!("{job}.1"));
    std::fs::read_dir(entry)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| std::fs::read_to_string(e.path().join("trace")).ok())
        .collect()
}

/// The queue's methods run for a native `qrsh -inherit` task too, in the task's shepherd and
/// as the task, which holds a group of its own: the job's proof finds that group in the
/// task's spool entry below the job's, so they do what Grid Engine does without them, where
/// they refused with "not proven" (exit 100) before. Grid Engine 8.1.9 runs resume and
/// terminate there, not suspend (checked in the shepherds' traces): `qmod -sj` stops the
/// master's processes, its qrsh client among them, and the task runs on, with or without
/// qdock. `qdel` ends the task and the job.
#[test]
fn methods_act_for_a_native_qrsh_inherit_task() {
    require_cell!();
    let case = Case::new("pe-mpi-control");
    case.script(
        "master.sh",
        "host=$(cut -d' ' -f1 \"$PE_HOSTFILE\")\n\
         qrsh -inherit \"$host\" 'echo $$ > task.tmp; mv task.tmp task.pid; exec sleep 4322'\n",
    );
    let job = case.qsub(&["-cwd", "-pe", "mpi", "2", "-N", "mpi_control", "master.sh"]);
    let pid_file = case.path("task.pid");
    case.wait_until("the task runs", JOB_TIMEOUT, || pid_file.exists());
    let pid: i32 = case
        .read("task.pid")
        .trim()
        .parse()
        .expect("the task's pid");

    case.client("qmod", &["-sj", &job.to_string()]);
    case.wait_state(job, "suspended", |s| s.contains('s'));
    case.client("qmod", &["-usj", &job.to_string()]);
    let mut trace = String::new();
    case.wait_until("the task's resume method ended", JOB_TIMEOUT, || {
        trace = task_trace(job);
        method_exit(&trace, "resume").is_some()
    });
    assert_eq!(method_exit(&trace, "resume"), Some(0), "{trace}");
    case.wait_state(job, "running again", |s| s == "r");

    let limit = stop_grace() + Duration::from_secs(8);
    case.client("qdel", &[&job.to_string()]);
    let took = case.wait_until("the task ended and the job left qstat", limit, || {
        proc_state(pid).is_none_or(|s| s == 'Z') && case.states(job).is_empty()
    });
    eprintln!("task ended, job out of qstat {took:?} after qdel");
    let errors = case.read(format!("mpi_control.e{job}"));
    assert!(!errors.contains("qdock:"), "{errors}");
    case.assert_clean();
}

/// `-binding linear:1`: Grid Engine's shepherd binds the job to one core (the starter's CPU
/// affinity), and the container gets that core as its cpuset, exactly what a native job
/// runs on. `linear:2` takes every core of this 2-CPU host: no cpuset, as unbound.
#[test]
fn core_binding_gives_the_container_the_cores_of_the_job() {
    require_cell!();
    let case = Case::new("binding");
    let body = format!("grep Cpus_allowed_list /proc/self/status\n{UNTIL_GO}");
    case.script("bound.sh", &body);
    std::fs::write(case.path("go"), "").expect("go");
    // One after the other: jobs bound at once would get different cores.
    let native = case.qsub(&["-cwd", "-binding", "linear:1", "-N", "native1", "bound.sh"]);
    case.wait_done(native, 1);
    let native_cpus = cpus_allowed(&case.read(format!("native1.o{native}"))).to_string();
    assert_eq!(native_cpus.len(), 1, "one core: {native_cpus}");

    std::fs::remove_file(case.path("go")).expect("rm go");
    let image = case.qsub_image(IMAGE, &["-binding", "linear:1", "-N", "image1", "bound.sh"]);
    case.wait_for_container(image, 0, "running");
    let cpuset = inspect(&task_container(image, 0), "{{.HostConfig.CpusetCpus}}");
    std::fs::write(case.path("go"), "").expect("go");
    case.wait_done(image, 1);
    let inside = cpus_allowed(&case.read(format!("image1.o{image}"))).to_string();
    assert_eq!(cpuset.len(), 1, "one core: {cpuset}");
    assert_eq!(inside, cpuset, "the container runs on its cpuset");

    let whole = case.qsub_image(IMAGE, &["-binding", "linear:2", "-N", "image2", "bound.sh"]);
    case.wait_done(whole, 1);
    assert_eq!(
        cpus_allowed(&case.read(format!("image2.o{whole}"))),
        online_cpus()
    );
    case.assert_clean();
}
