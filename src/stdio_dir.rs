//! The directories of the jobs' output pipes (see `methods/starter/stdio.rs`): how a starter
//! names its own, and what `qdock gc` may conclude from a name and from what it finds. Pure;
//! the removal itself is `methods::stdio_gc`.
//!
//! Why names carry the starter: a starter SIGKILLed between making its directory and
//! starting its container (execd does that on `qdel` or `h_rt` while the starter still
//! prepares) cannot remove the directory, and nothing else knows whose it is. So the name
//! says it: `<container>.starter-<pid>-<start>.XXXXXX`, the starter's pid and start time
//! (field 22 of /proc/PID/stat, as the container's labels record them), then mkdtemp's
//! random part. gc removes a directory only once that very process is gone: a live starter
//! keeps its directory however long it prepares, and a reused pid has another start time.

use std::str::FromStr;

use crate::process::ProcessId;

/// Where the starters make their pipes' directories (`bin/install` creates it, `root:docker`
/// 1770).
pub const DIR: &str = "/var/lib/qdock/stdio";

/// What a starter makes in its directory: these FIFOs (the job's output, and the go-ahead it
/// waits for), and the login shell's profile (a plain file), and nothing else.
pub const PIPES: [&str; 3] = ["stdout", "stderr", "go"];
pub const PROFILE: &str = "profile";

/// The mkdtemp(3) template for the directory of `starter`'s job in container `container`.
pub fn template(container: &str, starter: ProcessId) -> String {
    format!(
        "{container}.starter-{}-{}.XXXXXX",
        starter.pid, starter.start
    )
}

/// A directory name as a starter makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named<'a> {
    pub container: &'a str,
    pub starter: ProcessId,
}

/// Reads a name made from [`template`]; None for anything else (an older qdock's
/// `<container>.XXXXXX` included: it names no starter, so nobody can tell when it is free).
/// Read from the right, since a cell may hold dots and dashes.
pub fn parse(name: &str) -> Option<Named<'_>> {
    let (rest, random) = name.rsplit_once('.')?;
    // mkdtemp(3) replaces the six X by letters and digits.
    if random.len() != 6 || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (container, starter) = rest.rsplit_once('.')?;
    let (pid, start) = starter.strip_prefix("starter-")?.split_once('-')?;
    let starter = ProcessId {
        pid: number(pid)?,
        start: number(start)?,
    };
    (starter.pid > 0 && cell_of(container).is_some()).then_some(Named { container, starter })
}

/// A plain decimal number: no sign, no spaces, no empty string.
fn number<T: FromStr>(text: &str) -> Option<T> {
    let plain = !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit());
    plain.then(|| text.parse().ok()).flatten()
}

/// The cell of container name `qdock-<cell>-<job>-<task>`.
pub fn cell_of(container: &str) -> Option<&str> {
    let rest = container.strip_prefix("qdock-")?;
    let (rest, task) = rest.rsplit_once('-')?;
    let (cell, job) = rest.rsplit_once('-')?;
    let known = !cell.is_empty() && number::<u64>(job).is_some() && number::<u64>(task).is_some();
    known.then_some(cell)
}

/// What gc makes of one name in [`DIR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Another cell's, and gc was asked for one cell only: not this gc's business.
    OtherCell,
    /// No starter made this name: left alone (and said), as nobody can tell whether it is
    /// still in use.
    Unknown,
    /// Its starter lives: the directory is in use, however long ago it was made.
    Live(Named<'a>),
    /// Its starter is gone: nothing will ever use or remove the directory.
    Orphan(Named<'a>),
}

/// Judges `name` for a gc limited to `cell` (None: every cell); `alive` tells whether a
/// process still is the one recorded (see [`ProcessId::is_alive`]).
pub fn judge<'a>(
    name: &'a str,
    cell: Option<&str>,
    alive: impl FnOnce(&ProcessId) -> bool,
) -> Verdict<'a> {
    let Some(named) = parse(name) else {
        return Verdict::Unknown;
    };
    if cell.is_some_and(|cell| cell_of(named.container) != Some(cell)) {
        return Verdict::OtherCell;
    }
    if alive(&named.starter) {
        Verdict::Live(named)
    } else {
        Verdict::Orphan(named)
    }
}

/// What gc found at a name in [`DIR`] (lstat, never followed), or in such a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub kind: Kind,
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// The device: a different one is another file system mounted there.
    pub dev: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Directory,
    Fifo,
    File,
    Other,
}

