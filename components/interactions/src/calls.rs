//! Calls to the other components of SPEC §4, in-process
//! (`http://NAME.wharf.internal`, granted in the manifest): `users` to check
//! a caller's token, `content` to check that a book exists.

use serde_json::{Value as Json, json};
use wstd::http::{Body, Client, Method, Request, StatusCode};

use crate::reply::{self, Reply};

/// Where `users` answers unless config `users_url` says otherwise.
const USERS: &str = "http://users.wharf.internal";
/// Where `content` answers unless config `content_url` says otherwise.
const CONTENT: &str = "http://content.wharf.internal";

/// One answer of another component.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

/// A base URL from config `key` (default `fallback`), without a trailing `/`.
pub(crate) fn base(key: &str, fallback: &str) -> String {
    let configured = wharf_guest::config::get(key).filter(|v| !v.trim().is_empty());
    configured.as_deref().unwrap_or(fallback).trim().trim_end_matches('/').to_owned()
}

/// Sends one request; `Err` is why no answer came (for the log). GETs say
/// `Cache-Control: no-cache`: every caller here needs the current answer,
/// not one the host's outbound cache kept.
pub(crate) async fn send(
    method: Method,
    url: &str,
    authorization: Option<&str>,
    body: Option<Json>,
    request_id: &str,
) -> Result<Answer, String> {
    let mut request = Request::builder().method(method.clone()).uri(url).header("accept", "application/json");
    if method == Method::GET {
        request = request.header("cache-control", "no-cache");
    }
    if let Some(token) = authorization {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if !request_id.is_empty() {
        // So the callee's log lines carry the same id as ours.
        request = request.header("x-request-id", request_id);
    }
    let request = match body {
        Some(json) => request.header("content-type", "application/json").body(Body::from(json.to_string())),
        None => request.body(Body::empty()),
    }
    .map_err(|e| format!("`{method} {url}` cannot be built: {e}"))?;
    let mut response = Client::new().send(request).await.map_err(|e| format!("`{method} {url}` failed: {e:#}"))?;
    let status = response.status();
    let body = response
        .body_mut()
        .contents()
        .await
        .map_err(|e| format!("`{method} {url}`: the body could not be read: {e:#}"))?
        .to_vec();
    Ok(Answer { status, body })
}

/// The user a request's `Authorization: Bearer <access token>` names, as
/// the `users` component says (`POST /api/auth/token/verify/`): it checks
/// the signature, the expiry and that the user still exists. `Err` is the
/// 401 to answer (users' own code: `invalid_token`, `token_expired`), or
/// 503 when users gave no usable answer.
pub(crate) async fn authenticate(authorization: Option<&str>, request_id: &str) -> Result<i64, Reply> {
    let token = reply::bearer(authorization)?;
    let url = format!("{}/api/auth/token/verify/", base("users_url", USERS));
    let unavailable = |what: String| {
        Reply::unavailable("auth_unavailable", "The token could not be checked right now; retry shortly.", &what)
    };
    let answer =
        send(Method::POST, &url, None, Some(json!({ "token": token })), request_id).await.map_err(unavailable)?;
    let body: Json = serde_json::from_slice(&answer.body).unwrap_or(Json::Null);
    match answer.status {
        StatusCode::OK => body["user_id"]
            .as_i64()
            .ok_or_else(|| unavailable(format!("`POST {url}` answered 200 without an integer user_id: {body}"))),
        StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => {
            let code = body["error"]["code"].as_str().filter(|c| *c == "token_expired").unwrap_or("invalid_token");
            let message = match code {
                "token_expired" => "The token has expired: refresh it (POST /api/auth/token/refresh/) or log in again.",
                _ => "The token is not a valid access token of an existing user.",
            };
            Err(Reply::unauthorized(code, message))
        }
        status => Err(unavailable(format!("`POST {url}` answered {status}"))),
    }
}

/// Whether book `id` exists, as `content` says now (`GET /api/content/books/{id}`
/// past the cache); `Err` is the 503 to answer when it gave no usable answer.
pub(crate) async fn book_exists(id: i64, request_id: &str) -> Result<bool, Reply> {
    let url = format!("{}/api/content/books/{id}", base("content_url", CONTENT));
    let unavailable = |what: String| {
        Reply::unavailable("content_unavailable", "The book could not be looked up right now; retry shortly.", &what)
    };
    let answer = send(Method::GET, &url, None, None, request_id).await.map_err(unavailable)?;
    match answer.status {
        StatusCode::OK => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        status => Err(unavailable(format!("`GET {url}` answered {status}"))),
    }
}
