//! A registry of a test's own: Debian's docker-registry on a free port, its storage in the
//! test root, its requests logged to a file the test can count in ([`Registry::requests`]).
//! On 127.0.0.1 for this machine's engine, which treats it as insecure (plain HTTP)
//! already; on the bridge address for the engines of the hosts bin/setup-cluster --hosts
//! made, which are configured to ([`super::hosts`]).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;

static REGISTRIES: AtomicU64 = AtomicU64::new(0);

pub struct Registry {
    child: Child,
    /// `ip:port`, the start of the references of its images.
    pub addr: String,
    pub dir: PathBuf,
}

impl Registry {
    /// A registry listening on `ip` only.
    pub fn start(ip: &str) -> Registry {
        let port = TcpListener::bind(format!("{ip}:0"))
            .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("{ip}:{port}");
        // One per test: tests run in parallel.
        let n = REGISTRIES.fetch_add(1, Ordering::Relaxed);
        let dir = test_root().join(format!("registry-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let config = dir.join("config.yml");
        let yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("storage").display()
        );
        std::fs::write(&config, yaml).unwrap();
        let log = std::fs::File::create(dir.join("access.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry) runs");
        wait_until("the registry answers", Duration::from_secs(20), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        Registry { child, addr, dir }
    }

    /// A build context (a directory) for an image of the test's own: the test image with a
    /// label naming this registry, so that no other test's image is the same.
    pub fn image_context(&self) -> PathBuf {
        let context = self.dir.join("image");
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(
            context.join("Dockerfile"),
            format!("FROM {IMAGE}\nLABEL qdock.test-registry={}\n", self.addr),
        )
        .unwrap();
        context
    }

    /// The logged requests (`"GET /v2/… HTTP/1.1" 200`) that contain `needle`.
    pub fn requests(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
