//! In-process calls (`http://NAME.wharf.internal`, granted in the manifest)
//! that both `content` and `interactions` make: any request to another
//! component, and checking a caller's token with `users`.

use serde_json::{Value as Json, json};
use wharf_guest::reply::Reply;
use wharf_guest::request::Incoming;
use wstd::http::{Body, Client, Method, Request, StatusCode};

/// Where `users` answers unless config `users_url` says otherwise.
const USERS: &str = "http://users.wharf.internal";

/// One answer of another component.
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its whole body.
    pub body: Vec<u8>,
}

/// A base URL from config `key` (default `fallback`), without a trailing `/`.
pub fn base(key: &str, fallback: &str) -> String {
    let configured = wharf_guest::config::get(key).filter(|v| !v.trim().is_empty());
    configured.as_deref().unwrap_or(fallback).trim().trim_end_matches('/').to_owned()
}

/// Sends one request; `Err` is why no answer came (for the log). GETs say
/// `Cache-Control: no-cache`: every caller here needs the current answer,
/// not one the host's outbound cache kept.
pub async fn send(
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
pub async fn authenticate(call: &Incoming) -> Result<i64, Reply> {
    let (token, request_id) = (call.bearer()?, call.request_id.as_str());
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
        StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => Err(if body["error"]["code"] == "token_expired" {
            Reply::unauthorized(
                "token_expired",
                "The token has expired: refresh it (POST /api/auth/token/refresh/) or log in again.",
            )
        } else {
            Reply::unauthorized("invalid_token", "The token is not a valid access token of an existing user.")
        }),
        status => Err(unavailable(format!("`POST {url}` answered {status}"))),
    }
}
