//! The starter's stdin to the job's: qrsh's input, a batch job's `-i` file, or the keys typed
//! on the starter's terminal, with that terminal's size.

use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::terminal;
use crate::engine::{Engine, Input};
use crate::error::{Error, Result};
use crate::report;

/// Copies stdin to the job until stdin ends. Then a plain stdin is closed, so the job reads
/// its end; a terminal's end is its hangup, which the job gets as SIGHUP, as it would on a
/// terminal of its own. With a terminal, its size is handed on at once and at each change.
pub async fn relay(engine: &Engine, id: &str, mut input: Input, terminal: bool) -> Result<()> {
    let mut keys = read_stdin()?;
    let mut resized = if terminal {
        let resized =
            signal(SignalKind::window_change()).map_err(|e| Error::io("follow SIGWINCH", e))?;
        // After the handler is in place: a change from now on is not missed.
        resize(engine, id).await;
        Some(resized)
    } else {
        None
    };
    loop {
        tokio::select! {
            bytes = keys.recv() => match bytes {
                Some(bytes) => {
                    input
                        .write_all(&bytes)
                        .await
                        .map_err(|e| Error::io("pass stdin to the job", e))?;
                }
                None => break,
            },
            _ = async { resized.as_mut().expect("guarded").recv().await }, if resized.is_some() => {
                resize(engine, id).await;
            }
        }
    }
    if terminal {
        report::log("the terminal hung up: SIGHUP to the job");
        engine.kill(id, "SIGHUP").await
    } else {
        input
            .shutdown()
            .await
            .map_err(|e| Error::io("close the job's stdin", e))
    }
}

async fn resize(engine: &Engine, id: &str) {
    let Some(size) = terminal::size().known() else {
        return;
    };
    // The job may have ended meanwhile: its size no longer matters.
    if let Err(e) = engine.resize(id, size).await {
        report::log(&format!("the job's terminal keeps its size: {e}"));
    }
}

/// Reads fd 0 on a thread of its own, which the process's exit ends: a read that never
/// returns (qrsh's stdin left open, a terminal nobody types on) must not keep the starter
/// from finishing, as a blocking read in the async runtime would. The channel closes at the
/// end of stdin, or when it fails (EIO: the terminal hung up).
fn read_stdin() -> Result<mpsc::Receiver<Vec<u8>>> {
    let (sender, receiver) = mpsc::channel(16);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut buf = vec![0u8; 16 << 10];
            loop {
                match nix::unistd::read(&stdin, &mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if sender.blocking_send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(_) => return,
                }
            }
        })
        .map_err(|e| Error::io("start reading stdin", e))?;
    Ok(receiver)
}
