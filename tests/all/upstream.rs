//! A stand-in for Acme's "data API" (SPEC §3) that a test starts on
//! loopback: real HTTP over TCP, with a latency and a failure the test
//! controls, and a count of every request it received.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// What the server does and has seen.
#[derive(Default)]
struct State {
    data: Value,
    latency_ms: AtomicU64,
    /// When non-zero, every request answers this status.
    fail_status: AtomicU16,
    /// Answers carry `Cache-Control: no-store`.
    no_store: AtomicBool,
    hits: Mutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running data API.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Serves `data` (`{"users", "products", "purchases"}`) on a free port.
    pub async fn start(data: Value) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let state = Arc::new(State { data, ..State::default() });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&state, request).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Upstream { addr, state, task }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Delays every answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.state.latency_ms.store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Makes every answer `status` (0 = answer normally).
    pub fn set_failure(&self, status: u16) {
        self.state.fail_status.store(status, Ordering::SeqCst);
    }

    /// Marks answers `Cache-Control: no-store`.
    pub fn set_no_store(&self, no_store: bool) {
        self.state.no_store.store(no_store, Ordering::SeqCst);
    }

    /// Requests received for `path_and_query`.
    pub fn hits(&self, path_and_query: &str) -> usize {
        self.state.hits.lock().unwrap().get(path_and_query).copied().unwrap_or(0)
    }

    /// Every request received, by path and query.
    pub fn all_hits(&self) -> HashMap<String, usize> {
        self.state.hits.lock().unwrap().clone()
    }

    /// Requests received in total.
    pub fn total(&self) -> usize {
        self.state.hits.lock().unwrap().values().sum()
    }

    /// The most requests that were being answered at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(state: &State, request: hyper::Request<hyper::body::Incoming>) -> hyper::Response<Full<Bytes>> {
    let target = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    *state.hits.lock().unwrap().entry(target).or_default() += 1;
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(state.latency_ms.load(Ordering::SeqCst))).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);

    let (status, body) = match state.fail_status.load(Ordering::SeqCst) {
        0 => route(&state.data, request.uri().path(), request.uri().query().unwrap_or_default()),
        failing => (failing, json!({ "error": "upstream is failing on purpose" })),
    };
    let mut response = hyper::Response::builder().status(status).header("content-type", "application/json");
    if state.no_store.load(Ordering::SeqCst) {
        response = response.header("cache-control", "no-store");
    }
    response.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

/// The data API of SPEC §3 over `data`.
fn route(data: &Value, path: &str, query: &str) -> (u16, Value) {
    let list = |key: &str| data[key].as_array().cloned().unwrap_or_default();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "users", name] => match list("users").into_iter().find(|u| u["username"] == *name) {
            Some(user) => (200, json!({ "user": user })),
            None => (404, json!({ "error": "no such user" })),
        },
        ["api", "purchases", "by_user", name] => {
            let limit = query.strip_prefix("limit=").and_then(|l| l.parse::<usize>().ok()).unwrap_or(usize::MAX);
            let mut purchases: Vec<Value> = list("purchases").into_iter().filter(|p| p["username"] == *name).collect();
            purchases.sort_by_key(|p| std::cmp::Reverse(instant(&p["date"])));
            purchases.truncate(limit);
            // Oldest first on purpose: the component must sort them itself.
            purchases.reverse();
            (200, json!({ "purchases": purchases }))
        }
        ["api", "purchases", "by_product", id] => {
            let id: i64 = id.parse().unwrap_or(-1);
            let purchases: Vec<Value> = list("purchases").into_iter().filter(|p| p["product_id"] == id).collect();
            (200, json!({ "purchases": purchases }))
        }
        ["api", "products", id] => match list("products")
            .into_iter()
            .find(|p| Some(&p["id"]) == id.parse::<i64>().ok().map(Value::from).as_ref())
        {
            Some(product) => (200, json!({ "product": product })),
            None => (404, json!({ "error": "no such product" })),
        },
        _ => (404, json!({ "error": "not found" })),
    }
}

fn instant(date: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(date.as_str().unwrap_or_default()).map(|d| d.to_utc()).unwrap_or_default()
}
