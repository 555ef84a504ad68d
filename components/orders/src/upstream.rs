//! The user and product services (SPEC §5). Each look-up is one GET, each
//! attempt bounded by a timeout the guest sets on its own request (the
//! manifest's `outbound` timeouts are the ceiling), retried with doubling
//! backoff after a timeout, a transport failure or a 5xx. Every request
//! says `Cache-Control: no-cache`, so the host's outbound cache never answers
//! it: an order is priced from what the services say now.

use serde_json::{Number, Value as Json};
use wstd::http::{Body, Client, Request, StatusCode, Uri, error::ErrorCode};
use wstd::time::Duration;

use wharf_guest::reply::Reply;
use wharf_guest::url::segment;

const DEFAULT_USER_SERVICE_URL: &str = "http://user-service.wharf.internal";
const DEFAULT_PRODUCT_SERVICE_URL: &str = "http://product-service.wharf.internal";
const DEFAULT_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_RETRIES: u64 = 2;
const DEFAULT_BACKOFF_MS: u64 = 100;
/// More would only hold the client longer than any deadline allows.
const MAX_RETRIES: u64 = 10;

/// What a look-up found out.
pub(crate) enum Lookup<T> {
    Found(T),
    /// The service answered 404: it does not know the id.
    Unknown,
    /// No usable answer; the reply (already logged) says why.
    Failed(Reply),
}

/// The user, as an order needs it.
pub(crate) struct Customer {
    /// "firstName lastName".
    pub(crate) full_name: String,
}

/// The product, as an order needs it.
pub(crate) struct Product {
    pub(crate) name: String,
    /// Exactly as the service wrote it (`9.99`).
    pub(crate) price: Number,
}

/// The two services, called on behalf of one request.
pub(crate) struct Upstreams {
    client: Client,
    users: String,
    products: String,
    retries: u64,
    backoff_ms: u64,
    request_id: String,
}

/// One attempt's outcome.
enum Attempt {
    Answer(Lookup<Json>),
    /// Worth another try: a timeout, a transport failure, a 5xx.
    Retry(String),
}

impl Upstreams {
    /// From config `user_service_url`, `product_service_url`,
    /// `upstream_timeout_ms`, `upstream_retries` and `retry_backoff_ms`;
    /// `Err` is the 500 to answer when a URL is not usable.
    pub(crate) fn from_config(request_id: &str) -> Result<Self, Reply> {
        let users = base_url("user_service_url", DEFAULT_USER_SERVICE_URL)?;
        let products = base_url("product_service_url", DEFAULT_PRODUCT_SERVICE_URL)?;
        let timeout = Duration::from_millis(config_number("upstream_timeout_ms", DEFAULT_TIMEOUT_MS).max(1));
        let mut client = Client::new();
        client.set_connect_timeout(timeout);
        client.set_first_byte_timeout(timeout);
        client.set_between_bytes_timeout(timeout);
        Ok(Self {
            client,
            users,
            products,
            retries: config_number("upstream_retries", DEFAULT_RETRIES).min(MAX_RETRIES),
            backoff_ms: config_number("retry_backoff_ms", DEFAULT_BACKOFF_MS),
            request_id: request_id.to_owned(),
        })
    }

    /// `GET {user_service_url}/users/{id}` → `{id, firstName, lastName}`.
    pub(crate) async fn customer(&self, user_id: &str) -> Lookup<Customer> {
        let url = format!("{}/users/{}", self.users, segment(user_id));
        match self.get("user service", &url).await {
            Lookup::Found(user) => {
                let name = |key: &str| user.get(key).and_then(Json::as_str).map(str::trim);
                match (name("firstName"), name("lastName")) {
                    (Some(first), Some(last)) => {
                        Lookup::Found(Customer { full_name: format!("{first} {last}").trim().to_owned() })
                    }
                    _ => Lookup::Failed(unusable("user service", &url, "no string `firstName` and `lastName`")),
                }
            }
            Lookup::Unknown => Lookup::Unknown,
            Lookup::Failed(reply) => Lookup::Failed(reply),
        }
    }

    /// `GET {product_service_url}/products/{code}` → `{code, name, price}`.
    pub(crate) async fn product(&self, code: &str) -> Lookup<Product> {
        let url = format!("{}/products/{}", self.products, segment(code));
        match self.get("product service", &url).await {
            Lookup::Found(product) => match (product.get("name").and_then(Json::as_str), product.get("price")) {
                (Some(name), Some(Json::Number(price))) => {
                    Lookup::Found(Product { name: name.to_owned(), price: price.clone() })
                }
                _ => Lookup::Failed(unusable("product service", &url, "no string `name` and number `price`")),
            },
            Lookup::Unknown => Lookup::Unknown,
            Lookup::Failed(reply) => Lookup::Failed(reply),
        }
    }

