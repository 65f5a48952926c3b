//! The job's stdout and stderr: kernel pipes the starter owns, never the engine's stream.
//!
//! Why: the engine copies a container's output to whoever is attached and, with log driver
//! `none`, drops what no one is attached to. When the engine restarts under a running job
//! (live-restore keeps the container), the attach stream breaks, and whatever the job wrote
//! between the break and a new attach is gone. Re-attaching with `logs=true` needs a log
//! driver that keeps a copy (json-file, local), and then the copy's `since` is a timestamp:
//! lines written in the same nanosecond as the last one seen, or before the engine stamped
//! them, are either repeated or skipped, and every job's output piles up in the engine's
//! data root besides. Neither can promise each byte exactly once.
//!
//! So the job writes to two FIFOs the starter creates and reads itself, throughout: the
//! engine is not on the way at all, and while it is away the output flows on. The kernel
//! keeps order within each stream and makes a writer wait, not lose, when the reader is
//! slow. (stdout and stderr are two pipes, as they are two files; a job merging them with
//! `-j y` gets each stream in order, their interleaving as the starter read them, as with
//! the engine's attach stream, which reads two pipes as well.)
//!
//! The FIFOs live in a directory of their own below [`DIR`], which is `root:docker`, mode
//! 1770: the user's own processes cannot even look up a name below it, so nobody can swap
//! the FIFOs for links between their creation and the engine's bind mount (the engine
//! mounts as root and follows links). The starter (setgid docker) creates the directory as
//! the caller, so the FIFOs are the caller's and the job, running as the caller, can open
//! them. The directory goes once the container has started (its mounts then hold the FIFOs)
//! and on every path before that. A starter killed with SIGKILL in between cannot remove it:
//! its name records the starter (see `stdio_dir`), so `qdock gc` removes it once that
//! process is gone.
//!
//! In the container, `qdock-stdio` (helper/qdock-stdio.rs, linked statically so that it runs
//! in any image, `FROM scratch` too) runs under docker-init, opens the FIFOs onto fds 1
//! and 2 and execs the job's command as it is. The starter holds a write end of each FIFO
//! itself until the container has exited, so the pipes cannot end before the job has opened
//! them; then it lets go and reads to the end. Every process of the container is dead by
//! then (its PID namespace dies with its first process), so the end comes at once.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::engine::{Chunk, Output};
use crate::error::{Error, Result};
use crate::process::ProcessId;
use crate::spec::Stdio;
use crate::stdio_dir::{self, DIR};
/// The helper's name beside the starter's own binary.
const HELPER: &str = "qdock-stdio";
/// One read from a pipe: its default capacity.
const READ_SIZE: usize = 64 << 10;

/// The FIFOs of one job, created and open at both ends.
pub struct Pipes {
    /// Removed once the container started (or when this is dropped).
    dir: Option<PathBuf>,
    stdio: Stdio,
    /// The read ends, handed out once by [`Pipes::output`].
    reads: Option<[OwnedFd; 2]>,
    writers: Option<Writers>,
    gate: Option<Gate>,
}

/// The starter's own write ends: while they are open, the pipes do not end. With them the
/// go-ahead FIFO's read end, so that the [`Gate`]'s byte waits there for the helper however
/// late it opens it.
pub struct Writers {
    _open: [OwnedFd; 3],
}

/// Lets the job start: one byte on the go-ahead FIFO, which the helper waits for
/// (helper/qdock-stdio.rs, `--wait`). Opened once; every later call does nothing. It holds
/// the FIFO's write end as long as the pipes live: the helper sees its end only when the
/// starter is gone.
#[derive(Clone)]
pub struct Gate(Arc<GateInner>);

struct GateInner {
    go: OwnedFd,
    opened: AtomicBool,
}

impl Gate {
    pub fn open(&self) {
        if !self.0.opened.swap(true, Ordering::SeqCst) {
            // Cannot block nor fail for want of room: the FIFO is empty, written once.
            let _ = nix::unistd::write(&self.0.go, b"g");
        }
    }
}

impl Pipes {
    /// Makes the FIFOs for the job in container `name`, in a directory named after `starter`
    /// (this process), and finds the helper that opens them.
    pub fn create(name: &str, starter: Option<ProcessId>) -> Result<Pipes> {
        let helper = helper()?;
        let base = base()?;
        // Without its starter in the name, a directory left by a SIGKILL would stay for ever:
        // nobody could tell when it is free.
        let starter = starter.ok_or_else(|| Error::StdioUnavailable {
            path: "/proc/self/stat".into(),
            problem: "cannot tell the starter's start time".into(),
        })?;
        let unavailable = |what: &str, e: nix::Error| Error::io(what, e.into());
        let dir = nix::unistd::mkdtemp(&base.join(stdio_dir::template(name, starter)))
            .map_err(|e| unavailable(&format!("create a directory in {DIR}"), e))?;
        let mut pipes = Pipes {
            dir: Some(dir.clone()),
            stdio: Stdio {
                helper,
                stdout: dir.join(stdio_dir::PIPES[0]),
                stderr: dir.join(stdio_dir::PIPES[1]),
                go: dir.join(stdio_dir::PIPES[2]),
                profile: dir.join(stdio_dir::PROFILE),
            },
            reads: None,
            writers: None,
            gate: None,
        };
        // The caller's umask must not lock the job (or the starter) out.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("set the mode of {}", dir.display()), e))?;
        let make = |path: &Path| {
            fifo(path).map_err(|e| Error::io(format!("make the job's pipe {}", path.display()), e))
        };
        let (out, out_kept) = make(&pipes.stdio.stdout)?;
        let (err, err_kept) = make(&pipes.stdio.stderr)?;
        let (go_read, go) = make(&pipes.stdio.go)?;
        pipes.reads = Some([out, err]);
        pipes.writers = Some(Writers {
            _open: [out_kept, err_kept, go_read],
        });
        pipes.gate = Some(Gate(Arc::new(GateInner {
            go,
            opened: AtomicBool::new(false),
        })));
        Ok(pipes)
    }

