//! Everything before the container exists: the image rule, the job proof, the paths the
//! caller named (checked with the caller's own rights and anchored so the engine cannot be
//! redirected), the engine, the image, the job's output pipes and the spec. Nothing is
//! created in the engine here.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::job::{JobContext, Kind};
use crate::job_proof::{self, Proof, Proven};
use crate::mount::MountSpec;
use crate::policy;
use crate::privilege::{self, Identity};
use crate::spec::{self, Anchored, ContainerSpec, Host, Output, ResolvedImage, Sources};
use crate::{limits, mount_source, report};

use super::stdio::Pipes;
use super::terminal::{self, Terminal};

pub struct Prepared {
    /// The job as proven: it names the container and the record.
    pub proven: Proven,
    pub engine: Engine,
    pub spec: ContainerSpec,
    pub image: ResolvedImage,
    /// The script for the shell's stdin (`script_from_stdin`).
    pub script_input: Option<Vec<u8>>,
    pub io: Io,
    /// The GPUs held for the container: freed once it is gone.
    pub gpus: Vec<String>,
}

/// Where the job's output goes, and how its stdin comes.
pub enum Io {
    /// The starter's pipes (see [`super::stdio`]) and the engine's attach for stdin.
    Pipes(Pipes),
    /// The container's own terminal, attached through the engine, and the starter's, which
    /// it relays to (see [`super::terminal`]).
    Terminal(Terminal),
}

impl Prepared {
    /// The `.e` file's first line: what runs, exactly.
    pub fn announcement(&self) -> String {
        let image = &self.image;
        format!(
            "job {} runs {} (image {}{}) as container {}",
            self.proven.key,
            image.reference.familiar(),
            image.id,
            image
                .repo_digest
                .as_ref()
                .map(|d| format!(", digest {d}"))
                .unwrap_or_default(),
            self.spec.name
        )
    }
}

pub async fn prepare(job: &JobContext, config: &Config, requested: &str) -> Result<Prepared> {
    let reference = policy::check_image(requested, &config.images)?;
    let who = Identity::of_caller();
    let proven = job_proof::prove(&job.claim, &config.gridengine, &who)?;
    crate::timing::mark("proof");
    let proof = &proven.proof;
    // Its container would take the job's name, and the job's methods act on that, not on
    // the task; and a task holds a group of its own, not the one the job's processes share.
    if let Some(task) = proof.spooled().and_then(|j| j.pe_task.clone()) {
        return Err(Error::TaskInImage {
            job: proven.key.to_string(),
            task,
            variable: config.job.image_variable.clone(),
            image: requested.to_string(),
        });
    }
    let kind = proof.spooled().map_or(Kind::Script, |j| {
        j.kind.handed(job.by_qrsh_starter, j.qrsh_job)
    });
    // Handed on stdin (script_from_stdin): the spool names the same script, which is read
    // from there as any other (a binary job's command likewise).
    let handed;
    let job = if job.script_on_stdin {
        handed = JobContext {
            script: handed_script(proof)?,
            ..job.clone()
        };
        &handed
    } else {
        job
    };
    // Before anything exists: a starter run again from inside the job creates nothing.
    crate::run_mark::first_starter(&proven)?;
    let paths = privilege::as_caller(|| CallerPaths::check(job, kind, config, &who, proof))?;
    let seccomp_profile = read_seccomp_profile(config)?;
    crate::timing::mark("paths");
    let engine = Engine::connect(&config.engine).await?;
    crate::timing::mark("connect");
    let image = super::image::resolve(&engine, &reference, config.images.pull).await?;
    crate::timing::mark("image");
    let job = JobContext {
        script: paths.script.clone(),
        kind,
        ..job.clone()
    };
    let terminal = Terminal::of_stdio()
        .and_then(|t| spec::terminal_for(&job, Some(terminal::size())).map(|size| (t, size)));
    let starter = crate::process::ProcessId::of_self();
    let (output, io) = match terminal {
        Some((terminal, size)) => (Output::Terminal(size), Io::Terminal(terminal)),
        None => {
            let pipes = Pipes::create(&proven.key.container_name(), starter)?;
            (Output::Pipes(pipes.stdio().clone()), Io::Pipes(pipes))
        }
    };
    crate::timing::mark("pipes");
    let (affinity, online_cpus) = crate::binding::of_process();
    // Last before the spec: what fails after it must free them again.
    let gpus = super::gpus::claim_for_container(&proven, config, &engine).await?;
    let gpu_ids: Vec<String> = gpus.gpus.iter().map(|g| g.id.clone()).collect();
    let host = Host {
        hostname: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        affinity,
        online_cpus,
        cwd: paths.cwd,
        sources: paths.sources,
        seccomp_profile,
        starter,
        output,
        gpus,
    };
    let limits = limits::of_process();
    let inputs = spec::Inputs {
        job: &job,
        proven: &proven,
        config,
        who: &who,
        image: &image,
        limits: &limits,
        user_mounts: &paths.user_mounts,
        host: &host,
    };
    let built = spec::build(&inputs).and_then(|(spec, notes)| {
        if let (Some(text), Io::Pipes(pipes)) = (&spec.profile, &io) {
            pipes.write_profile(text)?;
        }
        Ok((spec, notes))
    });
    let (spec, notes) = built.inspect_err(|_| {
        if !gpu_ids.is_empty() {
            crate::gpu::ledger::release(config, &proven.key.container_name());
        }
    })?;
    if !host.gpus.unapplied.is_empty() {
        report::warn(&format!(
            "not applied from the CDI spec (the engine's API cannot carry them): {}",
            host.gpus.unapplied.join(", ")
        ));
    }
    crate::timing::mark("spec");
    if !notes.skipped_env.is_empty() {
        report::warn(&format!(
            "not passed into the container (values are not UTF-8): {}",
            notes.skipped_env.join(", ")
        ));
    }
    for note in &notes.made_read_only {
        report::warn(&format!(
            "{} is mounted read-only although asked read-write: it lies in {}, which the admin mounts read-only (mounts.extra)",
            note.mount.display(),
            note.admin.display()
        ));
    }
    Ok(Prepared {
        proven,
        engine,
        spec,
        image,
        script_input: paths.script_input,
        io,
        gpus: gpu_ids,
    })
}

