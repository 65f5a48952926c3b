//! The starter's terminal (`qrsh -pty y`). The job gets a terminal of its own in the
//! container; the starter's only carries bytes to it and from it. So the starter's terminal
//! goes raw while the job runs: Ctrl-C arrives as a byte, which the container's terminal
//! turns into SIGINT for the job's foreground process instead of the starter's, and nothing
//! is echoed twice.

use std::io::IsTerminal;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::termios::{self, OutputFlags, SetArg, Termios};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::sink::Sink;
use crate::engine::{Chunk, Output};
use crate::error::{Error, Result};
use crate::spec::WindowSize;

/// The terminal on the starter's stdin and stdout, as it was found.
pub struct Terminal {
    saved: Termios,
}

impl Terminal {
    /// Both stdin and stdout must be the terminal: with `qrsh -pty y` all three are the
    /// shepherd's pty (the job's spooled `pty=1`); without it they are pipes and sockets. A
    /// terminal on stdin alone (`qsub -i /dev/pts/3`) feeds a job whose output goes elsewhere.
    pub fn of_stdio() -> Option<Terminal> {
        if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
            return None;
        }
        termios::tcgetattr(std::io::stdin())
            .ok()
            .map(|saved| Terminal { saved })
    }

    /// Raw until the guard drops: on every way out of the starter that unwinds, errors and
    /// the signals it catches included.
    pub fn raw(&self) -> Result<Raw> {
        let raw = raw_mode(&self.saved);
        set(&raw).map_err(|e| Error::io("put the terminal into raw mode", e))?;
        Ok(Raw {
            saved: self.saved.clone(),
        })
    }
}

/// The terminal's size now.
pub fn size() -> WindowSize {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct it is given. (nix 0.30 has no
    // tcgetwinsize; its ioctl macros make unsafe functions all the same.)
    let asked = unsafe { nix::libc::ioctl(0, nix::libc::TIOCGWINSZ, &mut ws) };
    if asked != 0 {
        return WindowSize::default();
    }
    WindowSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    }
}

/// Puts the terminal back as it was found.
pub struct Raw {
    saved: Termios,
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Err(e) = set(&self.saved) {
            crate::report::warn(&format!("could not restore the terminal's mode: {e}"));
        }
    }
}

/// Everything the line discipline would do to the job's bytes, off: no signals from keys,
/// no line editing, no echo, no output processing (the container's terminal did that).
fn raw_mode(saved: &Termios) -> Termios {
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    raw
}

/// Now, not after the output drained: a terminal nobody reads would hold the starter.
fn set(mode: &Termios) -> std::io::Result<()> {
    // The starter may not be in the terminal's foreground process group: then tcsetattr
    // sends SIGTTOU, which would stop it, unless the caller blocks or ignores the signal.
    // Blocked in this thread and for this call alone, the other threads' signals untouched.
    let ttou = SigSet::from_iter([Signal::SIGTTOU]);
    let mut before = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut before))?;
    let set = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, mode);
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None)?;
    Ok(set?)
}

/// How long the terminal's writer may sit in one write(2) before the starter takes it that
/// nobody reads the terminal: it then drops the job's output instead of queueing it (see
/// [`place`]), and at its end exits without waiting for the writer (see [`finish`]).
const STALL: Duration = Duration::from_secs(5);

/// What the terminal's writer is given, in the order it is to appear.
enum Item {
    /// The job's output; the permit is one of [`QUEUED`] and goes when it was written.
    Job(Chunk, OwnedSemaphorePermit),
    /// One of the starter's own lines (`qdock: …`), for stderr.
    Own(Vec<u8>),
    /// Nothing comes after: restore the terminal's mode and say so.
    End,
}

/// The job's chunks queued for the terminal at most: beyond that the starter stops reading
/// the engine's stream, so a job writing faster than the terminal takes it waits in its own
/// write instead of filling the starter's memory.
const QUEUED: usize = 16;

/// How far the writer got, for [`finish`].
#[derive(Default)]
struct Progress {
    /// Since when it has been in the write(2) it is in; None while it waits for more.
    writing_since: Option<Instant>,
    done: bool,
}

/// The running writer: its queue and its progress.
struct Writer {
    items: std::sync::mpsc::Sender<Item>,
    progress: Arc<(Mutex<Progress>, Condvar)>,
}

static WRITER: Mutex<Option<Writer>> = Mutex::new(None);

