//! `qdock gc --watch` against the real engine: a job's container must not outlive its
//! starter, whatever the job's owner does to the starter, and a live job is left alone.
//!
//! Each test runs its own watcher (the cargo-built `qdock`, as root, with a test config) and
//! its jobs in a Grid Engine cell of its own, which the watcher is limited to (`--cell`): the
//! watcher then never touches another test's containers, and no other `qdock gc` touches
//! ours. The watcher's own stdout line ("removed NAME …") proves that it, not something
//! else, removed a container.

#[macro_use]
mod common;

use std::io::ErrorKind;
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// How long anything the watcher does may take before the test fails; the speed is
/// measured and printed, not asserted.
const PATIENCE: Duration = Duration::from_secs(30);

/// Notes the stop signal in `cleaned` (proof of a graceful stop rather than a kill) and
/// exits.
const TRAPS_TERM: &str = "trap 'echo cleaned up > cleaned; exit 0' TERM
echo started > started
while :; do sleep 0.1; done
";

/// A cell no other test (in this or another test process) uses.
fn own_cell() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("watch-{}-{n}", std::process::id())
}

/// A job of alice's in `cell`, in the test image.
fn job_in(cell: &str, script: &str) -> Job {
    Job::new(script).cell(cell)
}

/// `qdock gc --watch --cell CELL` as root; dropping it kills it.
struct Watcher {
    process: Running,
    /// Holds the config the watcher reads.
    _admin: Job,
}

impl Watcher {
    /// Starts a watcher and waits until it has listed the engine's containers.
    fn start(cell: &str) -> Watcher {
        Watcher::start_with(cell, |_| String::new())
    }

    /// Likewise with more config, made from the directory the config lives in.
    fn start_with(cell: &str, more_config: impl FnOnce(&Path) -> String) -> Watcher {
        let admin = Job::new("").native();
        let toml = format!(
            "{}\n[container]\nstop_grace_secs = 5\n",
            more_config(&admin.dir)
        );
        let config = admin.write_config(&toml);
        let admin = admin.mode(Mode::Root(Some(config)));
        let args = ["gc", "--watch", "--cell", cell].map(Into::into);
        let mut process = Running::spawn(admin.command("qdock", &args), format!("watcher {cell}"));
        process.wait_until("the watcher follows the engine", PATIENCE, |w| {
            w.stderr_so_far().contains("following the engine")
        });
        Watcher {
            process,
            _admin: admin,
        }
    }

    fn said(&self, needle: &str) -> bool {
        String::from_utf8_lossy(&self.process.stdout_so_far()).contains(needle)
    }

    /// Waits until the watcher reports it removed `job`'s container; returns how long that
    /// took from `since`.
    fn wait_for_removal(&mut self, job: &Job, since: Instant) -> Duration {
        let line = format!("removed {} ", job.container_name());
        self.process
            .wait_until(&format!("the watcher {line}"), PATIENCE, |w| {
                String::from_utf8_lossy(&w.stdout_so_far()).contains(&line)
            });
        let took = since.elapsed();
        job.assert_no_container();
        took
    }
}

/// Starts `job` and waits until its container runs the script.
fn start(job: &Job) -> Running {
    let mut starter = job.spawn();
    starter.wait_until("the job runs in its container", PATIENCE, |_| {
        job.file("started").exists() && job.container_running()
    });
    starter
}

/// SIGKILLs the starter, as its owner may, and waits until it is dead. Returns the moment
/// of the kill.
fn kill_starter(starter: Running) -> Instant {
    let killed = Instant::now();
    starter.signal(Signal::SIGKILL);
    starter
        .wait(Duration::from_secs(10))
        .assert_killed_by(Signal::SIGKILL);
    killed
}

#[test]
fn running_container_of_a_killed_starter_is_stopped_and_removed() {
    require_engine!();
    let cell = own_cell();
    let mut watcher = Watcher::start(&cell);
    let job = job_in(&cell, TRAPS_TERM);
    let starter = start(&job);

    let killed = kill_starter(starter);
    let took = watcher.wait_for_removal(&job, killed);
    assert!(
        job.file("cleaned").exists(),
        "the job got no stop signal before its container went"
    );
    eprintln!("measured: running container removed {took:?} after its starter's SIGKILL");
}

