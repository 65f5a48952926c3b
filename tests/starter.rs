//! `qdock-starter` against the real Docker engine, run as an ordinary user the way Grid
//! Engine's execd runs a starter_method (see tests/common/mod.rs for the harness).

#[macro_use]
mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn lines(out: &Outcome) -> Vec<String> {
    out.stdout_text().lines().map(str::to_string).collect()
}

/// Starts `job`, waits until its script touched `started`, sends SIGTERM to the starter and
/// waits for its end, which must be exit 143 and no container. Returns the outcome and how
/// long the starter took after the signal.
fn sigterm_once_started(job: &Job) -> (Outcome, Duration) {
    let mut running = job.spawn();
    running.wait_until("the job started", secs(30), |_| {
        job.file("started").exists()
    });
    let sent = Instant::now();
    running.signal(Signal::SIGTERM);
    let out = running.wait(secs(30));
    let took = sent.elapsed();
    out.assert_code(143);
    job.assert_no_container();
    (out, took)
}

// ---------------------------------------------------------------------------------------------
// Output

#[test]
fn stdout_and_stderr_stay_apart() {
    require_engine!();
    let job = Job::new("echo out1\necho err1 >&2\necho out2\necho err2 >&2\n");
    let out = job.expect(0, "out1\nout2\n");
    assert_eq!(out.job_stderr(), "err1\nerr2\n", "{out:?}");
}

#[test]
fn script_without_trailing_newline() {
    require_engine!();
    // Neither the script file nor its last line of output ends in a newline.
    Job::new("echo first\nprintf 'last line, no newline'")
        .expect(0, "first\nlast line, no newline");
}

#[test]
fn ten_mib_of_output_arrive_intact() {
    require_engine!();
    let size = 10 << 20;
    let job = Job::new(format!("head -c {size} /dev/urandom | tee data.bin\n"));
    let out = job.run_ok();
    let copy = std::fs::read(job.file("data.bin")).expect("the job's copy");
    assert_eq!(copy.len(), size);
    assert_eq!(out.stdout.len(), size, "stdout length");
    assert!(out.stdout == copy, "stdout differs from the job's own copy");
    assert_eq!(out.job_stderr(), "", "{out:?}");
    eprintln!("10 MiB job took {:?}", out.elapsed);
}

#[test]
fn all_byte_values_pass_unchanged() {
    require_engine!();
    let job = Job::new("cat bytes.bin\ncat bytes.bin >&2\n");
    let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    write_file(&job.file("bytes.bin"), &bytes, ALICE.uid, ALICE.gid, 0o644);
    let out = job.run_ok();
    assert_eq!(out.stdout, bytes);
    // qdock's usage line follows the job's stderr, which ends without a newline here.
    let usage = out
        .stderr_raw
        .windows(14)
        .rposition(|w| w == b"qdock: usage: ")
        .expect("a usage line");
    assert!(
        out.stderr_raw[..usage].ends_with(&bytes),
        "stderr does not end with the bytes and the usage line: {:?}",
        out.stderr_raw
    );
}

#[test]
fn partial_line_arrives_while_the_job_runs() {
    require_engine!();
    // A progress line without newline must reach the .o file at once, not at the job's end.
    let job = Job::new(format!(
        "printf 'progress 50%%'\ntouch printed\n{UNTIL_GO}echo\necho end\n"
    ));
    let mut running = job.spawn();
    running.wait_until("the job printed", secs(30), |_| {
        job.file("printed").exists()
    });
    running.wait_until(
        "the partial line reaches the starter's stdout before the job's end",
        secs(3),
        |r| r.stdout_so_far() == b"progress 50%",
    );
    job.go();
    let out = running.wait(secs(30));
    out.assert_code(0).assert_stdout("progress 50%\nend\n");
    job.assert_no_container();
}

// ---------------------------------------------------------------------------------------------
// Exit codes

#[test]
fn exit_code_zero() {
    require_engine!();
    Job::new("true\n").run_ok();
}

#[test]
fn exit_code_42() {
    require_engine!();
    Job::new("echo before\nexit 42\n").expect(42, "before\n");
}

