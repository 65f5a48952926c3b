//! `qdock-starter`: Grid Engine's starter_method. Runs the job in the image named by the job's
//! `IMAGE`, or natively when there is none, and returns the job's exit code.
//!
//! Top-down: [`prepare`] checks everything and builds the container spec (nothing exists
//! yet); [`leftover`] creates the container, clearing one left by an earlier run of the same
//! job; [`supervise`] starts it, streams the output from the pipes of [`stdio`] through
//! [`sink`] and relays signals until the container exits, outlasting engine restarts
//! ([`restart`]), while [`relay`] passes stdin on. A job with a terminal (`qrsh -pty y`,
//! [`terminal`]) has one of its own in the container instead of the pipes, and the starter
//! relays keys, window size and the terminal's output through the engine's connection, so an
//! engine restart cuts such a session off: the job runs on unseen until it exits, is deleted,
//! or qrsh goes. A thread of its own writes to the starter's terminal, the starter's own
//! lines too, so a terminal nobody reads holds that thread alone. The container is removed on every path after create; [`account`] then says
//! what it used and records the job.

mod account;
mod gpus;
mod image;
mod leftover;
mod prepare;
mod relay;
mod restart;
mod sink;
mod stdio;
mod supervise;
mod terminal;

use std::cell::RefCell;
use std::ffi::OsString;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::job::JobContext;
use crate::labels::Labelled;
use crate::signals::{Received, Signals};
use crate::spec::{ContainerSpec, Stdin};
use crate::{environ, report};
use prepare::Io;
use supervise::Exit;

pub use stdio::check_installation as check_stdio;

pub fn run(argv: Vec<OsString>) -> u8 {
    let code = match start(argv) {
        Ok(code) => code,
        Err(e) => {
            report::error(&e);
            e.exit_code()
        }
    };
    if let Some(line) = crate::timing::line() {
        report::info(&line);
    }
    // A terminal's writer may still hold output and the last lines.
    terminal::finish();
    code
}

