//! `qdock-suspend`, `qdock-resume`, `qdock-terminate`: Grid Engine's suspend, resume and
//! terminate methods. Without them Grid Engine signals the job's processes, which never reach
//! a container; with them it hands the whole job to us, so every path must end in the state
//! Grid Engine asked for.
//!
//! A job whose container does not exist yet (the starter is still pulling or creating) is
//! driven through its starter instead: SIGSTOP holds it before it can start the container,
//! SIGTERM makes it clean up and exit.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::Config;
use crate::engine::{Container, Engine, State};
use crate::error::{Error, Result};
use crate::job::{Env, JobClaim};
use crate::job_proof::JobKey;
use crate::labels::{Label, Labelled};
use crate::privilege::Identity;
use crate::{environ, job_proof, process, report};

/// A terminate with the engine hung ends the job this long after the grace period at most:
/// Grid Engine waits for the job's end, and retries the method only much later.
const TERMINATE_MARGIN: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Suspend,
    Resume,
    Terminate,
}

impl Action {
    /// The binary that performs it.
    pub fn program(self) -> &'static str {
        match self {
            Action::Suspend => "qdock-suspend",
            Action::Resume => "qdock-resume",
            Action::Terminate => "qdock-terminate",
        }
    }

    fn about(self) -> &'static str {
        match self {
            Action::Suspend => {
                "Grid Engine's suspend_method: pause the job's container (a native job: SIGSTOP)"
            }
            Action::Resume => {
                "Grid Engine's resume_method: unpause the job's container (a native job: SIGCONT)"
            }
            Action::Terminate => {
                "Grid Engine's terminate_method: stop the job's container, then kill what is left \
                 (a native job: SIGKILL)"
            }
        }
    }
}

/// A Grid Engine queue method: `qdock-suspend $job_id $ja_task_id $job_pid` (likewise
/// resume and terminate) on Son of Grid Engine, `qdock-suspend $job_id` on Open Cluster
/// Scheduler, whose method lines know no `$ja_task_id`. What is left out comes from JOB_ID
/// and SGE_TASK_ID, and the job's pid from the spool.
#[derive(Debug, Default, clap::Parser)]
#[command(version)]
pub struct Call {
    /// Grid Engine's $job_id (default: JOB_ID)
    pub job_id: Option<String>,
    /// Grid Engine's $ja_task_id (default: SGE_TASK_ID)
    pub task_id: Option<String>,
    /// Grid Engine's $job_pid: signalled when the job has no container (default: the
    /// spool's job_pid)
    pub job_pid: Option<String>,
}

/// A method's command line: its `--help`, and its manual page (packaging/man.rs).
pub fn command(action: Action) -> clap::Command {
    <Call as clap::CommandFactory>::command()
        .name(action.program())
        .about(action.about())
}

/// The whole of a method's main: parse argv, act, return the exit code.
pub fn main(action: Action) -> u8 {
    report::init(action.program());
    let call = <Call as clap::FromArgMatches>::from_arg_matches(&command(action).get_matches())
        .unwrap_or_else(|e| e.exit());
    run(action, call)
}

struct Job {
    key: JobKey,
    pid: Option<i32>,
    /// The job's additional group, as the spool records it (not for root's calls).
    group: Option<u32>,
    /// The job asked for an image, so it has (or will have) a container.
    containerised: bool,
    config: Config,
}

pub fn run(action: Action, call: Call) -> u8 {
    let result = prepare(call).and_then(|job| {
        report::set_job(&job.key);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the async runtime", e))?;
        runtime.block_on(act(action, &job))
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            report::error(&e);
            e.exit_code()
        }
    }
}

fn prepare(call: Call) -> Result<Job> {
    let env: Env = environ::original();
    let claim = JobClaim::from_args_or_env(call.job_id.as_deref(), call.task_id.as_deref(), &env)?;
    let pid = call
        .job_pid
        .as_deref()
        .map(process::parse_pid)
        .transpose()?;
    let (config, _) = Config::load(None)?;
    // The job's id is the caller's word: only the job itself (or root) may act on it, and
    // only the proof names its container.
    let proven = job_proof::prove(&claim, &config.gridengine, &Identity::of_caller())?;
    // A method line without `$job_pid` (Open Cluster Scheduler's, see sge-conf) leaves it to
    // the spool, where the shepherd recorded it.
    let pid = pid.or_else(|| proven.proof.spooled().and_then(|job| job.job_pid));
    let group = proven.proof.spooled().map(|job| job.group);
    let key = proven.key;
    let containerised = env
        .get(&config.job.image_variable)
        .is_some_and(|v| !v.is_empty());
    Ok(Job {
        key,
        pid,
        group,
        containerised,
        config,
    })
}

async fn act(action: Action, job: &Job) -> Result<()> {
    if !job.containerised {
        // A native job: exactly what Grid Engine does without a method.
        let signal = match action {
            Action::Suspend => Signal::SIGSTOP,
            Action::Resume => Signal::SIGCONT,
            Action::Terminate => Signal::SIGKILL,
        };
        return signal_job(job, signal);
    }
    if action != Action::Terminate {
        return drive(action, job).await;
    }
    // The engine may fail or hang half-way: the job must end all the same, and in time.
    let grace = Duration::from_secs(job.config.container.stop_grace_secs);
    let budget = grace + TERMINATE_MARGIN;
    match tokio::time::timeout(budget, drive(action, job)).await {
        Ok(Err(e)) if is_engine_failure(&e) => terminate_without_engine(job, e),
        Ok(other) => other,
        Err(_) => terminate_without_engine(
            job,
            Error::EngineTimeout {
                socket: job.config.engine.socket.display().to_string(),
                secs: budget.as_secs(),
            },
        ),
    }
}

