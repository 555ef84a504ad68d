//! Opt-in instance reuse (`reuse` in the manifest): state carries over from
//! one request to the next with it and never without it; a trap, a deadline
//! or a memory kill, `max_requests`, `idle` and a hot swap each retire an
//! instance, and the limits still hold per request and per instance; a
//! transaction a request left open ends with the request on both backends.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::both_backends;
use crate::store::storetest_manifest;
use crate::support::{Wharf, error_code};

/// The same component twice: `reused` keeps its instance (one at a time, so
/// sequential requests meet the same one), `fresh` does not.
const REUSE: &str = r#"
[components.reused]
wasm = "{wasm:misbehave}"
routes = [{ path = "/misbehave/*" }]
grants = { interfaces = ["log"] }
limits = { deadline = "1s", memory = "24MiB", max_instances = 1 }
reuse = { max_requests = 5, idle = "300ms" }

[components.fresh]
wasm = "{wasm:misbehave}"
routes = [{ path = "/fresh/*" }]
grants = { interfaces = ["log"] }
limits = { max_instances = 1 }
"#;

/// What `count` answers: how many requests this instance has counted.
async fn count(wharf: &Wharf, prefix: &str) -> u64 {
    let response = wharf.get(&format!("/{prefix}/count")).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap().parse().unwrap()
}

async fn counts(wharf: &Wharf, prefix: &str, n: usize) -> Vec<u64> {
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        seen.push(count(wharf, prefix).await);
    }
    seen
}

#[tokio::test]
async fn state_carries_over_with_reuse_and_not_without_it() {
    let wharf = Wharf::start(REUSE).await;
    // Five requests per instance, then a fresh one.
    assert_eq!(counts(&wharf, "misbehave", 7).await, [1, 2, 3, 4, 5, 1, 2]);
    assert_eq!(counts(&wharf, "fresh", 4).await, [1, 1, 1, 1], "a fresh instance per request must not remember");

    // An instance idle for longer than `idle` is dropped.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count(&wharf, "misbehave").await, 1, "an instance idle past `idle` was reused");

    let metrics = wharf.client.get(wharf.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    for event in ["reused", "max_requests", "idle"] {
        let line = format!(r#"wharf_instance_reuse_total{{component="reused",event="{event}"}}"#);
        assert!(metrics.contains(&line), "no {line} in:\n{metrics}");
    }
    assert!(
        !metrics.contains(r#"wharf_instance_reuse_total{component="fresh""#),
        "fresh instances are not reuse events"
    );
}

#[tokio::test]
async fn a_trap_a_deadline_or_a_memory_kill_retires_the_instance() {
    let wharf = Wharf::start(REUSE).await;
    assert_eq!(counts(&wharf, "misbehave", 2).await, [1, 2]);

    let response = wharf.get("/misbehave/trap").await;
    assert_eq!(response.status(), 500);
    assert_eq!(error_code(response).await, "component_failed");
    assert_eq!(count(&wharf, "misbehave").await, 1, "a trapped instance served again");

    assert_eq!(count(&wharf, "misbehave").await, 2);
    let response = wharf.get("/misbehave/loop").await;
    assert_eq!(response.status(), 504);
    assert_eq!(error_code(response).await, "deadline_exceeded");
    assert_eq!(count(&wharf, "misbehave").await, 1, "an instance killed at its deadline served again");

    // The memory cap holds per instance: what earlier requests kept counts.
    let mut kept = Vec::new();
    let status = loop {
        let response = wharf.get("/misbehave/leak?mb=8").await;
        if response.status() != 200 {
            break (response.status().as_u16(), error_code(response).await);
        }
        kept.push(response.text().await.unwrap());
        assert!(kept.len() < 6, "24 MiB cap, 8 MiB kept per request, and still growing: {kept:?}");
    };
    assert_eq!(status, (500, "memory_limit_exceeded".to_owned()), "after {kept:?}");
    assert!(kept.len() >= 2, "the leak should span requests: {kept:?}");
    assert_eq!(count(&wharf, "misbehave").await, 1, "an instance past its memory cap served again");
    assert_eq!(wharf.get("/fresh/ok").await.status(), 200, "the other component kept serving");
}

#[tokio::test]
async fn a_hot_swap_retires_the_old_versions_instances() {
    let wharf = Wharf::start(REUSE).await;
    assert_eq!(counts(&wharf, "misbehave", 3).await, [1, 2, 3]);
    let reloaded = wharf.client.post(wharf.admin_url("/components/reused/reload")).send().await.unwrap();
    assert_eq!(reloaded.status(), 200);
    assert_eq!(count(&wharf, "misbehave").await, 1, "the new version served from the old version's instance");
    let metrics = wharf.client.get(wharf.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"wharf_instance_reuse_total{component="reused",event="swapped"} 1"#), "{metrics}");
}

both_backends! {
    async fn a_transaction_left_open_ends_with_its_request_not_with_the_instance(backend: Backend) {
        let manifest = storetest_manifest("limits = { max_instances = 1 }\n        reuse = { idle = \"1h\" }");
        let wharf = Wharf::start_on(&manifest, backend.clone()).await;
        let insert = |name: &str| json!({"sql": "INSERT INTO items (name) VALUES ($1)", "params": [name]});
        let (status, body) = wharf.post_json("/store/tx", json!({"steps": [insert("left-open")], "then": "return"})).await;
        assert_eq!((status, &body["left_open"]), (200, &json!(true)), "{body}");

        // The instance now sits idle; its transaction must already be gone.
        match &backend {
            Backend::Sqlite => {
                let file = wharf.dir.join("data/db/storetest.sqlite");
                let options = SqliteConnectOptions::new().filename(&file).busy_timeout(Duration::from_secs(2));
                let mut outside = SqliteConnection::connect_with(&options).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE").execute(&mut outside).await.expect("the idle instance still holds the write lock");
                sqlx::query("ROLLBACK").execute(&mut outside).await.unwrap();
            }
            Backend::Postgres(_) => {
                let sql = "SELECT COUNT(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()";
                let (status, body) = wharf.post_json("/store/query", json!({"sql": sql, "params": []})).await;
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["rows"][0][0], json!(0), "the idle instance still holds a transaction open");
            }
        }

        // The same instance opens a transaction of its own and never sees the other.
        let (status, body) = wharf.post_json("/store/tx", json!({"steps": [insert("committed")], "then": "commit"})).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = wharf.post_json("/store/query", json!({"sql": "SELECT name FROM items ORDER BY name", "params": []})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["rows"], json!([["committed"]]));
    }
}