    /// Writes a login shell's profile where the spec mounts it from (see
    /// [`crate::spec::IMAGE_ENV_PROFILE`]): readable by the job, in the directory no one else reaches.
    pub fn write_profile(&self, text: &str) -> Result<()> {
        let path = &self.stdio.profile;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(format!("write {}", path.display()), e))
    }

    /// What lets the job start once its container is followed.
    pub fn gate(&self) -> Gate {
        self.gate.clone().expect("made with the pipes")
    }

    /// What the spec mounts into the container.
    pub fn stdio(&self) -> &Stdio {
        &self.stdio
    }

    /// Removes the directory: once the container started, its mounts hold the FIFOs.
    pub fn unlink(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// The job's output as it arrives, and the write ends that keep it from ending: drop
    /// them once the container has exited.
    pub fn output(&mut self) -> Result<(Output, Writers)> {
        let [out, err] = self.reads.take().expect("output is taken once");
        let writers = self.writers.take().expect("output is taken once");
        let out = chunks(out, Chunk::Stdout)?;
        let err = chunks(err, Chunk::Stderr)?;
        Ok((Box::pin(futures_util::stream::select(out, err)), writers))
    }
}

impl Drop for Pipes {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// Makes the FIFO at `path` (mode 0600) and opens its read end, then a write end.
fn fifo(path: &Path) -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::mkfifo(
        path,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let nonblocking = nix::libc::O_NONBLOCK;
    let read = OpenOptions::new()
        .read(true)
        .custom_flags(nonblocking)
        .open(path)?;
    // A non-blocking open for writing succeeds only with a reader: there is one now.
    let write = OpenOptions::new()
        .write(true)
        .custom_flags(nonblocking)
        .open(path)?;
    Ok((read.into(), write.into()))
}

/// The pipe's content as chunks of output; ends when every writer has closed it.
fn chunks(
    fd: OwnedFd,
    wrap: fn(bytes::Bytes) -> Chunk,
) -> Result<impl futures_util::Stream<Item = Result<Chunk>>> {
    let receiver =
        pipe::Receiver::from_owned_fd(fd).map_err(|e| Error::io("read the job's output", e))?;
    Ok(
        futures_util::stream::unfold(Some(receiver), move |receiver| async move {
            let mut receiver = receiver?;
            let mut buf = BytesMut::with_capacity(READ_SIZE);
            match receiver.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(wrap(buf.freeze())), Some(receiver))),
                Err(e) => Some((Err(Error::io("read the job's output", e)), None)),
            }
        })
        .fuse(),
    )
}

/// The helper beside the starter's own binary. While privileged, it must be as trusted as
/// the config: the engine mounts it by path, as root.
fn helper() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io("find the starter's own binary", e))?;
    let helper = exe.with_file_name(HELPER);
    let problem = if crate::privilege::is_elevated() {
        crate::trust::check_path(&helper, &[0]).err()
    } else {
        std::fs::metadata(&helper).err().map(|e| e.to_string())
    };
    // Setuid or setgid, it would hand its owner's rights to whatever it runs.
    let problem = problem.or_else(|| {
        std::fs::metadata(&helper)
            .is_ok_and(|m| m.permissions().mode() & 0o6000 != 0)
            .then(|| format!("{} is setuid or setgid", helper.display()))
    });
    match problem {
        None => Ok(helper),
        Some(problem) => Err(Error::StdioUnavailable {
            path: helper,
            problem,
        }),
    }
}

/// For `qdock check`: what [`Pipes::create`] needs, as a starter beside this binary finds it.
pub fn check_installation() -> Result<String> {
    let helper = helper()?;
    let base = base()?;
    Ok(format!(
        "output helper {} and pipes directory {} are in place",
        helper.display(),
        base.display()
    ))
}

fn base() -> Result<&'static Path> {
    let base = Path::new(DIR);
    check_base(base).map_err(|problem| Error::StdioUnavailable {
        path: base.into(),
        problem,
    })?;
    Ok(base)
}

/// The base directory must be root's and closed to others (see [`stdio_dir::check_base`]),
/// and so must every directory above it.
fn check_base(base: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(base).map_err(|e| format!("cannot be examined ({e})"))?;
    stdio_dir::check_base(&stdio_dir::Found::of_stat(
        meta.mode(),
        meta.uid(),
        meta.dev(),
    ))?;
    crate::trust::check_ancestors(base, &[0])
}
