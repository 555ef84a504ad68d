//! `eye`: event tracking (SPEC §2). Sessions are created directly; events
//! are accepted at once (202) and validated by a durable job, which creates
//! the event or records an error, exactly once per accepted request.

mod events;
pub mod fuzzing;
// The job handler is exported only in the component (see `main`).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod jobs;
mod rows;
mod sessions;
mod time;

use wharf_guest::reply::Reply;
use wharf_guest::request::{self, Incoming, Options};
use wstd::http::{Body, Error, Request, Response, StatusCode};

// The export exists only in the component; the native rlib (for the fuzz
// targets) has none, since a native link cannot name `wasi:http/…#handle`.
#[cfg_attr(target_arch = "wasm32", wstd::http_server)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    request::serve(request, Options::new(), async |call| Ok(route(call))).await
}

fn route(call: &Incoming) -> Reply {
    let (method, path, query, body) = (call.method.as_str(), call.path.trim_end_matches('/'), &call.query, &call.body);
    let segments: Vec<&str> = path.trim_start_matches("/eye").split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        ("POST", ["sessions"]) => sessions::create(body),
        ("GET", ["sessions"]) => sessions::list(query),
        ("GET", ["sessions", id]) => sessions::get(id),
        ("POST", ["events"]) => events::accept(body),
        ("GET", ["events"]) => events::list(query),
        ("GET", ["events", id]) => events::get(id),
        ("PUT", ["events", id]) => events::update(id, body, false),
        ("PATCH", ["events", id]) => events::update(id, body, true),
        ("DELETE", ["events", id]) => events::delete(id),
        ("GET", ["errors"]) => events::list_errors(query),
        ("GET", ["errors", id]) => events::get_error(id),
        ("GET", ["jobs", id]) => jobs::status(id),
        // The eye's 405 says "here", not the path.
        (_, segments) => match allowed(segments) {
            Some(allow) => Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed here; use {allow}."),
            )
            .with_header("allow", allow),
            None => Reply::no_route(path),
        },
    }
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
