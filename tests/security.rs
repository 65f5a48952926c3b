//! The security model (README "Security model") against the real engine, as ordinary users:
//! the setgid binaries are the only door to the engine, nothing the caller controls chooses
//! the config or the engine, containers are confined to the caller's identity, and every bad
//! input is refused with one `qdock:` line, the documented exit code and no container.

#[macro_use]
mod common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Writes the job's script (owned by `owner`) and starts `qdock-starter SCRIPT` for `job`,
/// letting `tweak` change the command (extra or removed variables) first.
fn spawn_with(job: &Job, owner: User, tweak: impl FnOnce(&mut Command)) -> Running {
    write_file(&job.script_path, &job.script, owner.uid, owner.gid, 0o755);
    let mut command = job.command("qdock-starter", &[job.script_path.clone().into()]);
    tweak(&mut command);
    Running::spawn(command, format!("{} (custom)", job.container_name()))
}

fn run_with(job: &Job, tweak: impl FnOnce(&mut Command)) -> Outcome {
    spawn_with(job, ROOT, tweak).wait(DEFAULT_TIMEOUT)
}

/// A trusted directory of this job (root-owned, 0755) for configs and sockets.
fn job_path(job: &Job, name: &str) -> PathBuf {
    job.dir.join(name)
}

/// Runs `job` as root with `QDOCK_CONFIG=path` and fails unless it is refused (exit 100)
/// with a `qdock:` line naming `path` and holding every one of `needles`.
fn config_refused(job: Job, path: &Path, needles: &[&str]) {
    let job = job.mode(Mode::Root(Some(path.to_path_buf())));
    let path = path.display().to_string();
    let mut all = vec![path.as_str()];
    all.extend_from_slice(needles);
    job.expect_refusal(100, &all);
}

/// Ends alice's `running` job the way its queue does (`qdock-terminate` as alice, at most
/// 30 s) and fails unless that succeeds and leaves no container.
fn terminate_alices_job(alice: &Job, running: Running) {
    let id = alice.id.to_string();
    let pid = running.pid.to_string();
    alice
        .run_method("qdock-terminate", &[&id, "0", &pid], secs(30))
        .assert_code(0);
    running.wait(secs(30));
    alice.assert_no_container();
}

// ---------------------------------------------------------------------------------------------
// The door to the engine

#[test]
fn alice_cannot_reach_the_socket_but_her_job_runs() {
    require_engine!();
    let direct = as_user(
        ALICE,
        &[
            "curl",
            "-sv",
            "--unix-socket",
            engine::socket_path(),
            "http://x/version",
        ],
    )
    .output()
    .expect("run curl");
    let stderr = String::from_utf8_lossy(&direct.stderr);
    assert!(
        !direct.status.success(),
        "alice reached the engine: {stderr}"
    );
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&direct.stdout).contains("ApiVersion"),
        "alice got an answer from the engine"
    );

    Job::new("echo reached").expect(0, "reached\n");
}

#[test]
fn native_job_runs_without_the_docker_group() {
    require_engine!();
    let docker = docker_gid().expect("docker group");
    let job = Job::new(format!(
        "grep -E '^(Gid|Groups):' /proc/self/status\n\
         curl -sv --unix-socket {} http://x/version 2>&1 | grep -o 'Permission denied' | head -1\n",
        engine::socket_path()
    ))
    .native();
    let out = job.run();
    out.assert_code(0);
    let text = out.stdout_text();
    // Both lines must be there: without them every check below would pass on nothing.
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line: {out:?}"))
    };
    let gid_line = line("Gid:");
    let ids: Vec<u32> = [gid_line, line("Groups:")]
        .iter()
        .flat_map(|l| l.split_whitespace().skip(1))
        .map(|n| n.parse().expect("a gid"))
        .collect();
    assert!(
        !ids.contains(&docker),
        "the native job kept the docker group: {text}"
    );
    assert!(
        gid_line.split_whitespace().skip(1).all(|g| g == "2001"),
        "{text}"
    );
    assert!(text.contains("Permission denied"), "{out:?}");
}

