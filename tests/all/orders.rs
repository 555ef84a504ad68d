//! SPEC §5 (order rules): `orders` against the bundled `user-service` and
//! `product-service` simulators (in-process), and against a stand-in on
//! loopback where a test must count requests: exact answers, unknown ids,
//! retries of a flaky, failing or slow service, concurrent look-ups, the
//! cache bypass, the transactional outbox to `WS /ws/orders/`, and the
//! operator view of unpublished orders.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::both_backends;
use crate::mandrill::next_event;
use crate::support::{Backend, Wharf, error_code, eventually};

/// What a test host runs: `orders` with extra config, and either the two
/// simulators (with their config) or a [`Services`] stand-in at `services`.
struct Setup {
    orders: &'static str,
    users: &'static str,
    products: &'static str,
    services: Option<String>,
    /// Declare `[websockets.orders]`; without it every publish is refused.
    websocket: bool,
    max_attempts: u32,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            orders: "",
            users: r#"delay_ms = "0""#,
            products: r#"delay_ms = "0""#,
            services: None,
            websocket: true,
            max_attempts: 5,
        }
    }
}

impl Setup {
    fn manifest(&self) -> String {
        let (users_url, products_url) = match &self.services {
            Some(url) => (url.clone(), url.clone()),
            None => ("http://user-service.wharf.internal".into(), "http://product-service.wharf.internal".into()),
        };
        let mut config = format!(r#"user_service_url = "{users_url}", product_service_url = "{products_url}""#);
        if !self.orders.is_empty() {
            config = format!("{config}, {}", self.orders);
        }
        let mut manifest = format!(
            r#"
[components.orders]
wasm = "{{wasm:orders}}"
routes = [
    {{ path = "/v1/order", methods = ["POST"] }},
    {{ path = "/v1/order/*", methods = ["GET", "HEAD"] }},
    {{ path = "/v1/orders", methods = ["GET", "HEAD"] }},
]
grants = {{ interfaces = ["config", "log", "store", "queue", "hub"], outbound = ["{users_url}", "{products_url}"] }}
migrations = "{{repo}}/components/orders/migrations"
config = {{ {config} }}
outbound = {{ first_byte_timeout = "5s" }}
limits = {{ deadline = "20s" }}
queue = {{ workers = 2, max_attempts = {max_attempts}, backoff = "100ms", max_backoff = "1s" }}
operator_views = {{ unpublished = "/v1/_ops/unpublished" }}

[components.user-service]
wasm = "{{wasm:user_service}}"
routes = [{{ path = "/users/*", methods = ["GET", "HEAD"] }}]
grants = {{ interfaces = ["config", "log", "store"] }}
migrations = "{{repo}}/components/user-service/migrations"
config = {{ {users} }}

[components.product-service]
wasm = "{{wasm:product_service}}"
routes = [{{ path = "/products/*", methods = ["GET", "HEAD"] }}]
grants = {{ interfaces = ["config", "log"] }}
config = {{ {products} }}
"#,
            max_attempts = self.max_attempts,
            users = self.users,
            products = self.products,
        );
        if self.websocket {
            manifest.push_str(
                r#"
[websockets.orders]
path = "/ws/orders/"
topic = "orders"
publishers = ["orders"]
"#,
            );
        }
        manifest
    }

    async fn start(&self, backend: Backend) -> Wharf {
        Wharf::start_on(&self.manifest(), backend).await
    }
}

const ADA_CLASSIC_BOX: &str = r#"{"user_id": "7c11e1ce2741", "product_code": "classic-box"}"#;

/// POSTs `body` (raw) to `/v1/order`.
async fn post_order(wharf: &Wharf, body: &str) -> reqwest::Response {
    wharf
        .client
        .post(wharf.url("/v1/order"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST /v1/order")
}

/// The status and JSON answer of an order for `user_id` and `product_code`.
async fn order(wharf: &Wharf, user_id: &str, product_code: &str) -> (u16, Value) {
    wharf.post_json("/v1/order", json!({"user_id": user_id, "product_code": product_code})).await
}

/// How many orders `GET /v1/orders` counts.
async fn stored(wharf: &Wharf) -> i64 {
    let (status, page) = wharf.get_json("/v1/orders").await;
    assert_eq!(status, 200, "{page}");
    page["total"].as_i64().expect("total")
}

/// How often the host log has `line`.
fn logged(wharf: &Wharf, line: &str) -> usize {
    wharf.log().matches(line).count()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client of `WS /ws/orders/`, subscribed once this returns.
async fn subscribe(wharf: &Wharf) -> Socket {
    tokio_tungstenite::connect_async(format!("ws://{}/ws/orders/", wharf.addr)).await.expect("websocket connect").0
}

both_backends! {
    async fn an_order_is_priced_from_both_services_stored_and_announced(backend: Backend) {
        let wharf = Setup::default().start(backend).await;
        let mut socket = subscribe(&wharf).await;

        let response = post_order(&wharf, ADA_CLASSIC_BOX).await;
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["location"], "/v1/order/1");
        let created: Value = response.json().await.unwrap();
        let created_at = created["created_at"].as_str().expect("created_at").to_owned();
        assert!(created_at.ends_with('Z'), "{created_at}");
        chrono::DateTime::parse_from_rfc3339(&created_at).expect("RFC 3339");
        assert_eq!(
            created,
            json!({
                "id": 1,
                "user_id": "7c11e1ce2741",
                "product_code": "classic-box",
                "customer_fullname": "Ada Lovelace",
                "product_name": "Classic Box",
                "total_amount": 9.99,
                "created_at": created_at,
                "published": false,
            })
        );

        // The outbox job announces it, then marks it published.
        let message = next_event(&mut socket).await;
        let mut published = created.clone();
        published["published"] = json!(true);
        assert_eq!(message, json!({"type": "order_created", "order": published}));
        let fetched = eventually(Duration::from_secs(10), "order 1 marked published", || async {
            let (status, order) = wharf.get_json("/v1/order/1").await;
            assert_eq!(status, 200, "{order}");
            (order["published"] == true).then_some(order)
        })
        .await;
        assert_eq!(fetched, published);

        let (status, page) = wharf.get_json("/v1/orders").await;
        assert_eq!(status, 200);
        assert_eq!(page, json!({"items": [published], "total": 1, "limit": 50, "offset": 0}));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_listed_newest_first_paged_and_filtered_by_user() {
    let wharf = Setup::default().start(Backend::Sqlite).await;
    for (user, product) in
        [("7c11e1ce2741", "classic-box"), ("3f9a0b5c7d21", "snack-box"), ("7c11e1ce2741", "party-box")]
    {
        let (status, body) = order(&wharf, user, product).await;
        assert_eq!(status, 201, "{body}");
    }
    let ids =
        |page: &Value| page["items"].as_array().unwrap().iter().map(|o| o["id"].as_i64().unwrap()).collect::<Vec<_>>();

    let (_, page) = wharf.get_json("/v1/orders").await;
    assert_eq!((ids(&page), page["total"].as_i64()), (vec![3, 2, 1], Some(3)));
    // Prices are JSON numbers as the product service wrote them.
    assert_eq!(page["items"][0]["total_amount"], json!(29));
    assert_eq!(page["items"][1]["total_amount"], json!(4.5));
    assert_eq!(page["items"][1]["customer_fullname"], "Grace Hopper");

    let (_, page) = wharf.get_json("/v1/orders?limit=1&offset=1").await;
    assert_eq!((ids(&page), page["total"].as_i64(), page["limit"].as_i64()), (vec![2], Some(3), Some(1)));
    let (_, page) = wharf.get_json("/v1/orders?user_id=7c11e1ce2741").await;
    assert_eq!((ids(&page), page["total"].as_i64()), (vec![3, 1], Some(2)));
    let (_, page) = wharf.get_json("/v1/orders?user_id=nobody").await;
    assert_eq!((ids(&page), page["total"].as_i64()), (vec![], Some(0)));
    let (_, page) = wharf.get_json("/v1/orders?limit=100000").await;
    assert_eq!(page["limit"], 500);

    let response = wharf.get("/v1/orders?limit=-1").await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_code(response).await, "invalid_fields");
    for missing in ["/v1/order/4", "/v1/order/abc", "/v1/order/0"] {
        let response = wharf.get(missing).await;
        assert_eq!(response.status(), 404, "{missing}");
        assert_eq!(error_code(response).await, "not_found");
    }
    let response = wharf.get("/v1/order").await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(error_code(response).await, "method_not_allowed");
    // The operator view has no public route.
    let response = wharf.get("/v1/_ops/unpublished").await;
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(response).await, "not_found");
}

both_backends! {
    async fn an_unknown_user_or_product_is_422_and_stores_nothing(backend: Backend) {
        let wharf = Setup::default().start(backend).await;
        for (user, product, code) in [
            ("nobody", "classic-box", "unknown_user"),
            ("7c11e1ce2741", "no-such-box", "unknown_product"),
            ("nobody", "no-such-box", "unknown_user"),
        ] {
            let response = post_order(&wharf, &json!({"user_id": user, "product_code": product}).to_string()).await;
            assert_eq!(response.status(), 422, "{user} {product}");
            assert_eq!(error_code(response).await, code);
        }
        assert_eq!(stored(&wharf).await, 0);
    }
}

both_backends! {
    async fn the_flaky_user_succeeds_through_a_retry(backend: Backend) {
        let setup = Setup { users: r#"delay_ms = "0", flaky_user_id = "e6f24d7d1c7e""#, ..Setup::default() };
        let wharf = setup.start(backend).await;
        for n in 1..=2 {
            let (status, body) = order(&wharf, "e6f24d7d1c7e", "classic-box").await;
            assert_eq!(status, 201, "{body}");
            assert_eq!(body["customer_fullname"], "Alan Turing");
            // Odd calls fail, even ones answer: each order took one retry.
            assert_eq!(logged(&wharf, "answered GET /users/e6f24d7d1c7e with 500"), n);
            assert_eq!(logged(&wharf, "answered GET /users/e6f24d7d1c7e with 200"), n);
        }
        assert_eq!(stored(&wharf).await, 2);
        // The alternation is the service's, whoever calls (a client here).
        assert_eq!(wharf.get("/users/e6f24d7d1c7e").await.status(), 500);
        assert_eq!(wharf.get("/users/e6f24d7d1c7e").await.status(), 200);
        assert_eq!(wharf.get("/users/7c11e1ce2741").await.status(), 200);
    }
}

both_backends! {
    async fn a_failing_service_is_retried_twice_then_503_and_nothing_is_stored(backend: Backend) {
        let setup = Setup { products: r#"delay_ms = "0", failure_rate = "1""#, ..Setup::default() };
        let wharf = setup.start(backend).await;
        let response = post_order(&wharf, ADA_CLASSIC_BOX).await;
        assert_eq!(response.status(), 503);
        assert_eq!(error_code(response).await, "upstream_unavailable");
        assert_eq!(logged(&wharf, "answered GET /products/classic-box with 503"), 3, "{}", wharf.log());
        assert_eq!(stored(&wharf).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_serve_the_seeded_data_uncacheable() {
    let setup = Setup { products: r#"delay_ms = "0", failing_products = "veggie-box""#, ..Setup::default() };
    let wharf = setup.start(Backend::Sqlite).await;
    for (path, expected) in [
        ("/users/7c11e1ce2741", json!({"id": "7c11e1ce2741", "firstName": "Ada", "lastName": "Lovelace"})),
        ("/users/e6f24d7d1c7e", json!({"id": "e6f24d7d1c7e", "firstName": "Alan", "lastName": "Turing"})),
        ("/products/classic-box", json!({"code": "classic-box", "name": "Classic Box", "price": 9.99})),
        ("/products/family-box", json!({"code": "family-box", "name": "Family Box", "price": 14.99})),
    ] {
        let response = wharf.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(response.json::<Value>().await.unwrap(), expected, "{path}");
    }
    for (path, status, code) in [
        ("/users/nobody", 404, "user_not_found"),
        ("/users/", 404, "not_found"),
        ("/products/nothing", 404, "product_not_found"),
        ("/products/veggie-box", 500, "injected_failure"),
    ] {
        let response = wharf.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(error_code(response).await, code, "{path}");
    }
    // A product that always fails is an unavailable service to orders.
    let (status, body) = order(&wharf, "7c11e1ce2741", "veggie-box").await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("upstream_unavailable")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_body_is_400_and_calls_no_service() {
    let services = Services::start().await;
    let wharf = Setup { services: Some(services.url()), ..Setup::default() }.start(Backend::Sqlite).await;
    for body in ["not json", "{\"user_id\": ", "[1, 2]", "\"text\""] {
        let response = post_order(&wharf, body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(error_code(response).await, "invalid_json", "{body}");
    }
    for (body, fields) in [
        (json!({}), json!({"user_id": "is required", "product_code": "is required"})),
        (json!({"user_id": 7, "product_code": "classic-box"}), json!({"user_id": "must be a string"})),
        (
            json!({"user_id": "  ", "product_code": null}),
            json!({
                "user_id": "must be a non-empty string of at most 200 characters, without control characters",
                "product_code": "must be a string",
            }),
        ),
    ] {
        let (status, answer) = wharf.post_json("/v1/order", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["code"], "invalid_fields", "{answer}");
        assert_eq!(answer["error"]["fields"], fields, "{answer}");
    }
    assert_eq!(services.total(), 0);
    assert_eq!(stored(&wharf).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_trimmed_before_they_are_checked_and_stored() {
    let wharf = Setup::default().start(Backend::Sqlite).await;
    let (status, created) = order(&wharf, " 7c11e1ce2741\n", "\tclassic-box ").await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["user_id"].as_str(), created["product_code"].as_str()),
        (Some("7c11e1ce2741"), Some("classic-box"))
    );
    let (status, answer) = order(&wharf, "7c11e1ce2741", "classic\u{7}box").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(stored(&wharf).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_and_the_product_are_fetched_at_the_same_time() {
    let services = Services::start().await;
    services.set_latency(Service::Users, Duration::from_millis(300));
    services.set_latency(Service::Products, Duration::from_millis(300));
    let wharf = Setup { services: Some(services.url()), ..Setup::default() }.start(Backend::Sqlite).await;
    let (status, body) = order(&wharf, "7c11e1ce2741", "classic-box").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(services.hits("/users/7c11e1ce2741"), 1);
    assert_eq!(services.hits("/products/classic-box"), 1);
    // Each call is held 300 ms by the services: one in flight while the
    // other arrived means they were made concurrently, not one after the other.
    assert_eq!(services.max_in_flight(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_asks_the_services_afresh_past_the_host_cache() {
    let services = Services::start().await;
    let wharf = Setup { services: Some(services.url()), ..Setup::default() }.start(Backend::Sqlite).await;
    for _ in 0..3 {
        let (status, body) = order(&wharf, "7c11e1ce2741", "classic-box").await;
        assert_eq!(status, 201, "{body}");
    }
    assert_eq!(services.hits("/users/7c11e1ce2741"), 3);
    assert_eq!(services.hits("/products/classic-box"), 3);
    assert_eq!(services.no_cache_requests(), 6, "every request says `cache-control: no-cache`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_service_times_out_and_is_retried_then_503() {
    let services = Services::start().await;
    services.set_latency(Service::Users, Duration::from_secs(2));
    let setup = Setup { orders: r#"upstream_timeout_ms = "200""#, services: Some(services.url()), ..Setup::default() };
    let wharf = setup.start(Backend::Sqlite).await;
    let response = post_order(&wharf, ADA_CLASSIC_BOX).await;
    assert_eq!(response.status(), 503);
    assert_eq!(error_code(response).await, "upstream_unavailable");
    assert_eq!(services.hits("/users/7c11e1ce2741"), 3, "one call and two retries");
    assert_eq!(services.hits("/products/classic-box"), 1);
    assert_eq!(stored(&wharf).await, 0);
    let log = wharf.log();
    assert_eq!(log.matches("retrying in 100 ms").count(), 1, "{log}");
    assert_eq!(log.matches("retrying in 200 ms").count(), 1, "{log}");
    assert!(log.contains("attempt 3 of 3; giving up"), "{log}");

    // Once the service is fast again, so is the order.
    services.set_latency(Service::Users, Duration::ZERO);
    let (status, body) = order(&wharf, "7c11e1ce2741", "classic-box").await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_but_another_client_error_is_not() {
    let services = Services::start().await;
    let wharf = Setup { services: Some(services.url()), ..Setup::default() }.start(Backend::Sqlite).await;

    services.set_failure(Service::Products, 502);
    let (status, body) = order(&wharf, "7c11e1ce2741", "classic-box").await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("upstream_unavailable")));
    assert_eq!(services.hits("/products/classic-box"), 3);

    // A 400 will not change by asking again: one call, and 502.
    services.set_failure(Service::Products, 400);
    let (status, body) = order(&wharf, "7c11e1ce2741", "classic-box").await;
    assert_eq!((status, body["error"]["code"].as_str()), (502, Some("upstream_error")));
    assert_eq!(services.hits("/products/classic-box"), 4);
    assert_eq!(stored(&wharf).await, 0);
}

both_backends! {
    async fn orders_never_announced_are_listed_by_the_operator_view(backend: Backend) {
        // No `[websockets.orders]`: every publish is refused, so no order is published.
        let wharf = Setup { websocket: false, max_attempts: 2, ..Setup::default() }.start(backend).await;
        for product in ["classic-box", "family-box", "snack-box"] {
            let (status, body) = order(&wharf, "7c11e1ce2741", product).await;
            assert_eq!(status, 201, "{body}");
        }
        let view = |query: &'static str| {
            let url = wharf.admin_url(&format!("/components/orders/views/unpublished{query}"));
            let client = wharf.client.clone();
            async move {
                let response = client.get(url).send().await.expect("GET view");
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let page = eventually(Duration::from_secs(20), "every outbox job dead", || async {
            let (status, page) = view("").await;
            assert_eq!(status, 200, "{page}");
            page["items"].as_array().unwrap().iter().all(|o| o["delivery"]["status"] == "dead").then_some(page)
        })
        .await;
        assert_eq!(page["total"], 3, "{page}");
        let items = page["items"].as_array().unwrap();
        // Oldest first, each with why its announcement failed.
        assert_eq!(items.iter().map(|o| o["id"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(items[0]["product_name"], "Classic Box");
        assert_eq!(items[0]["published"], false);
        assert_eq!(items[0]["delivery"]["attempts"], 2, "{page}");
        let reason = items[0]["delivery"]["last_error"].as_str().unwrap_or_default();
        assert!(reason.contains("could not publish order 1"), "{reason}");

        let (status, page) = view("?limit=1&offset=1").await;
        assert_eq!(status, 200, "{page}");
        assert_eq!((page["total"].as_i64(), page["limit"].as_i64()), (Some(3), Some(1)));
        assert_eq!(page["items"][0]["id"], 2);
        let (status, answer) = view("?limit=x").await;
        assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_fields")));
        // Clients see the same orders, never published.
        assert_eq!(stored(&wharf).await, 3);
        assert_eq!(wharf.get_json("/v1/order/1").await.1["published"], false);
    }
}

/// Which half of [`Services`].
#[derive(Clone, Copy)]
enum Service {
    Users = 0,
    Products = 1,
}

/// A user service and a product service in one, on loopback (real TCP),
/// for what the bundled simulators cannot show: how many requests arrived,
/// how many at once, with which headers. Knows Ada and the classic box.
struct Services {
    addr: SocketAddr,
    state: Arc<ServicesState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ServicesState {
    latency_ms: [AtomicU64; 2],
    /// When non-zero, that service answers this status.
    fail_status: [AtomicU16; 2],
    hits: Mutex<HashMap<String, usize>>,
    no_cache: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Services {
    async fn start() -> Services {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind services");
        let addr = listener.local_addr().expect("services addr");
        let state = Arc::new(ServicesState::default());
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(state.answer(request).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Services { addr, state, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_latency(&self, service: Service, latency: Duration) {
        self.state.latency_ms[service as usize].store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    fn set_failure(&self, service: Service, status: u16) {
        self.state.fail_status[service as usize].store(status, Ordering::SeqCst);
    }

    fn hits(&self, path: &str) -> usize {
        self.state.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.state.hits.lock().unwrap().values().sum()
    }

    fn no_cache_requests(&self) -> usize {
        self.state.no_cache.load(Ordering::SeqCst)
    }

    fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ServicesState {
    async fn answer(&self, request: hyper::Request<hyper::body::Incoming>) -> hyper::Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        *self.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        if request.headers().get("cache-control").is_some_and(|v| v == "no-cache") {
            self.no_cache.fetch_add(1, Ordering::SeqCst);
        }
        let service = if path.starts_with("/products/") { Service::Products as usize } else { Service::Users as usize };
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(self.latency_ms[service].load(Ordering::SeqCst))).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);

        let (status, body) = match (self.fail_status[service].load(Ordering::SeqCst), path.as_str()) {
            (0, "/users/7c11e1ce2741") => {
                (200, json!({"id": "7c11e1ce2741", "firstName": "Ada", "lastName": "Lovelace"}))
            }
            (0, "/products/classic-box") => (200, json!({"code": "classic-box", "name": "Classic Box", "price": 9.99})),
            (0, _) => (404, json!({"error": "not found"})),
            (failing, _) => (failing, json!({"error": "failing on purpose"})),
        };
        hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }
}
