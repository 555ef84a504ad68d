//! Events and errors: accept (202 + job), list with filters, get, PUT/PATCH
//! (validated synchronously, under a row lock), DELETE; errors list/get.

use serde_json::{Map, Value as Json, json};
use wharf_guest::queue::{self, EnqueueOptions};
use wharf_guest::store::{self, Value};
use wstd::http::StatusCode;

use wharf_guest::reply::{self, Reply};

use crate::rows::{self, integer, text};
use crate::{jobs, sessions, time};

/// Clock skew allowed for timestamps "in the future".
pub(crate) const SKEW_US: i64 = 5_000_000;
const SELECT: &str = "SELECT id, session_id, category, name, data, ts_us, created_at FROM events";

/// Validated event fields (all set for a full event; a PATCH sets some).
#[derive(Default)]
pub(crate) struct Fields {
    pub(crate) session: Option<String>,
    pub(crate) category: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) data: Option<Json>,
    pub(crate) ts_us: Option<i64>,
}

/// Checks the fields of `object`; with `partial`, absent fields are fine
/// (but at least one must be given). `Err` maps each bad field to why.
pub(crate) fn validate(object: &Map<String, Json>, partial: bool) -> Result<Fields, Map<String, Json>> {
    validate_with(object, partial, sessions::exists)
}

/// [`validate`], asking `session_exists` whether a session is stored (the
/// fuzz target answers without a store).
pub(crate) fn validate_with(
    object: &Map<String, Json>,
    partial: bool,
    session_exists: impl Fn(&str) -> Result<bool, store::Error>,
) -> Result<Fields, Map<String, Json>> {
    let mut bad = Map::new();
    let mut fields = Fields::default();
    let present = |key: &str| object.contains_key(key);
    if !partial || present("session") {
        let id = match object.get("session") {
            Some(Json::Object(s)) => s.get("id").and_then(Json::as_str).map(str::to_owned),
            Some(Json::String(s)) => Some(s.clone()),
            _ => None,
        };
        match id {
            None => {
                bad.insert("session".into(), "must be {\"id\": \"<session uuid>\"}".into());
            }
            Some(id) => match session_exists(&id) {
                Ok(true) => fields.session = Some(id),
                Ok(false) => {
                    bad.insert("session".into(), format!("session `{id}` does not exist").into());
                }
                Err(e) => {
                    bad.insert("session".into(), format!("could not be checked: {e:?}").into());
                }
            },
        }
    }
    for (key, slot) in [("category", &mut fields.category), ("name", &mut fields.name)] {
        if !partial || present(key) {
            match object.get(key).and_then(Json::as_str).filter(|s| !s.trim().is_empty()) {
                Some(value) => *slot = Some(value.to_owned()),
                None => {
                    bad.insert(key.into(), "must be a non-empty string".into());
                }
            }
        }
    }
    if !partial || present("data") {
        match object.get("data") {
            Some(Json::Object(map)) if !map.is_empty() => fields.data = object.get("data").cloned(),
            _ => {
                bad.insert("data".into(), "must be a non-empty JSON object".into());
            }
        }
    }
    if !partial || present("timestamp") {
        match object.get("timestamp").and_then(Json::as_str).map(time::parse) {
            Some(Some(us)) if us <= time::now() + SKEW_US => fields.ts_us = Some(us),
            Some(Some(_)) => {
                bad.insert("timestamp".into(), "must not be in the future".into());
            }
            _ => {
                bad.insert("timestamp".into(), "must be RFC 3339 or `YYYY-MM-DD HH:MM:SS` (UTC)".into());
            }
        }
    }
    if partial && ["session", "category", "name", "data", "timestamp"].iter().all(|k| !present(k)) {
        bad.insert("_".into(), "give at least one of session, category, name, data, timestamp".into());
    }
    if bad.is_empty() { Ok(fields) } else { Err(bad) }
}

fn to_json(row: &[Value]) -> Json {
    json!({
        "id": integer(row.first()),
        "session": {"id": text(row.get(1))},
        "category": text(row.get(2)),
        "name": text(row.get(3)),
        "data": serde_json::from_str::<Json>(&text(row.get(4))).unwrap_or(Json::Null),
        "timestamp": time::format(integer(row.get(5))),
        "created_at": text(row.get(6)),
    })
}