impl Terminal {
    /// The job's output to the terminal, written by a thread of its own with the starter's
    /// own lines (see [`crate::report::divert_stderr`]): a terminal nobody reads blocks
    /// write(2), and then only that thread waits, while the starter still answers signals,
    /// stops and removes the container, and exits (see [`finish`]); after [`STALL`] the
    /// job's output is dropped, with one line saying so, until the terminal takes some again.
    /// The stream returned carries only a failure of the engine's; it ends once all of the
    /// job's output is queued or dropped. The writer puts the terminal's mode back (`raw`)
    /// after its last write.
    ///
    /// The container's terminal turned each LF into CR LF already (ONLCR), as a terminal
    /// does; the starter's, raw, passes that on. Where the starter's terminal as found did
    /// not do that itself, whoever is beyond it does, and the CR is taken out again, or every
    /// line would end in CR CR LF: so it is under Grid Engine, whose shepherd hands the
    /// job a pty that passes output on as it is, while qrsh leaves OPOST and ONLCR on at the
    /// user's terminal when it makes that raw.
    pub fn screen(&self, mut output: Output, raw: Raw) -> Result<Output> {
        let mut newlines = (!adds_cr(&self.saved)).then(Newlines::default);
        let (items, pending) = std::sync::mpsc::channel::<Item>();
        let progress = Arc::new((Mutex::new(Progress::default()), Condvar::new()));
        let shared = progress.clone();
        std::thread::Builder::new()
            .name("terminal-out".into())
            .spawn(move || {
                let (lock, changed) = &*shared;
                let mark = |writing: bool| {
                    let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
                    p.writing_since = writing.then(Instant::now);
                    changed.notify_all();
                };
                let mut sink = Sink::default();
                // A closed queue (the starter ending without finish) ends it as End does.
                while let Ok(item) = pending.recv() {
                    mark(true);
                    match item {
                        Item::Job(Chunk::Stdout(bytes), _permit) => match &mut newlines {
                            Some(newlines) => {
                                sink.write(Chunk::Stdout(newlines.undo(&bytes).into()))
                            }
                            None => sink.write(Chunk::Stdout(bytes)),
                        },
                        Item::Job(chunk, _permit) => sink.write(chunk),
                        Item::Own(line) => sink.write(Chunk::Stderr(line.into())),
                        Item::End => break,
                    }
                    mark(false);
                }
                if let Some(rest) = newlines.take().and_then(Newlines::end) {
                    sink.write(Chunk::Stdout(rest.into()));
                }
                // Lines from now on are written where they are reported.
                crate::report::restore_stderr();
                drop(raw);
                let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
                p.writing_since = None;
                p.done = true;
                changed.notify_all();
            })
            .map_err(|e| Error::io("start the terminal's writer", e))?;
        let own = items.clone();
        crate::report::divert_stderr(move |line| {
            let _ = own.send(Item::Own(line));
        });
        *WRITER.lock().unwrap_or_else(|e| e.into_inner()) = Some(Writer {
            items: items.clone(),
            progress: progress.clone(),
        });
        let queued = Arc::new(Semaphore::new(QUEUED));
        let relayed = async move {
            let mut dropping = false;
            while let Some(item) = output.next().await {
                let chunk = match item {
                    Ok(chunk) => chunk,
                    Err(e) => return Some(Err(e)),
                };
                // Once dropping, a free place means the writer got a chunk out again.
                let place = match dropping {
                    true => queued.clone().try_acquire_owned().ok(),
                    false => place(&queued, &progress).await,
                };
                match place {
                    Some(permit) => {
                        dropping = false;
                        if items.send(Item::Job(chunk, permit)).is_err() {
                            break;
                        }
                    }
                    None if !dropping => {
                        dropping = true;
                        crate::report::warn(&format!(
                            "the terminal took no output for {} s: the job's output is dropped until it takes some again",
                            STALL.as_secs()
                        ));
                    }
                    None => {}
                }
            }
            None
        };
        Ok(Box::pin(
            futures_util::stream::once(relayed).filter_map(std::future::ready),
        ))
    }
}

/// A place in the writer's queue for the job's next chunk, as soon as there is one; None
/// once the writer has been in one write(2) for [`STALL`]. Then nobody reads the terminal,
/// and the job's output is better dropped than left in the engine: an engine that cannot
/// hand a container's output on does not let the container end, so a stop (qdel) would hang.
async fn place(
    queued: &Arc<Semaphore>,
    progress: &(Mutex<Progress>, Condvar),
) -> Option<OwnedSemaphorePermit> {
    let writing_since = || {
        progress
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .writing_since
    };
    loop {
        let since = writing_since();
        let deadline = since.unwrap_or_else(Instant::now) + STALL;
        tokio::select! {
            permit = queued.clone().acquire_owned() => return permit.ok(),
            _ = tokio::time::sleep_until(deadline.into()) => {
                if since.is_some() && writing_since() == since {
                    return None;
                }
            }
        }
    }
}

