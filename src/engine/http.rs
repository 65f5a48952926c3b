//! The engine's HTTP where bollard does not serve: the version ping on a new connection,
//! the terminal's attach upgrade, and the look-ups whose answers bollard's types would refuse
//! (Podman's states). Plain HTTP/1.x over the unix socket.

use std::time::Duration;

use bollard::ClientVersion;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{Engine, Kind};
use crate::error::{Cause, Error, Result};

impl Engine {
    /// GETs `path` (under the API version) and reads the answer as a `T`; None for a 404.
    /// Not through bollard, whose types refuse states it does not know: Podman reports
    /// `stopped` for a container on its way to `exited`, and a look-up must not fail then.
    pub(super) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        path: &str,
    ) -> Result<Option<T>> {
        let path = format!("/v{}{path}", self.docker.client_version());
        let timeout = Some(Duration::from_secs(self.timeout_secs));
        self.request(action, "GET", &path, timeout).await
    }

    /// Sends `method path` (the whole path, version included) and reads the answer as a
    /// `T`; None for a 404. HTTP/1.0: the answer is never chunked and ends when the engine
    /// closes. Without a `timeout` it waits as long as the engine takes.
    pub(super) async fn request<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        method: &str,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<T>> {
        let request = format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
        let exchange = async {
            let mut stream = UnixStream::connect(&self.socket)
                .await
                .map_err(|e| (true, Cause::of(e)))?;
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|e| (false, Cause::of(e)))?;
            let mut answer = Vec::new();
            stream
                .read_to_end(&mut answer)
                .await
                .map_err(|e| (false, Cause::of(e)))?;
            Ok(answer)
        };
        let answered = match timeout {
            Some(limit) => tokio::time::timeout(limit, exchange).await,
            None => Ok(exchange.await),
        };
        let answer = match answered {
            Ok(Ok(answer)) => answer,
            Ok(Err((true, cause))) => {
                return Err(Error::EngineUnreachable {
                    socket: self.socket.clone(),
                    cause,
                });
            }
            Ok(Err((false, cause))) => {
                return Err(Error::Engine {
                    action: action.to_string(),
                    cause,
                });
            }
            Err(_) => {
                return Err(Error::EngineTimeout {
                    socket: self.socket.clone(),
                    secs: self.timeout_secs,
                });
            }
        };
        let failed = |cause: Cause| Error::Engine {
            action: action.to_string(),
            cause,
        };
        let (code, body) = split_answer(&answer).map_err(|e| failed(Cause::text(e)))?;
        match code {
            404 => Ok(None),
            200..=299 => serde_json::from_slice(body)
                .map(Some)
                .map_err(|e| failed(Cause::of(e))),
            _ => Err(failed(Cause::text(answer_message(code, body)))),
        }
    }
}

/// An HTTP answer's status code and body.
fn split_answer(answer: &[u8]) -> std::result::Result<(u16, &[u8]), String> {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("its answer has no end of head")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head.lines().next().unwrap_or("");
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("it answered {status:?}"))?;
    Ok((code, &answer[end + 4..]))
}

/// The engine's own words for a failed request (`{"message": …}`), else its status.
fn answer_message(code: u16, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Answer {
        message: String,
    }
    serde_json::from_slice::<Answer>(body)
        .map(|a| a.message)
        .unwrap_or_else(|_| format!("status {code}"))
}

/// `text` percent-encoded for a URL's path segment or query value.
pub(super) fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asks the engine at `socket` on a new connection for its API version and kind, within
/// `secs`; with them the pid of the process serving the socket, when the kernel tells it.
pub(super) async fn reach(socket: &str, secs: u64) -> Result<(ClientVersion, Kind, Option<i32>)> {
    match tokio::time::timeout(Duration::from_secs(secs), api_version(socket)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(cause)) => Err(Error::EngineUnreachable {
            socket: socket.to_string(),
            cause,
        }),
        Err(_) => Err(Error::EngineTimeout {
            socket: socket.to_string(),
            secs,
        }),
    }
}

