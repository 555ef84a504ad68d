//! The request path, top to bottom: accept (request id, span) → host paths →
//! route → read the body under its cap → run the component → respond with
//! `x-request-id` and `x-wharf-component`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tracing::{Instrument, field};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::error::{HostError, json_response};
use super::{guest, request_id};
use crate::Host;
use crate::manifest::ComponentName;
use crate::metrics;
use crate::registry::Snapshot;
use crate::router::RouteMatch;

type Response = http::Response<HyperOutgoingBody>;

/// Answers one HTTP request. Never fails: every error becomes a JSON response.
pub(super) async fn handle(host: Arc<Host>, request: http::Request<Incoming>) -> Response {
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
        let mut response = match answer(&host, request, &request_id, &mut routed).await {
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
    host: &Arc<Host>,
    request: http::Request<Incoming>,
    request_id: &str,
    routed: &mut Routed,
) -> Result<Response, HostError> {
    if let Some(response) = host_path(host, request.uri().path()).await {
        return Ok(response);
    }
    let snapshot = host.registry.snapshot();
    if let Some(endpoint) = snapshot.websockets.iter().find(|w| w.path == request.uri().path()) {
        return Ok(super::websocket::accept(host.clone(), endpoint.clone(), request, request_id));
    }
    serve_routed(&snapshot, request, request_id, Via::Client, routed).await
}

/// How a request reached the component router.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via<'a> {
    /// A client, over TCP.
    Client,
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
    let (component, (max_body, too_large_code)) = match snapshot.routes.route(request.method(), request.uri().path()) {
        RouteMatch::Component { component, .. } if matches!(via, Via::InProcess { target, .. } if target != component.as_str()) =>
        {
            return Err(not_found());
        }
        RouteMatch::Component { component, max_body, too_large_code, route } => {
            routed.component = Some(component.clone());
            routed.route = route.to_string();
            tracing::Span::current().record("route", routed.route.as_str());
            (component, (max_body, too_large_code))
        }
        RouteMatch::MethodNotAllowed { allowed } => return Err(HostError::MethodNotAllowed { allowed }),
        RouteMatch::NotFound => return Err(not_found()),
    };
    let Some(component) = snapshot.components.get(component).cloned() else {
        return Err(not_found());
    };
    tracing::Span::current().record("component", component.spec.name.as_str());

    let too_large = || HostError::BodyTooLarge { limit: max_body, code: too_large_code.map(str::to_owned) };
    let mut request = read_body(request, max_body, too_large).await?;
    // Components put the host's request id in their own error bodies.
    if let Ok(value) = HeaderValue::from_str(request_id) {
        request.headers_mut().insert(request_id::HEADER, value);
    }
    let label = component.label();
    let depth = match via {
        Via::Client => 0,
        Via::InProcess { depth, .. } => depth,
    };
    let mut response = guest::serve(component, request, depth).await?;
    if let Ok(value) = HeaderValue::from_str(&label) {
        response.headers_mut().insert("x-wharf-component", value);
    }
    Ok(response)
}

/// Buffers the body, refusing it as soon as it passes `max_body` (up front
/// when `Content-Length` already says so). Also makes sure the request has
/// the authority wasi:http requires.
async fn read_body<B>(
    request: http::Request<B>,
    max_body: u64,
    too_large: impl Fn() -> HostError,
) -> Result<http::Request<Full<Bytes>>, HostError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body) {
        return Err(too_large());
    }
    let (mut parts, body) = request.into_parts();
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(too_large());
        }
        Err(e) => return Err(HostError::BadBody(e.to_string())),
    };
    if parts.uri.authority().is_none() && !parts.headers.contains_key(header::HOST) {
        parts.headers.insert(header::HOST, HeaderValue::from_static("localhost"));
    }
    Ok(http::Request::from_parts(parts, Full::new(bytes)))
}

/// `/healthz`, `/readyz`, `/openapi.json` and the `/docs` page, answered by
/// the host itself.
async fn host_path(host: &Host, path: &str) -> Option<Response> {
    match path {
        "/healthz" => Some(json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" }))),
        "/readyz" => Some(readiness(host).await),
        "/openapi.json" => Some(json_response(StatusCode::OK, &crate::openapi::document(&host.registry.snapshot()))),
        _ if path == "/docs" || path.starts_with("/docs/") => super::docs_page::answer(path),
        _ => None,
    }
}

/// Ready when the database answers and every component's queue can be read.
async fn readiness(host: &Host) -> Response {
    let mut ready = true;
    let database = match host.loader.database().ping().await {
        Ok(()) => serde_json::json!({ "backend": host.loader.database().kind(), "status": "ready" }),
        Err(e) => {
            ready = false;
            tracing::warn!(error = %e, "database not ready");
            serde_json::json!({ "backend": host.loader.database().kind(), "status": "unavailable" })
        }
    };
    let snapshot = host.registry.snapshot();
    let mut components = serde_json::Map::new();
    for component in snapshot.components.values() {
        let mut entry = serde_json::json!({ "status": "ready", "version": component.version });
        if let Some(db) = &component.db {
            match crate::queue::jobs::counts(db).await {
                Ok(counts) => entry["jobs"] = counts.into_iter().collect::<serde_json::Map<_, _>>().into(),
                Err(e) => {
                    ready = false;
                    tracing::warn!(component = %component.spec.name, error = %e, "queue not readable");
                    entry["status"] = "unavailable".into();
                }
            }
        }
        components.insert(component.spec.name.to_string(), entry);
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database,
        "components": components,
    });
    json_response(status, &body)
}
