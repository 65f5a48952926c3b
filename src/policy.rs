//! The admin's rules, as pure decisions: which images may run, which mounts a job gets,
//! which environment variables cross into the container.

use std::path::Path;

use crate::config::{ImageConfig, UserMountRule};
use crate::error::{Error, Result};
use crate::image_ref::ImageRef;
use crate::mount::MountSpec;
use crate::pattern::{ImagePattern, glob_match};

/// Parses the requested reference and applies the allow list and the digest rule.
pub fn check_image(requested: &str, rules: &ImageConfig) -> Result<ImageRef> {
    let image = ImageRef::parse(requested).map_err(|problem| Error::BadImage {
        reference: requested.to_string(),
        problem,
    })?;
    if !rules.allow.is_empty() && !rules.allow.iter().any(|p| p.matches(&image)) {
        let allowed: Vec<String> = rules.allow.iter().map(ImagePattern::to_string).collect();
        return Err(Error::ImageNotAllowed {
            image: image.normalized(),
            allowed: allowed.join(", "),
        });
    }
    if rules.require_digest && image.digest.is_none() {
        return Err(Error::DigestRequired {
            image: image.normalized(),
        });
    }
    Ok(image)
}

/// Parses the job's mount request: mounts separated by commas.
pub fn parse_mount_request(request: &str) -> Result<Vec<MountSpec>> {
    request
        .split(',')
        .filter(|m| !m.is_empty())
        .map(|m| {
            MountSpec::parse(m).map_err(|problem| Error::MountRefused {
                request: m.to_string(),
                problem,
            })
        })
        .collect()
}

/// Decides a user mount whose source has already been resolved (links followed, as the user).
/// Read-only unless the matching admin rule allows writes.
pub fn authorize_mount(
    requested: &MountSpec,
    resolved: &Path,
    rules: &[UserMountRule],
) -> Result<MountSpec> {
    let refuse = |problem: String| Error::MountRefused {
        request: format!(
            "{}:{}",
            requested.source.display(),
            requested.target.display()
        ),
        problem,
    };
    let Some(rule) = rules.iter().find(|r| resolved.starts_with(&r.prefix)) else {
        let allowed: Vec<String> = rules
            .iter()
            .map(|r| r.prefix.display().to_string())
            .collect();
        return Err(refuse(if allowed.is_empty() {
            "this cluster allows no user mounts (mounts.user_allow is empty)".into()
        } else {
            format!(
                "{} is not under an allowed prefix ({})",
                resolved.display(),
                allowed.join(", ")
            )
        }));
    };
    if !requested.read_only && !rule.writable {
        return Err(refuse(format!(
            "{} may only be mounted read-only; add :ro",
            rule.prefix.display()
        )));
    }
    let target = &requested.target;
    if ["/proc", "/sys", "/dev", "/etc"]
        .iter()
        .any(|p| target.starts_with(p))
        || target == Path::new("/")
    {
        return Err(refuse(format!(
            "the target {} is a system directory",
            target.display()
        )));
    }
    Ok(MountSpec {
        source: resolved.to_path_buf(),
        target: target.clone(),
        read_only: requested.read_only,
    })
}

/// A user mount whose source lies in a directory others than root can change is widened to that
/// directory, its anchor (see `mount_source`): mounted at its own path, so the source is
/// reached inside the container at the path asked for, and still under an allowed prefix.
pub fn widen_mount(
    requested: &MountSpec,
    authorized: MountSpec,
    anchor: &Path,
    rules: &[UserMountRule],
) -> Result<MountSpec> {
    if anchor == authorized.source {
        return Ok(authorized);
    }
    let refuse = |problem: String| Error::MountRefused {
        request: requested.source.display().to_string(),
        problem,
    };
    if authorized.target != authorized.source {
        return Err(refuse(format!(
            "{} lies in {}, a directory users can change, so it can only be mounted at its own path (drop :{})",
            authorized.source.display(),
            anchor.display(),
            authorized.target.display()
        )));
    }
    let same = MountSpec {
        source: anchor.to_path_buf(),
        target: anchor.to_path_buf(),
        read_only: authorized.read_only,
    };
    authorize_mount(&same, anchor, rules).map_err(|e| {
        refuse(format!(
            "it lies in {}, a directory users can change, which would have to be mounted whole ({e})",
            anchor.display()
        ))
    })
}

