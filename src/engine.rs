//! The only module that talks to the Docker Engine (through bollard). It speaks in qdock's
//! terms: specs in, states and errors with fixes out.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, HostConfigLogConfig, Mount, MountType,
    ResourcesUlimits,
};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, EventsOptions,
    KillContainerOptions, ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
    WaitContainerOptions,
};
use bollard::{ClientVersion, Docker};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::spec::{ContainerSpec, LABEL_PREFIX};

pub struct Engine {
    docker: Docker,
    socket: String,
    timeout_secs: u64,
}

/// An image as the engine holds it.
#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub repo_digests: Vec<String>,
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
            "exited" => State::Exited,
            other => State::Other(other.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Container {
    /// The handle: a name passes to another container once this one is removed.
    pub id: String,
    pub name: String,
    pub state: State,
    pub labels: HashMap<String, String>,
    pub oom_killed: bool,
    pub memory_limit: Option<i64>,
}

impl Container {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .get(&format!("{LABEL_PREFIX}{key}"))
            .map(String::as_str)
    }
}

/// The job's output as the engine delivers it, already split into stdout and stderr.
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
        let version =
            match tokio::time::timeout(Duration::from_secs(secs), api_version(&socket)).await {
                Ok(Ok(version)) => version,
                Ok(Err(cause)) => return Err(Error::EngineUnreachable { socket, cause }),
                Err(_) => return Err(Error::EngineTimeout { socket, secs }),
            };
        let docker = Docker::connect_with_unix(&socket, secs, &version).map_err(|e| {
            Error::EngineUnreachable {
                socket: socket.clone(),
                cause: cause_chain(&e),
            }
        })?;
        Ok(Engine {
            docker,
            socket,
            timeout_secs: secs,
        })
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
                cause: "the socket does not exist".into(),
            },
            BollardError::HyperLegacyError { ref err } if err.is_connect() => {
                Error::EngineUnreachable {
                    socket: self.socket.clone(),
                    cause: cause_chain(&e),
                }
            }
            BollardError::DockerResponseServerError { message, .. } => Error::Engine {
                action: action.to_string(),
                cause: message,
            },
            other => Error::Engine {
                action: action.to_string(),
                cause: cause_chain(&other),
            },
        }
    }

    pub async fn image(&self, reference: &str) -> Result<Option<Image>> {
        match self.docker.inspect_image(reference).await {
            Ok(i) => Ok(Some(Image {
                id: i.id.unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
            })),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.fail(&format!("look up image {reference}"), e)),
        }
    }

    /// Pulls; a refusal by the registry (no such image, no access) is permanent, the rest may pass.
    pub async fn pull(&self, reference: &str) -> Result<()> {
        let options = CreateImageOptions {
            from_image: Some(reference.to_string()),
            ..Default::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(item) = progress.next().await {
            if let Err(e) = item {
                let cause = match &e {
                    BollardError::DockerResponseServerError { message, .. }
                    | BollardError::DockerStreamError { error: message } => message.clone(),
                    _ => return Err(self.fail(&format!("pull {reference}"), e)),
                };
                let permanent = status(&e) == Some(404)
                    || [
                        "not found",
                        "manifest unknown",
                        "does not exist",
                        "access denied",
                        "unauthorized",
                        "invalid reference",
                    ]
                    .iter()
                    .any(|m| cause.to_lowercase().contains(m));
                return Err(if permanent {
                    Error::PullRefused {
                        image: reference.to_string(),
                        cause,
                    }
                } else {
                    Error::PullFailed {
                        image: reference.to_string(),
                        cause,
                    }
                });
            }
        }
        Ok(())
    }

    /// Creates the container; false when its name is taken (a leftover of an earlier run).
    pub async fn create(&self, spec: &ContainerSpec) -> Result<bool> {
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        match self
            .docker
            .create_container(Some(options), create_body(spec))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e, &["already in use"]) => Ok(false),
            Err(e) => {
                let action = format!("create container {}", spec.name);
                Err(self.refused(&action, "check the job's request and the qdock config", e))
            }
        }
    }

    /// Attaches before start, so not one byte of early output is lost.
    pub async fn attach(&self, name: &str, stdin: bool) -> Result<(Output, Input)> {
        let options = AttachContainerOptions {
            stream: true,
            stdout: true,
            stderr: true,
            stdin,
            ..Default::default()
        };
        let attached = self
            .docker
            .attach_container(name, Some(options))
            .await
            .map_err(|e| self.fail(&format!("attach to container {name}"), e))?;
        let socket = self.socket.clone();
        let output = attached.output.filter_map(move |item| {
            let mapped = match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(Chunk::Stdout(message)))
                }
                Ok(LogOutput::StdErr { message }) => Some(Ok(Chunk::Stderr(message))),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(Error::Engine {
                    action: format!("stream the job's output (engine at {socket})"),
                    cause: cause_chain(&e),
                })),
            };
            std::future::ready(mapped)
        });
        Ok((Box::pin(output), attached.input))
    }

    pub async fn start(&self, name: &str) -> Result<()> {
        self.docker.start_container(name, None).await.map_err(|e| {
            let hint = "check that the job's shell (-S) and script interpreter are in the image";
            self.refused(&format!("start container {name}"), hint, e)
        })
    }

    /// A 400 to create or start means this container can never run as asked (say, the job's
    /// shell is not in the image and there is no init): a requeue (99) would loop forever.
    fn refused(&self, action: &str, hint: &str, e: BollardError) -> Error {
        match e {
            BollardError::DockerResponseServerError {
                status_code: 400,
                message,
            } => Error::JobEnv(format!(
                "the Docker engine refused to {action}: {message}; {hint}"
            )),
            other => self.fail(action, other),
        }
    }

    /// Waits until the container is not running and returns its exit code.
    pub async fn wait(&self, name: &str) -> Result<i64> {
        let options = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut stream = self.docker.wait_container(name, Some(options));
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error; it is the job's exit code.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.fail(&format!("wait for container {name}"), e)),
            None => Err(Error::Engine {
                action: format!("wait for container {name}"),
                cause: "no answer".into(),
            }),
        }
    }

    pub async fn inspect(&self, name: &str) -> Result<Option<Container>> {
        let c = match self.docker.inspect_container(name, None).await {
            Ok(c) => c,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.fail(&format!("inspect container {name}"), e)),
        };
        let state = c.state.unwrap_or_default();
        Ok(Some(Container {
            id: c.id.unwrap_or_default(),
            name: name.to_string(),
            state: State::parse(&state.status.map(|s| s.to_string()).unwrap_or_default()),
            labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
            memory_limit: c.host_config.and_then(|h| h.memory).filter(|&m| m > 0),
        }))
    }

    /// Pauses; a container already paused, or no longer running, is left as it is: a second
    /// suspend, or one racing the job's end, has nothing to do.
    pub async fn pause(&self, name: &str) -> Result<()> {
        match self.docker.pause_container(name).await {
            Err(e) if conflict(&e, &["already paused", "is not running"]) => Ok(()),
            other => other.map_err(|e| self.fail(&format!("pause container {name}"), e)),
        }
    }

    /// Unpauses; a container that is not paused (a racing resume got there first) is fine.
    pub async fn unpause(&self, name: &str) -> Result<()> {
        match self.docker.unpause_container(name).await {
            Err(e) if conflict(&e, &["not paused"]) => Ok(()),
            other => other.map_err(|e| self.fail(&format!("resume container {name}"), e)),
        }
    }

    /// Sends the container's stop signal, then SIGKILL after `grace_secs`; returns once stopped.
    pub async fn stop(&self, name: &str, grace_secs: u64) -> Result<()> {
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
        match engine.stop_container(name, Some(options)).await {
            Err(e) if status(&e) == Some(404) => Ok(()),
            other => other.map_err(|e| self.fail(&format!("stop container {name}"), e)),
        }
    }

    pub async fn kill(&self, name: &str, signal: &str) -> Result<()> {
        let options = KillContainerOptions {
            signal: signal.to_string(),
        };
        self.docker
            .kill_container(name, Some(options))
            .await
            .map_err(|e| self.fail(&format!("send {signal} to container {name}"), e))
    }

    /// Removes the container, stopping it first if `force`; a missing one is fine.
    pub async fn remove(&self, name: &str, force: bool) -> Result<()> {
        let options = RemoveContainerOptions {
            force,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(name, Some(options)).await {
            Err(e) if status(&e) == Some(404) => Ok(()),
            // "removal already in progress": another party is removing it.
            Err(e) if status(&e) == Some(409) && e.to_string().contains("in progress") => Ok(()),
            other => other.map_err(|e| self.fail(&format!("remove container {name}"), e)),
        }
    }

    /// The tags of every local image (`repository:tag`).
    pub async fn image_tags(&self) -> Result<Vec<String>> {
        let images = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .map_err(|e| self.fail("list images", e))?;
        Ok(images
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t != "<none>:<none>")
            .collect())
    }

    /// The engine's version, for `qdock check`.
    pub async fn version(&self) -> Result<String> {
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| self.fail("report its version", e))?;
        Ok(format!(
            "{} (API {})",
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default()
        ))
    }

    /// Every container carrying qdock's labels, running or not.
    pub async fn list_qdock(&self) -> Result<Vec<Container>> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_PREFIX}job-id")])]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.fail("list containers", e))?;
        Ok(listed
            .into_iter()
            .map(|c| Container {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                state: State::parse(&c.state.map(|s| s.to_string()).unwrap_or_default()),
                labels: c.labels.unwrap_or_default(),
                oom_killed: false,
                memory_limit: None,
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
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["create".to_string()]),
            ("label".to_string(), vec![format!("{LABEL_PREFIX}job-id")]),
        ]);
        let options = EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(filters),
        };
        let socket = self.socket.clone();
        let events = self.docker.events(Some(options)).map(move |item| {
            let event = item.map_err(|e| Error::Engine {
                action: format!("follow the events of the engine at {socket}"),
                cause: cause_chain(&e),
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
                memory_limit: None,
            })
        });
        Box::pin(events)
    }
}