#[test]
fn environment_cannot_choose_engine_or_config() {
    require_engine!();
    // An evil config alice owns: no network (the installed config has one), every
    // capability she could ask for, and a socket that does not exist (if it were honoured
    // the job could not even start).
    let evil = PathBuf::from(format!("/tmp/qdock-evil-{}.toml", std::process::id()));
    write_file(
        &evil,
        "[engine]\nsocket = \"/nonexistent/docker.sock\"\n\
         [container]\nnetwork = \"none\"\ncap_add = [\"SYS_ADMIN\", \"NET_ADMIN\"]\n\
         [mounts]\nextra = [\"/:/host:rw\"]\n",
        ALICE.uid,
        ALICE.gid,
        0o644,
    );
    let job = Job::new(format!(
        "{UNTIL_GO}grep CapEff /proc/self/status\nls /sys/class/net\ntest -e /host && echo HOST-MOUNTED\necho end\n"
    ))
    .env("DOCKER_HOST", "tcp://127.0.0.1:1")
    .env("DOCKER_TLS_VERIFY", "1")
    .env("DOCKER_CERT_PATH", "/tmp")
    .env("QDOCK_CONFIG", &evil.display().to_string());
    let mut running = job.spawn();
    running.wait_until("the container runs", secs(30), |_| job.container_running());
    let settings = inspect(
        &job.container_name(),
        "{{.HostConfig.NetworkMode}} {{.HostConfig.CapAdd}}",
    );
    job.go();
    let out = running.wait(DEFAULT_TIMEOUT);
    let _ = fs::remove_file(&evil);
    out.assert_code(0);
    let text = out.stdout_text();
    assert!(
        text.contains("CapEff:\t0000000000000000"),
        "capabilities: {out:?}"
    );
    // The installed config's network (host or bridge), not the evil one's loopback alone.
    let interfaces: Vec<&str> = text
        .lines()
        .skip(1)
        .take_while(|l| *l != "end" && *l != "HOST-MOUNTED")
        .collect();
    assert!(interfaces.iter().any(|i| *i != "lo"), "no network: {out:?}");
    assert!(!text.contains("HOST-MOUNTED"), "{out:?}");
    assert!(text.ends_with("end\n"), "{out:?}");
    assert!(!settings.starts_with("none"), "{settings}");
    assert!(!settings.contains("SYS_ADMIN"), "{settings}");
    job.assert_no_container();
}

#[test]
fn untrusted_configs_are_refused() {
    require_engine!();
    // World-writable file in a root-owned directory.
    let job = Job::new("echo ran");
    let path = job_path(&job, "qdock.toml");
    write_file(&path, "", 0, 0, 0o666);
    config_refused(job, &path, &["not trusted", "chmod go-w"]);

    // A trusted-looking file in a group-writable directory.
    let job = Job::new("echo ran");
    let dir = job_path(&job, "gw");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o775)).unwrap();
    let path = dir.join("qdock.toml");
    write_file(&path, "", 0, 0, 0o644);
    config_refused(job, &path, &["its directory", "chmod go-w"]);

    // Owned by an ordinary user.
    let job = Job::new("echo ran");
    let path = job_path(&job, "alice.toml");
    write_file(&path, "", ALICE.uid, ALICE.gid, 0o644);
    config_refused(job, &path, &["owned by uid 2001", "chown root"]);

    // A symlink, even to a trusted file.
    let job = Job::new("echo ran");
    let path = job_path(&job, "link.toml");
    symlink(SYSTEM_CONFIG, &path).unwrap();
    config_refused(job, &path, &["not a regular file"]);
}

// ---------------------------------------------------------------------------------------------
// Inside the container

