//! `qdock gc` for the jobs' pipes' directories: removes the directory of a starter that is
//! gone (killed between making its pipes and starting its container), never one whose
//! starter lives, and nothing outside [`DIR`]. What a name means and what may be removed is
//! decided in `stdio_dir` (pure); this is the file system work.
//!
//! gc runs as root among entries that starters made as their callers, so every step goes
//! through a descriptor, never a path that could be swapped: the base is opened once without
//! following links and checked on that descriptor; an entry is opened relative to it with
//! `O_NOFOLLOW | O_DIRECTORY` and checked on its own descriptor (a directory on the base's
//! file system, mode 700); its entries are examined without following links (only the two
//! FIFOs may be there) and unlinked relative to it; then it is removed relative to the
//! base. A link, a file, a mount, a stranger inside, or a name no starter makes is left
//! alone and said.
//!
//! The watcher (`gc --watch`) learns of each directory from inotify as the starter makes it,
//! waits for that starter's end through a pidfd, and removes the directory if it is still
//! there then. The starter removes it itself once its container has started: that deletion
//! ends the wait, so a running job costs the watcher nothing.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::pin::Pin;

use futures_util::StreamExt;
use futures_util::future::{AbortHandle, Abortable, Aborted};
use futures_util::stream::FuturesUnordered;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::UnlinkatFlags;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::process::ProcessId;
use crate::report;
use crate::stdio_dir::{self, DIR, Found, Named, Verdict};

/// The base directory, open.
pub struct Base {
    fd: OwnedFd,
    dev: u64,
}

/// Why an entry stays.
#[derive(Debug, PartialEq, Eq)]
pub enum Left {
    /// It is not what a starter makes: not qdock's to remove.
    Foreign(String),
    /// It is, but the system refused.
    Failed(String),
}

impl std::fmt::Display for Left {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Left::Foreign(why) | Left::Failed(why) => f.write_str(why),
        }
    }
}

fn found(stat: &FileStat) -> Found {
    Found::of_stat(stat.st_mode, stat.st_uid, stat.st_dev)
}

impl Base {
    /// Opens [`DIR`] and checks it as the starter does; None when it does not exist (qdock
    /// is not installed here, so no starter made anything).
    pub fn open() -> Result<Option<Base>, String> {
        let path = Path::new(DIR);
        match Base::open_at(path) {
            Ok((base, meta)) => {
                stdio_dir::check_base(&meta).map_err(|p| format!("{DIR} {p}"))?;
                crate::trust::check_ancestors(path, &[0])?;
                Ok(Some(base))
            }
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(format!("cannot open {DIR} ({e})")),
        }
    }

    /// Opens `path` as the base, unchecked (the tests' own directories are not root's).
    fn open_at(path: &Path) -> nix::Result<(Base, Found)> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let meta = found(&nix::sys::stat::fstat(&fd)?);
        Ok((Base { fd, dev: meta.dev }, meta))
    }

    /// The names in the base, `.` and `..` aside.
    pub fn names(&self) -> nix::Result<Vec<OsString>> {
        list(&self.fd)
    }

    /// Removes directory `name` with the pipes in it. Ok(false): it was gone already (the
    /// starter or another gc removed it first).
    pub fn remove(&self, name: &OsStr) -> Result<bool, Left> {
        let failed = |what: &str, e: Errno| Left::Failed(format!("cannot {what} ({e})"));
        // One name in the base, never a path that leads out of it.
        if name.as_bytes().contains(&b'/') || name == ".." || name == "." {
            return Err(Left::Foreign("is no name of an entry".into()));
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dir = match nix::fcntl::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(dir) => dir,
            Err(Errno::ENOENT) => return Ok(false),
            // A link (ELOOP) or anything but a directory (ENOTDIR): never followed.
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(Left::Foreign("is not a directory".into()));
            }
            Err(e) => return Err(failed("open it", e)),
        };
        let meta = found(&nix::sys::stat::fstat(&dir).map_err(|e| failed("examine it", e))?);
        stdio_dir::check_dir(&meta, self.dev).map_err(Left::Foreign)?;
        let mut pipes = Vec::new();
        for entry in list(&dir).map_err(|e| failed("list it", e))? {
            let stat = match nix::sys::stat::fstatat(
                &dir,
                entry.as_os_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(stat) => stat,
                // Another gc got there first.
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(failed("examine what it holds", e)),
            };
            stdio_dir::check_entry(entry.as_bytes(), &found(&stat), &meta)
                .map_err(Left::Foreign)?;
            pipes.push(entry);
        }
        for pipe in pipes {
            match nix::unistd::unlinkat(&dir, pipe.as_os_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(failed("remove its pipes", e)),
            }
        }
        match nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(failed("remove it", e)),
        }
    }
}

