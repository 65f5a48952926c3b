//! Creating the job's container when its name may be taken by an earlier run of the same job
//! (requeue, reschedule after a crash).

use crate::engine::{Engine, State};
use crate::error::{Error, Result};
use crate::labels::Labelled;
use crate::report;
use crate::spec::ContainerSpec;

/// Creates the container and returns its ID. The common case needs no look-up first: only a
/// taken name means a leftover.
pub async fn create(engine: &Engine, spec: &ContainerSpec) -> Result<String> {
    if let Some(id) = engine.create(spec).await? {
        return Ok(id);
    }
    clear(engine, &spec.name).await?;
    engine.create(spec).await?.ok_or_else(|| Error::Leftover {
        name: spec.name.clone(),
        problem: "came back while it was being removed".into(),
    })
}

/// Ours and stopped: remove it. Anything else is not ours to touch. The decision and the
/// removal are about the same object: the ID the look-up returned.
async fn clear(engine: &Engine, name: &str) -> Result<()> {
    let Some(old) = engine.inspect(name).await? else {
        return Ok(());
    };
    let me = nix::unistd::getuid().as_raw();
    if old.owner_uid() != Some(me) {
        let owner = old.owner_uid().map_or("unknown".into(), |u| u.to_string());
        return Err(Error::Leftover {
            name: name.into(),
            problem: format!("belongs to uid {owner}"),
        });
    }
    if matches!(old.state, State::Running | State::Paused | State::Other(_)) {
        return Err(Error::Leftover {
            name: name.into(),
            problem: format!("is still {:?}", old.state),
        });
    }
    report::info(&format!(
        "removing container {name} left over from an earlier run of this job"
    ));
    engine.remove(&old.id, false).await
}
