//! The running job: its output, its exit, and the signals Grid Engine sends the starter.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::sink::Sink;
use super::stdio::Writers;
use crate::engine::{Engine, Output};
use crate::error::{Error, Result};
use crate::report;
use crate::signals::{Received, Signals};
use crate::spec::ContainerSpec;

/// How long output may still trickle in after the container exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(10);

/// Hands a `-notify` warning (SIGUSR1, SIGUSR2) to the job.
pub async fn forward(engine: &Engine, id: &str, received: Received) {
    if let Err(e) = engine.kill(id, received.name()).await {
        report::warn(&format!(
            "could not forward {} to the job: {e}",
            received.name()
        ));
    }
}

/// Writes the script to the shell's stdin (`script_from_stdin`), then closes it.
pub async fn feed(mut input: crate::engine::Input, script: Vec<u8>) -> Result<()> {
    input
        .write_all(&script)
        .await
        .map_err(|e| Error::io("feed the script to the job's shell", e))?;
    input
        .shutdown()
        .await
        .map_err(|e| Error::io("close the job's stdin", e))
}

pub type Pending<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;

/// How the job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It ran to its end and exited with this code.
    Ran(u8),
    /// Grid Engine stopped it with this signal: the starter exits with 128 plus it.
    Stopped(i32),
}

impl Exit {
    /// The starter's exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ran(code) => code,
            Exit::Stopped(n) => 128 + n as u8,
        }
    }
}

pub async fn supervise(
    engine: &Engine,
    spec: &ContainerSpec,
    id: &str,
    mut output: Output,
    mut writers: Option<Writers>,
    mut feeding: Option<Pending<'_>>,
    signals: &mut Signals,
) -> Result<Exit> {
    let name = spec.name.as_str();
    let mut sink = Sink::default();
    let wait = super::restart::exit_code(engine, id, name);
    tokio::pin!(wait);
    let mut exit: Option<i64> = None;
    let mut output_open = true;
    let mut terminated: Option<i32> = None;
    let mut stopping: Option<Pending> = None;
    let drain_deadline = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(drain_deadline);
    while output_open || exit.is_none() {
        tokio::select! {
            chunk = output.next(), if output_open => match chunk {
                Some(Ok(chunk)) => sink.write(chunk),
                Some(Err(e)) => {
                    report::warn(&e.to_string());
                    output_open = false;
                }
                None => output_open = false,
            },
            code = &mut wait, if exit.is_none() => {
                exit = Some(code?);
                crate::timing::mark("wait");
                // Every writer in the container is gone: with the starter's own, the pipes end.
                drop(writers.take());
                drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            },
            _ = &mut drain_deadline, if exit.is_some() => {
                report::warn("the job's output did not end after it exited; the rest is lost");
                output_open = false;
            },
            result = async { feeding.as_mut().expect("guarded").await }, if feeding.is_some() => {
                feeding = None;
                // A job may end (exit) before it read all of its script: not a failure.
                if let Err(e) = result {
                    report::log(&e.to_string());
                }
            },
            result = async { stopping.as_mut().expect("guarded").await }, if stopping.is_some() => {
                stopping = None;
                if let Err(e) = result {
                    report::warn(&format!("stopping the container failed: {e}"));
                }
            },
            received = signals.next() => match received {
                Received::Terminate(n) => {
                    if terminated.is_none() {
                        report::info(&format!("{} received: stopping the job (grace {} s)", received.name(), spec.stop_grace_secs));
                        terminated = Some(n);
                    }
                    // A repeated signal retries a stop that failed.
                    if stopping.is_none() {
                        stopping = Some(Box::pin(engine.stop(id, spec.stop_grace_secs)));
                    }
                }
                Received::Forward(_) => forward(engine, id, received).await,
            },
        }
    }
    crate::timing::mark("output");
    if let Some(n) = terminated {
        return Ok(Exit::Stopped(n));
    }
    Ok(Exit::Ran(u8::try_from(exit.unwrap_or(0)).unwrap_or(255)))
}
