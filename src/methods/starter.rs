//! `qdock-starter`: Grid Engine's starter_method. Runs the job in the image named by the job's
//! `IMAGE`, or natively when there is none, and returns the job's exit code.

use std::ffi::OsString;
use std::future::Future;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::config::{Config, PullPolicy};
use crate::engine::{Chunk, Engine, Output, State};
use crate::error::{Cause, Error, Result};
use crate::job::JobContext;
use crate::mount::MountSpec;
use crate::policy;
use crate::privilege::Identity;
use crate::signals::{Received, Signals};
use crate::spec::{self, ContainerSpec, Host, ResolvedImage};
use crate::{environ, limits, report};

/// How long output may still trickle in after the container exited.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(10);

pub fn run(argv: Vec<OsString>) -> u8 {
    match start(argv) {
        Ok(code) => code,
        Err(e) => {
            report::error(&e);
            e.exit_code()
        }
    }
}

fn start(argv: Vec<OsString>) -> Result<u8> {
    let (config, _) = Config::load(None)?;
    let job = JobContext::parse(
        environ::original(),
        argv,
        &config.job.image_variable,
        &config.job.mounts_variable,
    )?;
    report::set_job(&job.key);
    let Some(requested) = job.image.clone() else {
        return Err(crate::methods::native::exec(&job));
    };
    if requested.trim().is_empty() {
        return Err(Error::BadImage {
            reference: requested,
            problem: format!(
                "it is empty; unset {} to run natively",
                config.job.image_variable
            ),
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the async runtime", e))?;
    runtime.block_on(async {
        let mut signals = Signals::install()?;
        let preparing = prepare(&job, &config, &requested);
        let (engine, spec, image) = tokio::select! {
            prepared = preparing => prepared?,
            n = signals.next_terminate() => return Ok(128 + n as u8),
        };
        let announce = format!(
            "job {} runs {} (image {}{}) as container {}",
            job.key,
            image.reference.familiar(),
            image.id,
            image
                .repo_digest
                .as_ref()
                .map(|d| format!(", digest {d}"))
                .unwrap_or_default(),
            spec.name
        );
        let outcome = execute(&engine, &spec, &job, &announce, &mut signals).await;
        // Whatever happened after create, the container goes: no orphans. Only our own:
        // when create lost a race for the name, the container there is someone else's.
        let removed = remove_own(&engine, &spec).await;
        let code = outcome?;
        if let Err(e) = removed {
            report::warn(&format!(
                "could not remove container {}: {e}; `qdock gc` will",
                spec.name
            ));
        }
        Ok(code)
    })
}

/// Everything before the container exists: checks, engine, image, the spec.
async fn prepare(
    job: &JobContext,
    config: &Config,
    requested: &str,
) -> Result<(Engine, ContainerSpec, ResolvedImage)> {
    let cwd = std::env::current_dir().map_err(|source| Error::WorkdirGone { source })?;
    let reference = policy::check_image(requested, &config.images)?;
    check_script(job)?;
    let user_mounts = user_mounts(job, config)?;
    let seccomp_profile = match &config.container.seccomp_profile {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.clone(),
            problem: format!("container.seccomp_profile cannot be read ({e})"),
        })?),
        None => None,
    };
    let engine = Engine::connect(&config.engine).await?;
    let image = resolve_image(&engine, &reference, config.images.pull).await?;
    let who = Identity::of_caller();
    let existing = [&job.home, &job.tmpdir]
        .into_iter()
        .flatten()
        .filter(|p| p.is_dir())
        .cloned()
        .collect();
    let host = Host {
        hostname: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        cwd,
        existing,
        seccomp_profile,
        starter: crate::process::ProcessId::of_self(),
    };
    let limits = limits::of_process();
    let inputs = spec::Inputs {
        job,
        config,
        who: &who,
        image: &image,
        limits: &limits,
        user_mounts: &user_mounts,
        host: &host,
    };
    let (spec, notes) = spec::build(&inputs)?;
    if !notes.skipped_env.is_empty() {
        // Escaped: a name may hold a newline that would forge a line in the .e file.
        let names: Vec<String> = notes
            .skipped_env
            .iter()
            .map(|n| n.escape_debug().to_string())
            .collect();
        report::warn(&format!(
            "not passed into the container (values are not UTF-8): {}",
            names.join(", ")
        ));
    }
    Ok((engine, spec, image))
}

/// The engine bind-mounts the job script as root, past directories the caller may not
/// enter: so it must be a regular file the caller can open themselves (as a native job must).
fn check_script(job: &JobContext) -> Result<()> {
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
    Ok(())
}

/// Removes the container named for this job only when it is the one this starter created
/// (all its labels, the starter's pid and start time among them, are ours).
async fn remove_own(engine: &Engine, spec: &ContainerSpec) -> Result<()> {
    match engine.inspect(&spec.name).await? {
        Some(c) if spec.labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)) => {
            engine.remove(&spec.name, true).await
        }
        _ => Ok(()),
    }
}