/// The paths the caller named or that stand for them, resolved with the caller's rights.
struct CallerPaths {
    script: PathBuf,
    script_input: Option<Vec<u8>>,
    cwd: PathBuf,
    sources: Sources,
    user_mounts: Vec<MountSpec>,
}

impl CallerPaths {
    /// Runs with the caller's filesystem rights (see [`privilege::as_caller`]).
    fn check(
        job: &JobContext,
        kind: Kind,
        config: &Config,
        who: &Identity,
        proof: &Proof,
    ) -> Result<Self> {
        let cwd = std::env::current_dir()
            .and_then(std::fs::canonicalize)
            .map_err(|source| Error::WorkdirGone { source })?;
        let anchoring = Anchoring::new(config, who);
        let anchored = |path: &Path| anchoring.anchor(path, path);
        // A binary job's "script" is its command, to be found in the image: nothing to mount.
        let (script, script_input, script_source) = if kind == Kind::Script {
            let (script, input) = check_script(job)?;
            let source = anchored(&script)?;
            (script, input, Some(source))
        } else {
            (job.script.clone(), None, None)
        };
        // The passwd home, not $HOME; the execd's TMPDIR, not $TMPDIR: both are the caller's
        // to set to anything, /etc included.
        let home = passwd_home(who.uid)
            .and_then(|h| std::fs::canonicalize(h).ok())
            .map(|h| anchored(&h))
            .transpose()?;
        let tmpdir = match proof {
            Proof::Spooled(spooled) => spooled.tmpdir.as_ref(),
            // Root, or the admin's unsafe switch: there is no spool to ask.
            Proof::Skipped => job.tmpdir.as_ref(),
        };
        let tmpdir = tmpdir
            .and_then(|t| std::fs::canonicalize(t).ok())
            .map(|path| anchored(&path).map(|anchor| Anchored { path, anchor }))
            .transpose()?;
        let sources = Sources {
            script: script_source,
            home,
            cwd: Some(anchored(&cwd)?),
            tmpdir,
            pe_hostfile: proof.spooled().and_then(|j| j.pe_hostfile.clone()),
        };
        Ok(CallerPaths {
            script,
            script_input,
            cwd,
            sources,
            user_mounts: user_mounts(job, config, &anchoring)?,
        })
    }
}