#[test]
fn container_is_confined_to_the_callers_identity() {
    require_engine!();
    let docker = docker_gid().expect("docker group");
    let job = Job::new(
        "echo uid=$(id -u)\n\
         echo euid-suid=$(/bin/busybox-suid id -u)\n\
         echo groups=$(id -G)\n\
         grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status\n\
         echo tamper >> \"$0\" 2>/dev/null && echo SCRIPT-WRITTEN\n\
         echo x >> /etc/passwd 2>/dev/null && echo PASSWD-WRITTEN\n\
         echo end\n",
    );
    // The script is alice's own file: only the read-only mount can stop her writing it.
    let out = spawn_with(&job, ALICE, |_| {}).wait(DEFAULT_TIMEOUT);
    out.assert_code(0);
    let text = out.stdout_text();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {out:?}"))
            .to_string()
    };
    assert_eq!(field("uid="), "2001", "{out:?}");
    assert_eq!(
        field("euid-suid="),
        "2001",
        "a setuid binary in the image gave root: {out:?}"
    );
    let groups: Vec<u32> = field("groups=")
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    assert!(groups.contains(&ALICE.gid), "{groups:?}");
    assert!(
        groups.contains(&JOB_GROUP),
        "per-job group missing: {groups:?}"
    );
    assert!(!groups.contains(&docker), "docker group leaked: {groups:?}");
    assert!(!groups.contains(&0), "root group: {groups:?}");
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(cap), "0000000000000000", "{cap} {out:?}");
    }
    assert_eq!(field("NoNewPrivs:"), "1", "{out:?}");
    assert_eq!(field("Seccomp:"), "2", "{out:?}");
    assert!(!text.contains("WRITTEN"), "{out:?}");
    assert!(text.ends_with("end\n"), "{out:?}");
    assert_eq!(
        fs::read(&job.script_path).unwrap(),
        job.script,
        "the job script was changed"
    );
    job.assert_no_container();
}

#[test]
fn bob_cannot_control_alices_container() {
    require_engine!();
    let alice = Job::new("sleep 30");
    let running = alice.spawn();
    wait_until("alice's container runs", secs(30), || {
        alice.container_running()
    });
    let bob = Job::new("true").user(BOB);
    let id = alice.id.to_string();
    for method in ["qdock-suspend", "qdock-resume", "qdock-terminate"] {
        let out = bob.run_method(method, &[&id, "0"], secs(20));
        out.assert_code(100);
        out.assert_qdock_line(&["not proven", "belongs to \"alice\", not to you (bob)"]);
    }
    assert_eq!(
        inspect(&alice.container_name(), "{{.State.Status}}"),
        "running"
    );
    terminate_alices_job(&alice, running);
}

/// Regression: `qdock-terminate` for a job without a container used to wait for the given
/// pid and then force-remove the container by name, without checking who owned the one that
/// had appeared meanwhile. Bob could kill alice's job. The job proof now refuses bob at once
/// (tests/boundary.rs); this test turns the proof off to show that the owner check behind it
/// holds on its own.
#[test]
fn bob_cannot_remove_a_container_that_appears_while_he_terminates() {
    require_engine!();
    let alice = Job::new("sleep 30");
    let bob = Job::new("true")
        .user(BOB)
        .with_config("[gridengine]\nunsafe_skip_job_proof = true\n");
    // Bob's own process, which outlives SIGTERM (noting it) until the test releases it: his
    // qdock-terminate waits for it while alice's container appears.
    let mut stubborn = as_user(
        BOB,
        &[
            "/bin/sh",
            "-c",
            "trap 'touch got-term' TERM\ntouch trapping\nwhile [ ! -e release ]; do sleep 0.1; done\n",
        ],
    );
    stubborn.current_dir(&bob.cwd);
    let mut stubborn = Running::spawn(stubborn, "bob's stubborn process".into());
    // A SIGTERM before the trap is set would end it (seen once in CI under load).
    stubborn.wait_until("bob's process traps SIGTERM", secs(30), |_| {
        bob.file("trapping").exists()
    });
    let id = alice.id.to_string();
    let terminate = Running::spawn(
        bob.command(
            "qdock-terminate",
            &[
                id.clone().into(),
                "0".into(),
                stubborn.pid.to_string().into(),
            ],
        ),
        "bob's qdock-terminate".into(),
    );
    // Bob's terminate found no container and now waits for his process to end.
    stubborn.wait_until("bob's process got SIGTERM", secs(30), |_| {
        bob.file("got-term").exists()
    });
    let running = alice.spawn();
    wait_until("alice's container runs", secs(30), || {
        alice.container_running()
    });
    assert!(
        !stubborn.has_exited(),
        "bob's qdock-terminate stopped waiting before alice's container appeared"
    );
    write_file(&bob.file("release"), "", BOB.uid, BOB.gid, 0o644);
    let out = terminate.wait(secs(30));
    stubborn.wait(secs(10)).assert_code(0);
    assert!(
        alice.container_running(),
        "bob's qdock-terminate removed alice's container\n{out:?}"
    );
    // Refused as not his (exit 100), which is more than the failure (non-zero) it must be.
    out.assert_code(100)
        .assert_qdock_line(&["belongs to uid 2001", "not to you"]);
    terminate_alices_job(&alice, running);
}