/// The API version to speak: the engine's, capped at bollard's. Asked with `HEAD /_ping`, as
/// the docker CLI does: bollard's negotiation uses `GET /version`, for which dockerd runs
/// `runc --version` and `docker-init --version`, a cost every method would pay (~10 ms).
/// Never a fixed version: newer engines refuse old API versions.
async fn api_version(socket: &str) -> std::result::Result<ClientVersion, String> {
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
        match stream.read(&mut buf).await.map_err(|e| e.to_string())? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let server = text
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("api-version")
                .then(|| value.trim())
        })
        .and_then(|v| {
            let (major, minor) = v.split_once('.')?;
            Some((major.parse::<usize>().ok()?, minor.parse::<usize>().ok()?))
        })
        .ok_or_else(|| {
            format!(
                "it does not speak the Docker API (answer: {:?})",
                text.lines().next().unwrap_or("")
            )
        })?;
    let ours = bollard::API_DEFAULT_VERSION;
    let (major_version, minor_version) = server.min((ours.major_version, ours.minor_version));
    Ok(ClientVersion {
        major_version,
        minor_version,
    })
}

/// A 409 from the engine whose message says one of `reasons`.
fn conflict(e: &BollardError, reasons: &[&str]) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 409, message }
        if reasons.iter().any(|r| message.contains(r)))
}

