//! What a container used, exactly: CPU (user, system), peak memory and block I/O, as the
//! kernel counts them in the container's cgroup, which is also what the engine's stats
//! report. Reading them ([`probe`]) is I/O; turning the cgroup files into a [`Usage`] and a
//! line for people is pure and lives here. [`record`] and [`ledger`] keep one line per job
//! in a per-host record that `qdock usage` reads.

pub mod ledger;
pub mod probe;
pub mod record;

use serde::{Deserialize, Serialize};

/// A container's usage over its whole life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All CPU time of the container's processes, to the nanosecond (`cpuacct.usage`, the
    /// engine's `total_usage`).
    pub cpu_ns: u64,
    /// Its split into user and system time, as the kernel samples it at each timer tick
    /// (`cpuacct.usage_user`, `cpuacct.usage_sys`): the two need not add up to `cpu_ns`.
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// The cgroup's high-water mark: anonymous memory, page cache and kernel memory charged
    /// to the container, as `memory.max_usage_in_bytes` (the engine's `max_usage`).
    pub peak_memory_bytes: u64,
    pub io_read_bytes: u64,
    pub io_write_bytes: u64,
}

/// A [`Usage`] and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub usage: Usage,
    /// Read after the container's last process ended: nothing is missing. Otherwise the last
    /// periodic sample, which misses what the job used after it.
    pub exact: bool,
}

/// The cgroup v1 files a [`Usage`] is made of, as read.
pub struct CgroupV1Text<'a> {
    /// `cpuacct.usage`, `cpuacct.usage_user`, `cpuacct.usage_sys`: nanoseconds.
    pub cpu: &'a str,
    pub cpu_user: &'a str,
    pub cpu_system: &'a str,
    /// `memory.max_usage_in_bytes`.
    pub memory_peak: &'a str,
    /// `blkio.throttle.io_service_bytes_recursive`: `MAJ:MIN Op bytes` lines, as the engine
    /// reads them for its stats (the throttle files count every device, whatever scheduler).
    pub blkio: &'a str,
}

impl Usage {
    pub fn from_cgroup_v1(text: &CgroupV1Text) -> Result<Usage, String> {
        let number = |name: &str, value: &str| {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{name} holds {:?}, not a number", value.trim()))
        };
        let (io_read_bytes, io_write_bytes) = blkio_bytes(text.blkio);
        Ok(Usage {
            cpu_ns: number("cpuacct.usage", text.cpu)?,
            cpu_user_ns: number("cpuacct.usage_user", text.cpu_user)?,
            cpu_system_ns: number("cpuacct.usage_sys", text.cpu_system)?,
            peak_memory_bytes: number("memory.max_usage_in_bytes", text.memory_peak)?,
            io_read_bytes,
            io_write_bytes,
        })
    }

    /// `cpu 21.650 s (about 21.448 s user, 0.204 s system), peak memory 64.3 MiB, block I/O
    /// read 0 B, written 12.0 KiB`.
    pub fn describe(&self) -> String {
        format!(
            "cpu {} (about {} user, {} system), peak memory {}, block I/O read {}, written {}",
            seconds(self.cpu_ns),
            seconds(self.cpu_user_ns),
            seconds(self.cpu_system_ns),
            bytes(self.peak_memory_bytes),
            bytes(self.io_read_bytes),
            bytes(self.io_write_bytes)
        )
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

/// The path of a process's cgroup in the cgroup v1 hierarchy of `controller`, from
/// `/proc/<pid>/cgroup` (`4:memory:/docker/<id>`; `2:cpu,cpuacct:/…` when mounted together).
pub fn cgroup_v1_path<'a>(proc_cgroup: &'a str, controller: &str) -> Option<&'a str> {
    proc_cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then_some(path)
    })
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

/// Read and written bytes summed over the devices; the `Total` line repeats them.
fn blkio_bytes(text: &str) -> (u64, u64) {
    let mut sums = (0u64, 0u64);
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_device), Some(op), Some(value)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        match op {
            "Read" => sums.0 += value,
            "Write" => sums.1 += value,
            _ => {}
        }
    }
    sums
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

    fn text<'a>(user: &'a str, system: &'a str, peak: &'a str, blkio: &'a str) -> CgroupV1Text<'a> {
        CgroupV1Text {
            cpu: "21650500000\n",
            cpu_user: user,
            cpu_system: system,
            memory_peak: peak,
            blkio,
        }
    }

    #[test]
    fn cgroup_v1_files_make_a_usage() {
        let usage =
            Usage::from_cgroup_v1(&text("21448000000\n", "202500000\n", "67420160\n", BLKIO))
                .unwrap();
        assert_eq!(
            usage,
            Usage {
                cpu_ns: 21_650_500_000,
                cpu_user_ns: 21_448_000_000,
                cpu_system_ns: 202_500_000,
                peak_memory_bytes: 67_420_160,
                io_read_bytes: 5120,
                io_write_bytes: 12288,
            }
        );
    }

    #[test]
    fn cgroup_paths_are_found_per_controller() {
        let text = "9:name=systemd:/docker/abc\n4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n\
                    0::/docker/abc\n";
        assert_eq!(cgroup_v1_path(text, "memory"), Some("/docker/abc"));
        assert_eq!(cgroup_v1_path(text, "cpuacct"), Some("/docker/abc"));
        assert_eq!(cgroup_v1_path(text, "blkio"), None);
        assert_eq!(cgroup_v1_path(text, "cpuac"), None);
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
        let e = Usage::from_cgroup_v1(&text("1", "x", "1", "")).unwrap_err();
        assert!(e.contains("cpuacct.usage_sys"), "{e}");
        // No block I/O at all is a container that did none.
        let usage = Usage::from_cgroup_v1(&text("1", "2", "3", "Total 0\n")).unwrap();
        assert_eq!((usage.io_read_bytes, usage.io_write_bytes), (0, 0));
    }

    #[test]
    fn the_line_says_what_was_used_and_how_exactly() {
        let usage = Usage {
            cpu_ns: 21_650_999_999,
            cpu_user_ns: 21_448_000_000,
            cpu_system_ns: 204_000_000,
            peak_memory_bytes: 67_420_160,
            io_read_bytes: 0,
            io_write_bytes: 12288,
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
