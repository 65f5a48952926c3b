//! `qdock`: the admin's tool. `check` validates an installation, `gc` removes orphaned
//! containers, `ps` shows what qdock runs on this host, `usage` what a job ran and used.
//!
//! Installed setgid docker like the methods, yet run by anyone: every subcommand acts with
//! the caller's own rights, and takes up the docker group ([`privilege::with_key`]) only
//! around its use of the engine or the usage record.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::labels::{Label, Labelled};
use crate::methods::{gc, jsv, load_sensor, stdio_gc, usage, watch};
use crate::{privilege, report};

pub const BINARIES: [&str; 5] = [
    "qdock",
    "qdock-starter",
    "qdock-suspend",
    "qdock-resume",
    "qdock-terminate",
];

#[derive(Parser)]
#[command(version, about = "qdock: run Grid Engine jobs in Docker images")]
pub struct Cli {
    /// Config file (ignored when installed setgid: then /etc/qdock/qdock.toml)
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the installation: binaries, config, engine, images
    Check,
    /// Stop and remove containers, and remove pipes' directories, whose starter is gone (root only)
    Gc {
        /// Only print what would be removed
        #[arg(long, conflicts_with = "watch")]
        dry_run: bool,
        /// Keep running: remove each container as soon as its starter ends
        #[arg(long)]
        watch: bool,
        /// Only the containers of this Grid Engine cell (label qdock.cell)
        #[arg(long)]
        cell: Option<String>,
    },
    /// List the containers qdock runs on this host
    Ps,
    /// Show a job's usage record on this host: exact image, exit code, CPU, peak memory
    Usage {
        /// JOB or JOB.TASK (task 0: a job that is no array)
        job: String,
        /// The records as written: one JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Job Submission Verifier: refuse bad images at qsub time, request hosts holding them (jsv_url)
    Jsv,
    /// Load sensor: report qdock_engine, qdock_containers and qdock_images (execd load_sensor)
    LoadSensor,
}

pub fn main() -> u8 {
    report::init("qdock");
    let cli = Cli::parse();
    let result = privilege::lower().and_then(|()| match cli.command {
        // These two speak line protocols on stdin/stdout for the life of a Grid Engine daemon.
        Command::Jsv => {
            Config::load(cli.config).and_then(|(c, path)| serve_protocol(jsv::serve(c, path)))
        }
        Command::LoadSensor => Config::load(cli.config)
            .and_then(|(c, path)| serve_protocol(load_sensor::serve(c, path))),
        Command::Usage { job, json } => usage::show(cli.config, &job, json),
        command => runtime().and_then(|rt| {
            rt.block_on(async {
                match command {
                    Command::Check => check(cli.config).await,
                    Command::Gc {
                        dry_run,
                        watch,
                        cell,
                    } => run_gc(cli.config, dry_run, watch, cell.as_deref()).await,
                    _ => ps(cli.config).await,
                }
            })
        }),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            report::error(&e);
            e.exit_code()
        }
    }
}

fn serve_protocol(result: std::io::Result<()>) -> Result<u8> {
    result
        .map(|()| 0)
        .map_err(|e| Error::io("talk to Grid Engine on stdin/stdout", e))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the async runtime", e))
}

async fn run_gc(
    config: Option<PathBuf>,
    dry_run: bool,
    watch: bool,
    cell: Option<&str>,
) -> Result<u8> {
    if !nix::unistd::getuid().is_root() {
        return Err(Error::Denied(
            "qdock gc removes other users' containers: run it as root".into(),
        ));
    }
    let (config, _) = Config::load(config)?;
    if watch {
        return watch::run(&config, cell).await.map(|()| 0);
    }
    // The pipes' directories first: they need no engine, which may be unreachable.
    let (_, mut failures) = stdio_gc::sweep(cell, dry_run);
    match crate::run_mark::sweep(&config.gridengine, dry_run) {
        Ok(0) => {}
        // Housekeeping, not an orphan: said to syslog, and listed only when asked what would go.
        Ok(n) if dry_run => println!(
            "would remove {n} marks of ended job runs in {}",
            crate::run_mark::DIR
        ),
        Ok(n) => crate::report::log(&format!(
            "removed {n} marks of ended job runs in {}",
            crate::run_mark::DIR
        )),
        Err(problem) => failures.push(problem),
    }
    let engine = Engine::connect(&config.engine).await?;
    let grace = config.container.stop_grace_secs;
    let removed = gc::collect(&engine, cell, grace, dry_run).await?;
    if removed.is_empty() {
        println!("no orphaned containers");
    }
    // After the orphans: the GPUs they held are free once they are gone.
    if !dry_run && let Err(e) = crate::gpu::ledger::sweep(&config, &engine).await {
        failures.push(format!(
            "cannot free the GPUs of ended jobs in {} ({e})",
            config.gpus.lock_dir.display()
        ));
    }
    if failures.is_empty() {
        Ok(0)
    } else {
        Err(Error::Io {
            action: "remove orphaned pipes' directories and run marks".into(),
            source: std::io::Error::other(failures.join("; ")),
        })
    }
}

/// Root sees every container; anyone else only their own: the others' job ids, images and
/// user names are not theirs to see.
async fn ps(config: Option<PathBuf>) -> Result<u8> {
    let (config, _) = Config::load(config)?;
    // bollard connects on a request, not at connect, and again whenever its pool holds no
    // live connection: so the group is held around the whole use of the engine, and the
    // printing after it is the caller's alone.
    let containers =
        privilege::with_key(async { Engine::connect(&config.engine).await?.list_qdock().await })
            .await?;
    let caller = nix::unistd::getuid();
    println!(
        "{:<32} {:<12} {:<10} {:<8} {:<8} IMAGE",
        "CONTAINER", "JOB", "OWNER", "STATE", "STARTER"
    );
    let visible = containers
        .into_iter()
        .filter(|c| caller.is_root() || c.owner_uid() == Some(caller.as_raw()));
    for c in visible {
        let job = format!(
            "{}.{}",
            c.label(Label::JobId).unwrap_or("?"),
            c.label(Label::TaskId).unwrap_or("?")
        );
        let starter = if gc::orphan_reason(&c).is_none() {
            "alive"
        } else {
            "gone"
        };
        let state = format!("{:?}", c.state).to_lowercase();
        println!(
            "{:<32} {:<12} {:<10} {:<8} {:<8} {}",
            c.name,
            job,
            c.label(Label::Owner).unwrap_or("?"),
            state,
            starter,
            c.label(Label::Image).unwrap_or("?")
        );
    }
    Ok(0)
}

/// Prints one line per finding; exits 1 when anything needs fixing.
async fn check(requested: Option<PathBuf>) -> Result<u8> {
    let mut problems = 0;
    let mut finding = |ok: bool, text: String| {
        println!("{} {text}", if ok { "ok     " } else { "PROBLEM" });
        problems += usize::from(!ok);
    };
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let docker_gid = nix::unistd::Group::from_name("docker")
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    for name in BINARIES {
        let (ok, text) = check_binary(&dir.join(name), docker_gid);
        finding(ok, text);
    }
    match crate::methods::starter::check_stdio() {
        Ok(text) => finding(true, text),
        Err(e) => finding(false, e.to_string()),
    }
    let path = requested.unwrap_or_else(|| config::DEFAULT_PATH.into());
    let loaded = config::check_trusted(&path).and_then(|_| Config::load(Some(path.clone())));
    let config = match loaded {
        Ok((config, path)) => {
            finding(
                true,
                format!(
                    "config {} is owned by root, not writable by others, and valid",
                    path.display()
                ),
            );
            config
        }
        Err(e) => {
            finding(false, e.to_string());
            Config::default()
        }
    };
    // The engine is what the setgid binaries are for: check reaches it as they do.
    let reached = privilege::with_key(async {
        let engine = Engine::connect(&config.engine).await?;
        Ok((
            engine.version().await?,
            engine.image_references().await?.tags,
            engine.lacks(config.container.init),
        ))
    })
    .await;
    match reached {
        Ok((version, tags, lacking)) => {
            finding(
                true,
                format!(
                    "engine at {} answers: {version}",
                    config.engine.socket.display()
                ),
            );
            for lack in lacking {
                finding(false, lack);
            }
            check_images(&tags, &config, &mut finding);
        }
        Err(e) => finding(false, e.to_string()),
    }
    for (ok, text) in crate::gridengine::findings() {
        finding(ok, text);
    }
    for (ok, text) in crate::gpu::findings(&config.gpus) {
        finding(ok, text);
    }
    println!(
        "{}",
        if problems == 0 {
            "qdock is ready".to_string()
        } else {
            format!("{problems} problem(s) found")
        }
    );
    Ok(u8::from(problems > 0))
}

fn check_binary(path: &Path, docker_gid: Option<u32>) -> (bool, String) {
    let shown = path.display();
    let Ok(meta) = std::fs::metadata(path) else {
        return (false, format!("{shown} is missing; run bin/install"));
    };
    let mode = meta.mode() & 0o7777;
    let ok = meta.uid() == 0 && Some(meta.gid()) == docker_gid && mode == 0o2755;
    if ok {
        (true, format!("{shown} is root:docker 2755"))
    } else {
        (
            false,
            format!(
                "{shown} is uid {} gid {} mode {mode:o}; fix: chown root:docker {shown} && chmod 2755 {shown}",
                meta.uid(),
                meta.gid()
            ),
        )
    }
}

fn check_images(tags: &[String], config: &Config, finding: &mut impl FnMut(bool, String)) {
    if config.images.allow.is_empty() {
        finding(
            true,
            format!(
                "every image may run (images.allow is empty); {} local image tags",
                tags.len()
            ),
        );
        return;
    }
    for pattern in &config.images.allow {
        let local: Vec<&String> = tags
            .iter()
            .filter(|t| crate::image_ref::ImageRef::parse(t).is_ok_and(|r| pattern.matches(&r)))
            .collect();
        let text = format!(
            "images.allow \"{pattern}\" matches {} local image(s)",
            local.len()
        );
        finding(
            !local.is_empty() || config.images.pull != config::PullPolicy::Never,
            text,
        );
    }
}
