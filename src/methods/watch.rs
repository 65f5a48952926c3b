//! `qdock gc --watch`: removes a job's container within moments of its starter's end.
//!
//! The starter is the container's lifeline (see `gc`). The watcher learns of every qdock
//! container from the engine, by a listing at each (re)connect and then by the engine's
//! create events, and waits for each one's starter to end through a pidfd, which the kernel
//! makes readable at the exit: nothing is polled. When a starter ends and its container is
//! still there, `gc::remove_orphan` thaws, stops and removes it by ID. A starter that ended
//! normally removed its container itself; the watcher then pays one 404.
//!
//! A starter killed before its container started leaves its pipes' directory instead (or
//! too): `stdio_gc::watch` follows those through inotify and the same pidfds.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::engine::{Container, Engine};
use crate::error::{Error, Result};
use crate::labels::Labelled;
use crate::methods::{gc, stdio_gc};
use crate::report;

/// Reconnect delays double from the first to the last while the engine stays away.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_LAST: Duration = Duration::from_secs(10);

/// Watches until SIGTERM or SIGINT. Work in flight is dropped then; the next start lists
/// every container again, so nothing is lost for good.
pub async fn run(config: &Config, cell: Option<&str>) -> Result<()> {
    let on = |kind| signal(kind).map_err(|e| Error::io("install signal handlers", e));
    let (mut term, mut int) = (on(SignalKind::terminate())?, on(SignalKind::interrupt())?);
    let scope = cell.map_or("every cell".to_string(), |c| format!("cell {c}"));
    report::info(&format!("gc --watch: watching the containers of {scope}"));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        () = follow(config, cell) => {}
        // The pipes' directories need no engine: followed apart from it.
        () = stdio_gc::watch(cell) => {}
    }
    report::info("gc --watch: stopped");
    Ok(())
}

/// Follows the engine for ever, reconnecting with backoff whenever it goes away. Warns once
/// per outage, not once per attempt.
async fn follow(config: &Config, cell: Option<&str>) {
    let mut backoff = BACKOFF_FIRST;
    let mut unreachable = false;
    loop {
        match Engine::connect(&config.engine).await {
            Ok(engine) => {
                if unreachable {
                    report::info("gc --watch: the engine answers again");
                }
                (unreachable, backoff) = (false, BACKOFF_FIRST);
                let why = match watch(&engine, cell, config).await {
                    Ok(()) => "the engine ended its event stream".to_string(),
                    Err(e) => e.to_string(),
                };
                report::warn(&format!("gc --watch: {why}; reconnecting"));
            }
            Err(e) if !unreachable => {
                report::warn(&format!("gc --watch: {e}; retrying"));
                unreachable = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_LAST);
    }
}

/// One connection's life: subscribe, list, then follow events and starters' ends until the
/// event stream ends or fails.
async fn watch(engine: &Engine, cell: Option<&str>, config: &Config) -> Result<()> {
    // A second back, so that the engine replays what is created while we list.
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64 - 1);
    let mut created = engine.qdock_created(since);
    let mut watched = Watched::new(engine, cell, config);
    for container in engine.list_qdock().await? {
        watched.add(container);
    }
    report::info(&format!(
        "gc --watch: following the engine, {} container(s) at the start",
        watched.ids.len()
    ));
    loop {
        tokio::select! {
            event = created.next() => match event {
                Some(container) => watched.add(container?),
                None => return Ok(()),
            },
            Some((container, result)) = watched.pending.next() => watched.done(&container, result),
        }
    }
}

type Removal<'a> = Pin<Box<dyn Future<Output = (Container, Result<bool>)> + 'a>>;

/// The containers of one connection whose starters are waited for, by ID.
struct Watched<'a> {
    engine: &'a Engine,
    cell: Option<&'a str>,
    config: &'a Config,
    ids: HashSet<String>,
    pending: FuturesUnordered<Removal<'a>>,
}

impl<'a> Watched<'a> {
    fn new(engine: &'a Engine, cell: Option<&'a str>, config: &'a Config) -> Self {
        Watched {
            engine,
            cell,
            config,
            ids: HashSet::new(),
            pending: FuturesUnordered::new(),
        }
    }

    /// Waits for the container's starter to end, then removes what is left. A container
    /// already watched (listed, then replayed as an event) is not watched twice.
    fn add(&mut self, container: Container) {
        if !gc::in_cell(&container, self.cell) || !self.ids.insert(container.id.clone()) {
            return;
        }
        let (engine, config) = (self.engine, self.config);
        self.pending.push(Box::pin(async move {
            let starter = container.starter();
            if let Some(starter) = starter {
                starter.ended().await;
            }
            let reason = gc::gone(starter);
            let grace = config.container.stop_grace_secs;
            let result = gc::remove_orphan(engine, &container, &reason, grace).await;
            // Gone, with its starter: nobody holds its GPUs any more.
            if matches!(result, Ok(true)) {
                crate::gpu::ledger::release(config, &container.name);
            }
            (container, result)
        }));
    }

    /// A removal that failed is left to the next listing (at a reconnect, or the periodic
    /// `qdock gc`): retrying at once would only fail again.
    fn done(&mut self, container: &Container, result: Result<bool>) {
        self.ids.remove(&container.id);
        if let Err(e) = result {
            report::warn(&format!(
                "gc --watch: container {} of a finished starter stays: {e}",
                container.name
            ));
        }
    }
}
