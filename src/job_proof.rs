//! Is the caller really the Grid Engine job it names? `JOB_ID` and the method's arguments are
//! the caller's word. What no user can forge: the execd gives every process of a job the
//! job's additional group id (`gid_range`), which an ordinary process cannot add to itself,
//! and records it in its spool, `<execd_spool_dir>/<host>/active_jobs/<job>.<task>/addgrpid`,
//! owned by root or the Grid Engine admin user. The same directory's `config` tells the job's
//! owner and its per-job TMPDIR, which qdock may then mount.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::config::GridEngineConfig;
use crate::error::{Error, Result};
use crate::job::{JobKey, Kind};
use crate::privilege::Identity;

/// What the execd's spool says about a proven job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledJob {
    /// The job's additional group id, held by the caller.
    pub group: u32,
    pub owner: String,
    /// The per-job TMPDIR the execd created.
    pub tmpdir: Option<PathBuf>,
    pub kind: Kind,
    /// The queue the job runs in: `QUEUE` in the environment is the caller's to set.
    pub queue: Option<String>,
    /// Submitted with qrsh (not a batch job that a `qrsh -inherit` task belongs to).
    pub qrsh_job: bool,
    /// The slots granted on this host (`host_slots`): a parallel job's share of this host,
    /// which `NSLOTS` (all hosts together, and the caller's to set) is not.
    pub host_slots: Option<u32>,
    /// A parallel job's host file, the execd's own (checked as every spool file is).
    pub pe_hostfile: Option<PathBuf>,
    /// The caller is this task of the job (the spool entry's directory name, `1.vm`), which
    /// the job started with `qrsh -inherit`: the execd gives each such task a group of its
    /// own and records it in a directory of its own below the job's.
    pub pe_task: Option<String>,
}

impl Proof {
    /// The job's queue: the spool's word when there is one, else the environment's.
    pub fn queue(&self, from_env: &str) -> String {
        self.spooled()
            .and_then(|job| job.queue.clone())
            .unwrap_or_else(|| from_env.to_string())
    }
}

/// The outcome of the check the admin asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Spooled(SpooledJob),
    /// Root (Grid Engine runs no job as root: `min_uid`), or
    /// `gridengine.unsafe_skip_job_proof`: nothing was checked.
    Skipped,
}

impl Proof {
    pub fn spooled(&self) -> Option<&SpooledJob> {
        match self {
            Proof::Spooled(job) => Some(job),
            Proof::Skipped => None,
        }
    }
}

/// Proves that `who` is job `key` on this host, or says what is missing.
pub fn prove(key: &JobKey, config: &GridEngineConfig, who: &Identity) -> Result<Proof> {
    if who.uid == 0 {
        return Ok(Proof::Skipped);
    }
    if config.unsafe_skip_job_proof {
        crate::report::log("job proof skipped (gridengine.unsafe_skip_job_proof)");
        return Ok(Proof::Skipped);
    }
    let refuse = |problem: String| Error::NotAJob {
        job: key.to_string(),
        problem,
    };
    let entry = SpoolEntry::locate(key, config).map_err(refuse)?;
    let group = parse_group(
        &entry
            .read("addgrpid")
            .map_err(|p| refuse(format!("Grid Engine runs no such job on this host ({p})")))?,
    )
    .map_err(refuse)?;
    // A `qrsh -inherit` task holds its own group, not the job's.
    let task = if who.groups.contains(&group) {
        None
    } else {
        entry.task_held_by(who)
    };
    let (entry, group) = task.unwrap_or((entry, group));
    let job = spooled(&entry, group).map_err(refuse)?;
    check_holder(&job, who).map_err(refuse)?;
    Ok(Proof::Spooled(job))
}

