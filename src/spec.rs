//! JobContext + Config -> the container to create. Pure: everything read from the host
//! (identity, limits, resolved image and mounts) comes in as arguments, so the whole
//! decision can be tested without an engine.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::binding;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::gpu;
use crate::image_ref::ImageRef;
use crate::job::JobContext;
use crate::job_proof::Proven;
use crate::labels::{self, Label};
use crate::limits::Limits;
use crate::mount::MountSpec;
use crate::policy::env_passes;
use crate::privilege::Identity;
use crate::process::ProcessId;
use crate::start_command::{StartCommand, start_command};

/// The image as the engine resolved it: what actually runs, not what was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    pub reference: ImageRef,
    /// The local image ID (`sha256:…`); the container is created from it, so a tag moved
    /// between the lookup and the start cannot change what runs.
    pub id: String,
    /// `repository@sha256:…` when the image came from a registry.
    pub repo_digest: Option<String>,
    /// The image's own environment (`Config.Env`, `NAME=value`): the job's baseline.
    pub env: Vec<String>,
}

/// Facts about the host the spec depends on.
#[derive(Debug, Clone)]
pub struct Host {
    pub hostname: String,
    pub cpus: u32,
    /// The CPUs the starter may run on, as Grid Engine's shepherd bound it (see `binding`).
    pub affinity: Vec<usize>,
    pub online_cpus: usize,
    /// The job's working directory, also inside the container.
    pub cwd: PathBuf,
    pub sources: Sources,
    /// The admin's seccomp profile, read from `container.seccomp_profile`.
    pub seccomp_profile: Option<String>,
    /// The starter itself, recorded so `qdock gc` can tell a live job from an orphan.
    pub starter: Option<ProcessId>,
    pub output: Output,
    /// The job's GPUs on this host, and what the container gets for them.
    pub gpus: crate::gpu::Share,
}

/// How the job's output reaches the starter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Through the starter's own pipes, which outlast an engine restart.
    Pipes(Stdio),
    /// Through the container's own terminal of this size, attached through the engine
    /// (`qrsh -pty y`). A terminal session cannot be replayed anyway: an engine restart cuts
    /// it off.
    Terminal(WindowSize),
}

/// The size of the terminal the job gets when its starter has one of `size`: none when the
/// shell reads the script on stdin (`script_from_stdin`), which is what it must read.
pub fn terminal_for(job: &JobContext, size: Option<WindowSize>) -> Option<WindowSize> {
    size.filter(|_| !script_on_stdin(job))
}

fn script_on_stdin(job: &JobContext) -> bool {
    start_command(job.kind, &job.shell, &job.script, &[]).script_on_stdin
}

/// A terminal's size in character cells; zero when nobody set it (as `TIOCGWINSZ` says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

impl WindowSize {
    /// The size to hand on: an unset one would shrink the job's terminal to nothing.
    pub fn known(self) -> Option<WindowSize> {
        (self.rows > 0 && self.cols > 0).then_some(self)
    }
}

/// Where the container's stdin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// The job script, fed by the starter (`script_from_stdin`).
    Script,
    /// The starter's own stdin, relayed as it comes: qrsh's input, a batch job's `-i` file.
    Relayed,
    /// The starter's terminal: the container gets a terminal of its own, of this size, and
    /// the starter relays keys and size changes to it.
    Terminal(WindowSize),
}

/// The job's output pipes on the host and the helper that opens them in the container
/// (see methods/starter/stdio.rs): trusted paths the starter made, mounted as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stdio {
    pub helper: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The FIFO on which the starter lets the job start (the helper's `--wait`).
    pub go: PathBuf,
    /// Where the starter writes a login shell's profile when the spec has one.
    pub profile: PathBuf,
}

/// Where the container sees them: one directory of qdock's own, at the root, read-only.
pub const STDIO_HELPER: &str = "/.qdock/stdio";
pub const STDIO_STDOUT: &str = "/.qdock/stdout";
pub const STDIO_STDERR: &str = "/.qdock/stderr";
pub const STDIO_GO: &str = "/.qdock/go";

/// The default mount sources, each already widened to its anchor (see `mount_source`) and
/// mounted at its own path; `None` where there is nothing to mount.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Covers the job script; a binary job has none (its command is the image's).
    pub script: Option<PathBuf>,
    /// The caller's home from the password database, never `$HOME`.
    pub home: Option<PathBuf>,
    /// Covers the working directory.
    pub cwd: Option<PathBuf>,
    /// The per-job TMPDIR the execd created (from its spool, never `$TMPDIR`).
    pub tmpdir: Option<Anchored>,
    /// A parallel job's `$PE_HOSTFILE`, read-only: the execd's own file in its spool, never
    /// the path the environment names.
    pub pe_hostfile: Option<PathBuf>,
}

/// A path and its anchor (see `mount_source`), the directory the engine mounts for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchored {
    pub path: PathBuf,
    pub anchor: PathBuf,
}

/// Where a TMPDIR that lies in the host's /tmp is mounted, hidden from the job's own /tmp.
pub const HOST_TMP: &str = "/.qdock/tmp";

/// Sourced by a login shell after the image's /etc/profile reset PATH: first of
/// /etc/profile.d/*.sh, so the image's other scripts build on the image's environment.
/// Mounted read-only from the starter's pipes directory (see [`Stdio::profile`]).
pub const IMAGE_ENV_PROFILE: &str = "/etc/profile.d/00-qdock-image-env.sh";

