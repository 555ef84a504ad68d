//! `interactions`: reads and likes of books under `/api/user-interaction/`
//! (SPEC §4). A user reads or likes a book once (409 after that); the
//! counts per book feed `content`'s top list, and `content` deletes a book's
//! interactions with the book. Callers are authenticated by `users` and
//! books looked up in `content`, both in-process. docs/content.md has the
//! contract.

mod calls;
mod interactions;

use content_shared::reply::Reply;
use interactions::Kind;
use wstd::http::{Body, Error, Request, Response, StatusCode};

/// The route prefix the manifest gives this component.
const PREFIX: &str = "/api/user-interaction";

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
    let reply = route(&method, &path, authorization.as_deref(), &body, &request_id).await.unwrap_or_else(|reply| reply);
    reply.into_response(&request_id)
}

/// Dispatches on the method and the path below `/api/user-interaction` (a
/// trailing slash is optional everywhere).
async fn route(
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
    request_id: &str,
) -> Result<Reply, Reply> {
    let rest = path.strip_prefix(PREFIX).unwrap_or(path);
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        ("POST", ["read"]) => interactions::record(Kind::Read, authorization, body, request_id).await,
        ("POST", ["like"]) => interactions::record(Kind::Like, authorization, body, request_id).await,
        ("GET", ["contents", "books", "top-contents"]) => interactions::top(),
        ("DELETE", ["contents", id]) => interactions::forget(authorization, id),
        (_, segments) => Err(match allowed(segments) {
            Some(allow) => Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on `{path}`; use {allow}."),
            )
            .with_header("allow", allow),
            None => Reply::not_found(format!("Nothing is served at `{path}`.")),
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
