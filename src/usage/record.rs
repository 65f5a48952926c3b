//! One job in the per-host record: who ran what, exactly which image, when, how it ended and
//! what it used. A record is one JSON line: every value a user chose (image, queue) is
//! escaped by JSON, so no value can end a line or start another record.

use serde::{Deserialize, Serialize};

use super::{Measured, Usage, bytes, seconds, utc};
use crate::report::one_line;

/// Starts every record, so a record glued to a line cut short (the disk filled up) is still
/// found: inside a JSON string a quote is always escaped, so no value can contain it.
const MARK: &str = "{\"qdock_usage\":";
/// The record format's version.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// [`VERSION`]; first, see [`MARK`].
    pub qdock_usage: u32,
    pub host: String,
    pub cell: String,
    pub job: u64,
    /// 0 for a job that is no array.
    pub task: u64,
    pub owner: String,
    pub uid: u32,
    pub queue: String,
    /// Unix seconds: the start of the container, or of the native job.
    pub start: i64,
    /// None for a native job: the starter is gone once it ran the job.
    pub container: Option<Container>,
    /// The GPUs the job held here (see `gpu`), as `[gpus] devices` names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<String>,
}

/// What ran in the container and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    /// The image as the job asked for it.
    pub image: String,
    /// The image ID the engine resolved it to: the exact image, whatever tags say later.
    pub image_id: String,
    /// `repository@sha256:…`, when the image came from a registry.
    pub repo_digest: Option<String>,
    pub end: i64,
    /// The starter's exit code: the job's, or 128+N after signal N.
    pub exit: u8,
    /// How long the container ran, by the engine (`State.StartedAt` to `FinishedAt`), in
    /// nanoseconds; None when the engine could not say (and in records written before).
    #[serde(default)]
    pub wall_ns: Option<u64>,
    /// None when it could not be measured (say, the job ended before it could be).
    pub usage: Option<Recorded>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    #[serde(flatten)]
    pub usage: Usage,
    pub exact: bool,
}

impl From<Measured> for Recorded {
    fn from(m: Measured) -> Self {
        Recorded {
            usage: m.usage,
            exact: m.exact,
        }
    }
}

