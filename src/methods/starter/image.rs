//! Which image runs: the reference as asked, resolved by the engine to an image ID (pulled
//! first when the admin's pull policy says so).

use crate::config::PullPolicy;
use crate::engine::Engine;
use crate::error::{Cause, Error, Result};
use crate::image_ref::ImageRef;
use crate::pull_progress::PullProgress;
use crate::report;
use crate::spec::ResolvedImage;

pub async fn resolve(
    engine: &Engine,
    reference: &ImageRef,
    pull: PullPolicy,
) -> Result<ResolvedImage> {
    let name = reference.normalized();
    if pull == PullPolicy::Always {
        pull_reporting(engine, &name, "pull = \"always\"").await?;
    }
    let found = match engine.image(&name).await? {
        None if pull == PullPolicy::Missing => {
            pull_reporting(engine, &name, "not on this host").await?;
            engine.image(&name).await?
        }
        found => found,
    };
    let image = found.ok_or_else(|| match pull {
        PullPolicy::Never => Error::ImageAbsent {
            image: reference.familiar(),
        },
        _ => Error::PullRefused {
            image: reference.familiar(),
            cause: Cause::text("the engine has no such image after the pull"),
        },
    })?;
    let repo_digest = match &reference.digest {
        Some(digest) => image
            .repo_digests
            .iter()
            .find(|d| d.ends_with(digest.as_str()))
            .cloned(),
        None => image.repo_digests.first().cloned(),
    };
    Ok(ResolvedImage {
        reference: reference.clone(),
        id: image.id,
        repo_digest,
    })
}

/// Pulls `name`, saying so in the job's `.e` file: a line before, one per layer in place
/// and one after. Several jobs pulling the same image at once share one download: the
/// engine joins a pull of a reference already under way.
async fn pull_reporting(engine: &Engine, name: &str, why: &str) -> Result<()> {
    report::info(&format!("pulling image {name} ({why})"));
    let started = std::time::Instant::now();
    let mut progress = PullProgress::default();
    engine
        .pull(name, |id, status| {
            if let Some(line) = progress.update(id, status) {
                report::info(&format!("pulling image {name}: {line}"));
            }
        })
        .await?;
    report::info(&format!(
        "pulled image {name} in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
