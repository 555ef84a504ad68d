//! SPEC §3 (Acme popular purchases) and outbound HTTP through the host:
//! the exact answer over known data, the host's cache and single-flight,
//! concurrent upstream calls, timeouts, upstream failures, the allow-list,
//! and the bundled simulator reached in-process.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Wharf, error_code, repo_root};
use crate::upstream::Upstream;

/// Data whose answer is worked out by hand below: alice has six purchases
/// (the oldest must not count), bought product 1 twice, product 4 has no
/// details, products 2 and 3 tie, and one date has a `-03:00` offset that
/// sorts wrongly as a string.
fn known_data() -> Value {
    let purchase = |id: u32, username: &str, product: u32, date: &str| json!({ "id": id, "username": username, "product_id": product, "date": date });
    json!({
        "users": [
            { "username": "alice", "email": "alice@example.com" },
            { "username": "bob", "email": "bob@example.com" },
            { "username": "carol", "email": "carol@example.com" },
            { "username": "dave", "email": "dave@example.com" },
        ],
        "products": [
            { "id": 1, "face": "(o_o)", "price": 100, "size": 10 },
            { "id": 2, "face": "(^_^)", "price": 200, "size": 20 },
            { "id": 3, "face": "。◕‿◕。", "price": 300, "size": 30 },
            { "id": 5, "face": "(x_x)", "price": 500, "size": 50 },
            { "id": 6, "face": "(-_-)", "price": 600, "size": 60 },
        ],
        "purchases": [
            purchase(1, "alice", 1, "2021-01-06T00:00:00Z"),
            purchase(2, "alice", 2, "2021-01-02T00:00:00.250000+00:00"),
            purchase(3, "alice", 1, "2021-01-04T00:00:00Z"),
            purchase(4, "alice", 4, "2021-01-03T00:00:00Z"),
            purchase(5, "alice", 3, "2021-01-04T23:00:00-03:00"),
            purchase(6, "alice", 6, "2021-01-01T00:00:00Z"),
            purchase(7, "bob", 1, "2020-12-01T00:00:00Z"),
            purchase(8, "carol", 1, "2020-12-02T00:00:00Z"),
            purchase(9, "bob", 2, "2020-12-03T00:00:00Z"),
            purchase(10, "carol", 3, "2020-12-04T00:00:00Z"),
            purchase(11, "bob", 3, "2020-12-05T00:00:00Z"),
            purchase(12, "carol", 5, "2020-12-06T00:00:00Z"),
            purchase(13, "carol", 2, "2020-12-07T00:00:00Z"),
        ],
    })
}

/// alice's answer over [`known_data`]: product 1 (4 purchases), then the tie
/// of 2 and 3 (3 each) by id; product 4 (no details) and 6 (too old) left out.
fn alice_expected() -> Value {
    json!([
        { "id": 1, "face": "(o_o)", "price": 100, "size": 10, "recent": ["alice", "bob", "carol"] },
        { "id": 2, "face": "(^_^)", "price": 200, "size": 20, "recent": ["alice", "bob", "carol"] },
        { "id": 3, "face": "。◕‿◕。", "price": 300, "size": 30, "recent": ["alice", "carol", "bob"] },
    ])
}

