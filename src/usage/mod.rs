//! What a container used, exactly: CPU (user, system), peak memory and block I/O, as the
//! kernel counts them in the container's cgroup, which is also what the engine's stats
//! report, on either cgroup hierarchy: v1 (a hierarchy per controller) or v2 (the unified
//! one). Reading them ([`probe`]) is I/O; which files a hierarchy has, turning them into a
//! [`Usage`] and a line for people is pure and lives here. [`record`] and [`ledger`] keep one
//! line per job in a per-host record that `qdock usage` reads.

pub mod ledger;
pub mod probe;
pub mod record;

use serde::{Deserialize, Serialize};

/// A container's usage over its whole life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All CPU time of the container's processes (v1: `cpuacct.usage`, to the nanosecond;
    /// v2: `cpu.stat` `usage_usec`, to the microsecond): the engine's `total_usage`.
    pub cpu_ns: u64,
    /// Its split into user and system time, from the kernel's samples at each timer tick
    /// (v1: `cpuacct.usage_user`, `cpuacct.usage_sys`, which need not add up to `cpu_ns`;
    /// v2: `user_usec`, `system_usec`, which the kernel scales to add up to it).
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// The cgroup's high-water mark: anonymous memory, page cache and kernel memory charged
    /// to the container (v1: `memory.max_usage_in_bytes`, the engine's `max_usage`; v2:
    /// `memory.peak`). See [`Usage::peak_memory_sampled`].
    pub peak_memory_bytes: u64,
    /// The kernel keeps no high-water mark (cgroup v2 before Linux 5.19 has no
    /// `memory.peak`): `peak_memory_bytes` is the highest `memory.current` the readings saw,
    /// a lower bound of the peak. Absent from records written before (and from all others).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub peak_memory_sampled: bool,
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
    /// Processes of the container the kernel killed for want of memory, as its memory
    /// cgroup counts them (v1: `memory.oom_control`, v2: `memory.events`, each an `oom_kill`
    /// line). The engine's `State.OOMKilled` is not enough: Podman 4.3 on cgroup v1 never
    /// sets it. Absent from records of jobs without one, and from those written before.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub oom_kills: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A [`Usage`] and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub usage: Usage,
    /// Read after the container's last process ended: nothing is missing. Otherwise the last
    /// periodic sample, which misses what the job used after it.
    pub exact: bool,
}

/// Where the kernel keeps the cgroup controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v1: a hierarchy per controller, each mounted at a directory of its own (also
    /// the hybrid layout, whose unified hierarchy holds no controller).
    V1,
    /// cgroup v2: one unified hierarchy for every controller.
    V2,
}

/// Which memory figure the kernel offers in a cgroup v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// `memory.peak` (Linux 5.19 and later).
    Peak,
    /// Only `memory.current`: its highest reading stands for the peak.
    Current,
}

/// One file of a container's cgroup: the v1 controller whose hierarchy holds it (empty on
/// v2, which has one hierarchy), and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupFile {
    pub controller: &'static str,
    pub name: &'static str,
}

const fn file(controller: &'static str, name: &'static str) -> CgroupFile {
    CgroupFile { controller, name }
}

/// The v1 controller whose hierarchy lists the container's processes and names its cgroup
/// in `/proc/<pid>/cgroup`: every engine puts the container in it.
const V1_PROCS: &str = "cpuacct";

