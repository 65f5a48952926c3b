//! Mount sources the engine cannot be redirected from. The engine mounts as root and follows
//! links, long after qdock checked a path with the caller's rights: a caller who can change
//! an entry in any directory on the way (rename it, plant a link in its place) chooses what
//! is mounted. So each source is widened to its *anchor*: the topmost directory on its path
//! whose entries the caller can change. Nothing above the anchor can be swapped by the
//! caller, so the engine reaches exactly the object that was checked; below it, links are
//! resolved inside the container, with the caller's own rights. A source on a path the
//! caller cannot change at all is its own anchor.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::AccessFlags;

/// What decides whether the caller can change one entry of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub dir_owner: u32,
    pub dir_mode: u32,
    /// The caller may write the directory (their groups and ACLs considered).
    pub dir_writable: bool,
    /// The owner of the entry on the path below this directory.
    pub entry_owner: u32,
}

const STICKY: u32 = 0o1000;
const WORLD_WRITABLE: u32 = 0o002;

/// Can `uid` replace the entry below this directory by something else, a link above all?
/// `protected_symlinks` is the kernel's `fs.protected_symlinks`: with it, root does not follow
/// a link that a user planted in a sticky world-writable directory owned by someone else.
pub fn can_swap(step: &Step, uid: u32, protected_symlinks: bool) -> bool {
    if step.dir_owner == uid {
        // The owner can always make it writable.
        return true;
    }
    if !step.dir_writable {
        return false;
    }
    if step.dir_mode & STICKY == 0 {
        return true;
    }
    // Sticky: only the entry's owner may rename it away.
    let protected = protected_symlinks && step.dir_mode & WORLD_WRITABLE != 0;
    step.entry_owner == uid && !protected
}

/// Index of the first directory (from `/`) whose entry on the path the caller can swap.
pub fn first_swappable(steps: &[Step], uid: u32, protected_symlinks: bool) -> Option<usize> {
    steps
        .iter()
        .position(|s| can_swap(s, uid, protected_symlinks))
}

/// The anchor of `path`, which must be absolute and free of links (canonical, resolved with
/// the caller's rights): `path` itself, or the directory above it to mount instead.
pub fn anchor(path: &Path, uid: u32) -> Result<PathBuf, String> {
    if uid == 0 {
        return Ok(path.to_path_buf());
    }
    let ancestors: Vec<&Path> = {
        let mut a: Vec<&Path> = path.ancestors().collect();
        a.reverse();
        a
    };
    let steps = ancestors
        .windows(2)
        .map(|pair| step(pair[0], pair[1]))
        .collect::<Result<Vec<_>, _>>()?;
    match first_swappable(&steps, uid, protected_symlinks()) {
        None => Ok(path.to_path_buf()),
        Some(0) => Err(format!(
            "{} would need the whole root directory mounted, as you can change /",
            path.display()
        )),
        Some(i) => Ok(ancestors[i].to_path_buf()),
    }
}

fn step(dir: &Path, entry: &Path) -> Result<Step, String> {
    let meta = |p: &Path| {
        std::fs::symlink_metadata(p).map_err(|e| format!("cannot examine {} ({e})", p.display()))
    };
    let d = meta(dir)?;
    Ok(Step {
        dir_owner: d.uid(),
        dir_mode: d.mode(),
        // access(2) checks with the real ids: the caller's, never the setgid group.
        dir_writable: nix::unistd::access(dir, AccessFlags::W_OK).is_ok(),
        entry_owner: meta(entry)?.uid(),
    })
}

fn protected_symlinks() -> bool {
    std::fs::read_to_string("/proc/sys/fs/protected_symlinks").is_ok_and(|v| v.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: u32 = 2001;

    fn dir(owner: u32, mode: u32, writable: bool, entry_owner: u32) -> Step {
        Step {
            dir_owner: owner,
            dir_mode: mode,
            dir_writable: writable,
            entry_owner,
        }
    }

    #[test]
    fn home_is_its_own_anchor_and_a_directory_inside_it_is_not() {
        // / and /home are root's: /home/alice cannot be swapped, /home/alice/run can.
        let root = dir(0, 0o755, false, 0);
        let home = dir(0, 0o755, false, ALICE);
        let alice = dir(ALICE, 0o755, true, ALICE);
        assert_eq!(first_swappable(&[root, home], ALICE, false), None);
        assert_eq!(first_swappable(&[root, home, alice], ALICE, false), Some(2));
    }

    #[test]
    fn a_directory_the_caller_owns_counts_even_when_read_only() {
        assert!(can_swap(&dir(ALICE, 0o555, false, 0), ALICE, true));
    }

    #[test]
    fn group_writable_directories_count() {
        assert!(can_swap(&dir(0, 0o775, true, 0), ALICE, true));
        assert!(!can_swap(&dir(0, 0o775, false, 0), ALICE, true));
    }

    #[test]
    fn sticky_directories_depend_on_the_entry_owner_and_protected_symlinks() {
        let tmp = |entry_owner| dir(0, 0o1777, true, entry_owner);
        // Another user's entry in /tmp cannot be renamed by the caller.
        assert!(!can_swap(&tmp(2002), ALICE, false));
        // The caller's own entry can be renamed and a link planted in its place: safe only
        // where the kernel keeps root from following it.
        assert!(can_swap(&tmp(ALICE), ALICE, false));
        assert!(!can_swap(&tmp(ALICE), ALICE, true));
        // Not world-writable: protected_symlinks does not apply.
        assert!(can_swap(&dir(0, 0o1770, true, ALICE), ALICE, true));
    }
}