    /// GETs `url` until it gives an answer or the retries run out.
    async fn get(&self, service: &str, url: &str) -> Lookup<Json> {
        let attempts = self.retries + 1;
        let mut attempt = 1;
        loop {
            let why = match self.attempt(service, url).await {
                Attempt::Answer(lookup) => return lookup,
                Attempt::Retry(why) => why,
            };
            if attempt == attempts {
                wharf_guest::error!(
                    "{service} call `GET {url}` failed ({why}), attempt {attempt} of {attempts}; giving up"
                );
                return Lookup::Failed(Reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream_unavailable",
                    format!(
                        "The {service} is unavailable ({attempts} attempts failed); nothing was stored, retry shortly."
                    ),
                ));
            }
            let wait = self.backoff_ms.saturating_mul(1 << (attempt - 1).min(20));
            wharf_guest::warn!(
                "{service} call `GET {url}` failed ({why}), attempt {attempt} of {attempts}; retrying in {wait} ms"
            );
            if wait > 0 {
                wstd::task::sleep(Duration::from_millis(wait)).await;
            }
            attempt += 1;
        }
    }

    async fn attempt(&self, service: &str, url: &str) -> Attempt {
        let mut request = Request::get(url)
            .header("accept", "application/json")
            // Past the host's response cache: prices and names must be current,
            // and a cached answer would hide the service's failures.
            .header("cache-control", "no-cache");
        if !self.request_id.is_empty() {
            // So the service's log lines carry the same id as ours.
            request = request.header("x-request-id", self.request_id.as_str());
        }
        let request = match request.body(Body::empty()) {
            Ok(request) => request,
            Err(e) => return Attempt::Answer(Lookup::Failed(misconfigured(service, url, &e.to_string()))),
        };
        let mut response = match self.client.send(request).await {
            Ok(response) => response,
            Err(e) => {
                let detail = format!("{e:#}");
                return match e.downcast_ref::<ErrorCode>() {
                    // Retrying cannot help: the grants or the URL are wrong.
                    Some(
                        ErrorCode::HttpRequestDenied
                        | ErrorCode::HttpRequestUriInvalid
                        | ErrorCode::HttpRequestMethodInvalid
                        | ErrorCode::LoopDetected,
                    ) => Attempt::Answer(Lookup::Failed(misconfigured(service, url, &detail))),
                    _ => Attempt::Retry(detail),
                };
            }
        };
        let status = response.status();
        match status {
            StatusCode::NOT_FOUND => return Attempt::Answer(Lookup::Unknown),
            status if status.is_server_error() => return Attempt::Retry(format!("answered {status}")),
            status if status.is_success() => {}
            status => return Attempt::Answer(Lookup::Failed(unusable(service, url, &format!("answered {status}")))),
        }
        let body = match response.body_mut().contents().await {
            Ok(body) => body,
            Err(e) => return Attempt::Retry(format!("the body could not be read: {e:#}")),
        };
        match serde_json::from_slice::<Json>(body) {
            Ok(json @ Json::Object(_)) => Attempt::Answer(Lookup::Found(json)),
            Ok(_) => Attempt::Answer(Lookup::Failed(unusable(service, url, "the body is not a JSON object"))),
            Err(e) => Attempt::Answer(Lookup::Failed(unusable(service, url, &format!("the body is not JSON: {e}")))),
        }
    }
}

/// 502: the service answered, but not something an order can use.
fn unusable(service: &str, url: &str, detail: &str) -> Reply {
    wharf_guest::error!("{service} call `GET {url}` gave an unusable answer: {detail}");
    Reply::error(
        StatusCode::BAD_GATEWAY,
        "upstream_error",
        format!("The {service} gave an answer that could not be used; nothing was stored, retry shortly."),
    )
}

/// 500: the call cannot be made as configured.
fn misconfigured(service: &str, url: &str, detail: &str) -> Reply {
    wharf_guest::error!("{service} call `GET {url}` cannot be made: {detail}");
    Reply::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "misconfigured",
        format!("The {service} cannot be called as configured; tell the operator."),
    )
}

/// A base URL from config (default `fallback`), without its trailing `/`;
/// `Err` is the 500 to answer when it is not `http(s)://host[:port][/prefix]`.
fn base_url(key: &str, fallback: &str) -> Result<String, Reply> {
    let configured = wharf_guest::config::get(key).filter(|v| !v.trim().is_empty());
    let base = configured.as_deref().unwrap_or(fallback).trim().trim_end_matches('/').to_owned();
    let valid = base.parse::<Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() && uri.query().is_none()
    });
    if valid {
        Ok(base)
    } else {
        wharf_guest::error!("config `{key}` = `{base}` is not an http(s) base URL");
        Err(Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "misconfigured",
            format!("The address in config `{key}` is invalid; tell the operator."),
        ))
    }
}

/// A whole number from config; absent or empty gives `default`, anything
/// else that is not a number is logged and gives `default` too.
fn config_number(key: &str, default: u64) -> u64 {
    match wharf_guest::config::get(key).filter(|v| !v.trim().is_empty()) {
        None => default,
        Some(text) => text.trim().parse().unwrap_or_else(|_| {
            wharf_guest::warn!("config `{key}` = `{text}` is not a whole number; using {default}");
            default
        }),
    }
}
