//! WASIp3: a stock `wasi:http/service@0.3.0` component
//! (`tests/components/p3-hello`, built with the `wasip3` crate alone) is
//! detected at load and served unchanged beside WASIp2 ones, fresh per
//! request or reused, with the host's limits and metrics; a misbehaving one
//! (`tests/components/p3-misbehave`) is stopped by the same limits as a p2
//! one, reaches `wharf:host` only through its grants, and is hot-swapped.

use std::time::{Duration, Instant};

use crate::support::{Wharf, error_code};

const MANIFEST: &str = r#"
[components.p3]
wasm = "{wasm:p3_hello}"
routes = [{ path = "/p3/*" }]

[components.p3-reused]
wasm = "{wasm:p3_hello}"
routes = [{ path = "/p3-reused/*" }]
reuse = { max_requests = 3 }

[components.p2]
wasm = "{wasm:std_proxy}"
routes = [{ path = "/std/*" }]
"#;

const GREETING: &str = "Hello from a WASIp3 component!\n";

#[tokio::test]
async fn a_stock_p3_component_is_served_unchanged_beside_p2_ones() {
    let wharf = Wharf::start(MANIFEST).await;
    let response = wharf.get("/p3/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(response.headers()["x-wharf-component"].to_str().unwrap().starts_with("p3@"));
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.text().await.unwrap(), GREETING);

    let response = wharf.get("/p3/elsewhere").await;
    assert_eq!((response.status().as_u16(), response.text().await.unwrap()), (404, "not found\n".to_owned()));
    let response = wharf.client.post(wharf.url("/p3/")).body("x").send().await.unwrap();
    assert_eq!(response.status(), 405);
    // The p2 component beside it is unaffected.
    assert_eq!(wharf.get("/std/echo?op=echo").await.status(), 200);

    let components: serde_json::Value =
        wharf.client.get(wharf.admin_url("/components")).send().await.unwrap().json().await.unwrap();
    let kinds: Vec<(String, String)> = components["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["wasi"].as_str().unwrap_or("?").to_owned()))
        .collect();
    assert!(kinds.contains(&("p3".into(), "p3".into())), "{kinds:?}");
    assert!(kinds.contains(&("p2".into(), "p2".into())), "{kinds:?}");
}

#[tokio::test]
async fn a_p3_component_may_reuse_its_instances() {
    let wharf = Wharf::start(MANIFEST).await;
    for _ in 0..7 {
        let response = wharf.get("/p3-reused/").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), GREETING);
    }
    let metrics = wharf.client.get(wharf.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    // Seven requests, three per instance: three instances, four reuses.
    let line = r#"wharf_instance_reuse_total{component="p3-reused",event="reused"} 4"#;
    assert!(metrics.contains(line), "no {line} in:\n{metrics}");
    let count = r#"wharf_instantiate_duration_seconds_count{component="p3-reused"} 3"#;
    assert!(metrics.contains(count), "no {count} in:\n{metrics}");
}

const MISBEHAVE: &str = r#"
[components.p3-misbehave]
wasm = "{wasm:p3_misbehave}"
routes = [{ path = "/p3m/*" }]
grants = { interfaces = ["config", "log"] }
config = { greeting = "hi from p3" }
limits = { deadline = "1s", memory = "16MiB", max_instances = 2 }

[components.p3-kept]
wasm = "{wasm:p3_misbehave}"
routes = [{ path = "/p3k/*" }]
grants = { interfaces = ["config", "log"] }
limits = { deadline = "1s", max_instances = 1 }
reuse = {}

[components.p3]
wasm = "{wasm:p3_hello}"
routes = [{ path = "/p3/*" }]
"#;

async fn body_of(wharf: &Wharf, path: &str) -> String {
    let response = wharf.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

async fn assert_p3_hello_serves(wharf: &Wharf) {
    assert_eq!(body_of(wharf, "/p3/").await, GREETING, "the other p3 component must keep serving");
}

#[tokio::test]
async fn a_p3_component_that_traps_loops_eats_memory_or_oversleeps_is_stopped_by_the_host() {
    let wharf = Wharf::start(MISBEHAVE).await;
    let response = wharf.get("/p3m/trap").await;
    assert_eq!(response.status(), 500);
    assert_eq!(error_code(response).await, "component_failed");
    assert!(wharf.log().contains("asked to trap"), "the guest's panic message is logged");
    assert_p3_hello_serves(&wharf).await;

    for (path, status, code) in [
        ("/p3m/loop", 504, "deadline_exceeded"),
        ("/p3m/sleep", 504, "deadline_exceeded"),
        ("/p3m/alloc", 500, "memory_limit_exceeded"),
    ] {
        let started = Instant::now();
        let stuck = tokio::spawn({
            let (client, url) = (wharf.client.clone(), wharf.url(path));
            async move { client.get(url).send().await.unwrap() }
        });
        if path != "/p3m/alloc" {
            // While it is stuck, others are served promptly.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_p3_hello_serves(&wharf).await;
            assert!(!stuck.is_finished(), "{path} ended before its deadline");
        }
        let response = stuck.await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(error_code(response).await, code, "{path}");
        assert!(started.elapsed() < Duration::from_secs(5), "{path} took {:?}", started.elapsed());
        assert_p3_hello_serves(&wharf).await;
    }
    assert_eq!(body_of(&wharf, "/p3m/ok").await, "ok", "the component itself serves its next request");
}

#[tokio::test]
async fn a_p3_component_calls_wharf_host_through_its_grants_only() {
    let wharf = Wharf::start(MISBEHAVE).await;
    assert_eq!(body_of(&wharf, "/p3m/config").await, "hi from p3");
    assert!(wharf.log().contains("p3 greeting: hi from p3"), "wharf:host/log from a p3 guest reached the log");

    // Without the grants it imports, it is refused at load, naming the import.
    let ungranted =
        MISBEHAVE.replace(r#"grants = { interfaces = ["config", "log"] }"#, r#"grants = { interfaces = ["log"] }"#);
    let Err(refused) = Wharf::try_start(&ungranted).await else {
        panic!("a p3 component importing an ungranted interface loaded");
    };
    assert!(refused.stderr.contains("wharf:host/config"), "{}", refused.stderr);
}

#[tokio::test]
async fn a_reused_p3_instance_keeps_state_until_a_trap_or_a_hot_swap() {
    let wharf = Wharf::start(MISBEHAVE).await;
    let counts = |prefix: &'static str| {
        let wharf = &wharf;
        async move {
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push(body_of(wharf, &format!("/{prefix}/count")).await);
            }
            seen
        }
    };
    assert_eq!(counts("p3m").await, ["1", "1", "1"], "a fresh p3 instance per request must not remember");
    assert_eq!(counts("p3k").await, ["1", "2", "3"]);
    assert_eq!(wharf.get("/p3k/trap").await.status(), 500);
    assert_eq!(counts("p3k").await, ["1", "2", "3"], "a trapped p3 instance served again");

    let reloaded = wharf.client.post(wharf.admin_url("/components/p3-kept/reload")).send().await.unwrap();
    assert_eq!(reloaded.status(), 200);
    assert_eq!(body_of(&wharf, "/p3k/count").await, "1", "the new version served from the old version's instance");
}