#[test]
fn paused_container_of_a_killed_starter_is_thawed_stopped_and_removed() {
    require_engine!();
    let cell = own_cell();
    let mut watcher = Watcher::start(&cell);
    let job = job_in(&cell, TRAPS_TERM);
    let starter = start(&job);
    let name = job.container_name();
    docker_text(&["pause", &name]);
    assert_eq!(inspect(&name, "{{.State.Status}}"), "paused");

    let killed = kill_starter(starter);
    let took = watcher.wait_for_removal(&job, killed);
    assert!(
        job.file("cleaned").exists(),
        "the job was not thawed to get its stop signal"
    );
    eprintln!("measured: paused container removed {took:?} after its starter's SIGKILL");
}

#[test]
fn stopped_then_killed_starter_leaves_nothing() {
    require_engine!();
    let cell = own_cell();
    let mut watcher = Watcher::start(&cell);
    let job = job_in(&cell, TRAPS_TERM);
    let starter = start(&job);

    // A stopped starter has not ended: its job still holds its slot.
    starter.signal(Signal::SIGSTOP);
    let name = job.container_name();
    let stopped_line = format!("removed {name} ");
    wait_until("the starter is stopped", PATIENCE, || {
        proc_state(starter.pid) == Some('T')
    });
    assert!(job.container_running() && !watcher.said(&stopped_line));

    let killed = kill_starter(starter);
    watcher.wait_for_removal(&job, killed);
}

#[test]
fn live_job_is_left_alone_while_orphans_go_at_start_and_later() {
    require_engine!();
    let cell = own_cell();
    let orphan = job_in(&cell, TRAPS_TERM);
    let live = job_in(&cell, TRAPS_TERM);
    let orphan_starter = start(&orphan);
    let live_starter = start(&live);
    kill_starter(orphan_starter);
    assert!(
        orphan.container_running(),
        "the orphan should outlive its starter until a watcher runs"
    );

    // The watcher finds the orphan in its first listing, and starts waiting for the other.
    let since = Instant::now();
    let mut watcher = Watcher::start(&cell);
    watcher.wait_for_removal(&orphan, since);
    assert!(
        live.container_running(),
        "the watcher touched a live job's container"
    );
    assert!(!watcher.said(&live.container_name()));

    let killed = kill_starter(live_starter);
    watcher.wait_for_removal(&live, killed);
}

#[test]
fn normal_end_costs_nothing_and_sigterm_ends_the_watcher_with_exit_0() {
    require_engine!();
    let cell = own_cell();
    let watcher = Watcher::start(&cell);
    let job = job_in(&cell, "echo ran\n");
    job.expect(0, "ran\n");

    watcher.process.signal(Signal::SIGTERM);
    let out = watcher.process.wait(PATIENCE);
    out.assert_code(0);
    assert!(
        !out.stdout_text().contains(&job.container_name()),
        "the watcher claims a container its starter removed: {out:?}"
    );
    out.assert_qdock_line(&["gc --watch: stopped"]);
}

#[test]
fn sigint_ends_the_watcher_with_exit_0() {
    require_engine!();
    let watcher = Watcher::start(&own_cell());
    watcher.process.signal(Signal::SIGINT);
    watcher.process.wait(PATIENCE).assert_code(0);
}

#[test]
fn watcher_survives_the_engine_going_away_and_lists_again_on_its_return() {
    require_engine!();
    let cell = own_cell();
    let mut proxy = None;
    let mut watcher = Watcher::start_with(&cell, |dir| {
        let started = EngineProxy::start(dir.join("engine.sock"));
        let toml = format!("[engine]\nsocket = \"{}\"", started.path.display());
        proxy = Some(started);
        toml
    });
    let proxy = proxy.expect("the proxy started");
    let job = job_in(&cell, TRAPS_TERM);
    let starter = start(&job);

    // The watcher loses the engine and cannot reach it; meanwhile the starter dies.
    proxy.cut();
    watcher
        .process
        .wait_until("the watcher fails to reconnect", PATIENCE, |w| {
            w.stderr_so_far().contains("retrying")
        });
    let killed = kill_starter(starter);
    assert!(
        job.container_running(),
        "something else removed the container"
    );

    proxy.restore();
    watcher.wait_for_removal(&job, killed);
    assert!(
        watcher
            .process
            .stderr_so_far()
            .contains("the engine answers again")
    );
}