impl Found {
    /// From stat(2)'s `st_mode`, `st_uid` and `st_dev`.
    pub fn of_stat(mode: u32, uid: u32, dev: u64) -> Found {
        let kind = match mode & nix::libc::S_IFMT {
            nix::libc::S_IFDIR => Kind::Directory,
            nix::libc::S_IFIFO => Kind::Fifo,
            nix::libc::S_IFREG => Kind::File,
            _ => Kind::Other,
        };
        Found {
            kind,
            uid,
            mode: mode & 0o7777,
            dev,
        }
    }
}

/// The base, [`DIR`]: root's and closed to others, since a user who could look up names
/// below it could swap a FIFO for a link before the engine mounts it (as root).
pub fn check_base(base: &Found) -> Result<(), String> {
    if base.kind != Kind::Directory {
        return Err("is not a directory".into());
    }
    if base.uid != 0 || base.mode & 0o007 != 0 {
        return Err(format!(
            "must be owned by root and closed to others (it is uid {}, mode {:o})",
            base.uid,
            base.mode & 0o7777
        ));
    }
    Ok(())
}

/// The directory itself, as a starter leaves it: a real directory (the caller opened it
/// without following links), on the base's own file system, mode 0700 (mkdtemp's, and the
/// starter sets it again). Anything else was not made by a starter and is left alone.
pub fn check_dir(dir: &Found, base_dev: u64) -> Result<(), String> {
    if dir.kind != Kind::Directory {
        return Err("is not a directory".into());
    }
    if dir.dev != base_dev {
        return Err("is another file system mounted there".into());
    }
    if dir.mode & 0o077 != 0 {
        return Err(format!(
            "has mode {:o}, not a starter's 700",
            dir.mode & 0o7777
        ));
    }
    Ok(())
}