#[test]
fn job_killed_by_sigkill_exits_137() {
    require_engine!();
    // docker-init (tini) is PID 1; the script is its child and may be killed from inside.
    let out = Job::new("echo before\nkill -9 $$\necho after\n").expect(137, "before\n");
    assert!(
        !out.stderr.contains("out of memory"),
        "a SIGKILL is not an OOM: {out:?}"
    );
}

#[test]
fn job_killed_by_sigterm_exits_143() {
    require_engine!();
    Job::new("kill -TERM $$\necho after\n").expect(143, "");
}

#[test]
fn missing_image_exits_100_naming_it() {
    require_engine!();
    Job::new("echo never\n")
        .image("qdock/no-such-image:404")
        .expect(100, "")
        .assert_qdock_line(&["qdock/no-such-image:404"]);
}

#[test]
fn engine_socket_nobody_listens_on_exits_99() {
    require_engine!();
    let job = Job::new("echo never\n");
    let socket = job.dir.join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    // Anyone may connect, so the failure is "refused", not "permission denied".
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let job = job.with_config(&format!("[engine]\nsocket = \"{}\"\n", socket.display()));
    let started = Instant::now();
    let out = job.run();
    out.assert_code(99);
    out.assert_qdock_line(&[&socket.display().to_string()]);
    assert!(started.elapsed() < secs(10), "took {:?}", started.elapsed());
}

#[test]
fn usage_error_without_a_script() {
    require_engine!();
    let job = Job::new("");
    let out = job.run_method("qdock-starter", &[], secs(30));
    out.assert_code(2);
    out.assert_qdock_line(&["usage"]);
}

// ---------------------------------------------------------------------------------------------
// Identity and security

#[test]
fn files_the_job_writes_belong_to_the_user() {
    require_engine!();
    let job = Job::new("echo data > made-by-job\nmkdir made-dir\necho tmp > \"$TMPDIR/t\"\n");
    job.run_ok();
    for path in [
        job.file("made-by-job"),
        job.file("made-dir"),
        job.tmpdir.join("t"),
    ] {
        let meta = std::fs::metadata(&path).expect("the job wrote it");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (ALICE.uid, ALICE.gid),
            "{}",
            path.display()
        );
    }
}

#[test]
fn installed_job_runs_as_the_user_with_the_job_group() {
    require_engine!();
    let job = Job::new(
        "cat /etc/os-release | grep '^ID='\nid -u\nid -g\nid -G\ngrep -E '^(CapEff|NoNewPrivs):' /proc/self/status\n",
    );
    let out = job.run_ok();
    let lines = lines(&out);
    assert_eq!(lines[0], "ID=qdock-busybox", "{out:?}");
    assert_eq!(lines[1], "2001");
    assert_eq!(lines[2], "2001");
    let groups: Vec<u32> = lines[3].split(' ').map(|g| g.parse().unwrap()).collect();
    assert!(groups.contains(&JOB_GROUP), "{groups:?}");
    assert!(
        !groups.contains(&docker_gid().unwrap()),
        "the docker group leaked into the container: {groups:?}"
    );
    assert_eq!(lines[4].split_whitespace().nth(1), Some("0000000000000000"));
    assert_eq!(lines[5].split_whitespace().nth(1), Some("1"));
}

#[test]
fn setuid_binaries_in_the_image_gain_nothing() {
    require_engine!();
    Job::new("/bin/busybox-suid id -u\n/bin/busybox-suid id -g\n").expect(0, "2001\n2001\n");
}

#[test]
fn another_user_runs_as_themselves() {
    require_engine!();
    let job = Job::new("id -u\necho x > mine\n").user(BOB);
    job.expect(0, "2002\n");
    assert_eq!(std::fs::metadata(job.file("mine")).unwrap().uid(), BOB.uid);
}

#[test]
fn installed_starter_ignores_qdock_config_and_docker_host() {
    require_engine!();
    let job = Job::new("id -u\n");
    let bogus = job.write_config("[engine]\nsocket = \"/nonexistent/docker.sock\"\n");
    let job = job
        .env("QDOCK_CONFIG", &bogus.display().to_string())
        .env("DOCKER_HOST", "tcp://127.0.0.1:9");
    job.expect(0, "2001\n");
}