/// True when a variable may be passed into the container.
pub fn env_passes(name: &str, pass: &[String], deny: &[String]) -> bool {
    (pass.is_empty() || pass.iter().any(|p| glob_match(p, name)))
        && !deny.iter().any(|d| glob_match(d, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], require_digest: bool) -> ImageConfig {
        ImageConfig {
            allow: allow
                .iter()
                .map(|p| ImagePattern::parse(p).unwrap())
                .collect(),
            require_digest,
            ..Default::default()
        }
    }

    #[test]
    fn allow_list_matches_both_forms() {
        assert!(check_image("qdock/busybox:1", &rules(&["qdock/*"], false)).is_ok());
        assert!(check_image("qdock/busybox:1", &rules(&["docker.io/qdock/*"], false)).is_ok());
        assert!(check_image("busybox", &rules(&["busybox:*"], false)).is_ok());
        let e = check_image("evil.example.com/x:1", &rules(&["qdock/*"], false)).unwrap_err();
        assert!(matches!(e, Error::ImageNotAllowed { .. }), "{e}");
        assert!(check_image("anything:1", &rules(&[], false)).is_ok());
    }

    #[test]
    fn digest_required() {
        assert!(matches!(
            check_image("busybox:1", &rules(&[], true)),
            Err(Error::DigestRequired { .. })
        ));
        let d = format!("busybox@sha256:{}", "0".repeat(64));
        assert!(check_image(&d, &rules(&[], true)).is_ok());
    }

    #[test]
    fn mount_authorization() {
        let rules = vec![
            UserMountRule {
                prefix: "/data".into(),
                writable: false,
            },
            UserMountRule {
                prefix: "/scratch".into(),
                writable: true,
            },
        ];
        let req = MountSpec::parse("/data/alice:/in:ro").unwrap();
        assert!(authorize_mount(&req, Path::new("/data/alice"), &rules).is_ok());
        // The link resolved outside the prefix: refused.
        assert!(authorize_mount(&req, Path::new("/etc"), &rules).is_err());
        let rw = MountSpec::parse("/data/alice:/in:rw").unwrap();
        assert!(authorize_mount(&rw, Path::new("/data/alice"), &rules).is_err());
        let rw = MountSpec::parse("/scratch/a:/out").unwrap();
        assert!(authorize_mount(&rw, Path::new("/scratch/a"), &rules).is_ok());
        let sys = MountSpec::parse("/data/a:/etc/x:ro").unwrap();
        assert!(authorize_mount(&sys, Path::new("/data/a"), &rules).is_err());
        // "/database" is not under "/data".
        assert!(authorize_mount(&req, Path::new("/database"), &rules).is_err());
    }

    #[test]
    fn mounts_in_changeable_directories_are_widened_to_their_anchor() {
        let rules = vec![UserMountRule {
            prefix: "/data".into(),
            writable: false,
        }];
        let req = MountSpec::parse("/data/alice/in:ro").unwrap();
        let ok = authorize_mount(&req, Path::new("/data/alice/in"), &rules).unwrap();
        let widened = widen_mount(&req, ok.clone(), Path::new("/data/alice"), &rules).unwrap();
        assert_eq!(widened.source, Path::new("/data/alice"));
        assert_eq!(widened.target, Path::new("/data/alice"));
        assert!(widened.read_only);
        // Its own anchor: unchanged.
        assert_eq!(
            widen_mount(&req, ok.clone(), Path::new("/data/alice/in"), &rules).unwrap(),
            ok
        );
        // Widened past the prefix: refused.
        assert!(widen_mount(&req, ok, Path::new("/"), &rules).is_err());
        // Another target cannot be kept when widening.
        let moved = MountSpec::parse("/data/alice/in:/in:ro").unwrap();
        let ok = authorize_mount(&moved, Path::new("/data/alice/in"), &rules).unwrap();
        let e = widen_mount(&moved, ok, Path::new("/data/alice"), &rules).unwrap_err();
        assert!(e.to_string().contains("at its own path"), "{e}");
    }

    #[test]
    fn env_filter() {
        let deny = vec!["PATH".to_string(), "LD_*".to_string()];
        assert!(env_passes("JOB_ID", &[], &deny));
        assert!(!env_passes("LD_PRELOAD", &[], &deny));
        assert!(!env_passes("PATH", &[], &deny));
        assert!(!env_passes("JOB_ID", &["SGE_*".to_string()], &deny));
    }
}
