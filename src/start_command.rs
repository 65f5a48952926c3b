//! How a job's command starts, in a container and natively alike. The reference is Grid
//! Engine's builtin starter (`builtin_starter.c`, `start_command`): what it would exec, with
//! which argv[0] and arguments, is what both paths exec, so a job behaves the same wherever
//! it runs.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::job::{Kind, Shell, StartMode, binary_command_line};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartCommand {
    /// What is exec'ed: the job's shell, or the script or command itself.
    pub program: OsString,
    /// Its argv[0]. A shell gets its base name, with a leading '-' when it is to be a login
    /// shell (as login(1) tells one, and the builtin starter does); anything else its path.
    pub argv0: OsString,
    pub args: Vec<OsString>,
    /// The shell reads the script on its stdin (`script_from_stdin`).
    pub script_on_stdin: bool,
}

/// The command for a job of `kind` handed `script` and `args`, run with `shell` as its start
/// mode says.
pub fn start_command(kind: Kind, shell: &Shell, script: &Path, args: &[OsString]) -> StartCommand {
    let through_shell = |args: Vec<OsString>, script_on_stdin| StartCommand {
        program: shell.path.clone().into_os_string(),
        argv0: shell_argv0(shell),
        args,
        script_on_stdin,
    };
    let direct = || StartCommand {
        program: script.as_os_str().to_owned(),
        argv0: script.as_os_str().to_owned(),
        args: args.to_vec(),
        script_on_stdin: false,
    };
    let then_args = |first: &OsStr| [&[first.to_owned()], args].concat();
    match (kind, shell.mode) {
        (Kind::Binary, _) => {
            let args: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let line = binary_command_line(&script.to_string_lossy(), &args);
            through_shell(vec!["-c".into(), line.into()], false)
        }
        (Kind::BinaryNoShell, _) | (Kind::Script, StartMode::Unix) => direct(),
        (Kind::Script, StartMode::Posix) => through_shell(then_args(script.as_os_str()), false),
        // -s: the shell reads the script from stdin and still has the job's arguments.
        (Kind::Script, StartMode::Stdin) => through_shell(then_args(OsStr::new("-s")), true),
    }
}

fn shell_argv0(shell: &Shell) -> OsString {
    let name = shell.path.file_name().unwrap_or(shell.path.as_os_str());
    if !shell.login {
        return name.to_owned();
    }
    let mut login = OsString::from("-");
    login.push(name);
    login
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(mode: StartMode, login: bool) -> Shell {
        Shell {
            path: "/bin/bash".into(),
            mode,
            login,
        }
    }

    fn strings(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn run(kind: Kind, shell: &Shell) -> StartCommand {
        start_command(
            kind,
            shell,
            Path::new("/spool/42"),
            &strings(&["a b", "$X"]),
        )
    }

    fn expect(program: &str, argv0: &str, args: &[&str], on_stdin: bool) -> StartCommand {
        StartCommand {
            program: program.into(),
            argv0: argv0.into(),
            args: strings(args),
            script_on_stdin: on_stdin,
        }
    }

    #[test]
    fn scripts_start_as_their_start_mode_says() {
        for login in [false, true] {
            let argv0 = if login { "-bash" } else { "bash" };
            assert_eq!(
                run(Kind::Script, &shell(StartMode::Posix, login)),
                expect("/bin/bash", argv0, &["/spool/42", "a b", "$X"], false)
            );
            assert_eq!(
                run(Kind::Script, &shell(StartMode::Stdin, login)),
                expect("/bin/bash", argv0, &["-s", "a b", "$X"], true)
            );
            // The script's #! line chooses: no shell, so no login either.
            assert_eq!(
                run(Kind::Script, &shell(StartMode::Unix, login)),
                expect("/spool/42", "/spool/42", &["a b", "$X"], false)
            );
        }
    }

    #[test]
    fn binary_jobs_run_their_command_line_with_the_shell_or_without_one() {
        for mode in [StartMode::Posix, StartMode::Unix, StartMode::Stdin] {
            assert_eq!(
                run(Kind::Binary, &shell(mode, true)),
                expect("/bin/bash", "-bash", &["-c", "/spool/42 a b $X "], false)
            );
            assert_eq!(
                run(Kind::BinaryNoShell, &shell(mode, true)),
                expect("/spool/42", "/spool/42", &["a b", "$X"], false)
            );
        }
    }
}