// ---------------------------------------------------------------------------------------------
// Pipes' directories of starters killed before their container started

/// A starter of `job` held between making its pipes and starting its container, as execd's
/// SIGKILL (qdel, h_rt) may find one that is still creating it: its stderr is a full pipe,
/// and its first line comes after create, before start. Returns the starter, the gate that
/// lets it go on (dropping the gate breaks the pipe) and its pipes' directory.
fn hold(job: &Job) -> (Running, StderrGate, PathBuf) {
    job.write_script();
    let argv = vec![job.script_path.clone().into_os_string()];
    let (mut starter, gate) = Running::spawn_with_stderr_blocked(
        job.command("qdock-starter", &argv),
        format!("held starter of {}", job.container_name()),
    );
    starter.wait_until("its container is created", PATIENCE, |_| {
        job.container_exists()
    });
    let dirs = job.pipes_dirs();
    assert_eq!(dirs.len(), 1, "one pipes' directory per starter: {dirs:?}");
    (starter, gate, dirs[0].clone())
}

/// What gc says when it removes `dir`.
fn removed_line(dir: &Path) -> String {
    let name = dir.file_name().expect("a name").to_string_lossy();
    format!("removed pipes directory {name}: its starter (pid ")
}

/// Lets a held starter go on and checks that its job ran as usual and left nothing.
fn release(job: &Job, mut starter: Running, gate: StderrGate, dir: &Path) {
    gate.open(&mut starter);
    starter.wait(PATIENCE).assert_code(0).assert_stdout("ran\n");
    assert!(!dir.exists(), "{} outlived its job", dir.display());
    job.assert_no_container();
}

#[test]
fn gc_removes_the_pipes_of_a_starter_killed_before_its_container_started() {
    require_engine!();
    let cell = own_cell();
    let live = job_in(&cell, "echo ran\n");
    let killed = job_in(&cell, "echo ran\n");
    let (live_starter, live_gate, live_dir) = hold(&live);
    let (killed_starter, _killed_gate, killed_dir) = hold(&killed);
    kill_starter(killed_starter);
    assert!(
        killed_dir.exists(),
        "the pipes should outlive their killed starter until gc runs"
    );

    let admin = Job::new("").native().mode(Mode::Root(None));
    let dry = admin.run_method("qdock", &["gc", "--dry-run", "--cell", &cell], PATIENCE);
    dry.assert_code(0);
    let name = killed_dir.file_name().unwrap().to_string_lossy();
    assert!(
        dry.stdout_text()
            .contains(&format!("would remove pipes directory {name}")),
        "{dry:?}"
    );
    assert!(killed_dir.exists(), "--dry-run removed the pipes");

    let gc = admin.run_method("qdock", &["gc", "--cell", &cell], PATIENCE);
    gc.assert_code(0);
    assert!(
        gc.stdout_text().contains(&removed_line(&killed_dir)),
        "{gc:?}"
    );
    assert!(!killed_dir.exists(), "gc left the killed starter's pipes");
    killed.assert_no_container();
    // The live starter, however long it takes, keeps its pipes and its container.
    assert!(live_dir.exists(), "gc removed the pipes of a live starter");
    assert!(!gc.stdout_text().contains(&live.container_name()), "{gc:?}");
    assert!(live.container_exists());

    release(&live, live_starter, live_gate, &live_dir);
}

