//! A Docker engine of the test's own, to stop and restart under a running job: the shared
//! system engine must never be restarted (other tests and jobs use it).
//!
//! It listens on `/run/qdock-test-dockerd-<pid>-<n>/docker.sock`, keeps its data, exec root,
//! pid file and containerd apart from the system engine's, and runs in a network namespace
//! of its own, with no bridge network and no iptables rules (jobs use `network = "none"`,
//! see [`PrivateEngine::config`]). The namespace is not optional: a dockerd started with
//! `--bridge=none` deletes any interface named `docker0` it sees, and in the host's
//! namespace that is the system engine's bridge (every container start there then fails).
//! It holds the test image, loaded from the system engine. `live-restore` comes from its
//! own config file, as an admin sets it in `/etc/docker/daemon.json`.
//!
//! ```ignore
//! let mut engine = PrivateEngine::start(LiveRestore::On);
//! let running = Job::new("…").with_config(&engine.config()).spawn();
//! engine.restart();
//! ```
//! Dropping it removes its containers, stops it and deletes its directories.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{IMAGE, Signal, test_root, wait_until};

/// How long the engine gets to start or to stop.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveRestore {
    On,
    Off,
}

pub struct PrivateEngine {
    /// Socket, exec root, pid file, config and log.
    run: PathBuf,
    data: PathBuf,
    dockerd: Option<Child>,
}

impl PrivateEngine {
    /// Starts the engine and loads the test image into it.
    pub fn start(live_restore: LiveRestore) -> PrivateEngine {
        static N: AtomicU64 = AtomicU64::new(0);
        let tag = format!(
            "{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let run = PathBuf::from(format!("/run/qdock-test-dockerd-{tag}"));
        let data = test_root().join(format!("dockerd-{tag}"));
        let _ = fs::remove_dir_all(&run);
        fs::create_dir_all(&run).expect("create the engine's run directory");
        let config = format!(
            "{{\"live-restore\": {}}}\n",
            live_restore == LiveRestore::On
        );
        fs::write(run.join("daemon.json"), config).expect("write the engine's config");
        let mut engine = PrivateEngine {
            run,
            data,
            dockerd: None,
        };
        engine.launch();
        let mut save = Command::new("docker")
            .args(["save", IMAGE])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let load = engine
            .cli()
            .arg("load")
            .stdin(save.stdout.take().expect("piped"))
            .output()
            .expect("docker load");
        let saved = save.wait().expect("docker save");
        assert!(
            saved.success() && load.status.success(),
            "loading {IMAGE} into the private engine: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        engine
    }

    pub fn socket(&self) -> PathBuf {
        self.run.join("docker.sock")
    }

    /// A qdock config for jobs on this engine.
    pub fn config(&self) -> String {
        format!(
            "[engine]\nsocket = \"{}\"\n[container]\nnetwork = \"none\"\n",
            self.socket().display()
        )
    }

    /// The docker CLI, talking to this engine.
    pub fn cli(&self) -> Command {
        let mut command = Command::new("docker");
        command
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()));
        command
    }

    /// The names of every container the engine has, running or not.
    pub fn containers(&self) -> Vec<String> {
        let out = self
            .cli()
            .args(["ps", "-a", "--format", "{{.Names}}"])
            .output()
            .expect("docker ps");
        assert!(out.status.success(), "docker ps: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Stops the engine as a package upgrade does (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut dockerd) = self.dockerd.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(dockerd.id() as i32);
        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        wait_until("the private dockerd exits", PATIENCE, || {
            matches!(dockerd.try_wait(), Ok(Some(_)))
        });
    }

    /// Starts the engine again, with the same settings and data.
    pub fn launch(&mut self) {
        assert!(self.dockerd.is_none(), "the private engine runs already");
        let system_bridge = Path::new("/sys/class/net/docker0");
        let bridged = system_bridge.exists();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.run.join("dockerd.log"))
            .expect("open the engine's log");
        let mut command = Command::new("/usr/bin/unshare");
        command
            .args(["--net", "--", "dockerd", "--config-file"])
            .arg(self.run.join("daemon.json"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .arg("--data-root")
            .arg(&self.data)
            .arg("--exec-root")
            .arg(self.run.join("exec"))
            .arg("--pidfile")
            .arg(self.run.join("docker.pid"))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            // Its own group: a signal to the test's group must not reach it.
            .process_group(0);
        // SAFETY: prctl is async-signal-safe. A test process that dies leaves no engine
        // behind: the engine gets SIGTERM when the thread that started it ends.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        self.dockerd = Some(command.spawn().expect("start dockerd"));
        let run = self.run.clone();
        wait_until(
            &format!("the private dockerd answers (log {})", run.display()),
            PATIENCE,
            || {
                self.cli()
                    .args(["version", "--format", "{{.Server.Version}}"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
        );
        assert!(
            !bridged || system_bridge.exists(),
            "the private engine deleted the system engine's docker0"
        );
    }

    /// Stops the engine and starts it again.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The engine's log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.run.join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        if self.dockerd.is_some() {
            let names = self.containers();
            if !names.is_empty() {
                let _ = self.cli().args(["rm", "-f"]).args(&names).output();
            }
        }
        self.stop();
        // The engine leaves its data root mounted on itself.
        unmount_below(&self.data);
        if std::thread::panicking() {
            eprintln!("harness: kept {} for inspection", self.run.display());
        } else {
            let _ = fs::remove_dir_all(&self.run);
        }
        let _ = fs::remove_dir_all(&self.data);
    }
}

/// Unmounts everything at or below `dir`, deepest first.
fn unmount_below(dir: &Path) {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut below: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    below.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in below {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
}
