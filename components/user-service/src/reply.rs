//! HTTP answers: a JSON body, or an error in the SPEC §0 shape; never cached.

use serde_json::{Value as Json, json};
use wstd::http::{Body, Error, Response, StatusCode};

/// What a route answers.
pub(crate) enum Reply {
    Json(StatusCode, Json),
    Error { status: StatusCode, code: &'static str, message: String },
}

impl Reply {
    pub(crate) fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Error { status, code, message: message.into() }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Json(status, _) | Self::Error { status, .. } => *status,
        }
    }

    /// The response. `Cache-Control: no-store` on every answer, so a caller's
    /// cache (the host caches outbound GETs) never replays one and hides the
    /// next injected fault.
    pub(crate) fn into_response(self, request_id: &str) -> Result<Response<Body>, Error> {
        let (status, body) = match self {
            Self::Json(status, body) => (status, body),
            Self::Error { status, code, message } => {
                (status, json!({"error": {"code": code, "message": message, "request_id": request_id}}))
            }
        };
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .body(Body::from(body.to_string()))?)
    }
}
