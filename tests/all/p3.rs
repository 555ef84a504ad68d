//! WASIp3: a stock `wasi:http/service@0.3.0` component
//! (`tests/components/p3-hello`, built with the `wasip3` crate alone) is
//! detected at load and served unchanged beside WASIp2 ones, fresh per
//! request or reused, with the host's limits and metrics.

use crate::support::Wharf;

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
