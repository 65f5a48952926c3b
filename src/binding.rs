//! Core binding (`qsub -binding linear:2`). Checked on Grid Engine 8.1.9: in `set` mode
//! (the default) the shepherd binds itself to the cores the scheduler chose before it starts
//! the job, so the starter inherits that CPU affinity and a native job runs on those cores
//! only (`SGE_BINDING` names them too). In `env` mode only `SGE_BINDING` is set, in `pe` mode
//! only the `$PE_HOSTFILE` names them (`socket,core`): nothing is bound, and qdock binds
//! nothing either; the hints reach the container as they reach a native job. A container is
//! no child of the starter: in `set` mode it gets the starter's cores as its cpuset.
//!
//! The affinity is the one fact used, never `SGE_BINDING`: the variable is the caller's to
//! set, the affinity only the shepherd's. (A process of the same user can change the
//! starter's affinity, as it can a native job's: that gains the container no more than the
//! whole machine, which an unbound job has anyway.)

/// The cpuset to give the container: `None` when the starter may run on every online CPU
/// (nothing was bound), else the starter's CPUs as a cpuset list (`0-2,5`).
pub fn cpuset(affinity: &[usize], online: usize) -> Option<String> {
    if affinity.is_empty() || affinity.len() >= online {
        return None;
    }
    Some(cpu_list(affinity))
}

/// `[0, 1, 2, 5]` -> `0-2,5`, the list format of cpusets and `/proc/*/status`.
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for cpu in sorted {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == cpu => *end = cpu,
            _ => ranges.push((cpu, cpu)),
        }
    }
    ranges
        .iter()
        .map(|&(start, end)| {
            if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// This process's CPU affinity and the number of online CPUs.
pub fn of_process() -> (Vec<usize>, usize) {
    let affinity = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default();
    let online = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    (affinity, online)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_compress_ranges() {
        assert_eq!(cpu_list(&[0, 1, 2, 5]), "0-2,5");
        assert_eq!(cpu_list(&[1]), "1");
        assert_eq!(cpu_list(&[7, 3, 4, 3]), "3-4,7");
        assert_eq!(cpu_list(&[0, 2, 4]), "0,2,4");
    }

    #[test]
    fn only_a_narrower_affinity_binds() {
        // linear:1 on a 2-CPU host chose core 1.
        assert_eq!(cpuset(&[1], 2).as_deref(), Some("1"));
        assert_eq!(cpuset(&[2, 3], 8).as_deref(), Some("2-3"));
        // Unbound: every online CPU (a job without -binding, or env/pe mode).
        assert_eq!(cpuset(&[0, 1], 2), None);
        // Unknown affinity: no cpuset rather than a wrong one.
        assert_eq!(cpuset(&[], 2), None);
    }
}
