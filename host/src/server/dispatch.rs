//! The request path, top to bottom: accept (request id, span) → host paths →
//! route → read the body under its cap → run the component → respond with
//! `x-request-id` and `x-wharf-component`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{Instrument, field};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::buffered_body::BufferedBody;
use super::error::{HostError, json_response};
use super::front_door::ClientAddr;
use super::{guest, request_id};
use crate::App;
use crate::manifest::ComponentName;
use crate::metrics;
use crate::router::RouteMatch;
use wharf_runtime::registry::Snapshot;

type Response = http::Response<HyperOutgoingBody>;

/// Answers one HTTP request. Never fails: every error becomes a JSON response.
pub(super) async fn handle(app: Arc<App>, request: http::Request<Incoming>) -> Response {
    let request_id = request_id::for_request(request.headers());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        component = field::Empty,
        route = field::Empty,
        status = field::Empty,
    );
    async move {
        let started = Instant::now();
        let mut routed = Routed::default();
        let mut response = match answer(&app, request, &request_id, &mut routed).await {
            Ok(response) => response,
            Err(error) => {
                if let (Some(kind), Some(component)) = (error.failure_kind(), &routed.component) {
                    metrics::global().guest_failure(component.as_str(), kind);
                }
                error.into_response(&request_id)
            }
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(request_id::HEADER, value);
        }
        let status = response.status().as_u16();
        tracing::Span::current().record("status", status);
        tracing::debug!("answered");
        let (component, route) = match routed.component {
            Some(component) => (component.to_string(), routed.route),
            None => ("-".to_owned(), "-".to_owned()),
        };
        metrics::global().request(metrics::RequestLabels { component, route, status }, started.elapsed());
        response
    }
    .instrument(span)
    .await
}

/// What routing decided, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Routed {
    /// The component the request went to.
    pub(crate) component: Option<ComponentName>,
    /// The route that matched, as in the manifest.
    pub(crate) route: String,
}

async fn answer(
    app: &Arc<App>,
    request: http::Request<Incoming>,
    request_id: &str,
    routed: &mut Routed,
) -> Result<Response, HostError> {
    if is_host_path(request.uri().path()) && !matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
        return Err(HostError::MethodNotAllowed { allowed: vec![http::Method::GET, http::Method::HEAD] });
    }
    if let Some(response) = host_path(app, request.uri().path()).await {
        return Ok(response);
    }
    let snapshot = app.runtime().snapshot();
    if let Some(endpoint) = snapshot.websockets().iter().find(|w| w.path == request.uri().path()) {
        return Ok(super::websocket::accept(app.clone(), endpoint.clone(), request, request_id));
    }
    let via = Via::Client { body_timeout: app.connections().limits().body_read_timeout };
    serve_routed(&snapshot, request, request_id, via, routed).await
}

/// How a request reached the component router.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via<'a> {
    /// A client, over TCP, with this long to send the body.
    Client {
        /// The front door's body read timeout.
        body_timeout: Duration,
    },
    /// An in-process call from another component to `target`, `depth`
    /// calls deep; paths `target` does not route answer 404.
    InProcess { target: &'a str, depth: u8 },
}

