//! Is the caller really the Grid Engine job it names? `JOB_ID` and the method's arguments are
//! the caller's word. What no user can forge: the execd gives every process of a job the
//! job's additional group id (`gid_range`), which an ordinary process cannot add to itself,
//! and records it in its spool, `<execd_spool_dir>/<host>/active_jobs/<job>.<task>/addgrpid`,
//! owned by root or the Grid Engine admin user. The same directory's `config` tells the job's
//! owner and its per-job TMPDIR, which qdock may then mount.
//!
//! Two types keep the caller's word from the facts: a [`JobClaim`] (ids from the environment
//! or argv) becomes a [`JobKey`] (which names containers, labels and records) only here, with
//! the cell from the root-owned config or the spool, never from `SGE_CELL`.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::{CellSpool, GridEngineConfig};
use crate::error::{Error, Result};
use crate::job::{JobClaim, Kind};
use crate::privilege::Identity;

/// One task of one job in one cell, as proven: the key to its container, its labels and its
/// record. Only [`prove`] makes one, so no value the caller set can name anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKey {
    cell: String,
    claim: JobClaim,
}

impl JobKey {
    pub fn cell(&self) -> &str {
        &self.cell
    }

    pub fn job_id(&self) -> u64 {
        self.claim.job_id
    }

    /// 0 for a non-array job, as Grid Engine's `$ja_task_id`.
    pub fn task_id(&self) -> u64 {
        self.claim.task_id
    }

    pub fn container_name(&self) -> String {
        format!("qdock-{}-{}-{}", self.cell, self.job_id(), self.task_id())
    }

    /// A key for pure tests and fuzzing, which have no spool to prove against.
    #[cfg(any(test, fuzzing))]
    pub fn for_tests(cell: &str, job_id: u64, task_id: u64) -> JobKey {
        JobKey {
            cell: cell.into(),
            claim: JobClaim { job_id, task_id },
        }
    }
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.claim.fmt(f)
    }
}

/// One run of a job task on this host: the execd writes a new `addgrpid` for every start
/// (a requeued or rescheduled job gets a new entry), so its inode and modification time tell
/// one run from the next. See [`crate::run_mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId {
    pub inode: u64,
    pub mtime_ns: i128,
}

