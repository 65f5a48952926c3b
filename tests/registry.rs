//! Image pull policies against a real registry: Debian's docker-registry on 127.0.0.1, which
//! the engine treats as an insecure (plain HTTP) registry already.

#[macro_use]
mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A registry of our own, on a free port, with its storage in the test root.
struct Registry {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
}

impl Registry {
    fn start() -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let dir = test_root().join(format!("registry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("storage")).unwrap();
        let config = dir.join("config.yml");
        let yaml = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("storage").display()
        );
        std::fs::write(&config, yaml).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry) runs");
        wait_until("the registry answers", Duration::from_secs(20), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        Registry { child, addr, dir }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes every local name of the pushed image, so only a pull can bring it back.
fn forget(reference: &str, digest_ref: &str) {
    let _ = docker(&["rmi", reference]);
    let _ = docker(&["rmi", digest_ref]);
}

fn job(policy: &str, image: &str) -> Job {
    Job::new("cat /qdock-image-marker")
        .image(image)
        .with_config(&format!("[images]\npull = \"{policy}\"\n"))
}

#[test]
fn pull_policies_against_a_real_registry() {
    require_engine!();
    let mut registry = Registry::start();
    let repo = format!("{}/qdock/pulltest", registry.addr);
    let reference = format!("{repo}:{}", std::process::id());
    docker_text(&["tag", IMAGE, &reference]);
    docker_text(&["push", &reference]);
    let digest_ref = inspect(&reference, "{{index .RepoDigests 0}}");
    assert!(
        digest_ref.starts_with(&format!("{repo}@sha256:")),
        "{digest_ref}"
    );
    forget(&reference, &digest_ref);

    // never: an absent image is a permanent failure, named with the fix.
    let out = job("never", &reference).run();
    out.assert_code(100)
        .assert_qdock_line(&["not on this host", "pull = \"never\""]);

    // missing: pulled, run, and the digest that ran is recorded.
    let j = job("missing", &reference);
    let out = j.run();
    out.assert_code(0).assert_qdock_line(&["runs", &digest_ref]);
    assert_eq!(out.stdout_text(), "qdock/busybox:1\n");
    j.assert_no_container();

    // By digest: the right one runs, a wrong one is refused by the registry for good.
    forget(&reference, &digest_ref);
    job("missing", &digest_ref).run().assert_code(0);
    let wrong = format!("{repo}@sha256:{}", "0".repeat(64));
    job("missing", &wrong)
        .run()
        .assert_code(100)
        .assert_qdock_line(&["cannot be pulled"]);
    let unknown = format!("{}/qdock/no-such-image:1", registry.addr);
    job("missing", &unknown)
        .run()
        .assert_code(100)
        .assert_qdock_line(&["cannot be pulled"]);

    // always: pulls although the image is present.
    job("always", &reference).run().assert_code(0);

    // The registry down: may pass, so the job is requeued (99), not failed.
    forget(&reference, &digest_ref);
    registry.stop();
    let j = job("missing", &reference);
    j.run()
        .assert_code(99)
        .assert_qdock_line(&["pulling image", "requeued"]);
    j.assert_no_container();
    forget(&reference, &digest_ref);
}