// ---------------------------------------------------------------------------------------------
// Bad input: one qdock: line, the documented exit code, no container

#[test]
fn bad_images_are_refused() {
    require_engine!();
    let long = format!("qdock/{}", "a".repeat(294));
    let cases: [(&str, &[&str]); 10] = [
        ("", &["IMAGE", "empty", "run natively"]),
        ("   ", &["IMAGE", "empty", "run natively"]),
        (&long, &["longer than 255", "repository:tag"]),
        (
            "busybox;reboot",
            &["not a valid repository name component", "repository:tag"],
        ),
        (
            "qdock/busybox:1;id",
            &["tag", "not valid", "repository:tag"],
        ),
        (
            "$(id)",
            &["not a valid repository name component", "repository:tag"],
        ),
        ("qdock/busybox 1", &["contains ' '", "repository:tag"]),
        ("--privileged", &["starts with '-'", "repository:tag"]),
        ("Qdock/Busybox:1", &["lowercase", "repository:tag"]),
        ("qdock/busybox:1\n", &["contains '\\n'", "repository:tag"]),
    ];
    for (image, needles) in cases {
        Job::new("echo ran")
            .image(image)
            .expect_refusal(100, needles);
    }
}

#[test]
fn images_outside_the_allow_list_are_refused() {
    require_engine!();
    let config = "[images]\nallow = [\"qdock/*\", \"localhost/*\"]\n";
    for image in [
        "evil.example.com/qdock/busybox:1",
        "busybox:1",
        // Docker Hub's user "localhost", not the local registry "localhost/…".
        "docker.io/localhost/evil:1",
        "docker.io/evil.example.com/x:1",
    ] {
        Job::new("echo ran")
            .image(image)
            .with_config(config)
            .expect_refusal(100, &["not allowed", "images.allow"]);
    }
    // The allowed image still runs.
    Job::new("echo ran")
        .with_config(config)
        .run()
        .assert_code(0);
}

#[test]
fn digests_are_enforced() {
    require_engine!();
    let zeros = format!("qdock/busybox@sha256:{}", "0".repeat(64));
    let short = "qdock/busybox@sha256:1234";
    Job::new("echo ran")
        .image(&zeros)
        .expect_refusal(100, &["not on this host", "docker pull"]);
    Job::new("echo ran")
        .image(short)
        .expect_refusal(100, &["digest", "sha256:<64"]);
    Job::new("echo ran")
        .with_config("[images]\nrequire_digest = true\n")
        .expect_refusal(100, &["must be requested by digest", "require_digest"]);
}