impl RunId {
    fn of(meta: &fs::Metadata) -> RunId {
        RunId {
            inode: meta.ino(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// What the execd's spool says about a proven job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledJob {
    /// This run of the job task.
    pub run: RunId,
    /// The execd spool's directory of this host (its name), where the run is recorded.
    pub spool_host: String,
    /// The cell, when the spool states it.
    pub cell: Option<String>,
    /// The job's process, as the shepherd recorded it once the job started (`job_pid`):
    /// what `$job_pid` says, for a method line that cannot pass it.
    pub job_pid: Option<i32>,
    /// The job's additional group id, held by the caller.
    pub group: u32,
    pub owner: String,
    /// The per-job TMPDIR the execd created.
    pub tmpdir: Option<PathBuf>,
    pub kind: Kind,
    /// The job script in the spool, or a binary job's command (`script_file`).
    pub script_file: Option<PathBuf>,
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
    /// The execd's packed copy of the job (see [`crate::packed_job`]), when it is the
    /// execd's: what the job was granted on request.
    pub packed_job: Option<PathBuf>,
}

/// A proven job: its key, and what the proof rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    pub key: JobKey,
    pub proof: Proof,
}

impl Proven {
    /// The job's queue, as the execd's spool names it; `QUEUE` is the caller's to set.
    pub fn queue(&self) -> String {
        self.proof
            .spooled()
            .and_then(|job| job.queue.clone())
            .unwrap_or_default()
    }

    /// The slots granted on this host: the spool's `host_slots`. `NSLOTS` (`claimed`) counts
    /// only where nothing was proven (root, or the admin's unsafe switch).
    pub fn slots(&self, claimed: Option<u32>) -> Option<u32> {
        match &self.proof {
            Proof::Spooled(job) => Some(job.host_slots.unwrap_or(1)),
            Proof::Skipped => claimed,
        }
    }
}

/// The outcome of the check the admin asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Spooled(Box<SpooledJob>),
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

/// Proves that `who` is job `claim` on this host, or says what is missing.
pub fn prove(claim: &JobClaim, config: &GridEngineConfig, who: &Identity) -> Result<Proven> {
    let skipped = || Proven {
        key: JobKey {
            cell: config.cell.clone(),
            claim: *claim,
        },
        proof: Proof::Skipped,
    };
    if who.uid == 0 {
        return Ok(skipped());
    }
    if config.unsafe_skip_job_proof {
        crate::report::log("job proof skipped (gridengine.unsafe_skip_job_proof)");
        return Ok(skipped());
    }
    // Job ids are per cell: where several cells run jobs here, the cell whose spool proves
    // the caller is the job's. Otherwise the first entry that refused the caller says why,
    // or, when no cell has the job, the first cell.
    let (mut refused, mut missing) = (None, None);
    for spool in config.spools() {
        match prove_in(claim, &spool, who) {
            Ok(proven) => {
                crate::report::set_cell(proven.key.cell());
                return Ok(proven);
            }
            Err(Refusal::NotTheCaller(p)) => refused = refused.or(Some(p)),
            Err(Refusal::NoEntry(p)) => missing = missing.or(Some(p)),
        }
    }
    Err(Error::NotAJob {
        job: claim.to_string(),
        problem: refused.or(missing).unwrap_or_default(),
    })
}

/// Why one cell's spool does not prove the caller.
enum Refusal {
    /// It has no entry for the job: another cell's may.
    NoEntry(String),
    /// It has one, and it says the caller is not that job.
    NotTheCaller(String),
}

fn prove_in(
    claim: &JobClaim,
    spool: &CellSpool,
    who: &Identity,
) -> std::result::Result<Proven, Refusal> {
    let entry = SpoolEntry::locate(claim, spool).map_err(Refusal::NoEntry)?;
    let group = entry.read("addgrpid").map_err(|p| {
        Refusal::NoEntry(format!("Grid Engine runs no such job on this host ({p})"))
    })?;
    let group = parse_group(&group).map_err(Refusal::NotTheCaller)?;
    // A `qrsh -inherit` task holds its own group, not the job's.
    let task = if who.groups.contains(&group) {
        None
    } else {
        entry.task_held_by(who)
    };
    let (entry, group) = task.unwrap_or((entry, group));
    let job = spooled(&entry, group).map_err(Refusal::NotTheCaller)?;
    check_holder(&job, who, || entry.started_by_shepherd()).map_err(Refusal::NotTheCaller)?;
    Ok(Proven {
        key: JobKey {
            cell: job.cell.clone().unwrap_or_else(|| spool.cell.clone()),
            claim: *claim,
        },
        proof: Proof::Spooled(Box::new(job)),
    })
}

/// What a spool entry (a job's, or a `qrsh -inherit` task's below it) says, `group` its
/// `addgrpid`.
fn spooled(entry: &SpoolEntry, group: u32) -> std::result::Result<SpooledJob, String> {
    let spooled = parse_config(&entry.read("config")?);
    // Open Cluster Scheduler's execd states the cell (`sge_cell`); 8.1.9's does not.
    let cell = match spooled.get("sge_cell") {
        Some(cell) if crate::config::is_cell_name(cell) => Some(cell.clone()),
        Some(cell) => return Err(format!("the spooled sge_cell {cell:?} is not a cell name")),
        None => None,
    };
    let pe_hostfile = match spooled.get("pe_hostfile") {
        // A task's config names one in the task's directory, which the execd does not
        // write (checked on 8.1.9): the job's is the master's.
        Some(_) if entry.pe_task.is_some() => None,
        Some(_) => Some(entry.trusted("pe_hostfile")?),
        None => None,
    };
    Ok(SpooledJob {
        run: entry.run()?,
        spool_host: entry.host.clone(),
        job_pid: entry.pid("job_pid").ok(),
        cell,
        group,
        owner: spooled.get("job_owner").cloned().unwrap_or_default(),
        tmpdir: spooled
            .get("tmpdir")
            .filter(|t| t.starts_with('/'))
            .map(PathBuf::from),
        kind: kind_of(&spooled),
        script_file: script_file(&spooled),
        queue: spooled.get("queue").cloned(),
        qrsh_job: is_qrsh_job(&spooled),
        host_slots: spooled.get("host_slots").and_then(|n| n.parse().ok()),
        pe_hostfile,
        pe_task: entry.pe_task.clone(),
        packed_job: crate::trust::check_path(&entry.packed_job, &entry.owners)
            .is_ok()
            .then(|| entry.packed_job.clone()),
    })
}

/// How the execd's spool says job `claim` starts, read to start a native job as Grid Engine
/// would (it proves nothing): a job Grid Engine does not run here (a starter tried by hand)
/// is a batch script job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Start {
    pub kind: Kind,
    pub qrsh_job: bool,
    pub script_file: Option<PathBuf>,
}

pub fn spooled_start(claim: &JobClaim, config: &GridEngineConfig) -> Start {
    config
        .spools()
        .iter()
        .find_map(|spool| {
            SpoolEntry::locate(claim, spool)
                .and_then(|entry| entry.read("config"))
                .ok()
        })
        .map(|text| {
            let spooled = parse_config(&text);
            Start {
                kind: kind_of(&spooled),
                qrsh_job: is_qrsh_job(&spooled),
                script_file: script_file(&spooled),
            }
        })
        .unwrap_or_default()
}

fn script_file(spooled: &HashMap<String, String>) -> Option<PathBuf> {
    spooled
        .get("script_file")
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
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
    /// The name of the host's directory in the spool.
    host: String,
    owners: Vec<u32>,
    /// The `qrsh -inherit` task this entry is of, below its job's.
    pe_task: Option<String>,
    /// The job's packed copy: a task's is its job's.
    packed_job: PathBuf,
}

impl SpoolEntry {
    fn locate(claim: &JobClaim, spool: &CellSpool) -> std::result::Result<Self, String> {
        let host = host_dir(spool)?;
        Ok(SpoolEntry {
            dir: host.join("active_jobs").join(task_dir_name(claim)),
            host: host_name(&host),
            owners: owners_of(spool),
            pe_task: None,
            packed_job: host.join("jobs").join(packed_job_path(claim)),
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
                    host: self.host.clone(),
                    owners: self.owners.clone(),
                    pe_task: Some(e.file_name().to_string_lossy().into_owned()),
                    packed_job: self.packed_job.clone(),
                };
                let group = parse_group(&task.read("addgrpid").ok()?).ok()?;
                who.groups.contains(&group).then_some((task, group))
            })
    }

