//! Which image runs: the reference as asked, resolved by the engine to an image ID (pulled
//! first when the admin's pull policy says so).

use crate::config::PullPolicy;
use crate::engine::Engine;
use crate::error::{Cause, Error, Result};
use crate::image_ref::ImageRef;
use crate::spec::ResolvedImage;

pub async fn resolve(
    engine: &Engine,
    reference: &ImageRef,
    pull: PullPolicy,
) -> Result<ResolvedImage> {
    let name = reference.normalized();
    if pull == PullPolicy::Always {
        engine.pull(&name).await?;
    }
    let found = match engine.image(&name).await? {
        None if pull == PullPolicy::Missing => {
            engine.pull(&name).await?;
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
