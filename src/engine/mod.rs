//! The only module that talks to the Docker Engine. It speaks in qdock's terms: specs in,
//! states and errors with fixes out. Here the API client, the only user of bollard's
//! client; `translate` turns the pure spec into the engine's types; `http` does, through
//! hyper, the HTTP bollard does not (the version ping, the terminal's attach upgrade, look-ups
//! bollard's types would refuse).
//!
//! It speaks to rootful Podman's Docker-compatible API too (4.3, API 1.41), told apart by
//! its `/_ping` answer. Podman's differences are handled here and nowhere else:
//! - it answers a state conflict (pause a paused container, a name in use) with 500 where
//!   dockerd answers 409: both mean "look at the container", whose state then decides;
//!   errors are classified by status code and state, never by the engine's words;
//! - it names an image loaded or built without a registry `localhost/<name>`, where dockerd
//!   names it `docker.io/<name>`: a reference a user types (`qdock/busybox:1`, normalized
//!   `docker.io/qdock/busybox:1`) that Podman does not hold under its `docker.io` name is
//!   looked up as `localhost/qdock/busybox:1`, and `qdock/busybox:1` is listed among the
//!   local references of such an image;
//! - it sets `nofile` and `nproc` in every container to 1048576 unless told otherwise, where
//!   a dockerd container keeps the engine's own; raising a hard limit needs CAP_SYS_RESOURCE,
//!   which a host may deny even to root (runc then fails with EPERM), so qdock names both
//!   as the engine's own, read from `/proc/<pid>/limits` of the process serving the socket;
//! - `--init` runs `catatonit` (Debian package `catatonit`), dockerd's `docker-init`;
//! - its Docker-API wait answers late: its own wait is used;
//! - an attach refused with 409 is the start's failure (Podman creates the container in the
//!   runtime at the first attach);
//! - it names a container on its way to `exited` `stopped`, which bollard's types refuse:
//!   look-ups and lists are read here ([`Engine::inspect`]);
//! - it answers an events filter naming a label key alone with no events;
//! - its containers outlive its API service (each runs under its own conmon), as dockerd's do
//!   with `live-restore`, which its `/info` denies: [`Engine::live_restore`] says true;
//! - it reports no OOM kill on a cgroup v1 host (`State.OOMKilled` stays false, no `oom`
//!   event; measured with 4.3.1): the starter asks the kernel too, whose count in the
//!   container's memory cgroup the usage probe reads (crate::usage).

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, EventsOptions,
    KillContainerOptions, RemoveContainerOptions, ResizeContainerTTYOptions, StopContainerOptions,
    WaitContainerOptions,
};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWrite};

mod http;
mod translate;

use http::{encoded, reach, upgrade};
use translate::{create_body, process_limits};

use crate::config::EngineConfig;
use crate::error::{Cause, Error, Result};
use crate::image_ref::ImageRef;
use crate::labels::{Label, Labelled};
use crate::spec::{ContainerSpec, WindowSize};

pub struct Engine {
    docker: Docker,
    kind: Kind,
    /// Podman only: its own `nofile` and `nproc`, for every container (see the module docs).
    engine_ulimits: Vec<(String, i64, i64)>,
    socket: String,
    timeout_secs: u64,
    reconnect_secs: u64,
}

/// Which engine answers on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Docker,
    Podman,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Docker => "Docker",
            Kind::Podman => "Podman",
        }
    }
}

/// The version of Podman's own API qdock speaks (its wait): 4.0 has every parameter used.
const PODMAN_API: &str = "4.0.0";

/// Where Podman looks for the init `--init` runs, unless containers.conf says otherwise.
const PODMAN_INIT: &str = "/usr/libexec/podman/catatonit";
/// Podman's configuration files, the admin's last (containers.conf(5)).
const CONTAINERS_CONF: [&str; 2] = [
    "/usr/share/containers/containers.conf",
    "/etc/containers/containers.conf",
];

/// The names under which the engine holds its images.
#[derive(Debug, Clone, Default)]
pub struct LocalReferences {
    pub tags: Vec<String>,
    pub digests: Vec<String>,
}

