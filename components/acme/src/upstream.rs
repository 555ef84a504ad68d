//! The data API client (SPEC §3): one method per upstream call, and each
//! failure turned into the 502 or 504 the client sees. Timeouts are the
//! host's (per component, from the manifest), so none are set here.

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use wstd::http::{Authority, Body, Client, Error, Request, StatusCode, Uri, error::ErrorCode};

use crate::popular::{Product, Purchase};
use wharf_guest::reply::Reply;
use wharf_guest::url::segment;

#[derive(Deserialize)]
struct UserAnswer {
    /// Only its presence is checked.
    #[serde(rename = "user")]
    _user: IgnoredAny,
}

#[derive(Deserialize)]
struct PurchasesAnswer {
    purchases: Vec<Purchase>,
}

#[derive(Deserialize)]
struct ProductAnswer {
    product: Product,
}

/// The data API at config `data_api_url`, called on behalf of one request.
pub(crate) struct DataApi {
    client: Client,
    base: String,
    request_id: String,
}

impl DataApi {
    /// `Err` is the 500 to answer when `data_api_url` is missing or not an
    /// `http(s)://host[:port][/prefix]` address.
    pub(crate) fn from_config(request_id: &str) -> Result<Self, Reply> {
        let configured = wharf_guest::config::get("data_api_url").unwrap_or_default();
        let base = configured.trim().trim_end_matches('/');
        let valid = base.parse::<Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some_and(plain_authority)
                && uri.query().is_none()
        });
        if !valid {
            wharf_guest::error!("config `data_api_url` = `{configured}` is not an http(s) base URL");
            return Err(Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "misconfigured",
                "The data API address (config `data_api_url`) is missing or invalid; tell the operator.",
            ));
        }
        Ok(Self { client: Client::new(), base: base.to_owned(), request_id: request_id.to_owned() })
    }

    /// Whether the data API knows the user (`GET /api/users/{username}`).
    pub(crate) async fn user_exists(&self, username: &str) -> Result<bool, Failure> {
        let path = format!("/api/users/{}", segment(username));
        Ok(self.get::<UserAnswer>(&path).await?.is_some())
    }

    /// At most `limit` of the user's purchases, in the upstream's order.
    pub(crate) async fn purchases_by_user(&self, username: &str, limit: usize) -> Result<Vec<Purchase>, Failure> {
        let path = format!("/api/purchases/by_user/{}?limit={limit}", segment(username));
        self.purchases(&path).await
    }

    /// Every purchase of the product, in the upstream's order.
    pub(crate) async fn purchases_by_product(&self, product_id: i64) -> Result<Vec<Purchase>, Failure> {
        self.purchases(&format!("/api/purchases/by_product/{product_id}")).await
    }

    /// The product's details; `None` when the data API answers 404.
    pub(crate) async fn product(&self, product_id: i64) -> Result<Option<Product>, Failure> {
        Ok(self.get::<ProductAnswer>(&format!("/api/products/{product_id}")).await?.map(|answer| answer.product))
    }

    /// A purchase list. The data API answers these with a list, empty or
    /// not, so a 404 here is a failure, not "no purchases".
    async fn purchases(&self, path: &str) -> Result<Vec<Purchase>, Failure> {
        match self.get::<PurchasesAnswer>(path).await? {
            Some(answer) => Ok(answer.purchases),
            None => Err(Failure::new(path, false, format!("answered {}", StatusCode::NOT_FOUND))),
        }
    }

    /// `GET {base}{path}`: `Ok(None)` on 404, the parsed body on 2xx.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, Failure> {
        let mut request = Request::get(format!("{}{path}", self.base)).header("accept", "application/json");
        if !self.request_id.is_empty() {
            // So the data API's log lines carry the same id as ours.
            request = request.header("x-request-id", self.request_id.as_str());
        }
        let request = request
            .body(Body::empty())
            .map_err(|e| Failure::new(path, false, format!("could not build the request: {e}")))?;
        let mut response = self.client.send(request).await.map_err(|e| Failure::from_error(path, &e))?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            status if status.is_success() => {}
            status => return Err(Failure::new(path, false, format!("answered {status}"))),
        }
        let body = response.body_mut().contents().await.map_err(|e| Failure::from_error(path, &e))?;
        serde_json::from_slice(body)
            .map(Some)
            .map_err(|e| Failure::new(path, false, format!("answered a body that is not the expected JSON: {e}")))
    }
}

/// `host` or `host:port` with a valid port: `Uri` also accepts user info
/// and a port that is not a number, which would only fail at call time.
fn plain_authority(authority: &Authority) -> bool {
    match authority.port() {
        Some(port) => authority.as_str() == format!("{}:{}", authority.host(), port.as_str()),
        None => authority.as_str() == authority.host(),
    }
}

/// Why an upstream call gave no usable answer.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The path called (with its query), e.g. `/api/products/42`.
    call: String,
    timed_out: bool,
    detail: String,
}

impl Failure {
    fn new(call: &str, timed_out: bool, detail: String) -> Self {
        Self { call: call.to_owned(), timed_out, detail }
    }

    fn from_error(call: &str, error: &Error) -> Self {
        let detail = format!("{error:#}");
        let timed_out = match error.downcast_ref::<ErrorCode>() {
            Some(code) => matches!(
                code,
                ErrorCode::ConnectionTimeout
                    | ErrorCode::DnsTimeout
                    | ErrorCode::ConnectionReadTimeout
                    | ErrorCode::ConnectionWriteTimeout
                    | ErrorCode::HttpResponseTimeout
            ),
            // wstd reports a failed body read as text only (the error code's
            // name, e.g. `ConnectionReadTimeout`), so look for it there.
            None => detail.contains("Timeout"),
        };
        Self::new(call, timed_out, detail)
    }
}

impl From<Failure> for Reply {
    /// The full error goes to the log; the client learns which call failed.
    fn from(failure: Failure) -> Self {
        let Failure { call, timed_out, detail } = failure;
        wharf_guest::error!("data API call `GET {call}` failed: {detail}");
        if timed_out {
            Reply::error(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("The data API did not answer `GET {call}` in time; retry shortly."),
            )
        } else {
            Reply::error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("The data API call `GET {call}` failed; retry shortly."),
            )
        }
    }
}
