//! `content`: books under `/api/content/` (SPEC §4): anyone reads them,
//! authenticated users write their own; the newest and the most read or
//! liked lists (counts from `interactions`), and CSV upload. Callers are
//! authenticated by `users`, in-process. docs/content.md has the contract.

mod books;
mod calls;
pub mod fuzzing;
mod multipart;
mod upload;

use content_shared::reply::Reply;
use wstd::http::{Body, Error, Request, Response, StatusCode};

/// The route prefix the manifest gives this component.
const PREFIX: &str = "/api/content";

// The export exists only in the component; the native rlib (for the fuzz
// targets) has none, since a native link cannot name `wasi:http/…#handle`.
#[cfg_attr(target_arch = "wasm32", wstd::http_server)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request_id = header("x-request-id").unwrap_or_default();
    let authorization = header("authorization");
    let content_type = header("content-type");
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
    let call = Call {
        method: &method,
        path: &path,
        query: &query,
        authorization: authorization.as_deref(),
        content_type: content_type.as_deref(),
        body: &body,
        request_id: &request_id,
    };
    let reply = route(&call).await.unwrap_or_else(|reply| reply);
    reply.into_response(&request_id)
}

/// What a route needs of the request.
struct Call<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    authorization: Option<&'a str>,
    content_type: Option<&'a str>,
    body: &'a [u8],
    request_id: &'a str,
}

impl Call<'_> {
    /// The caller's user id, or the 401 to answer.
    async fn user(&self) -> Result<i64, Reply> {
        calls::authenticate(self.authorization, self.request_id).await
    }
}

/// Dispatches on the method and the path below `/api/content` (a trailing
/// slash is optional everywhere). The fixed paths under `books/` come before
/// `books/{id}`.
async fn route(call: &Call<'_>) -> Result<Reply, Reply> {
    let rest = call.path.strip_prefix(PREFIX).unwrap_or(call.path);
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (call.method, segments.as_slice()) {
        ("GET", ["books"]) => books::list(call.query),
        ("POST", ["books"]) => books::create(call.user().await?, call.body),
        ("GET", ["books", "new-contents"]) => books::newest(call.query),
        ("GET", ["books", "top-contents"]) => books::top(call.query, call.request_id).await,
        ("POST", ["books", "upload-csv"]) => upload::csv(call.user().await?, call.content_type, call.body),
        (_, ["books", "new-contents" | "top-contents" | "upload-csv"]) => Err(not_allowed(call, &segments)),
        ("GET", ["books", id]) => books::get(id),
        ("PATCH", ["books", id]) => books::update(call.user().await?, id, call.body),
        ("DELETE", ["books", id]) => books::delete(call.user().await?, id, call.request_id).await,
        _ => Err(not_allowed(call, &segments)),
    }
}

/// 405 with `Allow` for a known path, else 404.
fn not_allowed(call: &Call<'_>, segments: &[&str]) -> Reply {
    let allow = match segments {
        ["books"] => "GET, HEAD, POST",
        ["books", "new-contents" | "top-contents"] => "GET, HEAD",
        ["books", "upload-csv"] => "POST",
        ["books", _] => "GET, HEAD, PATCH, DELETE",
        _ => return Reply::not_found(format!("Nothing is served at `{}`.", call.path)),
    };
    Reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on `{}`; use {allow}.", call.method, call.path),
    )
    .with_header("allow", allow)
}