/// An image as the engine holds it.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub repo_digests: Vec<String>,
    /// `Config.Env`: what the image's author set (`ENV`), `NAME=value`.
    pub env: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Paused,
    Exited,
    /// restarting, removing, dead, stopping…
    Other(String),
}

impl State {
    fn parse(s: &str) -> State {
        match s {
            "created" => State::Created,
            "running" => State::Running,
            "paused" => State::Paused,
            // Podman's name for a container that exited and awaits its clean-up.
            "exited" | "stopped" => State::Exited,
            other => State::Other(other.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Container {
    /// The engine's handle: every action after the look-up uses it, never the name, which
    /// another container may take the moment it is free.
    pub id: String,
    pub name: String,
    pub state: State,
    pub labels: HashMap<String, String>,
    pub oom_killed: bool,
    /// The host pid of the container's first process while it runs.
    pub pid: Option<i32>,
    /// When it last started and exited, as the engine's inspect gives them (RFC 3339, UTC).
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

impl Labelled for Container {
    fn labels(&self) -> &HashMap<String, String> {
        &self.labels
    }
}

/// The job's output as it arrives, already split into stdout and stderr.
pub type Output = Pin<Box<dyn Stream<Item = Result<Chunk>> + Send>>;

pub enum Chunk {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

impl Engine {
    /// Connects to the configured socket only: DOCKER_HOST and friends are never consulted.
    pub async fn connect(config: &EngineConfig) -> Result<Engine> {
        let socket = config.socket.display().to_string();
        let secs = config.timeout_secs;
        let (version, kind, server) = reach(&socket, secs).await?;
        let engine_ulimits = match (kind, server) {
            (Kind::Podman, Some(pid)) => std::fs::read_to_string(format!("/proc/{pid}/limits"))
                .map(|text| process_limits(&text, &["Max open files", "Max processes"]))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let docker = Docker::connect_with_unix(&socket, secs, &version).map_err(|e| {
            Error::EngineUnreachable {
                socket: socket.clone(),
                cause: Cause::of(e),
            }
        })?;
        Ok(Engine {
            docker,
            kind,
            engine_ulimits,
            socket,
            timeout_secs: secs,
            reconnect_secs: config.reconnect_secs,
        })
    }

    /// How long a running job waits for the engine to come back (`engine.reconnect_secs`).
    pub fn reconnect_secs(&self) -> u64 {
        self.reconnect_secs
    }

    /// Checks that the engine takes new connections now. Pooled connections are no proof:
    /// an engine shutting down has closed its socket but still answers on those.
    pub async fn ping(&self) -> Result<()> {
        reach(&self.socket, self.timeout_secs).await.map(|_| ())
    }

    /// What this engine lacks for a job qdock would start (`init`: the config's
    /// `container.init`), one line each with its fix; for `qdock check`.
    pub fn lacks(&self, init: bool) -> Vec<String> {
        let mut lacking = Vec::new();
        if init && self.kind == Kind::Podman {
            let path = podman_init_path();
            if !std::path::Path::new(&path).is_file() {
                lacking.push(format!(
                    "Podman runs {path} for container.init = true, and it is missing; fix: apt-get install catatonit"
                ));
            }
        }
        lacking
    }

    /// Whether the engine keeps containers running while it is away (`live-restore`).
    pub async fn live_restore(&self) -> Result<bool> {
        // Podman's containers run under their own conmon, never under the API service, and
        // outlive it always; its /info says `LiveRestoreEnabled: false` all the same.
        if self.kind == Kind::Podman {
            return Ok(true);
        }
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| self.fail("report its settings", e))?;
        Ok(info.live_restore_enabled.unwrap_or(false))
    }

    /// Maps a bollard error to the one our callers and users understand.
    fn fail(&self, action: &str, e: BollardError) -> Error {
        match e {
            BollardError::RequestTimeoutError => Error::EngineTimeout {
                socket: self.socket.clone(),
                secs: self.timeout_secs,
            },
            BollardError::SocketNotFoundError(_) => Error::EngineUnreachable {
                socket: self.socket.clone(),
                cause: Cause::new("the socket does not exist", e),
            },
            BollardError::HyperLegacyError { ref err } if err.is_connect() => {
                Error::EngineUnreachable {
                    socket: self.socket.clone(),
                    cause: Cause::of(e),
                }
            }
            other => Error::Engine {
                action: action.to_string(),
                cause: engine_cause(other),
            },
        }
    }

    /// The image `reference` (normalized, `docker.io/…` for Docker Hub) names; under Podman
    /// also the image loaded or built under that name, which Podman calls `localhost/…`.
    pub async fn image(&self, reference: &str) -> Result<Option<Image>> {
        let found = self.image_named(reference).await?;
        match (found, self.local_name(reference)) {
            (None, Some(local)) => self.image_named(&local).await,
            (found, _) => Ok(found),
        }
    }

    /// Podman's name for a Docker Hub image that came from no registry: `localhost/` and the
    /// name a user types (`docker.io/library/tool:1` is `localhost/tool:1`).
    fn local_name(&self, reference: &str) -> Option<String> {
        if self.kind != Kind::Podman {
            return None;
        }
        let parsed = ImageRef::parse(reference).ok()?;
        let familiar = parsed.familiar();
        (parsed.registry == "docker.io" && !familiar.starts_with("docker.io/"))
            .then(|| format!("localhost/{familiar}"))
    }

    async fn image_named(&self, reference: &str) -> Result<Option<Image>> {
        match self.docker.inspect_image(reference).await {
            Ok(i) => Ok(Some(Image {
                id: i.id.unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
                env: i.config.and_then(|c| c.env).unwrap_or_default(),
            })),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.fail(&format!("look up image {reference}"), e)),
        }
    }

    /// Pulls, handing each progress message (layer id, status) to `progress`; a refusal by
    /// the registry (no such image, no access) is permanent, the rest may pass.
    pub async fn pull(
        &self,
        reference: &str,
        mut progress: impl FnMut(Option<&str>, &str),
    ) -> Result<()> {
        let options = CreateImageOptions {
            from_image: Some(reference.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let e = match item {
                Ok(info) => {
                    progress(
                        info.id.as_deref(),
                        info.status.as_deref().unwrap_or_default(),
                    );
                    continue;
                }
                Err(e) => e,
            };
            let image = reference.to_string();
            return Err(match pull_refused(&e) {
                Some(true) => Error::PullRefused {
                    image,
                    cause: engine_cause(e),
                },
                Some(false) => Error::PullFailed {
                    image,
                    cause: engine_cause(e),
                },
                // Not the registry's answer: the engine itself (hung, gone).
                None => self.fail(&format!("pull {reference}"), e),
            });
        }
        Ok(())
    }

    /// Creates the container and returns its ID; None when its name is taken (a leftover of
    /// an earlier run).
    pub async fn create(&self, spec: &ContainerSpec) -> Result<Option<String>> {
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        match self
            .docker
            .create_container(Some(options), create_body(spec, &self.engine_ulimits))
            .await
        {
            Ok(created) => Ok(Some(created.id)),
            // A conflict here is the name: a container holding it says so.
            Err(e) if self.conflict(&e) && self.inspect(&spec.name).await?.is_some() => Ok(None),
            Err(e) => {
                let action = format!("create container {}", spec.name);
                Err(self.refused(&action, "check the job's request and the qdock config", e))
            }
        }
    }

    /// Attaches to the container's stdin, before start. (Its output takes another way: see
    /// methods/starter/stdio.rs.)
    pub async fn attach_stdin(&self, id: &str) -> Result<Input> {
        let options = AttachContainerOptions {
            stream: true,
            stdin: true,
            ..Default::default()
        };
        let attached = self
            .docker
            .attach_container(id, Some(options))
            .await
            .map_err(|e| match status(&e) {
                Some(code) if self.prepared_at_attach(code) => Error::Engine {
                    action: format!("start container {}", short(id)),
                    cause: engine_cause(e),
                },
                _ => self.fail(&format!("attach to container {}", short(id)), e),
            })?;
        Ok(attached.input)
    }

    /// Whether an attach answered `code` because the container could not be prepared to
    /// run: Podman has the runtime create the container at the first attach (dockerd at
    /// start), and answers 409 when that fails (a mount, a limit, the working directory). It
    /// is the start's failure, and reported as one.
    fn prepared_at_attach(&self, code: u16) -> bool {
        self.kind == Kind::Podman && code == 409
    }

    /// Attaches to a container that has a terminal, before start. Its stream is then the
    /// terminal's bytes as they come, which bollard's decoder misreads: a chunk starting with
    /// byte 0, 1 or 2 passes for a multiplexing header and the session's output stalls. So
    /// the connection is upgraded here ([`http::upgrade`]) and read raw.
    pub async fn attach_terminal(&self, id: &str) -> Result<(Output, Input)> {
        let action = format!("attach to the terminal of container {}", short(id));
        let path = format!(
            "/v{}/containers/{}/attach?stream=1&stdin=1&stdout=1&stderr=1",
            self.docker.client_version(),
            encoded(id)
        );
        let secs = self.timeout_secs;
        let upgraded =
            tokio::time::timeout(Duration::from_secs(secs), upgrade(&self.socket, &path));
        let stream = match upgraded.await {
            Ok(Ok(stream)) => stream,
            Ok(Err((Some(code), cause))) if self.prepared_at_attach(code) => {
                return Err(Error::Engine {
                    action: format!("start container {}", short(id)),
                    cause,
                });
            }
            Ok(Err((_, cause))) => return Err(Error::Engine { action, cause }),
            Err(_) => {
                return Err(Error::EngineTimeout {
                    socket: self.socket.clone(),
                    secs,
                });
            }
        };
        let (read, write) = tokio::io::split(stream);
        let output = futures_util::stream::unfold(Some(read), move |read| {
            let action = action.clone();
            async move {
                let mut read = read?;
                let mut buf = vec![0u8; 32 << 10];
                match read.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(Chunk::Stdout(buf.into())), Some(read)))
                    }
                    Err(e) => Some((
                        Err(Error::Engine {
                            action,
                            cause: Cause::of(e),
                        }),
                        None,
                    )),
                }
            }
        });
        Ok((Box::pin(output), Box::pin(write)))
    }

    /// Sets the size of the container's terminal.
    pub async fn resize(&self, id: &str, size: WindowSize) -> Result<()> {
        let options = ResizeContainerTTYOptions {
            h: size.rows.into(),
            w: size.cols.into(),
        };
        self.docker
            .resize_container_tty(id, options)
            .await
            .map_err(|e| {
                self.fail(
                    &format!("resize the terminal of container {}", short(id)),
                    e,
                )
            })
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        self.docker.start_container(id, None).await.map_err(|e| {
            // The job's own command runs under qdock-stdio: its absence is the job's exit 127.
            let hint = "check the job's request (working directory, mounts) and the qdock config";
            self.refused(&format!("start container {}", short(id)), hint, e)
        })
    }

    /// A 400 to create or start means this container can never run as asked (say, a device
    /// the admin listed does not exist): a requeue (99) would loop forever.
    fn refused(&self, action: &str, hint: &'static str, e: BollardError) -> Error {
        match e {
            BollardError::DockerResponseServerError {
                status_code: 400, ..
            } => Error::EngineRefused {
                action: action.to_string(),
                hint,
                cause: engine_cause(e),
            },
            other => self.fail(action, other),
        }
    }

    /// Waits until the container is not running and returns its exit code.
    pub async fn wait(&self, id: &str) -> Result<i64> {
        if let Kind::Podman = self.kind {
            return self.podman_wait(id).await;
        }
        let options = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut stream = self.docker.wait_container(id, Some(options));
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error; it is the job's exit code.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.fail(&format!("wait for container {}", short(id)), e)),
            None => Err(Error::Engine {
                action: format!("wait for container {}", short(id)),
                cause: Cause::text("no answer"),
            }),
        }
    }

    /// Podman answers the Docker API's wait 0.5 to 1.1 s after the container exited, its own
    /// (libpod's, polling every `interval`) 0.2 to 0.3 s after (measured, 4.3.1): the job's
    /// end waits for it, so Podman is asked its own way.
    async fn podman_wait(&self, id: &str) -> Result<i64> {
        let action = format!("wait for container {}", short(id));
        let path = format!(
            "/v{PODMAN_API}/libpod/containers/{}/wait?condition=stopped&condition=exited&interval=50ms",
            encoded(id)
        );
        self.request::<i64>(&action, hyper::Method::POST, &path, None)
            .await?
            .ok_or_else(|| Error::Engine {
                action,
                cause: Cause::text("the container is gone"),
            })
    }

    /// Looks a container up by name or ID.
    pub async fn inspect(&self, name_or_id: &str) -> Result<Option<Container>> {
        let path = format!("/containers/{}/json", encoded(name_or_id));
        let action = format!("inspect container {name_or_id}");
        let Some(c) = self.get::<Inspected>(&action, &path).await? else {
            return Ok(None);
        };
        Ok(Some(Container {
            id: c.id,
            name: c.name.trim_start_matches('/').to_string(),
            state: State::parse(&c.state.status),
            labels: c.config.labels.unwrap_or_default(),
            oom_killed: c.state.oom_killed,
            pid: i32::try_from(c.state.pid).ok().filter(|&p| p > 0),
            started_at: c.state.started_at,
            finished_at: c.state.finished_at,
        }))
    }

    /// Pauses; a container already paused, or no longer running, is left as it is: a second
    /// suspend, or one racing the job's end, has nothing to do.
    pub async fn pause(&self, id: &str) -> Result<()> {
        match self.docker.pause_container(id).await {
            Err(e) if self.conflict(&e) && self.state_is(id, |s| s != State::Running).await => {
                Ok(())
            }
            other => other.map_err(|e| self.fail(&format!("pause container {}", short(id)), e)),
        }
    }

    /// Unpauses; a container that is not paused (a racing resume got there first) is fine.
    pub async fn unpause(&self, id: &str) -> Result<()> {
        match self.docker.unpause_container(id).await {
            Err(e) if self.conflict(&e) && self.state_is(id, |s| s != State::Paused).await => {
                Ok(())
            }
            other => other.map_err(|e| self.fail(&format!("resume container {}", short(id)), e)),
        }
    }

    /// Sends the container's stop signal, then SIGKILL after `grace_secs`; returns once stopped.
    pub async fn stop(&self, id: &str, grace_secs: u64) -> Result<()> {
        let t = i32::try_from(grace_secs).unwrap_or(i32::MAX);
        let options = StopContainerOptions {
            t: Some(t),
            signal: None,
        };
        // The engine answers only after the container stopped: allow for the grace period.
        let engine = self
            .docker
            .clone()
            .with_timeout(std::time::Duration::from_secs(
                self.timeout_secs + grace_secs,
            ));
        match engine.stop_container(id, Some(options)).await {
            Err(e) if status(&e) == Some(404) => Ok(()),
            other => other.map_err(|e| self.fail(&format!("stop container {}", short(id)), e)),
        }
    }

    pub async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let options = KillContainerOptions {
            signal: signal.to_string(),
        };
        self.docker
            .kill_container(id, Some(options))
            .await
            .map_err(|e| self.fail(&format!("send {signal} to container {}", short(id)), e))
    }

