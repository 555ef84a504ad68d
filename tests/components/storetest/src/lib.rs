//! Runs whatever its requests describe against `wharf:host/store` and
//! `wharf:host/queue`, and answers with the result as JSON, so the host's
//! storage and queue tests can drive both from the outside.
//!
//! - `POST /store/query` and `/store/execute`: `{"sql", "params"}`.
//! - `POST /store/tx`: `{"steps": [{"sql", "params"} | {"enqueue": {...}}], "then": "commit"|"rollback"|"trap"|"return"}`.
//! - `POST /store/enqueue`: `{"queue", "payload", "delay_ms", "max_attempts", "idempotency_key"}`.
//! - `GET /store/job/{id}`: the job's status.
//!
//! Jobs: the payload is JSON `{"effect", "fail_times", "trap", "sleep_ms"}`.
//! Each delivery is logged in `deliveries`; the effect is recorded once per
//! job in `effects` (idempotently), then the planned failure, if any, happens.

use serde_json::{Value as Json, json};
use wharf_guest::job_handler::{Guest, Job};
use wharf_guest::queue::{self, EnqueueOptions, JobStatus};
use wharf_guest::store::{self, Value};
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    // Served under any prefix (`/store/*`, `/other/*`): act on what follows it.
    let full = request.uri().path().to_owned();
    let path = format!("/store/{}", full.splitn(3, '/').nth(2).unwrap_or_default());
    let body: Json = if request.method() == "POST" {
        let bytes = request.body_mut().contents().await?.to_vec();
        serde_json::from_slice(&bytes).unwrap_or(Json::Null)
    } else {
        Json::Null
    };
    let (status, answer) = match path.as_str() {
        "/store/query" => respond(store::query(text(&body["sql"]), &params(&body["params"])).map(rows_json)),
        "/store/execute" => respond(
            store::execute(text(&body["sql"]), &params(&body["params"]))
                .map(|r| json!({"rows_affected": r.rows_affected, "last_insert_id": r.last_insert_id})),
        ),
        "/store/enqueue" => match enqueue(&body) {
            Ok(id) => (200, json!({"job_id": id})),
            Err(e) => (400, json!({"error": format!("{e:?}")})),
        },
        "/store/tx" => transaction(&body),
        "/store/repeat" => repeat(&body),
        p if p.starts_with("/store/job/") => job_status(p.trim_start_matches("/store/job/")),
        _ => (404, json!({"error": "unknown path"})),
    };
    Ok(Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Body::from(answer.to_string()))?)
}

fn transaction(body: &Json) -> (u16, Json) {
    if let Err(e) = store::begin() {
        return store_error(e);
    }
    let mut results = Vec::new();
    for step in body["steps"].as_array().cloned().unwrap_or_default() {
        if step.get("enqueue").is_some() {
            match enqueue(&step["enqueue"]) {
                Ok(id) => results.push(json!({"job_id": id})),
                Err(e) => return (400, json!({"error": format!("{e:?}")})),
            }
            continue;
        }
        match store::execute(text(&step["sql"]), &params(&step["params"])) {
            Ok(r) => results.push(json!({"rows_affected": r.rows_affected})),
            Err(e) => return store_error(e),
        }
    }
    match body["then"].as_str().unwrap_or("commit") {
        "rollback" => respond(store::rollback().map(|()| json!({"results": results}))),
        "trap" => panic!("trapping with the transaction open"),
        "return" => (200, json!({"results": results, "left_open": true})),
        _ => respond(store::commit().map(|()| json!({"results": results}))),
    }
}

/// Runs one query `times` times and reports the time per round trip, so a
/// benchmark can compare the host call with the same query from native code.
fn repeat(body: &Json) -> (u16, Json) {
    let times = body["times"].as_u64().unwrap_or(1000);
    let params = params(&body["params"]);
    let started = wstd::time::Instant::now();
    for _ in 0..times {
        if let Err(e) = store::query(text(&body["sql"]), &params) {
            return store_error(e);
        }
    }
    let elapsed = started.elapsed().as_micros() as f64;
    (200, json!({"times": times, "us_per_query": elapsed / times as f64}))
}

