//! Mount sources the engine cannot be redirected from. The engine mounts as root and follows
//! links, long after qdock checked a path with the caller's rights: whoever can change an
//! entry on the way (rename it, plant a link in its place) chooses what is mounted, and that
//! need not be the caller: a second account of theirs, a collaborator or a service account
//! owning a directory on the path can do it while the caller's starter is held. So the rule
//! asks who *can* change an entry, never who is asking: an entry is *fixed* when no one but
//! root or the Grid Engine admin can replace it, and each source is widened to its *anchor*,
//! the deepest directory whose whole path from `/` is fixed. The engine reaches exactly that
//! directory; below it, links resolve inside the container, where they cannot escape.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What decides who can replace one entry of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub dir_owner: u32,
    pub dir_group: u32,
    pub dir_mode: u32,
    /// The owner of the entry on the path below this directory.
    pub entry_owner: u32,
}

const STICKY: u32 = 0o1000;
const GROUP_WRITABLE: u32 = 0o020;
const WORLD_WRITABLE: u32 = 0o002;

/// Can no one but `trusted` (root and the Grid Engine admin) replace the entry below this
/// directory? Either no one else can write the directory at all, or it is sticky and the
/// entry is theirs: then only they, the directory's owner and root may rename it.
pub fn is_fixed(step: &Step, trusted: &[u32]) -> bool {
    // The owner can always chmod the directory writable, sticky or not.
    if !trusted.contains(&step.dir_owner) {
        return false;
    }
    // An ACL that grants anyone write raises the ACL mask, which stat shows as the group
    // bits: g+w therefore counts whoever the ACL names. Group 0 is root's own.
    let only_trusted_write = step.dir_mode & WORLD_WRITABLE == 0
        && (step.dir_mode & GROUP_WRITABLE == 0 || step.dir_group == 0);
    let trusted_entry_in_sticky =
        step.dir_mode & STICKY != 0 && trusted.contains(&step.entry_owner);
    only_trusted_write || trusted_entry_in_sticky
}

/// The anchor of `path` from its steps (`steps[i]`: the `i`-th directory from `/` and the
/// entry below it on the path): the directory holding the first entry that is not fixed, or
/// `path` itself when all are. `/` is refused: the engine would expose the whole host.
pub fn anchor_of(path: &Path, steps: &[Step], trusted: &[u32]) -> Result<PathBuf, String> {
    let ancestors = from_root(path);
    let anchor = match steps.iter().position(|s| !is_fixed(s, trusted)) {
        None => path,
        Some(i) => ancestors[i],
    };
    if anchor.parent().is_none() {
        let entry = ancestors.get(1).copied().unwrap_or(anchor);
        return Err(format!(
            "{} lies below {}, which users can change, and / cannot be mounted; use a path below a directory only root can write",
            path.display(),
            entry.display()
        ));
    }
    Ok(anchor.to_path_buf())
}

/// The anchor of `path`, which must be absolute and free of links (canonical, resolved with
/// the caller's rights), as the filesystem stands now.
pub fn anchor(path: &Path, trusted: &[u32]) -> Result<PathBuf, String> {
    let steps = from_root(path)
        .windows(2)
        .map(|pair| step(pair[0], pair[1]))
        .collect::<Result<Vec<_>, _>>()?;
    anchor_of(path, &steps, trusted)
}

/// `/`, `/a`, `/a/b` … `path`.
fn from_root(path: &Path) -> Vec<&Path> {
    let mut ancestors: Vec<&Path> = path.ancestors().collect();
    ancestors.reverse();
    ancestors
}