/// Every decision about the container in one place, so that one test sees them all: the
/// engine layer only translates this to the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub user: String,
    pub groups: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub stdin: Stdin,
    pub workdir: String,
    pub hostname: Option<String>,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<MountSpec>,
    pub network: String,
    pub init: bool,
    pub cap_drop: Vec<String>,
    pub cap_add: Vec<String>,
    pub security_opt: Vec<String>,
    pub privileged: bool,
    /// `private`: no shared memory with the host or other containers.
    pub ipc_mode: String,
    /// `None`: a PID namespace of its own, so the job sees and signals only its processes.
    pub pid_mode: Option<String>,
    pub readonly_rootfs: bool,
    /// `none`: the output goes to the starter only, no copy piles up in the engine.
    pub log_driver: String,
    pub devices: Vec<String>,
    /// The job's GPUs by the NVIDIA container toolkit's device ids (`[gpus] mode = "toolkit"`).
    pub gpu_ids: Vec<String>,
    pub memory: Option<i64>,
    /// Equal to `memory`: otherwise swap would double the job's memory limit.
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    /// The cores Grid Engine bound the job to (`-binding`), as a cpuset list.
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<(String, i64, i64)>,
    pub stop_grace_secs: u64,
    /// A login shell's profile (see [`IMAGE_ENV_PROFILE`]): the starter writes it to
    /// [`Stdio::profile`], which is mounted.
    pub profile: Option<String>,
}

/// What the build noticed but did not refuse.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notes {
    /// Variables left out because the engine API carries only UTF-8.
    pub skipped_env: Vec<String>,
    /// User mounts asked writable that are mounted read-only, as the admin mounts them.
    pub made_read_only: Vec<MadeReadOnly>,
}

/// A user mount made read-only: `mount` lies in `admin`, which the admin mounts read-only.
#[derive(Debug, PartialEq, Eq)]
pub struct MadeReadOnly {
    pub mount: PathBuf,
    pub admin: PathBuf,
}

pub struct Inputs<'a> {
    pub job: &'a JobContext,
    /// What names the container and labels it: never the job's environment.
    pub proven: &'a Proven,
    pub config: &'a Config,
    pub who: &'a Identity,
    pub image: &'a ResolvedImage,
    pub limits: &'a Limits,
    pub user_mounts: &'a [MountSpec],
    pub host: &'a Host,
}

pub fn build(i: &Inputs) -> Result<(ContainerSpec, Notes)> {
    let (job, config) = (i.job, i.config);
    // The engine's API carries only UTF-8: every part of the command must be.
    utf8_path(&job.script, "the job script path")?;
    for arg in &job.args {
        utf8(arg, "a job argument")?;
    }
    utf8_path(&job.shell.path, "the job shell path")?;
    let start = start_command(job.kind, &job.shell, &job.script, &job.args);
    let cmd: Vec<String> = start
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Only through the helper does the shell get its argv[0], and with it a login.
    let login_shell = matches!(i.host.output, Output::Pipes(_))
        && start.argv0.as_encoded_bytes().starts_with(b"-");

    let mut notes = Notes::default();
    let mut env = Vec::new();
    for (k, v) in &job.env.0 {
        match (k.to_str(), v.to_str()) {
            // The job's own is its caller's word: which GPUs the container sees is qdock's.
            (Some(gpu::VISIBLE), _) => {}
            (Some(k), Some(v)) => {
                if env_passes(k, &config.job.env_pass, &config.job.env_deny) {
                    env.push(format!("{k}={v}"));
                }
            }
            _ => notes.skipped_env.push(k.to_string_lossy().into_owned()),
        }
    }
    let gpus = &i.host.gpus;
    env.extend(gpus.env.iter().cloned());
    if !gpus.gpus.is_empty() {
        env.push(format!(
            "{}={}",
            gpu::VISIBLE,
            gpu::visible(&gpus.gpus, true)
        ));
    }

    let profile = login_shell
        .then(|| image_env_profile(&i.image.env, &env))
        .flatten();
    let (mounts, private_tmp) = mounts(i, profile.is_some(), &mut notes)?;
    let entrypoint = entrypoint(&i.host.output, &start, private_tmp.and_then(tmp_link));
    let spec = ContainerSpec {
        name: i.proven.key.container_name(),
        image: i.image.id.clone(),
        user: format!("{}:{}", i.who.uid, i.who.gid),
        groups: i.who.groups.iter().map(u32::to_string).collect(),
        entrypoint,
        cmd,
        stdin: match i.host.output {
            Output::Terminal(size) => Stdin::Terminal(size),
            Output::Pipes(_) if script_on_stdin(job) => Stdin::Script,
            Output::Pipes(_) => Stdin::Relayed,
        },
        workdir: utf8_path(&i.host.cwd, "the working directory")?,
        hostname: (config.container.network != "host").then(|| i.host.hostname.clone()),
        env,
        labels: labels(i),
        mounts,
        network: config.container.network.clone(),
        init: config.container.init,
        cap_drop: vec!["ALL".into()],
        cap_add: config.container.cap_add.clone(),
        security_opt: security_opt(i.host.seccomp_profile.as_deref()),
        privileged: false,
        ipc_mode: "private".into(),
        pid_mode: None,
        readonly_rootfs: false,
        log_driver: "none".into(),
        devices: config
            .container
            .devices
            .iter()
            .cloned()
            .chain(
                gpus.nodes
                    .iter()
                    .map(|(host, inside)| format!("{}:{}", host.display(), inside.display())),
            )
            .collect(),
        gpu_ids: gpus.toolkit_ids.clone(),
        memory: i.limits.memory,
        memory_swap: i.limits.memory,
        nano_cpus: cpus(config, i.proven.slots(job.nslots), i.host.cpus),
        cpuset_cpus: binding::cpuset(&i.host.affinity, i.host.online_cpus),
        pids_limit: (config.container.pids_limit > 0).then_some(config.container.pids_limit),
        ulimits: i.limits.ulimits.clone(),
        stop_grace_secs: config.container.stop_grace_secs,
        profile,
    };
    Ok((spec, notes))
}