/// v1: nanoseconds in three files; `memory.max_usage_in_bytes`;
/// `blkio.throttle.io_service_bytes_recursive`, `MAJ:MIN Op bytes` lines, as the engine
/// reads them for its stats (the throttle files count every device, whatever scheduler);
/// `memory.oom_control`, a flat keyed file.
const V1_FILES: [CgroupFile; 6] = [
    file(V1_PROCS, "cpuacct.usage"),
    file(V1_PROCS, "cpuacct.usage_user"),
    file(V1_PROCS, "cpuacct.usage_sys"),
    file("memory", "memory.max_usage_in_bytes"),
    file("blkio", "blkio.throttle.io_service_bytes_recursive"),
    file("memory", "memory.oom_control"),
];
/// v2: `cpu.stat` (`usage_usec` and its split, in every cgroup whether or not the cpu
/// controller is enabled there), a memory file, `io.stat` (`MAJ:MIN rbytes=… wbytes=…`
/// lines, one per device the cgroup used), `memory.events`, a flat keyed file there
/// wherever the memory file is.
const V2_FILES: [CgroupFile; 4] = [
    file("", "cpu.stat"),
    file("", "memory.peak"),
    file("", "io.stat"),
    file("", "memory.events"),
];
const V2_FILES_WITHOUT_PEAK: [CgroupFile; 4] = [
    file("", "cpu.stat"),
    file("", "memory.current"),
    file("", "io.stat"),
    file("", "memory.events"),
];

impl Hierarchy {
    /// The directory below the cgroup mount that holds `controller`'s hierarchy.
    pub fn mount_of(self, controller: &'static str) -> &'static str {
        match self {
            Hierarchy::V1 => controller,
            Hierarchy::V2 => "",
        }
    }

    /// The directory below the cgroup mount whose hierarchy lists the container's processes.
    pub fn procs_mount(self) -> &'static str {
        self.mount_of(V1_PROCS)
    }

    /// The files a [`Usage`] is read from, in the order [`Hierarchy::usage`] takes their
    /// texts; `memory` matters on v2 only.
    pub fn files(self, memory: Memory) -> &'static [CgroupFile] {
        match (self, memory) {
            (Hierarchy::V1, _) => &V1_FILES,
            (Hierarchy::V2, Memory::Peak) => &V2_FILES,
            (Hierarchy::V2, Memory::Current) => &V2_FILES_WITHOUT_PEAK,
        }
    }

    /// The usage that the texts of [`Hierarchy::files`] (the same `memory`, in that order)
    /// tell.
    pub fn usage(self, memory: Memory, texts: &[String]) -> Result<Usage, String> {
        let files = self.files(memory);
        if texts.len() != files.len() {
            return Err(format!(
                "{} cgroup files read, not {}",
                texts.len(),
                files.len()
            ));
        }
        let number = |i: usize| {
            let value = texts[i].trim();
            value
                .parse::<u64>()
                .map_err(|_| format!("{} holds {value:?}, not a number", files[i].name))
        };
        match self {
            Hierarchy::V1 => {
                let (io_read_bytes, io_write_bytes) = blkio_bytes(&texts[4]);
                Ok(Usage {
                    cpu_ns: number(0)?,
                    cpu_user_ns: number(1)?,
                    cpu_system_ns: number(2)?,
                    peak_memory_bytes: number(3)?,
                    peak_memory_sampled: false,
                    io_read_bytes,
                    io_write_bytes,
                    oom_kills: oom_kills(&texts[5]),
                })
            }
            Hierarchy::V2 => {
                let usec = |key: &str| {
                    flat_keyed(&texts[0], key)
                        .map(|us| us.saturating_mul(1000))
                        .ok_or_else(|| format!("cpu.stat has no number {key}"))
                };
                let (io_read_bytes, io_write_bytes) = io_stat_bytes(&texts[2]);
                Ok(Usage {
                    cpu_ns: usec("usage_usec")?,
                    cpu_user_ns: usec("user_usec")?,
                    cpu_system_ns: usec("system_usec")?,
                    peak_memory_bytes: number(1)?,
                    peak_memory_sampled: memory == Memory::Current,
                    io_read_bytes,
                    io_write_bytes,
                    oom_kills: oom_kills(&texts[3]),
                })
            }
        }
    }

    /// A process's cgroup in this hierarchy, from `/proc/<pid>/cgroup`: on v1 the line of
    /// the hierarchy that lists the processes (`2:cpu,cpuacct:/docker/<id>`), on v2 the
    /// unified one's (`0::/docker/<id>`), which a v1 host may list too, holding no
    /// controller.
    pub fn cgroup_of(self, proc_cgroup: &str) -> Option<&str> {
        proc_cgroup.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let listed = match self {
                Hierarchy::V1 => controllers.split(',').any(|c| c == V1_PROCS),
                Hierarchy::V2 => id == "0" && controllers.is_empty(),
            };
            listed.then_some(path)
        })
    }
}

