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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "config {path}: {problem}; fix it (every key is documented in sge-conf/qdock.example.toml)"
    )]
    Config { path: PathBuf, problem: String },

    #[error(
        "config {path} is not trusted: {problem}; fix: chown root:root and chmod go-w on it and on its directory"
    )]
    ConfigInsecure { path: PathBuf, problem: String },

    #[error("{0}")]
    JobEnv(String),

    #[error(
        "job {job} is not proven: {problem}; qdock acts only for the Grid Engine job that calls it (admin: [gridengine] in qdock.toml)"
    )]
    NotAJob { job: String, problem: String },

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

    #[error("image {image} cannot be pulled: {cause}; check the name, tag and digest")]
    PullRefused { image: String, cause: String },

    #[error("pulling image {image} failed: {cause}; the job will be requeued")]
    PullFailed { image: String, cause: String },

    #[error("mount {request:?} refused: {problem}")]
    MountRefused { request: String, problem: String },

    #[error(
        "cannot reach the Docker engine at {socket}: {cause}; check that dockerd runs and that qdock is installed root:docker mode 2755 (admin: qdock check)"
    )]
    EngineUnreachable { socket: String, cause: String },

    #[error(
        "the Docker engine at {socket} did not answer within {secs} s (engine.timeout_secs); check dockerd's health"
    )]
    EngineTimeout { socket: String, secs: u64 },

    #[error("the Docker engine failed to {action}: {cause}")]
    Engine { action: String, cause: String },

    #[error(
        "lost the Docker engine while the job ran in {name} ({cause}); its outcome is unknown, so it is not requeued: check its output, then qmod -cj to run it again or qdel it"
    )]
    JobLost { name: String, cause: String },

    #[error(
        "container {name} is left over from an earlier run and {problem}; ask your admin to remove it (qdock gc)"
    )]
    Leftover { name: String, problem: String },

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

    #[error("cannot send {signal} to the job's processes (pid {pid}): {cause}")]
    Signal {
        signal: String,
        pid: i32,
        cause: String,
    },

    #[error("{action}: {cause}")]
    Io { action: String, cause: String },

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
            | Error::Io { .. } => EXIT_REQUEUE,
            Error::Config { .. }
            | Error::ConfigInsecure { .. }
            | Error::JobEnv(_)
            | Error::NotAJob { .. }
            | Error::BadImage { .. }
            | Error::ImageNotAllowed { .. }
            | Error::DigestRequired { .. }
            | Error::ImageAbsent { .. }
            | Error::PullRefused { .. }
            | Error::MountRefused { .. }
            | Error::Leftover { .. }
            | Error::JobLost { .. }
            | Error::NotOwner { .. }
            | Error::NothingToSignal { .. }
            | Error::Denied(_) => EXIT_NEVER,
            Error::Usage(_) => EXIT_USAGE,
        }
    }

    pub fn io(action: impl Into<String>, cause: impl std::fmt::Display) -> Self {
        Error::Io {
            action: action.into(),
            cause: cause.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
