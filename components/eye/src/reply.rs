//! HTTP answers: the shared SPEC §0 shapes from `wharf_guest::reply`, plus
//! the eye's own: not found, storage unavailable, and reading store values.

use wharf_guest::store::{self, Value};
use wstd::http::StatusCode;

pub(crate) use wharf_guest::reply::{Page, Reply, json_body, page, query_params};

/// 404 `not_found` for a `what` with `id`.
pub(crate) fn not_found(what: &str, id: &str) -> Reply {
    Reply::error(StatusCode::NOT_FOUND, "not_found", format!("No {what} has id `{id}`."))
}

/// 503 `storage_unavailable`, logging the store's error.
pub(crate) fn unavailable(error: store::Error) -> Reply {
    wharf_guest::error!("store failed: {error:?}");
    Reply::error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "The store is unavailable; retry shortly.")
}

pub(crate) fn count(sql: &str, args: &[Value]) -> Result<i64, store::Error> {
    let rows = store::query(sql, args)?;
    Ok(match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(n)) => *n,
        _ => 0,
    })
}

pub(crate) fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::Text(s)) => s.clone(),
        Some(Value::Integer(n)) => n.to_string(),
        _ => String::new(),
    }
}

pub(crate) fn integer(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Integer(n)) => *n,
        _ => 0,
    }
}