fn start(argv: Vec<OsString>) -> Result<u8> {
    let (config, _) = Config::load(None)?;
    crate::timing::mark("config");
    let mut job = JobContext::parse(
        environ::original(),
        argv,
        &config.job.image_variable,
        &config.job.mounts_variable,
    )?;
    report::set_job(job.claim);
    let Some(requested) = job.image.clone() else {
        let start = crate::job_proof::spooled_start(&job.claim, &config.gridengine);
        job.kind = start.kind.handed(job.by_qrsh_starter, start.qrsh_job);
        if job.script_on_stdin {
            // The shell keeps the script on the stdin it was handed; a binary job's command
            // is the spool's.
            job.script = start.script_file.unwrap_or_default();
        }
        let gpus = account::native(&job, &config)?;
        if !gpus.is_empty() {
            let visible = crate::gpu::visible(&gpus, false);
            job.env.set(crate::gpu::VISIBLE, visible.as_ref());
        }
        return Err(crate::methods::native::exec(&job));
    };
    if requested.trim().is_empty() {
        return Err(Error::BadImage {
            reference: requested,
            problem: format!(
                "it is empty; unset {} to run natively",
                config.job.image_variable
            ),
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the async runtime", e))?;
    crate::timing::mark("runtime");
    runtime.block_on(async {
        let mut signals = Signals::install()?;
        let mut prepared = tokio::select! {
            prepared = prepare::prepare(&job, &config, &requested) => prepared?,
            n = signals.next_terminate() => return Ok(Exit::Stopped(n).code()),
        };
        let created = RefCell::new(None);
        let started = RefCell::new(None);
        let outcome = execute(&mut prepared, &created, &started, &mut signals).await;
        let (created, started) = (created.take(), started.take());
        // Only a container that ran has an end to tell, asked before it is removed.
        let ended = match (&created, &started) {
            (Some(id), Some(s)) => Some(account::ended(&prepared.engine, id, s).await),
            _ => None,
        };
        // Whatever happened after create, the container goes: no orphans.
        let removed = remove_own(&prepared.engine, &prepared.spec, created).await;
        if removed.is_ok() && !prepared.gpus.is_empty() {
            crate::gpu::ledger::release(&config, &prepared.spec.name);
        }
        crate::timing::mark("removal");
        let exit = outcome?;
        if let Err(e) = removed {
            report::warn(&format!(
                "could not remove container {}: {e}; `qdock gc` will",
                prepared.spec.name
            ));
        }
        if let (Some(started), Some(ended)) = (started, ended) {
            account::end(&prepared, &config, started, exit, ended);
            crate::timing::mark("record");
        }
        Ok(exit.code())
    })
}

/// Creates, starts and supervises the container; returns how the job ended.
/// `created` receives the container's ID as soon as it exists, `started` its usage watch
/// once it runs.
async fn execute(
    prepared: &mut prepare::Prepared,
    created: &RefCell<Option<String>>,
    started: &RefCell<Option<account::Started>>,
    signals: &mut Signals,
) -> Result<Exit> {
    let (engine, spec) = (&prepared.engine, &prepared.spec);
    let announcement = prepared.announcement();
    let script_input = prepared.script_input.clone();
    let io = &mut prepared.io;
    let setup = async move {
        let id = leftover::create(engine, spec).await?;
        crate::timing::mark("create");
        created.replace(Some(id.clone()));
        // Said once the container exists, so a job refused before has one line only: why.
        report::info(&announcement);
        // A job with a terminal has no output helper to hold it: it runs at once.
        let gate = match &*io {
            Io::Pipes(pipes) => Some(pipes.gate()),
            Io::Terminal(_) => None,
        };
        let (output, writers, input) = match &mut *io {
            Io::Terminal(terminal) => {
                let (output, input) = engine.attach_terminal(&id).await?;
                // Raw before the job runs, so the starter's terminal cooks none of its keys.
                let raw = terminal.raw()?;
                (terminal.screen(output, raw)?, None, input)
            }
            Io::Pipes(pipes) => {
                let (output, writers) = pipes.output()?;
                (output, Some(writers), engine.attach_stdin(&id).await?)
            }
        };
        crate::timing::mark("attach");
        let go = move || gate.iter().for_each(stdio::Gate::open);
        let (outcome, watch) = account::begin(engine, &id, engine.start(&id), go).await;
        outcome?;
        crate::timing::mark("start");
        if let Io::Pipes(pipes) = io {
            // The container's mounts hold the pipes now: their names can go.
            pipes.unlink();
        }
        started.replace(Some(watch));
        Ok::<_, Error>((id, output, writers, input))
    };
    tokio::pin!(setup);
    // The job may run (and set its traps) before the engine has answered the start:
    // warnings arriving meanwhile are forwarded once it has, not dropped.
    let mut warnings = Vec::new();
    let (id, output, writers, input) = loop {
        tokio::select! {
            setup = &mut setup => break setup?,
            received = signals.next() => match received {
                Received::Terminate(n) => {
                    // Ours may be running already: the job gets its grace, as later on.
                    let own = created.borrow().clone();
                    let own = match own {
                        Some(id) => Some(id),
                        None => find_own(engine, spec).await,
                    };
                    if let Some(id) = own {
                        if let Err(e) = engine.stop(&id, spec.stop_grace_secs).await {
                            report::warn(&format!("stopping the container failed: {e}"));
                        }
                        created.replace(Some(id));
                    }
                    return Ok(Exit::Stopped(n));
                }
                Received::Forward(_) => warnings.push(received),
            },
        }
    };
    for received in warnings {
        supervise::forward(engine, &id, received).await;
    }
    let feeding: supervise::Pending = match (spec.stdin, script_input) {
        (Stdin::Script, Some(script)) => Box::pin(supervise::feed(input, script)),
        (stdin, _) => Box::pin(relay::relay(
            engine,
            &id,
            input,
            matches!(stdin, Stdin::Terminal(_)),
        )),
    };
    supervise::supervise(engine, spec, &id, output, writers, Some(feeding), signals).await
}

/// The container this starter created, found by name when create was cut short before it
/// answered: it is ours only when every label matches, the starter's pid and start time
/// among them, which no other process shares.
async fn find_own(engine: &Engine, spec: &ContainerSpec) -> Option<String> {
    match engine.inspect(&spec.name).await {
        Ok(Some(c))
            if spec
                .labels
                .iter()
                .all(|(k, v)| c.labels().get(k) == Some(v)) =>
        {
            Some(c.id)
        }
        _ => None,
    }
}

/// Removes the container this starter created, by its ID; never one that took the name.
async fn remove_own(engine: &Engine, spec: &ContainerSpec, created: Option<String>) -> Result<()> {
    let own = match created {
        Some(id) => Some(id),
        None => find_own(engine, spec).await,
    };
    match own {
        Some(id) => engine.remove(&id, true).await,
        None => Ok(()),
    }
}