/// The names in directory `dir`, read through a descriptor of its own (so the listing starts
/// at the beginning each time).
fn list(dir: &OwnedFd) -> nix::Result<Vec<OsString>> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut listing = nix::dir::Dir::openat(dir, ".", flags, Mode::empty())?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name));
        }
    }
    Ok(names)
}

/// Why the directory's starter is not coming back.
fn gone(starter: ProcessId) -> String {
    format!("its starter (pid {}) is gone", starter.pid)
}

/// Says that gc leaves `name` alone, and why (syslog and stderr).
fn leave(name: &OsStr, why: &str) {
    report::warn(&format!(
        "gc leaves {DIR}/{} alone: {why}",
        name.to_string_lossy()
    ));
}

/// Removes `name` of `named`'s starter, gone, and reports it (syslog and stdout) as gc does
/// a container. Returns whether it was there to remove.
fn remove_orphan(base: &Base, name: &OsStr, named: &Named) -> Result<bool, Left> {
    let removed = base.remove(name)?;
    if removed {
        let what = format!(
            "pipes directory {}: {}",
            name.to_string_lossy(),
            gone(named.starter)
        );
        report::log(&format!("gc removed {what}"));
        println!("removed {what}");
    }
    Ok(removed)
}

/// The one-shot sweep: removes every directory in [`DIR`] whose starter is gone (of `cell`,
/// when given). Returns the names removed (or that would be, with `dry_run`) and the
/// failures; what is no starter's is left alone and said.
pub fn sweep(cell: Option<&str>, dry_run: bool) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut failures) = (Vec::new(), Vec::new());
    let base = match Base::open() {
        Ok(Some(base)) => base,
        Ok(None) => return (removed, failures),
        Err(e) => return (removed, vec![e]),
    };
    let names = match base.names() {
        Ok(names) => names,
        Err(e) => return (removed, vec![format!("cannot list {DIR} ({e})")]),
    };
    for name in names {
        let shown = name.to_string_lossy().into_owned();
        let verdict = match name.to_str() {
            Some(text) => stdio_dir::judge(text, cell, ProcessId::is_alive),
            None => Verdict::Unknown,
        };
        let named = match verdict {
            Verdict::OtherCell | Verdict::Live(_) => continue,
            Verdict::Unknown => {
                leave(&name, "no starter makes such a name");
                continue;
            }
            Verdict::Orphan(named) => named,
        };
        if dry_run {
            println!(
                "would remove pipes directory {shown}: {}",
                gone(named.starter)
            );
            removed.push(shown);
            continue;
        }
        match remove_orphan(&base, &name, &named) {
            Ok(true) => removed.push(shown),
            Ok(false) => {}
            Err(Left::Foreign(why)) => leave(&name, &why),
            Err(Left::Failed(why)) => failures.push(format!("{DIR}/{shown}: {why}")),
        }
    }
    (removed, failures)
}

/// An inotify instance the runtime can wait on.
struct Notify(Inotify);

