//! A job without an image runs as Grid Engine's builtin starter would run it: exec, so no
//! extra process stays between the shepherd and the job.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::Error;
use crate::job::{JobContext, Kind, StartMode, binary_command_line};

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
    let mut command = match (job.kind, shell.mode) {
        (Kind::Binary, _) => {
            let args: Vec<String> = job
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let line = binary_command_line(&job.script.to_string_lossy(), &args);
            let mut c = Command::new(&shell.path);
            c.arg0(&argv0).arg("-c").arg(line);
            c
        }
        (Kind::BinaryNoShell, _) => {
            let mut c = Command::new(&job.script);
            c.args(&job.args);
            c
        }
        (Kind::Script, StartMode::Posix) => {
            let mut c = Command::new(&shell.path);
            c.arg0(&argv0).arg(&job.script);
            c
        }
        (Kind::Script, StartMode::Unix) => Command::new(&job.script),
        (Kind::Script, StartMode::Stdin) => {
            let mut c = Command::new(&shell.path);
            c.arg0(&argv0);
            match std::fs::File::open(&job.script) {
                Ok(f) => c.stdin(Stdio::from(f)),
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
            c
        }
    };
    if job.kind == Kind::Script {
        command.args(&job.args);
    }
    command
        .env_clear()
        .envs(job.env.0.iter().map(|(k, v)| (k, v)));
    let e = command.exec();
    let program = if shell.mode == StartMode::Unix || job.kind == Kind::BinaryNoShell {
        job.script.as_path()
    } else {
        Path::new(&shell.path)
    };
    Error::NativeExec {
        program: program.to_path_buf(),
        source: e,
    }
}