#[test]
fn job_without_image_runs_natively_without_the_docker_group() {
    require_engine!();
    let job = Job::new(
        "test -e /qdock-image-marker && echo in-image || echo native\n\
         id -u\nid -g\nid -G\n\
         grep '^Gid:' /proc/$$/status\n\
         echo \"TMPDIR=$TMPDIR\"\n\
         echo \"$1\"\n\
         exit 3\n",
    )
    .native()
    .arg("an argument");
    let out = job.run_expecting(3);
    let lines = lines(&out);
    let docker = docker_gid().unwrap().to_string();
    assert_eq!(lines[0], "native", "{out:?}");
    assert_eq!(lines[1], "2001");
    assert_eq!(lines[2], "2001", "egid must not be docker");
    assert!(
        !lines[3].split(' ').any(|g| g == docker),
        "docker group in a native job: {}",
        lines[3]
    );
    assert!(lines[3].split(' ').any(|g| g == JOB_GROUP.to_string()));
    let gids: Vec<&str> = lines[4].split_whitespace().skip(1).collect();
    assert_eq!(gids, ["2001"; 4], "real, effective, saved, fs gid");
    assert_eq!(lines[5], format!("TMPDIR={}", job.tmpdir.display()));
    assert_eq!(lines[6], "an argument");
}

// ---------------------------------------------------------------------------------------------
// What the job sees

#[test]
fn array_task_names_the_container_and_labels_it() {
    require_engine!();
    let job = Job::new(format!(
        "touch started\n{UNTIL_GO}echo task $SGE_TASK_ID done\n"
    ))
    .task(3);
    let name = job.container_name();
    assert!(name.ends_with("-3"), "{name}");
    let mut running = job.spawn();
    running.wait_until("the task's container runs", secs(30), |_| {
        job.container_running()
    });
    let labels = inspect(&name, "{{json .Config.Labels}}");
    for expected in [
        format!("\"qdock.job-id\":\"{}\"", job.id),
        "\"qdock.task-id\":\"3\"".into(),
        "\"qdock.cell\":\"default\"".into(),
        "\"qdock.queue\":\"all.q\"".into(),
        "\"qdock.owner-uid\":\"2001\"".into(),
        "\"qdock.owner\":\"alice\"".into(),
        "\"qdock.image-digest\":\"sha256:".into(),
    ] {
        assert!(labels.contains(&expected), "{expected} not in {labels}");
    }
    assert!(labels.contains("qdock/busybox:1"), "{labels}");
    let host = inspect(
        &name,
        "{{.Config.User}} {{.HostConfig.Privileged}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}} {{.HostConfig.GroupAdd}}",
    );
    // Podman reports the default capabilities it dropped for ALL, and the option bare.
    let (caps, no_new) = match engine::test_engine() {
        engine::TestEngine::Docker => ("ALL", "no-new-privileges:true"),
        engine::TestEngine::Podman => (
            "AUDIT_WRITE CHOWN DAC_OVERRIDE FOWNER FSETID KILL MKNOD NET_BIND_SERVICE NET_RAW \
             SETFCAP SETGID SETPCAP SETUID SYS_CHROOT",
            "no-new-privileges",
        ),
    };
    assert_eq!(
        host,
        format!("2001:2001 false [{caps}] [{no_new}] [{JOB_GROUP}]"),
        "container settings"
    );
    job.go();
    let out = running.wait(secs(30));
    out.assert_code(0).assert_stdout("task 3 done\n");
    job.assert_no_container();
}

#[test]
fn grid_engine_variables_are_visible_inside() {
    require_engine!();
    let mut job = Job::new(
        "for v in JOB_ID SGE_TASK_ID NSLOTS JOB_NAME QUEUE SGE_CELL HOME USER TMPDIR EXTRA; do\n\
           eval echo \"$v=\\$$v\"\n\
         done\n\
         echo \"PWD=$(pwd)\"\n\
         echo \"PATH=$PATH\"\n\
         env | grep -c '^SGE_STARTER_' || true\n\
         test -d \"$TMPDIR\" && echo tmpdir-ok\n",
    )
    .task(5)
    .env("EXTRA", "a value with spaces");
    job.nslots = 2;
    let out = job.run_ok();
    let expected = [
        format!("JOB_ID={}", job.id),
        "SGE_TASK_ID=5".into(),
        "NSLOTS=2".into(),
        format!("JOB_NAME=qdock-test-{}", job.id),
        "QUEUE=all.q".into(),
        "SGE_CELL=default".into(),
        "HOME=/home/alice".into(),
        "USER=alice".into(),
        format!("TMPDIR={}", job.tmpdir.display()),
        "EXTRA=a value with spaces".into(),
        format!("PWD={}", job.cwd.display()),
    ];
    let lines = lines(&out);
    assert_eq!(lines[..expected.len()], expected, "{out:?}");
    // PATH is the image's, not the host's.
    assert_ne!(lines[11], "PATH=/usr/local/bin:/usr/bin:/bin");
    assert_eq!(lines[12], "0", "SGE_STARTER_* reached the job");
    assert_eq!(lines[13], "tmpdir-ok");
}

