//! Reading a request the same way in every `wstd` component: the request id
//! the host set, the method, path and query, the headers handlers need and
//! the whole body, read before any route runs (a body that cannot be read
//! is answered 400 `invalid_body`). Also the path and header parsers that
//! several components share. Enabled by the `reply` feature.

use wstd::http::{Body, Error, Request, Response, StatusCode};

use crate::reply::Reply;

/// How a component reads its requests and renders its answers. The
/// defaults: HEAD is routed as HEAD, the body is read for POST, PUT and
/// PATCH, and no answer gets `Retry-After`.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    head_as_get: bool,
    body_on_post_only: bool,
    retry_after: Option<u32>,
}

impl Options {
    /// The defaults.
    pub const fn new() -> Self {
        Self { head_as_get: false, body_on_post_only: false, retry_after: None }
    }

    /// Routes HEAD as GET (the server sends no body with it).
    pub const fn head_as_get(mut self) -> Self {
        self.head_as_get = true;
        self
    }

    /// Reads the body of POST requests only.
    pub const fn body_on_post_only(mut self) -> Self {
        self.body_on_post_only = true;
        self
    }

    /// Every 503 answer says `Retry-After: <seconds>`.
    pub const fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// A request as handlers see it: owned, with its whole body.
#[derive(Debug)]
pub struct Incoming {
    /// The id the host put on the request (`x-request-id`), or empty.
    pub request_id: String,
    /// The method (`GET` for HEAD with [`Options::head_as_get`]).
    pub method: String,
    /// The path, percent-encoded as sent.
    pub path: String,
    /// The query string without `?`, or empty.
    pub query: String,
    /// The `Authorization` header, if it is text.
    pub authorization: Option<String>,
    /// The `Content-Type` header, if it is text.
    pub content_type: Option<String>,
    /// The body (empty for methods whose body is not read).
    pub body: Vec<u8>,
    retry_after: Option<u32>,
}

/// A request whose body could not be read.
#[derive(Debug)]
pub struct Refused {
    request_id: String,
}

impl Refused {
    /// The 400 `invalid_body` to answer.
    pub fn into_response(self) -> Result<Response<Body>, Error> {
        Reply::error(StatusCode::BAD_REQUEST, "invalid_body", "The body could not be read.")
            .into_response(&self.request_id)
    }
}

impl Incoming {
    /// Reads `request` as `options` say; `Err` when its body cannot be read.
    pub async fn read(mut request: Request<Body>, options: Options) -> Result<Self, Refused> {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let request_id = header("x-request-id").unwrap_or_default();
        let authorization = header("authorization");
        let content_type = header("content-type");
        let method = match request.method().as_str() {
            "HEAD" if options.head_as_get => "GET".to_owned(),
            other => other.to_owned(),
        };
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let has_body = match method.as_str() {
            "POST" => true,
            "PUT" | "PATCH" => !options.body_on_post_only,
            _ => false,
        };
        let body = if has_body {
            match request.body_mut().contents().await {
                Ok(bytes) => bytes.to_vec(),
                Err(_) => return Err(Refused { request_id }),
            }
        } else {
            Vec::new()
        };
        let retry_after = options.retry_after;
        Ok(Self { request_id, method, path, query, authorization, content_type, body, retry_after })
    }

    /// The path's non-empty segments below `prefix` (so a trailing slash
    /// is optional).
    pub fn segments(&self, prefix: &str) -> Vec<&str> {
        let rest = self.path.strip_prefix(prefix).unwrap_or(&self.path);
        rest.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// The bearer token of `Authorization`, or the 401 to answer.
    pub fn bearer(&self) -> Result<&str, Reply> {
        bearer(self.authorization.as_deref())
    }

    /// `reply` as the response, with this request's id and the options'
    /// headers.
    pub fn respond(&self, reply: Reply) -> Result<Response<Body>, Error> {
        let reply = match self.retry_after {
            Some(seconds) if reply.status() == StatusCode::SERVICE_UNAVAILABLE => {
                reply.with_header("retry-after", seconds.to_string())
            }
            _ => reply,
        };
        reply.into_response(&self.request_id)
    }
}

/// Reads `request`, runs `handle` on it and renders what it answers: the
/// whole `main` of a component.
pub async fn serve(
    request: Request<Body>,
    options: Options,
    handle: impl AsyncFnOnce(&Incoming) -> Result<Reply, Reply>,
) -> Result<Response<Body>, Error> {
    let incoming = match Incoming::read(request, options).await {
        Ok(incoming) => incoming,
        Err(refused) => return refused.into_response(),
    };
    let reply = handle(&incoming).await.unwrap_or_else(|reply| reply);
    incoming.respond(reply)
}

/// The request id the host put on the request (`x-request-id`).
pub fn request_id(request: &Request<Body>) -> String {
    request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// An id from the path: digits only, at least 1, else `None`.
pub fn path_id(id: &str) -> Option<i64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse::<i64>().ok().filter(|n| *n > 0)
}

/// The token of an `Authorization: Bearer <token>` header (the scheme
/// case-insensitive), if it is one.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The bearer token of an `Authorization` header, or the 401 to answer:
/// `not_authenticated` without one, `invalid_token` for another scheme.
pub fn bearer(authorization: Option<&str>) -> Result<&str, Reply> {
    let Some(header) = authorization else {
        return Err(Reply::unauthorized(
            "not_authenticated",
            "This needs an access token: send `Authorization: Bearer <access token>` (from POST /api/auth/login/).",
        ));
    };
    bearer_token(header).ok_or_else(|| {
        Reply::unauthorized("invalid_token", "The Authorization header must be `Bearer <access token>`.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_id_takes_positive_decimal_ids_only() {
        assert_eq!(path_id("42"), Some(42));
        assert_eq!(path_id("007"), Some(7));
        for bad in ["", "0", "-1", "+1", "1.0", " 1", "99999999999999999999"] {
            assert_eq!(path_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bearer_token_needs_the_scheme_and_a_token() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("  bearer   abc  "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
