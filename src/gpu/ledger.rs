//! Who holds which GPU of this host: one file per device in use in `[gpus] lock_dir`
//! (bin/install: `root:docker` 2770, so no user can look inside, add or remove one, while
//! any starter may take over a holding that ended, whoever made it), naming
//! the job task, its spool host and its container. Every change happens under one `flock` of
//! the directory's `.lock`, so two starters racing for the last device never both get it.
//!
//! A holding ends when the job's run is over (its spool entry is gone) and its container,
//! if it had one, is gone too: the starter frees its devices once it removed its container;
//! a starter killed first leaves them to the watcher, which frees them once it removed the
//! orphan, and to `qdock gc`; and the next claim takes over any holding that has ended.

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Gpu;
use crate::config::{Config, GridEngineConfig};
use crate::engine::Engine;
use crate::job_proof::JobKey;

/// One holding: a job task of a cell, on a host's spool, with its container if it runs in
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub cell: String,
    pub job: u64,
    pub task: u64,
    pub host: String,
    pub container: Option<String>,
}

impl Holder {
    pub fn of(key: &JobKey, host: &str, container: Option<String>) -> Holder {
        Holder {
            cell: key.cell().to_string(),
            job: key.job_id(),
            task: key.task_id(),
            host: host.to_string(),
            container,
        }
    }

    fn line(&self) -> String {
        let container = self.container.as_deref().unwrap_or("-");
        format!(
            "{} {} {} {} {container}\n",
            self.cell, self.job, self.task, self.host
        )
    }

    fn parse(text: &str) -> Option<Holder> {
        let mut words = text.split_whitespace();
        let holder = Holder {
            cell: words.next()?.to_string(),
            job: words.next()?.parse().ok()?,
            task: words.next()?.parse().ok()?,
            host: words.next()?.to_string(),
            container: Some(words.next()?).filter(|c| *c != "-").map(String::from),
        };
        words.next().is_none().then_some(holder)
    }

    fn same_job(&self, other: &Holder) -> bool {
        (&self.cell, self.job, self.task, &self.host)
            == (&other.cell, other.job, other.task, &other.host)
    }

    /// Its run is over: the spool of its cell holds no entry of the job task on its host.
    fn run_over(&self, config: &GridEngineConfig) -> bool {
        let Some(spool) = config.spools().into_iter().find(|s| s.cell == self.cell) else {
            return true;
        };
        let entry = spool
            .execd_spool_dir
            .join(&self.host)
            .join("active_jobs")
            .join(format!("{}.{}", self.job, self.task.max(1)));
        matches!(fs::symlink_metadata(entry), Err(e) if e.kind() == ErrorKind::NotFound)
    }
}

/// Not enough free GPUs: what the job wants, and who holds the others.
#[derive(Debug)]
pub struct Shortage {
    pub free: usize,
    pub held: Vec<String>,
}

pub struct Ledger<'a> {
    dir: &'a Path,
    gridengine: &'a GridEngineConfig,
}

impl<'a> Ledger<'a> {
    pub fn new(dir: &'a Path, gridengine: &'a GridEngineConfig) -> Self {
        Ledger { dir, gridengine }
    }

    /// The containers named by holdings whose run is over: the caller asks the engine which
    /// of them are gone (a container never comes back, so the answer stays true).
    pub fn containers_of_ended_runs(&self) -> Vec<String> {
        self.holdings()
            .into_iter()
            .filter(|(_, h)| h.run_over(self.gridengine))
            .filter_map(|(_, h)| h.container)
            .collect()
    }

    /// Takes `want` of `gpus` for `holder`: the ones its job task holds already on this host
    /// (a second task of a parallel job shares the host's grant), else free ones, first in
    /// the host's order. `gone`: containers known to be removed.
    pub fn claim(
        &self,
        gpus: &[Gpu],
        want: usize,
        holder: &Holder,
        gone: &HashSet<String>,
    ) -> std::io::Result<Result<Vec<Gpu>, Shortage>> {
        let _lock = self.lock()?;
        let (mut ours, mut free, mut held) = (Vec::new(), Vec::new(), Vec::new());
        for gpu in gpus {
            match self.holder_of(gpu) {
                Some(h) if h.same_job(holder) => ours.push(gpu.clone()),
                Some(h) if !self.ended(&h, gone) => {
                    held.push(format!("{} by job {}.{}", gpu.id, h.job, h.task));
                }
                _ => free.push(gpu.clone()),
            }
        }
        if !ours.is_empty() {
            return Ok(Ok(ours));
        }
        if free.len() < want {
            return Ok(Err(Shortage {
                free: free.len(),
                held,
            }));
        }
        free.truncate(want);
        for gpu in &free {
            self.write(gpu, holder)?;
        }
        Ok(Ok(free))
    }

    /// Frees every device `container` holds: it is gone.
    pub fn release_container(&self, container: &str) -> std::io::Result<usize> {
        self.free(|h| h.container.as_deref() == Some(container))
    }

    /// Frees every holding that has ended (`qdock gc`); returns how many.
    pub fn sweep(&self, gone: &HashSet<String>) -> std::io::Result<usize> {
        self.free(|h| self.ended(h, gone))
    }

