//! Parallel jobs and core binding through the real Grid Engine cell (harness:
//! tests/common/cell.rs): the parallel environments `smp` ($pe_slots) and `mpi` (tightly
//! integrated) that bin/setup-cluster attaches to the queue, and `qsub -binding`.

#[macro_use]
mod common;

use common::cell::*;
use common::*;

/// The `Cpus_allowed_list` line a job prints with `grep Cpus_allowed_list /proc/self/status`.
fn cpus_allowed(output: &str) -> &str {
    output
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {output:?}"))
}

/// The host's online CPUs as a list (`0-1`), what an unbound process may use.
fn online_cpus() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .expect("/sys/devices/system/cpu/online")
        .trim()
        .to_string()
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
    let hostfile_mount = inspect(
        &name,
        "{{range .Mounts}}{{if eq .Type \"bind\"}}{{.Source}} {{.Destination}} {{.RW}}\n{{end}}{{end}}",
    );
    let hostfile_mount = hostfile_mount
        .lines()
        .find(|l| l.contains("pe_hostfile"))
        .unwrap_or_else(|| panic!("no pe_hostfile mount: {hostfile_mount}"));
    let fields: Vec<&str> = hostfile_mount.split(' ').collect();
    assert_eq!(fields[0], fields[1], "mounted at its own path");
    assert_eq!(fields[2], "false", "read-only");
    assert!(
        fields[0].ends_with(&format!("/active_jobs/{image}.1/pe_hostfile")),
        "{hostfile_mount}"
    );
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
    let acct = case.wait_done(job, 3);
    let mut codes: Vec<i32> = acct.iter().map(Acct::exit_status).collect();
    codes.sort_unstable();
    assert_eq!(codes, [0, 0, 3], "{acct:?}");
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