    /// Removes the container, stopping it first if `force`; a missing one is fine.
    pub async fn remove(&self, id: &str, force: bool) -> Result<()> {
        let options = RemoveContainerOptions {
            force,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Err(e) if status(&e) == Some(404) => Ok(()),
            // Another party is removing it (its state says so, or it is gone by now); a
            // running container, when not forced, is still an error.
            Err(e)
                if self.conflict(&e)
                    && self
                        .state_is(id, |s| matches!(&s, State::Other(o) if o == "removing"))
                        .await =>
            {
                Ok(())
            }
            other => other.map_err(|e| self.fail(&format!("remove container {}", short(id)), e)),
        }
    }

    /// The references of every local image: tags (`repository:tag`) and digests
    /// (`repository@sha256:…`).
    pub async fn image_references(&self) -> Result<LocalReferences> {
        let images = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .map_err(|e| self.fail("list images", e))?;
        let mut refs = LocalReferences::default();
        for image in images {
            let tags = image.repo_tags.into_iter().filter(|t| t != "<none>:<none>");
            // Podman's `localhost/tool:1` is the image a job asks for as `tool:1`.
            let familiar: Vec<String> = match self.kind {
                Kind::Podman => tags
                    .clone()
                    .filter_map(|t| t.strip_prefix("localhost/").map(str::to_string))
                    .collect(),
                Kind::Docker => Vec::new(),
            };
            refs.tags.extend(tags.chain(familiar));
            refs.digests.extend(
                image
                    .repo_digests
                    .into_iter()
                    .filter(|d| !d.starts_with("<none>@")),
            );
        }
        Ok(refs)
    }

