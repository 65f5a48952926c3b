//! One error type for the whole library. Every variant maps to exactly one exit code, and its
//! message names the problem and the fix, because Grid Engine's daemons run these binaries with
//! nobody watching: the job's `.e` file and syslog are all an admin or user will ever see.

use std::path::PathBuf;

/// Grid Engine requeues a job whose starter exits with this code (the failure may pass).
pub const EXIT_REQUEUE: u8 = 99;
/// Grid Engine puts a job whose starter exits with this code into error state `Eqw`.
pub const EXIT_NEVER: u8 = 100;
/// Wrong command line.
pub const EXIT_USAGE: u8 = 2;
/// A query that found nothing (`qdock usage`).
pub const EXIT_NOT_FOUND: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "config {path}: {problem}; fix it (every key is documented in sge-conf/qdock.example.toml)"
    )]
    Config { path: PathBuf, problem: String },

    #[error("config {path}: cannot read it ({source}); an admin installs it with bin/install")]
    ConfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "config {path} is not trusted: {problem}; fix: chown root:root and chmod go-w on it and on its directory"
    )]
    ConfigInsecure { path: PathBuf, problem: String },

    /// A value Grid Engine hands the methods (environment, argv) that cannot be what it says:
    /// `value` names it, escaped, since users choose it.
    #[error("{value} is not {expected}; {fix}")]
    BadJobEnv {
        value: String,
        expected: &'static str,
        fix: &'static str,
    },

    #[error(
        "the working directory is gone ({source}); submit from a directory that exists until the job runs"
    )]
    WorkdirGone {
        #[source]
        source: std::io::Error,
    },

    #[error(
        "the job script {} {problem}{}; Grid Engine passes the spooled job script as the first argument",
        script.display(),
        in_parens(source.as_ref())
    )]
    ScriptUnusable {
        script: PathBuf,
        problem: &'static str,
        #[source]
        source: Option<std::io::Error>,
    },

    #[error("cannot run {}: {source}; check the job's shell (-S) and script", program.display())]
    NativeExec {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "job {job} is not proven: {problem}; qdock acts only for the Grid Engine job that calls it (admin: [gridengine] in qdock.toml)"
    )]
    NotAJob { job: String, problem: String },

    #[error(
        "job {job} already has its starter: qdock-starter runs once per job, as the queue's starter_method (Grid Engine starts it); run the command itself instead"
    )]
    StarterAgain { job: String },

    #[error("job {job} cannot be started here: {problem}")]
    RunMarkUnavailable { job: String, problem: String },

    #[error(
        "qrsh -inherit task {task} of job {job} asks for {variable}={image:?}, but such tasks cannot run in an image; start them without {variable} (no -v {variable}=…, no -V while {variable} is set) and they run natively"
    )]
    TaskInImage {
        job: String,
        task: String,
        variable: String,
        image: String,
    },

    #[error(
        "IMAGE={reference:?} is not a valid image reference: {problem}; ask for an image as repository:tag, e.g. IMAGE=fastqc:0.11.9"
    )]
    BadImage { reference: String, problem: String },

    #[error(
        "image {image} is not allowed here (allowed: {allowed}); choose an allowed image or ask your admin to add it to images.allow"
    )]
    ImageNotAllowed { image: String, allowed: String },

    #[error(
        "image {image} must be requested by digest (repository@sha256:…), because images.require_digest is set"
    )]
    DigestRequired { image: String },

    #[error(
        "image {image} is not on this host and images.pull = \"never\"; ask your admin to load it (docker pull {image}) or check the name"
    )]
    ImageAbsent { image: String },

    /// Refused at `qsub` by the JSV: by the hosts' load reports the job would wait for ever.
    #[error(
        "no execution host {wanted} image {image} (their reports: {hosts}); ask for an image a host holds, or ask an admin to pull this one there"
    )]
    ImageNowhere {
        image: String,
        wanted: &'static str,
        hosts: String,
    },

    #[error("image {image} cannot be pulled: {cause}; check the name, tag and digest")]
    PullRefused {
        image: String,
        #[source]
        cause: Cause,
    },

    #[error("pulling image {image} failed: {cause}; the job will be requeued")]
    PullFailed {
        image: String,
        #[source]
        cause: Cause,
    },

    #[error("mount {request:?} refused: {problem}")]
    MountRefused { request: String, problem: String },

    #[error(
        "cannot reach the container engine at {socket}: {cause}; check that the engine serving it (dockerd, or Podman's service) runs and that qdock is installed root:docker mode 2755 (admin: qdock check)"
    )]
    EngineUnreachable {
        socket: String,
        #[source]
        cause: Cause,
    },

    #[error(
        "the container engine at {socket} did not answer within {secs} s (engine.timeout_secs); check the health of the engine serving it (dockerd, or Podman's service)"
    )]
    EngineTimeout { socket: String, secs: u64 },

    #[error("the container engine failed to {action}: {cause}")]
    Engine {
        action: String,
        #[source]
        cause: Cause,
    },

    /// The engine said no (400) to what the job asks for: asking again cannot help.
    #[error("the container engine refused to {action}: {cause}; {hint}")]
    EngineRefused {
        action: String,
        hint: &'static str,
        #[source]
        cause: Cause,
    },

    #[error(
        "lost the container engine while the job ran in {name} ({cause}); its outcome is unknown, so it is not requeued: check its output, then qmod -cj to run it again or qdel it"
    )]
    JobLost {
        name: String,
        #[source]
        cause: Box<Error>,
    },

    #[error(
        "container {name} is left over from an earlier run and {problem}; ask your admin to remove it (qdock gc)"
    )]
    Leftover { name: String, problem: String },

    /// The engine stopped and took the container with it (live-restore off): the job did
    /// not fail by itself, so it runs again.
    #[error(
        "the container engine restarted and container {name} {fate}; the job did not fail by itself and is requeued (with dockerd, turn on its live-restore so jobs outlive engine restarts)"
    )]
    DiedWithEngine { name: String, fate: &'static str },

    #[error(
        "the job's output pipes need {}: {problem}; an admin reinstalls qdock (bin/install)",
        path.display()
    )]
    StdioUnavailable { path: PathBuf, problem: String },

    #[error("container {name} belongs to uid {owner}, not to you (uid {caller}); nothing was done")]
    NotOwner {
        name: String,
        owner: String,
        caller: u32,
    },

    #[error(
        "job {job} has no container and no process id to signal; put $job_pid on the method line (see sge-conf/queue-methods.conf)"
    )]
    NothingToSignal { job: String },

    #[error("cannot send {signal} to the job's processes (pid {pid}): {}", source.desc())]
    Signal {
        signal: String,
        pid: i32,
        #[source]
        source: nix::errno::Errno,
    },

    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "no usage record of job {job} for you in {} on this host; users see their own jobs only, and each host records the jobs it ran: ask on the job's host (qacct -j names it)",
        path.display()
    )]
    NoRecord { job: String, path: PathBuf },

    #[error(
        "job {job} was granted GPUs it cannot be given: {problem}; the job is held (Eqw): fix it, then qmod -cj"
    )]
    GpusUnavailable { job: String, problem: String },

    #[error(
        "job {job} was granted {want} GPU(s) but this host has {have} (from {found_in}); make the host's complex_values {complex}= match (qconf -me HOST) or list its GPUs in [gpus] devices"
    )]
    GpusMissing {
        job: String,
        want: usize,
        have: usize,
        found_in: String,
        complex: String,
    },

    #[error(
        "job {job} was granted {want} GPU(s) but only {free} of this host's are free (held: {held}); requeued: `qdock gc` frees the GPUs of jobs that ended"
    )]
    GpusBusy {
        job: String,
        want: usize,
        free: usize,
        held: String,
    },

    #[error("{0}")]
    Denied(String),

    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::PullFailed { .. }
            | Error::EngineUnreachable { .. }
            | Error::EngineTimeout { .. }
            | Error::Engine { .. }
            | Error::Signal { .. }
            | Error::DiedWithEngine { .. }
            | Error::StdioUnavailable { .. }
            | Error::RunMarkUnavailable { .. }
            | Error::GpusBusy { .. }
            | Error::Io { .. } => EXIT_REQUEUE,
            Error::Config { .. }
            | Error::ConfigUnreadable { .. }
            | Error::ConfigInsecure { .. }
            | Error::BadJobEnv { .. }
            | Error::WorkdirGone { .. }
            | Error::ScriptUnusable { .. }
            | Error::NativeExec { .. }
            | Error::NotAJob { .. }
            | Error::StarterAgain { .. }
            | Error::TaskInImage { .. }
            | Error::BadImage { .. }
            | Error::ImageNotAllowed { .. }
            | Error::DigestRequired { .. }
            | Error::ImageAbsent { .. }
            | Error::ImageNowhere { .. }
            | Error::PullRefused { .. }
            | Error::MountRefused { .. }
            | Error::EngineRefused { .. }
            | Error::Leftover { .. }
            | Error::JobLost { .. }
            | Error::NotOwner { .. }
            | Error::NothingToSignal { .. }
            | Error::GpusUnavailable { .. }
            | Error::GpusMissing { .. }
            | Error::Denied(_) => EXIT_NEVER,
            Error::Usage(_) => EXIT_USAGE,
            Error::NoRecord { .. } => EXIT_NOT_FOUND,
        }
    }

    pub fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            action: action.into(),
            source,
        }
    }
}

