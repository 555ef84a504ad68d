//! The operator API's routes. JSON in and out, errors in the SPEC §0 shape.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | the operator API is up |
//! | GET | `/components` | every component: version, load time, routes, grants, limits |
//! | GET | `/components/{name}` | one of them |
//! | POST | `/components/{name}/reload` | load it anew and swap it in |
//! | GET | `/components/{name}/jobs/dead` | its dead jobs (`?limit=&offset=`) |
//! | POST | `/components/{name}/jobs/{id}/retry` | run a dead job again |
//! | DELETE | `/components/{name}/jobs/{id}` | discard a dead job |
//! | GET | `/components/{name}/schedules` | its schedules, with their last and next runs |
//! | GET | `/schedules` | every component's schedules |
//! | GET | `/components/{name}/views` | the operator views it offers |
//! | GET | `/components/{name}/views/{view}` | one, answered by the component in-process |
//! | GET | `/metrics` | Prometheus text |

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::App;
use crate::server::error::{full, json_error, json_response};
use wharf_runtime::registry::LoadedComponent;
use wharf_runtime::reload::ReloadError;

type Response = http::Response<HyperOutgoingBody>;

/// Answers one operator request.
pub(super) async fn handle(
    app: &Arc<App>,
    token: Option<&str>,
    request: http::Request<hyper::body::Incoming>,
) -> Response {
    let request_id = crate::server::request_id::for_request(request.headers());
    let mut response = match authorized(token, request.headers()) {
        _ if from_a_web_page(token, request.headers()) => json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "The operator API does not answer web pages or hosts other than loopback.",
            &request_id,
        ),
        false => json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "The operator API needs `Authorization: Bearer TOKEN` (the host's --admin-token).",
            &request_id,
        ),
        true => route(app, request.method(), request.uri().path(), request.uri().query().unwrap_or_default())
            .await
            .unwrap_or_else(|(status, code, message)| json_error(status, code, &message, &request_id)),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(crate::server::request_id::HEADER, value);
    }
    response
}

