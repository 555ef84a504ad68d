//! HTTP answers in the SPEC §0 shapes for components written with `wstd`:
//! JSON bodies, the error body (`{"error": {"code", "message",
//! "request_id", "fields"?}}`), reading JSON bodies, and lists (`?limit=`,
//! `?offset=`, the `{"items", "total", "limit", "offset"}` envelope).
//! Enabled by the `reply` feature, with [`crate::request`], which reads the
//! request and renders these.

use std::borrow::Cow;

/// JSON values and the `json!` macro, for components that need no JSON crate of their own.
pub use serde_json::{Map, Value as Json, json};
use wstd::http::{Body, Error, Response, StatusCode};

use crate::store;

/// `?limit=` when the client gives none (SPEC §0).
const DEFAULT_LIMIT: i64 = 50;
/// A larger `?limit=` is clamped to this (SPEC §0).
const MAX_LIMIT: i64 = 500;

/// What a handler answers; rendered with the request id by
/// [`Reply::into_response`]. Handlers may return `Result<Reply, Reply>` so
/// `?` can end a request early with its error.
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
    /// No body and no `content-type`.
    Empty,
    /// `details` are further members of `error`, such as `fields`.
    Error {
        code: Cow<'static, str>,
        message: String,
        details: Map<String, Json>,
    },
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

    /// 201 with the new resource as JSON and where it lives (`Location`).
    pub fn created(location: impl Into<String>, body: Json) -> Self {
        Self::json(StatusCode::CREATED, body).with_header("location", location)
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
    pub fn error(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        let content = Content::Error { code: code.into(), message: message.into(), details: Map::new() };
        Self { status, content, headers: Vec::new() }
    }

    /// 400 `invalid_fields` with what is wrong with each field.
    pub fn invalid_fields(fields: Map<String, Json>) -> Self {
        Self::error(StatusCode::BAD_REQUEST, "invalid_fields", "Some fields are missing or wrong; see `fields`.")
            .with_fields(fields)
    }

    /// 400 `invalid_fields` naming one field.
    pub fn invalid_field(name: &str, problem: &str) -> Self {
        let mut fields = Map::new();
        fields.insert(name.into(), problem.into());
        Self::invalid_fields(fields)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::error(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 404 `not_found` for a `what` (e.g. "book") with `id`.
    pub fn no_such(what: &str, id: &str) -> Self {
        Self::not_found(format!("No {what} has id `{id}`."))
    }

    /// 404 `not_found` for a path no route serves.
    pub fn no_route(path: &str) -> Self {
        Self::not_found(format!("Nothing is served at `{path}`."))
    }

    /// 405 naming the methods `path` accepts, in the message and in `Allow`.
    pub fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        let message = format!("{method} is not allowed on `{path}`; use {allow}.");
        Self::error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message).with_header("allow", allow)
    }

    /// 401 with the `WWW-Authenticate` challenge RFC 6750 asks for: token
    /// errors say `error="invalid_token"` in it, anything else (no token,
    /// wrong password) only `Bearer`.
    pub fn unauthorized(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        let code = code.into();
        let challenge = match code.as_ref() {
            "invalid_token" | "token_expired" | "token_used" => r#"Bearer error="invalid_token""#,
            _ => "Bearer",
        };
        Self::error(StatusCode::UNAUTHORIZED, code, message).with_header("www-authenticate", challenge)
    }

    /// 403 with `code`.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::error(StatusCode::FORBIDDEN, code, message)
    }

    /// 500 with only the code and request id; `what` goes to the log.
    pub fn internal(what: &str) -> Self {
        crate::error!("{what}");
        Self::error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "The request failed on the server's side.")
    }

    /// 503: something this component depends on gave no usable answer;
    /// `what` goes to the log. `Retry-After` is the component's choice
    /// ([`crate::request::Options::retry_after`]).
    pub fn unavailable(code: &'static str, message: impl Into<String>, what: &str) -> Self {
        crate::error!("{what}");
        Self::error(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// 503 `storage_unavailable` for any store failure, logged. Components
    /// that tell a bug (500) from a busy store use `From<store::Error>`.
    pub fn storage_unavailable(error: &store::Error) -> Self {
        crate::error!("store failed: {error:?}");
        Self::error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "The store is unavailable; retry shortly.")
    }

    /// Adds `fields` (what is wrong with each) to an error; no effect on
    /// other answers.
    pub fn with_fields(self, fields: Map<String, Json>) -> Self {
        self.with_detail("fields", Json::Object(fields))
    }

    /// Adds member `name` (e.g. `rows`) to the `error` object; no effect on
    /// other answers.
    pub fn with_detail(mut self, name: &str, value: Json) -> Self {
        if let Content::Error { details, .. } = &mut self.content {
            details.insert(name.to_owned(), value);
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
            Content::Error { code, message, details } => {
                let mut error = json!({ "code": code, "message": message, "request_id": request_id });
                if let Json::Object(error) = &mut error {
                    error.extend(details);
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

/// A store failure: 503 when the database is busy or unreachable (retrying
/// may work), else 500 (a bug here). Callers handle the cases they expect,
/// such as a UNIQUE violation, before this.
impl From<store::Error> for Reply {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::Unavailable(_) => Self::storage_unavailable(&error),
            _ => Self::internal(&format!("store failed: {error:?}")),
        }
    }
}

/// Parses a JSON body; `Err` is the 400 `invalid_json` to answer.
pub fn json_body(body: &[u8]) -> Result<Json, Reply> {
    serde_json::from_slice(body)
        .map_err(|e| Reply::error(StatusCode::BAD_REQUEST, "invalid_json", format!("The body is not valid JSON: {e}.")))
}

/// The body as a JSON object; `Err` is the 400 `invalid_json` to answer.
pub fn object(body: &[u8]) -> Result<Map<String, Json>, Reply> {
    match json_body(body)? {
        Json::Object(object) => Ok(object),
        _ => Err(Reply::error(StatusCode::BAD_REQUEST, "invalid_json", "The body must be a JSON object.")),
    }
}

/// The query string's parameters (percent-decoded, the last of repeated
/// ones wins), as JSON strings.
pub fn query_params(query: &str) -> Map<String, Json> {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), Json::String(v.into_owned()))).collect()
}

