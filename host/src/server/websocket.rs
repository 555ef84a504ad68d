//! WebSocket endpoints: the upgrade handshake, then one task per client that
//! replays what it missed (`?after=ID`, answered by the endpoint's replay
//! component), then forwards the topic's messages. Keepalive pings, a size
//! limit on client messages, a bounded buffer (a slow client is closed with
//! 1013), and a clean 1001 close when the host shuts down.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tracing::Instrument;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::error::{full, json_error};
use super::front_door::ClientAddr;
use super::guest;
use crate::App;
use crate::hub::{HubMessage, Subscription};
use crate::manifest::WebSocketSpec;

/// How often the host pings an idle client.
const PING_EVERY: Duration = Duration::from_secs(30);
/// A client that has not answered a ping for this long is gone.
const PONG_TIMEOUT: Duration = Duration::from_secs(75);
/// A send that does not complete in this time means the client stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Most events a reconnecting client is replayed.
const REPLAY_LIMIT: usize = 1000;
/// Bytes read from a client's socket at a time.
const READ_BUFFER: usize = 4096;
/// Most hub messages written to one client per flush.
const SEND_BATCH: usize = 64;

type Response = http::Response<HyperOutgoingBody>;
type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Answers a request on a WebSocket endpoint: the 101 handshake, or why not.
pub(super) fn accept(
    app: Arc<App>,
    endpoint: WebSocketSpec,
    mut request: http::Request<Incoming>,
    request_id: &str,
) -> Response {
    let Some(Handshake { key, after }) = Handshake::read(request.headers(), request.uri().query()) else {
        let mut response = json_error(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "This is a WebSocket endpoint: connect with a WebSocket client.",
            request_id,
        );
        response.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    };
    if app.hub().client_counts().iter().any(|(t, n)| *t == endpoint.topic && *n >= endpoint.max_clients as usize) {
        let mut response = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_clients",
            "This endpoint has as many clients as it accepts; retry later.",
            request_id,
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    }
    // Once upgraded the socket leaves the HTTP connection's count; it stays
    // under its address's cap.
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0.ip());
    let admission = match client.map(|ip| app.connections().admit_upgraded(ip)) {
        Some(Err(_)) => {
            crate::metrics::global().refused("websockets_per_ip");
            let mut response = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                "Too many connections from this address; close some and retry.",
                request_id,
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
        Some(Ok(admission)) => Some(admission),
        None => None,
    };
    // Subscribe before the handshake completes, so nothing published while
    // the replay runs is missed.
    let subscription = app.hub().subscribe(&endpoint.topic, endpoint.buffer as usize);
    let upgrade = hyper::upgrade::on(&mut request);
    let span = tracing::info_span!("websocket", path = %endpoint.path, topic = %endpoint.topic, request_id);
    // Served on the hub's threads, below the request workers' priority.
    let hub = app.hub().clone();
    hub.delivery().spawn(
        async move {
            let _admission = admission;
            match upgrade.await {
                Ok(upgraded) => {
                    // Clients send little (pongs, small frames): a small read
                    // buffer, since tungstenite zeroes all of it on every read.
                    let config = WebSocketConfig::default()
                        .read_buffer_size(READ_BUFFER)
                        .max_message_size(Some(endpoint.max_client_message as usize))
                        .max_frame_size(Some(endpoint.max_client_message as usize));
                    let socket =
                        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                    serve_client(app, endpoint, socket, subscription, after).await;
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        }
        .instrument(span),
    );
    let mut response = http::Response::new(full(bytes::Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// What a client's upgrade request asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Handshake {
    /// `Sec-WebSocket-Key`, for the accept key.
    pub key: HeaderValue,
    /// `?after=ID`: replay what was published after ID.
    pub after: Option<String>,
}

impl Handshake {
    /// The handshake of a request, or `None` when it is not a WebSocket upgrade.
    pub fn read(headers: &http::HeaderMap, query: Option<&str>) -> Option<Self> {
        let is_upgrade = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let key = headers.get(header::SEC_WEBSOCKET_KEY).filter(|_| is_upgrade)?.clone();
        let after = query.and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("after=")).map(str::to_owned));
        Some(Self { key, after })
    }
}

async fn serve_client(
    app: Arc<App>,
    endpoint: WebSocketSpec,
    mut socket: Socket,
    mut subscription: Subscription,
    after: Option<String>,
) {
    tracing::debug!("client connected");
    let mut replayed = HashSet::new();
    if let Some(after) = after {
        match replay(&app, &endpoint, &after).await {
            Ok((messages, truncated)) => {
                for message in messages {
                    replayed.insert(message_id(&message));
                    if !send(&mut socket, Message::Text(Utf8Bytes::from(message))).await {
                        return;
                    }
                }
                if truncated {
                    let notice = serde_json::json!({
                        "type": "replay_truncated",
                        "message": format!("More than {REPLAY_LIMIT} events were stored after that one; re-list them over HTTP."),
                    });
                    if !send(&mut socket, Message::Text(notice.to_string().into())).await {
                        return;
                    }
                }
            }
            Err((code, reason)) => {
                close(&mut socket, code, reason).await;
                return;
            }
        }
    }

    let mut shutdown = app.shutdown();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_pong = Instant::now();
    loop {
        tokio::select! {
            message = subscription.messages.recv() => match message {
                Some(message) => {
                    if !forward(&mut socket, &mut subscription.messages, message, &mut replayed).await {
                        return;
                    }
                }
                None => {
                    close(&mut socket, CloseCode::Again, "client too slow: messages were dropped; reconnect with ?after=").await;
                    return;
                }
            },
            _ = &mut subscription.kicked => {
                close(&mut socket, CloseCode::Again, "client too slow: messages were dropped; reconnect with ?after=").await;
                return;
            }
            frame = socket.next() => match frame {
                None | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Pong(_))) => last_pong = Instant::now(),
                // Pings are answered by tungstenite; client data is ignored.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "client error");
                    close(&mut socket, CloseCode::Size, "message too large or malformed").await;
                    return;
                }
            },
            _ = ping.tick() => {
                if last_pong.elapsed() > PONG_TIMEOUT {
                    close(&mut socket, CloseCode::Away, "no pong").await;
                    return;
                }
                if !send(&mut socket, Message::Ping(Default::default())).await {
                    return;
                }
            }
            _ = shutdown.changed() => {
                close(&mut socket, CloseCode::Away, "server shutting down").await;
                return;
            }
        }
    }
}

