//! HTTP answers: a JSON body, or an error in the SPEC §0 shape.

use serde_json::{Map, Value as Json, json};
use wstd::http::{Body, Error, Response, StatusCode};

/// What a route answers.
pub(crate) enum Reply {
    Json(StatusCode, Json),
    Error { status: StatusCode, code: &'static str, message: String, fields: Option<Map<String, Json>> },
}

impl Reply {
    /// 200 with `body`.
    pub(crate) fn ok(body: Json) -> Self {
        Self::Json(StatusCode::OK, body)
    }

    pub(crate) fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Error { status, code, message: message.into(), fields: None }
    }

    /// 400 `invalid_fields` naming one bad field.
    pub(crate) fn invalid_field(name: &str, problem: &str) -> Self {
        let mut fields = Map::new();
        fields.insert(name.into(), problem.into());
        Self::Error {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_fields",
            message: "Some fields are missing or wrong; see `fields`.".into(),
            fields: Some(fields),
        }
    }

    pub(crate) fn into_response(self, request_id: &str) -> Result<Response<Body>, Error> {
        let (status, body) = match self {
            Self::Json(status, body) => (status, body),
            Self::Error { status, code, message, fields } => {
                let mut error = json!({"code": code, "message": message, "request_id": request_id});
                if let Some(fields) = fields {
                    error["fields"] = Json::Object(fields);
                }
                (status, json!({ "error": error }))
            }
        };
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))?)
    }
}