impl AsRawFd for Notify {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

type Wait = Pin<Box<dyn Future<Output = (OsString, Result<(), Aborted>)>>>;

/// The watcher's part: follows [`DIR`] for ever (never returns). When it cannot, it says
/// so once and leaves the pipes' directories to the one-shot `qdock gc`.
pub async fn watch(cell: Option<&str>) {
    if let Err(e) = follow(cell).await {
        report::warn(&format!(
            "gc --watch: stops watching the pipes' directories in {DIR}: {e}"
        ));
    }
    std::future::pending::<()>().await;
}

async fn follow(cell: Option<&str>) -> Result<(), String> {
    let base = Base::open()?.ok_or_else(|| format!("{DIR} does not exist"))?;
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| format!("inotify_init ({e})"))?;
    // Before the listing: a directory made meanwhile is then both listed and announced,
    // never neither.
    let events = AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW;
    inotify
        .add_watch(DIR, events)
        .map_err(|e| format!("inotify_add_watch ({e})"))?;
    // SAFETY: Notify owns the inotify descriptor, which stays open and unchanged for the
    // AsyncFd's life.
    let notify = unsafe { AsyncFd::register_with_interest(Notify(inotify), Interest::READABLE) }
        .map_err(|e| format!("cannot wait on inotify ({e})"))?;
    let mut watched = Watched {
        base: &base,
        cell,
        waits: HashMap::new(),
        said: HashSet::new(),
        pending: FuturesUnordered::new(),
    };
    watched.list()?;
    report::info(&format!(
        "gc --watch: watching the pipes' directories in {DIR}, {} at the start",
        watched.waits.len()
    ));
    loop {
        tokio::select! {
            ready = notify.readable() => {
                let mut guard = ready.map_err(|e| format!("inotify ({e})"))?;
                let events = match guard.try_io(|n| n.get_ref().0.read_events().map_err(Into::into)) {
                    Ok(events) => events.map_err(|e| format!("inotify ({e})"))?,
                    Err(_would_block) => continue,
                };
                for event in events {
                    watched.event(event.mask, event.name)?;
                }
            }
            Some((name, ended)) = watched.pending.next() => watched.ended(name, ended),
        }
    }
}

/// The directories whose starters are waited for, by name.
struct Watched<'a> {
    base: &'a Base,
    cell: Option<&'a str>,
    /// Cancels the wait for a directory that went (its starter removed it).
    waits: HashMap<OsString, AbortHandle>,
    /// Names said to be left alone, so that each is said once.
    said: HashSet<OsString>,
    pending: FuturesUnordered<Wait>,
}

