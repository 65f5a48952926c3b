//! What this process may trust. Installed setgid docker, the binaries hold the keys to the
//! engine (docker group = root), so while privileged nothing from the caller's environment or
//! command line may choose the config, the socket or the engine.

use std::future::Future;

use nix::unistd::{Gid, Uid, getegid, geteuid, getgid, getgroups, getresgid, getuid, setegid};

use crate::error::{Error, Result};

/// True when the kernel marked this exec as secure (setuid/setgid/capabilities): then the
/// caller is not the one we work for, and their environment is hostile input.
pub fn is_secure() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector the kernel passed at exec. (Neither std
    // nor nix wraps it.)
    unsafe { nix::libc::getauxval(nix::libc::AT_SECURE) != 0 }
}

/// True when mistakes in trusted files would hand out more than the caller already has.
pub fn is_elevated() -> bool {
    is_secure() || geteuid().is_root()
}

/// The caller's real identity: the container runs as this, never as anything asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, including Grid Engine's per-job group from `gid_range`.
    pub groups: Vec<u32>,
    pub name: String,
}

impl Identity {
    pub fn of_caller() -> Self {
        let uid = getuid();
        let gid = getgid();
        // The setgid group is the key to the socket, not one of the user's groups.
        let key = (getegid() != gid).then(getegid);
        let groups = getgroups()
            .unwrap_or_default()
            .into_iter()
            .filter(|g| Some(*g) != key && *g != gid)
            .map(Gid::as_raw)
            .collect();
        Identity {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            groups,
            name: user_name(uid),
        }
    }
}

fn user_name(uid: Uid) -> String {
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// Gives up the setgid group for good, before running anything of the user's: a native job
/// exec'ed with the docker group kept would own the engine.
pub fn drop_privilege() -> std::io::Result<()> {
    let gid = getgid();
    nix::unistd::setresgid(gid, gid, gid).map_err(std::io::Error::from)
}

/// Runs `f` with the filesystem rights of the caller alone: every path the caller names is
/// opened, resolved and examined as they could natively, never with the docker group's rights
/// (which would open directories and files shared with that group). The engine socket needs
/// the group again afterwards, so it is restored.
pub fn as_caller<T>(f: impl FnOnce() -> T) -> T {
    nix::unistd::setfsgid(getgid());
    let result = f();
    nix::unistd::setfsgid(getegid());
    result
}

/// Puts the setgid group down for now: from here on the process acts with the caller's own
/// rights (files, directories, sockets), and only [`with_key`] takes the group up again. The
/// saved set-group-ID keeps it (setegid changes the effective group alone).
pub fn lower() -> Result<()> {
    setegid(getgid()).map_err(|e| Error::io("put down the setgid group", e.into()))
}

/// Runs `work` holding the setgid group (the saved set-group-ID), then puts it down again:
/// for the moment something must reach what only the group may (the engine socket, the usage
/// record). Not setgid, the saved group is the caller's own, and this changes nothing.
pub async fn with_key<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    let _key = Key::take()?;
    // A caller's timeout may drop `work` half-way: the key goes down with it all the same.
    work.await
}

/// [`with_key`] for work that does not wait.
pub fn with_key_now<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    let _key = Key::take()?;
    work()
}

/// The setgid group, held up while this lives.
struct Key(());

impl Key {
    fn take() -> Result<Key> {
        let saved = getresgid()
            .map_err(|e| Error::io("read the saved group", e.into()))?
            .saved;
        setegid(saved).map_err(|e| Error::io("take up the setgid group", e.into()))?;
        Ok(Key(()))
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // Going on with the group the caller must not have is worse than any ending.
        if lower().is_err() {
            std::process::abort();
        }
    }
}