    /// The engine's version, for `qdock check`.
    pub async fn version(&self) -> Result<String> {
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| self.fail("report its version", e))?;
        Ok(format!(
            "{} {} (API {})",
            self.kind.name(),
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default()
        ))
    }

    /// Every container carrying qdock's labels, running or not.
    pub async fn list_qdock(&self) -> Result<Vec<Container>> {
        let filters = format!(r#"{{"label":["{}"]}}"#, Label::JobId.key());
        let path = format!("/containers/json?all=1&filters={}", encoded(&filters));
        let listed = self
            .get::<Vec<Listed>>("list containers", &path)
            .await?
            .unwrap_or_default();
        Ok(listed
            .into_iter()
            .map(|c| Container {
                id: c.id,
                name: c
                    .names
                    .into_iter()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                state: State::parse(&c.state),
                labels: c.labels.unwrap_or_default(),
                oom_killed: false,
                started_at: None,
                finished_at: None,
                pid: None,
            })
            .collect())
    }

    /// qdock containers as the engine creates them. Events since `since` (Unix seconds) that
    /// the engine still holds are replayed first, so a caller that subscribes, then lists,
    /// misses no container created in between.
    pub fn qdock_created(
        &self,
        since: i64,
    ) -> Pin<Box<dyn Stream<Item = Result<Container>> + Send>> {
        let mut filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["create".to_string()]),
        ]);
        // Podman 4.3 answers a label filter naming a key alone with no events at all: the
        // label is looked for here instead.
        if self.kind == Kind::Docker {
            filters.insert("label".into(), vec![Label::JobId.key().to_string()]);
        }
        let options = EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters),
        };
        let socket = self.socket.clone();
        let events = self.docker.events(Some(options)).map(move |item| {
            let event = item.map_err(|e| Error::Engine {
                action: format!("follow the events of the engine at {socket}"),
                cause: Cause::of(e),
            })?;
            // A container event's attributes are its labels plus its name and image.
            let actor = event.actor.unwrap_or_default();
            let mut labels = actor.attributes.unwrap_or_default();
            Ok(Container {
                id: actor.id.unwrap_or_default(),
                name: labels.remove("name").unwrap_or_default(),
                state: State::Created,
                labels,
                oom_killed: false,
                started_at: None,
                finished_at: None,
                pid: None,
            })
        });
        let qdock = events.filter(|item| {
            let keep = match item {
                Ok(c) => c.labels.contains_key(Label::JobId.key()),
                Err(_) => true,
            };
            std::future::ready(keep)
        });
        Box::pin(qdock)
    }
}