/// The action through the engine, on the container the look-up found: its ID, never the
/// name again.
async fn drive(action: Action, job: &Job) -> Result<()> {
    let engine = Engine::connect(&job.config.engine).await?;
    let container = owned(engine.inspect(&job.key.container_name()).await?)?;
    match action {
        Action::Suspend => suspend(&engine, job, container).await,
        Action::Resume => resume(&engine, container).await.and_then(|()| {
            // The starter may have been held before its container existed.
            if job.pid.is_some() {
                signal_job(job, Signal::SIGCONT)?;
            }
            Ok(())
        }),
        Action::Terminate => terminate(&engine, job, container).await,
    }
}

fn is_engine_failure(e: &Error) -> bool {
    matches!(
        e,
        Error::EngineUnreachable { .. } | Error::EngineTimeout { .. } | Error::Engine { .. }
    )
}

/// Refuses to touch another user's container; root may act on any.
fn owned(container: Option<Container>) -> Result<Option<Container>> {
    let caller = nix::unistd::getuid().as_raw();
    if let Some(c) = &container
        && caller != 0
        && c.owner_uid() != Some(caller)
    {
        let uid = c.label(Label::OwnerUid).unwrap_or("unknown");
        let owner = match c.label(Label::Owner) {
            Some(user) => format!("{uid} ({user})"),
            None => uid.to_string(),
        };
        return Err(Error::NotOwner {
            name: c.name.clone(),
            owner,
            caller,
        });
    }
    Ok(container)
}

async fn suspend(engine: &Engine, job: &Job, container: Option<Container>) -> Result<()> {
    match container {
        Some(c) if c.state == State::Running => engine.pause(&c.id).await,
        Some(c) if matches!(c.state, State::Paused | State::Exited) => Ok(()),
        _ => {
            // Not started yet: hold the starter, then catch a container it started meanwhile.
            signal_job(job, Signal::SIGSTOP)?;
            match owned(engine.inspect(&job.key.container_name()).await?)? {
                Some(c) if c.state == State::Running => engine.pause(&c.id).await,
                _ => Ok(()),
            }
        }
    }
}

async fn resume(engine: &Engine, container: Option<Container>) -> Result<()> {
    match container {
        Some(c) if c.state == State::Paused => engine.unpause(&c.id).await,
        _ => Ok(()),
    }
}

async fn terminate(engine: &Engine, job: &Job, container: Option<Container>) -> Result<()> {
    let grace = job.config.container.stop_grace_secs;
    if job.pid.is_some() {
        signal_job(job, Signal::SIGCONT)?;
    }
    match container {
        Some(c) if matches!(c.state, State::Paused | State::Running) => {
            if c.state == State::Paused {
                // A frozen process cannot handle its stop signal.
                engine.unpause(&c.id).await?;
            }
            engine.stop(&c.id, grace).await?;
            remove_if_starter_gone(engine, job, &c.id).await
        }
        Some(c) if c.state == State::Exited => remove_if_starter_gone(engine, job, &c.id).await,
        _ => {
            // No container yet: the starter cleans up on SIGTERM; SIGKILL if it does not.
            let Some(pid) = job.pid else {
                return Err(Error::NothingToSignal {
                    job: job.key.to_string(),
                });
            };
            signal_job(job, Signal::SIGTERM)?;
            let deadline = Instant::now() + Duration::from_secs(grace);
            while process::exists(pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if process::exists(pid) {
                signal_job(job, Signal::SIGKILL)?;
            }
            // A container created in the race has no starter left to remove it; but a
            // container that appeared meanwhile is checked again: the pid was the caller's
            // word, and the name alone does not say whose job it is.
            match owned(engine.inspect(&job.key.container_name()).await?)? {
                Some(c) => engine.remove(&c.id, true).await,
                None => Ok(()),
            }
        }
    }
}

/// The starter removes its container once the container stops; without a starter (it was
/// killed) nobody would, so terminate does.
async fn remove_if_starter_gone(engine: &Engine, job: &Job, id: &str) -> Result<()> {
    match job.pid {
        Some(pid) if !process::exists(pid) => engine.remove(id, true).await,
        _ => Ok(()),
    }
}

/// Grid Engine relies on the terminate method alone to end the job (it retries only much
/// later): with the engine down, the job is ended by killing its processes and the container
/// is left to `qdock gc`.
fn terminate_without_engine(job: &Job, e: Error) -> Result<()> {
    report::error(&e);
    report::warn(&format!(
        "killing job {} without the engine; its container {} is left for `qdock gc`",
        job.key,
        job.key.container_name()
    ));
    // The container's processes are outside the job's process group, but hold its group:
    // killed here, as Grid Engine's ENABLE_ADDGRP_KILL would (off by default in Open Cluster
    // Scheduler), nothing of the job runs on while the engine is away.
    if let Some(group) = job.group {
        let uid = nix::unistd::getuid().as_raw();
        let killed = process::kill_group_holders(uid, group, &crate::lineage::ancestry());
        report::log(&format!(
            "job {}: {killed} processes holding its group {group} killed",
            job.key
        ));
    }
    signal_job(job, Signal::SIGKILL)
}

fn signal_job(job: &Job, signal: Signal) -> Result<()> {
    let pid = job.pid.ok_or_else(|| Error::NothingToSignal {
        job: job.key.to_string(),
    })?;
    process::signal_job(pid, signal)
}