/// A host running `acme` against `upstream`, with `outbound` settings.
async fn acme_host(upstream: &Upstream, outbound: &str) -> Wharf {
    Wharf::start(&format!(
        r#"
[components.acme]
wasm = "{{wasm:acme}}"
routes = [{{ path = "/api/recent_purchases/*", methods = ["GET", "HEAD"] }}]
grants = {{ interfaces = ["config", "log"], outbound = ["{url}"] }}
config = {{ data_api_url = "{url}" }}
outbound = {{ {outbound} }}
"#,
        url = upstream.url()
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_exactly_over_known_data() {
    let upstream = Upstream::start(known_data()).await;
    let wharf = acme_host(&upstream, "").await;

    let response = wharf.get("/api/recent_purchases/alice").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["x-wharf-component"].to_str().unwrap().starts_with("acme@"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, alice_expected());
    assert_eq!(upstream.hits("/api/purchases/by_user/alice?limit=5"), 1, "asks for 5: {:?}", upstream.all_hits());
    assert_eq!(upstream.hits("/api/products/6"), 0, "the sixth purchase is not recent");

    // A user without purchases.
    let (status, body) = wharf.get_json("/api/recent_purchases/dave").await;
    assert_eq!((status, body), (200, json!([])));

    // An unknown user: 404 with the exact message.
    let response = wharf.get("/api/recent_purchases/nobody").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "user_not_found");
    assert_eq!(body["error"]["message"], "User with username of 'nobody' was not found");

    // No username at all.
    let response = wharf.get("/api/recent_purchases/").await;
    assert_eq!(response.status(), 404);
    error_code(response).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_are_answered_from_the_cache_until_the_ttl_ends() {
    let upstream = Upstream::start(known_data()).await;
    let wharf = acme_host(&upstream, r#"cache_ttl = "2s""#).await;

    assert_eq!(wharf.get_json("/api/recent_purchases/alice").await.1, alice_expected());
    let cold = upstream.total();
    assert_eq!(cold, 2 + 2 * 4, "user, purchases, then 2 calls per distinct product: {:?}", upstream.all_hits());
    let second = wharf.get_json("/api/recent_purchases/alice").await.1;
    assert_eq!(second, alice_expected(), "{}", wharf.log());
    assert_eq!(upstream.total(), cold, "a repeat inside the TTL makes no upstream call");

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let third = wharf.get_json("/api/recent_purchases/alice").await.1;
    assert_eq!(third, alice_expected(), "{}", wharf.log());
    assert_eq!(upstream.total(), 2 * cold, "after the TTL every URL is fetched again");

    // `Cache-Control: no-store` from the upstream is honoured.
    let wharf = acme_host(&upstream, "").await;
    upstream.set_no_store(true);
    let before = upstream.total();
    wharf.get_json("/api/recent_purchases/bob").await;
    wharf.get_json("/api/recent_purchases/bob").await;
    let fetched = upstream.total() - before;
    assert_eq!(fetched % 2, 0);
    assert!(fetched >= 2 * 4, "no-store responses are fetched every time: {fetched}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_cold_requests_fetch_each_url_once_and_calls_run_concurrently() {
    let upstream = Upstream::start(known_data()).await;
    upstream.set_latency(Duration::from_millis(300));
    let wharf = acme_host(&upstream, "").await;

    let clients = 20;
    let requests = (0..clients).map(|_| wharf.get_json("/api/recent_purchases/alice"));
    for (status, body) in futures_util::future::join_all(requests).await {
        assert_eq!(status, 200);
        assert_eq!(body, alice_expected());
    }
    let hits = upstream.all_hits();
    assert_eq!(hits.len(), 2 + 2 * 4, "{hits:?}");
    assert!(hits.values().all(|&n| n == 1), "each upstream URL once for {clients} clients: {hits:?}");
    // The 2 calls for each of the 4 distinct products were in flight together.
    assert_eq!(upstream.max_in_flight(), 2 * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_times_out_with_504_and_a_failing_one_gives_502() {
    let upstream = Upstream::start(known_data()).await;
    let wharf = acme_host(&upstream, r#"first_byte_timeout = "300ms""#).await;

    upstream.set_latency(Duration::from_secs(3));
    let started = Instant::now();
    let response = wharf.get("/api/recent_purchases/alice").await;
    assert_eq!(response.status(), 504);
    assert_eq!(error_code(response).await, "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "answered before the upstream did");

    upstream.set_latency(Duration::ZERO);
    upstream.set_failure(503);
    let response = wharf.get("/api/recent_purchases/bob").await;
    assert_eq!(response.status(), 502);
    assert_eq!(error_code(response).await, "upstream_error");

    // Failures were not cached: once the upstream recovers, so does acme.
    upstream.set_failure(0);
    assert_eq!(wharf.get_json("/api/recent_purchases/alice").await.1, alice_expected());

    // Nothing listening at all.
    drop(upstream);
    let response = wharf.get("/api/recent_purchases/carol").await;
    assert_eq!(response.status(), 502);
    assert_eq!(error_code(response).await, "upstream_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_outside_the_grants_is_refused() {
    let upstream = Upstream::start(known_data()).await;
    let allowed = Upstream::start(known_data()).await;
    let wharf = Wharf::start(&format!(
        r#"
[components.acme]
wasm = "{{wasm:acme}}"
routes = [{{ path = "/api/recent_purchases/*" }}]
grants = {{ interfaces = ["config", "log"], outbound = ["{allowed}"] }}
config = {{ data_api_url = "{url}" }}
"#,
        allowed = allowed.url(),
        url = upstream.url()
    ))
    .await;
    let response = wharf.get("/api/recent_purchases/alice").await;
    assert_eq!(response.status(), 502);
    assert_eq!(error_code(response).await, "upstream_error");
    assert_eq!(upstream.total(), 0, "no request left the host");
    assert!(wharf.log().contains("outbound request denied"), "{}", wharf.log());
}

/// The answer SPEC §3 gives for `username` over `data`, worked out here
/// independently of the component.
fn reference_answer(data: &Value, username: &str) -> Value {
    let purchases = data["purchases"].as_array().unwrap();
    let instant = |p: &Value| chrono::DateTime::parse_from_rfc3339(p["date"].as_str().unwrap()).unwrap();
    let mut mine: Vec<&Value> = purchases.iter().filter(|p| p["username"] == username).collect();
    mine.sort_by_key(|p| std::cmp::Reverse(instant(p)));
    let mut products: Vec<i64> = Vec::new();
    for p in mine.iter().take(5) {
        let id = p["product_id"].as_i64().unwrap();
        if !products.contains(&id) {
            products.push(id);
        }
    }
    let mut entries: Vec<(usize, i64, Value)> = Vec::new();
    for id in products {
        let Some(product) = data["products"].as_array().unwrap().iter().find(|p| p["id"] == id) else { continue };
        let buyers: Vec<&str> =
            purchases.iter().filter(|p| p["product_id"] == id).map(|p| p["username"].as_str().unwrap()).collect();
        let mut recent: Vec<&str> = Vec::new();
        for b in &buyers {
            if !recent.contains(b) {
                recent.push(b);
            }
        }
        let mut entry = product.clone();
        entry["recent"] = json!(recent);
        entries.push((buyers.len(), id, entry));
    }
    entries.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    Value::Array(entries.into_iter().map(|e| e.2).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bundled_simulator_answers_in_process() {
    let root = repo_root();
    let wharf = Wharf::start(
        r#"
[components.acme]
wasm = "{wasm:acme}"
routes = [{ path = "/api/recent_purchases/*" }]
grants = { interfaces = ["config", "log"], outbound = ["http://acme-data.wharf.internal"] }
config = { data_api_url = "http://acme-data.wharf.internal" }

[components.acme-data]
wasm = "{wasm:acme_data}"
routes = [{ path = "/api/users/*" }, { path = "/api/purchases/*" }, { path = "/api/products/*" }]
grants = { interfaces = ["config", "log"], files = { "/data" = "{repo}/components/acme-data/data" } }
config = { data_file = "/data/acme-data.json", latency_min_ms = "0", latency_max_ms = "0" }
"#,
    )
    .await;
    let data: Value =
        serde_json::from_slice(&std::fs::read(root.join("components/acme-data/data/acme-data.json")).unwrap()).unwrap();
    let mut checked = 0;
    for user in data["users"].as_array().unwrap() {
        let username = user["username"].as_str().unwrap();
        let (status, body) = wharf.get_json(&format!("/api/recent_purchases/{username}")).await;
        assert_eq!(status, 200, "{username}: {body}");
        assert_eq!(body, reference_answer(&data, username), "{username}");
        checked += body.as_array().unwrap().len();
    }
    assert!(checked > 0, "the shipped data has purchases");

    // The simulator is also served to clients, as the data API.
    let (status, body) = wharf.get_json("/api/users/molinajonathan").await;
    assert_eq!((status, body["user"]["username"].as_str()), (200, Some("molinajonathan")));
    let response = wharf.get("/api/recent_purchases/nobody").await;
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(response).await, "user_not_found");
}
