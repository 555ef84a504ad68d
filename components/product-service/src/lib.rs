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
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use serde_json::Number;
use wharf_guest::reply::Reply;
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

/// The seeded products: the seed's `classic-box`, `family-box` and `veggie-box`, and a few more.
const PRODUCTS: &str = include_str!("../data/products.json");

/// How long a `slow_products` code takes unless `slow_delay_ms` says otherwise.
const DEFAULT_SLOW_DELAY_MS: u64 = 60_000;

#[derive(Deserialize, Serialize)]
struct Product {
    code: String,
    name: String,
    /// Kept as written (`9.99`), never rounded through a float.
    price: Number,
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let request_id = wharf_guest::request::request_id(&request);
    let reply = handle(&request).await;
    // Never cached by a caller (the host caches outbound GETs), so every
    // call sees the next injected fault.
    reply.with_header("cache-control", "no-store").into_response(&request_id)
}

async fn handle(request: &Request<Body>) -> Reply {
    let method = request.method();
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed here; the products API is read-only (GET or HEAD)."),
        );
    }
    let path = request.uri().path();
    let Some(code) = product_code(path) else {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("Nothing is served at `{path}`; ask for `/products/{{code}}`."),
        );
    };
    let waited = if listed("slow_products", &code) {
        let millis = faults::config_ms("slow_delay_ms").unwrap_or(DEFAULT_SLOW_DELAY_MS);
        faults::sleep(millis).await;
        millis
    } else {
        faults::delay().await
    };
    let reply = look_up(&code);
    wharf_guest::info!("answered GET /products/{code} with {} after a {waited} ms delay", reply.status().as_u16());
    reply
}

/// The (percent-decoded) code of `/products/{code}`, if that is what `path` asks for.
fn product_code(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/products/")?;
    let code = rest.strip_suffix('/').unwrap_or(rest);
    (!code.is_empty() && !code.contains('/')).then(|| percent_decode_str(code).decode_utf8_lossy().into_owned())
}

/// Whether config `key` (comma-separated codes) lists `code`.
fn listed(key: &str, code: &str) -> bool {
    wharf_guest::config::get(key).is_some_and(|codes| codes.split(',').any(|listed| listed.trim() == code))
}

/// The product, after the injected faults have had their say.
fn look_up(code: &str) -> Reply {
    if faults::injected_failure() {
        return Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected_failure",
            "The products API failed on purpose (config `failure_rate`); retry.",
        );
    }
    if listed("failing_products", code) {
        return Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected_failure",
            format!("Product `{code}` always fails (config `failing_products`)."),
        );
    }
    let products: Vec<Product> = match serde_json::from_str(PRODUCTS) {
        Ok(products) => products,
        Err(e) => {
            wharf_guest::error!("the embedded products are not valid: {e}");
            return Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "data_unavailable",
                "The products could not be loaded.",
            );
        }
    };
    match products.into_iter().find(|product| product.code == code) {
        Some(product) => match serde_json::to_value(product) {
            Ok(body) => Reply::ok(body),
            Err(e) => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", format!("{e}")),
        },
        None => Reply::error(StatusCode::NOT_FOUND, "product_not_found", format!("No product has code `{code}`.")),
    }
}
