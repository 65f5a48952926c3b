//! One bind mount, as admins write it in the config and jobs ask for it: the syntax and the
//! path rules every mount obeys, whoever asked for it.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// One bind mount: host `source` at `target` in the container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MountSpec {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

impl MountSpec {
    /// `/src`, `/src:/dst`, `/src:ro`, `/src:/dst:rw`.
    pub fn parse(text: &str) -> Result<MountSpec, String> {
        let mut parts: Vec<&str> = text.split(':').collect();
        let read_only = match parts.last() {
            Some(&"ro") => true,
            Some(&"rw") => false,
            _ => {
                parts.push("rw");
                false
            }
        };
        parts.pop();
        let (source, target) = match parts.as_slice() {
            [src] => (*src, *src),
            [src, dst] => (*src, *dst),
            _ => return Err("expected /source[:/target][:ro|:rw]".into()),
        };
        Ok(MountSpec {
            source: clean_path(source)?,
            target: clean_path(target)?,
            read_only,
        })
    }
}

/// The config names the mount in its own words, so the admin sees which entry is wrong.
impl TryFrom<String> for MountSpec {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        MountSpec::parse(&text).map_err(|problem| format!("{text:?}: {problem}"))
    }
}

/// Absolute, no `..`, no `.`: a path that means what it says before any link is followed.
fn clean_path(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!("{path:?} is not an absolute path"));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || path.contains("/./")
    {
        return Err(format!("{path:?} contains . or .. components"));
    }
    if path.contains(',') || path.contains('\0') {
        return Err(format!("{path:?} contains a comma or NUL"));
    }
    Ok(p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_syntax() {
        let m = MountSpec::parse("/data/a:/data:ro").unwrap();
        assert_eq!(
            (m.source.to_str(), m.target.to_str(), m.read_only),
            (Some("/data/a"), Some("/data"), true)
        );
        assert!(!MountSpec::parse("/scratch").unwrap().read_only);
        for bad in ["data", "/a/../etc", "/a:b", "/a:/b:/c:ro", "/a/./b"] {
            assert!(MountSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
