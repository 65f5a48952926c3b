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
    Ok(ResolvedImage {
        reference: reference.clone(),
        repo_digest: repo_digest_of(reference, &image.repo_digests),
        id: image.id,
        env: image.env,
    })
}

/// The repository digest (`repository@sha256:…`) of the repository the job named, and of
/// the digest it named, if any. An image that came from several repositories has one per
/// repository, in the engine's order: the first may name a repository the job never asked
/// for. None when the image did not come from that repository.
fn repo_digest_of(reference: &ImageRef, repo_digests: &[String]) -> Option<String> {
    repo_digests
        .iter()
        .find(|listed| {
            ImageRef::parse(listed).is_ok_and(|r| {
                r.registry == reference.registry
                    && r.repository == reference.repository
                    && reference
                        .digest
                        .as_ref()
                        .is_none_or(|asked| r.digest.as_ref() == Some(asked))
            })
        })
        .cloned()
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

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn digest_of(asked: &str, listed: &[&str]) -> Option<String> {
        let listed: Vec<String> = listed.iter().map(|d| d.to_string()).collect();
        repo_digest_of(&ImageRef::parse(asked).unwrap(), &listed)
    }

    #[test]
    fn the_digest_recorded_is_the_named_repositorys() {
        let listed = [
            format!("127.0.0.1:5000/mirror/tool@{A}"),
            format!("127.0.0.1:5000/lab/tool@{B}"),
            format!("busybox@{A}"),
        ];
        let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
        assert_eq!(
            digest_of("127.0.0.1:5000/lab/tool:1", &listed),
            Some(listed[1].to_string())
        );
        // Docker Hub's short names are the same repository as the long ones.
        assert_eq!(
            digest_of("docker.io/library/busybox:latest", &listed),
            Some(listed[2].to_string())
        );
        assert_eq!(digest_of("127.0.0.1:5000/other/tool:1", &listed), None);
        assert_eq!(digest_of("tool:1", &listed), None);
    }

    #[test]
    fn a_named_digest_must_be_the_one_recorded() {
        let listed = [
            format!("127.0.0.1:5000/lab/tool@{A}"),
            format!("127.0.0.1:5000/lab/tool@{B}"),
        ];
        let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
        assert_eq!(
            digest_of(&format!("127.0.0.1:5000/lab/tool@{B}"), &listed),
            Some(listed[1].to_string())
        );
        assert_eq!(
            digest_of(&format!("127.0.0.1:5000/mirror/tool@{A}"), &listed),
            None
        );
    }

    #[test]
    fn an_image_from_no_registry_has_no_repo_digest() {
        assert_eq!(digest_of("qdock/busybox:1", &[]), None);
    }
}
