//! What Grid Engine tells a method about its job: the environment execd prepared and argv.
//! Parsing is pure: it takes the environment as a list, so tests need no real job.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The job task the caller names: `JOB_ID` and `SGE_TASK_ID`, or a method's `$job_id
/// $ja_task_id`. Only the caller's word: nothing is named after it until
/// [`crate::job_proof::prove`] turns it into a [`crate::job_proof::JobKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobClaim {
    pub job_id: u64,
    /// 0 for a non-array job, as Grid Engine's `$ja_task_id`.
    pub task_id: u64,
}

impl JobClaim {
    /// From the method's arguments (`$job_id $ja_task_id`), falling back to the environment.
    pub fn from_args_or_env(job: Option<&str>, task: Option<&str>, env: &Env) -> Result<JobClaim> {
        let job = job.map(str::to_string).or_else(|| env.get_str("JOB_ID"));
        let task = task
            .map(str::to_string)
            .or_else(|| env.get_str("SGE_TASK_ID"));
        Ok(JobClaim {
            job_id: parse_job_id(job.as_deref())?,
            task_id: parse_task_id(task.as_deref())?,
        })
    }
}

impl std::fmt::Display for JobClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.job_id, self.task_id)
    }
}

/// The process environment as given, non-UTF-8 values included.
#[derive(Debug, Clone, Default)]
pub struct Env(pub Vec<(OsString, OsString)>);

impl Env {
    pub fn from_process() -> Env {
        Env(std::env::vars_os().collect())
    }

    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_os_str())
    }

    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.to_string_lossy().into_owned())
    }

    /// Sets `name` to `value`, in place of any value the environment had.
    pub fn set(&mut self, name: &str, value: &OsStr) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.into(), value.into()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// The shell runs the script as a file argument (`shell script args`).
    Posix,
    /// The script is executed itself; its `#!` line picks the interpreter.
    Unix,
    /// The shell reads the script on stdin.
    Stdin,
}

/// What Grid Engine hands the starter as "the script". A starter cannot tell from argv or
/// the environment: the execd's spool says (`handle_as_binary`, `no_shell`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// A job script (`qsub job.sh`): run as the start mode says.
    #[default]
    Script,
    /// `qsub -b y cmd args`: the job's shell runs the command line with `-c`, as Grid
    /// Engine's builtin starter does (`shell -c "cmd arg1 arg2 "`).
    Binary,
    /// `qsub -b y -shell no cmd args`: the command is exec'ed with its arguments as they are.
    BinaryNoShell,
}

impl Kind {
    /// From the execd's `handle_as_binary` and `no_shell` (`1` or `0`).
    pub fn from_spool(handle_as_binary: Option<&str>, no_shell: Option<&str>) -> Kind {
        match (handle_as_binary == Some("1"), no_shell == Some("1")) {
            (false, _) => Kind::Script,
            (true, false) => Kind::Binary,
            (true, true) => Kind::BinaryNoShell,
        }
    }

    /// The kind of what the starter was handed, given the spool's kind and whether the
    /// spooled job is a qrsh job: a task that a batch job starts with `qrsh -inherit` (a
    /// parallel job's) is handed a command by qrsh_starter, while the spool holds the kind of
    /// its master job, usually a script. A qrsh job's own spool is right (`qrsh -b n`
    /// hands its script).
    pub fn handed(self, by_qrsh_starter: bool, qrsh_job: bool) -> Kind {
        match self {
            Kind::Script if by_qrsh_starter && !qrsh_job => Kind::Binary,
            kind => kind,
        }
    }
}

/// The command line the builtin starter gives `shell -c` for a binary job: the command and
/// each argument followed by a space, unquoted (so the shell expands them, as users expect
/// of `qsub -b y`).
pub fn binary_command_line(command: &str, args: &[String]) -> String {
    let mut line = format!("{command} ");
    for arg in args {
        line.push_str(arg);
        line.push(' ');
    }
    line
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    pub path: PathBuf,
    pub mode: StartMode,
    pub login: bool,
}

