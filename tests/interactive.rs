//! qrsh as a user at a terminal runs it, through the real Grid Engine cell and the qdock
//! methods installed by bin/install or the package (the harness and its rules: tests/common/cell.rs; the
//! terminal: tests/common/pty.rs). `qrsh -pty y … sh` gives a shell on a terminal, natively
//! and in the image; without a terminal, qrsh's stdin reaches the job.

#[macro_use]
mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cell::*;
use common::pty::{Session, qrsh_shell, session_job};
use common::*;

/// The pid of the job's `sleep 4321`, in or out of a container: a process of the job's own
/// (its environment names the job) with exactly that command line.
fn job_sleep(job: u32) -> Option<i32> {
    let wanted = format!("JOB_ID={job}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            if cmdline != b"sleep\x004321\x00" {
                return None;
            }
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            environ
                .split(|&b| b == 0)
                .any(|v| v == wanted.as_bytes())
                .then_some(pid)
        })
}

/// qrsh may return a moment before the job leaves qstat; then nothing of it may be left.
fn assert_ended(case: &Case, job: u32) {
    case.wait_until("the job left qstat", JOB_TIMEOUT, || {
        case.states(job).is_empty()
    });
    case.assert_clean();
}

/// What a user does on the shell's terminal: its name, its size and a change of it, Ctrl-C
/// for a foreground command, and the exit code back through qrsh. `os_id` proves where the
/// shell runs.
fn use_the_shell(case: &Case, mut shell: Session, os_id: &str) {
    let job = session_job(case, &mut shell);
    let os = shell.run("grep ^ID= /etc/os-release");
    assert!(os.contains(&format!("ID={os_id}\r\n")), "{os:?}");
    let tty = shell.run("tty");
    assert!(tty.contains("\r\n/dev/pts/"), "{tty:?}");
    let size = shell.run("stty size");
    assert!(size.contains("\r\n33 97\r\n"), "{size:?}");
    // The new size travels qrsh -> shepherd -> starter -> engine: asked again until it
    // arrived, each answer awaited.
    shell.resize(40, 120);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let size = shell.run("stty size");
        if size.contains("\r\n40 120\r\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the size did not change: {size:?}"
        );
    }
    // Ctrl-C once the sleep surely runs: a byte to the terminal, SIGINT to the sleep alone.
    shell.send(b"sleep 4321\r");
    poll_until(
        "the job's sleep runs",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || job_sleep(job).is_some(),
        || shell.transcript(),
    );
    shell.send(b"\x03");
    let status = shell.run("echo \"rc-$?\"");
    assert!(status.contains("rc-130\r\n"), "{status:?}");
    assert_eq!(job_sleep(job), None);
    shell.send(b"exit 7\r");
    let status = shell.wait();
    assert_eq!(status.code(), Some(7), "{}", shell.transcript());
    assert_ended(case, job);
}

#[test]
fn qrsh_with_a_terminal_gives_a_shell_in_the_image() {
    require_cell!();
    let case = Case::new("pty-image");
    let image = format!("IMAGE={IMAGE}");
    let shell = qrsh_shell(&case, &["-v", &image]);
    use_the_shell(&case, shell, "qdock-busybox");
}

#[test]
fn qrsh_with_a_terminal_gives_a_native_shell_without_image() {
    require_cell!();
    let case = Case::new("pty-native");
    let shell = qrsh_shell(&case, &[]);
    use_the_shell(&case, shell, "debian");
}

/// The cell's orphan watcher (`qdock gc --watch`, started by bin/install) logs each removal.
const WATCHER_LOG: &str = "/var/log/qdock-gc-watch.log";

/// The user's end goes away (qrsh killed, as when the terminal window closes): the shepherd
/// loses qrsh and SIGKILLs the job, the starter with it, so no one is left to remove the
/// container but the orphan watcher, which does.
#[test]
fn a_terminal_session_ends_when_qrsh_dies() {
    require_cell!();
    let case = Case::new("pty-hangup");
    let image = format!("IMAGE={IMAGE}");
    let mut shell = qrsh_shell(&case, &["-v", &image]);
    let job = session_job(&case, &mut shell);
    assert_eq!(containers_of(job).len(), 1, "{:?}", containers_of(job));
    let removed = format!("removed {} ", task_container(job, 0));
    let log = || std::fs::read_to_string(WATCHER_LOG).unwrap_or_default();
    assert!(
        !log().contains(&removed),
        "an earlier {removed:?} in {WATCHER_LOG}"
    );
    shell.kill();
    case.wait_until("the watcher removed the container", JOB_TIMEOUT, || {
        log().contains(&removed)
    });
    assert_ended(&case, job);
}

/// `qdel` of a terminal session: qrsh returns, the container goes.
#[test]
fn qdel_ends_a_terminal_session() {
    require_cell!();
    let case = Case::new("pty-qdel");
    let image = format!("IMAGE={IMAGE}");
    let mut shell = qrsh_shell(&case, &["-v", &image]);
    let job = session_job(&case, &mut shell);
    case.client("qdel", &[&job.to_string()]);
    let status = shell.wait();
    assert_ne!(status.code(), Some(0), "{}", shell.transcript());
    assert_ended(&case, job);
}

