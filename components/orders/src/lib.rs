//! `orders`: order rules (SPEC §5).
//!
//! `POST /v1/order` takes `{"user_id", "product_code"}`, fetches the user
//! and the product at once from the user and product services (config
//! `user_service_url`, `product_service_url`; the bundled simulators,
//! in-process, by default), each call with a timeout and retries, and stores
//! the order together with its `order_created` announcement (an outbox job,
//! delivered to hub topic `orders`). `GET /v1/order/{id}` and
//! `GET /v1/orders` read them back; `GET /v1/_ops/unpublished` is the
//! operator view of orders not announced yet, reached only through the
//! operator API. Decisions: docs/orders.md.

mod orders;
mod outbox;
mod reply;
mod upstream;

use reply::Reply;
use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let body = if method == "POST" {
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
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let reply = match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "order"]) => orders::create(&body, &request_id).await,
        ("GET" | "HEAD", ["v1", "order", id]) => orders::get(id),
        ("GET" | "HEAD", ["v1", "orders"]) => orders::list(&query),
        ("GET" | "HEAD", ["v1", "_ops", "unpublished"]) => orders::unpublished(&query),
        (_, ["v1", "order"]) => Reply::method_not_allowed(&method, &path, "POST"),
        (_, ["v1", "order", _] | ["v1", "orders"] | ["v1", "_ops", "unpublished"]) => {
            Reply::method_not_allowed(&method, &path, "GET, HEAD")
        }
        _ => Reply::not_found(format!("Nothing is served at `{path}`.")),
    };
    reply.into_response(&request_id)
}

/// Delivers the outbox's jobs.
struct Outbox;

impl wharf_guest::job_handler::Guest for Outbox {
    fn handle(job: wharf_guest::job_handler::Job) -> Result<(), String> {
        outbox::deliver(&job)
    }
}

wharf_guest::export_job_handler!(Outbox);
