//! The engine's HTTP where bollard does not serve: the version ping on a new connection,
//! the terminal's attach upgrade, and the look-ups whose answers bollard's types would refuse
//! (Podman's states). Each is one request on a connection of its own to the unix socket,
//! through hyper's HTTP/1 client (bollard's own), which reads the answer's framing; its
//! status code decides, never the engine's words.

use std::time::Duration;

use bollard::ClientVersion;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONNECTION, HOST, HeaderValue, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::{Engine, Kind};
use crate::error::{Cause, Error, Result};

/// The connection an attach hands over: the container's stream, both ways.
pub(super) type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

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
        self.request(action, Method::GET, &path, timeout).await
    }

    /// Sends `method path` (the whole path, version included) and reads the answer as a
    /// `T`; None for a 404. Without a `timeout` it waits as long as the engine takes.
    pub(super) async fn request<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        method: Method,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<T>> {
        let exchange = async {
            let (mut sender, _) = open(&self.socket).await.map_err(|e| (true, e))?;
            let answer = sender
                .send_request(new_request(method, path).map_err(|e| (false, e))?)
                .await
                .map_err(|e| (false, Cause::of(e)))?;
            let code = answer.status();
            let body = read_body(answer).await.map_err(|e| (false, e))?;
            Ok((code, body))
        };
        let answered = match timeout {
            Some(limit) => tokio::time::timeout(limit, exchange).await,
            None => Ok(exchange.await),
        };
        let (code, body) = match answered {
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
        match code {
            StatusCode::NOT_FOUND => Ok(None),
            _ if code.is_success() => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| failed(Cause::of(e))),
            _ => Err(failed(Cause::text(answer_message(code, &body)))),
        }
    }
}

/// Asks the engine at `socket` to hand the connection over for `path` (an attach), as the
/// docker CLI does: `Upgrade: tcp`, answered `101`. Both dockerd (20.10) and Podman (4.3)
/// answer so when asked; the bytes that came with the answer are the stream's first.
/// Otherwise the answer's status code, when there was one, and the engine's words.
pub(super) async fn upgrade(
    socket: &str,
    path: &str,
) -> std::result::Result<Upgraded, (Option<u16>, Cause)> {
    let (mut sender, _) = open(socket).await.map_err(|e| (None, e))?;
    let mut asked = new_request(Method::POST, path).map_err(|e| (None, e))?;
    let headers = asked.headers_mut();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("tcp"));
    let answer = sender
        .send_request(asked)
        .await
        .map_err(|e| (None, Cause::of(e)))?;
    let code = answer.status();
    if code != StatusCode::SWITCHING_PROTOCOLS {
        let refused = |cause| (Some(code.as_u16()), cause);
        // A success that is no upgrade would stream for good: only a failure's body is read.
        if code.is_success() {
            return Err(refused(Cause::text(format!(
                "it answered {code} without handing the connection over"
            ))));
        }
        let body = read_body(answer).await.map_err(refused)?;
        return Err(refused(Cause::text(answer_message(code, &body))));
    }
    let upgraded = hyper::upgrade::on(answer)
        .await
        .map_err(|e| (Some(code.as_u16()), Cause::of(e)))?;
    Ok(TokioIo::new(upgraded))
}

/// A new HTTP/1 connection to the engine at `socket`, with the pid of the process serving it
/// when the kernel tells it. Its own task drives the connection until the answer is read or,
/// for an attach, the connection is handed over; its failures reach the request's answer.
async fn open(
    socket: &str,
) -> std::result::Result<(SendRequest<Empty<Bytes>>, Option<i32>), Cause> {
    let stream = UnixStream::connect(socket).await.map_err(Cause::of)?;
    let server = stream.peer_cred().ok().and_then(|c| c.pid());
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Cause::of)?;
    tokio::spawn(connection.with_upgrades());
    Ok((sender, server))
}

/// `method path` without a body. dockerd refuses an HTTP/1.1 request without a `Host`.
fn new_request(method: Method, path: &str) -> std::result::Result<Request<Empty<Bytes>>, Cause> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "docker")
        .body(Empty::new())
        .map_err(Cause::of)
}

/// The whole body of an answer.
async fn read_body(answer: Response<Incoming>) -> std::result::Result<Bytes, Cause> {
    Ok(answer
        .into_body()
        .collect()
        .await
        .map_err(Cause::of)?
        .to_bytes())
}

/// The engine's own words for a failed request (`{"message": …}`), else its status.
fn answer_message(code: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Answer {
        message: String,
    }
    serde_json::from_slice::<Answer>(body)
        .map(|a| a.message)
        .unwrap_or_else(|_| format!("status {}", code.as_u16()))
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
    let (mut sender, server) = open(socket).await?;
    let mut ping = new_request(Method::HEAD, "/_ping")?;
    // One request: the engine may close the connection as soon as it has answered.
    ping.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    let answer = sender.send_request(ping).await.map_err(Cause::of)?;
    let (api, kind) = ping_answer(&answer).map_err(Cause::text)?;
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
fn ping_answer<B>(answer: &Response<B>) -> std::result::Result<((usize, usize), Kind), String> {
    let status = answer.status();
    if status != StatusCode::OK {
        return Err(format!("it answered {status}"));
    }
    let header = |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok());
    let kind = match header("libpod-api-version") {
        Some(_) => Kind::Podman,
        None => Kind::Docker,
    };
    let api = header("api-version")
        .and_then(|v| {
            let (major, minor) = v.trim().split_once('.')?;
            Some((major.parse::<usize>().ok()?, minor.parse::<usize>().ok()?))
        })
        .ok_or_else(|| format!("it does not speak the Docker API (answer: {status})"))?;
    Ok((api, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_request_is_told_in_the_engines_words() {
        let body = b"{\"message\":\"no such container\"}";
        assert_eq!(
            answer_message(StatusCode::NOT_FOUND, body),
            "no such container"
        );
        assert_eq!(
            answer_message(StatusCode::INTERNAL_SERVER_ERROR, b"<html>"),
            "status 500"
        );
        assert_eq!(
            encoded(r#"{"label":["qdock.job-id"]}"#),
            "%7B%22label%22%3A%5B%22qdock.job-id%22%5D%7D"
        );
    }

    fn answer(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut answer = Response::builder().status(status);
        for (name, value) in headers {
            answer = answer.header(*name, *value);
        }
        answer.body(()).unwrap()
    }

    #[test]
    fn a_ping_is_an_engine_only_with_its_status_and_version() {
        let docker = answer(
            200,
            &[
                ("Api-Version", "1.41"),
                ("Server", "Docker/20.10.24 (linux)"),
            ],
        );
        assert_eq!(ping_answer(&docker), Ok(((1, 41), Kind::Docker)));
        let podman = answer(
            200,
            &[("Api-Version", "1.41"), ("Libpod-Api-Version", "4.3.1")],
        );
        assert_eq!(ping_answer(&podman), Ok(((1, 41), Kind::Podman)));
        // A proxy's error page may carry the header it passed on: the status decides.
        let refused = answer(503, &[("Api-Version", "1.41")]);
        assert_eq!(
            ping_answer(&refused),
            Err("it answered 503 Service Unavailable".into())
        );
        assert!(ping_answer(&answer(200, &[("Server", "nginx")])).is_err());
        assert!(ping_answer(&answer(200, &[("Api-Version", "v2")])).is_err());
    }
}
