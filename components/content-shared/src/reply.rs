//! HTTP answers in the SPEC §0 shapes: JSON, empty, or an error body with the
//! request id; plus reading JSON object bodies, `?limit=&offset=`, path ids
//! and bearer tokens.

use serde_json::{Map, Value as Json, json};
use wharf_guest::store;
use wstd::http::{Body, Error, Response, StatusCode};

/// What a route answers. Handlers return `Result<Reply, Reply>` so `?` can
/// end a request early with its error.
pub struct Reply {
    status: StatusCode,
    payload: Payload,
    headers: Vec<(&'static str, String)>,
}

enum Payload {
    Json(Json),
    Empty,
    /// `detail` is an extra member of `error`, such as `fields`.
    Error {
        code: String,
        message: String,
        detail: Option<(&'static str, Json)>,
    },
}

impl Reply {
    pub fn json(status: StatusCode, body: Json) -> Self {
        Self { status, payload: Payload::Json(body), headers: Vec::new() }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn empty(status: StatusCode) -> Self {
        Self { status, payload: Payload::Empty, headers: Vec::new() }
    }

    pub fn error(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        let payload = Payload::Error { code: code.into(), message: message.into(), detail: None };
        Self { status, payload, headers: Vec::new() }
    }

    /// Adds `name` (e.g. `fields`, `rows`) to the error object.
    pub fn with_detail(mut self, name: &'static str, value: Json) -> Self {
        if let Payload::Error { detail, .. } = &mut self.payload {
            *detail = Some((name, value));
        }
        self
    }

    /// 400 `invalid_fields`, each bad field mapped to what is wrong with it.
    pub fn invalid_fields(fields: Map<String, Json>) -> Self {
        Self::error(StatusCode::BAD_REQUEST, "invalid_fields", "Some fields are missing or wrong; see `fields`.")
            .with_detail("fields", Json::Object(fields))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::error(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 with the `WWW-Authenticate` challenge RFC 6750 asks for; token
    /// errors say `error="invalid_token"` in it.
    pub fn unauthorized(code: impl Into<String>, message: impl Into<String>) -> Self {
        let code = code.into();
        let challenge = match code.as_str() {
            "not_authenticated" => "Bearer",
            _ => r#"Bearer error="invalid_token""#,
        };
        Self::error(StatusCode::UNAUTHORIZED, code, message).with_header("www-authenticate", challenge)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::error(StatusCode::FORBIDDEN, code, message)
    }

    /// 500 with only the code and request id; `what` goes to the log.
    pub fn internal(what: &str) -> Self {
        wharf_guest::error!("{what}");
        Self::error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "The request failed on the server's side.")
    }

    /// 503: a component this one depends on gave no usable answer; `what`
    /// goes to the log.
    pub fn unavailable(code: &'static str, message: impl Into<String>, what: &str) -> Self {
        wharf_guest::error!("{what}");
        Self::error(StatusCode::SERVICE_UNAVAILABLE, code, message).with_header("retry-after", "1")
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn into_response(self, request_id: &str) -> Result<Response<Body>, Error> {
        let mut response = Response::builder().status(self.status);
        for (name, value) in &self.headers {
            response = response.header(*name, value.as_str());
        }
        let body = match self.payload {
            Payload::Empty => return Ok(response.body(Body::empty())?),
            Payload::Json(body) => body.to_string(),
            Payload::Error { code, message, detail } => {
                let mut error = json!({"code": code, "message": message, "request_id": request_id});
                if let Some((name, value)) = detail {
                    error[name] = value;
                }
                json!({ "error": error }).to_string()
            }
        };
        Ok(response.header("content-type", "application/json").body(Body::from(body))?)
    }
}

/// A store failure: 503 when the database is busy or unreachable (retrying
/// may work), else 500 (a bug here). Callers handle the cases they expect,
/// such as a UNIQUE violation, before this.
impl From<store::Error> for Reply {
    fn from(error: store::Error) -> Self {
        match error {
            store::Error::Unavailable(why) => Self::unavailable(
                "storage_unavailable",
                "The store is unavailable; retry shortly.",
                &format!("store unavailable: {why}"),
            ),
            other => Self::internal(&format!("store failed: {other:?}")),
        }
    }
}

/// The body as a JSON object; `Err` is the 400 to answer.
pub fn object(body: &[u8]) -> Result<Map<String, Json>, Reply> {
    match serde_json::from_slice(body) {
        Ok(Json::Object(object)) => Ok(object),
        Ok(_) => Err(Reply::error(StatusCode::BAD_REQUEST, "invalid_json", "The body must be a JSON object.")),
        Err(e) => {
            Err(Reply::error(StatusCode::BAD_REQUEST, "invalid_json", format!("The body is not valid JSON: {e}.")))
        }
    }
}

/// `?limit=` (default 50, above 500 clamped to 500) and `?offset=` (default 0).
pub fn page(query: &str) -> Result<(i64, i64), Reply> {
    let mut limit = 50;
    let mut offset = 0;
    let mut bad = Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "limit" => &mut limit,
            "offset" => &mut offset,
            _ => continue,
        };
        match value.parse::<i64>() {
            Ok(n) if n >= 0 => *slot = n,
            _ => {
                bad.insert(key.into_owned(), "must be a non-negative integer".into());
            }
        }
    }
    if bad.is_empty() { Ok((limit.min(500), offset)) } else { Err(Reply::invalid_fields(bad)) }
}

/// An id from the path: digits only (at least 1), else `None`.
pub fn path_id(id: &str) -> Option<i64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse::<i64>().ok().filter(|n| *n > 0)
}

/// A bearer token (`Bearer <token>`, scheme case-insensitive) or the 401 to
/// answer.
pub fn bearer(authorization: Option<&str>) -> Result<&str, Reply> {
    let Some(header) = authorization else {
        return Err(Reply::unauthorized(
            "not_authenticated",
            "This needs an access token: send `Authorization: Bearer <access token>` (from POST /api/auth/login/).",
        ));
    };
    let token = header.trim().split_once(' ').and_then(|(scheme, token)| {
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    });
    token.ok_or_else(|| {
        Reply::unauthorized("invalid_token", "The Authorization header must be `Bearer <access token>`.")
    })
}