/// Asks the replay component for messages after `after`.
async fn replay(
    app: &App,
    endpoint: &WebSocketSpec,
    after: &str,
) -> Result<(Vec<String>, bool), (CloseCode, &'static str)> {
    let Some(spec) = &endpoint.replay else {
        return Err((CloseCode::Policy, "this endpoint does not replay: connect without ?after="));
    };
    let component = app.runtime().snapshot().component(spec.component.as_str()).cloned();
    let Some(component) = component else { return Err((CloseCode::Error, "replay is unavailable")) };
    let encoded: String = form_urlencoded(after);
    let path = format!("{}?after={encoded}&limit={REPLAY_LIMIT}", spec.path);
    match guest::get(component, &path).await {
        Ok((StatusCode::OK, body)) => {
            let parsed: serde_json::Value =
                serde_json::from_slice(&body).map_err(|_| (CloseCode::Error, "replay failed"))?;
            let items = parsed["items"].as_array().cloned().unwrap_or_default();
            let truncated = parsed["more"].as_bool().unwrap_or(false);
            Ok((items.iter().map(|i| i.to_string()).collect(), truncated))
        }
        Ok((StatusCode::NOT_FOUND, _)) => Err((CloseCode::Policy, "unknown event id in ?after=")),
        Ok(_) | Err(_) => Err((CloseCode::Error, "replay failed")),
    }
}

fn form_urlencoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `id` of a JSON message, for de-duplicating replay against live.
fn message_id(message: &str) -> String {
    serde_json::from_str::<serde_json::Value>(message)
        .ok()
        .and_then(|v| v.get("id").map(|id| id.to_string()))
        .unwrap_or_default()
}

/// Writes `first` and what else is already waiting (up to [`SEND_BATCH`])
/// with one flush, skipping what the replay already sent (it raced with live
/// publishes).
async fn forward(
    socket: &mut Socket,
    messages: &mut mpsc::Receiver<HubMessage>,
    first: HubMessage,
    replayed: &mut HashSet<String>,
) -> bool {
    let write = async {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(message) = next {
            if replayed.is_empty() || !replayed.remove(&message_id(&message)) {
                socket.feed(Message::Text(message)).await?;
            }
            taken += 1;
            next = if taken < SEND_BATCH { messages.try_recv().ok() } else { None };
        }
        socket.flush().await
    };
    outcome(tokio::time::timeout(SEND_TIMEOUT, write).await)
}

async fn send(socket: &mut Socket, message: Message) -> bool {
    outcome(tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await)
}

fn outcome(sent: Result<Result<(), tungstenite::Error>, tokio::time::error::Elapsed>) -> bool {
    match sent {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "send failed");
            false
        }
        Err(_) => {
            tracing::info!("client stopped reading; dropping it");
            false
        }
    }
}

async fn close(socket: &mut Socket, code: CloseCode, reason: &'static str) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(Some(frame))).await;
}
