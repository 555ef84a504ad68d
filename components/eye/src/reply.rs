//! HTTP answers in the SPEC §0 shapes, and the list envelope helpers.

use serde_json::{Map, Value as Json, json};
use wharf_guest::store::{self, Value};
use wstd::http::{Body, Error, Response, StatusCode};

pub(crate) enum Reply {
    Json(StatusCode, Json),
    Empty(StatusCode),
    Error { status: StatusCode, code: &'static str, message: String, fields: Option<Map<String, Json>> },
}

impl Reply {
    pub(crate) fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Error { status, code, message: message.into(), fields: None }
    }

    pub(crate) fn invalid_fields(fields: Map<String, Json>) -> Self {
        Self::Error {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_fields",
            message: "Some fields are missing or wrong; see `fields`.".into(),
            fields: Some(fields),
        }
    }

    pub(crate) fn not_found(what: &str, id: &str) -> Self {
        Self::error(StatusCode::NOT_FOUND, "not_found", format!("No {what} has id `{id}`."))
    }

    pub(crate) fn unavailable(error: store::Error) -> Self {
        wharf_guest::error!("store failed: {error:?}");
        Self::error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "The store is unavailable; retry shortly.")
    }

    pub(crate) fn into_response(self, request_id: &str) -> Result<Response<Body>, Error> {
        let (status, body) = match self {
            Self::Json(status, body) => (status, body.to_string()),
            Self::Empty(status) => return Ok(Response::builder().status(status).body(Body::empty())?),
            Self::Error { status, code, message, fields } => {
                let mut error = json!({"code": code, "message": message, "request_id": request_id});
                if let Some(fields) = fields {
                    error["fields"] = Json::Object(fields);
                }
                (status, json!({ "error": error }).to_string())
            }
        };
        Ok(Response::builder().status(status).header("content-type", "application/json").body(Body::from(body))?)
    }
}

/// Parses a JSON body; `Err` is the 400 to answer.
pub(crate) fn json_body(body: &[u8]) -> Result<Json, Reply> {
    serde_json::from_slice(body)
        .map_err(|e| Reply::error(StatusCode::BAD_REQUEST, "invalid_json", format!("The body is not valid JSON: {e}.")))
}

/// `?limit=` (default 50, clamped to 500) and `?offset=`.
pub(crate) fn page(params: &Map<String, Json>, bad: &mut Map<String, Json>) -> (i64, i64) {
    let mut number = |name: &str, default: i64| match params.get(name).and_then(Json::as_str) {
        None => default,
        Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).unwrap_or_else(|| {
            bad.insert(name.into(), "must be a non-negative integer".into());
            default
        }),
    };
    (number("limit", 50).min(500), number("offset", 0))
}

pub(crate) fn query_params(query: &str) -> Map<String, Json> {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), Json::String(v.into_owned()))).collect()
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