#[test]
fn bad_job_ids_are_refused() {
    require_engine!();
    let job = Job::new("echo ran");
    let out = run_with(&job, |c| {
        c.env_remove("JOB_ID");
    });
    job.assert_refused(&out, 100, &["JOB_ID is not set"]);
    for bad in ["12x", "-1", "0", "1 ", "99999999999999999999999"] {
        Job::new("echo ran")
            .env("JOB_ID", bad)
            .expect_refusal(100, &["is not a positive decimal number", "$job_id"]);
    }
    Job::new("echo ran")
        .env("SGE_TASK_ID", "1;id")
        .expect_refusal(100, &["task id", "$ja_task_id"]);
    // SGE_CELL is the caller's to set and is never read: the cell is the config's
    // (boundary.rs: a forged cell names nothing).
    Job::new("echo ran")
        .env("SGE_CELL", "../../x")
        .expect(0, "ran\n");
}

#[test]
fn config_errors_are_refused() {
    require_engine!();
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "nottoml.toml",
            "this is not toml\n",
            &["line 1", "qdock.example.toml"],
        ),
        (
            "unknown.toml",
            "[container]\nbogus = 1\n",
            &["line 2", "bogus", "qdock.example.toml"],
        ),
        (
            "type.toml",
            "[engine]\ntimeout_secs = \"ten\"\n",
            &["engine.timeout_secs", "qdock.example.toml"],
        ),
        (
            "value.toml",
            "[container]\nnetwork = \"host; rm\"\n",
            &["container.network", "qdock.example.toml"],
        ),
    ];
    for (name, text, needles) in cases {
        let job = Job::new("echo ran");
        let path = job_path(&job, name);
        write_file(&path, text, 0, 0, 0o644);
        config_refused(job, &path, needles);
    }

    // Missing.
    let job = Job::new("echo ran");
    let path = job_path(&job, "absent.toml");
    config_refused(job, &path, &["cannot read it", "bin/install"]);

    // Unreadable by the caller (alice, not privileged, so not checked for trust first).
    let job = Job::new("echo ran");
    let path = job_path(&job, "secret.toml");
    write_file(&path, "", 0, 0, 0o600);
    job.mode(Mode::Config(path.clone()))
        .expect_refusal(100, &[&path.display().to_string(), "Permission denied"]);
}

// ---------------------------------------------------------------------------------------------
// The engine's failures: 99, the job is requeued

#[test]
fn missing_socket_requeues() {
    require_engine!();
    let job = Job::new("echo ran");
    let socket = job_path(&job, "absent.sock");
    job.with_config(&format!("[engine]\nsocket = \"{}\"\n", socket.display()))
        .expect_refusal(
            99,
            &[
                "cannot reach the container engine",
                &socket.display().to_string(),
            ],
        );
}

#[test]
fn socket_without_permission_requeues() {
    require_engine!();
    let job = Job::new("echo ran");
    let socket = job_path(&job, "root.sock");
    let _listener = UnixListener::bind(&socket).expect("bind a socket");
    std::os::unix::fs::chown(&socket, Some(0), Some(0)).unwrap();
    fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    job.with_config(&format!("[engine]\nsocket = \"{}\"\n", socket.display()))
        .expect_refusal(99, &[&socket.display().to_string(), "ermission denied"]);
}

#[test]
fn hung_engine_requeues_within_the_timeout() {
    require_engine!();
    let job = Job::new("echo ran");
    let engine = FakeEngine::start(job_path(&job, "hung.sock"), FakeAnswers::Nothing);
    let job = job.with_config(&engine.config(2));
    let started = Instant::now();
    job.expect_refusal(99, &["did not answer within 2 s", "timeout_secs"]);
    let took = started.elapsed();
    assert!(took < secs(8), "took {took:?} for a 2 s timeout");
    // The timeout is the engine's silence: the starter asked and got no answer.
    assert_eq!(engine.requests(), ["HEAD /_ping"]);
}

// ---------------------------------------------------------------------------------------------
// Leftovers, odd environments, odd working directories

