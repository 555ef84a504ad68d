//! `product-service`: a simulator of the products API the order rules call
//! (SPEC §5). `GET /products/{code}` answers `{code, name, price}` from a
//! small seeded list (`data/products.json`, embedded), or 404.
//!
//! Faults, from config (docs/orders.md): a delay (`delay_ms`, or
//! `delay_min_ms`/`delay_max_ms`), a failure rate (`failure_rate`, 0 to 1,
//! answered 503), and the seed's per-product faults: `failing_products`
//! (comma-separated codes that always answer 500, like its `veggie-box`) and
//! `slow_products` (codes that answer only after `slow_delay_ms`, default
//! 60000, like its `family-box`).

use fault_injection as faults;
use fault_injection::simulator::Collection;
use serde::{Deserialize, Serialize};
use serde_json::Number;
use wharf_guest::reply::Reply;
use wstd::http::{Body, Error, Request, Response, StatusCode};

/// The seeded products: the seed's `classic-box`, `family-box` and `veggie-box`, and a few more.
const PRODUCTS: &str = include_str!("../data/products.json");

/// How long a `slow_products` code takes unless `slow_delay_ms` says otherwise.
const DEFAULT_SLOW_DELAY_MS: u64 = 60_000;

const COLLECTION: Collection = Collection { name: "products", one: "product", key: "code" };

#[derive(Deserialize, Serialize)]
struct Product {
    code: String,
    name: String,
    /// Kept as written (`9.99`), never rounded through a float.
    price: Number,
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    COLLECTION.serve(request, answer).await
}

/// The product after its delay, and how long that was.
async fn answer(code: &str) -> (Reply, u64) {
    let waited = if listed("slow_products", code) {
        let millis = faults::config_ms("slow_delay_ms").unwrap_or(DEFAULT_SLOW_DELAY_MS);
        faults::sleep(millis).await;
        millis
    } else {
        faults::delay().await
    };
    (look_up(code), waited)
}

/// Whether config `key` (comma-separated codes) lists `code`.
fn listed(key: &str, code: &str) -> bool {
    wharf_guest::config::get(key).is_some_and(|codes| codes.split(',').any(|listed| listed.trim() == code))
}

/// The product, after the injected faults have had their say.
fn look_up(code: &str) -> Reply {
    if let Some(failure) = COLLECTION.injected_failure() {
        return failure;
    }
    if listed("failing_products", code) {
        return Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected_failure",
            format!("Product `{code}` always fails (config `failing_products`)."),
        );
    }
    COLLECTION.find(PRODUCTS, code, |product: &Product| &product.code)
}