/// Routes `request` to its component, reads the body under the route's cap
/// and serves it. The front door and in-process calls share this, so both
/// see the same routes, limits and errors.
pub(crate) async fn serve_routed<B>(
    snapshot: &Snapshot,
    request: http::Request<B>,
    request_id: &str,
    via: Via<'_>,
    routed: &mut Routed,
) -> Result<Response, HostError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let not_found = || HostError::NotFound { path: request.uri().path().to_owned() };
    let (component, (max_body, too_large_code)) = match snapshot.routes().route(request.method(), request.uri().path())
    {
        RouteMatch::Component { component, .. } if matches!(via, Via::InProcess { target, .. } if target != component.as_str()) =>
        {
            return Err(not_found());
        }
        RouteMatch::Component { component, max_body, too_large_code, route, rate_limit } => {
            routed.component = Some(component.clone());
            routed.route = route.to_string();
            tracing::Span::current().record("route", routed.route.as_str());
            // Clients only: in-process calls are the components' own.
            let client = request.extensions().get::<ClientAddr>().map(|c| c.0.ip());
            if let (Some(limit), Some(client), Via::Client { .. }) = (rate_limit, client, via)
                && let Err(wait) = super::rate_limit::check(component.as_str(), &routed.route, limit, client)
            {
                metrics::global().refused("rate_limited");
                return Err(HostError::RateLimited { retry_after: wait });
            }
            (component, (max_body, too_large_code))
        }
        RouteMatch::MethodNotAllowed { allowed } => return Err(HostError::MethodNotAllowed { allowed }),
        RouteMatch::NotFound => return Err(not_found()),
    };
    let Some(component) = snapshot.component(component.as_str()).cloned() else {
        return Err(not_found());
    };
    tracing::Span::current().record("component", component.spec().name.as_str());

    let too_large = || HostError::BodyTooLarge { limit: max_body, code: too_large_code.map(str::to_owned) };
    let body_timeout = match via {
        Via::Client { body_timeout } => Some(body_timeout),
        Via::InProcess { .. } => None,
    };
    let (mut request, _body_bytes) = read_body(request, max_body, body_timeout, too_large).await?;
    // Components put the host's request id in their own error bodies.
    if let Ok(value) = HeaderValue::from_str(request_id) {
        request.headers_mut().insert(request_id::HEADER, value);
    }
    let label = component.label();
    let depth = match via {
        Via::Client { .. } => 0,
        Via::InProcess { depth, .. } => depth,
    };
    let mut response = guest::serve(component, request, depth).await?;
    if let Ok(value) = HeaderValue::from_str(&label) {
        response.headers_mut().insert("x-wharf-component", value);
    }
    Ok(response)
}

/// Bytes of request bodies buffered at once across the host; a body that
/// does not fit is answered 503 instead of growing memory.
pub(crate) const BODY_BUDGET_BYTES: usize = 256 << 20;

/// After a body passes its cap, the host reads (and drops) up to this much
/// more, so the client is reading the 413 rather than a reset.
const DRAIN_AFTER_REFUSAL: usize = 16 << 20;

/// How long draining waits for more of a refused body.
const DRAIN_PAUSE: Duration = Duration::from_millis(300);

fn body_budget() -> &'static Arc<Semaphore> {
    static BUDGET: std::sync::LazyLock<Arc<Semaphore>> =
        std::sync::LazyLock::new(|| Arc::new(Semaphore::new(BODY_BUDGET_BYTES)));
    &BUDGET
}

/// A buffered body's share of [`BODY_BUDGET_BYTES`], given back when dropped.
pub(crate) struct BodyBytes(Option<OwnedSemaphorePermit>);

impl BodyBytes {
    fn take(&mut self, bytes: usize) -> Result<(), HostError> {
        if bytes == 0 {
            return Ok(());
        }
        let n = u32::try_from(bytes).map_err(|_| HostError::BodyBudgetExhausted)?;
        let permit = body_budget().clone().try_acquire_many_owned(n).map_err(|_| {
            metrics::global().refused("body_budget");
            HostError::BodyBudgetExhausted
        })?;
        match &mut self.0 {
            Some(held) => held.merge(permit),
            None => self.0 = Some(permit),
        }
        Ok(())
    }
}

