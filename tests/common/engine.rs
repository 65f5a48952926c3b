//! Which engine the tests drive: the cell's dockerd (the default), or rootful Podman's
//! Docker-compatible socket with `QDOCK_TEST_ENGINE=podman` (bin/setup-cluster --engine
//! podman starts it beside dockerd; the cell keeps Docker).
//!
//! Under Podman every config the harness writes names Podman's socket, and the harness's own
//! client (the docker CLI) talks to it. The binaries that read the system config (the
//! installed setgid copies, root without `QDOCK_CONFIG`) run in a mount namespace of their
//! own where `/etc/qdock/qdock.toml` is [`system_config`]: the cell's config with Podman's
//! socket. So they run exactly as installed (setgid, the kernel's secure mode, the fixed
//! config path) while the cell and its config stay on Docker. Every process the harness
//! starts as a user ([`super::Job`]'s commands, `as_user`, the shepherd stand-in) is in such
//! a namespace. A test that needs the cell fails with [`cell_on_docker`]'s reason: it would
//! prove nothing about Podman.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where `bin/setup-cluster --engine podman` serves Podman's API (bin/lib/podman.bash).
pub const PODMAN_SOCKET: &str = "/run/podman/podman.sock";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestEngine {
    Docker,
    Podman,
}

/// The engine chosen by `QDOCK_TEST_ENGINE` (`docker`, the default, or `podman`).
pub fn test_engine() -> TestEngine {
    static ENGINE: OnceLock<TestEngine> = OnceLock::new();
    *ENGINE.get_or_init(|| match std::env::var("QDOCK_TEST_ENGINE").as_deref() {
        Err(_) | Ok("" | "docker") => TestEngine::Docker,
        Ok("podman") => TestEngine::Podman,
        Ok(other) => panic!("QDOCK_TEST_ENGINE={other:?}: expected docker or podman"),
    })
}

pub fn podman() -> bool {
    test_engine() == TestEngine::Podman
}

/// The socket test configs name: None for Docker, whose socket is the configs' default.
pub fn socket() -> Option<&'static str> {
    podman().then_some(PODMAN_SOCKET)
}

/// The socket of the engine under test.
pub fn socket_path() -> &'static str {
    socket().unwrap_or("/var/run/docker.sock")
}

/// `toml` naming the engine under test: Podman's socket goes into `[engine]` unless the
/// test chose a socket of its own (a fake engine, a missing one).
pub fn config_for_engine(toml: &str) -> String {
    with_socket(toml, false)
}

/// `toml` with Podman's socket in `[engine]`; a socket it names stays unless `replace`.
fn with_socket(toml: &str, replace: bool) -> String {
    let Some(socket) = socket() else {
        return toml.to_string();
    };
    let line = format!("socket = \"{socket}\"");
    let mut lines: Vec<&str> = toml.lines().collect();
    match lines.iter().position(|l| l.trim() == "[engine]") {
        Some(i) => {
            let end = lines[i + 1..]
                .iter()
                .position(|l| l.trim_start().starts_with('['))
                .map_or(lines.len(), |j| i + 1 + j);
            let named = (i + 1..end).find(|&j| lines[j].trim_start().starts_with("socket"));
            match named {
                Some(j) if replace => lines[j] = &line,
                Some(_) => return toml.to_string(),
                None => lines.insert(i + 1, &line),
            }
            lines.join("\n") + "\n"
        }
        None => format!("{toml}\n[engine]\n{line}\n"),
    }
}

/// Under Podman: `/etc/qdock/qdock.toml` naming Podman's socket, in a trusted file of this
/// test process; None under Docker, whose binaries read the real one.
pub fn system_config() -> Option<&'static Path> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        podman().then(|| {
            let system = std::fs::read_to_string(super::SYSTEM_CONFIG)
                .unwrap_or_else(|e| panic!("read {}: {e}", super::SYSTEM_CONFIG));
            let dir = super::test_root().join(format!("engine-{}", std::process::id()));
            super::make_dir(&dir, 0, 0, 0o755);
            let path = dir.join("qdock.toml");
            super::write_file(&path, with_socket(&system, true), 0, 0, 0o644);
            path
        })
    })
    .as_deref()
}

/// Under Podman, runs `command` in a new mount namespace where [`system_config`] is
/// bind-mounted over `/etc/qdock/qdock.toml` (private: nothing outside sees it); what it
/// starts inherits the namespace. Done before the exec, by the root harness: a shell in
/// between would drop variables a test sets on purpose (names with a newline).
pub fn seeing_system_config(command: &mut std::process::Command) {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let Some(config) = system_config() else {
        return;
    };
    let source = CString::new(config.as_os_str().as_bytes()).expect("a path without NUL");
    let target = CString::new(super::SYSTEM_CONFIG).expect("a path without NUL");
    let check = |rc: i32| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: between fork and exec only system calls, on memory prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            use nix::libc::{CLONE_NEWNS, MS_BIND, MS_PRIVATE, MS_REC, mount, unshare};
            let none = std::ptr::null();
            check(unshare(CLONE_NEWNS))?;
            check(mount(
                none,
                c"/".as_ptr(),
                none,
                MS_REC | MS_PRIVATE,
                none.cast(),
            ))?;
            check(mount(
                source.as_ptr(),
                target.as_ptr(),
                none,
                MS_BIND,
                none.cast(),
            ))
        });
    }
}

/// Under Podman, `docker run` and `docker create` with `nofile` and `nproc` named: Podman
/// would set both to 1048576, which this machine's root may not (see src/engine/mod.rs).
pub fn docker_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut args = args.to_vec();
    if podman() && matches!(args.first(), Some(&("run" | "create"))) {
        args.splice(
            1..1,
            [
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=4096:4096",
            ],
        );
    }
    args
}

/// Why a test of the Grid Engine cell cannot run while the tests drive Podman.
pub fn cell_on_docker() -> String {
    "QDOCK_TEST_ENGINE=podman: this test drives the Grid Engine cell, whose hosts run Docker \
     (their /etc/qdock/qdock.toml); it cannot run against Podman"
        .into()
}