#[test]
fn another_users_leftover_is_not_touched() {
    require_engine!();
    let job = Job::new("echo ran");
    let name = job.create_leftover(BOB, &[]);
    let id_before = inspect(&name, "{{.Id}}");
    let out = job.run();
    out.assert_code(100);
    assert_eq!(out.qdock_lines().len(), 1, "{out:?}");
    out.assert_qdock_line(&[&name, "belongs to uid 2002", "qdock gc"]);
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(
        inspect(&name, "{{.Id}}"),
        id_before,
        "the leftover was replaced"
    );
    assert_eq!(inspect(&name, "{{.State.Status}}"), "created");
    assert!(remove_container(&name));
}

#[test]
fn ten_thousand_variables() {
    require_engine!();
    let mut job = Job::new("env | grep -c '^QDOCK_MANY_'\n");
    for i in 0..10_000 {
        job = job.env(&format!("QDOCK_MANY_{i}"), &format!("value-{i}"));
    }
    job.expect(0, "10000\n");
}

#[test]
fn non_utf8_values_are_skipped_with_a_warning() {
    require_engine!();
    let job = Job::new("echo ok=${QDOCK_GOOD}; echo bad=${QDOCK_BAD_VALUE:-unset}\n");
    let out = run_with(&job, |c| {
        c.env("QDOCK_GOOD", "yes");
        c.env(
            "QDOCK_BAD_VALUE",
            OsString::from_vec(vec![b'a', 0xff, 0xfe]),
        );
        // A name that would forge a qdock: line if printed raw.
        c.env("QDOCK_X\nqdock: forged", OsString::from_vec(vec![0xff]));
    });
    out.assert_code(0).assert_stdout("ok=yes\nbad=unset\n");
    out.assert_qdock_line(&["QDOCK_BAD_VALUE", "not UTF-8", "QDOCK_X\\nqdock: forged"]);
    assert!(
        !out.stderr.lines().any(|l| l.starts_with("qdock: forged")),
        "{out:?}"
    );
    job.assert_no_container();
}

#[test]
fn vanished_working_directory_is_refused() {
    require_engine!();
    let job = Job::new("echo ran");
    let gone = job.file("gone");
    fs::create_dir(&gone).unwrap();
    let inner = job.command("qdock-starter", &[job.script_path.clone().into()]);
    write_file(&job.script_path, &job.script, 0, 0, 0o755);
    // Enter the directory, remove it, then exec the starter (through setpriv) inside it.
    let mut command = Command::new("/bin/sh");
    command
        .args([
            "-c",
            "cd \"$1\" && rmdir \"$1\" && shift && exec \"$@\"",
            "sh",
        ])
        .arg(&gone)
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .process_group(0);
    let out =
        Running::spawn(command, "starter in a removed directory".into()).wait(DEFAULT_TIMEOUT);
    job.assert_refused(&out, 100, &["working directory is gone", "submit from"]);
}

/// Regression: the job script (argv[1], any path the caller names) is bind-mounted by the
/// engine, as root; a file behind a directory the caller may not enter must not become
/// readable that way.
#[test]
fn script_the_caller_cannot_open_is_refused() {
    require_engine!();
    let job = Job::new("echo SECRET-READ");
    let private = job_path(&job, "private");
    fs::create_dir(&private).unwrap();
    fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let script = private.join("script");
    write_file(&script, &job.script, 0, 0, 0o755);
    let command = job.command("qdock-starter", &[script.clone().into()]);
    let out = Running::spawn(command, "private script".into()).wait(DEFAULT_TIMEOUT);
    assert!(!out.stdout_text().contains("SECRET-READ"), "{out:?}");
    job.assert_refused(&out, 100, &[&script.display().to_string(), "job script"]);
}

// ---------------------------------------------------------------------------------------------
// User mounts

