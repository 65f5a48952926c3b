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

pub async fn supervise(
    engine: &Engine,
    spec: &ContainerSpec,
    id: &str,
    mut output: Output,
    mut writers: Option<Writers>,
    mut feeding: Option<Pending<'_>>,
    signals: &mut Signals,
) -> Result<u8> {
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
    let code = exit.unwrap_or(0);
    if let Some(n) = terminated {
        return Ok(128 + n as u8);
    }
    let code = u8::try_from(code).unwrap_or(255);
    if code == 0 {
        // Nothing to explain: the look-up below is for failures only.
        return Ok(0);
    }
    // The job ran to its end: a failed look-up must not turn it into a requeue (99).
    match engine.inspect(id).await {
        Ok(Some(c)) if c.oom_killed => {
            let limit = c
                .memory_limit
                .map(|m| format!("{} MiB", m >> 20))
                .unwrap_or_else(|| "none set".into());
            // OOMKilled is set when any process of the container was killed; when the job
            // itself survived that, its own exit code stands, as it would natively.
            report::info(&if code == 137 {
                format!("the job ran out of memory (limit {limit}) and was killed")
            } else {
                format!(
                    "a process of the job ran out of memory (limit {limit}) and was killed; the job went on and exited with {code}"
                )
            });
        }
        Ok(_) => {}
        Err(e) => report::warn(&format!(
            "could not check whether the job ran out of memory: {e}"
        )),
    }
    Ok(code)
}
