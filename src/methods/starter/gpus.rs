//! The job's GPUs on this host, taken before its container exists (or its native shell
//! runs) and freed once the container is gone (see [`crate::gpu`]).

use std::collections::HashSet;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gpu::{self, Gpu, Share, ledger};
use crate::job_proof::{Proof, Proven};

/// What the proven job was granted here: how many, of which of the host's GPUs, held by
/// the job task on its spool host.
struct Wanted {
    gpus: Vec<Gpu>,
    want: usize,
    spool_host: String,
}

/// The job's grant on this host; None when it holds no GPU here (it asked for none, nothing
/// proves it, or the host has none to give).
fn wanted(proven: &Proven, config: &Config) -> Result<Option<Wanted>> {
    let job = proven.key.to_string();
    let unavailable = |problem: String| Error::GpusUnavailable {
        job: job.clone(),
        problem,
    };
    let Proof::Spooled(spooled) = &proven.proof else {
        return Ok(None);
    };
    // A host without GPUs reads no grant: none can be given here.
    let (gpus, source) = gpu::host_gpus(&config.gpus);
    if gpus.is_empty() {
        return Ok(None);
    }
    let granted = gpu::granted(spooled, proven.key.job_id(), &config.gpus).map_err(unavailable)?;
    let want = granted.count;
    if want == 0 {
        return Ok(None);
    }
    // Grid Engine chose the devices (an RSMAP grant): those, by the host's numbers.
    let gpus = if granted.ids.is_empty() {
        gpus
    } else {
        let chosen: Vec<Gpu> = granted
            .ids
            .iter()
            .filter_map(|id| gpus.iter().find(|g| &g.index == id).cloned())
            .collect();
        if chosen.len() < want {
            return Err(unavailable(format!(
                "Grid Engine granted the GPUs {} but this host numbers its GPUs {} ({source})",
                granted.ids.join(" "),
                gpus.iter()
                    .map(|g| g.index.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
        chosen
    };
    if gpus.len() < want {
        return Err(Error::GpusMissing {
            job,
            want,
            have: gpus.len(),
            found_in: source,
            complex: config.gpus.complex.clone(),
        });
    }
    Ok(Some(Wanted {
        gpus,
        want,
        spool_host: spooled.spool_host.clone(),
    }))
}

/// Takes `wanted` for `container` (none for a native job). `gone`: containers of ended
/// runs that the engine no longer has, whose holdings are taken over.
fn take(
    wanted: Wanted,
    proven: &Proven,
    config: &Config,
    container: Option<String>,
    gone: &HashSet<String>,
) -> Result<Vec<Gpu>> {
    let holder = ledger::Holder::of(&proven.key, &wanted.spool_host, container);
    let ledger = ledger::Ledger::new(&config.gpus.lock_dir, &config.gridengine);
    match ledger.claim(&wanted.gpus, wanted.want, &holder, gone) {
        Ok(Ok(taken)) => Ok(taken),
        Ok(Err(shortage)) => Err(Error::GpusBusy {
            job: proven.key.to_string(),
            want: wanted.want,
            free: shortage.free,
            held: shortage.held.join(", "),
        }),
        Err(e) => Err(Error::GpusUnavailable {
            job: proven.key.to_string(),
            problem: format!(
                "cannot record the holding in {} ({e}); bin/install creates it",
                config.gpus.lock_dir.display()
            ),
        }),
    }
}

/// For a native job, which has no engine to ask: holdings of ended runs are taken over
/// only where they had no container.
pub fn claim_native(proven: &Proven, config: &Config) -> Result<Vec<Gpu>> {
    match wanted(proven, config)? {
        Some(wanted) => take(wanted, proven, config, None, &HashSet::new()),
        None => Ok(Vec::new()),
    }
}

/// For a container job: the grant, then what the container gets. Only a job holding GPUs
/// looks at the ledger and asks the engine which containers of ended runs are gone.
pub async fn claim_for_container(
    proven: &Proven,
    config: &Config,
    engine: &Engine,
) -> Result<Share> {
    let Some(wanted) = wanted(proven, config)? else {
        return Ok(Share::default());
    };
    let ledger = ledger::Ledger::new(&config.gpus.lock_dir, &config.gridengine);
    let gone = ledger::gone(engine, ledger.containers_of_ended_runs()).await;
    let container = proven.key.container_name();
    let gpus = take(wanted, proven, config, Some(container), &gone)?;
    gpu::share(gpus, &config.gpus).map_err(|problem| Error::GpusUnavailable {
        job: proven.key.to_string(),
        problem,
    })
}