/// `<job dir>/data` (root-owned) with `x/` (alice's, holding `file`), the only prefix users
/// may mount from, read-only; `/var/lib/qdock-test/.../data/rw` is writable.
fn mount_job(script: &str) -> (Job, PathBuf) {
    let job = Job::new(script);
    let data = job_path(&job, "data");
    fs::create_dir(&data).unwrap();
    let x = data.join("x");
    fs::create_dir(&x).unwrap();
    std::os::unix::fs::chown(&x, Some(ALICE.uid), Some(ALICE.gid)).unwrap();
    write_file(&x.join("file"), "content\n", ALICE.uid, ALICE.gid, 0o644);
    symlink("/etc", data.join("link")).unwrap();
    let config = format!("[[mounts.user_allow]]\nprefix = \"{}\"\n", data.display());
    (job.with_config(&config), data)
}

#[test]
fn user_mount_is_read_only_inside() {
    require_engine!();
    let (job, data) =
        mount_job("cat /in/file\ntouch /in/new 2>&1 | grep -o 'Read-only file system'\necho end\n");
    job.env("QDOCK_MOUNTS", &format!("{}/x:/in:ro", data.display()))
        .expect(0, "content\nRead-only file system\nend\n");
    assert!(!data.join("x/new").exists());
}

/// `<job dir>/ref` (root's), which the admin mounts read-only, holding `open`, a directory
/// anyone may write on the host: what a job writes there tells whether the mount is read-only.
/// With `users_may_write`, users may also mount anything below `ref` read-write.
fn admin_read_only_job(script: &str, users_may_write: bool) -> (Job, PathBuf) {
    let job = Job::new(script);
    let reference = job_path(&job, "ref");
    make_dir(&reference.join("open"), 0, 0, 0o777);
    let mut config = format!("[mounts]\nextra = [\"{}:ro\"]\n", reference.display());
    if users_may_write {
        config += &format!(
            "[[mounts.user_allow]]\nprefix = \"{}\"\nwritable = true\n",
            reference.display()
        );
    }
    (job.with_config(&config), reference)
}

/// Runs `job`'s starter from `cwd`.
fn run_from(job: &Job, cwd: &Path) -> Outcome {
    job.write_script();
    let mut command = job.command("qdock-starter", &[job.script_path.clone().into()]);
    command.current_dir(cwd);
    Running::spawn(command, format!("the starter in {}", cwd.display())).wait(DEFAULT_TIMEOUT)
}

/// A job run from the admin's read-only mount, or from below it, cannot write there: the
/// job's working directory does not make it writable.
#[test]
fn the_admins_read_only_mount_stays_read_only_as_the_working_directory() {
    require_engine!();
    let write = "touch {file} 2>&1 | grep -o 'Read-only file system'; echo end\n";
    for (cwd, file) in [("", "open/new"), ("open", "new")] {
        let (job, reference) = admin_read_only_job(&write.replace("{file}", file), false);
        let out = run_from(&job, &reference.join(cwd));
        out.assert_code(0)
            .assert_stdout("Read-only file system\nend\n");
        assert!(!reference.join("open/new").exists(), "cwd {cwd:?}: written");
        job.assert_no_container();
    }
}

/// A user asking to write below the admin's read-only mount gets it read-only, and one line
/// saying why; the job runs.
#[test]
fn a_user_mount_asking_rw_in_the_admins_read_only_mount_is_read_only() {
    require_engine!();
    let write = "touch /out/new 2>&1 | grep -o 'Read-only file system'; echo end\n";
    let (job, reference) = admin_read_only_job(write, true);
    let out = job
        .env(
            "QDOCK_MOUNTS",
            &format!("{}/open:/out:rw", reference.display()),
        )
        .run();
    out.assert_code(0)
        .assert_stdout("Read-only file system\nend\n")
        .assert_qdock_line(&[
            "open is mounted read-only although asked read-write",
            "the admin mounts",
        ]);
    assert!(!reference.join("open/new").exists());
}