impl Usage {
    /// This reading, told with the one before it: where the kernel keeps no peak, the
    /// highest memory any reading saw stands for it.
    pub fn after(self, earlier: Option<&Usage>) -> Usage {
        match earlier {
            Some(e) if self.peak_memory_sampled => Usage {
                peak_memory_bytes: self.peak_memory_bytes.max(e.peak_memory_bytes),
                ..self
            },
            _ => self,
        }
    }

    /// `cpu 21.650 s (about 21.448 s user, 0.204 s system), peak memory 64.3 MiB, block I/O
    /// read 0 B, written 12.0 KiB`.
    pub fn describe(&self) -> String {
        format!(
            "cpu {} (about {} user, {} system), {}, block I/O read {}, written {}",
            seconds(self.cpu_ns),
            seconds(self.cpu_user_ns),
            seconds(self.cpu_system_ns),
            self.memory(),
            bytes(self.io_read_bytes),
            bytes(self.io_write_bytes)
        )
    }

    /// `peak memory 64.3 MiB`, or what stands for it, named, where the kernel keeps no peak.
    pub fn memory(&self) -> String {
        let amount = bytes(self.peak_memory_bytes);
        if self.peak_memory_sampled {
            format!("memory {amount} at its highest reading (no memory.peak in this kernel)")
        } else {
            format!("peak memory {amount}")
        }
    }
}

impl Measured {
    fn describe(&self) -> String {
        let note = if self.exact {
            ""
        } else {
            " (last sample before the end: the rest is missing)"
        };
        format!("{}{note}", self.usage.describe())
    }
}

/// The job's last `qdock:` line: the wall time and what the cgroup said, named when it is
/// missing, and why.
pub fn line(wall_ns: u64, measured: &Result<Measured, String>) -> String {
    match measured {
        Ok(m) => format!("usage: wall {}, {}", seconds(wall_ns), m.describe()),
        Err(problem) => format!(
            "usage: wall {}; cpu, memory and block I/O not measured: {problem}",
            seconds(wall_ns)
        ),
    }
}

/// The container's run time from the engine's `State.StartedAt` and `State.FinishedAt`
/// (`2026-12-05T10:11:12.123456789Z`: runc's own clock readings, to the nanosecond); None
/// unless both are times in UTC and the second is not before the first.
pub fn wall_ns(started_at: &str, finished_at: &str) -> Option<u64> {
    let (start, end) = (unix_ns(started_at)?, unix_ns(finished_at)?);
    u64::try_from(end.checked_sub(start)?).ok()
}

/// Nanoseconds since the epoch of an RFC 3339 time in UTC, as the engine writes it.
fn unix_ns(text: &str) -> Option<i128> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|n| n.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut hms = hms.split(':').map(|n| n.parse::<i64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || fraction.len() > 9 {
        return None;
    }
    let nanos: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    // Howard Hinnant's days-from-civil, the inverse of `utc`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// Whether a process's cgroup `proc_path` (its line in `/proc/<pid>/cgroup`) is the
/// container's cgroup `path` (below the hierarchy's root) or a cgroup below it: crun, under
/// systemd on cgroup v2, runs the processes in `<scope>/container`.
pub fn is_within(proc_path: &str, path: &str) -> bool {
    proc_path.ends_with(path) || proc_path.contains(&format!("{path}/"))
}

/// Whether `/proc/<pid>/status` is that of the first process (PID 1) of its pid namespace:
/// the last `NSpid` entry is its pid there.
pub fn is_namespace_init(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|pids| pids.split_whitespace().last())
        == Some("1")
}

