//! `qdock-stdio [--wait GO] [--link LINK TARGET] OUT ERR ARGV0 PROGRAM [ARG...]`: runs
//! inside the job's container, under docker-init. Opens the FIFOs `OUT` and `ERR`
//! (bind-mounted from the starter's private directory) as fds 1 and 2 and execs PROGRAM with
//! ARGV0 as its argv[0] (`-bash` for a login shell, as Grid Engine's builtin starter gives
//! one) and its arguments exactly as given, searching `PATH` when PROGRAM has no slash, as
//! the engine would. The job's output then flows through kernel pipes that the starter
//! reads, never through the engine, so an engine restart cannot drop a byte of it (see
//! src/methods/starter/stdio.rs). With `--link`, it first makes the symbolic link LINK to
//! TARGET: TMPDIR's, in the container's own /tmp (src/spec.rs, `private_tmp`).
//!
//! With `--wait`, the job starts only once the starter has written a byte to the FIFO `GO`:
//! the starter has then pinned the container's first process and its cgroup, so even a job
//! over in a millisecond is measured (src/usage/probe.rs). A starter gone before that (its
//! ends of `GO` closed) means nobody would relay the job's output or end: nothing runs.
//!
//! Built by build.rs with the C runtime linked statically: it must run in any image,
//! `FROM scratch` included. It holds no privilege: it runs as the job, in the job's
//! container, and does what the job's own first process could do.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    let wait = match args.peek() {
        Some(first) if first == "--wait" => {
            args.next();
            args.next().map(Some)
        }
        _ => Some(None),
    };
    let link = match args.peek() {
        Some(first) if first == "--link" => {
            args.next();
            args.next().zip(args.next())
        }
        _ => None,
    };
    let (Some(wait), Some(out), Some(err), Some(argv0), Some(program)) =
        (wait, args.next(), args.next(), args.next(), args.next())
    else {
        eprintln!(
            "usage: qdock-stdio [--wait GO] [--link LINK TARGET] OUT ERR ARGV0 PROGRAM [ARG...]"
        );
        return ExitCode::from(2);
    };
    // stderr first: from then on, failures are said where the job's stderr goes.
    if let Err(e) = redirect(&err, 2).and_then(|()| redirect(&out, 1)) {
        eprintln!("qdock-stdio: cannot open the job's output pipes: {e}");
        return ExitCode::from(126);
    }
    if let Some(go) = wait {
        match go_ahead(&go) {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("qdock-stdio: the job's starter ended before the job could start");
                return ExitCode::from(125);
            }
            Err(e) => {
                eprintln!("qdock-stdio: cannot wait for the starter's go-ahead: {e}");
                return ExitCode::from(125);
            }
        }
    }
    if let Some((link, target)) = link {
        // Said, not fatal: an image without /tmp runs on, its TMPDIR missing, as natively
        // with a TMPDIR the execd could not make.
        if let Err(e) = std::os::unix::fs::symlink(&target, &link) {
            eprintln!(
                "qdock-stdio: cannot link TMPDIR {} to {}: {e}",
                link.to_string_lossy(),
                target.to_string_lossy()
            );
        }
    }
    let rest: Vec<OsString> = args.collect();
    let e = Command::new(&program).arg0(&argv0).args(&rest).exec();
    eprintln!("qdock-stdio: cannot run {}: {e}", program.to_string_lossy());
    // A shell's codes: 127 not found, 126 found but not runnable.
    ExitCode::from(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 })
}

/// Waits for the starter's byte on the FIFO `path`: true once it came, false at its end (every
/// writer gone: the starter ended). Opened without waiting for a writer, which a blocking
/// open would do for ever once the starter is gone; then read blocking: the byte, or the end
/// at once when no writer is left.
fn go_ahead(path: &OsString) -> std::io::Result<bool> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut go = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)?;
    // SAFETY: fcntl on the descriptor `go` owns; F_GETFL and F_SETFL take an int.
    unsafe {
        let flags = fcntl(go.as_raw_fd(), F_GETFL);
        if flags < 0 || fcntl(go.as_raw_fd(), F_SETFL, flags & !O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let mut byte = [0u8; 1];
    loop {
        match go.read(&mut byte) {
            Ok(n) => return Ok(n == 1),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Opens `path` for writing onto fd `target` (a FIFO: the open never blocks, the starter
/// holds its read end).
fn redirect(path: &OsString, target: i32) -> std::io::Result<()> {
    let file: OwnedFd = std::fs::OpenOptions::new().write(true).open(path)?.into();
    // SAFETY: dup2 onto fds 1 and 2, which this process owns; the opened fd closes on drop.
    // (std has no dup2, and the helper links nothing but std.)
    if unsafe { dup2(file.as_raw_fd(), target) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

// Linux's asm-generic values (x86-64, arm64, and most others; not alpha, mips, parisc, sparc).
const F_GETFL: i32 = 3;
const F_SETFL: i32 = 4;
const O_NONBLOCK: i32 = 0o4000;

unsafe extern "C" {
    fn dup2(old: i32, new: i32) -> i32;
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
}