#[test]
fn bad_user_mounts_are_refused() {
    require_engine!();
    let cases: [(&str, &[&str]); 6] = [
        // A link under the prefix that leads out of it.
        (
            "{data}/link:/in:ro",
            &["not under an allowed prefix", "/etc"],
        ),
        ("{data}/x/../../../../etc:/in:ro", &[". or .. components"]),
        // Read-write under a read-only prefix.
        (
            "{data}/x:/in",
            &["may only be mounted read-only", "add :ro"],
        ),
        ("{data}/x:/etc/qdock:ro", &["system directory"]),
        ("/etc:/in:ro", &["not under an allowed prefix"]),
        ("relative:/in:ro", &["not an absolute path"]),
    ];
    for (request, needles) in cases {
        let (job, data) = mount_job("echo ran");
        let request = request.replace("{data}", &data.display().to_string());
        let mut all = vec!["mount", "refused"];
        all.extend_from_slice(needles);
        job.env("QDOCK_MOUNTS", &request).expect_refusal(100, &all);
    }
}

/// The job's output pipes are bind-mounted by the engine, as root, by path: a user who could
/// reach that path could swap a FIFO for a link to another user's file first. Their directory
/// is closed to users, and gone once the container has started (its mounts hold the FIFOs).
#[test]
fn the_output_pipes_are_out_of_the_users_reach() {
    require_engine!();
    let job = Job::new(format!(
        "echo started\n{UNTIL_GO}ls -l /.qdock/stdout; echo to-stderr >&2\n"
    ));
    let mut running = job.spawn();
    running.wait_until("the job started", secs(30), |r| {
        r.stdout_so_far().starts_with(b"started\n")
    });
    let look = as_user(ALICE, &["ls", STDIO_DIR]).output().expect("ls");
    assert!(
        !look.status.success(),
        "alice can list {STDIO_DIR}: {look:?}"
    );
    let mode = fs::metadata(STDIO_DIR)
        .expect("the pipes' directory")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777,
        0o1770
    );
    let name = job.container_name();
    let left: Vec<_> = fs::read_dir(STDIO_DIR)
        .expect("read the pipes' directory")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&name))
        .collect();
    assert!(left.is_empty(), "the job's pipes are still named: {left:?}");
    job.go();
    let out = running.wait(DEFAULT_TIMEOUT);
    out.assert_code(0);
    // In the container the pipe is the caller's own FIFO, mounted read-only.
    let listing = out.stdout_text();
    assert!(listing.contains("\nprw-------"), "{out:?}");
    assert!(listing.contains(" alice "), "{out:?}");
    assert_eq!(out.job_stderr(), "to-stderr\n", "{out:?}");
    job.assert_no_container();
}

/// `qdock check --config PATH` examines PATH with the caller's rights: run setgid, it used to
/// look with the docker group's and so told alice which names exist in the pipes' directory,
/// which she cannot list. A name there and a name that is not must read alike.
#[test]
fn qdock_check_tells_alice_nothing_of_names_she_cannot_see() {
    require_engine!();
    let existing = Path::new(STDIO_DIR).join(format!("qdock-test-oracle-{}", std::process::id()));
    let missing = Path::new(STDIO_DIR).join(format!("qdock-test-absent-{}", std::process::id()));
    write_file(&existing, "", 0, 0, 0o644);
    let qdock = installed_bin("qdock");
    let check = |path: &Path| {
        let out = as_user(
            ALICE,
            &[
                qdock.to_str().unwrap(),
                "check",
                "--config",
                path.to_str().unwrap(),
            ],
        )
        .output()
        .expect("run qdock check");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The engine it still reaches: the group is put down, not lost.
        assert!(stdout.contains("\nok      engine at "), "{out:?}");
        let shown = path.display().to_string();
        let line = stdout
            .lines()
            .find(|l| l.contains(&shown))
            .unwrap_or_else(|| panic!("no line names {shown}: {out:?}"))
            .replace(&shown, "PATH");
        (out.status.code(), line)
    };
    let (seen, unseen) = (check(&existing), check(&missing));
    fs::remove_file(&existing).unwrap();
    assert_eq!(
        seen,
        unseen,
        "alice can tell that {} exists",
        existing.display()
    );
}
