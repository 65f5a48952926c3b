//! The signals a starter must act on. Installed before anything slow happens: SIGUSR1's default
//! action would kill the starter and orphan the container.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// SIGTERM, SIGINT, SIGHUP: end the job.
    Terminate(i32),
    /// SIGUSR1, SIGUSR2: Grid Engine's `-notify` warnings, for the job itself.
    Forward(i32),
}

impl Received {
    pub fn number(self) -> i32 {
        match self {
            Received::Terminate(n) | Received::Forward(n) => n,
        }
    }

    pub fn name(self) -> &'static str {
        match self.number() {
            nix::libc::SIGTERM => "SIGTERM",
            nix::libc::SIGINT => "SIGINT",
            nix::libc::SIGHUP => "SIGHUP",
            nix::libc::SIGUSR1 => "SIGUSR1",
            _ => "SIGUSR2",
        }
    }
}

pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl Signals {
    pub fn install() -> Result<Signals> {
        let on =
            |kind: SignalKind| signal(kind).map_err(|e| Error::io("install signal handlers", e));
        Ok(Signals {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
            hup: on(SignalKind::hangup())?,
            usr1: on(SignalKind::user_defined1())?,
            usr2: on(SignalKind::user_defined2())?,
        })
    }

    pub async fn next(&mut self) -> Received {
        tokio::select! {
            _ = self.term.recv() => Received::Terminate(nix::libc::SIGTERM),
            _ = self.int.recv() => Received::Terminate(nix::libc::SIGINT),
            _ = self.hup.recv() => Received::Terminate(nix::libc::SIGHUP),
            _ = self.usr1.recv() => Received::Forward(nix::libc::SIGUSR1),
            _ = self.usr2.recv() => Received::Forward(nix::libc::SIGUSR2),
        }
    }

    /// Waits for a signal that ends the job; warnings that arrive meanwhile are only noted,
    /// since there is no job yet to forward them to.
    pub async fn next_terminate(&mut self) -> i32 {
        loop {
            match self.next().await {
                Received::Terminate(n) => return n,
                r @ Received::Forward(_) => {
                    crate::report::log(&format!("{} before the job started; ignored", r.name()))
                }
            }
        }
    }
}
