//! Sessions: `POST /eye/sessions/`, `GET /eye/sessions/`, `GET /eye/sessions/{id}`.

use serde_json::{Map, Value as Json, json};
use wharf_guest::store::{self, Value};
use wstd::http::StatusCode;

use wharf_guest::reply::{self, Reply};

use crate::rows::{self, integer, text};

const SELECT: &str = "SELECT s.id, s.created_at, (SELECT COUNT(*) FROM events e WHERE e.session_id = s.id) AS event_count FROM sessions s";

fn to_json(row: &[Value]) -> Json {
    json!({"id": text(row.first()), "created_at": text(row.get(1)), "event_count": integer(row.get(2))})
}

pub(crate) fn create(body: &[u8]) -> Reply {
    if !body.iter().all(u8::is_ascii_whitespace) {
        match reply::json_body(body) {
            Ok(Json::Object(_)) => {}
            Ok(_) => {
                return Reply::error(StatusCode::BAD_REQUEST, "invalid_json", "Send an empty body or a JSON object.");
            }
            Err(reply) => return reply,
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let created_at = crate::time::now_text();
    match store::execute(
        "INSERT INTO sessions (id, created_at) VALUES ($1, $2)",
        &[Value::Text(id.clone()), Value::Text(created_at.clone())],
    ) {
        Ok(_) => Reply::json(StatusCode::CREATED, json!({"id": id, "created_at": created_at, "event_count": 0})),
        Err(e) => Reply::storage_unavailable(&e),
    }
}

pub(crate) fn list(query: &str) -> Reply {
    let params = reply::query_params(query);
    let mut bad = Map::new();
    let page = reply::page(&params, &mut bad);
    if !bad.is_empty() {
        return Reply::invalid_fields(bad);
    }
    let total = match rows::count("SELECT COUNT(*) FROM sessions", &[]) {
        Ok(n) => n,
        Err(e) => return Reply::storage_unavailable(&e),
    };
    match store::query(
        &format!("{SELECT} ORDER BY s.seq DESC LIMIT $1 OFFSET $2"),
        &[Value::Integer(page.limit), Value::Integer(page.offset)],
    ) {
        Ok(rows) => {
            let items: Vec<Json> = rows.rows.iter().map(|r| to_json(r)).collect();
            page.list(items, total)
        }
        Err(e) => Reply::storage_unavailable(&e),
    }
}

pub(crate) fn get(id: &str) -> Reply {
    match store::query(&format!("{SELECT} WHERE s.id = $1"), &[Value::Text(id.to_owned())]) {
        Ok(rows) => match rows.rows.first() {
            Some(row) => Reply::json(StatusCode::OK, to_json(row)),
            None => Reply::no_such("session", id),
        },
        Err(e) => Reply::storage_unavailable(&e),
    }
}

/// Whether the session exists.
pub(crate) fn exists(id: &str) -> Result<bool, store::Error> {
    Ok(!store::query("SELECT 1 FROM sessions WHERE id = $1", &[Value::Text(id.to_owned())])?.rows.is_empty())
}