/// Constant-time enough for a bearer token: compares every byte.
fn authorized(token: Option<&str>, headers: &http::HeaderMap) -> bool {
    let Some(expected) = token else { return true };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|given| {
        given.len() == expected.len() && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

/// Whether a request may come from a web page: browsers send `Origin` (or
/// `Sec-Fetch-Site`) on cross-site requests, and a page using DNS rebinding
/// names its own host. Without a token only loopback host names are taken,
/// so a page in the operator's browser can neither reload nor read.
fn from_a_web_page(token: Option<&str>, headers: &http::HeaderMap) -> bool {
    if headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site") {
        return true;
    }
    if token.is_some() {
        return false;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback
}

type Failure = (StatusCode, &'static str, String);

/// The state gauges of `/metrics`, read now: loaded versions, jobs by
/// status, hub clients by topic.
async fn gauges(app: &App) -> crate::metrics::Gauges {
    // One scrape at a time: concurrent scrapes must not multiply the
    // queries on the components' databases.
    static SCRAPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = SCRAPING.lock().await;
    let mut gauges = crate::metrics::Gauges::default();
    for component in app.runtime().snapshot().components() {
        let name = component.spec().name.to_string();
        gauges.loaded.push((name.clone(), component.version().to_owned()));
        let Some(queue) = component.queue() else { continue };
        match queue.counts().await {
            Ok(counts) => gauges.jobs.extend(counts.into_iter().map(|(status, n)| (name.clone(), status, n))),
            Err(e) => tracing::warn!(component = %name, error = %e, "metrics: cannot count jobs"),
        }
    }
    gauges.hub_clients = app.hub().client_counts();
    gauges
}

async fn route(app: &Arc<App>, method: &Method, path: &str, query: &str) -> Result<Response, Failure> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Ok(json_response(StatusCode::OK, &json!({ "status": "ok" }))),
        (&Method::GET, ["readyz"]) => {
            let (ready, details) = crate::server::dispatch::readiness(app).await;
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            Ok(json_response(status, &details))
        }
        (&Method::GET, ["metrics"]) => {
            let text = crate::metrics::global().render(&gauges(app).await);
            let mut response = http::Response::new(full(Bytes::from(text)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            Ok(response)
        }
        (&Method::GET, ["components"]) => {
            let snapshot = app.runtime().snapshot();
            let items: Vec<Value> = snapshot.components().map(|c| describe(c)).collect();
            Ok(json_response(StatusCode::OK, &json!({ "items": items, "total": items.len() })))
        }
        (&Method::GET, ["components", name]) => {
            Ok(json_response(StatusCode::OK, &describe(component(app, name)?.as_ref())))
        }
        (&Method::POST, ["components", name, "reload"]) => match app.runtime().reload(name).await {
            Ok(done) => Ok(json_response(StatusCode::OK, &json!(done))),
            Err(ReloadError::Unknown(name)) => {
                Err((StatusCode::NOT_FOUND, "not_found", format!("The manifest has no component `{name}`.")))
            }
            Err(error @ ReloadError::Refused(_)) => Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                "reload_refused",
                format!("The new version was refused and the previous one keeps serving: {error}"),
            )),
        },
        (&Method::GET, ["schedules"]) => {
            let mut items = Vec::new();
            for component in app.runtime().snapshot().components() {
                for schedule in schedules(component).await? {
                    let mut item = json!(schedule);
                    item["component"] = json!(component.name().as_str());
                    items.push(item);
                }
            }
            Ok(json_response(StatusCode::OK, &json!({ "items": items, "total": items.len() })))
        }
        (&Method::GET, ["components", name, "schedules"]) => {
            let component = component(app, name)?;
            let items = schedules(&component).await?;
            Ok(json_response(StatusCode::OK, &json!({ "items": items, "total": items.len() })))
        }
        (&Method::GET, ["components", name, "views"]) => {
            let component = component(app, name)?;
            let views: Vec<Value> = component
                .spec()
                .operator_views
                .keys()
                .map(|view| json!({ "name": view, "path": format!("/components/{name}/views/{view}") }))
                .collect();
            Ok(json_response(StatusCode::OK, &json!({ "items": views, "total": views.len() })))
        }
        (&Method::GET, ["components", name, "views", view]) => {
            let component = component(app, name)?;
            let Some(path) = component.spec().operator_views.get(*view) else {
                return Err((StatusCode::NOT_FOUND, "not_found", format!("Component `{name}` has no view `{view}`.")));
            };
            let target = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
            let (status, body) = crate::server::guest::get(component, &target)
                .await
                .map_err(|e| (e.status(), "view_failed", format!("The component could not answer the view: {e}")))?;
            let mut response = http::Response::new(full(body));
            *response.status_mut() = status;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(response)
        }
        (&Method::GET, ["components", name, "jobs", "dead"]) => {
            let component = component(app, name)?;
            let queue = queue(&component)?;
            let (limit, offset) = page(query)?;
            let (items, total) = queue.list_dead(limit, offset).await.map_err(unavailable)?;
            Ok(json_response(
                StatusCode::OK,
                &json!({ "items": items, "total": total, "limit": limit, "offset": offset }),
            ))
        }
        (&Method::POST, ["components", name, "jobs", id, "retry"]) => {
            let component = component(app, name)?;
            let id = job_id(id)?;
            match queue(&component)?.revive(id).await.map_err(unavailable)? {
                true => {
                    component.wake_workers();
                    Ok(json_response(StatusCode::OK, &json!({ "id": id, "status": "queued" })))
                }
                false => Err(no_dead_job(name, id)),
            }
        }
        (&Method::DELETE, ["components", name, "jobs", id]) => {
            let component = component(app, name)?;
            let id = job_id(id)?;
            match queue(&component)?.discard(id).await.map_err(unavailable)? {
                true => Ok(json_response(StatusCode::OK, &json!({ "id": id, "status": "discarded" }))),
                false => Err(no_dead_job(name, id)),
            }
        }
        (
            _,
            ["healthz" | "metrics" | "components" | "schedules"]
            | ["components", _]
            | ["components", _, "reload" | "schedules"],
        )
        | (_, ["components", _, "jobs" | "views", ..]) => {
            Err((StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("{method} is not allowed on `{path}`.")))
        }
        _ => Err((StatusCode::NOT_FOUND, "not_found", format!("The operator API serves nothing at `{path}`."))),
    }
}

fn component(app: &App, name: &str) -> Result<std::sync::Arc<LoadedComponent>, Failure> {
    let snapshot = app.runtime().snapshot();
    snapshot
        .component(name)
        .cloned()
        .ok_or_else(|| (StatusCode::NOT_FOUND, "not_found", format!("No component `{name}` is loaded.")))
}

fn queue(component: &LoadedComponent) -> Result<wharf_queue::Jobs<'_>, Failure> {
    component.queue().ok_or_else(|| {
        (StatusCode::NOT_FOUND, "not_found", format!("Component `{}` has no queue.", component.spec().name))
    })
}

async fn schedules(component: &LoadedComponent) -> Result<Vec<wharf_schedule::ScheduleStatus>, Failure> {
    wharf_schedule::status(component).await.map_err(|error| {
        tracing::warn!(%error, "operator API: database error");
        (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "The database is unavailable; retry shortly.".into())
    })
}