/// The job's extra mounts: each source resolved with links followed, with the user's own
/// rights, then checked against the admin's prefixes.
fn user_mounts(job: &JobContext, config: &Config) -> Result<Vec<MountSpec>> {
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
            policy::authorize_mount(m, &resolved, &config.mounts.user_allow)
        })
        .collect()
}

async fn resolve_image(
    engine: &Engine,
    reference: &crate::image_ref::ImageRef,
    pull: PullPolicy,
) -> Result<ResolvedImage> {
    let name = reference.normalized();
    if pull == PullPolicy::Always {
        engine.pull(&name).await?;
    }
    let found = match engine.image(&name).await? {
        None if pull == PullPolicy::Missing => {
            engine.pull(&name).await?;
            engine.image(&name).await?
        }
        found => found,
    };
    let image = found.ok_or_else(|| match pull {
        PullPolicy::Never => Error::ImageAbsent {
            image: reference.familiar(),
        },
        _ => Error::PullRefused {
            image: reference.familiar(),
            cause: Cause::text("the engine has no such image after the pull"),
        },
    })?;
    let repo_digest = match &reference.digest {
        Some(digest) => image
            .repo_digests
            .iter()
            .find(|d| d.ends_with(digest.as_str()))
            .cloned(),
        None => image.repo_digests.first().cloned(),
    };
    Ok(ResolvedImage {
        reference: reference.clone(),
        id: image.id,
        repo_digest,
    })
}

/// A container with this job's name is left from an earlier run of the same job (requeue,
/// reschedule after a crash). Ours and stopped: remove it. Anything else is not ours to touch.
async fn clear_leftover(engine: &Engine, name: &str) -> Result<()> {
    let Some(old) = engine.inspect(name).await? else {
        return Ok(());
    };
    let me = nix::unistd::getuid().as_raw().to_string();
    if old.label("owner-uid") != Some(me.as_str()) {
        let owner = old.label("owner-uid").unwrap_or("unknown").to_string();
        return Err(Error::Leftover {
            name: name.into(),
            problem: format!("belongs to uid {owner}"),
        });
    }
    if matches!(old.state, State::Running | State::Paused | State::Other(_)) {
        return Err(Error::Leftover {
            name: name.into(),
            problem: format!("is still {:?}", old.state),
        });
    }
    report::info(&format!(
        "removing container {name} left over from an earlier run of this job"
    ));
    engine.remove(name, false).await
}

/// Creates, attaches, starts and supervises the container; returns the starter's exit code.
async fn execute(
    engine: &Engine,
    spec: &ContainerSpec,
    job: &JobContext,
    announce: &str,
    signals: &mut Signals,
) -> Result<u8> {
    let script = if spec.stdin_script {
        Some(
            std::fs::read(&job.script)
                .map_err(|e| Error::io(format!("read {}", job.script.display()), e))?,
        )
    } else {
        None
    };
    let setup = async {
        // The common case needs no look-up first: only a taken name means a leftover.
        if !engine.create(spec).await? {
            clear_leftover(engine, &spec.name).await?;
            if !engine.create(spec).await? {
                let problem = "came back while it was being removed".to_string();
                return Err(Error::Leftover {
                    name: spec.name.clone(),
                    problem,
                });
            }
        }
        // Said once the container exists, so a job refused before has one line only: why.
        report::info(announce);
        let (output, input) = engine.attach(&spec.name, spec.stdin_script).await?;
        engine.start(&spec.name).await?;
        Ok::<_, Error>((output, input))
    };
    tokio::pin!(setup);
    // The job may run (and set its traps) before the engine has answered the start:
    // warnings arriving meanwhile are forwarded once it has, not dropped.
    let mut warnings = Vec::new();
    let (output, input) = loop {
        tokio::select! {
            setup = &mut setup => break setup?,
            received = signals.next() => match received {
                Received::Terminate(n) => {
                    // Ours may be running already: the job gets its grace, as later on.
                    if let Ok(Some(c)) = engine.inspect(&spec.name).await
                        && spec.labels.iter().all(|(k, v)| c.labels.get(k) == Some(v))
                        && let Err(e) = engine.stop(&spec.name, spec.stop_grace_secs).await
                    {
                        report::warn(&format!("stopping the container failed: {e}"));
                    }
                    return Ok(128 + n as u8);
                }
                Received::Forward(_) => warnings.push(received),
            },
        }
    };
    for received in warnings {
        forward(engine, &spec.name, received).await;
    }
    // Fed while the output is read: a shell that writes much before it has read its whole
    // script would otherwise block on its output while the starter blocks on its input.
    let feeding = script.map(|script| Box::pin(feed(input, script)) as Pending);
    supervise(engine, spec, output, feeding, signals).await
}

/// Hands a `-notify` warning (SIGUSR1, SIGUSR2) to the job.
async fn forward(engine: &Engine, name: &str, received: Received) {
    if let Err(e) = engine.kill(name, received.name()).await {
        report::warn(&format!(
            "could not forward {} to the job: {e}",
            received.name()
        ));
    }
}