fn step(dir: &Path, entry: &Path) -> Result<Step, String> {
    let meta = |p: &Path| {
        std::fs::symlink_metadata(p).map_err(|e| format!("cannot examine {} ({e})", p.display()))
    };
    let d = meta(dir)?;
    Ok(Step {
        dir_owner: d.uid(),
        dir_group: d.gid(),
        dir_mode: d.mode(),
        entry_owner: meta(entry)?.uid(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: u32 = 120;
    const ALICE: u32 = 2001;
    const BOB: u32 = 2002;
    /// A project group; whether alice is in it must not matter.
    const LAB: u32 = 3000;
    const TRUSTED: [u32; 2] = [0, ADMIN];

    /// One directory on a path: its owner, group and mode, and the owner of the next entry.
    fn dir(owner: u32, group: u32, mode: u32, entry_owner: u32) -> Step {
        Step {
            dir_owner: owner,
            dir_group: group,
            dir_mode: mode,
            entry_owner,
        }
    }

    fn root_dir(entry_owner: u32) -> Step {
        dir(0, 0, 0o755, entry_owner)
    }

    fn anchor_at(path: &str, steps: &[Step]) -> Result<PathBuf, String> {
        anchor_of(Path::new(path), steps, &TRUSTED)
    }

    #[test]
    fn home_is_its_own_anchor_and_a_directory_inside_it_is_not() {
        let home = [root_dir(0), root_dir(ALICE)];
        assert_eq!(anchor_at("/home/alice", &home), Ok("/home/alice".into()));
        let proj = [
            root_dir(0),
            root_dir(ALICE),
            dir(ALICE, ALICE, 0o755, ALICE),
        ];
        assert_eq!(
            anchor_at("/home/alice/proj", &proj),
            Ok("/home/alice".into())
        );
    }

    #[test]
    fn a_directory_of_another_user_on_the_path_is_not_fixed() {
        // /srv/lab is bob's, /srv/lab/work alice's: bob can swap work while alice's job is
        // held, whatever alice's own rights in lab are.
        let steps = [root_dir(0), root_dir(BOB), dir(BOB, BOB, 0o755, ALICE)];
        assert_eq!(anchor_at("/srv/lab/work", &steps), Ok("/srv/lab".into()));
        // A read-only directory of bob's too: he can make it writable.
        let steps = [root_dir(0), root_dir(BOB), dir(BOB, BOB, 0o555, ALICE)];
        assert_eq!(anchor_at("/srv/lab/work", &steps), Ok("/srv/lab".into()));
    }

    #[test]
    fn group_writable_directories_are_not_fixed_whoever_is_in_the_group() {
        // Root's directory writable by a group: whether or not alice is in LAB, its members
        // can swap her entry.
        let steps = [root_dir(0), dir(0, LAB, 0o775, ALICE)];
        assert_eq!(anchor_at("/proj/alice", &steps), Ok("/proj".into()));
        // Group 0 is root's own: fixed.
        let steps = [root_dir(0), dir(0, 0, 0o775, ALICE)];
        assert_eq!(anchor_at("/proj/alice", &steps), Ok("/proj/alice".into()));
        // World-writable, whatever the group.
        assert!(!is_fixed(&dir(0, 0, 0o757, ALICE), &TRUSTED));
    }

    #[test]
    fn sticky_directories_fix_only_entries_of_root_and_the_admin() {
        let tmp = |entry_owner| dir(0, 0, 0o1777, entry_owner);
        // Another user's entry (bob's, or the job owner's own) can be renamed by its owner,
        // whatever fs.protected_symlinks says.
        assert!(!is_fixed(&tmp(BOB), &TRUSTED));
        assert!(!is_fixed(&tmp(ALICE), &TRUSTED));
        assert_eq!(
            anchor_at("/scratch/job", &[root_dir(0), tmp(ALICE)]),
            Ok("/scratch".into())
        );
        assert!(is_fixed(&tmp(0), &TRUSTED));
        assert!(is_fixed(&tmp(ADMIN), &TRUSTED));
        // Sticky but owned by bob: he can remove anything in it.
        assert!(!is_fixed(&dir(BOB, BOB, 0o1777, 0), &TRUSTED));
    }

    #[test]
    fn the_admin_counts_as_root() {
        // The execd spool: the admin's directories hold the jobs' entries.
        assert!(is_fixed(&dir(ADMIN, ADMIN, 0o755, ALICE), &TRUSTED));
        assert!(!is_fixed(&dir(ADMIN, ADMIN, 0o775, ALICE), &TRUSTED));
    }

    #[test]
    fn the_root_directory_is_never_an_anchor() {
        // /tmp/x in /tmp: the first unfixed entry lies directly below /.
        let e = anchor_at("/tmp/x", &[dir(0, 0, 0o1777, ALICE)]).unwrap_err();
        assert!(e.contains("below /tmp, which users can change"), "{e}");
        let e = anchor_at("/home/alice", &[dir(0, 0, 0o777, 0), root_dir(ALICE)]).unwrap_err();
        assert!(e.contains("below /home,"), "{e}");
        assert!(anchor_at("/", &[]).is_err());
    }

    #[test]
    fn cwd_user_mounts_and_home_follow_one_rule() {
        // cwd in the caller's home; a user mount below a root-owned prefix; home itself.
        let cwd = [
            root_dir(0),
            root_dir(ALICE),
            dir(ALICE, ALICE, 0o700, ALICE),
        ];
        assert_eq!(anchor_at("/home/alice/run", &cwd), Ok("/home/alice".into()));
        let mount = [root_dir(0), root_dir(0), root_dir(ALICE)];
        assert_eq!(
            anchor_at("/data/ref/alice", &mount),
            Ok("/data/ref/alice".into())
        );
        // A home in a group-writable /home brings all of /home.
        let home = [root_dir(0), dir(0, LAB, 0o775, ALICE)];
        assert_eq!(anchor_at("/home/alice", &home), Ok("/home".into()));
    }
}
