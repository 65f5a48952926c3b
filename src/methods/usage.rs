//! `qdock usage JOB[.TASK]`: a job's lines in this host's usage record. Root sees every
//! job's; anyone else only their own (the record is readable through the setgid docker
//! group only, held just for reading it, and filtered by the caller's real uid here).

use std::path::PathBuf;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::job::parse_number;
use crate::usage::ledger;

/// A job and, when given, one task of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Wanted {
    pub job: u64,
    pub task: Option<u64>,
}

impl Wanted {
    pub fn parse(text: &str) -> Result<Wanted> {
        let bad = || {
            Error::Usage(format!(
                "{:?} is not a job: give JOB or JOB.TASK, e.g. 1234 or 1234.5 (task 0 is a job that is no array)",
                crate::report::one_line(text)
            ))
        };
        let (job, task) = match text.split_once('.') {
            Some((job, task)) => (job, Some(parse_number(task).ok_or_else(bad)?)),
            None => (text, None),
        };
        let job = parse_number(job).filter(|&j| j > 0).ok_or_else(bad)?;
        Ok(Wanted { job, task })
    }
}

pub fn show(config: Option<PathBuf>, wanted: &str, json: bool) -> Result<u8> {
    let wanted = Wanted::parse(wanted)?;
    let (config, _) = Config::load(config)?;
    let caller = nix::unistd::getuid();
    let path = &config.usage.record;
    let records: Vec<_> = crate::privilege::with_key_now(|| ledger::read(path))?
        .into_iter()
        .filter(|r| r.job == wanted.job && wanted.task.is_none_or(|t| r.task == t))
        .filter(|r| caller.is_root() || r.uid == caller.as_raw())
        .collect();
    if records.is_empty() {
        // The same words whether the job is someone else's or never ran here.
        return Err(Error::NoRecord {
            job: match wanted.task {
                Some(t) => format!("{}.{t}", wanted.job),
                None => wanted.job.to_string(),
            },
            path: path.clone(),
        });
    }
    let shown: Vec<String> = records
        .iter()
        .map(|r| if json { r.line() } else { r.describe() + "\n" })
        .collect();
    print!("{}", shown.join(if json { "" } else { "\n" }));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_and_tasks_are_named_as_grid_engine_names_them() {
        assert_eq!(
            Wanted::parse("1234").unwrap(),
            Wanted {
                job: 1234,
                task: None
            }
        );
        assert_eq!(
            Wanted::parse("1234.0").unwrap(),
            Wanted {
                job: 1234,
                task: Some(0)
            }
        );
        for bad in ["", "0", "x", "12.", ".3", "12.3.4", "-1", "12 ", "1\n2"] {
            let e = Wanted::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_USAGE, "{bad:?}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