/// Which slice of a list a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// `?limit=`: default 50, above 500 clamped to 500.
    pub limit: i64,
    /// `?offset=`: default 0.
    pub offset: i64,
}

impl Page {
    /// 200 with `items` in the SPEC §0 list envelope.
    pub fn list(self, items: Vec<Json>, total: i64) -> Reply {
        Reply::ok(json!({ "items": items, "total": total, "limit": self.limit, "offset": self.offset }))
    }
}

/// The page a query string asks for; `Err` is the 400 `invalid_fields` for
/// a `limit` or `offset` that is not a non-negative integer (each one
/// given, when repeated).
pub fn page_of(query: &str) -> Result<Page, Reply> {
    let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
    let mut bad = Map::new();
    let page = page_from(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())), &mut bad);
    if bad.is_empty() { Ok(page) } else { Err(Reply::invalid_fields(bad)) }
}

/// The page `params` (from [`query_params`]) ask for; a `limit` or
/// `offset` that is not a non-negative integer is recorded in `bad` and
/// taken as its default, so a handler can report it with its other
/// parameters.
pub fn page(params: &Map<String, Json>, bad: &mut Map<String, Json>) -> Page {
    page_from(params.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))), bad)
}

fn page_from<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, bad: &mut Map<String, Json>) -> Page {
    let mut page = Page { limit: DEFAULT_LIMIT, offset: 0 };
    for (key, value) in pairs {
        let slot = match key {
            "limit" => &mut page.limit,
            "offset" => &mut page.offset,
            _ => continue,
        };
        match value.parse::<i64>() {
            Ok(n) if n >= 0 => *slot = n,
            _ => {
                bad.insert(key.to_owned(), "must be a non-negative integer".into());
            }
        }
    }
    page.limit = page.limit.min(MAX_LIMIT);
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_of_defaults_clamps_and_refuses() {
        assert_eq!(page_of("").ok(), Some(Page { limit: 50, offset: 0 }));
        assert_eq!(page_of("limit=900&offset=3&x=y").ok(), Some(Page { limit: 500, offset: 3 }));
        for bad in ["limit=-1", "offset=x", "limit=", "limit=x&limit=5"] {
            assert_eq!(page_of(bad).err().map(|r| r.status()), Some(StatusCode::BAD_REQUEST), "{bad:?}");
        }
    }

    #[test]
    fn page_records_what_is_bad_and_takes_the_default() {
        let mut bad = Map::new();
        let page = page(&query_params("limit=abc&offset=7"), &mut bad);
        assert_eq!(page, Page { limit: 50, offset: 7 });
        assert!(bad.contains_key("limit") && !bad.contains_key("offset"));
    }
}