#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job the caller says this is (see [`JobClaim`]).
    pub claim: JobClaim,
    pub name: String,
    /// A script, or for a binary job the command. Empty when Grid Engine handed the script
    /// on stdin ([`JobContext::script_on_stdin`]) until the spool names it.
    pub script: PathBuf,
    /// `script_from_stdin`: the shepherd hands a starter `-s` where the script would be, and
    /// the script (for a binary job, the command's file) as its stdin, as it would hand the
    /// shell (`builtin_starter.c`); the spool's `script_file` names what it is.
    pub script_on_stdin: bool,
    pub kind: Kind,
    pub args: Vec<OsString>,
    pub shell: Shell,
    /// Called by qrsh_starter (`qrsh`, `qrsh -inherit`), which alone sets
    /// `SGE_STARTER_SHELL_PATH` empty; the shepherd sets the queue's shell.
    pub by_qrsh_starter: bool,
    /// `NSLOTS`: the caller's word, used only where no spool can say (see
    /// [`crate::job_proof::Proven::slots`]).
    pub nslots: Option<u32>,
    pub tmpdir: Option<PathBuf>,
    /// The image the job asked for, unparsed; `None` runs the job natively.
    pub image: Option<String>,
    /// The job's extra mount request, unparsed.
    pub mounts: Option<String>,
    pub env: Env,
}

impl JobContext {
    /// `argv` is the starter's argv without argv[0]: the job script, then the job's arguments.
    pub fn parse(
        env: Env,
        argv: Vec<OsString>,
        image_var: &str,
        mounts_var: &str,
    ) -> Result<JobContext> {
        let mut argv = argv.into_iter();
        let script = argv.next().map(PathBuf::from).ok_or_else(|| {
            Error::Usage("usage: qdock-starter JOB_SCRIPT [ARGS...] (Grid Engine runs it as the queue's starter_method)".into())
        })?;
        let claim = JobClaim::from_args_or_env(None, None, &env)?;
        let mode = match env.get_str("SGE_STARTER_SHELL_START_MODE").as_deref() {
            None | Some("") | Some("posix_compliant") => StartMode::Posix,
            Some("unix_behavior") => StartMode::Unix,
            Some("script_from_stdin") => StartMode::Stdin,
            Some(other) => {
                return Err(Error::BadJobEnv {
                    value: format!("SGE_STARTER_SHELL_START_MODE={other:?}"),
                    expected: "a Grid Engine start mode",
                    fix: "check the queue's shell_start_mode",
                });
            }
        };
        let shell = Shell {
            path: env
                .get("SGE_STARTER_SHELL_PATH")
                .filter(|p| !p.is_empty())
                .map_or("/bin/sh".into(), PathBuf::from),
            mode,
            login: env.get_str("SGE_STARTER_USE_LOGIN_SHELL").as_deref() == Some("true"),
        };
        let nonempty = |name: &str| env.get_str(name).filter(|v| !v.is_empty());
        let script_on_stdin = mode == StartMode::Stdin && script.as_os_str() == "-s";
        let script = if script_on_stdin {
            PathBuf::new()
        } else {
            script
        };
        Ok(JobContext {
            claim,
            name: nonempty("JOB_NAME").unwrap_or_default(),
            script,
            script_on_stdin,
            kind: Kind::Script,
            args: argv.collect(),
            shell,
            by_qrsh_starter: env
                .get("SGE_STARTER_SHELL_PATH")
                .is_some_and(|p| p.is_empty()),
            nslots: env.get_str("NSLOTS").and_then(|n| n.parse().ok()),
            tmpdir: env
                .get("TMPDIR")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            image: env.get(image_var).map(|v| v.to_string_lossy().into_owned()),
            mounts: nonempty(mounts_var),
            env,
        })
    }
}

fn parse_job_id(value: Option<&str>) -> Result<u64> {
    let value = value.ok_or_else(|| Error::BadJobEnv {
        value: "JOB_ID".into(),
        expected: "set",
        fix: "qdock methods run under Grid Engine, or take the job id as first argument",
    })?;
    parse_number(value)
        .filter(|&n| n > 0)
        .ok_or_else(|| Error::BadJobEnv {
            value: format!("job id {value:?}"),
            expected: "a positive decimal number",
            fix: "pass Grid Engine's $job_id",
        })
}

fn parse_task_id(value: Option<&str>) -> Result<u64> {
    match value {
        None | Some("") | Some("undefined") => Ok(0),
        Some(v) => parse_number(v).ok_or_else(|| Error::BadJobEnv {
            value: format!("task id {v:?}"),
            expected: "a decimal number",
            fix: "pass Grid Engine's $ja_task_id",
        }),
    }
}