/// `POST /eye/events/`: only checks for a JSON object, then queues it.
pub(crate) fn accept(body: &[u8]) -> Reply {
    if let Err(reply) = reply::object(body) {
        return reply;
    }
    let payload = String::from_utf8_lossy(body);
    let options = EnqueueOptions { delay_ms: None, max_attempts: None, idempotency_key: None };
    match queue::enqueue(jobs::QUEUE, &payload, &options) {
        Ok(job_id) => Reply::json(
            StatusCode::ACCEPTED,
            json!({
                "status": "accepted",
                "job_id": job_id,
                "message": format!("The event will be validated and created shortly; see /eye/jobs/{job_id}."),
            }),
        ),
        Err(e) => {
            wharf_guest::error!("enqueue failed: {e:?}");
            Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                "The event could not be accepted; retry shortly.",
            )
        }
    }
}

/// `GET /eye/events/`: filters, ordered by timestamp then id.
pub(crate) fn list(query: &str) -> Reply {
    let params = reply::query_params(query);
    let mut bad = Map::new();
    let page = reply::page(&params, &mut bad);
    let mut filters = Vec::new();
    let mut args = Vec::new();
    // An empty filter is no filter, as in the seed's django-filter.
    let given = |key: &str| params.get(key).and_then(Json::as_str).filter(|v| !v.is_empty());
    for (key, column) in [("session", "session_id"), ("category", "category"), ("name", "name")] {
        if let Some(v) = given(key) {
            let v = match key {
                // Only the hyphenated form, as the document's `format: uuid` says.
                "session" => match uuid::Uuid::try_parse(v).ok().filter(|_| v.len() == 36) {
                    Some(id) => id.hyphenated().to_string(),
                    None => {
                        bad.insert(key.into(), "must be a session id (a UUID)".into());
                        continue;
                    }
                },
                _ => v.to_owned(),
            };
            args.push(Value::Text(v));
            filters.push(format!("{column} = ${}", args.len()));
        }
    }
    for (key, op) in [("timestamp__gte", ">="), ("timestamp__lte", "<=")] {
        if let Some(v) = given(key) {
            match time::parse(v) {
                Some(us) => {
                    args.push(Value::Integer(us));
                    filters.push(format!("ts_us {op} ${}", args.len()));
                }
                None => {
                    bad.insert(key.into(), "must be RFC 3339 or `YYYY-MM-DD HH:MM:SS`".into());
                }
            }
        }
    }
    if !bad.is_empty() {
        return Reply::invalid_fields(bad);
    }
    let filter = if filters.is_empty() { String::new() } else { format!("WHERE {}", filters.join(" AND ")) };
    let total = match rows::count(&format!("SELECT COUNT(*) FROM events {filter}"), &args) {
        Ok(n) => n,
        Err(e) => return Reply::storage_unavailable(&e),
    };
    let n = args.len();
    args.push(Value::Integer(page.limit));
    args.push(Value::Integer(page.offset));
    let sql = format!("{SELECT} {filter} ORDER BY ts_us, id LIMIT ${} OFFSET ${}", n + 1, n + 2);
    match store::query(&sql, &args) {
        Ok(rows) => {
            let items: Vec<Json> = rows.rows.iter().map(|r| to_json(r)).collect();
            page.list(items, total)
        }
        Err(e) => Reply::storage_unavailable(&e),
    }
}

fn parse_id(id: &str) -> Option<i64> {
    id.parse::<i64>().ok()
}

fn fetch(id: i64) -> Result<Option<Vec<Value>>, store::Error> {
    Ok(store::query(&format!("{SELECT} WHERE id = $1"), &[Value::Integer(id)])?.rows.into_iter().next())
}

pub(crate) fn get(id: &str) -> Reply {
    let Some(n) = parse_id(id) else { return Reply::no_such("event", id) };
    match fetch(n) {
        Ok(Some(row)) => Reply::json(StatusCode::OK, to_json(&row)),
        Ok(None) => Reply::no_such("event", id),
        Err(e) => Reply::storage_unavailable(&e),
    }
}