/// One entry of such a directory: one of [`PIPES`], a FIFO of the directory's owner (the
/// starter makes both as its caller) on the same file system.
pub fn check_entry(name: &[u8], entry: &Found, dir: &Found) -> Result<(), String> {
    let shown = String::from_utf8_lossy(name);
    let (kind, called) = match name {
        n if n == PROFILE.as_bytes() => (Kind::File, "a plain file"),
        n if PIPES.iter().any(|p| p.as_bytes() == n) => (Kind::Fifo, "a FIFO"),
        _ => return Err(format!("holds {shown:?}, which no starter makes")),
    };
    if entry.kind != kind {
        return Err(format!("holds {shown} that is not {called}"));
    }
    if entry.dev != dir.dev {
        return Err(format!("holds {shown} from another file system"));
    }
    if entry.uid != dir.uid {
        return Err(format!(
            "holds {shown} of uid {}, not the directory's owner (uid {})",
            entry.uid, dir.uid
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STARTER: ProcessId = ProcessId {
        pid: 4242,
        start: 987_654_321,
    };

    /// What mkdtemp makes of a template.
    fn made(template: &str) -> String {
        template.replace("XXXXXX", "aZ09bY")
    }

    #[test]
    fn a_name_made_from_the_template_reads_back() {
        let name = made(&template("qdock-default-12-0", STARTER));
        assert_eq!(name, "qdock-default-12-0.starter-4242-987654321.aZ09bY");
        assert_eq!(
            parse(&name),
            Some(Named {
                container: "qdock-default-12-0",
                starter: STARTER
            })
        );
    }

    #[test]
    fn cells_with_dots_and_dashes_read_from_the_right() {
        let name = made(&template("qdock-a.1-2.b-7-3", STARTER));
        let named = parse(&name).expect("parses");
        assert_eq!(named.container, "qdock-a.1-2.b-7-3");
        assert_eq!(cell_of(named.container), Some("a.1-2.b"));
        assert_eq!(named.starter, STARTER);
    }

    #[test]
    fn names_no_starter_made_are_unknown() {
        for name in [
            "",
            ".",
            "..",
            // An older qdock's: no starter in it.
            "qdock-default-12-0.aZ09bY",
            "qdock-default-12-0.starter-4242-1.aZ09b",
            "qdock-default-12-0.starter-4242-1.aZ09bYY",
            "qdock-default-12-0.starter-4242-1.aZ-9bY",
            "qdock-default-12-0.starter-4242-1.XXXXXX.tmp",
            "qdock-default-12-0.starter-0-1.aZ09bY",
            "qdock-default-12-0.starter--1-1.aZ09bY",
            "qdock-default-12-0.starter-+1-1.aZ09bY",
            "qdock-default-12-0.starter- 1-1.aZ09bY",
            "qdock-default-12-0.starter-1-.aZ09bY",
            "qdock-default-12-0.starter-1-x.aZ09bY",
            "qdock-default-12-0.starter-1.aZ09bY",
            "qdock-default-12-0.starter-99999999999-1.aZ09bY",
            "qdock-default-12-0.starter-1-99999999999999999999999.aZ09bY",
            "qdock-default-12-0.pid-1-1.aZ09bY",
            "other-default-12-0.starter-1-1.aZ09bY",
            "qdock-default-x-0.starter-1-1.aZ09bY",
            "qdock--12-0.starter-1-1.aZ09bY",
            "qdock-default-12.starter-1-1.aZ09bY",
            "starter-1-1.aZ09bY",
        ] {
            assert_eq!(parse(name), None, "{name:?}");
            assert_eq!(judge(name, None, |_| false), Verdict::Unknown, "{name:?}");
        }
    }

    #[test]
    fn only_a_gone_starters_directory_is_an_orphan() {
        let name = made(&template("qdock-default-12-0", STARTER));
        let named = parse(&name).unwrap();
        let mut asked = None;
        let alive = judge(&name, None, |p| {
            asked = Some(*p);
            true
        });
        assert_eq!(alive, Verdict::Live(named));
        assert_eq!(
            asked,
            Some(STARTER),
            "the recorded starter is the one asked about"
        );
        assert_eq!(judge(&name, None, |_| false), Verdict::Orphan(named));
    }

    #[test]
    fn a_gc_for_one_cell_leaves_the_others_alone() {
        let name = made(&template("qdock-default-12-0", STARTER));
        assert_eq!(judge(&name, Some("other"), |_| false), Verdict::OtherCell);
        // A cell whose name ends like another's is still another cell.
        assert_eq!(judge(&name, Some("fault"), |_| false), Verdict::OtherCell);
        assert!(matches!(
            judge(&name, Some("default"), |_| false),
            Verdict::Orphan(_)
        ));
    }

    fn found(kind: Kind, uid: u32, mode: u32, dev: u64) -> Found {
        Found {
            kind,
            uid,
            mode,
            dev,
        }
    }

    #[test]
    fn the_base_is_roots_and_closed_to_others() {
        assert_eq!(check_base(&found(Kind::Directory, 0, 0o1770, 5)), Ok(()));
        for base in [
            found(Kind::Other, 0, 0o1770, 5),
            found(Kind::Directory, 1000, 0o1770, 5),
            found(Kind::Directory, 0, 0o1775, 5),
            found(Kind::Directory, 0, 0o1773, 5),
        ] {
            assert!(check_base(&base).is_err(), "{base:?}");
        }
    }

    #[test]
    fn only_a_starters_own_directory_passes() {
        assert_eq!(
            check_dir(&found(Kind::Directory, 1000, 0o700, 5), 5),
            Ok(())
        );
        for (dir, why) in [
            (found(Kind::Fifo, 1000, 0o700, 5), "not a directory"),
            (found(Kind::Other, 1000, 0o700, 5), "not a directory"),
            (found(Kind::Directory, 1000, 0o700, 6), "file system"),
            (found(Kind::Directory, 1000, 0o750, 5), "mode 750"),
            (found(Kind::Directory, 1000, 0o1777, 5), "mode 1777"),
        ] {
            let problem = check_dir(&dir, 5).expect_err("refused");
            assert!(problem.contains(why), "{dir:?}: {problem}");
        }
    }

    #[test]
    fn only_the_starters_pipes_may_be_inside() {
        let dir = found(Kind::Directory, 1000, 0o700, 5);
        let pipe = found(Kind::Fifo, 1000, 0o600, 5);
        assert_eq!(check_entry(b"stdout", &pipe, &dir), Ok(()));
        assert_eq!(check_entry(b"stderr", &pipe, &dir), Ok(()));
        for (name, entry, why) in [
            (&b"secret"[..], pipe, "no starter makes"),
            (b"stdout2", pipe, "no starter makes"),
            (b"stdout", found(Kind::Other, 1000, 0o600, 5), "not a FIFO"),
            (
                b"stdout",
                found(Kind::Directory, 1000, 0o700, 5),
                "not a FIFO",
            ),
            (b"stderr", found(Kind::Fifo, 0, 0o600, 5), "uid 0"),
            (b"stderr", found(Kind::Fifo, 1000, 0o600, 6), "file system"),
        ] {
            let problem = check_entry(name, &entry, &dir).expect_err("refused");
            assert!(problem.contains(why), "{entry:?}: {problem}");
        }
    }
}