#[test]
fn script_arguments_pass_unchanged() {
    require_engine!();
    let args = [
        "plain",
        "two words",
        "",
        "*",
        "$HOME",
        "-n",
        "tab\there",
        "ü",
    ];
    let mut job = Job::new("echo $#\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n");
    for a in args {
        job = job.arg(a);
    }
    let expected: String = std::iter::once(format!("{}\n", args.len()))
        .chain(args.iter().map(|a| format!("[{a}]\n")))
        .collect();
    job.expect(0, &expected);
}

#[test]
fn script_from_stdin_start_mode() {
    require_engine!();
    Job::new("echo from stdin $# \"$1\"\n")
        .env("SGE_STARTER_SHELL_START_MODE", "script_from_stdin")
        .arg("x y")
        .expect(0, "from stdin 1 x y\n");
}

#[test]
fn big_script_from_stdin_with_much_early_output() {
    require_engine!();
    // 5 MB of output before the shell has read the rest of a 2 MB script: the starter must
    // read the output while it feeds the script, or both sides block.
    let mut script = String::from("head -c 5000000 /dev/zero | tr '\\0' x\necho\n");
    let filler = format!("# {}\n", "p".repeat(97));
    script.push_str(&filler.repeat(20_000));
    script.push_str("echo end\n");
    let job = Job::new(script).env("SGE_STARTER_SHELL_START_MODE", "script_from_stdin");
    let out = job.run_ok();
    assert_eq!(out.stdout.len(), 5_000_000 + "\nend\n".len(), "{out:?}");
    assert!(out.stdout.ends_with(b"x\nend\n"));
}

#[test]
fn script_from_stdin_may_exit_before_reading_it_all() {
    require_engine!();
    let mut script = String::from("echo early\nexit 4\n");
    script.push_str(&format!("# {}\n", "p".repeat(97)).repeat(20_000));
    Job::new(script)
        .env("SGE_STARTER_SHELL_START_MODE", "script_from_stdin")
        .expect(4, "early\n");
}

/// A login shell is told so by its argv[0] (`-sh`), natively as in the image, as Grid
/// Engine's builtin starter tells it; the shell reading the script on stdin shows it in `$0`.
#[test]
fn a_login_shell_starts_alike_natively_and_in_the_image() {
    require_engine!();
    for native in [false, true] {
        let job = Job::new("echo \"$0\" \"$1\"\n")
            .env("SGE_STARTER_SHELL_START_MODE", "script_from_stdin")
            .env("SGE_STARTER_USE_LOGIN_SHELL", "true")
            .arg("x");
        let job = if native { job.native() } else { job };
        job.expect(0, "-sh x\n");
    }
}

/// A native job whose script the caller cannot open can never run as submitted: 100 (`Eqw`),
/// as in a container, not 99, which would requeue it again and again. (With
/// script_from_stdin the shepherd opens the script itself and hands it on stdin.)
#[test]
fn a_native_script_the_caller_cannot_open_is_never_requeued() {
    require_engine!();
    let job = Job::new("echo ran\n")
        .native()
        .env("SGE_STARTER_SHELL_START_MODE", "unix_behavior");
    write_file(&job.script_path, &job.script, 0, 0, 0o700);
    let command = job.command("qdock-starter", &[job.script_path.clone().into()]);
    let out = Running::spawn(command, "unreadable script".into()).wait(DEFAULT_TIMEOUT);
    assert_eq!(out.stdout_text(), "", "{out:?}");
    job.assert_refused(&out, 100, &[&job.script_path.display().to_string()]);
}

