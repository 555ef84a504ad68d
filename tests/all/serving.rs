//! Serving components: routing, host responses and headers of SPEC §0.

use crate::support::{Wharf, error_code};

const HELLO: &str = r#"
[components.hello]
wasm = "{wasm:hello}"
routes = [{ path = "/hello/*", methods = ["GET"] }]
grants = { interfaces = ["config", "log"] }
config = { greeting = "Ahoy" }
"#;

#[tokio::test]
async fn serves_hello_with_its_config_and_version_header() {
    let wharf = Wharf::start(HELLO).await;
    let response = wharf.get("/hello/sailor").await;
    assert_eq!(response.status(), 200);
    let component = response.headers()["x-wharf-component"].to_str().unwrap().to_owned();
    let (name, version) = component.split_once('@').unwrap();
    assert_eq!(name, "hello");
    assert_eq!(version.len(), 12);
    assert!(version.chars().all(|c| c.is_ascii_hexdigit()));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Ahoy, sailor!");
    // The guest's log line reaches the host log, tagged with the component.
    assert!(wharf.log().contains("greeting sailor"), "{}", wharf.log());
}

#[tokio::test]
async fn unrouted_path_is_a_json_404_with_request_id() {
    let wharf = Wharf::start(HELLO).await;
    let response = wharf.get("/nowhere").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().get("x-wharf-component").is_none());
    assert_eq!(error_code(response).await, "not_found");
}

#[tokio::test]
async fn client_request_id_is_echoed_on_success_and_error() {
    let wharf = Wharf::start(HELLO).await;
    for path in ["/hello/", "/nowhere"] {
        let response = wharf.client.get(wharf.url(path)).header("x-request-id", "trace-42").send().await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "trace-42", "{path}");
    }
}

#[tokio::test]
async fn wrong_method_is_405_with_allow_header() {
    let wharf = Wharf::start(HELLO).await;
    let response = wharf.client.post(wharf.url("/hello/")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    assert_eq!(error_code(response).await, "method_not_allowed");
}

#[tokio::test]
async fn healthz_and_readyz_report_components() {
    let wharf = Wharf::start(HELLO).await;
    let health = wharf.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready: serde_json::Value = wharf.get("/readyz").await.json().await.unwrap();
    // Anonymous clients learn only whether the host is ready.
    assert_eq!(ready, serde_json::json!({ "status": "ready" }));
    let details: serde_json::Value =
        wharf.client.get(wharf.admin_url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(details["status"], "ready");
    assert_eq!(details["components"]["hello"]["status"], "ready");
}

#[tokio::test]
async fn body_over_the_route_cap_is_413_whether_declared_or_streamed() {
    let wharf = Wharf::start(
        r#"
        [components.misbehave]
        wasm = "{wasm:misbehave}"
        routes = [{ path = "/misbehave/*" }]
        grants = { interfaces = ["log"] }
        limits = { max_body = "1KiB" }
        "#,
    )
    .await;
    let small = wharf.client.post(wharf.url("/misbehave/ok")).body(vec![b'x'; 1024]).send().await.unwrap();
    assert_eq!(small.status(), 200);

    let declared = wharf.client.post(wharf.url("/misbehave/ok")).body(vec![b'x'; 1025]).send().await.unwrap();
    assert_eq!(declared.status(), 413);
    assert_eq!(error_code(declared).await, "body_too_large");

    // Chunked: no Content-Length, the cap is found while reading.
    let chunks = futures_chunks(vec![vec![b'y'; 600], vec![b'y'; 600]]);
    let streamed =
        wharf.client.post(wharf.url("/misbehave/ok")).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(streamed.status(), 413);
}

fn futures_chunks(chunks: Vec<Vec<u8>>) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::iter(chunks.into_iter().map(Ok))
}

#[tokio::test]
async fn default_manifest_serves_every_bundled_component() {
    // The repository's own components.toml, with paths pointing at the
    // components this test run built.
    let names = crate::default_manifest::default_components();
    let wharf = Wharf::start(&crate::default_manifest::default_manifest()).await;
    let ready: serde_json::Value =
        wharf.client.get(wharf.admin_url("/readyz")).send().await.unwrap().json().await.unwrap();
    for name in &names {
        assert_eq!(ready["components"][name]["status"], "ready", "{name}: {ready}");
    }
    assert_eq!(wharf.get("/hello/").await.status(), 200);
    // acme answers from the bundled simulator, in-process.
    let (status, body) = wharf.get_json("/api/recent_purchases/molinajonathan").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.as_array().unwrap().is_empty(), "{body}");

    // /openapi.json merges the fragments the bundled components ship.
    let (status, openapi) = wharf.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(openapi["openapi"], "3.1.0");
    for path in ["/hello/{name}", "/api/hook/", "/api/events/", "/eye/events/", "/eye/jobs/{id}"].into_iter().chain([
        "/api/recent_purchases/{username}",
        "/api/users/{username}",
        "/api/products/{product_id}",
    ]) {
        assert!(openapi["paths"][path].is_object(), "{path} missing from /openapi.json");
    }
}
