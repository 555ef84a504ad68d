//! `user-service`: a simulator of the users API the order rules call
//! (SPEC §5). `GET /users/{id}` answers `{id, firstName, lastName}` from a
//! small seeded list (`data/users.json`, embedded), or 404.
//!
//! Faults, from config (docs/orders.md): a delay (`delay_ms`, or
//! `delay_min_ms`/`delay_max_ms`), a failure rate (`failure_rate`, 0 to 1,
//! answered 503), and `flaky_user_id`, the seed's "fails every other call"
//! user: its calls answer 500, 200, 500, 200, … Each request runs in a fresh
//! instance, so the alternation is counted in the store (`flaky_calls`), the
//! one place state outlives a request.

use fault_injection as faults;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use wharf_guest::reply::Reply;
use wharf_guest::store::{self, Value};
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

/// The seeded users: the seed's `7c11e1ce2741` and its flaky `e6f24d7d1c7e`, and a few more.
const USERS: &str = include_str!("../data/users.json");

#[derive(Deserialize, Serialize)]
struct User {
    id: String,
    #[serde(rename = "firstName")]
    first_name: String,
    #[serde(rename = "lastName")]
    last_name: String,
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let request_id = wharf_guest::request::request_id(&request);
    let reply = handle(&request).await;
    // Never cached by a caller (the host caches outbound GETs), so every
    // call sees the next injected fault.
    reply.with_header("cache-control", "no-store").into_response(&request_id)
}

async fn handle(request: &Request<Body>) -> Reply {
    let method = request.method();
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed here; the users API is read-only (GET or HEAD)."),
        );
    }
    let path = request.uri().path();
    let Some(id) = user_id(path) else {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("Nothing is served at `{path}`; ask for `/users/{{id}}`."),
        );
    };
    let waited = faults::delay().await;
    let reply = look_up(&id);
    wharf_guest::info!("answered GET /users/{id} with {} after a {waited} ms delay", reply.status().as_u16());
    reply
}

/// The (percent-decoded) id of `/users/{id}`, if that is what `path` asks for.
fn user_id(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/users/")?;
    let id = rest.strip_suffix('/').unwrap_or(rest);
    (!id.is_empty() && !id.contains('/')).then(|| percent_decode_str(id).decode_utf8_lossy().into_owned())
}

/// The user, after the injected faults have had their say.
fn look_up(id: &str) -> Reply {
    if faults::injected_failure() {
        return Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected_failure",
            "The users API failed on purpose (config `failure_rate`); retry.",
        );
    }
    if wharf_guest::config::get("flaky_user_id").is_some_and(|flaky| flaky.trim() == id) {
        match count_flaky_call(id) {
            Ok(call) if call % 2 == 1 => {
                return Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "injected_failure",
                    format!(
                        "User `{id}` fails every other call (config `flaky_user_id`); this was call {call}, retry."
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => {
                wharf_guest::error!("could not count the flaky user's calls: {e:?}");
                return Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "The store is unavailable; retry shortly.",
                );
            }
        }
    }
    let users: Vec<User> = match serde_json::from_str(USERS) {
        Ok(users) => users,
        Err(e) => {
            wharf_guest::error!("the embedded users are not valid: {e}");
            return Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "data_unavailable",
                "The users could not be loaded.",
            );
        }
    };
    match users.into_iter().find(|user| user.id == id) {
        Some(user) => match serde_json::to_value(user) {
            Ok(body) => Reply::ok(body),
            Err(e) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", format!("{e}")),
        },
        None => Reply::error(StatusCode::NOT_FOUND, "user_not_found", format!("No user has id `{id}`.")),
    }
}

/// Counts one more call for the flaky user and returns its number (1 for the
/// first). One statement, so concurrent calls each get their own number.
fn count_flaky_call(id: &str) -> Result<i64, store::Error> {
    let rows = store::query(
        "INSERT INTO flaky_calls (user_id, calls) VALUES ($1, 1)
         ON CONFLICT (user_id) DO UPDATE SET calls = flaky_calls.calls + 1 RETURNING calls",
        &[Value::Text(id.to_owned())],
    )?;
    Ok(match rows.rows.first().and_then(|row| row.first()) {
        Some(Value::Integer(calls)) => *calls,
        _ => 1,
    })
}