/// The API version to speak: the engine's, capped at bollard's. Asked with `HEAD /_ping`, as
/// the docker CLI does: bollard's negotiation uses `GET /version`, for which dockerd runs
/// `runc --version` and `docker-init --version`, a cost every method would pay (~10 ms).
/// Never a fixed version: newer engines refuse old API versions. Podman adds its own
/// version (`Libpod-Api-Version`), which tells it apart.
async fn api_version(
    socket: &str,
) -> std::result::Result<(ClientVersion, Kind, Option<i32>), Cause> {
    let mut stream = UnixStream::connect(socket).await.map_err(Cause::of)?;
    let server = stream.peer_cred().ok().and_then(|c| c.pid());
    stream
        .write_all(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .await
        .map_err(Cause::of)?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
        match stream.read(&mut buf).await.map_err(Cause::of)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let (api, kind) = ping_answer(&String::from_utf8_lossy(&head)).map_err(Cause::text)?;
    let ours = bollard::API_DEFAULT_VERSION;
    let (major_version, minor_version) = api.min((ours.major_version, ours.minor_version));
    let version = ClientVersion {
        major_version,
        minor_version,
    };
    Ok((version, kind, server))
}

/// What the head of a `/_ping` answer says: the engine's API version and kind. Anything but
/// a 200 with an `Api-Version` is no engine of ours.
fn ping_answer(text: &str) -> std::result::Result<((usize, usize), Kind), String> {
    let status = text.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("it answered {status:?}"));
    }
    let header = |name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    };
    let kind = match header("libpod-api-version") {
        Some(_) => Kind::Podman,
        None => Kind::Docker,
    };
    let api = header("api-version")
        .and_then(|v| {
            let (major, minor) = v.split_once('.')?;
            Some((major.parse::<usize>().ok()?, minor.parse::<usize>().ok()?))
        })
        .ok_or_else(|| format!("it does not speak the Docker API (answer: {status:?})"))?;
    Ok((api, kind))
}

/// Whether the engine's answer to an attach request (its head, up to the blank line) hands
/// the connection over; otherwise its status code and the engine's own words.
pub(super) fn upgraded(head: &[u8]) -> std::result::Result<(), (Option<u16>, String)> {
    let text = String::from_utf8_lossy(head);
    let status = text.lines().next().unwrap_or("");
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok());
    // 101 answers the upgrade; engines that ignore it hijack the connection after a 200.
    if matches!(code, Some(101 | 200)) {
        Ok(())
    } else {
        Err((code, format!("it answered {status:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_split_into_status_and_body() {
        let answer = b"HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"no such container\"}";
        let (code, body) = split_answer(answer).unwrap();
        assert_eq!(code, 404);
        assert_eq!(answer_message(code, body), "no such container");
        assert_eq!(answer_message(500, b"<html>"), "status 500");
        assert!(split_answer(b"HTTP/1.0 200 OK\r\n").is_err());
        assert_eq!(
            encoded(r#"{"label":["qdock.job-id"]}"#),
            "%7B%22label%22%3A%5B%22qdock.job-id%22%5D%7D"
        );
    }

    #[test]
    fn an_attach_is_upgraded_only_when_the_engine_says_so() {
        let answer = b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
        assert_eq!(upgraded(answer), Ok(()));
        assert_eq!(upgraded(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(()));
        let refused = upgraded(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n");
        assert_eq!(
            refused,
            Err((Some(404), "it answered \"HTTP/1.1 404 Not Found\"".into()))
        );
        assert!(upgraded(b"").is_err());
    }

    #[test]
    fn a_ping_is_an_engine_only_with_its_status_and_version() {
        let docker = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nServer: Docker/20.10.24 (linux)\r\n";
        assert_eq!(ping_answer(docker), Ok(((1, 41), Kind::Docker)));
        let podman = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nLibpod-Api-Version: 4.3.1\r\n";
        assert_eq!(ping_answer(podman), Ok(((1, 41), Kind::Podman)));
        // A proxy's error page may carry the header it passed on: the status decides.
        let refused = "HTTP/1.1 503 Service Unavailable\r\nApi-Version: 1.41\r\n";
        assert!(ping_answer(refused).is_err());
        assert!(ping_answer("HTTP/1.1 200 OK\r\nServer: nginx\r\n").is_err());
    }
}