    /// This run of the entry, from its `addgrpid` (already read, so trusted).
    fn run(&self) -> std::result::Result<RunId, String> {
        let path = self.dir.join("addgrpid");
        fs::symlink_metadata(&path)
            .map(|meta| RunId::of(&meta))
            .map_err(|e| format!("cannot examine {} ({e})", path.display()))
    }

    /// Whether this process is a method the entry's shepherd started (see
    /// [`crate::lineage`]): the shepherd writes its own pid (`pid`) and the job's
    /// (`job_pid`) into the entry.
    fn started_by_shepherd(&self) -> std::result::Result<(), String> {
        crate::lineage::started_by_shepherd(
            &crate::lineage::of_self(),
            self.pid("pid")?,
            self.pid("job_pid")?,
        )
    }

    /// A pid the shepherd wrote: its own (`pid`) or the job's (`job_pid`).
    fn pid(&self, name: &str) -> std::result::Result<i32, String> {
        let text = self.read(name)?;
        crate::process::parse_pid(text.trim())
            .map_err(|_| format!("the spooled {name} {:?} is not a pid", text.trim()))
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

/// This host's directory in a cell's spool (its name), and every run that spool holds there:
/// each job task's entry and each of its `qrsh -inherit` tasks' entries below it. A run not
/// among them is over.
pub fn live_runs(spool: &CellSpool) -> std::result::Result<(String, Vec<RunId>), String> {
    let host = host_dir(spool)?;
    let active = host.join("active_jobs");
    let entries = |dir: &Path| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect()
    };
    let runs = entries(&active)
        .iter()
        .flat_map(|job| std::iter::once(job.clone()).chain(entries(job)))
        .filter_map(|entry| fs::symlink_metadata(entry.join("addgrpid")).ok())
        .map(|meta| RunId::of(&meta))
        .collect();
    Ok((host_name(&host), runs))
}

fn host_name(host_dir: &Path) -> String {
    host_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The execd names a task's directory `<job>.<task>`, task 1 for a job that is no array.
pub fn task_dir_name(claim: &JobClaim) -> String {
    format!("{}.{}", claim.job_id, claim.task_id.max(1))
}

/// Where below the host's `jobs` the execd keeps its copy of the job: the job number in
/// three parts, as `sge_spool.c` splits it (`00/0000/2651.1`).
fn packed_job_path(claim: &JobClaim) -> String {
    let id = claim.job_id;
    format!(
        "{:02}/{:04}/{:04}.{}",
        (id / 100_000_000) % 10_000,
        (id / 10_000) % 10_000,
        id % 10_000,
        claim.task_id.max(1)
    )
}

/// The caller must be the job's owner, and hold the job's group (every process of the job
/// and, on Son of Grid Engine, its methods do) or be a method its shepherd started (Open
/// Cluster Scheduler's hold no group): `by_shepherd` says, asked only when it must.
fn check_holder(
    job: &SpooledJob,
    who: &Identity,
    by_shepherd: impl FnOnce() -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    if job.owner != who.name {
        return Err(format!(
            "it belongs to {:?}, not to you ({})",
            job.owner, who.name
        ));
    }
    if who.groups.contains(&job.group) {
        return Ok(());
    }
    by_shepherd().map_err(|why| {
        format!(
            "this process does not hold the job's group {} and {why}: run qdock only as the queue's methods, inside the job",
            job.group
        )
    })
}

fn parse_group(text: &str) -> std::result::Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(0) => Err(NO_GROUP.into()),
        Ok(group) => Ok(group),
        Err(_) => Err(format!(
            "the spooled addgrpid {:?} is not a group id",
            text.trim()
        )),
    }
}