fn enqueue(body: &Json) -> Result<i64, queue::Error> {
    let options = EnqueueOptions {
        delay_ms: body["delay_ms"].as_u64(),
        max_attempts: body["max_attempts"].as_u64().map(|n| n as u32),
        idempotency_key: body["idempotency_key"].as_str().map(str::to_owned),
    };
    let payload = match &body["payload"] {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    queue::enqueue(body["queue"].as_str().unwrap_or("default"), &payload, &options)
}

fn job_status(id: &str) -> (u16, Json) {
    let Ok(id) = id.parse::<i64>() else {
        return (400, json!({"error": "bad id"}));
    };
    match queue::status(id) {
        Ok(Some(info)) => {
            let status = match info.status {
                JobStatus::Queued => "queued",
                JobStatus::Running => "running",
                JobStatus::Done => "done",
                JobStatus::Dead => "dead",
            };
            (
                200,
                json!({"id": info.id, "queue": info.queue, "status": status, "attempts": info.attempts, "last_error": info.last_error}),
            )
        }
        Ok(None) => (404, json!({"error": "no such job"})),
        Err(e) => (500, json!({"error": format!("{e:?}")})),
    }
}

fn respond(result: Result<Json, store::Error>) -> (u16, Json) {
    match result {
        Ok(value) => (200, value),
        Err(e) => store_error(e),
    }
}

fn store_error(error: store::Error) -> (u16, Json) {
    let (status, kind, message) = match error {
        store::Error::ConstraintViolation(m) => (409, "constraint_violation", m),
        store::Error::AccessDenied(m) => (403, "access_denied", m),
        store::Error::TooLarge(m) => (413, "too_large", m),
        store::Error::Unavailable(m) => (503, "unavailable", m),
        store::Error::TransactionState(m) => (400, "transaction_state", m),
        store::Error::QueryFailed(m) => (400, "query_failed", m),
    };
    (status, json!({"error": {"kind": kind, "message": message}}))
}

fn text(value: &Json) -> &str {
    value.as_str().unwrap_or_default()
}

fn params(value: &Json) -> Vec<Value> {
    value.as_array().map(|a| a.iter().map(to_value).collect()).unwrap_or_default()
}

fn to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(i64::from(*b)),
        Json::Number(n) => n.as_i64().map(Value::Integer).unwrap_or_else(|| Value::Real(n.as_f64().unwrap_or(0.0))),
        Json::String(s) => Value::Text(s.clone()),
        Json::Object(o) => match o.get("blob") {
            Some(Json::Array(bytes)) => Value::Blob(bytes.iter().map(|b| b.as_u64().unwrap_or(0) as u8).collect()),
            _ => Value::Text(json.to_string()),
        },
        Json::Array(_) => Value::Text(json.to_string()),
    }
}

fn from_value(value: Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(i) => json!(i),
        Value::Real(f) => json!(f),
        Value::Text(s) => json!(s),
        Value::Blob(b) => json!({"blob": b}),
    }
}

fn rows_json(rows: store::Rows) -> Json {
    let rows: Vec<Json> = rows.rows.into_iter().map(|r| Json::Array(r.into_iter().map(from_value).collect())).collect();
    json!({"rows": rows})
}

struct Worker;

impl Guest for Worker {
    fn handle(job: Job) -> Result<(), String> {
        let plan: Json = serde_json::from_str(&job.payload).unwrap_or(Json::Null);
        store::execute(
            "INSERT INTO deliveries (job_id, attempt) VALUES ($1, $2)",
            &[Value::Integer(job.id), Value::Integer(job.attempt.into())],
        )
        .map_err(|e| format!("{e:?}"))?;
        if let Some(ms) = plan["sleep_ms"].as_u64() {
            wstd::runtime::block_on(async { wstd::task::sleep(wstd::time::Duration::from_millis(ms)).await });
        }
        if plan["trap"].as_bool() == Some(true) {
            panic!("job {} traps on purpose", job.id);
        }
        let fail_times = plan["fail_times"].as_u64().unwrap_or(0);
        if u64::from(job.attempt) <= fail_times {
            return Err(format!("planned failure {} of {fail_times}", job.attempt));
        }
        if let Some(effect) = plan["effect"].as_str() {
            store::execute(
                "INSERT INTO effects (job_id, effect, attempt) VALUES ($1, $2, $3) ON CONFLICT (job_id) DO NOTHING",
                &[Value::Integer(job.id), Value::Text(effect.to_owned()), Value::Integer(job.attempt.into())],
            )
            .map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    }
}

wharf_guest::export_job_handler!(Worker);
