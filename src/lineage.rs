//! Who started this process, as the kernel tells it: no process can choose its parent. Open
//! Cluster Scheduler's shepherd starts the suspend, resume and terminate methods without the
//! job's additional group (`shepherd.cc`, `start_async_command`: forked by the shepherd, as
//! the job owner, run by `shell -c "method line"`), so the group cannot prove them. Their
//! descent can: a method is a child of the job's shepherd, or of the shell the shepherd forked
//! for it. The job's own processes descend from the shepherd too, but only through the job
//! (the spool's `job_pid`); nothing re-parents to the shepherd, which is no subreaper, and a
//! user owns no process the shepherd's forks could be mistaken for, as it runs as root.

use std::fs;

/// One process's place in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// The real user id.
    pub uid: u32,
}

/// How far above the caller the shepherd may be: the method itself, or the shell that runs
/// the method line and did not exec it.
const MAX_DEPTH: usize = 2;

/// This process and its ancestors, nearest first, as far as the shepherd may be.
pub fn of_self() -> Vec<Proc> {
    chain(MAX_DEPTH + 1)
}

/// This process and all its ancestors: what a method must not kill under it.
pub fn ancestry() -> Vec<i32> {
    chain(usize::MAX).iter().map(|p| p.pid).collect()
}

fn chain(limit: usize) -> Vec<Proc> {
    let mut chain = Vec::new();
    let mut pid = std::process::id() as i32;
    while chain.len() < limit && pid > 0 {
        let Some(proc) = read(pid) else { break };
        chain.push(proc);
        pid = proc.ppid;
    }
    chain
}

fn read(pid: i32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold anything, `)` included: the fields follow the last one.
    let ppid = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Proc { pid, ppid, uid })
}

/// Was the first process of `chain` (see [`of_self`]) started by the job's shepherd
/// (`shepherd`, root) as a method, that is, not through the job (`job`)? Says why not.
pub fn started_by_shepherd(chain: &[Proc], shepherd: i32, job: i32) -> Result<(), String> {
    let not = || format!("was not started by the job's shepherd (pid {shepherd})");
    let at = chain
        .iter()
        .take(MAX_DEPTH + 1)
        .position(|p| p.pid == shepherd)
        .filter(|&at| at > 0)
        .ok_or_else(not)?;
    if chain[at].uid != 0 {
        return Err(format!(
            "{}, which runs as uid {}, not root",
            not(),
            chain[at].uid
        ));
    }
    if chain[at - 1].pid == job {
        return Err(format!(
            "descends from the job's own process (pid {job}), not from a method the shepherd started"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHEPHERD: i32 = 100;
    const JOB: i32 = 200;

    fn proc(pid: i32, ppid: i32, uid: u32) -> Proc {
        Proc { pid, ppid, uid }
    }

    fn shepherd() -> Proc {
        proc(SHEPHERD, 50, 0)
    }

    #[test]
    fn a_method_the_shepherd_forked_passes_directly_or_through_its_shell() {
        let method = proc(300, SHEPHERD, 2001);
        assert_eq!(
            started_by_shepherd(&[method, shepherd()], SHEPHERD, JOB),
            Ok(())
        );
        let shell = proc(300, SHEPHERD, 2001);
        let method = proc(301, 300, 2001);
        let chain = [method, shell, shepherd()];
        assert_eq!(started_by_shepherd(&chain, SHEPHERD, JOB), Ok(()));
    }

    #[test]
    fn the_jobs_own_processes_never_pass() {
        // The job exec'ed the method: it is the job's process.
        let exec = proc(JOB, SHEPHERD, 2001);
        let e = started_by_shepherd(&[exec, shepherd()], SHEPHERD, JOB).unwrap_err();
        assert!(e.contains("job's own process"), "{e}");
        // The job's shell ran it.
        let chain = [proc(201, JOB, 2001), proc(JOB, SHEPHERD, 2001), shepherd()];
        let e = started_by_shepherd(&chain, SHEPHERD, JOB).unwrap_err();
        assert!(e.contains("job's own process"), "{e}");
        // Deeper inside the job: the shepherd is too far up.
        let chain = [
            proc(202, 201, 2001),
            proc(201, JOB, 2001),
            proc(JOB, SHEPHERD, 2001),
            shepherd(),
        ];
        assert!(started_by_shepherd(&chain, SHEPHERD, JOB).is_err());
    }

    #[test]
    fn a_method_run_by_hand_or_under_a_user_process_never_passes() {
        // Started from a login shell: no shepherd above it.
        let chain = [proc(300, 290, 2001), proc(290, 1, 2001), proc(1, 0, 0)];
        assert!(started_by_shepherd(&chain, SHEPHERD, JOB).is_err());
        // A user's own process in the shepherd's (reused) pid is no shepherd.
        let chain = [proc(300, SHEPHERD, 2001), proc(SHEPHERD, 1, 2001)];
        let e = started_by_shepherd(&chain, SHEPHERD, JOB).unwrap_err();
        assert!(e.contains("not root"), "{e}");
        // The shepherd itself is no method.
        assert!(started_by_shepherd(&[shepherd()], SHEPHERD, JOB).is_err());
        assert!(started_by_shepherd(&[], SHEPHERD, JOB).is_err());
    }

    #[test]
    fn this_process_has_a_lineage() {
        let chain = of_self();
        assert_eq!(chain.len(), MAX_DEPTH + 1);
        assert_eq!(chain[0].pid, std::process::id() as i32);
        assert_eq!(chain[1].pid, chain[0].ppid);
        let all = ancestry();
        assert_eq!(
            all[..chain.len()],
            chain.iter().map(|p| p.pid).collect::<Vec<_>>()
        );
        assert_eq!(all.last(), Some(&1));
    }
}
