//! The compile cache: a restart with unchanged components compiles nothing.

use crate::support::Wharf;

#[tokio::test]
async fn restart_with_unchanged_components_compiles_nothing() {
    let wharf = Wharf::start(
        r#"
        [components.hello]
        wasm = "{wasm:hello}"
        routes = [{ path = "/hello/*" }]
        grants = { interfaces = ["config", "log"] }
        "#,
    )
    .await;
    assert!(wharf.log().contains("compile=\"miss\""), "first start compiles: {}", wharf.log());
    let first_version = wharf.get("/hello/").await.headers()["x-wharf-component"].clone();

    let wharf = wharf.restart().await;
    let log = wharf.log();
    let loads: Vec<&str> = log.lines().filter(|l| l.contains("component loaded")).collect();
    assert_eq!(loads.len(), 2, "{log}");
    assert!(loads[1].contains("compile=\"hit\""), "restart must reuse the cache: {}", loads[1]);
    let response = wharf.get("/hello/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-wharf-component"], first_version);
}
