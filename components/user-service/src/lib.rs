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
use fault_injection::simulator::Collection;
use serde::{Deserialize, Serialize};
use wharf_guest::reply::Reply;
use wharf_guest::store::{self, Value};
use wstd::http::{Body, Error, Request, Response, StatusCode};

/// The seeded users: the seed's `7c11e1ce2741` and its flaky `e6f24d7d1c7e`, and a few more.
const USERS: &str = include_str!("../data/users.json");

const COLLECTION: Collection = Collection { name: "users", one: "user", key: "id" };

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
    COLLECTION.serve(request, answer).await
}

/// The user after the configured delay, and how long that was.
async fn answer(id: &str) -> (Reply, u64) {
    let waited = faults::delay().await;
    (look_up(id), waited)
}

/// The user, after the injected faults have had their say.
fn look_up(id: &str) -> Reply {
    if let Some(failure) = COLLECTION.injected_failure() {
        return failure;
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
            Err(e) => return Reply::storage_unavailable(&e),
        }
    }
    COLLECTION.find(USERS, id, |user: &User| &user.id)
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
