//! The job's GPUs on this host, taken before its container exists (or its native shell
//! runs) and freed once the container is gone (see [`crate::gpu`]).

use std::collections::HashSet;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gpu::{self, Gpu, Share, ledger};
use crate::job_proof::{Proof, Proven};

/// Takes the GPUs Grid Engine granted the proven job here, for `container` (none for a
/// native job). `gone`: containers of ended runs that the engine no longer has.
pub fn claim(
    proven: &Proven,
    config: &Config,
    container: Option<String>,
    gone: &HashSet<String>,
) -> Result<Vec<Gpu>> {
    let job = proven.key.to_string();
    let unavailable = |problem: String| Error::GpusUnavailable {
        job: job.clone(),
        problem,
    };
    let Proof::Spooled(spooled) = &proven.proof else {
        return Ok(Vec::new());
    };
    // A host without GPUs reads no grant: none can be given here.
    let (gpus, source) = gpu::host_gpus(&config.gpus);
    if gpus.is_empty() {
        return Ok(Vec::new());
    }
    let granted = gpu::granted(proven, &config.gpus).map_err(unavailable)?;
    let want = granted.count;
    if want == 0 {
        return Ok(Vec::new());
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
    let holder = ledger::Holder::of(&proven.key, &spooled.spool_host, container);
    let ledger = ledger::Ledger::new(&config.gpus.lock_dir, &config.gridengine);
    let lock_dir = config.gpus.lock_dir.display();
    match ledger.claim(&gpus, want, &holder, gone) {
        Ok(Ok(taken)) => Ok(taken),
        Ok(Err(shortage)) => Err(Error::GpusBusy {
            job,
            want,
            free: shortage.free,
            held: shortage.held.join(", "),
        }),
        Err(e) => Err(unavailable(format!(
            "cannot record the holding in {lock_dir} ({e}); bin/install creates it"
        ))),
    }
}

/// For a container job: the holdings of ended runs whose containers the engine no longer
/// has are taken over by [`claim`]; then what the container gets.
pub async fn claim_for_container(
    proven: &Proven,
    config: &Config,
    engine: &Engine,
) -> Result<Share> {
    let ledger = ledger::Ledger::new(&config.gpus.lock_dir, &config.gridengine);
    let gone = ledger::gone(engine, ledger.containers_of_ended_runs()).await;
    let container = proven.key.container_name();
    let gpus = claim(proven, config, Some(container), &gone)?;
    gpu::share(gpus, &config.gpus).map_err(|problem| Error::GpusUnavailable {
        job: proven.key.to_string(),
        problem,
    })
}