fn in_parens(source: Option<&std::io::Error>) -> String {
    source.map(|e| format!(" ({e})")).unwrap_or_default()
}

/// Why the engine, or the way to it, failed: the words a person needs and, when another
/// error said them, that error, kept whole as the source (a bollard or io error: callers
/// may look at it; messages show only the words, on one line).
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct Cause {
    text: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// The error's text, with what its sources add: hyper hides the useful part
    /// ("Permission denied", "Connection refused") down the chain.
    pub fn of(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let s_text = s.to_string();
            if !text.contains(&s_text) {
                text = format!("{text}: {s_text}");
            }
            source = s.source();
        }
        Cause::new(text, e)
    }

    /// `text` says it better than the error's own words (say, the engine's message without
    /// the client's preamble).
    pub fn new(
        text: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Cause {
        Cause {
            text: text.into(),
            source: Some(Box::new(e)),
        }
    }

    /// No error behind it: the engine answered, but not what it should have.
    pub fn text(text: impl Into<String>) -> Cause {
        Cause {
            text: text.into(),
            source: None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use std::io;

    #[test]
    fn causes_stay_reachable_as_sources() {
        let e = Error::io("read x", io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(e.source().unwrap().downcast_ref::<io::Error>().is_some());
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        let e = Error::EngineUnreachable {
            socket: "/run/docker.sock".into(),
            cause: Cause::of(denied),
        };
        let cause = e.source().unwrap();
        assert!(
            cause
                .source()
                .unwrap()
                .downcast_ref::<io::Error>()
                .is_some()
        );
        assert!(e.to_string().contains("permission denied"), "{e}");
    }

    #[test]
    fn permanent_failures_are_not_requeued() {
        let io = || io::Error::from(io::ErrorKind::NotFound);
        for e in [
            Error::BadJobEnv {
                value: "JOB_ID".into(),
                expected: "set",
                fix: "run under Grid Engine",
            },
            Error::WorkdirGone { source: io() },
            Error::ScriptUnusable {
                script: "/spool/1".into(),
                problem: "is not a regular file",
                source: None,
            },
            Error::NativeExec {
                program: "/bin/nosh".into(),
                source: io(),
            },
            Error::EngineRefused {
                action: "start container x".into(),
                hint: "check the shell",
                cause: Cause::text("no such file"),
            },
        ] {
            assert_eq!(e.exit_code(), EXIT_NEVER, "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn script_message_names_the_cause_when_there_is_one() {
        let e = Error::ScriptUnusable {
            script: "/spool/1".into(),
            problem: "cannot be opened",
            source: Some(io::Error::from(io::ErrorKind::PermissionDenied)),
        };
        assert!(
            e.to_string()
                .starts_with("the job script /spool/1 cannot be opened (permission denied);"),
            "{e}"
        );
    }
}