#[test]
fn unix_behavior_start_mode_uses_the_shebang() {
    require_engine!();
    let job = Job::new("#!/bin/sh\necho unix \"$0\" \"$1\"\n")
        .env("SGE_STARTER_SHELL_START_MODE", "unix_behavior")
        .env("SGE_STARTER_SHELL_PATH", "/bin/false")
        .arg("y");
    job.expect(0, &format!("unix {} y\n", job.script_path.display()));
}

// ---------------------------------------------------------------------------------------------
// Signals

#[test]
fn sigterm_to_the_starter_stops_the_job_quickly() {
    require_engine!();
    let job = Job::new(
        "trap 'echo cleaned up > cleaned; exit 1' TERM\ntouch started\nsleep 300 & wait $!\n",
    );
    let (out, took) = sigterm_once_started(&job);
    assert!(
        job.file("cleaned").exists(),
        "the job did not get SIGTERM before it was killed\n{out:?}"
    );
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(took < secs(5), "the starter took {took:?} to stop the job");
}

#[test]
fn job_ignoring_sigterm_is_killed_after_the_grace() {
    require_engine!();
    let job = Job::new("trap '' TERM\ntouch started\nwhile :; do sleep 1; done\n")
        .with_config("[container]\nstop_grace_secs = 1\n");
    let (_, took) = sigterm_once_started(&job);
    eprintln!("SIGTERM (ignored, grace 1 s) to exit: {took:?}");
    assert!(took < secs(6), "took {took:?}");
    // Even right after the start the job gets its grace, not an immediate SIGKILL.
    assert!(took >= Duration::from_millis(900), "took only {took:?}");
}

#[test]
fn notify_signals_are_forwarded_to_the_job() {
    require_engine!();
    let job = Job::new(
        "trap 'echo got USR2' USR2\n\
         trap 'echo got USR1; exit 7' USR1\n\
         touch ready\n\
         while :; do sleep 1 & wait $!; done\n",
    );
    let mut running = job.spawn();
    running.wait_until("the job set its traps", secs(30), |_| {
        job.file("ready").exists()
    });
    // Grid Engine's -notify signals the job's whole process group.
    running.signal_group(Signal::SIGUSR2);
    running.wait_until("the job got SIGUSR2", secs(10), |r| {
        r.stdout_so_far() == b"got USR2\n"
    });
    running.signal_group(Signal::SIGUSR1);
    let out = running.wait(secs(30));
    out.assert_code(7).assert_stdout("got USR2\ngot USR1\n");
    job.assert_no_container();
}

// ---------------------------------------------------------------------------------------------
// Engine behaviour

#[test]
fn job_outlives_the_engine_request_timeout() {
    require_engine!();
    Job::new("echo start\nsleep 3\necho done\n")
        .with_config("[engine]\ntimeout_secs = 1\n")
        .expect(0, "start\ndone\n");
}

#[test]
fn leftover_of_the_same_owner_is_replaced() {
    require_engine!();
    // A leftover records no starter: a running `qdock gc --watch` (bin/setup-cluster starts
    // one for the cell `default`) would remove it before the starter finds it.
    let job = Job::new("echo ran\n").cell(&format!("leftover-test-{}", std::process::id()));
    let name = job.create_leftover(ALICE, &[&format!("qdock.job-id={}", job.id)]);
    job.expect(0, "ran\n")
        .assert_qdock_line(&["left over", &name]);
}

#[test]
fn h_vmem_limit_becomes_the_memory_limit() {
    require_engine!();
    let limit: u64 = 256 << 20;
    let job = Job::new(
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max\n\
         head -c 600m /dev/zero | tail > /dev/null\n",
    )
    .rlimit_as(limit);
    let out = job.run_expecting(137);
    assert_eq!(lines(&out)[0], limit.to_string(), "{out:?}");
    out.assert_qdock_line(&["out of memory", "256 MiB"]);
}

#[test]
fn oom_of_a_child_the_job_survives_keeps_the_jobs_exit_code() {
    require_engine!();
    Job::new("head -c 600m /dev/zero | tail > /dev/null\necho survived $?\nexit 5\n")
        .rlimit_as(256 << 20)
        .expect(5, "survived 137\n")
        .assert_qdock_line(&["out of memory"]);
}