/// The starter's last step when it had a terminal: waits until everything queued for it was
/// written and its mode restored, unless the writer has been stuck in one write for
/// [`STALL`] (nobody reads the terminal); then the rest is lost and the starter exits all
/// the same, since its job, container and all, is over.
pub fn finish() {
    let Some(writer) = WRITER.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    let _ = writer.items.send(Item::End);
    let (lock, changed) = &*writer.progress;
    let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
    while !p.done {
        p = match p.writing_since.map(|since| since.elapsed()) {
            Some(stuck) if stuck >= STALL => {
                crate::report::log(&format!(
                    "the terminal took no output for {} s: the rest of the job's output is lost",
                    stuck.as_secs()
                ));
                return;
            }
            Some(stuck) => changed.wait_timeout(p, STALL - stuck),
            None => changed.wait_timeout(p, STALL),
        }
        .unwrap_or_else(|e| e.into_inner())
        .0;
    }
}

/// Whether the terminal turns each LF written to it into CR LF.
fn adds_cr(mode: &Termios) -> bool {
    mode.output_flags
        .contains(OutputFlags::OPOST | OutputFlags::ONLCR)
}

/// Undoes ONLCR: every LF came as CR LF, so a CR right before an LF goes. A CR ending a
/// chunk waits for the next byte to tell.
#[derive(Default)]
struct Newlines {
    held_cr: bool,
}

impl Newlines {
    fn undo(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + 1);
        for &b in bytes {
            if std::mem::take(&mut self.held_cr) && b != b'\n' {
                out.push(b'\r');
            }
            match b {
                b'\r' => self.held_cr = true,
                _ => out.push(b),
            }
        }
        out
    }

    /// The CR still held when the output ends.
    fn end(self) -> Option<Vec<u8>> {
        self.held_cr.then(|| b"\r".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::termios::{InputFlags, LocalFlags};
    use std::os::fd::AsFd;

    fn cooked() -> Termios {
        // A fresh pty's mode is the kernel's cooked default.
        let pty = nix::pty::openpty(None, None).expect("openpty");
        termios::tcgetattr(pty.slave.as_fd()).expect("tcgetattr")
    }

    #[test]
    fn raw_mode_leaves_keys_to_the_jobs_terminal() {
        let cooked = cooked();
        assert!(
            cooked
                .local_flags
                .contains(LocalFlags::ISIG | LocalFlags::ICANON)
        );
        let raw = raw_mode(&cooked);
        // Ctrl-C, Ctrl-Z, Ctrl-\ are bytes, not signals for the starter.
        assert!(!raw.local_flags.contains(LocalFlags::ISIG));
        assert!(
            !raw.local_flags
                .intersects(LocalFlags::ICANON | LocalFlags::ECHO)
        );
        // Ctrl-S/Ctrl-Q and CR reach the job as typed; output goes out as the job wrote it.
        assert!(
            !raw.input_flags
                .intersects(InputFlags::IXON | InputFlags::ICRNL)
        );
        assert!(!raw.output_flags.contains(OutputFlags::OPOST));
        // The saved mode is untouched: it is what is restored.
        assert!(cooked.local_flags.contains(LocalFlags::ECHO));
    }

    #[test]
    fn a_fresh_terminal_adds_the_cr_and_a_raw_one_does_not() {
        let cooked = cooked();
        assert!(adds_cr(&cooked));
        assert!(!adds_cr(&raw_mode(&cooked)));
    }

    /// What the container's terminal made of the job's bytes comes back as the job wrote
    /// them, however the chunks fall: a CR LF of the job's own included.
    #[test]
    fn the_containers_onlcr_is_undone_across_chunks() {
        let job = b"hi\nthere\r\n\rprogress 5%\rprogress 9%\n\n\r";
        let onlcr: Vec<u8> = job
            .iter()
            .flat_map(|&b| match b {
                b'\n' => vec![b'\r', b'\n'],
                b => vec![b],
            })
            .collect();
        for split in 0..=onlcr.len() {
            let mut newlines = Newlines::default();
            let (a, b) = onlcr.split_at(split);
            let mut out = newlines.undo(a);
            out.extend(newlines.undo(b));
            out.extend(newlines.end().unwrap_or_default());
            assert_eq!(out, job, "split at {split}");
        }
    }
}
