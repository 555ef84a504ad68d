//! `users`: accounts and authentication under `/api/auth/` (SPEC §4):
//! registration, login, one-time refresh tokens, token verification (which
//! the `content` and `interactions` components call in-process), and the
//! user records themselves. Passwords and tokens are the host's
//! `wharf:host/auth` (argon2id, HS256 with the host's key); the records are
//! in this component's own store. docs/users.md has the contract.

mod fields;
mod time;
mod tokens;
mod users;

use wharf_guest::reply::Reply;
use wharf_guest::request::{self, Incoming, Options};
use wstd::http::{Body, Error, Request, Response};

/// The route prefix the manifest gives this component.
const PREFIX: &str = "/api/auth";

/// HEAD is answered like GET.
const OPTIONS: Options = Options::new().head_as_get();

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    request::serve(request, OPTIONS, async |call| route(call)).await
}

/// Dispatches on the method and the path below `/api/auth` (a trailing
/// slash is optional everywhere).
fn route(call: &Incoming) -> Result<Reply, Reply> {
    let authorization = call.authorization.as_deref();
    let (query, body) = (call.query.as_str(), call.body.as_slice());
    match (call.method.as_str(), call.segments(PREFIX).as_slice()) {
        ("POST", ["users"]) => users::register(tokens::caller(authorization)?, body),
        ("GET", ["users"]) => users::list(tokens::authenticate(authorization)?, query),
        ("GET", ["users", id]) => users::get(tokens::authenticate(authorization)?, id),
        ("PATCH", ["users", id]) => users::update(tokens::authenticate(authorization)?, id, body),
        ("DELETE", ["users", id]) => users::delete(tokens::authenticate(authorization)?, id),
        ("POST", ["login"]) => tokens::login(body),
        ("POST", ["token", "refresh"]) => tokens::refresh(body),
        ("POST", ["token", "verify"]) => tokens::verify(body),
        (_, segments) => Err(match allowed(segments) {
            Some(allow) => Reply::method_not_allowed(&call.method, &call.path, allow),
            None => Reply::no_route(&call.path),
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
