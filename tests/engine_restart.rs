//! A Docker engine restarting under a running job (a package upgrade restarts dockerd): with
//! live-restore nothing is lost, without it the job is requeued. Each test runs its own
//! engine ([`PrivateEngine`]): the shared one must never be restarted.

#[macro_use]
mod common;
use common::private_engine::{LiveRestore, PrivateEngine};
use common::*;

/// Prints 0, 1, 2 … every 0.1 s, `LINES` lines in all, then exits 5.
const LINES: usize = 80;
fn counter() -> String {
    format!("i=0\nwhile [ $i -lt {LINES} ]; do echo $i; i=$((i+1)); sleep 0.1; done\nexit 5\n")
}

fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

/// The counter lines the job printed so far.
fn lines(stdout: &[u8]) -> usize {
    stdout.iter().filter(|&&b| b == b'\n').count()
}

#[test]
fn with_live_restore_an_engine_restart_loses_no_line_and_keeps_the_exit_code() {
    require_engine!();
    let mut engine = PrivateEngine::start(LiveRestore::On);
    let job = Job::new(counter()).with_config(&engine.config());
    let mut running = job.spawn();
    running.wait_until("the job printed 5 lines", secs(30), |r| {
        lines(&r.stdout_so_far()) >= 5
    });
    engine.stop();
    // The output flows on while the engine is away: it never passes through the engine.
    let before = lines(&running.stdout_so_far());
    running.wait_until("lines arrive while the engine is away", secs(30), |r| {
        lines(&r.stdout_so_far()) >= before + 5
    });
    engine.launch();
    let out = running.wait(secs(120));
    let expected: String = (0..LINES).map(|i| format!("{i}\n")).collect();
    assert_eq!(out.stdout_text(), expected, "{out:?}\n{}", engine.log());
    out.assert_code(5);
    out.assert_qdock_line(&["lost the container engine"]);
    out.assert_qdock_line(&["engine is back"]);
    assert_eq!(engine.containers(), Vec::<String>::new());
}

#[test]
fn without_live_restore_a_job_the_engine_took_down_is_requeued() {
    require_engine!();
    let mut engine = PrivateEngine::start(LiveRestore::Off);
    let job = Job::new(counter()).with_config(&engine.config());
    let mut running = job.spawn();
    running.wait_until("the job printed 5 lines", secs(30), |r| {
        lines(&r.stdout_so_far()) >= 5
    });
    engine.restart();
    let out = running.wait(secs(120));
    out.assert_code(99);
    out.assert_qdock_line(&[
        "restarted",
        &job.container_name(),
        "requeued",
        "live-restore",
    ]);
    // What the job printed before the engine stopped it is all there, in order.
    let stdout = out.stdout_text();
    assert!(lines(stdout.as_bytes()) < LINES, "{out:?}");
    let expected: String = (0..lines(stdout.as_bytes()))
        .map(|i| format!("{i}\n"))
        .collect();
    assert_eq!(stdout, expected);
    assert_eq!(engine.containers(), Vec::<String>::new());
}
