//! `mandrill`: receives Mandrill webhook batches, stores each event once
//! (idempotent by a stable hash of the event), publishes new ones to hub
//! topic `email` in batch order, lists them, and serves the live page.
//! SPEC §1.

mod events;
mod http;
mod page;
mod signature;

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let reply = http::route(&mut request).await;
    reply.into_response(&request_id)
}