impl Record {
    /// The record's line, newline included: written in one write(2).
    pub fn line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a record always serializes");
        line.push('\n');
        line
    }

    /// `12.0`, as Grid Engine's tools name a task.
    pub fn key(&self) -> String {
        format!("{}.{}", self.job, self.task)
    }

    /// The record for people, one `name value` line each.
    pub fn describe(&self) -> String {
        let mut out = vec![
            format!(
                "job {} of {} (uid {}) on {}, cell {}, queue {}",
                self.key(),
                self.owner,
                self.uid,
                self.host,
                self.cell,
                self.queue
            ),
            format!("  started      {}", utc(self.start)),
        ];
        if !self.gpus.is_empty() {
            out.push(format!("  gpus         {}", self.gpus.join(", ")));
        }
        match &self.container {
            None => out.push("  image        none: the job ran natively".into()),
            Some(c) => {
                out.push(format!(
                    "  ended        {} ({} s)",
                    utc(c.end),
                    c.end - self.start
                ));
                out.push(format!("  exit         {}", c.exit));
                out.push(format!(
                    "  wall         {}",
                    c.wall_ns.map_or("not known".into(), seconds)
                ));
                out.push(format!("  image        {}", c.image));
                out.push(format!("  image ID     {}", c.image_id));
                out.push(format!(
                    "  repo digest  {}",
                    c.repo_digest
                        .as_deref()
                        .unwrap_or("none (not from a registry)")
                ));
                out.push(format!("  container    {}", c.name));
                match &c.usage {
                    None => out.push("  usage        not measured".into()),
                    Some(r) => {
                        let u = &r.usage;
                        out.push(format!(
                            "  cpu          {} (about {} user, {} system){}",
                            seconds(u.cpu_ns),
                            seconds(u.cpu_user_ns),
                            seconds(u.cpu_system_ns),
                            if r.exact {
                                ""
                            } else {
                                ", sampled: a lower bound"
                            }
                        ));
                        out.push(format!(
                            "  {}{} ({} bytes){}",
                            if u.peak_memory_sampled {
                                "memory       "
                            } else {
                                "peak memory  "
                            },
                            bytes(u.peak_memory_bytes),
                            u.peak_memory_bytes,
                            if u.peak_memory_sampled {
                                ", its highest reading: the kernel kept no peak"
                            } else {
                                ""
                            }
                        ));
                        out.push(format!(
                            "  block I/O    read {}, written {}",
                            bytes(u.io_read_bytes),
                            bytes(u.io_write_bytes)
                        ));
                        if u.oom_kills > 0 {
                            out.push(format!(
                                "  OOM kills    {} (processes killed for want of memory)",
                                u.oom_kills
                            ));
                        }
                    }
                }
            }
        }
        // What users chose (queue, image) must not reach a terminal as control sequences.
        out.iter()
            .map(|l| one_line(l))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Every record in `text`; a line that holds none (cut short, not ours) is skipped.
pub fn parse(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|line| {
            let from = line.rfind(MARK)?;
            serde_json::from_str::<Record>(&line[from..]).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            qdock_usage: VERSION,
            host: "vm".into(),
            cell: "default".into(),
            job: 1234,
            task: 0,
            owner: "alice".into(),
            uid: 1001,
            queue: "all.q\n{\"qdock_usage\":1}".into(),
            start: 1_796_050_702,
            gpus: Vec::new(),
            container: Some(Container {
                name: "qdock-default-1234-0".into(),
                image: "qdock/busybox:1".into(),
                image_id: "sha256:abc".into(),
                repo_digest: None,
                end: 1_796_050_732,
                exit: 0,
                wall_ns: Some(30_000_000_000),
                usage: Some(Recorded {
                    usage: Usage {
                        cpu_ns: 2_000_000_000,
                        cpu_user_ns: 1_500_000_000,
                        cpu_system_ns: 500_000_000,
                        peak_memory_bytes: 64 << 20,
                        peak_memory_sampled: false,
                        io_read_bytes: 0,
                        io_write_bytes: 4096,
                        oom_kills: 0,
                    },
                    exact: true,
                }),
            }),
        }
    }

    #[test]
    fn a_record_is_one_line_whatever_the_values() {
        let record = sample();
        let line = record.line();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.starts_with(MARK) && line.ends_with("}\n"), "{line}");
        // The forged mark inside the queue's value is escaped: one record, not two.
        assert_eq!(line.matches(MARK).count(), 1, "{line}");
        assert_eq!(parse(&line), vec![record]);
    }

    #[test]
    fn a_cut_line_loses_only_itself() {
        let first = sample();
        let mut second = sample();
        second.job = 1235;
        let cut = &first.line()[..40];
        let text = format!("{cut}{}not a record\n\n{}", second.line(), first.line());
        assert_eq!(parse(&text), vec![second, first]);
    }

    #[test]
    fn people_read_it_without_control_characters() {
        let text = sample().describe();
        assert!(
            text.starts_with("job 1234.0 of alice (uid 1001) on vm"),
            "{text}"
        );
        assert!(text.contains("all.q\\n{"), "{text}");
        assert!(text.contains("  cpu          2.000 s (about 1.500 s user, 0.500 s system)\n"));
        assert!(text.contains("  ended        2026-11-30 14:58:52 UTC (30 s)\n"));
        assert!(
            text.contains("  peak memory  64.0 MiB (67108864 bytes)\n"),
            "{text}"
        );
        let native = Record {
            container: None,
            ..sample()
        };
        assert!(
            native
                .describe()
                .ends_with("image        none: the job ran natively")
        );
    }

    #[test]
    fn a_memory_figure_that_is_no_peak_says_so_and_old_records_still_read() {
        let mut record = sample();
        let recorded = record.container.as_mut().unwrap().usage.as_mut().unwrap();
        recorded.usage.peak_memory_sampled = true;
        let line = record.line();
        assert!(line.contains("\"peak_memory_sampled\":true"), "{line}");
        assert_eq!(parse(&line), vec![record.clone()]);
        assert!(record.describe().contains(
            "  memory       64.0 MiB (67108864 bytes), its highest reading: the kernel kept no peak\n"
        ));
        // A kept peak writes no such field, so records read as before, both ways.
        let kept = sample().line();
        assert!(!kept.contains("peak_memory_sampled"), "{kept}");
        assert_eq!(parse(&kept), vec![sample()]);
    }

    #[test]
    fn oom_kills_are_recorded_and_told_only_when_there_were_some() {
        let mut record = sample();
        let recorded = record.container.as_mut().unwrap().usage.as_mut().unwrap();
        recorded.usage.oom_kills = 2;
        let line = record.line();
        assert!(line.contains("\"oom_kills\":2"), "{line}");
        assert_eq!(parse(&line), vec![record.clone()]);
        assert!(
            record
                .describe()
                .contains("  OOM kills    2 (processes killed for want of memory)")
        );
        // None: no field, no line, and records written before read as none.
        assert!(!sample().line().contains("oom_kills"));
        assert!(!sample().describe().contains("OOM"));
    }
}
