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
mod upstream;

use wharf_guest::reply::Reply;
use wharf_guest::request::{self, Incoming, Options};
use wstd::http::{Body, Error, Request, Response};

/// Only `POST /v1/order` takes a body.
const OPTIONS: Options = Options::new().body_on_post_only();

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    request::serve(request, OPTIONS, async |call| Ok(route(call).await)).await
}

async fn route(call: &Incoming) -> Reply {
    let (method, path) = (call.method.as_str(), call.path.as_str());
    match (method, call.segments("").as_slice()) {
        ("POST", ["v1", "order"]) => orders::create(&call.body, &call.request_id).await,
        ("GET" | "HEAD", ["v1", "order", id]) => orders::get(id),
        ("GET" | "HEAD", ["v1", "orders"]) => orders::list(&call.query),
        ("GET" | "HEAD", ["v1", "_ops", "unpublished"]) => orders::unpublished(&call.query),
        (_, ["v1", "order"]) => Reply::method_not_allowed(method, path, "POST"),
        (_, ["v1", "order", _] | ["v1", "orders"] | ["v1", "_ops", "unpublished"]) => {
            Reply::method_not_allowed(method, path, "GET, HEAD")
        }
        _ => Reply::no_route(path),
    }
}

/// Delivers the outbox's jobs.
struct Outbox;

impl wharf_guest::job_handler::Guest for Outbox {
    fn handle(job: wharf_guest::job_handler::Job) -> Result<(), String> {
        outbox::deliver(&job)
    }
}

wharf_guest::export_job_handler!(Outbox);
