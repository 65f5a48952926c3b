//! The job's output, from the engine to the job's `.o` and `.e` files.

use std::os::fd::{AsFd, BorrowedFd};

use crate::engine::Chunk;

/// Writes the job's output straight to fds 1 and 2 with write(2): no buffer between the job
/// and its `.o`/`.e` files, so partial lines (progress bars) appear at once and nothing is
/// copied twice. A closed stdout is not the job's failure: output is then dropped and the
/// job runs on.
#[derive(Default)]
pub struct Sink {
    broken: [bool; 2],
}

impl Sink {
    pub fn write(&mut self, chunk: Chunk) {
        let (index, mut bytes) = match &chunk {
            Chunk::Stdout(b) => (0, b.as_ref()),
            Chunk::Stderr(b) => (1, b.as_ref()),
        };
        if self.broken[index] {
            return;
        }
        // std's handles for fds 1 and 2, written to with write(2), past std's buffer.
        let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
        let fd: BorrowedFd = if index == 0 {
            stdout.as_fd()
        } else {
            stderr.as_fd()
        };
        while !bytes.is_empty() {
            match nix::unistd::write(fd, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    self.broken[index] = true;
                    return;
                }
            }
        }
    }
}
