//! One starter per job run. The starter that the shepherd started comes first, before any of
//! the job's own code runs; anything of the job that runs the starter again (a native job's
//! script calling it, with or without an image, or `exec`ing it) comes later. So the first
//! starter of a run leaves a mark, and only the starter that made it may create a container
//! or write a usage record: a job task gets at most one container and one record, whatever
//! its code does.
//!
//! A mark is an empty file in `/var/lib/qdock/runs` (bin/install: `root:docker` 1770, so
//! users can neither look inside nor remove a mark), named after the job task, the host's
//! spool directory and the run's [`RunId`]: a requeued or rescheduled job gets a new spool
//! entry and so a new mark. `qdock gc` removes the marks of this host's runs whose spool
//! entry is gone (hosts sharing `/var/lib/qdock` keep each other's).

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::config::GridEngineConfig;
use crate::error::{Error, Result};
use crate::job_proof::{JobKey, Proof, Proven, RunId};

pub const DIR: &str = "/var/lib/qdock/runs";

/// What taking a mark came to.
#[derive(Debug)]
pub enum Taken {
    /// This starter is the run's first.
    First,
    /// Another starter of this run came first.
    Again,
    /// The directory cannot take the mark (missing, not installed): the reason.
    Unavailable(String),
}

/// Goes on only as the first starter of a proven run: `Ok(true)` once the mark is left,
/// `Ok(false)` where nothing was proven (root, the admin's unsafe switch) and so nothing can
/// be marked.
pub fn first_starter(proven: &Proven) -> Result<bool> {
    let Proof::Spooled(job) = &proven.proof else {
        return Ok(false);
    };
    match take(&proven.key, &job.spool_host, job.run) {
        Taken::First => Ok(true),
        Taken::Again => Err(Error::StarterAgain {
            job: proven.key.to_string(),
        }),
        Taken::Unavailable(problem) => Err(Error::RunMarkUnavailable {
            job: proven.key.to_string(),
            problem,
        }),
    }
}

/// Removes the marks of runs the spool no longer holds (`qdock gc`); returns how many went,
/// or would go with `dry_run`.
pub fn sweep(config: &GridEngineConfig, dry_run: bool) -> std::result::Result<usize, String> {
    let mut hosts = Vec::new();
    let mut live = Vec::new();
    for spool in config.spools() {
        let (host, runs) = crate::job_proof::live_runs(&spool)?;
        hosts.push(host);
        live.extend(runs);
    }
    let names = match fs::read_dir(DIR) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("cannot read {DIR} ({e})")),
    };
    let stale = stale(names, &hosts, &live);
    if !dry_run {
        for name in &stale {
            // A name is one path component (read_dir's), so nothing outside DIR goes.
            fs::remove_file(Path::new(DIR).join(name))
                .map_err(|e| format!("cannot remove {DIR}/{name} ({e})"))?;
        }
    }
    Ok(stale.len())
}

/// The mark's file name: the job task for people, then the host and the run, which make it
/// unique: `<cell>.<job>.<task>@<host>-<inode>-<mtime>`.
pub fn name(key: &JobKey, host: &str, run: RunId) -> String {
    format!(
        "{}.{}.{}@{host}-{}-{}",
        key.cell(),
        key.job_id(),
        key.task_id(),
        run.inode,
        run.mtime_ns
    )
}

/// The host and the run a mark's name stands for; `None` for a name no starter makes. Read
/// from the right: host names have `-` in them, never `@`.
pub fn run_of(name: &str) -> Option<(&str, RunId)> {
    let mut parts = name.rsplitn(3, '-');
    let mtime_ns = parts.next()?.parse().ok()?;
    let inode = parts.next()?.parse().ok()?;
    let (_, host) = parts.next()?.rsplit_once('@')?;
    Some((host, RunId { inode, mtime_ns }))
}

/// Leaves this run's mark, with the setgid group's rights (never the caller's file system
/// group: see [`crate::privilege::as_caller`]).
pub fn take(key: &JobKey, host: &str, run: RunId) -> Taken {
    take_in(Path::new(DIR), &name(key, host, run))
}

fn take_in(dir: &Path, name: &str) -> Taken {
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dir.join(name));
    match created {
        Ok(_) => Taken::First,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Taken::Again,
        Err(e) => Taken::Unavailable(format!(
            "cannot leave a mark in {} ({e}); admin: run bin/install",
            dir.display()
        )),
    }
}

/// The marks of `hosts` (this host's directories in its cells' spools) whose run is not
/// among `live` (the runs those spools hold): free to go. Other hosts' marks and names no
/// starter makes are left alone.
pub fn stale(
    names: impl IntoIterator<Item = String>,
    hosts: &[String],
    live: &[RunId],
) -> Vec<String> {
    names
        .into_iter()
        .filter(|name| {
            run_of(name)
                .is_some_and(|(h, run)| hosts.iter().any(|x| x == h) && !live.contains(&run))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: RunId = RunId {
        inode: 1234,
        mtime_ns: 1_764_000_000_123_456_789,
    };

    #[test]
    fn a_mark_names_the_job_task_and_its_run() {
        let key = JobKey::for_tests("my-cell.1", 12, 3);
        let name = name(&key, "node-1.lab", RUN);
        assert_eq!(name, "my-cell.1.12.3@node-1.lab-1234-1764000000123456789");
        assert_eq!(run_of(&name), Some(("node-1.lab", RUN)));
        for foreign in ["", "x", "a-b", "1-2", "x-1-2", "README"] {
            assert_eq!(run_of(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn only_the_first_starter_of_a_run_takes_its_mark() {
        let dir = std::env::temp_dir().join(format!("qdock-run-mark-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let key = JobKey::for_tests("default", 7, 0);
        let mark = |run| name(&key, "vm", run);
        assert!(matches!(take_in(&dir, &mark(RUN)), Taken::First));
        assert!(matches!(take_in(&dir, &mark(RUN)), Taken::Again));
        // A new run of the same task (requeued) is a new mark.
        let requeued = RunId {
            mtime_ns: RUN.mtime_ns + 1,
            ..RUN
        };
        assert!(matches!(take_in(&dir, &mark(requeued)), Taken::First));
        fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            take_in(&dir, &mark(RUN)),
            Taken::Unavailable(problem) if problem.contains("bin/install")
        ));
    }

    #[test]
    fn marks_of_runs_the_spool_no_longer_holds_are_stale() {
        let key = JobKey::for_tests("default", 7, 0);
        let gone = RunId { inode: 9, ..RUN };
        let names = vec![
            name(&key, "vm", RUN),
            name(&key, "vm", gone),
            // Another host's, in a directory they share: its own gc decides.
            name(&key, "node1", gone),
            "README".into(),
        ];
        assert_eq!(
            stale(names, &["vm".into()], &[RUN]),
            vec![name(&key, "vm", gone)]
        );
    }
}
