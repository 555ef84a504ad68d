//! `content`: books under `/api/content/` (SPEC §4): anyone reads them,
//! authenticated users write their own; the newest and the most read or
//! liked lists (counts from `interactions`), and CSV upload. Callers are
//! authenticated by `users`, in-process. docs/content.md has the contract.

mod books;
mod calls;
pub mod fuzzing;
mod multipart;
mod upload;

use wharf_guest::reply::Reply;
use wharf_guest::request::{self, Incoming, Options};
use wstd::http::{Body, Error, Request, Response};

/// The route prefix the manifest gives this component.
const PREFIX: &str = "/api/content";

/// HEAD is answered like GET; a 503 says when to retry.
const OPTIONS: Options = Options::new().head_as_get().retry_after(1);

// The export exists only in the component; the native rlib (for the fuzz
// targets) has none, since a native link cannot name `wasi:http/…#handle`.
#[cfg_attr(target_arch = "wasm32", wstd::http_server)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    request::serve(request, OPTIONS, route).await
}

/// Dispatches on the method and the path below `/api/content` (a trailing
/// slash is optional everywhere). The fixed paths under `books/` come before
/// `books/{id}`.
async fn route(call: &Incoming) -> Result<Reply, Reply> {
    let segments = call.segments(PREFIX);
    let user = || calls::authenticate(call);
    match (call.method.as_str(), segments.as_slice()) {
        ("GET", ["books"]) => books::list(&call.query),
        ("POST", ["books"]) => books::create(user().await?, &call.body),
        ("GET", ["books", "new-contents"]) => books::newest(&call.query),
        ("GET", ["books", "top-contents"]) => books::top(&call.query, &call.request_id).await,
        ("POST", ["books", "upload-csv"]) => upload::csv(user().await?, call.content_type.as_deref(), &call.body),
        (_, ["books", "new-contents" | "top-contents" | "upload-csv"]) => Err(not_allowed(call, &segments)),
        ("GET", ["books", id]) => books::get(id),
        ("PATCH", ["books", id]) => books::update(user().await?, id, &call.body),
        ("DELETE", ["books", id]) => books::delete(user().await?, id, &call.request_id).await,
        _ => Err(not_allowed(call, &segments)),
    }
}

/// 405 with `Allow` for a known path, else 404.
fn not_allowed(call: &Incoming, segments: &[&str]) -> Reply {
    let allow = match segments {
        ["books"] => "GET, HEAD, POST",
        ["books", "new-contents" | "top-contents"] => "GET, HEAD",
        ["books", "upload-csv"] => "POST",
        ["books", _] => "GET, HEAD, PATCH, DELETE",
        _ => return Reply::no_route(&call.path),
    };
    Reply::method_not_allowed(&call.method, &call.path, allow)
}
