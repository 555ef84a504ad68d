//! Routing and HTTP shapes: each handler returns a [`Reply`]; errors use the
//! SPEC §0 body with the request id the host put on the request.

use serde_json::{Value as Json, json};
use wstd::http::{Body, Request, StatusCode};

use crate::{events, page, signature};

/// Largest batch Mandrill may send (SPEC §1).
pub(crate) const MAX_EVENTS: usize = 1000;

pub(crate) use wharf_guest::reply::Reply;

pub(crate) async fn route(request: &mut Request<Body>) -> Reply {
    let path = request.uri().path().to_owned();
    let method = request.method().as_str().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    match (method.as_str(), path.as_str()) {
        ("GET" | "HEAD", "/") => Reply::html(page::HTML),
        ("GET" | "HEAD", "/api/hook" | "/api/hook/") => Reply::json(StatusCode::OK, json!({"status": "ok"})),
        ("POST", "/api/hook" | "/api/hook/") => receive(request).await,
        (_, "/api/hook" | "/api/hook/") => {
            Reply::error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "This path accepts GET, HEAD and POST.")
        }
        ("GET" | "HEAD", "/api/events" | "/api/events/") => events::list(&query),
        ("GET" | "HEAD", "/api/events/_replay") => events::replay(&query),
        ("GET" | "HEAD", p) if p.starts_with("/api/events/") => events::get(p.trim_start_matches("/api/events/")),
        _ => Reply::error(StatusCode::NOT_FOUND, "not_found", format!("Nothing is served at `{path}`.")),
    }
}

/// `POST /api/hook/`: verify, parse the whole batch, store, publish.
async fn receive(request: &mut Request<Body>) -> Reply {
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let signature = request.headers().get("x-mandrill-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = match request.body_mut().contents().await {
        Ok(bytes) => bytes.to_vec(),
        Err(_) => {
            return Reply::error(StatusCode::BAD_REQUEST, "invalid_payload", "The request body could not be read.");
        }
    };
    let key = wharf_guest::config::get("webhook_key").filter(|k| !k.is_empty());
    let url = wharf_guest::config::get("webhook_url").unwrap_or_default();
    let parsed = match decode_batch(&content_type, &body, key.as_deref(), &url, signature.as_deref()) {
        Ok(parsed) => parsed,
        Err(reply) => return reply,
    };
    match events::store_and_publish(parsed) {
        Ok((received, stored)) => Reply::json(
            StatusCode::OK,
            json!({"received": received, "stored": stored, "duplicates": received - stored}),
        ),
        Err(e) => Reply::error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", e),
    }
}

/// Everything `POST /api/hook/` checks before it stores: the media type, the
/// signature (when `key` is set), the form, the JSON and every event. Pure,
/// so the fuzzer drives it natively (`fuzz/`, target `mandrill_batch`).
pub(crate) fn decode_batch(
    content_type: &str,
    body: &[u8],
    key: Option<&str>,
    url: &str,
    signature: Option<&str>,
) -> Result<Vec<events::Event>, Reply> {
    let invalid = |message: String| Reply::error(StatusCode::BAD_REQUEST, "invalid_payload", message);
    let events_text = match content_type {
        "application/x-www-form-urlencoded" => {
            let fields: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
            if let Some(key) = key
                && !signature::verify(key, url, &fields, signature)
            {
                return Err(invalid_signature());
            }
            match fields.into_iter().find(|(k, _)| k == "mandrill_events") {
                Some((_, value)) => value,
                None => return Err(invalid("The form has no `mandrill_events` field.".into())),
            }
        }
        "application/json" if key.is_some() => return Err(invalid_signature()),
        "application/json" => match std::str::from_utf8(body) {
            Ok(text) => text.to_owned(),
            Err(_) => return Err(invalid("The body is not UTF-8.".into())),
        },
        _ => {
            return Err(Reply::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send application/x-www-form-urlencoded with a `mandrill_events` field, or (without a webhook key) an application/json array.",
            ));
        }
    };
    let batch: Json =
        serde_json::from_str(&events_text).map_err(|e| invalid(format!("The events are not valid JSON: {e}.")))?;
    let Json::Array(batch) = batch else { return Err(invalid("The events must be a JSON array.".into())) };
    if batch.len() > MAX_EVENTS {
        return Err(Reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("A batch holds at most {MAX_EVENTS} events; this one has {}.", batch.len()),
        ));
    }
    events::parse_batch(batch).map_err(|(index, reason)| {
        let message = format!("Event {index} is invalid: {reason}. Nothing was stored.");
        let mut fields = serde_json::Map::new();
        fields.insert(format!("[{index}]"), reason.into());
        invalid(message).with_fields(fields)
    })
}

fn invalid_signature() -> Reply {
    Reply::error(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        "X-Mandrill-Signature does not match this webhook's key and URL; nothing was stored.",
    )
}