impl Engine {
    /// A refusal for the container's state, the answer whose meaning the state decides:
    /// dockerd's 409, Podman's 500 ("container state improper"; its other failures too, so
    /// the state must then show the action's goal already reached).
    fn conflict(&self, e: &BollardError) -> bool {
        match status(e) {
            Some(409) => true,
            Some(500) => self.kind == Kind::Podman,
            _ => false,
        }
    }

    /// Whether container `id` is gone or its state passes `test`.
    async fn state_is(&self, id: &str, test: impl FnOnce(State) -> bool) -> bool {
        match self.inspect(id).await {
            Ok(None) => true,
            Ok(Some(c)) => test(c.state),
            Err(_) => false,
        }
    }
}

/// What `GET /containers/{id}/json` says that qdock reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspected {
    id: String,
    #[serde(default)]
    name: String,
    state: InspectedState,
    config: InspectedConfig,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedState {
    #[serde(default)]
    status: String,
    #[serde(rename = "OOMKilled", default)]
    oom_killed: bool,
    #[serde(default)]
    pid: i64,
    started_at: Option<String>,
    finished_at: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedConfig {
    labels: Option<HashMap<String, String>>,
}

/// One entry of `GET /containers/json`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listed {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    state: String,
    labels: Option<HashMap<String, String>>,
}