/// Buffers the body under `max_body` and the host's body budget, within
/// `timeout` (client requests). Over the cap, the rest is read and dropped
/// (up to a bound) before the 413, so the client sees the answer. Also makes
/// sure the request has the authority wasi:http requires.
async fn read_body<B>(
    request: http::Request<B>,
    max_body: u64,
    timeout: Option<Duration>,
    too_large: impl Fn() -> HostError,
) -> Result<(http::Request<BufferedBody>, BodyBytes), HostError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    // A client waiting for `100 Continue` has sent nothing: answer at once
    // (reading would tell hyper to invite the body).
    let waits_to_send = request
        .headers()
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let (mut parts, body) = request.into_parts();
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let mut held = BodyBytes(None);
    let read = async {
        if declared.is_some_and(|len| len > max_body) {
            if !waits_to_send {
                drain(body, DRAIN_AFTER_REFUSAL).await;
            }
            return Err(too_large());
        }
        let mut body = std::pin::pin!(body);
        let mut buffer = bytes::BytesMut::new();
        let mut trailers: Option<http::HeaderMap> = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| HostError::BadBody(e.into().to_string()))?;
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    // Trailers reach the component as the client sent them.
                    if let Ok(more) = frame.into_trailers() {
                        held.take(more.iter().map(|(k, v)| k.as_str().len() + v.len()).sum())?;
                        trailers.get_or_insert_default().extend(more);
                    }
                    continue;
                }
            };
            if buffer.len() + data.len() > limit {
                drain(body, DRAIN_AFTER_REFUSAL).await;
                return Err(too_large());
            }
            held.take(data.len())?;
            buffer.extend_from_slice(&data);
        }
        Ok((buffer.freeze(), trailers))
    };
    let (bytes, trailers) = match timeout {
        Some(limit) => tokio::time::timeout(limit, read).await.map_err(|_| HostError::BodyTimeout(limit))??,
        None => read.await?,
    };
    if parts.uri.authority().is_none() && !parts.headers.contains_key(header::HOST) {
        parts.headers.insert(header::HOST, HeaderValue::from_static("localhost"));
    }
    Ok((http::Request::from_parts(parts, BufferedBody::new(bytes, trailers)), held))
}

/// Reads and drops up to `bound` bytes of what is left of `body`, for as
/// long as the client keeps sending (a pause of [`DRAIN_PAUSE`] ends it: a
/// client waiting for the answer before sending gets it at once).
async fn drain<B: http_body::Body<Data = Bytes>>(body: B, bound: usize) {
    let mut body = std::pin::pin!(body);
    let mut dropped = 0;
    while dropped < bound {
        match tokio::time::timeout(DRAIN_PAUSE, body.frame()).await {
            Ok(Some(Ok(frame))) => dropped += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
}

/// Whether `path` is one of the host's own (read-only) paths.
fn is_host_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/openapi.json" | "/docs") || path.starts_with("/docs/")
}

/// `/healthz`, `/readyz`, `/openapi.json` and the `/docs` page, answered by
/// the host itself.
async fn host_path(app: &App, path: &str) -> Option<Response> {
    match path {
        "/healthz" => Some(json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" }))),
        "/readyz" => {
            // Anonymous clients learn only whether the host is ready; the
            // details are the operator API's (`GET /readyz` there).
            let (ready, _) = readiness(app).await;
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            let word = if ready { "ready" } else { "not_ready" };
            Some(json_response(status, &serde_json::json!({ "status": word })))
        }
        "/openapi.json" => Some(json_response(StatusCode::OK, &crate::openapi::document(&app.runtime().snapshot()))),
        _ if path == "/docs" || path.starts_with("/docs/") => super::docs_page::answer(path),
        _ => None,
    }
}

/// Ready when the database answers and every component's queue can be read;
/// with the details per database and component.
pub(crate) async fn readiness(app: &App) -> (bool, serde_json::Value) {
    let mut ready = true;
    let database = match app.runtime().database().ping().await {
        Ok(()) => serde_json::json!({ "backend": app.runtime().database().kind(), "status": "ready" }),
        Err(e) => {
            ready = false;
            tracing::warn!(error = %e, "database not ready");
            serde_json::json!({ "backend": app.runtime().database().kind(), "status": "unavailable" })
        }
    };
    let snapshot = app.runtime().snapshot();
    let mut components = serde_json::Map::new();
    for component in snapshot.components() {
        let mut entry = serde_json::json!({ "status": "ready", "version": component.version() });
        if let Some(queue) = component.queue() {
            match queue.counts().await {
                Ok(counts) => {
                    entry["jobs"] =
                        counts.into_iter().map(|(s, n)| (s, n.into())).collect::<serde_json::Map<_, _>>().into()
                }
                Err(e) => {
                    ready = false;
                    tracing::warn!(component = %component.spec().name, error = %e, "queue not readable");
                    entry["status"] = "unavailable".into();
                }
            }
        }
        components.insert(component.spec().name.to_string(), entry);
    }
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database,
        "components": components,
    });
    (ready, body)
}
