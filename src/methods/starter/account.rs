//! The job's usage and provenance: at the container's end, whether it ran out of memory
//! and what it used as the `.e` file's last `qdock:` lines (and syslog), and one line in the
//! per-host record (see crate::usage).

use std::future::Future;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::prepare::Prepared;
use super::supervise::Exit;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::job::JobContext;
use crate::job_proof::Proven;
use crate::privilege::Identity;
use crate::usage::Measured;
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

/// Runs `start`, which starts container `id`, and follows the container from then on;
/// `go` lets the job run once it is followed (see [`probe::watch_start`]).
pub async fn begin<T>(
    engine: &Engine,
    id: &str,
    start: impl Future<Output = T>,
    go: impl Fn() + Send + Sync + 'static,
) -> (T, Started) {
    let (at, began) = (now(), Instant::now());
    let (outcome, watch) = probe::watch_start(engine, id, start, go).await;
    (outcome, Started { at, began, watch })
}

/// What the engine says of a container that has exited, asked once before it is removed.
pub struct Ended {
    /// How long it ran; see [`ended`].
    wall_ns: u64,
    /// Its `State.OOMKilled`, or why the engine could not be asked.
    oom_killed: std::result::Result<bool, String>,
}

/// What the engine says of container `id`, which has exited. Its run time is by the
/// engine's own clock. A job over in a millisecond can exit before dockerd stamps its start
/// (the stamp follows runc's reply; the exit's comes from containerd), about one run in four
/// here; then, as when the engine cannot answer, the starter's own span from the start
/// request to now, which bounds the run from above.
pub async fn ended(engine: &Engine, id: &str, started: &Started) -> Ended {
    let inspected = engine.inspect(id).await;
    let by_engine = inspected.as_ref().ok().and_then(|c| {
        let c = c.as_ref()?;
        crate::usage::wall_ns(c.started_at.as_deref()?, c.finished_at.as_deref()?)
    });
    Ended {
        wall_ns: by_engine.unwrap_or_else(|| {
            u64::try_from(started.began.elapsed().as_nanos()).unwrap_or(u64::MAX)
        }),
        oom_killed: match inspected {
            Ok(c) => Ok(c.is_some_and(|c| c.oom_killed)),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// Once the container is gone: whether it ran out of memory, what it used, and the job's
/// record.
pub fn end(prepared: &Prepared, config: &Config, started: Started, exit: Exit, ended: Ended) {
    let measured = started.watch.finish();
    match out_of_memory(exit, &ended.oom_killed, &measured, prepared.spec.memory) {
        Some(Ok(line)) => report::info(&line),
        Some(Err(problem)) => report::warn(&problem),
        None => {}
    }
    let wall_ns = ended.wall_ns;
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
        exit: exit.code(),
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

/// Whether a job that ended with `exit` failed for want of memory (Ok, the line that says
/// so), or why that could not be told (Err); None when there is nothing to say: the job
/// succeeded or Grid Engine stopped it, or no process of it was killed for memory. Either
/// witness is enough: the engine (`State.OOMKilled`) or the kernel's count of OOM kills in
/// the container's memory cgroup. Podman 4.3 on cgroup v1 never says so; the cgroup's last
/// reading may predate the kill when the final one came too late (see crate::usage::probe).
fn out_of_memory(
    exit: Exit,
    engine_says: &std::result::Result<bool, String>,
    measured: &std::result::Result<Measured, String>,
    limit: Option<i64>,
) -> Option<std::result::Result<String, String>> {
    let Exit::Ran(code @ 1..) = exit else {
        return None;
    };
    let counted = measured.as_ref().ok().map(|m| m.usage.oom_kills);
    match (engine_says, counted) {
        (Ok(true), _) | (_, Some(1..)) => {}
        (Err(e), None) => {
            return Some(Err(format!(
                "could not check whether the job ran out of memory: {e}"
            )));
        }
        _ => return None,
    }
    let limit = limit.map_or_else(|| "none set".into(), |m| format!("{} MiB", m >> 20));
    // A kill of any process of the container counts; when the job itself survived that,
    // its own exit code stands, as it would natively.
    Some(Ok(if code == 137 {
        format!("the job ran out of memory (limit {limit}) and was killed")
    } else {
        format!(
            "a process of the job ran out of memory (limit {limit}) and was killed; the job went on and exited with {code}"
        )
    }))
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
    let gpus = super::gpus::claim_native(&proven, config)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Usage;

    fn counted(oom_kills: u64) -> std::result::Result<Measured, String> {
        Ok(Measured {
            usage: Usage {
                oom_kills,
                ..Usage::default()
            },
            exact: true,
        })
    }

    const LIMIT: Option<i64> = Some(256 << 20);

    #[test]
    fn either_the_engine_or_the_kernel_tells_an_oom_kill() {
        let killed = Some(Ok(
            "the job ran out of memory (limit 256 MiB) and was killed".to_string(),
        ));
        // dockerd says so; Podman on cgroup v1 does not, the kernel's count does.
        assert_eq!(
            out_of_memory(Exit::Ran(137), &Ok(true), &counted(1), LIMIT),
            killed
        );
        assert_eq!(
            out_of_memory(Exit::Ran(137), &Ok(false), &counted(1), LIMIT),
            killed
        );
        // The cgroup's final reading missed, or the engine could not be asked: the other.
        let unread = Err("its cgroup could not be read".to_string());
        assert_eq!(
            out_of_memory(Exit::Ran(137), &Ok(true), &unread, LIMIT),
            killed
        );
        assert_eq!(
            out_of_memory(Exit::Ran(137), &Err("gone".into()), &counted(2), LIMIT),
            killed
        );
        // A job that outlived the kill of one of its processes keeps its own exit code.
        assert_eq!(
            out_of_memory(Exit::Ran(5), &Ok(false), &counted(1), None),
            Some(Ok(
                "a process of the job ran out of memory (limit none set) and was \
                     killed; the job went on and exited with 5"
                    .to_string()
            ))
        );
    }

    #[test]
    fn nothing_is_said_without_a_failure_or_a_kill() {
        for exit in [Exit::Ran(0), Exit::Stopped(15)] {
            assert_eq!(out_of_memory(exit, &Ok(true), &counted(1), LIMIT), None);
        }
        assert_eq!(
            out_of_memory(Exit::Ran(137), &Ok(false), &counted(0), LIMIT),
            None
        );
        // The kernel's count alone answers an engine that could not be asked.
        assert_eq!(
            out_of_memory(Exit::Ran(1), &Err("gone".into()), &counted(0), LIMIT),
            None
        );
        assert_eq!(
            out_of_memory(Exit::Ran(1), &Err("gone".into()), &Err("x".into()), LIMIT),
            Some(Err(
                "could not check whether the job ran out of memory: gone".to_string()
            ))
        );
    }
}