/// The number after `key` in a flat keyed file (`usage_usec 6314698` lines: `cpu.stat`,
/// `memory.events`, v1's `memory.oom_control`).
fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, value) = line.split_once(' ')?;
        (k == key).then(|| value.trim().parse().ok())?
    })
}

/// The OOM kills a memory cgroup counted: the `oom_kill` line of v1's `memory.oom_control`
/// (`oom_kill_disable 0`, `under_oom 0`, `oom_kill 1`) or of v2's `memory.events` (`low 0`,
/// `high 0`, `max 14`, `oom 1`, `oom_kill 1`, …; `oom` counts the times the limit was hit,
/// not kills). A v1 kernel before 4.13 has no such line: none counted, the engine's word
/// alone then tells.
fn oom_kills(text: &str) -> u64 {
    flat_keyed(text, "oom_kill").unwrap_or(0)
}

/// Read and written bytes summed over the devices of `io.stat`, a nested keyed file:
/// `254:0 rbytes=512000 wbytes=0 rios=6 wios=0 dbytes=0 dios=0` (the fields after the
/// device vary with the kernel; a device appears once it saw I/O).
fn io_stat_bytes(text: &str) -> (u64, u64) {
    let fields = text
        .lines()
        .flat_map(|l| l.split_whitespace().skip(1))
        .filter_map(|field| field.split_once('='));
    read_and_written(fields, "rbytes", "wbytes")
}

/// Read and written bytes summed over the devices of v1's
/// `blkio.throttle.io_service_bytes_recursive` (`8:0 Read 4096` lines); the `Total` line
/// repeats them.
fn blkio_bytes(text: &str) -> (u64, u64) {
    let ops = text.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let (_device, op, value) = (fields.next()?, fields.next()?, fields.next()?);
        Some((op, value))
    });
    read_and_written(ops, "Read", "Write")
}

/// The sums of the numbers named `read` and `written` among (name, number) pairs.
fn read_and_written<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    read: &str,
    written: &str,
) -> (u64, u64) {
    pairs.fold((0, 0), |(r, w), (name, value)| match value.parse::<u64>() {
        Ok(n) if name == read => (r.saturating_add(n), w),
        Ok(n) if name == written => (r, w.saturating_add(n)),
        _ => (r, w),
    })
}

/// `21.650 s`: milliseconds are the finest a person compares.
pub fn seconds(ns: u64) -> String {
    format!(
        "{}.{:03} s",
        ns / 1_000_000_000,
        ns % 1_000_000_000 / 1_000_000
    )
}