fn status(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Hyper hides the useful part ("Permission denied", "Connection refused") in the source chain.
fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let mounts = spec
        .mounts
        .iter()
        .map(|m| Mount {
            typ: Some(MountType::BIND),
            source: Some(m.source.display().to_string()),
            target: Some(m.target.display().to_string()),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();
    let devices = spec
        .devices
        .iter()
        .map(|d| {
            let (host, inside) = d.split_once(':').unwrap_or((d, d));
            DeviceMapping {
                path_on_host: Some(host.to_string()),
                path_in_container: Some(inside.to_string()),
                cgroup_permissions: Some("rwm".into()),
            }
        })
        .collect();
    let ulimits = spec
        .ulimits
        .iter()
        .map(|(name, soft, hard)| ResourcesUlimits {
            name: Some(name.clone()),
            soft: Some(*soft),
            hard: Some(*hard),
        })
        .collect();
    let host_config = HostConfig {
        mounts: Some(mounts),
        network_mode: Some(spec.network.clone()),
        init: Some(spec.init),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(spec.cap_add.clone()),
        security_opt: Some(spec.security_opt.clone()),
        privileged: Some(false),
        ipc_mode: Some("private".into()),
        group_add: Some(spec.groups.clone()),
        devices: Some(devices),
        memory: spec.memory,
        // Without swap the limit would be doubled by swap space.
        memory_swap: spec.memory,
        nano_cpus: spec.nano_cpus,
        pids_limit: spec.pids_limit,
        ulimits: Some(ulimits),
        auto_remove: Some(false),
        // The job's output goes to the starter only: no copy piles up in the engine's logs.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: Some(spec.user.clone()),
        entrypoint: Some(spec.entrypoint.clone()),
        cmd: Some(spec.cmd.clone()),
        working_dir: Some(spec.workdir.clone()),
        hostname: spec.hostname.clone(),
        env: Some(spec.env.clone()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        attach_stdin: Some(spec.stdin_script),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(spec.stdin_script),
        stdin_once: Some(spec.stdin_script),
        tty: Some(false),
        stop_timeout: Some(i64::try_from(spec.stop_grace_secs).unwrap_or(i64::MAX)),
        host_config: Some(host_config),
        ..Default::default()
    }
}
