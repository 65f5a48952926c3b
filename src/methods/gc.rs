//! `qdock gc`: removes containers that no starter will ever wait for again.
//!
//! A container is an orphan when the starter recorded in its labels (pid + start time) is no
//! longer alive. The starter is the container's lifeline: it streams the output, returns the
//! exit code and removes the container; once it is gone (SIGKILL, execd restart, reboot,
//! `qdel -f`), nothing else will. This needs neither qmaster nor the execd spool layout, and
//! pid reuse cannot fool it.

use crate::engine::{Container, Engine};
use crate::error::{Cause, Error, Result};
use crate::labels::Labelled;
use crate::report;

/// Why a container is an orphan, or None when its starter lives.
pub fn orphan_reason(container: &Container) -> Option<String> {
    match container.starter() {
        Some(starter) if starter.is_alive() => None,
        Some(starter) => Some(format!("its starter (pid {}) is gone", starter.pid)),
        None => Some("it records no starter".into()),
    }
}

/// Returns the names of the containers removed (or that would be, with `dry_run`).
pub async fn collect(engine: &Engine, dry_run: bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut failures = Vec::new();
    for container in engine.list_qdock().await? {
        let Some(reason) = orphan_reason(&container) else {
            continue;
        };
        let job = container.job_description();
        if dry_run {
            println!("would remove {} ({job}): {reason}", container.name);
        } else if let Err(e) = engine.remove(&container.id, true).await {
            failures.push(format!("{}: {e}", container.name));
            continue;
        } else {
            report::log(&format!(
                "gc removed container {} ({job}): {reason}",
                container.name
            ));
            println!("removed {} ({job}): {reason}", container.name);
        }
        removed.push(container.name);
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
