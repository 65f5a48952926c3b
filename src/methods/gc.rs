//! `qdock gc`: removes containers that no starter will ever wait for again.
//!
//! A container is an orphan when the starter recorded in its labels (pid + start time) is no
//! longer alive. The starter is the container's lifeline: it streams the output, returns the
//! exit code and removes the container; once it is gone (SIGKILL, execd restart, reboot,
//! `qdel -f`), nothing else will. This needs neither qmaster nor the execd spool layout, and
//! pid reuse cannot fool it. The one-shot sweep ([`collect`]) and the watcher
//! (`super::watch`) decide and remove through the same functions here.

use crate::engine::{Container, Engine, State};
use crate::error::{Cause, Error, Result};
use crate::labels::{Label, Labelled};
use crate::process::ProcessId;
use crate::report;

/// Why a container is an orphan, or None when its starter lives.
pub fn orphan_reason(container: &Container) -> Option<String> {
    match container.starter() {
        Some(starter) if starter.is_alive() => None,
        recorded => Some(gone(recorded)),
    }
}

/// Why a container is an orphan once `starter`, as its labels record it, is gone.
pub fn gone(starter: Option<ProcessId>) -> String {
    match starter {
        Some(starter) => format!("its starter (pid {}) is gone", starter.pid),
        None => "it records no starter".into(),
    }
}

/// True when `container` belongs to `cell`, or when no cell is asked for.
pub fn in_cell(container: &Container, cell: Option<&str>) -> bool {
    cell.is_none_or(|cell| container.label(Label::Cell) == Some(cell))
}

/// Stops and removes an orphan, addressed by its ID, and reports it in syslog and on stdout.
/// Returns false when it was gone already: the common case after a starter's normal end,
/// which costs one look-up answered 404.
pub async fn remove_orphan(
    engine: &Engine,
    container: &Container,
    reason: &str,
    grace_secs: u64,
) -> Result<bool> {
    let Some(now) = engine.inspect(&container.id).await? else {
        return Ok(false);
    };
    if now.state == State::Paused {
        // A frozen process cannot act on its stop signal, nor die of the SIGKILL after it.
        engine.unpause(&container.id).await?;
    }
    if matches!(now.state, State::Paused | State::Running) {
        engine.stop(&container.id, grace_secs).await?;
    }
    engine.remove(&container.id, true).await?;
    let what = format!(
        "{} ({}): {reason}",
        container.name,
        container.job_description()
    );
    report::log(&format!("gc removed container {what}"));
    println!("removed {what}");
    Ok(true)
}

/// The one-shot sweep. Returns the names of the containers removed (or that would be, with
/// `dry_run`).
pub async fn collect(
    engine: &Engine,
    cell: Option<&str>,
    grace_secs: u64,
    dry_run: bool,
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut failures = Vec::new();
    for container in engine.list_qdock().await? {
        if !in_cell(&container, cell) {
            continue;
        }
        let Some(reason) = orphan_reason(&container) else {
            continue;
        };
        if dry_run {
            println!(
                "would remove {} ({}): {reason}",
                container.name,
                container.job_description()
            );
            removed.push(container.name);
            continue;
        }
        match remove_orphan(engine, &container, &reason, grace_secs).await {
            Ok(true) => removed.push(container.name),
            Ok(false) => {}
            Err(e) => failures.push(format!("{}: {e}", container.name)),
        }
    }
    if failures.is_empty() {
        Ok(removed)
    } else {
        Err(Error::Engine {
            action: "remove orphaned containers".into(),
            cause: Cause::text(failures.join("; ")),
        })
    }
}