/// `/usr/libexec/podman/catatonit`, or the `init_path` containers.conf sets.
fn podman_init_path() -> String {
    CONTAINERS_CONF
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .filter_map(|text| {
            text.lines().rev().find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == "init_path").then(|| value.trim().trim_matches('"').to_string())
            })
        })
        .next_back()
        .unwrap_or_else(|| PODMAN_INIT.to_string())
}

/// The short form of a container ID people know from `docker ps`.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn status(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's own words when it gave any, without bollard's preamble; the error stays
/// the cause's source.
fn engine_cause(e: BollardError) -> Cause {
    match &e {
        BollardError::DockerResponseServerError { message, .. }
        | BollardError::DockerStreamError { error: message } => Cause::new(message.clone(), e),
        _ => Cause::of(e),
    }
}

/// Whether a failed pull is final (the registry refused this reference) or may pass; None
/// when the error is not an answer about the image at all (the engine timed out or is gone).
fn pull_refused(e: &BollardError) -> Option<bool> {
    match e {
        // Before any progress the engine answers with a status: 400 an invalid reference,
        // 401/403 no access, 404 no such repository, tag or digest. 5xx (registry down,
        // engine trouble) and 429 (rate limit) may pass.
        BollardError::DockerResponseServerError { status_code, .. } => {
            Some(matches!(status_code, 400 | 401 | 403 | 404))
        }
        // Once progress has been sent, a failure comes inside the stream, as an errorDetail
        // without a code (dockerd's streamformatter sets none, and bollard keeps only the
        // message): its text is all the engine gives, so the text decides.
        BollardError::DockerStreamError { error } => {
            let error = error.to_lowercase();
            Some(
                [
                    "not found",
                    "manifest unknown",
                    "does not exist",
                    "access denied",
                    "unauthorized",
                    "invalid reference",
                ]
                .iter()
                .any(|m| error.contains(m)),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status_code: u16, message: &str) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: message.into(),
        }
    }

    #[test]
    fn pull_failures_are_classified_by_status() {
        for code in [400, 401, 403, 404] {
            assert_eq!(pull_refused(&answer(code, "x")), Some(true), "{code}");
        }
        // The words do not decide when there is a status: a registry that is down may
        // come back, whatever its proxy says.
        for code in [429, 500, 502, 503] {
            assert_eq!(
                pull_refused(&answer(code, "not found")),
                Some(false),
                "{code}"
            );
        }
        assert_eq!(pull_refused(&BollardError::RequestTimeoutError), None);
    }

    #[test]
    fn pull_failures_inside_the_stream_are_classified_by_text() {
        let stream = |error: &str| BollardError::DockerStreamError {
            error: error.into(),
        };
        assert_eq!(pull_refused(&stream("manifest unknown")), Some(true));
        assert_eq!(pull_refused(&stream("unauthorized: auth")), Some(true));
        assert_eq!(pull_refused(&stream("read: connection reset")), Some(false));
    }
}
