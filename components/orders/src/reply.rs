//! HTTP answers in the SPEC §0 shapes, and the list helpers (`?limit=`,
//! `?offset=`, the envelope).

use serde_json::{Map, Value as Json, json};
use wharf_guest::store;
use wstd::http::{Body, Error, Response, StatusCode};

/// What a route answers.
pub(crate) enum Reply {
    Json(StatusCode, Json),
    /// 201 with the new resource and where it lives.
    Created {
        location: String,
        body: Json,
    },
    Error {
        status: StatusCode,
        code: &'static str,
        message: String,
        fields: Option<Map<String, Json>>,
        /// The `Allow` header of a 405.
        allow: Option<&'static str>,
    },
}

impl Reply {
    pub(crate) fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Error { status, code, message: message.into(), fields: None, allow: None }
    }

    /// 400 `invalid_fields`, each bad field with what is wrong with it.
    pub(crate) fn invalid_fields(fields: Map<String, Json>) -> Self {
        Self::Error {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_fields",
            message: "Some fields are missing or wrong; see `fields`.".into(),
            fields: Some(fields),
            allow: None,
        }
    }

    /// 405 naming the methods `path` accepts.
    pub(crate) fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        Self::Error {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: format!("{method} is not allowed on `{path}`; use {allow}."),
            fields: None,
            allow: Some(allow),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::error(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 for a store failure; the details go to the log only.
    pub(crate) fn storage_unavailable(error: &store::Error) -> Self {
        wharf_guest::error!("store failed: {error:?}");
        Self::error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "The store is unavailable; retry shortly.")
    }

    pub(crate) fn into_response(self, request_id: &str) -> Result<Response<Body>, Error> {
        let mut response = Response::builder().header("content-type", "application/json");
        let (status, body) = match self {
            Self::Json(status, body) => (status, body),
            Self::Created { location, body } => {
                response = response.header("location", location);
                (StatusCode::CREATED, body)
            }
            Self::Error { status, code, message, fields, allow } => {
                let mut error = json!({"code": code, "message": message, "request_id": request_id});
                if let Some(fields) = fields {
                    error["fields"] = Json::Object(fields);
                }
                if let Some(allow) = allow {
                    response = response.header("allow", allow);
                }
                (status, json!({ "error": error }))
            }
        };
        Ok(response.status(status).body(Body::from(body.to_string()))?)
    }
}

/// The query string's parameters (the last of repeated ones wins).
pub(crate) fn query_params(query: &str) -> Map<String, Json> {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), Json::String(v.into_owned()))).collect()
}

/// `?limit=` (default 50, clamped to 500) and `?offset=` (default 0); a
/// value that is not a non-negative integer is added to `bad`.
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

/// The SPEC §0 list envelope.
pub(crate) fn list(items: Vec<Json>, total: i64, limit: i64, offset: i64) -> Reply {
    Reply::Json(StatusCode::OK, json!({"items": items, "total": total, "limit": limit, "offset": offset}))
}
