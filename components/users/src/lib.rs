//! `users`: accounts and authentication under `/api/auth/` (SPEC §4):
//! registration, login, one-time refresh tokens, token verification (which
//! the `content` and `interactions` components call in-process), and the
//! user records themselves. Passwords and tokens are the host's
//! `wharf:host/auth` (argon2id, HS256 with the host's key); the records are
//! in this component's own store. docs/users.md has the contract.

mod fields;
mod reply;
mod time;
mod tokens;
mod users;

use reply::Reply;
use wstd::http::{Body, Error, Request, Response, StatusCode};

/// The route prefix the manifest gives this component.
const PREFIX: &str = "/api/auth";

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request_id = header("x-request-id").unwrap_or_default();
    let authorization = header("authorization");
    // HEAD is answered like GET (the server sends no body with it).
    let method = match request.method().as_str() {
        "HEAD" => "GET".to_owned(),
        other => other.to_owned(),
    };
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let body = if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        match request.body_mut().contents().await {
            Ok(bytes) => bytes.to_vec(),
            Err(_) => {
                return Reply::error(StatusCode::BAD_REQUEST, "invalid_body", "The body could not be read.")
                    .into_response(&request_id);
            }
        }
    } else {
        Vec::new()
    };
    let reply = route(&method, &path, &query, authorization.as_deref(), &body).unwrap_or_else(|reply| reply);
    reply.into_response(&request_id)
}

/// Dispatches on the method and the path below `/api/auth` (a trailing
/// slash is optional everywhere).
fn route(method: &str, path: &str, query: &str, authorization: Option<&str>, body: &[u8]) -> Result<Reply, Reply> {
    let rest = path.strip_prefix(PREFIX).unwrap_or(path);
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        ("POST", ["users"]) => users::register(tokens::caller(authorization)?, body),
        ("GET", ["users"]) => users::list(tokens::authenticate(authorization)?, query),
        ("GET", ["users", id]) => users::get(tokens::authenticate(authorization)?, id),
        ("PATCH", ["users", id]) => users::update(tokens::authenticate(authorization)?, id, body),
        ("DELETE", ["users", id]) => users::delete(tokens::authenticate(authorization)?, id),
        ("POST", ["login"]) => tokens::login(body),
        ("POST", ["token", "refresh"]) => tokens::refresh(body),
        ("POST", ["token", "verify"]) => tokens::verify(body),
        (_, segments) => Err(match allowed(segments) {
            Some(allow) => Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on `{path}`; use {allow}."),
            )
            .with_header("allow", allow),
            None => Reply::error(StatusCode::NOT_FOUND, "not_found", format!("Nothing is served at `{path}`.")),
        }),
    }
}

/// The methods a known path allows, for 405 and its `Allow` header.
fn allowed(segments: &[&str]) -> Option<&'static str> {
    match segments {
        ["users"] => Some("GET, HEAD, POST"),
        ["users", _] => Some("GET, HEAD, PATCH, DELETE"),
        ["login"] | ["token", "refresh" | "verify"] => Some("POST"),
        _ => None,
    }
}
