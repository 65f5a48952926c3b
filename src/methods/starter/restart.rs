//! The job outlives the engine. A restart of dockerd (a package upgrade does one) breaks
//! every connection to it; with `live-restore` on, the containers run on meanwhile, and the
//! job's output keeps flowing through the starter's own pipes (see [`super::stdio`]). So a
//! lost connection is not a lost job: the starter waits for the engine to come back, then
//! for the container again. Where the engine took the container down with it
//! (`live-restore` off), the job did not fail by itself: it is requeued.

use std::time::Duration;

use tokio::time::Instant;

use crate::engine::{Engine, State};
use crate::error::{Error, Result};
use crate::report;

/// The longest pause between two looks for the engine.
const MAX_POLL: Duration = Duration::from_secs(1);

/// The container's exit code, waiting through engine restarts for at most
/// `engine.reconnect_secs` each.
pub async fn exit_code(engine: &Engine, id: &str, name: &str) -> Result<i64> {
    loop {
        // An engine shutting down without live-restore first closes its socket, then stops
        // every container (its stop signal, then SIGKILL) and answers the waits on
        // connections already open: a job ended by a signal with no engine answering a new
        // connection behind it was ended by the engine. A job that exited by itself keeps
        // its code whatever the engine does next.
        match engine.wait(id).await {
            Ok(code) if code < 128 => return Ok(code),
            Ok(code) if engine.ping().await.is_ok() => return Ok(code),
            // The job started: whether it finished is unknown, and a requeue could run it
            // twice, so a failed wait with the engine there is not a transient failure.
            Err(e) if engine.ping().await.is_ok() => {
                return Err(Error::JobLost {
                    name: name.to_string(),
                    cause: Box::new(e),
                });
            }
            _ => {}
        }
        let secs = engine.reconnect_secs();
        report::info(&format!(
            "lost the container engine; waiting up to {secs} s for it to come back"
        ));
        come_back(engine, id, name, Duration::from_secs(secs)).await?;
        report::info("the container engine is back; waiting for the job");
    }
}

/// Returns once the engine answers again and still has the container, running or ended on
/// its own.
async fn come_back(engine: &Engine, id: &str, name: &str, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(50);
    let last = loop {
        // A connection pooled before the restart may fail once more: then look again.
        let state = match engine.ping().await {
            Ok(()) => engine.inspect(id).await,
            Err(e) => Err(e),
        };
        match state {
            Ok(found) => break found,
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::JobLost {
                    name: name.to_string(),
                    cause: Box::new(e),
                });
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause.min(deadline - Instant::now())).await;
        pause = (pause * 2).min(MAX_POLL);
    };
    let fate = match last.map(|c| c.state) {
        None => "is gone",
        Some(State::Exited) => {
            // With live-restore the job may have ended by itself while the engine was away;
            // without, the engine stopped it.
            if engine.live_restore().await.unwrap_or(false) {
                return Ok(());
            }
            "was stopped by it"
        }
        Some(State::Other(_)) => "died with it",
        Some(State::Created | State::Running | State::Paused) => return Ok(()),
    };
    Err(Error::DiedWithEngine {
        name: name.to_string(),
        fate,
    })
}
