//! Every error the host answers with, turned into HTTP in one place: the
//! status, the `snake_case` code and the JSON body of SPEC §0. 4xx messages
//! say what the client can fix; 5xx bodies carry only the code and request id
//! while the full error goes to the log inside the request span.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::manifest::ComponentName;

/// An error answered by the host rather than by a component.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No route matches the path.
    #[error("no route for `{path}`")]
    NotFound {
        /// The requested path.
        path: String,
    },
    /// The path is routed, but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// What the path accepts.
        allowed: Vec<http::Method>,
    },
    /// The request body is over the route's cap.
    #[error("request body over {limit} bytes")]
    BodyTooLarge {
        /// The cap, in bytes.
        limit: u64,
        /// The route's own `error.code` for this, if it names one.
        code: Option<String>,
    },
    /// The request body could not be read.
    #[error("request body could not be read: {0}")]
    BadBody(String),
    /// The client took longer than the body read timeout to send the body.
    #[error("request body not received within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// The client sent more requests to a rate-limited route than it allows.
    #[error("rate limited")]
    RateLimited {
        /// When the next request would be accepted.
        retry_after: std::time::Duration,
    },
    /// The host-wide budget for buffered request bodies is spent.
    #[error("request body budget exhausted")]
    BodyBudgetExhausted,
    /// Every instance slot of the component is busy.
    #[error("component `{0}` is at its concurrency limit")]
    Overloaded(ComponentName),
    /// The component ran past its deadline.
    #[error("component `{0}` exceeded its deadline")]
    DeadlineExceeded(ComponentName),
    /// The component tried to use more memory than allowed.
    #[error("component `{0}` exceeded its memory cap")]
    MemoryCapExceeded(ComponentName),
    /// The component trapped or answered nothing usable.
    #[error("component `{component}` failed: {error:#}")]
    ComponentFailed {
        /// The component.
        component: ComponentName,
        /// What happened (logged, never sent to the client).
        error: anyhow::Error,
    },
}

impl HostError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadBody(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded(_) | Self::BodyBudgetExhausted => StatusCode::SERVICE_UNAVAILABLE,
            Self::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::MemoryCapExceeded(_) | Self::ComponentFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// For metrics: how a component failed to answer, if it did.
    pub fn failure_kind(&self) -> Option<&'static str> {
        match self {
            Self::Overloaded(_) => Some("overloaded"),
            Self::DeadlineExceeded(_) => Some("deadline"),
            Self::MemoryCapExceeded(_) => Some("memory"),
            Self::ComponentFailed { .. } => Some("trap"),
            _ => None,
        }
    }

    /// The `error.code` of the body.
    pub fn code(&self) -> &str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::BodyTooLarge { code, .. } => code.as_deref().unwrap_or("body_too_large"),
            Self::BadBody(_) => "invalid_body",
            Self::BodyTimeout(_) => "request_timeout",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded(_) | Self::BodyBudgetExhausted => "overloaded",
            Self::DeadlineExceeded(_) => "deadline_exceeded",
            Self::MemoryCapExceeded(_) => "memory_limit_exceeded",
            Self::ComponentFailed { .. } => "component_failed",
        }
    }

    /// The `error.message` of the body: actionable for 4xx, generic for 5xx.
    fn message(&self) -> String {
        match self {
            Self::NotFound { path } => format!("Nothing is served at `{path}`."),
            Self::MethodNotAllowed { allowed } => format!(
                "This path accepts {}.",
                allowed.iter().map(http::Method::as_str).collect::<Vec<_>>().join(", ")
            ),
            Self::BodyTooLarge { limit, .. } => {
                format!("The request body is larger than this route accepts ({limit} bytes).")
            }
            Self::BadBody(_) => "The request body could not be read.".into(),
            Self::RateLimited { retry_after } => format!(
                "Too many requests to this route from your address; retry in {} seconds.",
                retry_after.as_secs().max(1)
            ),
            Self::BodyTimeout(limit) => {
                format!("The request body did not arrive within {} seconds.", limit.as_secs_f64())
            }
            Self::Overloaded(_) | Self::BodyBudgetExhausted => "The service is busy; retry shortly.".into(),
            Self::DeadlineExceeded(_) => "The request took too long and was stopped.".into(),
            Self::MemoryCapExceeded(_) | Self::ComponentFailed { .. } => {
                "The request failed inside the service; quote the request id when reporting it.".into()
            }
        }
    }

    /// The full response for this error.
    pub fn into_response(self, request_id: &str) -> http::Response<HyperOutgoingBody> {
        let status = self.status();
        match &self {
            // Load shedding is expected behaviour, not a fault.
            Self::Overloaded(_) | Self::BodyBudgetExhausted => tracing::warn!(code = self.code(), "request shed"),
            _ if status.is_server_error() => tracing::error!(error = %self, code = self.code(), "request failed"),
            _ => {}
        }
        let mut response = json_error(status, self.code(), &self.message(), request_id);
        match &self {
            Self::MethodNotAllowed { allowed } => {
                let allow = allowed.iter().map(http::Method::as_str).collect::<Vec<_>>().join(", ");
                if let Ok(value) = HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(header::ALLOW, value);
                }
            }
            Self::Overloaded(_) | Self::BodyBudgetExhausted => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::RateLimited { retry_after } => {
                let seconds = retry_after.as_secs_f64().ceil().max(1.0).to_string();
                if let Ok(value) = HeaderValue::from_str(&seconds) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            // The connection may hold unread bytes of this request.
            Self::BodyTooLarge { .. } | Self::BodyTimeout(_) => {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// A JSON error response in the SPEC §0 shape.
pub fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> http::Response<HyperOutgoingBody> {
    let body = serde_json::json!({
        "error": { "code": code, "message": message, "request_id": request_id }
    });
    json_response(status, &body)
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> http::Response<HyperOutgoingBody> {
    let bytes = Bytes::from(body.to_string());
    let mut response = http::Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A complete body in the type wasi:http responses use.
pub fn full(bytes: Bytes) -> HyperOutgoingBody {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}
