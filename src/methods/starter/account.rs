//! The job's usage and provenance: at the container's end, what it used as the `.e` file's
//! last `qdock:` line (and syslog), and one line in the per-host record (see crate::usage).

use std::future::Future;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::prepare::Prepared;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::job::JobContext;
use crate::job_proof::Proven;
use crate::privilege::Identity;
use crate::usage::ledger;
use crate::usage::probe::{self, Watch};
use crate::usage::record::{self, Record};
use crate::{job_proof, report};

/// A container that runs, followed until it ends.
pub struct Started {
    at: i64,
    began: Instant,
    watch: Watch,
}

/// Runs `start`, which starts container `id`, and follows the container from then on.
pub async fn begin<T>(engine: &Engine, id: &str, start: impl Future<Output = T>) -> (T, Started) {
    let (at, began) = (now(), Instant::now());
    let (outcome, watch) = probe::watch_start(engine, id, start).await;
    (outcome, Started { at, began, watch })
}

/// How long container `id`, which has exited, ran: by the engine's own clock, asked before
/// the container is removed. A job over in a millisecond can exit before dockerd stamps its
/// start (the stamp follows runc's reply; the exit's comes from containerd), about one run
/// in four here; then, as when the engine cannot answer, the starter's own span from the
/// start request to now, which bounds the run from above.
pub async fn wall_time(engine: &Engine, id: &str, started: &Started) -> u64 {
    let by_engine = async {
        let c = engine.inspect(id).await.ok()??;
        crate::usage::wall_ns(c.started_at.as_deref()?, c.finished_at.as_deref()?)
    };
    match by_engine.await {
        Some(ns) => ns,
        None => u64::try_from(started.began.elapsed().as_nanos()).unwrap_or(u64::MAX),
    }
}

/// Once the container is gone: what it used, and the job's record.
pub fn end(prepared: &Prepared, config: &Config, started: Started, code: u8, wall_ns: u64) {
    let measured = started.watch.finish();
    let line = crate::usage::line(wall_ns, &measured);
    match &measured {
        Ok(_) => report::info(&line),
        Err(_) => report::warn(&line),
    }
    let image = &prepared.image;
    let container = record::Container {
        name: prepared.spec.name.clone(),
        image: image.reference.familiar(),
        image_id: image.id.clone(),
        repo_digest: image.repo_digest.clone(),
        end: now(),
        exit: code,
        wall_ns: Some(wall_ns),
        usage: measured.ok().map(Into::into),
    };
    let record = record_of(
        &prepared.proven,
        started.at,
        Some(container),
        prepared.gpus.clone(),
    );
    ledger::append(&config.usage.record, &record);
}

/// A job without an image, about to run: which jobs ran no image is provenance too. Only
/// for a job Grid Engine proves (anyone may run the starter by hand, natively), and only by
/// the run's first starter: one started again from inside the job is refused. Returns the
/// GPUs the job holds here.
pub fn native(job: &JobContext, config: &Config) -> Result<Vec<Gpu>> {
    let Ok(proven) = job_proof::prove(&job.claim, &config.gridengine, &Identity::of_caller())
    else {
        return Ok(Vec::new());
    };
    report::set_job(&proven.key);
    let first = match crate::run_mark::first_starter(&proven) {
        Ok(first) => first,
        // The job runs all the same, as it would without qdock; only its record is lost.
        Err(e @ Error::RunMarkUnavailable { .. }) => {
            report::log(&format!("usage record not written: {e}"));
            false
        }
        Err(e) => return Err(e),
    };
    let gpus = super::gpus::claim(&proven, config, None, &Default::default())?;
    if first {
        let ids = gpus.iter().map(|g| g.id.clone()).collect();
        ledger::append(&config.usage.record, &record_of(&proven, now(), None, ids));
    }
    Ok(gpus)
}

fn record_of(
    proven: &Proven,
    start: i64,
    container: Option<record::Container>,
    gpus: Vec<String>,
) -> Record {
    let key = &proven.key;
    let who = Identity::of_caller();
    Record {
        qdock_usage: record::VERSION,
        host: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        cell: key.cell().to_string(),
        job: key.job_id(),
        task: key.task_id(),
        owner: who.name,
        uid: who.uid,
        queue: proven.queue(),
        start,
        container,
        gpus,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