/// Without a terminal, qrsh's stdin is the job's, to its end: natively and in the image,
/// every byte of it comes back through `cat`.
#[test]
fn qrsh_stdin_reaches_the_job() {
    require_cell!();
    let case = Case::new("qrsh-stdin");
    let input: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let image = format!("IMAGE={IMAGE}");
    for extra in [&[][..], &["-v", &image]] {
        let mut args = vec!["-now", "no"];
        args.extend_from_slice(extra);
        args.push("cat; echo \"job=$JOB_ID\" >&2");
        let mut child = case
            .client_command("qrsh", &args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn qrsh");
        let mut stdin = child.stdin.take().expect("piped");
        let fed = input.clone();
        let feeder = std::thread::spawn(move || {
            stdin.write_all(&fed).expect("feed qrsh");
        });
        let out = child.wait_with_output().expect("qrsh");
        feeder.join().expect("feeder");
        assert_eq!(out.status.code(), Some(0), "{extra:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let job = stderr
            .lines()
            .find_map(|l| l.strip_prefix("job=")?.parse().ok())
            .unwrap_or_else(|| panic!("no job id in {stderr:?}"));
        case.track(job);
        assert_eq!(out.stdout.len(), input.len(), "{extra:?}");
        assert!(out.stdout == input, "{extra:?}: the bytes differ");
        assert_ended(&case, job);
    }
}

/// A terminal nobody reads: the job floods it while the user's qrsh stands stopped. Grid
/// Engine's shepherd, between the starter and qrsh, keeps reading the starter's terminal
/// and holds what qrsh does not take (measured on 8.1.9: its memory grows by megabytes a
/// second, natively faster still), so the starter's own writes go on; tests/control.rs
/// blocks them for good instead. The job must still obey: `qmod -sj` pauses the container,
/// `qmod -usj` unpauses it, `qdel` stops and removes it and the starter ends, within the
/// bounds of tests/gridengine.rs. The shepherd keeps the job in `dr` until qrsh takes the
/// rest (natively as well); then qrsh ends and so does the job.
#[test]
fn a_terminal_nobody_reads_still_obeys_qmod_and_qdel() {
    require_cell!();
    let case = Case::new("pty-flood");
    let image = format!("IMAGE={IMAGE}");
    let args = [
        "-pty",
        "y",
        "-now",
        "no",
        "-v",
        &image,
        "echo \"job-$JOB_ID-\"; exec yes flood",
    ];
    let mut flood = Session::spawn(case.client_command("qrsh", &args), 24, 80, JOB_TIMEOUT);
    flood.expect("job-");
    let id = flood.expect("-");
    let job: u32 = id
        .trim_end_matches('-')
        .parse()
        .unwrap_or_else(|_| panic!("no job id in {id:?}"));
    case.track(job);
    flood.expect("flood\r\n");
    let name = task_container(job, 0);
    let starter: i32 = inspect(&name, "{{index .Config.Labels \"qdock.starter-pid\"}}")
        .parse()
        .expect("the starter's pid label");

    flood.signal(Signal::SIGSTOP);
    case.wait_until("qrsh stopped", JOB_TIMEOUT, || {
        proc_state(flood.pid()) == Some('T')
    });
    let paused = || inspect(&name, "{{.State.Paused}}");
    case.client("qmod", &["-sj", &job.to_string()]);
    let took = case.wait_until("the container paused", JOB_TIMEOUT, || paused() == "true");
    eprintln!("paused {took:?} after qmod -sj");
    case.wait_state(job, "suspended", |s| s.contains('s'));
    case.client("qmod", &["-usj", &job.to_string()]);
    let took = case.wait_until("the container unpaused", JOB_TIMEOUT, || {
        paused() == "false"
    });
    eprintln!("unpaused {took:?} after qmod -usj");
    case.wait_state(job, "running again", |s| s == "r");

    let limit = stop_grace() + Duration::from_secs(8);
    case.client("qdel", &[&job.to_string()]);
    let took = case.wait_until("the container gone and the starter ended", limit, || {
        containers_of(job).is_empty() && proc_state(starter).is_none_or(|s| s == 'Z')
    });
    eprintln!("container gone and starter ended {took:?} after qdel");
    assert_eq!(proc_state(flood.pid()), Some('T'), "qrsh ran meanwhile");
    // The user comes back: qrsh takes what the shepherd holds, and ends.
    flood.signal(Signal::SIGCONT);
    let status = flood.wait();
    assert_ne!(status.code(), Some(0));
    assert_ended(&case, job);
}

/// Keys typed before the job's shell reads them reach it: typed as soon as the starter says
/// it created the container (before the container starts), they give the script's output and
/// exit code, as natively, in 20 of 20 sessions. (Keys typed while Grid Engine still starts
/// the session, before the starter runs, are lost natively too: qrsh's own window.)
#[test]
fn keys_typed_ahead_reach_the_shell_in_the_image() {
    require_cell!();
    let case = Case::new("pty-typeahead");
    let image = format!("IMAGE={IMAGE}");
    for attempt in 1..=20 {
        let mut shell = qrsh_shell(&case, &["-v", &image]);
        shell.expect("as container qdock-");
        shell.send(b"echo \"typed-$((6*7))\"; exit 4\r");
        shell.expect("typed-42");
        let status = shell.wait();
        let transcript = shell.transcript();
        let job = transcript
            .split("as container qdock-")
            .nth(1)
            .and_then(|rest| rest.split('-').nth(1))
            .and_then(|job| job.parse().ok())
            .unwrap_or_else(|| panic!("no container name in {transcript:?}"));
        case.track(job);
        assert_eq!(status.code(), Some(4), "session {attempt}: {transcript}");
        // qrsh ends before the shepherd: the job leaves qstat a moment later.
        assert_ended(&case, job);
    }
}