#[test]
fn the_watcher_removes_the_pipes_of_starters_killed_before_their_container_started() {
    require_engine!();
    let cell = own_cell();
    let live = job_in(&cell, "echo ran\n");
    let early = job_in(&cell, "echo ran\n");
    let late = job_in(&cell, "echo ran\n");
    let (live_starter, live_gate, live_dir) = hold(&live);
    let (early_starter, _early_gate, early_dir) = hold(&early);
    kill_starter(early_starter);

    // The watcher finds the early one when it starts, and learns of the late one's pipes
    // as they are made.
    let since = Instant::now();
    let mut watcher = Watcher::start(&cell);
    let said = |dir: &Path| {
        let line = removed_line(dir);
        move |w: &Running| String::from_utf8_lossy(&w.stdout_so_far()).contains(&line)
    };
    watcher.process.wait_until(
        "the watcher removes the early pipes",
        PATIENCE,
        said(&early_dir),
    );
    assert!(!early_dir.exists());
    watcher.wait_for_removal(&early, since);

    let (late_starter, _late_gate, late_dir) = hold(&late);
    let killed = kill_starter(late_starter);
    watcher.process.wait_until(
        "the watcher removes the late pipes",
        PATIENCE,
        said(&late_dir),
    );
    let took = killed.elapsed();
    assert!(!late_dir.exists());
    watcher.wait_for_removal(&late, killed);

    // The live starter's pipes were made before the late one's, and the watcher follows
    // them in order: it has seen them and waits for their starter.
    assert!(
        live_dir.exists(),
        "the watcher removed a live starter's pipes"
    );
    assert!(!watcher.said(&live.container_name()));
    release(&live, live_starter, live_gate, &live_dir);
    eprintln!("measured: pipes' directory removed {took:?} after its starter's SIGKILL");
}

/// Stands between the watcher and the real engine, so that a test can take the engine away
/// from the watcher alone (the real engine serves every other test meanwhile).
struct EngineProxy {
    path: PathBuf,
    connections: Arc<Mutex<Vec<UnixStream>>>,
}

impl EngineProxy {
    fn start(path: PathBuf) -> EngineProxy {
        let proxy = EngineProxy {
            path,
            connections: Arc::default(),
        };
        proxy.restore();
        proxy
    }

    /// Listens again at the path and forwards each connection to the engine.
    fn restore(&self) {
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("bind the proxy socket");
        let connections = self.connections.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let engine = UnixStream::connect(engine::socket_path()).expect("the engine");
                connections
                    .lock()
                    .unwrap()
                    .push(client.try_clone().unwrap());
                connections
                    .lock()
                    .unwrap()
                    .push(engine.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), engine.try_clone().unwrap());
                pipe(engine, client);
            }
        });
    }

    /// Ends every connection and removes the socket: the engine is gone, as far as the
    /// watcher can tell.
    fn cut(&self) {
        std::fs::remove_file(&self.path).expect("remove the proxy socket");
        for connection in self.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` into `to` until either side ends.
fn pipe(mut from: UnixStream, mut to: UnixStream) {
    std::thread::spawn(move || {
        if let Err(e) = std::io::copy(&mut from, &mut to)
            && e.kind() != ErrorKind::NotConnected
        {
            eprintln!("proxy: {e}");
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Not a check: prints the time from a starter's SIGKILL to the watcher's report that the
/// container is gone (stopped and removed), for running and paused containers of a job
/// that ends on SIGTERM. Prints, asserts no time: `cargo test --test watch measure --
/// --nocapture` (the README's figures come from QDOCK_MEASURE_RUNS=10).
#[test]
fn measure_time_from_starter_death_to_removal() {
    require_engine!();
    let cell = own_cell();
    let mut watcher = Watcher::start(&cell);
    for paused in [false, true] {
        let runs: usize = std::env::var("QDOCK_MEASURE_RUNS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(2);
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let job = job_in(&cell, "echo started > started\nsleep 600\n");
                let starter = start(&job);
                if paused {
                    docker_text(&["pause", &job.container_name()]);
                }
                let killed = kill_starter(starter);
                watcher.wait_for_removal(&job, killed)
            })
            .collect();
        times.sort();
        eprintln!(
            "measured ({}): min {:?} median {:?} max {:?} over {} runs",
            if paused { "paused" } else { "running" },
            times[0],
            times[times.len() / 2],
            times[times.len() - 1],
            times.len()
        );
    }
}