fn labels(i: &Inputs) -> BTreeMap<String, String> {
    let key = &i.proven.key;
    let starter = i.host.starter.iter().flat_map(|s| {
        [
            (Label::StarterPid, s.pid.to_string()),
            (Label::StarterStart, s.start.to_string()),
        ]
    });
    labels::to_map(
        [
            (Label::JobId, key.job_id().to_string()),
            (Label::TaskId, key.task_id().to_string()),
            (Label::Cell, key.cell().to_string()),
            (Label::Queue, i.proven.queue()),
            (Label::OwnerUid, i.who.uid.to_string()),
            (Label::Owner, i.who.name.clone()),
            (Label::Image, i.image.reference.normalized()),
            (
                Label::ImageDigest,
                i.image
                    .repo_digest
                    .clone()
                    .unwrap_or_else(|| i.image.id.clone()),
            ),
        ]
        .into_iter()
        .chain(starter),
    )
}

/// What the container runs. Through the output helper, which opens the pipes onto fds 1
/// and 2, waits for the starter's go-ahead (`--wait`: the starter follows the container's
/// first process by then), makes TMPDIR's link in the container's /tmp (`--link`), then
/// execs the job's command as it is, argv[0] included. On a terminal the engine execs the program with its
/// path as argv[0]: a login shell is lost there, but Grid Engine starts none with a
/// terminal (qrsh_starter, the only one handing the starter a terminal, sets
/// SGE_STARTER_USE_LOGIN_SHELL=false).
fn entrypoint(
    output: &Output,
    start: &StartCommand,
    link: Option<(PathBuf, PathBuf)>,
) -> Vec<String> {
    let text = |s: &OsStr| s.to_string_lossy().into_owned();
    match output {
        Output::Pipes(_) => {
            let link = link.into_iter().flat_map(|(link, target)| {
                [
                    "--link".into(),
                    text(link.as_os_str()),
                    text(target.as_os_str()),
                ]
            });
            [STDIO_HELPER, "--wait", STDIO_GO]
                .map(String::from)
                .into_iter()
                .chain(link)
                .chain([STDIO_STDOUT, STDIO_STDERR].map(String::from))
                .chain([text(&start.argv0), text(&start.program)])
                .collect()
        }
        Output::Terminal(_) => vec![text(&start.program)],
    }
}

/// Identity files, home, cwd, TMPDIR and the job script at the same paths as on the host, so
/// the job sees the files it would see natively; then the admin's and the job's own mounts.
/// A TMPDIR in the host's /tmp is the exception (see [`private_tmp`]); returned when it is.
fn mounts<'a>(
    i: &'a Inputs,
    profile: bool,
    notes: &mut Notes,
) -> Result<(Vec<MountSpec>, Option<&'a Anchored>)> {
    let m = &i.config.mounts;
    let src = &i.host.sources;
    let same = |p: &Path, read_only: bool| MountSpec {
        source: p.into(),
        target: p.into(),
        read_only,
    };
    // First, so that no other mount can take their targets (see `merge`).
    let mut out: Vec<MountSpec> = match &i.host.output {
        Output::Pipes(stdio) => [
            (&stdio.helper, STDIO_HELPER),
            (&stdio.stdout, STDIO_STDOUT),
            (&stdio.stderr, STDIO_STDERR),
            (&stdio.go, STDIO_GO),
        ]
        .into_iter()
        .chain(profile.then_some((&stdio.profile, IMAGE_ENV_PROFILE)))
        .map(|(source, target)| MountSpec {
            source: source.clone(),
            target: target.into(),
            read_only: true,
        })
        .collect(),
        Output::Terminal(_) => Vec::new(),
    };
    out.extend(
        src.script
            .iter()
            .chain(&src.pe_hostfile)
            .map(|s| same(s, true)),
    );
    if m.identity {
        out.push(same(Path::new("/etc/passwd"), true));
        out.push(same(Path::new("/etc/group"), true));
    }
    let defaults = [(m.home, &src.home), (m.cwd, &src.cwd)];
    let mut defaults: Vec<MountSpec> = defaults
        .into_iter()
        .filter_map(|(wanted, source)| source.as_ref().filter(|_| wanted).map(|p| same(p, false)))
        .collect();
    let tmpdir = src.tmpdir.as_ref().filter(|_| m.tmpdir);
    let others = || {
        out.iter()
            .chain(&defaults)
            .chain(&m.extra)
            .chain(i.user_mounts)
    };
    let through_helper = matches!(i.host.output, Output::Pipes(_));
    let private = tmpdir.filter(|t| through_helper && private_tmp(t, others()));
    defaults.extend(tmpdir.map(|t| match private {
        Some(_) => MountSpec {
            source: t.anchor.clone(),
            target: HOST_TMP.into(),
            read_only: false,
        },
        None => same(&t.anchor, false),
    }));
    let mut user_mounts = i.user_mounts.to_vec();
    let mut covers = keep_read_only(&m.extra, &mut defaults, None)?;
    covers.extend(keep_read_only(&m.extra, &mut user_mounts, Some(notes))?);
    out.extend(defaults);
    out.extend(m.extra.iter().cloned());
    out.extend(i.host.gpus.mounts.iter().cloned());
    out.extend(user_mounts);
    // Last: a mount of another source on the same target hides the data as well.
    out.extend(covers);
    let out = merge(out);
    for mount in &out {
        utf8_path(&mount.source, "a mount path")?;
    }
    Ok((out, private))
}

const TMP: &str = "/tmp";