    /// Removes, under the lock, the holdings `which` picks; returns how many.
    fn free(&self, which: impl Fn(&Holder) -> bool) -> std::io::Result<usize> {
        let _lock = self.lock()?;
        let mut freed = 0;
        for (path, h) in self.holdings() {
            if which(&h) {
                remove(&path)?;
                freed += 1;
            }
        }
        Ok(freed)
    }

    fn ended(&self, h: &Holder, gone: &HashSet<String>) -> bool {
        h.run_over(self.gridengine) && h.container.as_ref().is_none_or(|c| gone.contains(c))
    }

    /// The ledger's lock: read-only is enough for flock(2), so whoever made the file, every
    /// starter of the group can take it.
    fn lock(&self) -> std::io::Result<nix::fcntl::Flock<fs::File>> {
        let path = self.dir.join(".lock");
        let flags = nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC;
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(&path)
        {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .mode(0o660)
                    .custom_flags(flags)
                    .open(&path)?;
                self.share(&file, 0o660)?;
                file
            }
            opened => opened?,
        };
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| std::io::Error::from(e))
    }

    /// A file of the ledger belongs to the directory's group (docker), whoever made it: every
    /// starter must read it, and one root's gc made would be root's group otherwise.
    fn share(&self, file: &fs::File, mode: u32) -> std::io::Result<()> {
        let gid = fs::metadata(self.dir)?.gid();
        nix::unistd::fchown(file.as_fd(), None, Some(nix::unistd::Gid::from_raw(gid)))?;
        file.set_permissions(fs::Permissions::from_mode(mode))
    }

    fn path(&self, gpu: &Gpu) -> PathBuf {
        self.dir.join(file_name(&gpu.id))
    }

    fn holder_of(&self, gpu: &Gpu) -> Option<Holder> {
        read(&self.path(gpu))
    }

    fn holdings(&self) -> Vec<(PathBuf, Holder)> {
        let Ok(entries) = fs::read_dir(self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n != ".lock"))
            .filter_map(|p| read(&p).map(|h| (p, h)))
            .collect()
    }

    /// Written whole under a temporary name, then renamed: a reader never sees half a line.
    fn write(&self, gpu: &Gpu, holder: &Holder) -> std::io::Result<()> {
        let path = self.path(gpu);
        let tmp = self.dir.join(format!(".{}.new", file_name(&gpu.id)));
        // One left by a starter killed while writing (maybe another user's) goes first.
        remove(&tmp)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)?;
        self.share(&file, 0o640)?;
        file.write_all(holder.line().as_bytes())?;
        fs::rename(&tmp, &path)
    }
}

/// Of `containers`, those the engine does not have.
pub async fn gone(engine: &Engine, containers: Vec<String>) -> HashSet<String> {
    let mut gone = HashSet::new();
    for name in containers {
        if let Ok(None) = engine.inspect(&name).await {
            gone.insert(name);
        }
    }
    gone
}

/// Frees the GPUs of every holding that has ended (`qdock gc`), said in syslog.
pub async fn sweep(config: &Config, engine: &Engine) -> std::io::Result<()> {
    let ledger = Ledger::new(&config.gpus.lock_dir, &config.gridengine);
    if !config.gpus.lock_dir.exists() {
        return Ok(());
    }
    let gone = gone(engine, ledger.containers_of_ended_runs()).await;
    let freed = ledger.sweep(&gone)?;
    if freed > 0 {
        crate::report::log(&format!("gc freed {freed} GPU(s) of ended jobs"));
    }
    Ok(())
}

/// Frees what `container`, now removed, held.
pub fn release(config: &Config, container: &str) {
    if !config.gpus.lock_dir.exists() {
        return;
    }
    let ledger = Ledger::new(&config.gpus.lock_dir, &config.gridengine);
    if let Err(e) = ledger.release_container(container) {
        crate::report::warn(&format!(
            "the GPUs of {container} stay recorded as held ({e}); `qdock gc` frees them"
        ));
    }
}

fn read(path: &Path) -> Option<Holder> {
    let text = fs::read_to_string(path).ok()?;
    Holder::parse(&text)
}

fn remove(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A device id as one file name: bytes other than letters, digits, `.`, `_` and `-` become
/// `%XX`, and so does a leading `.`: `/dev/nvidia0` and `nvidia.com/gpu=0` never collide,
/// leave the directory, or pass for the lock or a temporary file.
fn file_name(id: &str) -> String {
    id.bytes()
        .enumerate()
        .map(|(i, b)| {
            if b.is_ascii_alphanumeric() || (b"._-".contains(&b) && (i, b) != (0, b'.')) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holding_reads_back_as_written() {
        let h = Holder {
            cell: "default".into(),
            job: 12,
            task: 3,
            host: "vm".into(),
            container: Some("qdock-default-12-3".into()),
        };
        assert_eq!(Holder::parse(&h.line()), Some(h.clone()));
        let native = Holder {
            container: None,
            ..h
        };
        assert_eq!(Holder::parse(&native.line()), Some(native));
        assert_eq!(Holder::parse("default 12 3 vm - extra"), None);
    }

    #[test]
    fn device_ids_make_distinct_plain_file_names() {
        assert_eq!(file_name("/dev/nvidia0"), "%2Fdev%2Fnvidia0");
        assert_eq!(file_name("nvidia.com/gpu=0"), "nvidia.com%2Fgpu%3D0");
        assert_eq!(file_name(".."), "%2E.");
        assert_eq!(file_name(".lock"), "%2Elock");
    }
}
