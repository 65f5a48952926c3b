//! A program on a terminal of the test's own, as a user at a terminal runs `qrsh -pty y`: the
//! test types bytes, reads what the terminal shows, and sets its window size. Every wait is
//! for text to appear (or the program to end), under a deadline that fails the test.
//! [`qrsh_shell`] starts such a shell through Grid Engine, [`Session::run`] runs a line in it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{Winsize, openpty};

use super::Running;
use super::cell::{Case, JOB_TIMEOUT};

/// What the terminal showed, and whether the program's side of it closed.
#[derive(Default)]
struct Screen {
    shown: Vec<u8>,
    closed: bool,
}

pub struct Session {
    child: Child,
    master: File,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// How far [`Session::expect`] has read.
    cursor: usize,
    timeout: Duration,
}

impl Session {
    /// Starts `command` on a new terminal of `rows` x `cols`, as its controlling terminal.
    pub fn spawn(mut command: Command, rows: u16, cols: u16, timeout: Duration) -> Session {
        let (master, slave) = open_pty(rows, cols);
        let master = File::from(master);
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the terminal"));
        command
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: setsid and ioctl are async-signal-safe; nothing else runs between fork and
        // exec.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        // Only the program holds the terminal's side now: its end is the master's EOF.
        drop(command);
        drop(slave);
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        let mut reader = master.try_clone().expect("dup the master");
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, changed) = &*shared;
                let mut screen = lock.lock().unwrap();
                if n == 0 {
                    // EIO: the last process holding the terminal's side closed it.
                    screen.closed = true;
                    changed.notify_all();
                    return;
                }
                screen.shown.extend_from_slice(&buf[..n]);
                changed.notify_all();
            }
        });
        Session {
            child,
            master,
            screen,
            cursor: 0,
            timeout,
        }
    }

    /// Types `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("type on the terminal");
    }

    /// Reads until `text` appears after what was read before; returns everything shown in
    /// between, `text` included. Panics with the whole transcript at the deadline.
    pub fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + self.timeout;
        let (lock, changed) = &*self.screen;
        let mut screen = lock.lock().unwrap();
        loop {
            let unread = &screen.shown[self.cursor..];
            if let Some(at) = find(unread, text.as_bytes()) {
                let end = self.cursor + at + text.len();
                let seen = String::from_utf8_lossy(&screen.shown[self.cursor..end]).into_owned();
                self.cursor = end;
                return seen;
            }
            let now = Instant::now();
            if screen.closed || now >= deadline {
                panic!(
                    "{} waiting for {text:?}; the terminal showed:\n{}",
                    if screen.closed {
                        "the terminal closed"
                    } else {
                        "timed out"
                    },
                    String::from_utf8_lossy(&screen.shown)
                );
            }
            screen = changed.wait_timeout(screen, deadline - now).unwrap().0;
        }
    }

    /// Runs `line` in the shell on the terminal; returns what the terminal showed until a
    /// marker echoed after it. The marker is computed by the shell, so the echo of the typed
    /// line cannot match it: prompts (busybox asks the terminal for the cursor position and
    /// prompts again) do not count.
    pub fn run(&mut self, line: &str) -> String {
        static SERIAL: AtomicU32 = AtomicU32::new(1);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        self.send(format!("{line}; echo \"done-$(({n}*7))\"\r").as_bytes());
        self.expect(&format!("done-{}", n * 7))
    }

    /// Sets the terminal's size, as a terminal emulator does when its window changes: the
    /// kernel tells the program's foreground process group with SIGWINCH.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let size = nix::libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize.
        let set =
            unsafe { nix::libc::ioctl(self.master.as_raw_fd(), nix::libc::TIOCSWINSZ, &size) };
        assert_eq!(set, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Waits for the program to exit; kills it and panics at the deadline. (Not the
    /// terminal's close: a process another test spawns meanwhile may hold its side too.)
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "the program did not end in {:?}; the terminal showed:\n{}",
                    self.timeout,
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the program, as a user closing the terminal window does (the terminal's
    /// hangup aside: its other side stays open here).
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the program");
        self.child.wait().expect("wait");
    }

    /// Sends `signal` to the program: SIGSTOP makes a client that stops reading its
    /// connection (a user's Ctrl-Z on qrsh, without the shell's job control).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the program");
    }

    /// The program's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.screen.0.lock().unwrap().shown).into_owned()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The prompt of [`qrsh_shell`]'s shell.
pub const PROMPT: &str = "pty-prompt> ";

/// `qrsh -pty y -v PS1=… EXTRA sh` as alice on a terminal of 33 x 97.
pub fn qrsh_shell(case: &Case, extra: &[&str]) -> Session {
    let ps1 = format!("PS1={PROMPT}");
    let mut args = vec!["-pty", "y", "-now", "no", "-v", &ps1];
    args.extend_from_slice(extra);
    args.push("sh");
    Session::spawn(case.client_command("qrsh", &args), 33, 97, JOB_TIMEOUT)
}

/// Waits for the shell's first prompt and returns the job's id, which the case then tracks.
pub fn session_job(case: &Case, shell: &mut Session) -> u32 {
    shell.expect(PROMPT);
    let said = shell.run("echo \"job-$JOB_ID-\"");
    let job = said
        .lines()
        .find_map(|l| {
            l.strip_prefix("job-")?
                .trim_end()
                .strip_suffix('-')?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no job id in {said:?}"));
    case.track(job);
    job
}

/// A terminal whose other side nobody reads, as a stopped client leaves it: what a program
/// writes to it piles up in the kernel (a few KiB) until its writes block. The test holds
/// the master open all along, since its close would hang the terminal up instead.
pub struct Unread {
    _master: OwnedFd,
    slave: OwnedFd,
}

impl Unread {
    pub fn open(rows: u16, cols: u16) -> Unread {
        let (master, slave) = open_pty(rows, cols);
        Unread {
            _master: master,
            slave,
        }
    }

    /// Starts `command` with the terminal as its stdin, stdout and stderr; what it writes
    /// there stays unread, so the [`Running`] collects nothing.
    pub fn spawn(&self, mut command: Command, what: String) -> Running {
        let stdio = || Stdio::from(self.slave.try_clone().expect("dup the terminal"));
        let child = command
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        Running::collecting(child, what)
    }
}

/// A thread of `pid` in write(2) on fd 1 or 2, as `<tid> <syscall line> <voluntary context
/// switches>`. A thread asleep in one write shows the same line at every look: each wake-up
/// counts a switch, and each partial write moves the buffer's address in the line.
pub fn writer_in_write(pid: i32) -> Option<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find_map(|task| {
            let syscall = std::fs::read_to_string(task.path().join("syscall")).ok()?;
            if !(syscall.starts_with("1 0x1 ") || syscall.starts_with("1 0x2 ")) {
                return None;
            }
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            let switches = status
                .lines()
                .find(|l| l.starts_with("voluntary_ctxt_switches:"))?;
            Some(format!(
                "{} {} {switches}",
                task.file_name().to_string_lossy(),
                syscall.trim()
            ))
        })
}

/// Waits until a thread of `pid` sleeps in one write(2) on fd 1 or 2 (the same
/// [`writer_in_write`] at two looks 100 ms apart: a terminal that is read wakes it far
/// sooner); returns that line, for the test to check later that it never moved.
pub fn wait_for_blocked_writer(pid: i32, timeout: Duration) -> String {
    let mut last = None;
    super::poll_until(
        &format!("a thread of {pid} blocked in write(2)"),
        timeout,
        Duration::from_millis(100),
        || {
            let now = writer_in_write(pid);
            let same = now.is_some() && now == last;
            last = now;
            same
        },
        || format!("threads of {pid}: {:?}", threads(pid)),
    );
    last.expect("blocked")
}

/// `<tid> <name> <syscall line>` of each thread of `pid`, for a failure's message.
fn threads(pid: i32) -> Vec<String> {
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .map(|t| {
                    format!(
                        "{} {} {}",
                        t.file_name().to_string_lossy(),
                        read(t.path().join("comm")).trim(),
                        read(t.path().join("syscall")).trim()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A new terminal of `rows` x `cols`: its master and its slave side.
fn open_pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let size = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).expect("openpty");
    // Other tests spawn processes meanwhile: neither side may leak into them.
    set_cloexec(pty.master.as_raw_fd());
    set_cloexec(pty.slave.as_raw_fd());
    (pty.master, pty.slave)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn set_cloexec(fd: std::os::fd::RawFd) {
    // SAFETY: F_SETFD on a descriptor this process owns.
    let set = unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC) };
    assert_eq!(set, 0, "FD_CLOEXEC: {}", std::io::Error::last_os_error());
}