/// Does the job get a /tmp of its own? Natively, jobs share the host's /tmp, but each also
/// sees every other process of the host: a JVM's `/tmp/hsperfdata_<user>/<pid>` is unique
/// there. Containers each number their processes from 1, so in one shared /tmp two jobs'
/// JVMs take the same file, and so do lock files and sockets named by pid. A TMPDIR in the
/// host's /tmp is anchored at /tmp itself (the execd makes it the user's, in a sticky
/// directory), so it is mounted out of the way at [`HOST_TMP`] and reached by a link at its
/// own path, while the rest of /tmp is the container's (its writable layer, gone with it).
/// Only when nothing else the container mounts lies in /tmp, and only where the output
/// helper runs first to make the link (not on a terminal): else /tmp stays the host's.
fn private_tmp<'a>(tmpdir: &Anchored, mut others: impl Iterator<Item = &'a MountSpec>) -> bool {
    let tmp = Path::new(TMP);
    tmpdir.anchor == tmp
        && tmpdir.path != tmp
        && !others.any(|m| m.source.starts_with(tmp) || m.target.starts_with(tmp))
}

/// TMPDIR's link in the container's /tmp, through [`HOST_TMP`]: its first step below /tmp,
/// so that the link needs nothing from the image but /tmp.
fn tmp_link(tmpdir: &Anchored) -> Option<(PathBuf, PathBuf)> {
    let first = tmpdir.path.strip_prefix(TMP).ok()?.components().next()?;
    Some((Path::new(TMP).join(first), Path::new(HOST_TMP).join(first)))
}

/// For a login shell, whose /etc/profile (Debian's, Ubuntu's) resets PATH: the image's
/// environment again, each variable as the container starts with it (the job's value where
/// it passes one, else the image's), before the user's own ~/.profile adds to it as it would
/// natively. Empty when the image declares nothing.
fn image_env_profile(image_env: &[String], job_env: &[String]) -> Option<String> {
    let value_in = |env: &'_ [String], name: &str| -> Option<String> {
        env.iter()
            .find_map(|e| e.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
    };
    let mut script = String::from(
        "# qdock: the image's environment, again after /etc/profile (see qdock's README)\n",
    );
    let mut any = false;
    for (name, value) in image_env.iter().filter_map(|e| e.split_once('=')) {
        if !is_shell_name(name) {
            continue;
        }
        let value = value_in(job_env, name).unwrap_or_else(|| value.to_string());
        script.push_str(&format!(
            "export {name}='{}'\n",
            value.replace('\'', "'\\''")
        ));
        any = true;
    }
    any.then_some(script)
}

fn is_shell_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The admin's read-only mounts (`mounts.extra` with `:ro`) stay read-only whatever the job
/// asks: each writable mount of `asked` that lies in one becomes read-only (noted in `notes`
/// when the user asked for it); one that holds one at its own path needs the admin's source
/// mounted read-only again at that path, returned as covers; one that holds one at another
/// target would make the data writable there, and is refused.
fn keep_read_only(
    extra: &[MountSpec],
    asked: &mut [MountSpec],
    mut notes: Option<&mut Notes>,
) -> Result<Vec<MountSpec>> {
    let mut covers = Vec::new();
    for admin in extra.iter().filter(|a| a.read_only) {
        for mount in asked.iter_mut().filter(|m| !m.read_only) {
            if mount.source.starts_with(&admin.source) {
                mount.read_only = true;
                if let Some(notes) = notes.as_deref_mut() {
                    notes.made_read_only.push(MadeReadOnly {
                        mount: mount.source.clone(),
                        admin: admin.source.clone(),
                    });
                }
            } else if admin.source.starts_with(&mount.source) {
                if mount.target != mount.source {
                    return Err(Error::MountRefused {
                        request: format!("{}:{}", mount.source.display(), mount.target.display()),
                        problem: format!(
                            "it holds {}, which the admin mounts read-only, and would make it writable at {}; add :ro or mount it at its own path",
                            admin.source.display(),
                            mount.target.display()
                        ),
                    });
                }
                covers.push(MountSpec {
                    source: admin.source.clone(),
                    target: admin.source.clone(),
                    read_only: true,
                });
            }
        }
    }
    Ok(covers)
}

/// The engine refuses two mounts on one target. The same directory asked for twice (the
/// anchors of home and cwd often coincide) is mounted once, writable if either asked so
/// (an admin's read-only source was made read-only in every mount of it first, see
/// `keep_read_only`); for different sources on one target the first (most specific
/// default) wins.
fn merge(mounts: Vec<MountSpec>) -> Vec<MountSpec> {
    let mut out: Vec<MountSpec> = Vec::new();
    for mount in mounts {
        match out.iter_mut().find(|m| m.target == mount.target) {
            Some(kept) if kept.source == mount.source => {
                kept.read_only &= mount.read_only;
            }
            Some(_) => {}
            None => out.push(mount),
        }
    }
    out
}

fn security_opt(seccomp_profile: Option<&str>) -> Vec<String> {
    let mut opts = vec!["no-new-privileges:true".to_string()];
    if let Some(profile) = seccomp_profile {
        opts.push(format!("seccomp={profile}"));
    }
    opts
}

fn cpus(config: &Config, nslots: Option<u32>, host_cpus: u32) -> Option<i64> {
    let slots = nslots.filter(|_| config.container.cpus_from_slots)?;
    Some(i64::from(slots.clamp(1, host_cpus.max(1))) * 1_000_000_000)
}

fn utf8(value: &OsStr, what: &str) -> Result<String> {
    value
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::BadJobEnv {
            value: format!("{what} {value:?}"),
            expected: "UTF-8, which the Docker API cannot carry",
            fix: "rename it",
        })
}