#[test]
fn engine_that_never_answers_exits_99_after_the_timeout() {
    require_engine!();
    let job = Job::new("echo never\n");
    let socket = job.dir.join("hung.sock");
    // Listening but never accepting: connections queue and no answer ever comes.
    let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let job = job.with_config(&format!(
        "[engine]\nsocket = \"{}\"\ntimeout_secs = 1\n",
        socket.display()
    ));
    let out = job.run();
    drop(listener);
    out.assert_code(99);
    out.assert_qdock_line(&["did not answer within 1 s"]);
    assert!(out.elapsed < secs(10), "took {:?}", out.elapsed);
}

#[test]
fn shell_missing_from_the_image_is_never_requeued() {
    require_engine!();
    // The shell's absence is the job's failure, as natively (127), with or without
    // docker-init: the output helper runs first and says what it could not run.
    for config in ["", "[container]\ninit = false\n"] {
        let out = Job::new("echo never\n")
            .env("SGE_STARTER_SHELL_PATH", "/bin/bash")
            .with_config(config)
            .run_expecting(127);
        assert!(out.stderr.contains("cannot run /bin/bash"), "{out:?}");
    }
}

#[test]
fn image_outside_the_allow_list_exits_100() {
    require_engine!();
    Job::new("echo never\n")
        .with_config("[images]\nallow = [\"docker.io/library/*\"]\n")
        .expect(100, "")
        .assert_qdock_line(&["qdock/busybox:1", "not allowed"]);
}

/// Grid Engine's daemons run the methods with nobody watching: syslog is where an admin
/// finds why a job failed, with the job named.
#[test]
fn failures_reach_syslog() {
    require_engine!();
    let job = Job::new("true").image("Not/Lowercase");
    job.expect_refusal(100, &["not a valid image reference"]);
    let job_part = format!("job {}.0: IMAGE=\"Not/Lowercase\"", job.id);
    wait_until("the refusal is in /var/log/syslog", secs(10), || {
        std::fs::read_to_string("/var/log/syslog").is_ok_and(|log| {
            log.lines()
                .any(|l| l.contains("qdock-starter[") && l.contains(&job_part))
        })
    });
}

/// The output helper execs the job only on the starter's go-ahead (one byte on the FIFO
/// `--wait` names), so a job never runs unseen by its starter's usage probe, nor at all once
/// its starter is gone: with no writer left on the FIFO (a starter killed before the
/// go-ahead, or before the helper opened it), the helper says so and exits 125 at once,
/// the job not run. Run on the host: the helper is the same static binary in any container.
#[test]
fn the_output_helper_runs_the_job_only_on_the_starters_go_ahead() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir().join(format!("qdock-go-ahead-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).expect("a scratch directory");
    let fifo = |name: &str| {
        let path = dir.join(name);
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        path
    };
    let (out, err, go) = (fifo("out"), fifo("err"), fifo("go"));
    let reader = |path: &std::path::Path| {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
            .expect("a read end")
    };
    let (_out, mut err_read) = (reader(&out), reader(&err));
    let ran = dir.join("ran");
    let helper = |go: &std::path::Path| {
        std::process::Command::new(cargo_bin(STDIO_HELPER))
            .arg("--wait")
            .args([go, &out, &err])
            .args(["sh", "/bin/sh", "-c", "touch \"$0\""])
            .arg(&ran)
            .status()
            .expect("run the helper")
    };

    let status = helper(&go);
    assert_eq!(status.code(), Some(125), "{status:?}");
    assert!(!ran.exists(), "the job ran without its starter");
    let mut said = String::new();
    let _ = std::io::Read::read_to_string(&mut err_read, &mut said);
    assert_eq!(
        said,
        "qdock-stdio: the job's starter ended before the job could start\n"
    );

    // The starter's ends, as it holds them, and its byte.
    let held = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&go)
        .expect("the starter's ends");
    std::io::Write::write_all(&mut &held, b"g").expect("the go-ahead");
    let status = helper(&go);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(ran.exists(), "the job did not run on the go-ahead");
    let _ = fs::remove_dir_all(&dir);
}
