//! `acme-data`: a simulator of Acme Megastore's upstream "data API" (SPEC §3),
//! serving users, products and purchases from a read-only JSON file after a
//! random delay, so `acme` (and its cache) can be shown without anything
//! outside the host.
//!
//! Config: `data_file` (default `/data/acme-data.json`), `latency_min_ms`
//! (default 20) and `latency_max_ms` (default 200); both 0 answers at once.

mod data;

use data::Data;
use percent_encoding::percent_decode_str;
use serde_json::json;
use wharf_guest::reply::Reply;
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};
use wstd::time::Duration;

const DEFAULT_DATA_FILE: &str = "/data/acme-data.json";
const DEFAULT_LATENCY_MIN_MS: u64 = 20;
const DEFAULT_LATENCY_MAX_MS: u64 = 200;

/// One look-up of the data API, parsed from the request.
enum Query {
    User(String),
    PurchasesByUser { username: String, limit: Option<usize> },
    PurchasesByProduct(i64),
    Product(i64),
}

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let request_id = wharf_guest::request::request_id(&request);
    simulate_latency().await;
    let reply = match parse(&request) {
        Ok(query) => {
            let path = wharf_guest::config::get("data_file").unwrap_or_else(|| DEFAULT_DATA_FILE.to_owned());
            match Data::load(&path) {
                Ok(data) => answer(&data, query),
                Err(reason) => {
                    wharf_guest::error!("data file unavailable: {reason}");
                    Reply::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "data_unavailable",
                        format!("The data file `{path}` could not be loaded; check the `data_file` config."),
                    )
                }
            }
        }
        Err(reply) => reply,
    };
    reply.into_response(&request_id)
}

/// Routes the request to a [`Query`]; `Err` is the 4xx to answer.
fn parse(request: &Request<Body>) -> Result<Query, Reply> {
    let method = request.method();
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed here; the data API is read-only (GET or HEAD)."),
        ));
    }
    let path = request.uri().path();
    // Split before decoding, so an encoded `/` stays inside its segment.
    let segments: Vec<String> =
        path.trim_matches('/').split('/').map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned()).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["api", "users", username] if !username.is_empty() => Ok(Query::User((*username).to_owned())),
        ["api", "purchases", "by_user", username] if !username.is_empty() => {
            let limit = match form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
                .find(|(key, _)| key == "limit")
            {
                None => None,
                Some((_, value)) => Some(
                    // 0 ..= i64::MAX, the document's range; past wasm32's usize it means "all".
                    value
                        .parse::<i64>()
                        .ok()
                        .and_then(|n| u64::try_from(n).ok())
                        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                        .ok_or(())
                        .map_err(|_| Reply::invalid_field("limit", "must be a non-negative integer"))?,
                ),
            };
            Ok(Query::PurchasesByUser { username: (*username).to_owned(), limit })
        }
        ["api", "purchases", "by_product", id] => Ok(Query::PurchasesByProduct(product_id(id)?)),
        ["api", "products", id] => Ok(Query::Product(product_id(id)?)),
        _ => Err(Reply::error(StatusCode::NOT_FOUND, "not_found", format!("Nothing is served at `{path}`."))),
    }
}

fn product_id(text: &str) -> Result<i64, Reply> {
    text.parse().map_err(|_| Reply::invalid_field("product_id", "must be an integer"))
}

fn answer(data: &Data, query: Query) -> Reply {
    match query {
        Query::User(username) => match data.user(&username) {
            Some(user) => Reply::ok(json!({ "user": user })),
            None => Reply::error(
                StatusCode::NOT_FOUND,
                "user_not_found",
                format!("User with username of '{username}' was not found"),
            ),
        },
        // An unknown user has no purchases: 200 with an empty list, as the
        // original Flask data API answered (only `/api/users/` says 404).
        Query::PurchasesByUser { username, limit } => {
            Reply::ok(json!({ "purchases": data.purchases_by_user(&username, limit) }))
        }
        Query::PurchasesByProduct(id) => Reply::ok(json!({ "purchases": data.purchases_by_product(id) })),
        Query::Product(id) => match data.product(id) {
            Some(product) => Reply::ok(json!({ "product": product })),
            None => Reply::error(StatusCode::NOT_FOUND, "product_not_found", format!("No product has id {id}.")),
        },
    }
}

/// Sleeps a uniformly random time between the configured bounds, as the
/// original data API did to make its callers' caching worth having.
async fn simulate_latency() {
    let low = config_ms("latency_min_ms", DEFAULT_LATENCY_MIN_MS);
    let high = config_ms("latency_max_ms", DEFAULT_LATENCY_MAX_MS);
    let (low, high) = (low.min(high), low.max(high));
    if high == 0 {
        return;
    }
    let mut bytes = [0u8; 8];
    wstd::rand::get_random_bytes(&mut bytes);
    let span = (high - low).saturating_add(1);
    let millis = low + u64::from_le_bytes(bytes) % span;
    if millis > 0 {
        wstd::task::sleep(Duration::from_millis(millis)).await;
    }
}

/// A millisecond count from config; a value that is not one is logged and
/// the default used, so a typo slows nothing down unexpectedly.
fn config_ms(key: &str, default: u64) -> u64 {
    match wharf_guest::config::get(key) {
        None => default,
        Some(text) => text.trim().parse().unwrap_or_else(|_| {
            wharf_guest::warn!("config `{key}` = `{text}` is not a whole number of milliseconds; using {default}");
            default
        }),
    }
}
