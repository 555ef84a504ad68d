//! `eye`: event tracking (SPEC §2). Sessions are created directly; events
//! are accepted at once (202) and validated by a durable job, which creates
//! the event or records an error, exactly once per accepted request.

mod events;
pub mod fuzzing;
// The job handler is exported only in the component (see `main`).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod jobs;
mod reply;
mod sessions;
mod time;

use reply::Reply;
use wstd::http::{Body, Error, Request, Response, StatusCode};

// The export exists only in the component; the native rlib (for the fuzz
// targets) has none, since a native link cannot name `wasi:http/…#handle`.
#[cfg_attr(target_arch = "wasm32", wstd::http_server)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let body = if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        match request.body_mut().contents().await {
            Ok(bytes) => bytes.to_vec(),
            Err(_) => {
                return Reply::error(StatusCode::BAD_REQUEST, "invalid_body", "The body could not be read.")
                    .into_response(&request_id);
            }
        }
    } else {
        Vec::new()
    };
    let segments: Vec<&str> = path.trim_start_matches("/eye").split('/').filter(|s| !s.is_empty()).collect();
    let reply = match (method.as_str(), segments.as_slice()) {
        ("POST", ["sessions"]) => sessions::create(&body),
        ("GET", ["sessions"]) => sessions::list(&query),
        ("GET", ["sessions", id]) => sessions::get(id),
        ("POST", ["events"]) => events::accept(&body),
        ("GET", ["events"]) => events::list(&query),
        ("GET", ["events", id]) => events::get(id),
        ("PUT", ["events", id]) => events::update(id, &body, false),
        ("PATCH", ["events", id]) => events::update(id, &body, true),
        ("DELETE", ["events", id]) => events::delete(id),
        ("GET", ["errors"]) => events::list_errors(&query),
        ("GET", ["errors", id]) => events::get_error(id),
        ("GET", ["jobs", id]) => jobs::status(id),
        (_, segments) if allowed(segments).is_some() => {
            let allow = allowed(segments).unwrap_or_default();
            Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed here; use {allow}."),
            )
            .with_header("allow", allow)
        }
        _ => Reply::error(StatusCode::NOT_FOUND, "not_found", format!("Nothing is served at `{path}`.")),
    };
    reply.into_response(&request_id)
}

/// The methods a known path accepts, for 405's `Allow`.
fn allowed(segments: &[&str]) -> Option<&'static str> {
    match segments {
        ["sessions"] | ["events"] => Some("GET, POST"),
        ["sessions", _] | ["errors"] | ["errors", _] | ["jobs", _] => Some("GET"),
        ["events", _] => Some("GET, PUT, PATCH, DELETE"),
        _ => None,
    }
}

#[cfg(target_arch = "wasm32")]
struct Worker;

#[cfg(target_arch = "wasm32")]
impl wharf_guest::job_handler::Guest for Worker {
    fn handle(job: wharf_guest::job_handler::Job) -> Result<(), String> {
        jobs::validate_and_create(job.id, &job.payload)
    }
}

#[cfg(target_arch = "wasm32")]
wharf_guest::export_job_handler!(Worker);