impl Watched<'_> {
    /// Considers every name in the base (at the start, and after the kernel dropped events).
    fn list(&mut self) -> Result<(), String> {
        let names = self
            .base
            .names()
            .map_err(|e| format!("cannot list {DIR} ({e})"))?;
        for name in names {
            self.add(name, true);
        }
        Ok(())
    }

    fn event(&mut self, mask: AddWatchFlags, name: Option<OsString>) -> Result<(), String> {
        if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            // Events were lost: the listing has every name that exists.
            return self.list();
        }
        if mask.intersects(AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_UNMOUNT) {
            return Err(format!("{DIR} went away"));
        }
        let Some(name) = name else { return Ok(()) };
        if mask.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO) {
            self.add(name, false);
        } else if mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM)
            && let Some(wait) = self.waits.remove(&name)
        {
            wait.abort();
        }
        Ok(())
    }

    /// Waits for the starter of `name`, unless it is another cell's, waited for already, or
    /// no starter's. A name no starter makes is said once when `listed`: one that was just
    /// made (by an older starter, during an upgrade) is most likely about to go again, and
    /// the one-shot `qdock gc` says it should it stay.
    fn add(&mut self, name: OsString, listed: bool) {
        if self.waits.contains_key(&name) || self.said.contains(&name) {
            return;
        }
        let verdict = match name.to_str() {
            Some(text) => stdio_dir::judge(text, self.cell, |_| true),
            None => Verdict::Unknown,
        };
        let starter = match verdict {
            Verdict::OtherCell => return,
            Verdict::Unknown => {
                if listed {
                    leave(&name, "no starter makes such a name");
                    self.said.insert(name);
                }
                return;
            }
            Verdict::Live(named) | Verdict::Orphan(named) => named.starter,
        };
        let (handle, registration) = AbortHandle::new_pair();
        self.waits.insert(name.clone(), handle);
        let wait = Abortable::new(async move { starter.ended().await }, registration);
        self.pending
            .push(Box::pin(async move { (name, wait.await) }));
    }

    /// The starter of `name` has ended (or the directory went first): remove what is left.
    fn ended(&mut self, name: OsString, ended: Result<(), Aborted>) {
        self.waits.remove(&name);
        if ended.is_err() {
            return;
        }
        let Some(Verdict::Orphan(named)) = name
            .to_str()
            .map(|text| stdio_dir::judge(text, self.cell, ProcessId::is_alive))
        else {
            return;
        };
        if let Err(why) = remove_orphan(self.base, &name, &named) {
            leave(&name, &why.to_string());
            self.said.insert(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::PathBuf;

    /// A base of the test's own (not root's, so opened unchecked), removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("qdock-stdio-gc-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("base")).unwrap();
            Scratch(dir)
        }

        fn base(&self) -> Base {
            Base::open_at(&self.0.join("base")).unwrap().0
        }

        /// A directory as a starter makes it, with its FIFOs.
        fn starters(&self, name: &str) -> PathBuf {
            let dir = self.0.join("base").join(name);
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            for pipe in stdio_dir::PIPES {
                nix::unistd::mkfifo(&dir.join(pipe), Mode::from_bits_truncate(0o600)).unwrap();
            }
            dir
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_starters_directory_goes_with_its_pipes() {
        let scratch = Scratch::new("plain");
        let dir = scratch.starters("d");
        let base = scratch.base();
        assert_eq!(base.names().unwrap(), vec![OsString::from("d")]);
        assert_eq!(base.remove(OsStr::new("d")), Ok(true));
        assert!(!dir.exists());
        assert_eq!(base.remove(OsStr::new("d")), Ok(false), "gone already");
    }

    #[test]
    fn nothing_outside_the_base_is_reached_by_name() {
        let scratch = Scratch::new("path");
        let outside = scratch.starters("../outside");
        let base = scratch.base();
        for name in ["../outside", "..", ".", "/tmp"] {
            assert!(
                matches!(base.remove(OsStr::new(name)), Err(Left::Foreign(_))),
                "{name}"
            );
        }
        assert!(outside.join("stdout").exists());
    }

    #[test]
    fn a_link_is_never_followed() {
        let scratch = Scratch::new("link");
        // Someone else's directory, looking like a starter's, outside the base.
        let outside = scratch.starters("../outside");
        symlink(&outside, scratch.0.join("base/d")).unwrap();
        let base = scratch.base();
        assert!(matches!(
            base.remove(OsStr::new("d")),
            Err(Left::Foreign(why)) if why.contains("not a directory")
        ));
        assert!(outside.join("stdout").exists() && outside.join("stderr").exists());
        // A link where a pipe should be is not a pipe: nothing is unlinked.
        let dir = scratch.starters("e");
        std::fs::remove_file(dir.join("stdout")).unwrap();
        symlink(outside.join("stdout"), dir.join("stdout")).unwrap();
        assert!(matches!(
            base.remove(OsStr::new("e")),
            Err(Left::Foreign(why)) if why.contains("not a FIFO")
        ));
        assert!(dir.join("stderr").exists() && outside.join("stdout").exists());
    }

    #[test]
    fn anything_a_starter_does_not_make_stays() {
        let scratch = Scratch::new("foreign");
        let file = scratch.0.join("base/f");
        std::fs::write(&file, "data").unwrap();
        let dir = scratch.starters("d");
        std::fs::write(dir.join("keep"), "data").unwrap();
        let open = scratch.starters("o");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let base = scratch.base();
        for (name, why) in [
            ("f", "not a directory"),
            ("d", "\"keep\""),
            ("o", "mode 755"),
        ] {
            match base.remove(OsStr::new(name)) {
                Err(Left::Foreign(problem)) => assert!(problem.contains(why), "{name}: {problem}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(file.exists() && dir.join("keep").exists() && dir.join("stdout").exists());
        assert!(open.join("stdout").exists());
    }
}
