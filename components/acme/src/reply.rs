//! HTTP answers: a JSON body, or an error in the SPEC §0 shape.

use serde::Serialize;
use serde_json::json;
use wstd::http::{Body, Error, Response, StatusCode};

/// What the route answers.
pub(crate) enum Reply {
    Json(StatusCode, String),
    Error { status: StatusCode, code: &'static str, message: String },
}

impl Reply {
    /// 200 with `value` as JSON.
    pub(crate) fn ok(value: &impl Serialize) -> Self {
        match serde_json::to_string(value) {
            Ok(body) => Self::Json(StatusCode::OK, body),
            Err(e) => {
                wharf_guest::error!("could not serialize the answer: {e}");
                Self::error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "The answer could not be built.")
            }
        }
    }

    pub(crate) fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Error { status, code, message: message.into() }
    }

    pub(crate) fn into_response(self, request_id: &str) -> Result<Response<Body>, Error> {
        let (status, body) = match self {
            Self::Json(status, body) => (status, body),
            Self::Error { status, code, message } => {
                (status, json!({"error": {"code": code, "message": message, "request_id": request_id}}).to_string())
            }
        };
        Ok(Response::builder().status(status).header("content-type", "application/json").body(Body::from(body))?)
    }
}
