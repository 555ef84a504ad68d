//! `mandrill`: receives Mandrill webhook batches, stores each event once
//! (idempotent by a stable hash of the event), publishes new ones to hub
//! topic `email` in batch order, lists them, and serves the live page.
//! SPEC §1.

mod events;
pub mod fuzzing;
mod http;
mod page;
mod signature;

use wstd::http::{Body, Error, Request, Response};

// The export exists only in the component; the native rlib (for the fuzz
// targets) has none, since a native link cannot name `wasi:http/…#handle`.
#[cfg_attr(target_arch = "wasm32", wstd::http_server)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let reply = http::route(&mut request).await;
    reply.into_response(&request_id)
}
