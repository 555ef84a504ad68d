//! Events: parsing a batch (all or nothing), storing new ones in one
//! transaction, publishing them in batch order, and the read endpoints.

use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use wharf_guest::reply;
use wharf_guest::store::{self, Value};
use wstd::http::StatusCode;

use crate::http::Reply;

const COLUMNS: &str = "id, message_id, event, email, subject, ts, received_at, payload";

/// An event ready to store.
pub(crate) struct Event {
    id: String,
    message_id: Option<String>,
    event: String,
    email: Option<String>,
    subject: Option<String>,
    ts: i64,
    payload: String,
}

impl Event {
    /// The stable id: a hash of the event's canonical JSON.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }
}

/// Parses every element, or reports the first bad one (index, reason).
pub(crate) fn parse_batch(batch: Vec<Json>) -> Result<Vec<Event>, (usize, String)> {
    batch.into_iter().enumerate().map(|(i, e)| parse(e).map_err(|reason| (i, reason))).collect()
}

fn parse(value: Json) -> Result<Event, String> {
    let Json::Object(object) = &value else { return Err("it is not a JSON object".into()) };
    let text = |v: Option<&Json>| v.and_then(Json::as_str).map(str::to_owned);
    let event = match (object.get("event").and_then(Json::as_str), object.get("type").and_then(Json::as_str)) {
        (Some(event), _) if !event.is_empty() => event.to_owned(),
        (_, Some(kind)) if !kind.is_empty() => format!("sync:{kind}"),
        _ => return Err("it has neither `event` nor `type`".into()),
    };
    let msg = object.get("msg").and_then(Json::as_object);
    let email = text(msg.and_then(|m| m.get("email")))
        .or_else(|| text(object.get("entry").and_then(|e| e.get("email"))))
        .or_else(|| text(object.get("reject").and_then(|e| e.get("email"))));
    let subject = text(msg.and_then(|m| m.get("subject")));
    let ts = match object.get("ts") {
        Some(Json::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).unwrap_or(0),
        Some(Json::String(s)) => s.trim().parse::<f64>().map(|f| f as i64).unwrap_or(0),
        _ => 0,
    };
    // serde_json's map is ordered by key: this is the canonical form
    // (keys sorted, no whitespace) the stable id is hashed from.
    let payload = value.to_string();
    Ok(Event {
        id: hex(&Sha256::digest(payload.as_bytes())),
        message_id: text(object.get("_id")),
        event,
        email,
        subject,
        ts,
        payload,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn opt(value: &Option<String>) -> Value {
    value.as_ref().map_or(Value::Null, |s| Value::Text(s.clone()))
}

/// Stores the new events in one transaction, then publishes them in batch
/// order. Returns (received, stored).
pub(crate) fn store_and_publish(events: Vec<Event>) -> Result<(usize, usize), String> {
    let received = events.len();
    if received == 0 {
        return Ok((0, 0));
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let fail = |e: store::Error| format!("The events could not be stored ({e:?}); Mandrill will retry.");
    store::begin().map_err(fail)?;
    let mut fresh = Vec::new();
    for event in events {
        let inserted = store::execute(
            "INSERT INTO events (id, message_id, event, email, subject, ts, received_at, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
            &[
                Value::Text(event.id.clone()),
                opt(&event.message_id),
                Value::Text(event.event.clone()),
                opt(&event.email),
                opt(&event.subject),
                Value::Integer(event.ts),
                Value::Text(now.clone()),
                Value::Text(event.payload.clone()),
            ],
        )
        .map_err(fail)?;
        if inserted.rows_affected == 1 {
            fresh.push(event);
        }
    }
    store::commit().map_err(fail)?;
    let stored = fresh.len();
    for event in fresh {
        let message = to_json(
            &event.id,
            &event.message_id,
            &event.event,
            &event.email,
            &event.subject,
            event.ts,
            &now,
            &event.payload,
        );
        if let Err(e) = wharf_guest::hub::publish("email", &message.to_string()) {
            wharf_guest::warn!("could not publish event {}: {e:?}", event.id);
        }
    }
    Ok((received, stored))
}

#[allow(clippy::too_many_arguments)]
fn to_json(
    id: &str,
    message_id: &Option<String>,
    event: &str,
    email: &Option<String>,
    subject: &Option<String>,
    ts: i64,
    received_at: &str,
    payload: &str,
) -> Json {
    json!({
        "id": id,
        "message_id": message_id,
        "event": event,
        "email": email,
        "subject": subject,
        "ts": ts,
        "received_at": received_at,
        "payload": serde_json::from_str::<Json>(payload).unwrap_or(Json::Null),
    })
}

fn row_json(row: Vec<Value>) -> Json {
    let text = |v: &Value| match v {
        Value::Text(s) => Some(s.clone()),
        _ => None,
    };
    let ts = match row.get(5) {
        Some(Value::Integer(n)) => *n,
        _ => 0,
    };
    to_json(
        &text(&row[0]).unwrap_or_default(),
        &text(&row[1]),
        &text(&row[2]).unwrap_or_default(),
        &text(&row[3]),
        &text(&row[4]),
        ts,
        &text(&row[6]).unwrap_or_default(),
        &text(&row[7]).unwrap_or_default(),
    )
}

/// `GET /api/events/`: newest first (ts, then latest received), filtered.
pub(crate) fn list(query: &str) -> Reply {
    let params = reply::query_params(query);
    let mut bad = Map::new();
    let page = reply::page(&params, &mut bad);
    let since = params.get("since").and_then(Json::as_str).map(|v| {
        v.parse::<i64>().ok().filter(|n| *n >= 0).unwrap_or_else(|| {
            bad.insert("since".into(), "must be a non-negative integer".into());
            0
        })
    });
    if !bad.is_empty() {
        return Reply::error(StatusCode::BAD_REQUEST, "invalid_fields", "Some query parameters are invalid.")
            .with_fields(bad);
    }
    let mut filters = Vec::new();
    let mut args = Vec::new();
    for (column, key) in [("event", "event"), ("email", "email")] {
        if let Some(v) = params.get(key).and_then(Json::as_str) {
            args.push(Value::Text(v.to_owned()));
            filters.push(format!("{column} = ${}", args.len()));
        }
    }
    if let Some(since) = since {
        args.push(Value::Integer(since));
        filters.push(format!("ts >= ${}", args.len()));
    }
    let filter = if filters.is_empty() { String::new() } else { format!("WHERE {}", filters.join(" AND ")) };
    let total = match store::query(&format!("SELECT COUNT(*) FROM events {filter}"), &args) {
        Ok(rows) => match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(n)) => *n,
            _ => 0,
        },
        Err(e) => return unavailable(e),
    };
    let mut page_args = args.clone();
    page_args.push(Value::Integer(page.limit));
    page_args.push(Value::Integer(page.offset));
    let sql = format!(
        "SELECT {COLUMNS} FROM events {filter} ORDER BY ts DESC, seq DESC LIMIT ${} OFFSET ${}",
        args.len() + 1,
        args.len() + 2
    );
    match store::query(&sql, &page_args) {
        Ok(rows) => {
            let items: Vec<Json> = rows.rows.into_iter().map(row_json).collect();
            page.list(items, total)
        }
        Err(e) => unavailable(e),
    }
}

/// `GET /api/events/{id}`.
pub(crate) fn get(id: &str) -> Reply {
    match store::query(&format!("SELECT {COLUMNS} FROM events WHERE id = $1"), &[Value::Text(id.to_owned())]) {
        Ok(rows) => match rows.rows.into_iter().next() {
            Some(row) => Reply::json(StatusCode::OK, row_json(row)),
            None => Reply::no_such("event", id),
        },
        Err(e) => unavailable(e),
    }
}

/// `GET /api/events/_replay?after=ID&limit=N`: events stored after `ID`, in
/// arrival order (the hub calls this for `/ws/email/?after=ID`).
pub(crate) fn replay(query: &str) -> Reply {
    let params = reply::query_params(query);
    let Some(after) = params.get("after").and_then(Json::as_str) else {
        return Reply::error(StatusCode::BAD_REQUEST, "invalid_fields", "`after` is required.");
    };
    let limit =
        params.get("limit").and_then(Json::as_str).and_then(|l| l.parse::<i64>().ok()).unwrap_or(1000).clamp(1, 1000);
    let seq = match store::query("SELECT seq FROM events WHERE id = $1", &[Value::Text(after.to_owned())]) {
        Ok(rows) => match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(seq)) => *seq,
            _ => return Reply::error(StatusCode::NOT_FOUND, "not_found", format!("No event has id `{after}`.")),
        },
        Err(e) => return unavailable(e),
    };
    let sql = format!("SELECT {COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
    match store::query(&sql, &[Value::Integer(seq), Value::Integer(limit + 1)]) {
        Ok(rows) => {
            let more = rows.rows.len() as i64 > limit;
            let items: Vec<Json> = rows.rows.into_iter().take(limit as usize).map(row_json).collect();
            Reply::json(StatusCode::OK, json!({"items": items, "more": more}))
        }
        Err(e) => unavailable(e),
    }
}

fn unavailable(error: store::Error) -> Reply {
    wharf_guest::error!("store failed: {error:?}");
    Reply::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "The event store is unavailable; retry shortly.",
    )
}
