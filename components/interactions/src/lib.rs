//! `interactions`: reads and likes of books under `/api/user-interaction/`
//! (SPEC §4). A user reads or likes a book once (409 after that); the
//! counts per book feed `content`'s top list, and `content` deletes a book's
//! interactions with the book. Callers are authenticated by `users` and
//! books looked up in `content`, both in-process. docs/content.md has the
//! contract.

mod calls;
mod interactions;

use interactions::Kind;
use wharf_guest::reply::Reply;
use wharf_guest::request::{self, Incoming, Options};
use wstd::http::{Body, Error, Request, Response};

/// The route prefix the manifest gives this component.
const PREFIX: &str = "/api/user-interaction";

/// HEAD is answered like GET; a 503 says when to retry.
const OPTIONS: Options = Options::new().head_as_get().retry_after(1);

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    request::serve(request, OPTIONS, route).await
}

/// Dispatches on the method and the path below `/api/user-interaction` (a
/// trailing slash is optional everywhere).
async fn route(call: &Incoming) -> Result<Reply, Reply> {
    match (call.method.as_str(), call.segments(PREFIX).as_slice()) {
        ("POST", ["read"]) => interactions::record(Kind::Read, call).await,
        ("POST", ["like"]) => interactions::record(Kind::Like, call).await,
        ("GET", ["contents", "books", "top-contents"]) => interactions::top(),
        ("DELETE", ["contents", id]) => interactions::forget(call, id),
        (_, segments) => Err(match allowed(segments) {
            Some(allow) => Reply::method_not_allowed(&call.method, &call.path, allow),
            None => Reply::no_route(&call.path),
        }),
    }
}

/// The methods a known path allows, for 405 and its `Allow` header.
fn allowed(segments: &[&str]) -> Option<&'static str> {
    match segments {
        ["read"] | ["like"] => Some("POST"),
        ["contents", "books", "top-contents"] => Some("GET, HEAD"),
        ["contents", _] => Some("DELETE"),
        _ => None,
    }
}