/// `64.3 MiB`; below 1 KiB in bytes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `2026-11-29 14:58:22 UTC` from Unix seconds (the proleptic Gregorian calendar, as
/// `date -u`), without a time-zone database: the record is read on any host.
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLKIO: &str = "8:0 Read 4096\n8:0 Write 12288\n8:0 Sync 16384\n8:0 Async 0\n\
                         8:0 Discard 0\n8:0 Total 16384\n8:16 Read 1024\n8:16 Write 0\nTotal 16384\n";

    /// As Linux 6.18 writes it for a container none of whose processes was killed.
    const OOM_CONTROL: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";

    fn v1(user: &str, system: &str, peak: &str, blkio: &str) -> Vec<String> {
        ["21650500000\n", user, system, peak, blkio, OOM_CONTROL]
            .map(String::from)
            .to_vec()
    }

    /// As a 6.1 kernel wrote them for a container of the cgroupfs driver (its cpu
    /// controller enabled, hence the throttling keys).
    const CPU_STAT: &str = "usage_usec 6314698\nuser_usec 6134049\nsystem_usec 180649\n\
                            nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\n\
                            burst_usec 0\n";
    /// The kernel's documented example (Documentation/admin-guide/cgroup-v2.rst), two devices.
    const IO_STAT: &str = "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n\
                           8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n";

    /// As a 6.1 kernel writes it for a container that never reached its limit.
    const MEMORY_EVENTS: &str = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n";

    fn v2(cpu_stat: &str, memory: &str, io_stat: &str) -> Vec<String> {
        [cpu_stat, memory, io_stat, MEMORY_EVENTS]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn cgroup_v1_files_make_a_usage() {
        let texts = v1("21448000000\n", "202500000\n", "67420160\n", BLKIO);
        let usage = Hierarchy::V1.usage(Memory::Peak, &texts).unwrap();
        assert_eq!(
            usage,
            Usage {
                cpu_ns: 21_650_500_000,
                cpu_user_ns: 21_448_000_000,
                cpu_system_ns: 202_500_000,
                peak_memory_bytes: 67_420_160,
                peak_memory_sampled: false,
                io_read_bytes: 5120,
                io_write_bytes: 12288,
                oom_kills: 0,
            }
        );
        // v1 has a peak whatever a v2 kernel lacks.
        assert_eq!(Hierarchy::V1.usage(Memory::Current, &texts), Ok(usage));
    }

    #[test]
    fn cgroup_v2_files_make_a_usage() {
        let usage = Hierarchy::V2
            .usage(Memory::Peak, &v2(CPU_STAT, "7430144\n", IO_STAT))
            .unwrap();
        assert_eq!(
            usage,
            Usage {
                cpu_ns: 6_314_698_000,
                cpu_user_ns: 6_134_049_000,
                cpu_system_ns: 180_649_000,
                peak_memory_bytes: 7_430_144,
                peak_memory_sampled: false,
                io_read_bytes: 1_459_200 + 90_430_464,
                io_write_bytes: 314_773_504 + 299_008_000,
                oom_kills: 0,
            }
        );
        // Without the cpu controller cpu.stat has the three times only; io.stat is empty
        // until the container did I/O; an older kernel writes fewer fields per device.
        let bare = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
        let usage = Hierarchy::V2
            .usage(Memory::Peak, &v2(bare, "4096\n", ""))
            .unwrap();
        assert_eq!((usage.cpu_ns, usage.io_read_bytes), (1_500_000, 0));
        let older = "254:0 rbytes=512 wbytes=1024 rios=1 wios=2\n";
        let usage = Hierarchy::V2
            .usage(Memory::Peak, &v2(bare, "4096\n", older))
            .unwrap();
        assert_eq!((usage.io_read_bytes, usage.io_write_bytes), (512, 1024));
    }

    #[test]
    fn the_memory_cgroup_counts_the_oom_kills_on_either_hierarchy() {
        // v1: a container one of whose processes was killed, the memory freed since.
        let mut texts = v1("1", "2", "3", "");
        texts[5] = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n".into();
        let usage = Hierarchy::V1.usage(Memory::Peak, &texts).unwrap();
        assert_eq!(usage.oom_kills, 1);
        // Before Linux 4.13 the file has no count: none is told.
        texts[5] = "oom_kill_disable 0\nunder_oom 0\n".into();
        let usage = Hierarchy::V1.usage(Memory::Peak, &texts).unwrap();
        assert_eq!(usage.oom_kills, 0);
        // v2: `oom` (the limit hit) and `oom_group_kill` are other counts.
        let mut texts = v2(CPU_STAT, "4096\n", "");
        texts[3] = "low 0\nhigh 0\nmax 31\noom 3\noom_kill 2\noom_group_kill 0\n".into();
        for memory in [Memory::Peak, Memory::Current] {
            assert_eq!(Hierarchy::V2.usage(memory, &texts).unwrap().oom_kills, 2);
        }
        assert_eq!(
            Hierarchy::V2
                .usage(Memory::Peak, &v2(CPU_STAT, "4096\n", ""))
                .unwrap()
                .oom_kills,
            0
        );
    }

    #[test]
    fn a_kernel_without_memory_peak_gives_the_highest_reading_named_as_such() {
        assert_eq!(
            Hierarchy::V2.files(Memory::Current)[1].name,
            "memory.current"
        );
        let reading = |current: &str| {
            Hierarchy::V2
                .usage(Memory::Current, &v2(CPU_STAT, current, ""))
                .unwrap()
        };
        let during = reading("67420160\n");
        assert!(during.peak_memory_sampled);
        // At the end only the page cache is left: the highest reading stands.
        let end = reading("1069056\n").after(Some(&during));
        assert_eq!(end.peak_memory_bytes, 67_420_160);
        assert_eq!(end.cpu_ns, 6_314_698_000);
        assert!(
            end.describe()
                .contains("memory 64.3 MiB at its highest reading (no memory.peak in this kernel)")
        );
        // A kept peak is the kernel's own and never replaced by an earlier reading.
        let kept = |peak: &str| {
            Hierarchy::V2
                .usage(Memory::Peak, &v2(CPU_STAT, peak, ""))
                .unwrap()
        };
        assert_eq!(
            kept("4096").after(Some(&kept("8192"))).peak_memory_bytes,
            4096
        );
        assert_eq!(reading("4096").after(None).peak_memory_bytes, 4096);
    }

    #[test]
    fn each_hierarchy_has_its_files_where_the_kernel_mounts_them() {
        assert_eq!(Hierarchy::V1.procs_mount(), "cpuacct");
        assert_eq!(Hierarchy::V1.mount_of("memory"), "memory");
        assert_eq!(Hierarchy::V2.procs_mount(), "");
        let names = |h: Hierarchy| -> Vec<_> {
            h.files(Memory::Peak)
                .iter()
                .map(|f| (h.mount_of(f.controller), f.name))
                .collect()
        };
        assert_eq!(
            names(Hierarchy::V2),
            [
                ("", "cpu.stat"),
                ("", "memory.peak"),
                ("", "io.stat"),
                ("", "memory.events")
            ]
        );
        assert_eq!(
            names(Hierarchy::V1)[3],
            ("memory", "memory.max_usage_in_bytes")
        );
        assert_eq!(names(Hierarchy::V1)[5], ("memory", "memory.oom_control"));
    }

    #[test]
    fn a_process_cgroup_is_found_in_each_hierarchy() {
        // A v1 host lists the unified hierarchy too (systemd's), holding no controller.
        let hybrid = "9:name=systemd:/docker/abc\n4:memory:/docker/abc\n\
                      2:cpu,cpuacct:/site/abc\n0::/system.slice/docker.service\n";
        assert_eq!(Hierarchy::V1.cgroup_of(hybrid), Some("/site/abc"));
        assert_eq!(
            Hierarchy::V2.cgroup_of(hybrid),
            Some("/system.slice/docker.service")
        );
        assert_eq!(Hierarchy::V1.cgroup_of("3:cpuacct_x:/a\n"), None);
        let unified = "0::/machine.slice/libpod-abc.scope/container\n";
        assert_eq!(
            Hierarchy::V2.cgroup_of(unified),
            Some("/machine.slice/libpod-abc.scope/container")
        );
        assert_eq!(Hierarchy::V1.cgroup_of(unified), None);
        // A named v1 hierarchy with id 0 would still name a controller-less one only.
        assert_eq!(Hierarchy::V2.cgroup_of("1:name=systemd:/x\n"), None);
    }

    #[test]
    fn a_process_is_within_its_containers_cgroup_or_below_it() {
        let scope = "machine.slice/libpod-abc.scope";
        assert!(is_within("/machine.slice/libpod-abc.scope", scope));
        assert!(is_within(
            "/machine.slice/libpod-abc.scope/container",
            scope
        ));
        assert!(is_within("/docker/abc", "docker/abc"));
        assert!(!is_within("/machine.slice/libpod-abcd.scope", scope));
        assert!(!is_within(
            "/machine.slice/libpod-abc.scope.x/container",
            scope
        ));
        assert!(!is_within("/docker/abc2", "docker/abc"));
    }

    #[test]
    fn the_first_process_of_a_container_is_pid_1_inside() {
        assert!(is_namespace_init(
            "Name:\tdocker-init\nNSpid:\t24667\t1\nNStgid:\t1\n"
        ));
        assert!(!is_namespace_init("NSpid:\t24668\t7\n"));
        assert!(!is_namespace_init("Name:\tx\n"));
    }

    #[test]
    fn a_garbled_file_is_named() {
        let e = Hierarchy::V1
            .usage(Memory::Peak, &v1("1", "x", "1", ""))
            .unwrap_err();
        assert!(e.contains("cpuacct.usage_sys"), "{e}");
        // No block I/O at all is a container that did none.
        let usage = Hierarchy::V1
            .usage(Memory::Peak, &v1("1", "2", "3", "Total 0\n"))
            .unwrap();
        assert_eq!((usage.io_read_bytes, usage.io_write_bytes), (0, 0));
        let e = Hierarchy::V2
            .usage(Memory::Peak, &v2("usage_usec x\n", "1", ""))
            .unwrap_err();
        assert!(e.contains("cpu.stat") && e.contains("usage_usec"), "{e}");
        let e = Hierarchy::V2
            .usage(Memory::Current, &v2(CPU_STAT, "max\n", ""))
            .unwrap_err();
        assert!(e.contains("memory.current"), "{e}");
        let e = Hierarchy::V2.usage(Memory::Peak, &[]).unwrap_err();
        assert!(e.contains("0 cgroup files"), "{e}");
    }

    #[test]
    fn the_line_says_what_was_used_and_how_exactly() {
        let usage = Usage {
            cpu_ns: 21_650_999_999,
            cpu_user_ns: 21_448_000_000,
            cpu_system_ns: 204_000_000,
            peak_memory_bytes: 67_420_160,
            peak_memory_sampled: false,
            io_read_bytes: 0,
            io_write_bytes: 12288,
            oom_kills: 0,
        };
        let exact = Ok(Measured { usage, exact: true });
        assert_eq!(
            line(21_700_000_000, &exact),
            "usage: wall 21.700 s, cpu 21.650 s (about 21.448 s user, 0.204 s system), \
             peak memory 64.3 MiB, block I/O read 0 B, written 12.0 KiB"
        );
        let sampled = Ok(Measured {
            usage,
            exact: false,
        });
        assert!(line(1, &sampled).ends_with("the rest is missing)"));
        let missed = Err("the job ended before its cgroup could be found".to_string());
        assert_eq!(
            line(4_000_000, &missed),
            "usage: wall 0.004 s; cpu, memory and block I/O not measured: the job ended before its cgroup could be found"
        );
    }

    #[test]
    fn the_engines_start_and_end_give_the_wall_time() {
        assert_eq!(
            wall_ns(
                "2026-12-05T10:11:12.123456789Z",
                "2026-12-05T10:11:12.127456789Z"
            ),
            Some(4_000_000)
        );
        // Across a day, a leap day and a year, with the engine's shorter fractions.
        assert_eq!(
            wall_ns("2023-12-31T23:59:59.5Z", "2024-03-01T00:00:00Z"),
            Some((60 * 86_400 + 1) * 1_000_000_000 - 500_000_000)
        );
        assert_eq!(unix_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_ns("2026-11-30T14:58:22Z"),
            Some(1_796_050_702 * 1_000_000_000)
        );
        // Never started (the engine's zero time is year 1), or not a UTC time: not known.
        assert_eq!(
            wall_ns("2026-12-05T10:11:12Z", "0001-01-01T00:00:00Z"),
            None
        );
        assert_eq!(
            wall_ns("2026-12-05T10:11:12+01:00", "2026-12-05T10:11:13Z"),
            None
        );
        assert_eq!(wall_ns("", "2026-12-05T10:11:13Z"), None);
    }

    #[test]
    fn sizes_and_times_read_as_people_write_them() {
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(seconds(5), "0.000 s");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_050_702), "2026-11-30 14:58:22 UTC");
    }
}
