//! HTTP answers in the SPEC §0 shapes for components written with `wstd`:
//! JSON bodies, the error body (`{"error": {"code", "message",
//! "request_id", "fields"?}}`), and the list helpers (`?limit=`, `?offset=`,
//! the `{"items", "total", "limit", "offset"}` envelope). Enabled by the
//! `reply` feature.

use serde_json::{Map, Value as Json, json};
use wstd::http::{Body, Error, Request, Response, StatusCode};

/// What a handler answers; rendered with the request id by [`Reply::into_response`].
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    content: Content,
    headers: Vec<(&'static str, String)>,
}

#[derive(Debug)]
enum Content {
    Json(Json),
    Html(&'static str),
    Empty,
    Error { code: &'static str, message: String, fields: Option<Map<String, Json>> },
}

impl Reply {
    /// `status` with `body` as JSON.
    pub fn json(status: StatusCode, body: Json) -> Self {
        Self { status, content: Content::Json(body), headers: Vec::new() }
    }

    /// 200 with `body` as JSON.
    pub fn ok(body: Json) -> Self {
        Self::json(StatusCode::OK, body)
    }

    /// 200 with `value` serialized as JSON (500 if it cannot be).
    pub fn ok_serialized(value: &impl serde::Serialize) -> Self {
        match serde_json::to_value(value) {
            Ok(body) => Self::ok(body),
            Err(e) => {
                crate::error!("could not serialize the answer: {e}");
                Self::error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "The answer could not be built.")
            }
        }
    }

    /// `status` with no body (e.g. 204).
    pub fn empty(status: StatusCode) -> Self {
        Self { status, content: Content::Empty, headers: Vec::new() }
    }

    /// 200 with an HTML page.
    pub fn html(page: &'static str) -> Self {
        Self { status: StatusCode::OK, content: Content::Html(page), headers: Vec::new() }
    }

    /// An error in the SPEC §0 shape.
    pub fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, content: Content::Error { code, message: message.into(), fields: None }, headers: Vec::new() }
    }

    /// 400 `invalid_fields` with what is wrong with each field.
    pub fn invalid_fields(fields: Map<String, Json>) -> Self {
        let message = "Some fields are missing or wrong; see `fields`.".to_owned();
        let content = Content::Error { code: "invalid_fields", message, fields: Some(fields) };
        Self { status: StatusCode::BAD_REQUEST, content, headers: Vec::new() }
    }

    /// 400 `invalid_fields` naming one field.
    pub fn invalid_field(name: &str, problem: &str) -> Self {
        let mut fields = Map::new();
        fields.insert(name.into(), problem.into());
        Self::invalid_fields(fields)
    }

    /// Adds `fields` (what is wrong with each) to an error; no effect on
    /// other answers.
    pub fn with_fields(mut self, fields: Map<String, Json>) -> Self {
        if let Content::Error { fields: slot, .. } = &mut self.content {
            *slot = Some(fields);
        }
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The status it will answer with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response; errors carry `request_id`.
    pub fn into_response(self, request_id: &str) -> Result<Response<Body>, Error> {
        let (content_type, body) = match self.content {
            Content::Json(body) => (Some("application/json"), Body::from(body.to_string())),
            Content::Html(page) => (Some("text/html; charset=utf-8"), Body::from(page)),
            Content::Empty => (None, Body::empty()),
            Content::Error { code, message, fields } => {
                let mut error = json!({ "code": code, "message": message, "request_id": request_id });
                if let Some(fields) = fields {
                    error["fields"] = Json::Object(fields);
                }
                (Some("application/json"), Body::from(json!({ "error": error }).to_string()))
            }
        };
        let mut response = Response::builder().status(self.status);
        if let Some(content_type) = content_type {
            response = response.header("content-type", content_type);
        }
        for (name, value) in self.headers {
            response = response.header(name, value);
        }
        Ok(response.body(body)?)
    }
}

/// The request id the host put on the request (`x-request-id`).
pub fn request_id(request: &Request<Body>) -> String {
    request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// Parses a JSON body; `Err` is the 400 `invalid_json` to answer.
pub fn json_body(body: &[u8]) -> Result<Json, Reply> {
    serde_json::from_slice(body)
        .map_err(|e| Reply::error(StatusCode::BAD_REQUEST, "invalid_json", format!("The body is not valid JSON: {e}.")))
}

/// The query string's parameters (percent-decoded), as JSON strings.
pub fn query_params(query: &str) -> Map<String, Json> {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), Json::String(v.into_owned()))).collect()
}

/// `?limit=` (default 50, clamped to 500) and `?offset=` (default 0); a
/// value that is not a non-negative integer is recorded in `bad`.
pub fn page(params: &Map<String, Json>, bad: &mut Map<String, Json>) -> (i64, i64) {
    let mut number = |name: &str, default: i64| match params.get(name).and_then(Json::as_str) {
        None => default,
        Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).unwrap_or_else(|| {
            bad.insert(name.into(), "must be a non-negative integer".into());
            default
        }),
    };
    (number("limit", 50).min(500), number("offset", 0))
}

/// The list envelope of SPEC §0.
pub fn list(items: Vec<Json>, total: i64, limit: i64, offset: i64) -> Json {
    json!({ "items": items, "total": total, "limit": limit, "offset": offset })
}
