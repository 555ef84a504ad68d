//! `acme`: Acme Megastore's popular purchases (SPEC §3).
//!
//! `GET /api/recent_purchases/{username}` answers the products among the
//! user's five most recent purchases, each with who bought it, most bought
//! first. The data comes from the data API at config `data_api_url` (the
//! bundled `acme-data` simulator by default); the host caches its answers
//! and bounds each call with a timeout.

mod popular;
mod upstream;

use futures_util::future::{join, join_all};
use percent_encoding::percent_decode_str;
use popular::PopularPurchase;
use upstream::DataApi;
use wharf_guest::reply::Reply;
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

/// How many of the user's purchases count as recent (SPEC §3).
const RECENT: usize = 5;

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let request_id = wharf_guest::request::request_id(&request);
    let reply = match handle(&request, &request_id).await {
        Ok(entries) => Reply::ok_serialized(&entries),
        Err(reply) => reply,
    };
    reply.into_response(&request_id)
}

async fn handle(request: &Request<Body>, request_id: &str) -> Result<Vec<PopularPurchase>, Reply> {
    let username = route(request)?;
    let api = DataApi::from_config(request_id)?;
    popular_purchases(&api, &username).await
}

/// The (percent-decoded) username asked about; `Err` is the 404 or 405.
fn route(request: &Request<Body>) -> Result<String, Reply> {
    let method = request.method();
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed here; use GET."),
        ));
    }
    let path = request.uri().path();
    let not_served = || Reply::error(StatusCode::NOT_FOUND, "not_found", format!("Nothing is served at `{path}`."));
    let rest = path.strip_prefix("/api/recent_purchases").ok_or_else(not_served)?;
    let username = match rest.strip_prefix('/') {
        Some(rest) => rest.strip_suffix('/').unwrap_or(rest),
        None if rest.is_empty() => "",
        None => return Err(not_served()),
    };
    if username.is_empty() {
        return Err(Reply::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No username given; ask for `/api/recent_purchases/{username}`.",
        ));
    }
    if username.contains('/') {
        return Err(not_served());
    }
    Ok(percent_decode_str(username).decode_utf8_lossy().into_owned())
}

/// SPEC §3's algorithm: the user must exist; their most recent purchases
/// name the products; each product's purchases and details are fetched,
/// all at once; the products are ranked by how often they were bought.
async fn popular_purchases(api: &DataApi, username: &str) -> Result<Vec<PopularPurchase>, Reply> {
    if !api.user_exists(username).await? {
        return Err(Reply::error(
            StatusCode::NOT_FOUND,
            "user_not_found",
            format!("User with username of '{username}' was not found"),
        ));
    }
    let recent = popular::most_recent(api.purchases_by_user(username, RECENT).await?, RECENT);
    let product_ids = popular::distinct_products(&recent);
    // Every call at once, so the slowest call, not their sum, sets the wait.
    let lookups = join_all(product_ids.iter().map(|&id| join(api.purchases_by_product(id), api.product(id)))).await;
    let mut products = Vec::with_capacity(lookups.len());
    for (purchases, product) in lookups {
        // A product whose details 404 is left out, whatever its purchases call said.
        let Some(product) = product? else { continue };
        products.push((product, purchases?));
    }
    Ok(popular::rank(products))
}
