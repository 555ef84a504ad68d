//! The validation job behind `POST /eye/events/`, and `GET /eye/jobs/{id}`.

use serde_json::{Value as Json, json};
use wharf_guest::queue::{self, JobStatus};
use wharf_guest::store::{self, Value};
use wstd::http::StatusCode;

use wharf_guest::reply::Reply;

use crate::events::{self, Fields};

/// The queue accepted events wait on.
pub(crate) const QUEUE: &str = "events";

/// Validates one accepted payload and creates its event, or records an
/// error with the reason. Keyed by the job id, so a job delivered twice
/// (after a crash) still creates exactly one event or error.
pub(crate) fn validate_and_create(job_id: i64, payload: &str) -> Result<(), String> {
    let outcome = match serde_json::from_str::<Json>(payload) {
        Ok(Json::Object(object)) => events::validate(&object, false).map_err(|fields| {
            fields
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("; ")
        }),
        _ => Err("the payload is not a JSON object".into()),
    };
    let result = match outcome {
        Ok(fields) => create_event(job_id, &fields),
        Err(reason) => store::execute(
            "INSERT INTO errors (payload, reason, created_at, job_id) VALUES ($1, $2, $3, $4) ON CONFLICT (job_id) DO NOTHING",
            &[
                Value::Text(payload.to_owned()),
                Value::Text(reason),
                Value::Text(crate::time::now_text()),
                Value::Integer(job_id),
            ],
        )
        .map(drop),
    };
    // A store failure is worth retrying; a validation failure is recorded.
    result.map_err(|e| format!("{e:?}"))
}

fn create_event(job_id: i64, fields: &Fields) -> Result<(), store::Error> {
    store::execute(
        "INSERT INTO events (session_id, category, name, data, ts_us, created_at, job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id) DO NOTHING",
        &[
            Value::Text(fields.session.clone().unwrap_or_default()),
            Value::Text(fields.category.clone().unwrap_or_default()),
            Value::Text(fields.name.clone().unwrap_or_default()),
            Value::Text(fields.data.as_ref().map(Json::to_string).unwrap_or_default()),
            Value::Integer(fields.ts_us.unwrap_or_default()),
            Value::Text(crate::time::now_text()),
            Value::Integer(job_id),
        ],
    )
    .map(drop)
}

/// `GET /eye/jobs/{id}`.
pub(crate) fn status(id: &str) -> Reply {
    let Ok(job_id) = id.parse::<i64>() else { return Reply::no_such("job", id) };
    let info = match queue::status(job_id) {
        Ok(Some(info)) if info.queue == QUEUE => info,
        Ok(_) => return Reply::no_such("job", id),
        Err(e) => {
            wharf_guest::error!("queue status failed: {e:?}");
            return Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                "The queue is unavailable; retry shortly.",
            );
        }
    };
    let lookup = |table: &str| -> Option<i64> {
        let rows =
            store::query(&format!("SELECT id FROM {table} WHERE job_id = $1"), &[Value::Integer(job_id)]).ok()?;
        match rows.rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(n)) => Some(*n),
            _ => None,
        }
    };
    let body = match info.status {
        JobStatus::Queued => json!({"job_id": job_id, "status": "queued"}),
        JobStatus::Running => json!({"job_id": job_id, "status": "running"}),
        JobStatus::Done => match (lookup("events"), lookup("errors")) {
            (Some(event_id), _) => json!({"job_id": job_id, "status": "done", "event_id": event_id}),
            (None, Some(error_id)) => json!({"job_id": job_id, "status": "failed", "error_id": error_id}),
            // The event was created, then deleted by a client.
            (None, None) => json!({"job_id": job_id, "status": "done", "event_id": null}),
        },
        JobStatus::Dead => {
            json!({"job_id": job_id, "status": "failed", "error_id": lookup("errors"), "reason": info.last_error})
        }
    };
    Reply::json(StatusCode::OK, body)
}