/// Open Cluster Scheduler gives a job no group on a host that collects usage through systemd
/// (`exec_job.cc`): nothing then tells the job's processes from any other of its owner's.
const NO_GROUP: &str = "Grid Engine gave the job no additional group (addgrpid 0), which Open Cluster Scheduler does unless the execd collects usage with PDC or kills by group; admin: qconf -mconf, execd_params ENABLE_ADDGRP_KILL=TRUE (or USAGE_COLLECTION=PDC or HYBRID)";

/// The execd's `config` file: `key=value` lines.
fn parse_config(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Root and every cell's Grid Engine admin: who alone may own what proves a job, or a
/// directory on a mount source's path.
pub(crate) fn trusted_owners(config: &GridEngineConfig) -> Vec<u32> {
    let mut owners: Vec<u32> = config.spools().iter().flat_map(owners_of).collect();
    owners.dedup();
    owners
}

/// Root and the cell's Grid Engine admin.
fn owners_of(spool: &CellSpool) -> Vec<u32> {
    let admin = nix::unistd::User::from_name(&spool.admin_user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    std::iter::once(0).chain(admin).collect()
}

/// This host's spool directory: the one the admin named, else the only one with an
/// `active_jobs` directory, else the one named after this host.
fn host_dir(config: &CellSpool) -> std::result::Result<PathBuf, String> {
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
    fn queue_and_slots_are_the_spools_word() {
        let proven = |proof| Proven {
            key: JobKey::for_tests("default", 7, 0),
            proof,
        };
        let spooled = |queue: Option<&str>, slots| {
            proven(Proof::Spooled(Box::new(SpooledJob {
                queue: queue.map(String::from),
                host_slots: slots,
                ..job("alice", 65400)
            })))
        };
        assert_eq!(spooled(Some("all.q"), None).queue(), "all.q");
        assert_eq!(spooled(None, None).queue(), "");
        assert_eq!(spooled(None, Some(4)).slots(Some(64)), Some(4));
        assert_eq!(spooled(None, None).slots(Some(64)), Some(1));
        // Root or the unsafe switch: nothing was proven, NSLOTS stands.
        assert_eq!(proven(Proof::Skipped).slots(Some(2)), Some(2));
    }

    fn job(owner: &str, group: u32) -> SpooledJob {
        SpooledJob {
            run: RunId {
                inode: 1,
                mtime_ns: 2,
            },
            spool_host: "vm".into(),
            cell: None,
            job_pid: None,
            group,
            owner: owner.into(),
            tmpdir: None,
            kind: Kind::Script,
            script_file: None,
            queue: None,
            qrsh_job: false,
            host_slots: None,
            pe_hostfile: None,
            pe_task: None,
            packed_job: None,
        }
    }

    #[test]
    fn task_directories_are_named_as_the_execd_names_them() {
        let key = |job_id, task_id| JobClaim { job_id, task_id };
        assert_eq!(task_dir_name(&key(7, 0)), "7.1");
        assert_eq!(task_dir_name(&key(7, 3)), "7.3");
    }

    #[test]
    fn the_holder_must_own_the_job_and_hold_its_group() {
        let no_shepherd = || Err("was not started by the job's shepherd".to_string());
        let check = |job, who| check_holder(&job, &who, no_shepherd);
        assert!(check(job("alice", 65401), who(&[65401])).is_ok());
        // Open Cluster Scheduler's methods hold no group: their shepherd proves them.
        assert!(check_holder(&job("alice", 65401), &who(&[]), || Ok(())).is_ok());
        let e = check(job("alice", 65401), who(&[65402])).unwrap_err();
        assert!(e.contains("shepherd"), "{e}");
        assert!(e.contains("group 65401"), "{e}");
        // Another user's job: the shepherd is never asked.
        let e = check_holder(&job("bob", 65401), &who(&[65401]), || Ok(())).unwrap_err();
        assert!(e.contains("\"bob\""), "{e}");
    }

    #[test]
    fn spool_files_parse() {
        assert_eq!(parse_group("65401\n"), Ok(65401));
        assert!(
            parse_group("0\n")
                .unwrap_err()
                .contains("ENABLE_ADDGRP_KILL=TRUE")
        );
        for bad in ["", "x", "-1", "65401 65402"] {
            assert!(parse_group(bad).is_err(), "{bad:?}");
        }
        let c = parse_config("job_owner=alice\ntmpdir=/tmp/7.1.all.q\nnoise\n");
        assert_eq!(c["job_owner"], "alice");
        assert_eq!(c["tmpdir"], "/tmp/7.1.all.q");
    }
}