pub(crate) fn parse_number(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env(pairs.iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<JobContext> {
        JobContext::parse(
            env(pairs),
            vec!["/spool/job_scripts/7".into(), "a b".into()],
            "IMAGE",
            "QDOCK_MOUNTS",
        )
    }

    #[test]
    fn reads_a_plain_job() {
        let j = parse(&[
            ("JOB_ID", "7"),
            ("SGE_TASK_ID", "undefined"),
            ("IMAGE", "busybox"),
            ("NSLOTS", "2"),
        ])
        .unwrap();
        assert_eq!(
            j.claim,
            JobClaim {
                job_id: 7,
                task_id: 0
            }
        );
        assert_eq!(j.image.as_deref(), Some("busybox"));
        assert_eq!(j.args, vec![OsString::from("a b")]);
        assert_eq!(
            j.shell,
            Shell {
                path: "/bin/sh".into(),
                mode: StartMode::Posix,
                login: false
            }
        );
        assert_eq!(j.nslots, Some(2));
        assert!(!j.by_qrsh_starter);
    }

    #[test]
    fn the_cell_in_the_environment_is_never_read() {
        // SGE_CELL and QUEUE are the caller's to set: only a proof names the job.
        let j = parse(&[("JOB_ID", "12"), ("SGE_TASK_ID", "3"), ("SGE_CELL", "../x")]).unwrap();
        assert_eq!(j.claim.to_string(), "12.3");
    }

    #[test]
    fn start_modes() {
        let j = parse(&[
            ("JOB_ID", "1"),
            ("SGE_STARTER_SHELL_START_MODE", "unix_behavior"),
            ("SGE_STARTER_SHELL_PATH", "/bin/bash"),
            ("SGE_STARTER_USE_LOGIN_SHELL", "true"),
        ])
        .unwrap();
        assert!(!j.by_qrsh_starter);
        let qrsh = parse(&[("JOB_ID", "1"), ("SGE_STARTER_SHELL_PATH", "")]).unwrap();
        assert!(qrsh.by_qrsh_starter);
        assert_eq!(
            j.shell,
            Shell {
                path: "/bin/bash".into(),
                mode: StartMode::Unix,
                login: true
            }
        );
        assert!(parse(&[("JOB_ID", "1"), ("SGE_STARTER_SHELL_START_MODE", "weird")]).is_err());
    }

    #[test]
    fn script_from_stdin_hands_dash_s_where_the_script_would_be() {
        let stdin = |argv: &[&str]| {
            JobContext::parse(
                env(&[
                    ("JOB_ID", "1"),
                    ("SGE_STARTER_SHELL_START_MODE", "script_from_stdin"),
                ]),
                argv.iter().map(OsString::from).collect(),
                "IMAGE",
                "QDOCK_MOUNTS",
            )
            .unwrap()
        };
        let j = stdin(&["-s", "a", "-s"]);
        assert!(j.script_on_stdin);
        assert_eq!(j.script, PathBuf::new());
        assert_eq!(j.args, vec![OsString::from("a"), OsString::from("-s")]);
        // Only script_from_stdin hands it so: elsewhere `-s` is a script's name.
        let posix = parse(&[("JOB_ID", "1")]).unwrap();
        assert!(!posix.script_on_stdin);
    }

    #[test]
    fn bad_ids_are_refused() {
        for id in ["", "abc", "-1", "0", "1;id", "99999999999999999999", " 1"] {
            assert!(parse(&[("JOB_ID", id)]).is_err(), "{id:?}");
        }
        assert!(parse(&[]).is_err());
        assert!(parse(&[("JOB_ID", "1"), ("SGE_TASK_ID", "x")]).is_err());
    }

    #[test]
    fn binary_jobs_are_told_by_the_spool() {
        assert_eq!(Kind::from_spool(Some("0"), Some("0")), Kind::Script);
        assert_eq!(Kind::from_spool(None, None), Kind::Script);
        assert_eq!(Kind::from_spool(Some("1"), Some("0")), Kind::Binary);
        assert_eq!(Kind::from_spool(Some("1"), Some("1")), Kind::BinaryNoShell);
        // A `qrsh -inherit` task of a script job is handed a command all the same.
        assert_eq!(Kind::Script.handed(true, false), Kind::Binary);
        assert_eq!(Kind::Script.handed(false, false), Kind::Script);
        assert_eq!(Kind::Script.handed(true, true), Kind::Script);
        assert_eq!(Kind::BinaryNoShell.handed(true, false), Kind::BinaryNoShell);
        assert_eq!(
            binary_command_line("echo", &["a b".into(), "$HOME".into()]),
            "echo a b $HOME "
        );
    }

    #[test]
    fn key_prefers_arguments() {
        let e = env(&[("JOB_ID", "5"), ("SGE_TASK_ID", "2")]);
        assert_eq!(
            JobClaim::from_args_or_env(None, None, &e)
                .unwrap()
                .to_string(),
            "5.2"
        );
        assert_eq!(
            JobClaim::from_args_or_env(Some("9"), Some("0"), &e)
                .unwrap()
                .to_string(),
            "9.0"
        );
        assert!(JobClaim::from_args_or_env(Some("9x"), None, &e).is_err());
    }
}
