//! The per-host record on disk. bin/install creates it `root:docker` 0660 in a directory
//! `root:docker` 0750: the setgid starter may append to it, users may not open it, and nobody
//! but root may remove, rename or replace it (that needs write access to the directory, which
//! the docker group lacks). qdock never creates it: a file a starter created would belong to
//! the user. A record is appended in one write(2) with O_APPEND, so concurrent jobs never
//! interleave; the job never fails because of the record: a problem goes to syslog.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use super::record::{self, Record};
use crate::error::{Error, Result};
use crate::report;

/// Appends `record`; says in syslog why when it cannot.
pub fn append(path: &Path, record: &Record) {
    if let Err(problem) = try_append(path, &record.line()) {
        report::log(&format!(
            "usage record of job {} not written to {}: {problem}",
            record.key(),
            path.display()
        ));
    }
}

fn try_append(path: &Path, line: &str) -> std::result::Result<(), String> {
    let mut file = OpenOptions::new()
        .append(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("{e} (an admin creates it with bin/install)"))?;
    let size = file.metadata().map_err(|e| e.to_string())?.size();
    let limit = make_room(size + line.len() as u64)?;
    // One write: with O_APPEND the kernel puts the whole line at the end at once.
    let written = match file.write(line.as_bytes()) {
        Ok(n) if n == line.len() => Ok(()),
        Ok(n) => Err(format!("only {n} of {} bytes written", line.len())),
        Err(e) => Err(e.to_string()),
    };
    // A native job is exec'ed next and must run with the limit the shepherd gave it.
    let restored = setrlimit(Resource::RLIMIT_FSIZE, limit.0, limit.1)
        .map_err(|e| format!("the job's file size limit not restored: {e}"));
    written.and(restored)
}

/// The caller sets the starter's file size limit (`-l h_fsize`, ulimit): a line cut at the
/// limit would be lost, and the write past it would kill the starter (SIGXFSZ). The soft
/// limit is ours to raise up to the hard one. Returns the limit as it was (soft, hard).
fn make_room(needed: u64) -> std::result::Result<(u64, u64), String> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).map_err(|e| e.to_string())?;
    if needed > hard {
        return Err(format!(
            "the job's file size limit ({hard} bytes) is below the record's size"
        ));
    }
    if needed > soft {
        setrlimit(Resource::RLIMIT_FSIZE, hard, hard).map_err(|e| e.to_string())?;
    }
    Ok((soft, hard))
}

/// Every record in the file.
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let mut raw = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut raw))
        .map_err(|e| {
            Error::io(
                format!(
                    "read the usage record {} (an admin creates it with bin/install)",
                    path.display()
                ),
                e,
            )
        })?;
    // A line cut inside a character is skipped like any cut line.
    Ok(record::parse(&String::from_utf8_lossy(&raw)))
}
