//! Grid Engine enforces `-l h_vmem`, `h_cpu`, `h_fsize`… as rlimits on the starter. A container
//! is not the starter's child, so the limits are carried over explicitly or the job escapes them.

use nix::sys::resource::{Resource, getrlimit};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// The memory cgroup limit, from RLIMIT_AS (`h_vmem`).
    pub memory: Option<i64>,
    /// Docker ulimits: (name, soft, hard).
    pub ulimits: Vec<(String, i64, i64)>,
}

/// The rlimits that have a Docker ulimit of the same meaning.
const CARRIED: [(&str, Resource); 5] = [
    ("cpu", Resource::RLIMIT_CPU),
    ("fsize", Resource::RLIMIT_FSIZE),
    ("data", Resource::RLIMIT_DATA),
    ("stack", Resource::RLIMIT_STACK),
    ("core", Resource::RLIMIT_CORE),
];

const INFINITY: u64 = nix::libc::RLIM_INFINITY;

/// Pure mapping: `address_space` is RLIMIT_AS (soft, hard), `others` one entry per CARRIED.
pub fn from_rlimits(address_space: (u64, u64), others: &[(&str, u64, u64)]) -> Limits {
    let finite = |v: u64| (v != INFINITY).then(|| i64::try_from(v).unwrap_or(i64::MAX));
    let memory = finite(address_space.0.min(address_space.1));
    let ulimits = others
        .iter()
        .filter(|(_, soft, hard)| *soft != INFINITY || *hard != INFINITY)
        .map(|(name, soft, hard)| {
            let cap = |v: u64| finite(v).unwrap_or(-1);
            (name.to_string(), cap(*soft), cap(*hard))
        })
        .collect();
    Limits { memory, ulimits }
}

/// Reads this process's rlimits.
pub fn of_process() -> Limits {
    let get = |r| getrlimit(r).unwrap_or((INFINITY, INFINITY));
    let others: Vec<(&str, u64, u64)> = CARRIED
        .iter()
        .map(|(name, r)| {
            let (soft, hard) = get(*r);
            (*name, soft, hard)
        })
        .collect();
    from_rlimits(get(Resource::RLIMIT_AS), &others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_carries_nothing() {
        let l = from_rlimits((INFINITY, INFINITY), &[("cpu", INFINITY, INFINITY)]);
        assert_eq!(l, Limits::default());
    }

    #[test]
    fn h_vmem_becomes_memory_and_finite_limits_carry() {
        let l = from_rlimits(
            (300 << 20, 300 << 20),
            &[
                ("cpu", 60, 60),
                ("core", 0, INFINITY),
                ("fsize", INFINITY, INFINITY),
            ],
        );
        assert_eq!(l.memory, Some(300 << 20));
        assert_eq!(
            l.ulimits,
            vec![("cpu".to_string(), 60, 60), ("core".to_string(), 0, -1)]
        );
    }
}