fn utf8_path(path: &Path, what: &str) -> Result<String> {
    utf8(path.as_os_str(), what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Env, Kind};
    use crate::job_proof::{JobKey, Proof, RunId, SpooledJob};
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn job(extra: &[(&str, &str)]) -> JobContext {
        let mut pairs = vec![
            ("JOB_ID", "42"),
            ("SGE_TASK_ID", "undefined"),
            ("QUEUE", "all.q"),
            ("HOME", "/home/alice"),
            ("TMPDIR", "/tmp/42.1.all.q"),
            ("PATH", "/usr/bin"),
            ("LD_PRELOAD", "x.so"),
            ("NSLOTS", "4"),
        ];
        pairs.extend_from_slice(extra);
        let env = Env(pairs.iter().map(|(k, v)| (k.into(), v.into())).collect());
        JobContext::parse(
            env,
            vec!["/spool/job_scripts/42".into(), "in.fq".into()],
            "IMAGE",
            "QDOCK_MOUNTS",
        )
        .unwrap()
    }

    fn image() -> ResolvedImage {
        ResolvedImage {
            reference: ImageRef::parse("fastqc:0.11.5").unwrap(),
            id: "sha256:abc".into(),
            repo_digest: None,
            env: vec![
                "PATH=/opt/tool/bin:/usr/bin:/bin".into(),
                "TOOL_HOME=/opt/t'x".into(),
            ],
        }
    }

    fn host() -> Host {
        Host {
            hostname: "node1".into(),
            cpus: 2,
            affinity: vec![0, 1],
            online_cpus: 2,
            cwd: "/home/alice/run".into(),
            sources: Sources {
                script: Some("/spool/job_scripts/42".into()),
                home: Some("/home/alice".into()),
                // The anchors of cwd and home coincide: one mount.
                cwd: Some("/home/alice".into()),
                tmpdir: Some(Anchored {
                    path: "/tmp/42.1.all.q".into(),
                    anchor: "/tmp".into(),
                }),
                pe_hostfile: None,
            },
            seccomp_profile: None,
            starter: Some(ProcessId {
                pid: 4242,
                start: 77,
            }),
            output: Output::Pipes(pipes()),
            gpus: Default::default(),
        }
    }

    fn pipes() -> Stdio {
        Stdio {
            helper: "/usr/local/bin/qdock-stdio".into(),
            stdout: "/var/lib/qdock/stdio/j.1/stdout".into(),
            stderr: "/var/lib/qdock/stdio/j.1/stderr".into(),
            go: "/var/lib/qdock/stdio/j.1/go".into(),
            profile: "/var/lib/qdock/stdio/j.1/profile".into(),
        }
    }

    /// The job's own command: what follows the output helper, its TMPDIR link and its pipes
    /// (argv[0] and the program), and its arguments.
    fn command(spec: &ContainerSpec) -> (Vec<String>, Vec<String>) {
        let link = ["--link", "/tmp/42.1.all.q", "/.qdock/tmp/42.1.all.q"];
        let (helper, job) = spec.entrypoint.split_at(8);
        assert_eq!(helper[..3], [STDIO_HELPER, "--wait", STDIO_GO]);
        assert_eq!(helper[3..6], link);
        assert_eq!(helper[6..], [STDIO_STDOUT, STDIO_STDERR]);
        (job.to_vec(), spec.cmd.clone())
    }

    /// Job 42 as its spool proves it: queue all.q, 4 slots here (NSLOTS is not asked).
    fn proven() -> Proven {
        proven_with_slots(4)
    }

    fn proven_with_slots(host_slots: u32) -> Proven {
        Proven {
            key: JobKey::for_tests("default", 42, 0),
            proof: Proof::Spooled(Box::new(SpooledJob {
                run: RunId {
                    inode: 1,
                    mtime_ns: 1,
                },
                spool_host: "node1".into(),
                cell: None,
                job_pid: None,
                group: 65400,
                owner: "alice".into(),
                tmpdir: None,
                kind: Kind::Script,
                script_file: None,
                queue: Some("all.q".into()),
                qrsh_job: false,
                host_slots: Some(host_slots),
                pe_hostfile: None,
                pe_task: None,
                packed_job: None,
            })),
        }
    }

    fn who() -> Identity {
        Identity {
            uid: 2001,
            gid: 2001,
            groups: vec![65400, 3000],
            name: "alice".into(),
        }
    }

    fn build_with(job: &JobContext, config: &Config) -> (ContainerSpec, Notes) {
        let limits = Limits {
            memory: Some(300 << 20),
            ulimits: vec![("cpu".into(), 60, 60)],
        };
        build(&Inputs {
            job,
            proven: &proven(),
            config,
            who: &who(),
            image: &image(),
            limits: &limits,
            user_mounts: &[],
            host: &host(),
        })
        .unwrap()
    }

    #[test]
    fn golden_posix_job() {
        let (spec, notes) = build_with(&job(&[]), &Config::default());
        assert_eq!(spec.name, "qdock-default-42-0");
        assert_eq!(spec.image, "sha256:abc");
        assert_eq!(spec.user, "2001:2001");
        assert_eq!(spec.groups, vec!["65400", "3000"]);
        assert_eq!(
            command(&spec),
            (
                vec!["sh".into(), "/bin/sh".into()],
                vec!["/spool/job_scripts/42".into(), "in.fq".into()]
            )
        );
        assert_eq!(spec.workdir, "/home/alice/run");
        // The host's network (the default): the engine gives the container the host's name.
        assert_eq!(spec.network, "host");
        assert_eq!(spec.hostname, None);
        assert!(spec.env.contains(&"JOB_ID=42".to_string()));
        assert!(
            !spec
                .env
                .iter()
                .any(|e| e.starts_with("PATH=") || e.starts_with("LD_PRELOAD="))
        );
        assert_eq!(spec.labels["qdock.owner-uid"], "2001");
        assert_eq!(
            spec.labels["qdock.image"],
            "docker.io/library/fastqc:0.11.5"
        );
        assert_eq!(spec.labels["qdock.image-digest"], "sha256:abc");
        assert_eq!(spec.labels["qdock.task-id"], "0");
        assert_eq!(
            (
                spec.labels["qdock.starter-pid"].as_str(),
                spec.labels["qdock.starter-start"].as_str()
            ),
            ("4242", "77")
        );
        let targets: Vec<&str> = spec
            .mounts
            .iter()
            .map(|m| m.target.to_str().unwrap())
            .collect();
        assert_eq!(
            targets,
            [
                STDIO_HELPER,
                STDIO_STDOUT,
                STDIO_STDERR,
                STDIO_GO,
                "/spool/job_scripts/42",
                "/etc/passwd",
                "/etc/group",
                "/home/alice",
                HOST_TMP
            ]
        );
        let (stdio, mounts) = spec.mounts.split_at(4);
        assert!(stdio.iter().all(|m| m.read_only));
        assert_eq!(stdio[0].source, pipes().helper);
        assert!(mounts[0].read_only && mounts[1].read_only && !mounts[3].read_only);
        let (tmp, same) = mounts.split_last().unwrap();
        assert!(same.iter().all(|m| m.source == m.target));
        assert_eq!((tmp.source.to_str(), tmp.read_only), (Some("/tmp"), false));
        // The hardening, all of it decided here.
        assert_eq!(spec.security_opt, vec!["no-new-privileges:true"]);
        assert_eq!(spec.cap_drop, vec!["ALL"]);
        assert!(spec.cap_add.is_empty());
        assert!(!spec.privileged && !spec.readonly_rootfs);
        assert_eq!(spec.ipc_mode, "private");
        assert_eq!(spec.pid_mode, None);
        assert_eq!(spec.log_driver, "none");
        assert!(spec.devices.is_empty());
        assert_eq!(spec.pids_limit, Some(4096));
        assert_eq!(spec.memory, Some(300 << 20));
        assert_eq!(spec.memory_swap, spec.memory);
        // 4 slots on a 2-CPU host: clamped, the engine refuses more CPUs than exist.
        assert_eq!(spec.nano_cpus, Some(2_000_000_000));
        // Not bound: the whole host.
        assert_eq!(spec.cpuset_cpus, None);
        assert_eq!(notes, Notes::default());
    }

    #[test]
    fn names_and_labels_come_from_the_proof_not_the_environment() {
        let forged = job(&[("SGE_CELL", "x"), ("QUEUE", "forged.q")]);
        let (spec, _) = build_with(&forged, &Config::default());
        assert_eq!(spec.name, "qdock-default-42-0");
        assert_eq!(spec.labels[Label::Cell.key()], "default");
        assert_eq!(spec.labels[Label::Queue.key()], "all.q");
    }

    #[test]
    fn parallel_jobs_get_their_hostfile_slots_and_cores() {
        let mut bound = host();
        bound.sources.pe_hostfile = Some("/spool/vm/active_jobs/42.1/pe_hostfile".into());
        bound.affinity = vec![1];
        let limits = Limits::default();
        // NSLOTS is the caller's to set: the spool's one slot on this host counts.
        let forged = job(&[("NSLOTS", "64")]);
        let (spec, _) = build(&Inputs {
            job: &forged,
            proven: &proven_with_slots(1),
            config: &Config::default(),
            who: &who(),
            image: &image(),
            limits: &limits,
            user_mounts: &[],
            host: &bound,
        })
        .unwrap();
        let hostfile = spec
            .mounts
            .iter()
            .find(|m| m.target.ends_with("pe_hostfile"))
            .expect("the hostfile is mounted");
        assert!(hostfile.read_only && hostfile.source == hostfile.target);
        assert_eq!(spec.nano_cpus, Some(1_000_000_000));
        assert_eq!(spec.cpuset_cpus.as_deref(), Some("1"));
    }

    #[test]
    fn start_modes_shape_the_command() {
        let unix = job(&[("SGE_STARTER_SHELL_START_MODE", "unix_behavior")]);
        let (spec, _) = build_with(&unix, &Config::default());
        assert_eq!(
            command(&spec),
            (
                vec![
                    "/spool/job_scripts/42".into(),
                    "/spool/job_scripts/42".into()
                ],
                vec!["in.fq".into()]
            )
        );
        let stdin = job(&[
            ("SGE_STARTER_SHELL_START_MODE", "script_from_stdin"),
            ("SGE_STARTER_USE_LOGIN_SHELL", "true"),
        ]);
        let (spec, _) = build_with(&stdin, &Config::default());
        assert_eq!(
            command(&spec),
            (
                vec!["-sh".into(), "/bin/sh".into()],
                vec!["-s".into(), "in.fq".into()]
            )
        );
        assert_eq!(spec.stdin, Stdin::Script);
    }

    /// A terminal gives the container one of its own (qrsh -pty y); without one, stdin is
    /// relayed as it is. The script on stdin wins: it is what the shell must read.
    #[test]
    fn the_starters_terminal_decides_the_containers_stdin() {
        let size = WindowSize { rows: 33, cols: 97 };
        let on = |terminal: Option<WindowSize>, job: &JobContext| {
            let output = match terminal_for(job, terminal) {
                Some(size) => Output::Terminal(size),
                None => Output::Pipes(pipes()),
            };
            let host = Host { output, ..host() };
            let (spec, _) = build(&Inputs {
                job,
                proven: &proven(),
                config: &Config::default(),
                who: &who(),
                image: &image(),
                limits: &Limits::default(),
                user_mounts: &[],
                host: &host,
            })
            .unwrap();
            spec
        };
        let plain = job(&[]);
        assert_eq!(on(None, &plain).stdin, Stdin::Relayed);
        let stdin = job(&[("SGE_STARTER_SHELL_START_MODE", "script_from_stdin")]);
        let script = on(Some(size), &stdin);
        assert_eq!(script.stdin, Stdin::Script);
        assert_eq!(script.entrypoint[0], STDIO_HELPER);
        // The terminal carries the output itself: no helper, no pipes.
        let terminal = on(Some(size), &plain);
        assert_eq!(terminal.stdin, Stdin::Terminal(size));
        assert_eq!(
            (terminal.entrypoint, terminal.cmd),
            (
                vec!["/bin/sh".into()],
                vec!["/spool/job_scripts/42".into(), "in.fq".into()]
            )
        );
        assert!(
            !terminal
                .mounts
                .iter()
                .any(|m| m.target.starts_with("/.qdock") && m.target != Path::new(HOST_TMP))
        );
    }

    #[test]
    fn an_unset_window_size_is_not_handed_on() {
        assert_eq!(WindowSize::default().known(), None);
        assert_eq!(WindowSize { rows: 0, cols: 80 }.known(), None);
        let size = WindowSize { rows: 24, cols: 80 };
        assert_eq!(size.known(), Some(size));
    }

    #[test]
    fn binary_jobs_run_their_command_in_the_image() {
        let mut binary = job(&[]);
        binary.script = "echo".into();
        binary.kind = Kind::Binary;
        let mut config = Config::default();
        config.mounts.identity = false;
        let mut no_script = host();
        no_script.sources.script = None;
        let limits = Limits::default();
        let build = |job: &JobContext| {
            build(&Inputs {
                job,
                proven: &proven(),
                config: &config,
                who: &who(),
                image: &image(),
                limits: &limits,
                user_mounts: &[],
                host: &no_script,
            })
            .unwrap()
            .0
        };
        let spec = build(&binary);
        assert_eq!(
            command(&spec),
            (
                vec!["sh".into(), "/bin/sh".into()],
                vec!["-c".into(), "echo in.fq ".into()]
            )
        );
        assert!(!spec.mounts.iter().any(|m| m.target.starts_with("/spool")));
        binary.kind = Kind::BinaryNoShell;
        let spec = build(&binary);
        // No shell: the helper execs the command as it is.
        assert_eq!(
            command(&spec),
            (vec!["echo".into(), "echo".into()], vec!["in.fq".into()])
        );
    }

    /// A mount of the admin's or the job's cannot take the place of the output pipes: the
    /// job's output would go where the mount leads, and the starter would wait for nothing.
    #[test]
    fn no_other_mount_takes_the_output_pipes_targets() {
        let (mounts, _) = mounts_with(
            &[&format!("/data/x:{STDIO_STDOUT}")],
            "/home/alice",
            &[&format!("/home/alice/fake:{STDIO_HELPER}:ro")],
        )
        .unwrap();
        assert_eq!(mounted_at(&mounts, STDIO_HELPER).source, pipes().helper);
        assert_eq!(mounted_at(&mounts, STDIO_STDOUT).source, pipes().stdout);
    }

    #[test]
    fn non_utf8_variables_are_noted_not_passed() {
        let mut j = job(&[]);
        j.env
            .0
            .push((OsString::from("BAD"), OsString::from_vec(vec![0xff, 0xfe])));
        let (spec, notes) = build_with(&j, &Config::default());
        assert_eq!(notes.skipped_env, vec!["BAD"]);
        assert!(!spec.env.iter().any(|e| e.starts_with("BAD=")));
    }

    #[test]
    fn one_directory_asked_twice_is_mounted_once_writable_if_either_was() {
        let m = |source: &str, target: &str, read_only| MountSpec {
            source: source.into(),
            target: target.into(),
            read_only,
        };
        let merged = merge(vec![
            m("/home/alice", "/home/alice", true),
            m("/home/alice", "/home/alice", false),
            m("/data/x", "/home/alice", false),
            m("/data/y", "/in", true),
        ]);
        assert_eq!(
            merged,
            vec![
                m("/home/alice", "/home/alice", false),
                m("/data/y", "/in", true)
            ]
        );
    }

    /// The mounts of a job run from `cwd` (its anchor) with the admin's `extra` and the
    /// user's `asked`.
    fn mounts_with(extra: &[&str], cwd: &str, asked: &[&str]) -> Result<(Vec<MountSpec>, Notes)> {
        let parse = |m: &&str| MountSpec::parse(m).unwrap();
        let mut config = Config::default();
        config.mounts.extra = extra.iter().map(parse).collect();
        let mut host = host();
        host.sources.cwd = Some(cwd.into());
        let user_mounts: Vec<MountSpec> = asked.iter().map(parse).collect();
        build(&Inputs {
            job: &job(&[]),
            proven: &proven(),
            config: &config,
            who: &who(),
            image: &image(),
            limits: &Limits::default(),
            user_mounts: &user_mounts,
            host: &host,
        })
        .map(|(spec, notes)| (spec.mounts, notes))
    }

    fn mounted_at<'a>(mounts: &'a [MountSpec], target: &str) -> &'a MountSpec {
        let found: Vec<_> = mounts
            .iter()
            .filter(|m| m.target == Path::new(target))
            .collect();
        assert_eq!(found.len(), 1, "{target}: {mounts:?}");
        found[0]
    }

    #[test]
    fn the_admins_read_only_mount_stays_read_only_as_the_working_directory() {
        for cwd in ["/srv/ref", "/srv/ref/sub"] {
            let (mounts, notes) = mounts_with(&["/srv/ref:ro"], cwd, &[]).unwrap();
            assert!(mounted_at(&mounts, cwd).read_only, "{cwd}: {mounts:?}");
            assert!(mounted_at(&mounts, "/srv/ref").read_only, "{mounts:?}");
            // Nobody asked for it by name: no note.
            assert!(notes.made_read_only.is_empty());
        }
        // A sibling whose name starts alike is not below it.
        let (mounts, _) = mounts_with(&["/srv/ref:ro"], "/srv/reference", &[]).unwrap();
        assert!(!mounted_at(&mounts, "/srv/reference").read_only);
        // The admin's writable mount leaves the job's writable.
        let (mounts, _) = mounts_with(&["/srv/ref"], "/srv/ref", &[]).unwrap();
        assert!(!mounted_at(&mounts, "/srv/ref").read_only);
    }

    #[test]
    fn a_working_directory_holding_the_admins_read_only_mount_gets_it_read_only_inside() {
        // The admin mounts /srv/ref at /db; the job's cwd anchor /srv holds it at /srv/ref.
        let (mounts, _) = mounts_with(&["/srv/ref:/db:ro"], "/srv", &[]).unwrap();
        assert!(!mounted_at(&mounts, "/srv").read_only);
        assert!(mounted_at(&mounts, "/db").read_only);
        let cover = mounted_at(&mounts, "/srv/ref");
        assert_eq!(
            (cover.source.as_path(), cover.read_only),
            (Path::new("/srv/ref"), true)
        );
    }

    #[test]
    fn a_user_mount_asking_rw_in_the_admins_read_only_mount_is_read_only_and_noted() {
        let (mounts, notes) =
            mounts_with(&["/srv/ref:ro"], "/home/alice", &["/srv/ref/x:/in:rw"]).unwrap();
        assert!(mounted_at(&mounts, "/in").read_only);
        assert_eq!(
            notes.made_read_only,
            [MadeReadOnly {
                mount: "/srv/ref/x".into(),
                admin: "/srv/ref".into()
            }]
        );
        // Asked read-only: nothing to say.
        let (_, notes) =
            mounts_with(&["/srv/ref:ro"], "/home/alice", &["/srv/ref/x:/in:ro"]).unwrap();
        assert!(notes.made_read_only.is_empty());
    }

    #[test]
    fn a_user_mount_holding_the_admins_read_only_mount_elsewhere_is_refused() {
        let e = mounts_with(&["/srv/ref:ro"], "/home/alice", &["/srv:/data:rw"]).unwrap_err();
        assert!(matches!(e, Error::MountRefused { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("/srv/ref, which the admin mounts read-only"),
            "{e}"
        );
        // Read-only, or at its own path (where the admin's mount covers it): allowed.
        let (mounts, _) = mounts_with(&["/srv/ref:ro"], "/home/alice", &["/srv:/data:ro"]).unwrap();
        assert!(mounted_at(&mounts, "/data").read_only);
        let (mounts, _) = mounts_with(&["/srv/ref:ro"], "/home/alice", &["/srv"]).unwrap();
        assert!(!mounted_at(&mounts, "/srv").read_only);
        assert!(mounted_at(&mounts, "/srv/ref").read_only);
    }

    #[test]
    fn a_network_of_its_own_still_has_the_host_name() {
        for network in ["bridge", "none", "lab"] {
            let mut config = Config::default();
            config.container.network = network.into();
            let (spec, _) = build_with(&job(&[]), &config);
            assert_eq!(spec.network, network);
            assert_eq!(spec.hostname.as_deref(), Some("node1"), "{network}");
        }
    }

    /// TMPDIR in the host's /tmp: the host's /tmp out of the way and a link at TMPDIR's
    /// path, which the helper makes; with anything else in /tmp, /tmp stays the host's.
    #[test]
    fn a_tmpdir_in_the_hosts_tmp_gets_the_job_a_tmp_of_its_own() {
        let (spec, _) = build_with(&job(&[]), &Config::default());
        assert_eq!(
            spec.entrypoint[3..6],
            ["--link", "/tmp/42.1.all.q", "/.qdock/tmp/42.1.all.q"]
        );
        let mut config = Config::default();
        config.mounts.extra.push(MountSpec {
            source: "/tmp/ref".into(),
            target: "/ref".into(),
            read_only: true,
        });
        let (shared, _) = build_with(&job(&[]), &config);
        assert!(
            shared
                .mounts
                .iter()
                .any(|m| m.source == m.target && m.target == Path::new("/tmp"))
        );
        assert!(
            !shared
                .mounts
                .iter()
                .any(|m| m.target == Path::new(HOST_TMP))
        );
        assert!(!shared.entrypoint.iter().any(|a| a == "--link"));
    }

    /// A login shell gets the image's environment back after /etc/profile, the job's own
    /// values where it passed them; other start modes need nothing.
    #[test]
    fn a_login_shell_gets_the_images_environment_back() {
        let login = job(&[
            ("SGE_STARTER_USE_LOGIN_SHELL", "true"),
            ("SGE_STARTER_SHELL_PATH", "/bin/sh"),
            ("TOOL_HOME", "/mine"),
        ]);
        let (spec, _) = build_with(&login, &Config::default());
        let contents = spec.profile.as_deref().expect("a profile");
        assert!(
            contents.contains("export PATH='/opt/tool/bin:/usr/bin:/bin'\n"),
            "{contents}"
        );
        assert!(
            contents.contains("export TOOL_HOME='/mine'\n"),
            "{contents}"
        );
        let mounted = spec
            .mounts
            .iter()
            .find(|m| m.target == Path::new(IMAGE_ENV_PROFILE))
            .expect("the profile is mounted");
        assert_eq!(mounted.source, pipes().profile);
        assert!(mounted.read_only);
        let (plain, _) = build_with(&job(&[]), &Config::default());
        assert_eq!(plain.profile, None);
        assert!(
            !plain
                .mounts
                .iter()
                .any(|m| m.target == Path::new(IMAGE_ENV_PROFILE))
        );
        let quoted = image_env_profile(&["A=it's".into(), "1BAD=x".into()], &[]).unwrap();
        assert!(quoted.ends_with("export A='it'\\''s'\n"), "{quoted}");
        assert!(!quoted.contains("1BAD"), "{quoted}");
    }
}