/// `PUT` (every field) and `PATCH` (the fields given; `data` is replaced).
/// The row is locked for the read-merge-write, so concurrent writers to
/// one event never lose each other's updates.
pub(crate) fn update(id: &str, body: &[u8], partial: bool) -> Reply {
    let Some(n) = parse_id(id) else { return Reply::no_such("event", id) };
    let object = match reply::object(body) {
        Ok(object) => object,
        Err(reply) => return reply,
    };
    let fields = match validate(&object, partial) {
        Ok(fields) => fields,
        Err(bad) => return Reply::invalid_fields(bad),
    };
    if let Err(e) = store::begin() {
        return Reply::storage_unavailable(&e);
    }
    let result = (|| {
        // A no-op UPDATE takes the row's write lock on both backends
        // (PostgreSQL: row lock; SQLite: the database write lock).
        let locked = store::execute("UPDATE events SET id = id WHERE id = $1", &[Value::Integer(n)])?;
        if locked.rows_affected == 0 {
            return Ok(None);
        }
        let Some(current) = fetch(n)? else { return Ok(None) };
        let merged = [
            fields.session.clone().map_or_else(|| current[1].clone(), Value::Text),
            fields.category.clone().map_or_else(|| current[2].clone(), Value::Text),
            fields.name.clone().map_or_else(|| current[3].clone(), Value::Text),
            fields.data.as_ref().map_or_else(|| current[4].clone(), |d| Value::Text(d.to_string())),
            fields.ts_us.map_or_else(|| current[5].clone(), Value::Integer),
        ];
        let mut args = merged.to_vec();
        args.push(Value::Integer(n));
        store::execute(
            "UPDATE events SET session_id = $1, category = $2, name = $3, data = $4, ts_us = $5 WHERE id = $6",
            &args,
        )?;
        let row = fetch(n)?;
        store::commit()?;
        Ok(row)
    })();
    match result {
        Ok(Some(row)) => Reply::json(StatusCode::OK, to_json(&row)),
        Ok(None) => {
            let _ = store::rollback();
            Reply::no_such("event", id)
        }
        Err(e) => {
            let _ = store::rollback();
            Reply::storage_unavailable(&e)
        }
    }
}

pub(crate) fn delete(id: &str) -> Reply {
    let Some(n) = parse_id(id) else { return Reply::no_such("event", id) };
    match store::execute("DELETE FROM events WHERE id = $1", &[Value::Integer(n)]) {
        Ok(done) if done.rows_affected == 1 => Reply::empty(StatusCode::NO_CONTENT),
        Ok(_) => Reply::no_such("event", id),
        Err(e) => Reply::storage_unavailable(&e),
    }
}

fn error_json(row: &[Value]) -> Json {
    let payload = text(row.get(1));
    json!({
        "id": integer(row.first()),
        "payload": serde_json::from_str::<Json>(&payload).unwrap_or(Json::String(payload)),
        "reason": text(row.get(2)),
        "created_at": text(row.get(3)),
    })
}

pub(crate) fn list_errors(query: &str) -> Reply {
    let params = reply::query_params(query);
    let mut bad = Map::new();
    let page = reply::page(&params, &mut bad);
    if !bad.is_empty() {
        return Reply::invalid_fields(bad);
    }
    let total = match rows::count("SELECT COUNT(*) FROM errors", &[]) {
        Ok(n) => n,
        Err(e) => return Reply::storage_unavailable(&e),
    };
    let sql = "SELECT id, payload, reason, created_at FROM errors ORDER BY id DESC LIMIT $1 OFFSET $2";
    match store::query(sql, &[Value::Integer(page.limit), Value::Integer(page.offset)]) {
        Ok(rows) => {
            let items: Vec<Json> = rows.rows.iter().map(|r| error_json(r)).collect();
            page.list(items, total)
        }
        Err(e) => Reply::storage_unavailable(&e),
    }
}

pub(crate) fn get_error(id: &str) -> Reply {
    let Some(n) = parse_id(id) else { return Reply::no_such("error", id) };
    match store::query("SELECT id, payload, reason, created_at FROM errors WHERE id = $1", &[Value::Integer(n)]) {
        Ok(rows) => match rows.rows.first() {
            Some(row) => Reply::json(StatusCode::OK, error_json(row)),
            None => Reply::no_such("error", id),
        },
        Err(e) => Reply::storage_unavailable(&e),
    }
}