/// What a spool entry (a job's, or a `qrsh -inherit` task's below it) says, `group` its
/// `addgrpid`.
fn spooled(entry: &SpoolEntry, group: u32) -> std::result::Result<SpooledJob, String> {
    let spooled = parse_config(&entry.read("config")?);
    let pe_hostfile = match spooled.get("pe_hostfile") {
        // A task's config names one in the task's directory, which the execd does not
        // write (checked on 8.1.9): the job's is the master's.
        Some(_) if entry.pe_task.is_some() => None,
        Some(_) => Some(entry.trusted("pe_hostfile")?),
        None => None,
    };
    Ok(SpooledJob {
        group,
        owner: spooled.get("job_owner").cloned().unwrap_or_default(),
        tmpdir: spooled
            .get("tmpdir")
            .filter(|t| t.starts_with('/'))
            .map(PathBuf::from),
        kind: kind_of(&spooled),
        queue: spooled.get("queue").cloned(),
        qrsh_job: is_qrsh_job(&spooled),
        host_slots: spooled.get("host_slots").and_then(|n| n.parse().ok()),
        pe_hostfile,
        pe_task: entry.pe_task.clone(),
    })
}

/// What kind of job the execd's spool says `key` is, and whether it is a qrsh job; a job
/// Grid Engine does not run here (a starter tried by hand) is a batch script job.
pub fn spooled_kind(key: &JobKey, config: &GridEngineConfig) -> (Kind, bool) {
    SpoolEntry::locate(key, config)
        .and_then(|entry| entry.read("config"))
        .map(|text| {
            let spooled = parse_config(&text);
            (kind_of(&spooled), is_qrsh_job(&spooled))
        })
        .unwrap_or_default()
}

/// The execd writes qrsh's settings (`qrsh_pid_file` …) into the config of qrsh jobs only.
fn is_qrsh_job(spooled: &HashMap<String, String>) -> bool {
    spooled.contains_key("qrsh_pid_file")
}

fn kind_of(spooled: &HashMap<String, String>) -> Kind {
    Kind::from_spool(
        spooled.get("handle_as_binary").map(String::as_str),
        spooled.get("no_shell").map(String::as_str),
    )
}

/// The job's directory in the execd spool, found once per call (a directory listing and a
/// password look-up) however many of its files are read.
struct SpoolEntry {
    dir: PathBuf,
    owners: Vec<u32>,
    /// The `qrsh -inherit` task this entry is of, below its job's.
    pe_task: Option<String>,
}

impl SpoolEntry {
    fn locate(key: &JobKey, config: &GridEngineConfig) -> std::result::Result<Self, String> {
        Ok(SpoolEntry {
            dir: host_dir(config)?
                .join("active_jobs")
                .join(task_dir_name(key)),
            owners: trusted_owners(config),
            pe_task: None,
        })
    }

    /// The entry of the job's `qrsh -inherit` task whose group `who` holds, with that
    /// group: the execd makes one directory per task below the job's (`1.vm`), with the
    /// same files (checked on 8.1.9).
    fn task_held_by(&self, who: &Identity) -> Option<(SpoolEntry, u32)> {
        fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .find_map(|e| {
                let task = SpoolEntry {
                    dir: e.path(),
                    owners: self.owners.clone(),
                    pe_task: Some(e.file_name().to_string_lossy().into_owned()),
                };
                let group = parse_group(&task.read("addgrpid").ok()?).ok()?;
                who.groups.contains(&group).then_some((task, group))
            })
    }

    /// One file of the entry, when it is the execd's (see [`read_trusted`]).
    fn read(&self, name: &str) -> std::result::Result<String, String> {
        read_trusted(&self.dir.join(name), &self.owners)
    }

    /// The path of one file of the entry, when it is the execd's: nobody but the execd can
    /// change what it names, so the engine may mount it.
    fn trusted(&self, name: &str) -> std::result::Result<PathBuf, String> {
        let path = self.dir.join(name);
        crate::trust::check_path(&path, &self.owners)?;
        Ok(path)
    }
}

/// The execd names a task's directory `<job>.<task>`, task 1 for a job that is no array.
pub fn task_dir_name(key: &JobKey) -> String {
    format!("{}.{}", key.job_id, key.task_id.max(1))
}

/// The caller must be the job's owner and hold the job's group.
fn check_holder(job: &SpooledJob, who: &Identity) -> std::result::Result<(), String> {
    if job.owner != who.name {
        return Err(format!(
            "it belongs to {:?}, not to you ({})",
            job.owner, who.name
        ));
    }
    if !who.groups.contains(&job.group) {
        return Err(format!(
            "this process does not hold the job's group {}: run qdock only as the queue's methods, inside the job",
            job.group
        ));
    }
    Ok(())
}