/// Writes the script to the shell's stdin (`script_from_stdin`), then closes it.
async fn feed(mut input: crate::engine::Input, script: Vec<u8>) -> Result<()> {
    input
        .write_all(&script)
        .await
        .map_err(|e| Error::io("feed the script to the job's shell", e))?;
    input
        .shutdown()
        .await
        .map_err(|e| Error::io("close the job's stdin", e))
}

type Pending<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;

async fn supervise(
    engine: &Engine,
    spec: &ContainerSpec,
    mut output: Output,
    mut feeding: Option<Pending<'_>>,
    signals: &mut Signals,
) -> Result<u8> {
    let name = spec.name.as_str();
    let mut sink = Sink::default();
    let wait = engine.wait(name);
    tokio::pin!(wait);
    let mut exit: Option<i64> = None;
    let mut output_open = true;
    let mut terminated: Option<i32> = None;
    let mut stopping: Option<Pending> = None;
    let drain_deadline = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(drain_deadline);
    while output_open || exit.is_none() {
        tokio::select! {
            chunk = output.next(), if output_open => match chunk {
                Some(Ok(chunk)) => sink.write(chunk),
                Some(Err(e)) => {
                    report::warn(&e.to_string());
                    output_open = false;
                }
                None => output_open = false,
            },
            code = &mut wait, if exit.is_none() => {
                // The job started: whether it finished is unknown, and a requeue could run it
                // twice, so this is not a transient failure.
                exit = Some(code.map_err(|e| Error::JobLost { name: name.to_string(), cause: Box::new(e) })?);
                drain_deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_AFTER_EXIT);
            },
            _ = &mut drain_deadline, if exit.is_some() => {
                report::warn("the job's output did not end after it exited; the rest is lost");
                output_open = false;
            },
            result = async { feeding.as_mut().expect("guarded").await }, if feeding.is_some() => {
                feeding = None;
                // A job may end (exit) before it read all of its script: not a failure.
                if let Err(e) = result {
                    report::log(&e.to_string());
                }
            },
            result = async { stopping.as_mut().expect("guarded").await }, if stopping.is_some() => {
                stopping = None;
                if let Err(e) = result {
                    report::warn(&format!("stopping the container failed: {e}"));
                }
            },
            received = signals.next() => match received {
                Received::Terminate(n) => {
                    if terminated.is_none() {
                        report::info(&format!("{} received: stopping the job (grace {} s)", received.name(), spec.stop_grace_secs));
                        terminated = Some(n);
                    }
                    // A repeated signal retries a stop that failed.
                    if stopping.is_none() {
                        stopping = Some(Box::pin(engine.stop(name, spec.stop_grace_secs)));
                    }
                }
                Received::Forward(_) => forward(engine, name, received).await,
            },
        }
    }
    let code = exit.unwrap_or(0);
    if let Some(n) = terminated {
        return Ok(128 + n as u8);
    }
    let code = u8::try_from(code).unwrap_or(255);
    if code == 0 {
        // Nothing to explain: the look-up below is for failures only.
        return Ok(0);
    }
    // The job ran to its end: a failed look-up must not turn it into a requeue (99).
    match engine.inspect(name).await {
        Ok(Some(c)) if c.oom_killed => {
            let limit = c
                .memory_limit
                .map(|m| format!("{} MiB", m >> 20))
                .unwrap_or_else(|| "none set".into());
            // OOMKilled is set when any process of the container was killed; when the job
            // itself survived that, its own exit code stands, as it would natively.
            report::info(&if code == 137 {
                format!("the job ran out of memory (limit {limit}) and was killed")
            } else {
                format!(
                    "a process of the job ran out of memory (limit {limit}) and was killed; the job went on and exited with {code}"
                )
            });
        }
        Ok(_) => {}
        Err(e) => report::warn(&format!(
            "could not check whether the job ran out of memory: {e}"
        )),
    }
    Ok(code)
}

/// Writes the job's output straight to fds 1 and 2 with write(2): no buffer between the job
/// and its `.o`/`.e` files, so partial lines (progress bars) appear at once and nothing is
/// copied twice. A closed stdout is not the job's failure: output is then dropped and the
/// job runs on.
#[derive(Default)]
struct Sink {
    broken: [bool; 2],
}

impl Sink {
    fn write(&mut self, chunk: Chunk) {
        let (index, mut bytes) = match &chunk {
            Chunk::Stdout(b) => (0, b.as_ref()),
            Chunk::Stderr(b) => (1, b.as_ref()),
        };
        if self.broken[index] {
            return;
        }
        // SAFETY: fds 1 and 2 stay open for the whole life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(index as i32 + 1) };
        while !bytes.is_empty() {
            match nix::unistd::write(fd, bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    self.broken[index] = true;
                    return;
                }
            }
        }
    }
}