/// Where the engine may mount a source from (see [`mount_source`]).
struct Anchoring {
    /// Who besides the caller may change nothing: root and the Grid Engine admin.
    trusted: Vec<u32>,
    /// Root could mount any path itself: its paths stay as they are.
    caller_is_root: bool,
}

impl Anchoring {
    fn new(config: &Config, who: &Identity) -> Self {
        Anchoring {
            trusted: job_proof::trusted_owners(&config.gridengine),
            caller_is_root: who.uid == 0,
        }
    }

    /// The anchor of `path`; a refusal names `request`, what the caller asked for.
    fn anchor(&self, path: &Path, request: &Path) -> Result<PathBuf> {
        if self.caller_is_root {
            return Ok(path.to_path_buf());
        }
        mount_source::anchor(path, &self.trusted).map_err(|problem| Error::MountRefused {
            request: request.display().to_string(),
            problem,
        })
    }
}

/// The job script (or command) Grid Engine handed on stdin, as the spool names it.
fn handed_script(proof: &Proof) -> Result<PathBuf> {
    proof
        .spooled()
        .and_then(|j| j.script_file.clone())
        .ok_or_else(|| Error::ScriptUnusable {
            script: "-s".into(),
            problem: "came on stdin (script_from_stdin), and no execd spool names it",
            source: None,
        })
}

fn passwd_home(uid: u32) -> Option<PathBuf> {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .filter(|d| d.is_absolute())
}

/// The job script must be a regular file the caller can open themselves (as a native job
/// must); returns its resolved path and, for `script_from_stdin`, its content.
fn check_script(job: &JobContext) -> Result<(PathBuf, Option<Vec<u8>>)> {
    let refuse = |problem, source| Error::ScriptUnusable {
        script: job.script.clone(),
        problem,
        source,
    };
    // Non-blocking, so a FIFO named as the script cannot hold the starter.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&job.script)
        .map_err(|e| refuse("cannot be opened", Some(e)))?;
    let meta = file
        .metadata()
        .map_err(|e| refuse("cannot be examined", Some(e)))?;
    if !meta.is_file() {
        return Err(refuse("is not a regular file", None));
    }
    let resolved =
        std::fs::canonicalize(&job.script).map_err(|e| refuse("cannot be resolved", Some(e)))?;
    let input = if job.shell.mode == crate::job::StartMode::Stdin {
        use std::io::Read;
        let mut content = Vec::new();
        (&file)
            .read_to_end(&mut content)
            .map_err(|e| refuse("cannot be read", Some(e)))?;
        Some(content)
    } else {
        None
    };
    Ok((resolved, input))
}

/// The job's extra mounts: each source resolved with the caller's rights, checked against
/// the admin's prefixes, then anchored.
fn user_mounts(job: &JobContext, config: &Config, anchoring: &Anchoring) -> Result<Vec<MountSpec>> {
    let Some(request) = &job.mounts else {
        return Ok(Vec::new());
    };
    policy::parse_mount_request(request)?
        .iter()
        .map(|m| {
            let resolved: PathBuf =
                std::fs::canonicalize(&m.source).map_err(|e| Error::MountRefused {
                    request: m.source.display().to_string(),
                    problem: format!("cannot resolve it ({e})"),
                })?;
            let authorized = policy::authorize_mount(m, &resolved, &config.mounts.user_allow)?;
            let anchor = anchoring.anchor(&resolved, &m.source)?;
            policy::widen_mount(m, authorized, &anchor, &config.mounts.user_allow)
        })
        .collect()
}

/// The admin's seccomp profile passes the same trust check as the config: whoever can write
/// it decides which system calls every job may make.
fn read_seccomp_profile(config: &Config) -> Result<Option<String>> {
    let Some(path) = &config.container.seccomp_profile else {
        return Ok(None);
    };
    crate::config::check_trusted(path)?;
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| Error::Config {
            path: path.clone(),
            problem: format!("container.seccomp_profile cannot be read ({e})"),
        })
}