fn parse_group(text: &str) -> std::result::Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| format!("the spooled addgrpid {:?} is not a group id", text.trim()))
}

/// The execd's `config` file: `key=value` lines.
fn parse_config(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn trusted_owners(config: &GridEngineConfig) -> Vec<u32> {
    let admin = nix::unistd::User::from_name(&config.admin_user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    std::iter::once(0).chain(admin).collect()
}

/// This host's spool directory: the one the admin named, else the only one with an
/// `active_jobs` directory, else the one named after this host.
fn host_dir(config: &GridEngineConfig) -> std::result::Result<PathBuf, String> {
    let spool = &config.execd_spool_dir;
    if !config.spool_host.is_empty() {
        return Ok(spool.join(&config.spool_host));
    }
    let hosts: Vec<PathBuf> = fs::read_dir(spool)
        .map_err(|e| {
            format!(
                "cannot read the execd spool {} ({e}); admin: check gridengine.execd_spool_dir",
                spool.display()
            )
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("active_jobs").is_dir())
        .collect();
    if let [only] = hosts.as_slice() {
        return Ok(only.clone());
    }
    let name = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let short = name.split('.').next().unwrap_or_default();
    hosts
        .into_iter()
        .find(|h| h.file_name().is_some_and(|n| n == short || n == name.as_str()))
        .ok_or_else(|| {
            format!(
                "the execd spool {} has no directory for this host ({name}); admin: set gridengine.spool_host",
                spool.display()
            )
        })
}

/// Reads a small spool file, refusing links and anything a user could have written.
fn read_trusted(path: &Path, owners: &[u32]) -> std::result::Result<String, String> {
    crate::trust::check_path(path, owners)?;
    let mut text = String::new();
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| f.take(64 << 10).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {} ({e})", path.display()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(groups: &[u32]) -> Identity {
        Identity {
            uid: 2001,
            gid: 2001,
            groups: groups.to_vec(),
            name: "alice".into(),
        }
    }

    #[test]
    fn the_queue_is_the_spools_word_when_it_has_one() {
        let spooled = |queue: Option<&str>| {
            Proof::Spooled(SpooledJob {
                queue: queue.map(String::from),
                ..job("alice", 65400)
            })
        };
        assert_eq!(spooled(Some("all.q")).queue("forged.q"), "all.q");
        assert_eq!(spooled(None).queue("all.q"), "all.q");
        assert_eq!(Proof::Skipped.queue("all.q"), "all.q");
    }

    fn job(owner: &str, group: u32) -> SpooledJob {
        SpooledJob {
            group,
            owner: owner.into(),
            tmpdir: None,
            kind: Kind::Script,
            queue: None,
            qrsh_job: false,
            host_slots: None,
            pe_hostfile: None,
            pe_task: None,
        }
    }

    #[test]
    fn task_directories_are_named_as_the_execd_names_them() {
        let key = |job_id, task_id| JobKey {
            cell: "default".into(),
            job_id,
            task_id,
        };
        assert_eq!(task_dir_name(&key(7, 0)), "7.1");
        assert_eq!(task_dir_name(&key(7, 3)), "7.3");
    }

    #[test]
    fn the_holder_must_own_the_job_and_hold_its_group() {
        assert!(check_holder(&job("alice", 65401), &who(&[65401])).is_ok());
        let e = check_holder(&job("alice", 65401), &who(&[65402])).unwrap_err();
        assert!(e.contains("group 65401"), "{e}");
        let e = check_holder(&job("bob", 65401), &who(&[65401])).unwrap_err();
        assert!(e.contains("\"bob\""), "{e}");
    }

    #[test]
    fn spool_files_parse() {
        assert_eq!(parse_group("65401\n"), Ok(65401));
        for bad in ["", "0", "x", "-1", "65401 65402"] {
            assert!(parse_group(bad).is_err(), "{bad:?}");
        }
        let c = parse_config("job_owner=alice\ntmpdir=/tmp/7.1.all.q\nnoise\n");
        assert_eq!(c["job_owner"], "alice");
        assert_eq!(c["tmpdir"], "/tmp/7.1.all.q");
    }
}
