//! The execution hosts node1…nodeN of `bin/setup-cluster --hosts N` (tests/cluster.rs): each
//! has its own engine, sge_execd, `qdock gc --watch` and /etc/qdock/qdock.toml, reached
//! from here through `bin/on-host`. A test changes a host (its config, its daemons) only
//! through a guard that puts it back when dropped, and holds the cell case
//! ([`super::cell::Case::cluster`]) meanwhile, so no other test of its process runs.
//!
//! Prerequisites: at least [`HOSTS`] hosts; without them [`require_hosts`] skips the test
//! with a printed reason, or fails it under `CI=true`. The mixed cell's Podman host
//! ([`PODMAN_HOST`], `bin/setup-cluster --hosts 3 --podman-host node3`) likewise, through
//! [`require_podman_host`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::*;

/// How many hosts tests/cluster.rs needs: node1 and node2.
pub const HOSTS: usize = 2;
/// Where bin/setup-cluster keeps each host's state (bin/lib/hosts.bash).
const STATE: &str = "/var/lib/qdock-hosts";
/// This machine's address on the hosts' bridge.
pub const GATEWAY: &str = "10.231.0.1";

fn repo_bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bin").join(name)
}

/// True when the cell and node1…node[`HOSTS`] are usable.
pub fn require_hosts() -> bool {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    super::cell::require_cell()
        && prerequisites_met(&CHECKED, || {
            for host in Host::all() {
                let out = host.docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
                if !out.status.success() {
                    return Err(format!(
                        "{} has no engine with {IMAGE} ({}); bin/setup-cluster --hosts {HOSTS} makes it",
                        host.name,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
            Ok(())
        })
}

/// True when the cell and the Podman host [`PODMAN_HOST`] are usable: Podman serves it, with
/// the test image, and its config names Podman's socket.
pub fn require_podman_host() -> bool {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let host = PODMAN_HOST;
    super::cell::require_cell()
        && prerequisites_met(&CHECKED, || {
            let made = format!(
                "bin/setup-cluster --hosts 3 --podman-host {} makes it",
                host.name
            );
            if !Path::new(STATE).join(host.name).join("podman").is_dir() {
                return Err(format!("{} is no Podman host; {made}", host.name));
            }
            let out = host.docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
            if !out.status.success() {
                return Err(format!(
                    "{}'s Podman has no {IMAGE} ({}); {made}",
                    host.name,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let config = fs::read_to_string(host.config_path()).map_err(|e| e.to_string())?;
            let socket = format!("socket = \"{}\"", super::engine::PODMAN_SOCKET);
            if !config.lines().any(|l| l.trim() == socket) {
                return Err(format!("{}'s qdock.toml lacks {socket}; {made}", host.name));
            }
            Ok(())
        })
}

/// The engine a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostEngine {
    Dockerd,
    /// Rootful Podman's API service on [`super::engine::PODMAN_SOCKET`] in the host's /run.
    Podman,
}

/// One execution host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub name: &'static str,
    pub engine: HostEngine,
}

pub const NODE1: Host = Host {
    name: "node1",
    engine: HostEngine::Dockerd,
};
pub const NODE2: Host = Host {
    name: "node2",
    engine: HostEngine::Dockerd,
};
/// The mixed cell's Podman host (tests/podman_cell.rs).
pub const PODMAN_HOST: Host = Host {
    name: "node3",
    engine: HostEngine::Podman,
};

impl Host {
    pub fn all() -> [Host; HOSTS] {
        [NODE1, NODE2]
    }

    /// Its queue instance, for `qsub -q`.
    pub fn queue(&self) -> String {
        format!("{}@{}", super::cell::QUEUE, self.name)
    }

    /// `argv` inside the host, as root.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut command = Command::new(repo_bin("on-host"));
        command.arg(self.name).args(argv).stdin(Stdio::null());
        command
    }

    pub fn run(&self, argv: &[&str]) -> Output {
        self.command(argv)
            .output()
            .unwrap_or_else(|e| panic!("bin/on-host {} {argv:?}: {e}", self.name))
    }

    /// stdout of `argv` inside the host, trimmed; panics when it fails.
    pub fn run_text(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "on {}: {argv:?} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The engine's own CLI against the host's engine: `docker`, or `podman` on a Podman
    /// host (the same commands and formats for what the tests ask; Podman's image IDs have
    /// no `sha256:`).
    pub fn docker(&self, args: &[&str]) -> Output {
        self.run(&self.cli(args))
    }

    pub fn docker_text(&self, args: &[&str]) -> String {
        self.run_text(&self.cli(args))
    }

    fn cli<'a>(&self, args: &[&'a str]) -> Vec<&'a str> {
        let mut argv = vec![self.daemon_cli().0];
        argv.extend_from_slice(args);
        argv
    }

    /// The engine's CLI and the name of its daemon's process.
    fn daemon_cli(&self) -> (&'static str, &'static str) {
        match self.engine {
            HostEngine::Dockerd => ("docker", "dockerd"),
            HostEngine::Podman => ("podman", "podman"),
        }
    }

    /// True when the engine answers on the socket the host's qdock uses: the docker CLI
    /// through that socket (Podman's CLI would not ask its service).
    pub fn engine_answers(&self) -> bool {
        let socket = match self.engine {
            HostEngine::Dockerd => "unix:///var/run/docker.sock".to_string(),
            HostEngine::Podman => format!("unix://{}", super::engine::PODMAN_SOCKET),
        };
        self.run(&["docker", "-H", &socket, "version"])
            .status
            .success()
    }

    /// What the host's engine says of the container of `job`'s task `task` (0 for a job that
    /// is no array) by `inspect --format FORMAT`; None once it is gone.
    pub fn inspect(&self, job: u32, task: u32, format: &str) -> Option<String> {
        let name = super::cell::task_container(job, task);
        let out = self.docker(&["inspect", "--format", format, &name]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The engine's event log on the host about the container of `job`'s task `task`, in
    /// order, each event as `format` shows it (`{{.Status}}`: `create`, `start`, `pause`,
    /// `died` on Podman …).
    pub fn container_events(&self, job: u32, task: u32, format: &str) -> Vec<String> {
        let filter = format!("container={}", super::cell::task_container(job, task));
        self.docker_text(&[
            "events",
            "--stream=false",
            "--filter",
            &filter,
            "--format",
            format,
        ])
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// The container of `job`'s task `task` came and went in the host's Podman: created,
    /// started, died, removed.
    pub fn assert_ran_in_podman(&self, job: u32, task: u32) {
        let events = self.container_events(job, task, "{{.Status}}");
        for wanted in ["create", "start", "died", "remove"] {
            assert!(
                events.iter().any(|e| e == wanted),
                "no {wanted} in {}'s Podman events of job {job}.{task}: {events:?}",
                self.name
            );
        }
    }

    /// The names of the containers of this cell on the host's engine (all states).
    pub fn qdock_containers(&self) -> Vec<String> {
        let cell = format!("label=qdock.cell={}", super::cell::SGE_CELL);
        self.docker_text(&["ps", "-a", "--filter", &cell, "--format", "{{.Names}}"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The additional group (`gid_range`) the host's execd gave task `task` of `job` (0 for
    /// a job that is no array), as its spool records it while the job runs.
    pub fn job_group(&self, job: u32, task: u32) -> u32 {
        // The spool counts a job that is no array as task 1.
        let entry = format!("{job}.{}", task.max(1));
        let path = Path::new(STATE)
            .join(self.name)
            .join("spool")
            .join(self.name)
            .join("active_jobs")
            .join(entry)
            .join("addgrpid");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}: {text:?}", path.display()))
    }

    pub fn has_image(&self, reference: &str) -> bool {
        self.docker(&["image", "inspect", reference])
            .status
            .success()
    }

    /// The host's own state on this machine (`bin/setup-cluster`): its config, log, spool.
    pub fn state_dir(&self) -> PathBuf {
        Path::new(STATE).join(self.name)
    }

    /// The host's /etc/qdock/qdock.toml as this machine sees it.
    pub fn config_path(&self) -> PathBuf {
        self.state_dir().join("qdock/qdock.toml")
    }

    /// The host's log file `name` (in its own /var/log) as this machine sees it; empty while
    /// it does not exist.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(Path::new(STATE).join(self.name).join("log").join(name))
            .unwrap_or_default()
    }

    /// Sets `key = value` (TOML) in `[table]` of the host's config until the guard is
    /// dropped.
    pub fn set_config_value(&self, table: &str, key: &str, value: &str) -> ConfigGuard {
        set_config_value(&self.config_path(), table, key, value)
    }

    /// The pid of the host's process named `name` (`dockerd`, `sge_execd`), if one runs.
    pub fn daemon_pid(&self, name: &str) -> Option<i32> {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}/lib/hosts.bash && host_pids {} {name}",
                repo_bin("").display(),
                self.name
            ))
            .output()
            .expect("bash");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
    }

    /// Kills the host's daemon `name` with `signal` and waits until it is gone.
    pub fn kill_daemon(&self, name: &str, signal: Signal) {
        let pid = self
            .daemon_pid(name)
            .unwrap_or_else(|| panic!("no {name} runs on {}", self.name));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("kill");
        wait_until(
            &format!("{name} on {} ended", self.name),
            Duration::from_secs(30),
            || self.daemon_pid(name) != Some(pid),
        );
    }

    /// Tags `image` as `name` in the host's engine only, until the guard is dropped.
    pub fn tag(&self, image: &str, name: &str) -> TagGuard {
        self.docker_text(&["tag", image, name]);
        TagGuard {
            host: *self,
            name: name.to_string(),
        }
    }

    /// Stops the host's engine as a package upgrade does (SIGTERM to dockerd: with the
    /// hosts' live-restore its containers run on; to Podman's service: its containers run
    /// under their conmon) until [`EngineAway::restart`] or the guard's drop starts it again.
    pub fn stop_engine(&self) -> EngineAway {
        self.kill_daemon(self.daemon_cli().1, Signal::SIGTERM);
        EngineAway {
            host: *self,
            away: true,
        }
    }

    /// Stops the host's `qdock gc --watch` until the guard is dropped.
    pub fn stop_gc_watcher(&self) -> WatcherGuard {
        let argv = qdock_gc_watch("stop");
        self.run_text(&argv.iter().map(String::as_str).collect::<Vec<_>>());
        WatcherGuard(*self)
    }
}

/// `sge-conf/qdock-gc-watch ACTION` for the qdock the cell runs (bin/install's or the
/// package's: the script's own default names bin/install's).
fn qdock_gc_watch(action: &str) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sge-conf/qdock-gc-watch");
    vec![
        "env".into(),
        format!("QDOCK_BIN={}", cell::cell_bin("qdock").display()),
        script.display().to_string(),
        action.into(),
    ]
}

/// Starts whatever of the cell is not running (bin/setup-cluster, which keeps the hosts):
/// how a test brings a host's engine or execd back after taking it away.
pub fn restart_missing_daemons() {
    if let Err(e) = try_restart_missing_daemons() {
        panic!("{e}");
    }
}

/// [`restart_missing_daemons`] for a guard's drop, which must not panic.
fn try_restart_missing_daemons() -> Result<(), String> {
    let out = Command::new(repo_bin("setup-cluster"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("bin/setup-cluster: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "bin/setup-cluster: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Sets `key = value` (TOML) in `[table]` of the config at `path` until the guard is dropped;
/// a key the config lacks (one installed before the key existed) is added to its table.
pub fn set_config_value(path: &Path, table: &str, key: &str, value: &str) -> ConfigGuard {
    let old = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = format!("[{table}]");
    let line = format!("{key} = {value}");
    let mut in_table = false;
    let mut replaced = false;
    let mut new = String::new();
    for l in old.lines() {
        let trimmed = l.trim();
        if trimmed.starts_with('[') {
            in_table = trimmed == header;
        } else if in_table && trimmed.split('=').next().map(str::trim) == Some(key) {
            new.push_str(&line);
            new.push('\n');
            replaced = true;
            continue;
        }
        new.push_str(l);
        new.push('\n');
    }
    if !replaced {
        new = match new.find(&format!("{header}\n")) {
            Some(at) => {
                let after = at + header.len() + 1;
                format!("{}{line}\n{}", &new[..after], &new[after..])
            }
            None => format!("{new}{header}\n{line}\n"),
        };
    }
    write_config(path, &new);
    ConfigGuard {
        path: path.to_path_buf(),
        old,
    }
}

fn write_config(path: &Path, text: &str) {
    // In place: the host sees the file through a bind mount of its directory, either way.
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Puts a host's config back when dropped.
pub struct ConfigGuard {
    path: PathBuf,
    old: String,
}

impl Drop for ConfigGuard {
    fn drop(&mut self) {
        write_config(&self.path, &self.old);
    }
}

/// Starts a host's `qdock gc --watch` again when dropped.
pub struct WatcherGuard(Host);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        let argv = qdock_gc_watch("start");
        let _ = self
            .0
            .run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// Removes a host's tag when dropped.
pub struct TagGuard {
    host: Host,
    name: String,
}

impl Drop for TagGuard {
    fn drop(&mut self) {
        let _ = self.host.docker(&["rmi", &self.name]);
    }
}

/// A host's engine stopped by [`Host::stop_engine`].
pub struct EngineAway {
    host: Host,
    away: bool,
}

impl EngineAway {
    /// Starts the engine again (bin/setup-cluster); it answers when this returns.
    pub fn restart(mut self) {
        self.away = false;
        restart_missing_daemons();
        assert!(
            self.host.engine_answers(),
            "{}'s engine is back",
            self.host.name
        );
    }
}

impl Drop for EngineAway {
    fn drop(&mut self) {
        if !self.away {
            return;
        }
        if let Err(e) = try_restart_missing_daemons() {
            eprintln!("{}'s engine not restarted: {e}", self.host.name);
        }
    }
}