fn job_id(text: &str) -> Result<i64, Failure> {
    text.parse().map_err(|_| (StatusCode::BAD_REQUEST, "invalid_fields", format!("`{text}` is not a job id.")))
}

fn no_dead_job(component: &str, id: i64) -> Failure {
    (StatusCode::NOT_FOUND, "not_found", format!("Component `{component}` has no dead job {id}."))
}

fn unavailable(error: wharf_queue::QueueError) -> Failure {
    tracing::warn!(%error, "operator API: database error");
    (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "The database is unavailable; retry shortly.".into())
}

/// `?limit=` (default 50, at most 500) and `?offset=`.
fn page(query: &str) -> Result<(i64, i64), Failure> {
    let mut limit = 50;
    let mut offset = 0;
    for (key, value) in query.split('&').filter_map(|pair| pair.split_once('=')) {
        let parsed = value.parse::<i64>().ok().filter(|n| *n >= 0);
        let bad = || (StatusCode::BAD_REQUEST, "invalid_fields", format!("`{key}` must be a non-negative integer."));
        match key {
            "limit" => limit = parsed.ok_or_else(bad)?.min(500),
            "offset" => offset = parsed.ok_or_else(bad)?,
            _ => {}
        }
    }
    Ok((limit, offset))
}

/// What operators see of a loaded component.
fn describe(component: &LoadedComponent) -> Value {
    let spec = component.spec();
    let routes: Vec<Value> = spec
        .routes
        .iter()
        .map(|r| {
            json!({
                "path": r.pattern.to_string(),
                "methods": r.methods.as_ref().map(|m| m.iter().map(Method::as_str).collect::<Vec<_>>()),
                "max_body": r.max_body,
            })
        })
        .collect();
    let loaded_at: chrono::DateTime<chrono::Utc> = component.loaded_at().into();
    let max = spec.limits.max_instances as usize;
    json!({
        "name": spec.name.as_str(),
        "version": component.version(),
        "loaded_at": loaded_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "compile": component.compile().as_str(),
        "wasm": spec.wasm.display().to_string(),
        "crate": spec.source_crate,
        "routes": routes,
        "grants": {
            "interfaces": spec.grants.interfaces.iter().map(|i| i.name()).collect::<Vec<_>>(),
            "outbound": spec.grants.outbound.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "files": spec.grants.files.iter().map(|f| json!({ "path": f.guest, "dir": f.host.display().to_string() })).collect::<Vec<_>>(),
        },
        "limits": {
            "deadline_ms": u64::try_from(spec.limits.deadline.as_millis()).unwrap_or(u64::MAX),
            "memory": spec.limits.memory,
            "max_instances": max,
            "max_body": spec.limits.max_body,
        },
        "wasi": if component.is_p3() { "p3" } else { "p2" },
        "reuse": spec.reuse.map(|r| json!({
            "max_requests": r.max_requests,
            "max_concurrent": r.max_concurrent,
            "idle_ms": u64::try_from(r.idle.as_millis()).unwrap_or(u64::MAX),
        })),
        "instances_running": component.instances_running(),
        "instances_idle": component.instance_pool().map_or(0, |pool| pool.idle_instances()),
        "handles_jobs": component.handles_jobs(),
        "schedules": spec.schedules.iter().map(|s| json!({ "name": s.name, "cron": s.cron.as_str() })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_must_match_exactly() {
        let mut headers = http::HeaderMap::new();
        assert!(authorized(None, &headers), "no token configured: open (loopback only)");
        assert!(!authorized(Some("s3cret"), &headers));
        headers.insert(header::AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(!authorized(Some("s3cret"), &headers));
        headers.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorized(Some("s3cret"), &headers));
        headers.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(!authorized(Some("s3cret"), &headers));
    }

    #[test]
    fn web_pages_and_foreign_hosts_are_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        assert!(!from_a_web_page(None, &headers(&[("host", "127.0.0.1:9090")])));
        assert!(!from_a_web_page(None, &headers(&[("host", "[::1]:9090")])));
        assert!(!from_a_web_page(None, &headers(&[("host", "localhost")])));
        assert!(from_a_web_page(None, &headers(&[("host", "evil.example:9090")])), "DNS rebinding");
        assert!(from_a_web_page(None, &headers(&[("host", "127.0.0.1:9090"), ("origin", "http://evil.example")])));
        assert!(!from_a_web_page(Some("t"), &headers(&[("host", "ops.example.com")])), "with a token, any host");
    }

    #[test]
    fn pages_are_clamped_and_checked() {
        assert_eq!(page("").unwrap(), (50, 0));
        assert_eq!(page("limit=900&offset=3").unwrap(), (500, 3));
        assert_eq!(page("limit=-1").unwrap_err().0, StatusCode::BAD_REQUEST);
    }
}
