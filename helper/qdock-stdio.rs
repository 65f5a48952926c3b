//! `qdock-stdio [--link LINK TARGET] OUT ERR ARGV0 PROGRAM [ARG...]`: runs inside the job's
//! container, under
//! docker-init. Opens the FIFOs `OUT` and `ERR` (bind-mounted from the starter's private
//! directory) as fds 1 and 2 and execs PROGRAM with ARGV0 as its argv[0] (`-bash` for a login
//! shell, as Grid Engine's builtin starter gives one) and its arguments exactly as given,
//! searching `PATH` when PROGRAM has no slash, as the engine would. The job's output then flows through kernel
//! pipes that the starter reads, never through the engine, so an engine restart cannot
//! drop a byte of it (see src/methods/starter/stdio.rs). With `--link`, it first makes the
//! symbolic link LINK to TARGET: TMPDIR's, in the container's own /tmp (src/spec.rs,
//! `private_tmp`).
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
    let link = match args.peek() {
        Some(first) if first == "--link" => {
            args.next();
            args.next().zip(args.next())
        }
        _ => None,
    };
    let (Some(out), Some(err), Some(argv0), Some(program)) =
        (args.next(), args.next(), args.next(), args.next())
    else {
        eprintln!("usage: qdock-stdio [--link LINK TARGET] OUT ERR ARGV0 PROGRAM [ARG...]");
        return ExitCode::from(2);
    };
    // stderr first: from then on, failures are said where the job's stderr goes.
    if let Err(e) = redirect(&err, 2).and_then(|()| redirect(&out, 1)) {
        eprintln!("qdock-stdio: cannot open the job's output pipes: {e}");
        return ExitCode::from(126);
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

unsafe extern "C" {
    fn dup2(old: i32, new: i32) -> i32;
}
