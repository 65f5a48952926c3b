//! Which files a privileged qdock may believe: a file an ordinary user could write, or swap
//! through a directory they could write, would let them choose what the setgid binary does.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Checks `path` (not followed if it is a link) and every directory above it: each must be
/// owned by one of `owners` and not writable by group or others. Returns the problem found.
pub fn check_path(path: &Path, owners: &[u32]) -> Result<(), String> {
    let meta =
        fs::symlink_metadata(path).map_err(|e| format!("cannot read {} ({e})", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    check_owner_mode(&meta, owners).map_err(|p| format!("{} {p}", path.display()))?;
    check_ancestors(path, owners)
}

/// Checks every directory above `path` as [`check_path`] does: none may be swapped by others.
pub fn check_ancestors(path: &Path, owners: &[u32]) -> Result<(), String> {
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        let meta = fs::metadata(d).map_err(|e| format!("cannot check {} ({e})", d.display()))?;
        check_owner_mode(&meta, owners)
            .map_err(|p| format!("its directory {} {p}", d.display()))?;
        dir = d.parent();
    }
    Ok(())
}

fn check_owner_mode(meta: &fs::Metadata, owners: &[u32]) -> Result<(), String> {
    if !owners.contains(&meta.uid()) {
        let trusted = if owners.len() > 1 {
            "root or the Grid Engine admin user"
        } else {
            "root"
        };
        return Err(format!("is owned by uid {}, not {trusted}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}
