//! A job without an image runs as Grid Engine's builtin starter would run it: exec, so no
//! extra process stays between the shepherd and the job.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::error::Error;
use crate::job::JobContext;
use crate::start_command::start_command;

/// Replaces this process with the job; returns only on failure.
pub fn exec(job: &JobContext) -> Error {
    if let Err(e) = crate::privilege::drop_privilege() {
        return Error::io("drop the setgid group before running the job", e);
    }
    let start = start_command(job.kind, &job.shell, &job.script, &job.args);
    let mut command = Command::new(&start.program);
    command.arg0(&start.argv0).args(&start.args);
    // Handed on stdin already (script_from_stdin under a starter method): it stays there.
    if start.script_on_stdin && !job.script_on_stdin {
        match std::fs::File::open(&job.script) {
            Ok(f) => command.stdin(Stdio::from(f)),
            // As in a container: a script the caller cannot open never runs (Eqw), and
            // a requeue (99) would only bring the job back to the same refusal.
            Err(e) => {
                return Error::ScriptUnusable {
                    script: job.script.clone(),
                    problem: "cannot be opened",
                    source: Some(e),
                };
            }
        };
    }
    command
        .env_clear()
        .envs(job.env.0.iter().map(|(k, v)| (k, v)));
    let e = command.exec();
    Error::NativeExec {
        program: PathBuf::from(start.program),
        source: e,
    }
}
