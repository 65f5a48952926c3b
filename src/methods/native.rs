//! A job without an image runs as Grid Engine's builtin starter would run it: exec, so no
//! extra process stays between the shepherd and the job.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::Error;
use crate::job::{JobContext, StartMode};

/// Replaces this process with the job; returns only on failure.
pub fn exec(job: &JobContext) -> Error {
    if let Err(e) = crate::privilege::drop_privilege() {
        return Error::io("drop the setgid group before running the job", e);
    }
    let shell = &job.shell;
    let name = shell
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A login shell is told so by a leading '-' in argv[0], as login(1) does.
    let argv0 = if shell.login {
        format!("-{name}")
    } else {
        name
    };
    let mut command = match shell.mode {
        StartMode::Posix => {
            let mut c = Command::new(&shell.path);
            c.arg0(&argv0).arg(&job.script);
            c
        }
        StartMode::Unix => Command::new(&job.script),
        StartMode::Stdin => {
            let mut c = Command::new(&shell.path);
            c.arg0(&argv0);
            match std::fs::File::open(&job.script) {
                Ok(f) => c.stdin(Stdio::from(f)),
                Err(e) => {
                    return Error::io(format!("open the job script {}", job.script.display()), e);
                }
            };
            c
        }
    };
    command
        .args(&job.args)
        .env_clear()
        .envs(job.env.0.iter().map(|(k, v)| (k, v)));
    let e = command.exec();
    let program = if shell.mode == StartMode::Unix {
        job.script.as_path()
    } else {
        Path::new(&shell.path)
    };
    Error::NativeExec {
        program: program.to_path_buf(),
        source: e,
    }
}
