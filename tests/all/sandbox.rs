//! Containment: a component that traps, loops, eats memory, oversleeps or is
//! flooded fails only its own request; the host and the other components
//! keep serving.

use std::time::{Duration, Instant};

use crate::support::{Wharf, error_code};

const BOTH: &str = r#"
[components.hello]
wasm = "{wasm:hello}"
routes = [{ path = "/hello/*" }]
grants = { interfaces = ["config", "log"] }

[components.misbehave]
wasm = "{wasm:misbehave}"
routes = [{ path = "/misbehave/*" }]
grants = { interfaces = ["log"] }
limits = { deadline = "1s", memory = "16MiB", max_instances = 2 }
"#;

async fn assert_hello_still_serves(wharf: &Wharf) {
    let response = wharf.get("/hello/").await;
    assert_eq!(response.status(), 200, "hello must keep serving");
}

#[tokio::test]
async fn trapping_component_fails_only_its_request() {
    let wharf = Wharf::start(BOTH).await;
    let response = wharf.get("/misbehave/trap").await;
    assert_eq!(response.status(), 500);
    assert_eq!(error_code(response).await, "component_failed");
    // The guest's panic message (its stderr) is in the host log.
    assert!(wharf.log().contains("asked to trap"), "{}", wharf.log());
    assert_hello_still_serves(&wharf).await;
    // The same component serves its next request normally: no state leaks.
    assert_eq!(wharf.get("/misbehave/ok").await.status(), 200);
}

#[tokio::test]
async fn endless_loop_is_stopped_at_the_deadline_while_others_keep_serving() {
    let wharf = Wharf::start(BOTH).await;
    let started = Instant::now();
    let looping = tokio::spawn({
        let (client, url) = (wharf.client.clone(), wharf.url("/misbehave/loop"));
        async move { client.get(url).send().await.unwrap() }
    });
    // While it spins, hello answers promptly (the loop yields every tick).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_hello_still_serves(&wharf).await;
    assert!(!looping.is_finished(), "loop should still be running at 200ms");

    let response = looping.await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert_eq!(error_code(response).await, "deadline_exceeded");
    assert!(elapsed >= Duration::from_secs(1), "stopped early: {elapsed:?}");
    assert_hello_still_serves(&wharf).await;
}

#[tokio::test]
async fn waiting_in_a_host_call_past_the_deadline_is_stopped() {
    let wharf = Wharf::start(BOTH).await;
    let response = wharf.get("/misbehave/sleep").await;
    assert_eq!(response.status(), 504);
    assert_eq!(error_code(response).await, "deadline_exceeded");
}

#[tokio::test]
async fn memory_bomb_is_stopped_at_the_cap() {
    let wharf = Wharf::start(BOTH).await;
    let response = wharf.get("/misbehave/alloc").await;
    assert_eq!(response.status(), 500);
    assert_eq!(error_code(response).await, "memory_limit_exceeded");
    assert_hello_still_serves(&wharf).await;
    assert_eq!(wharf.get("/misbehave/ok").await.status(), 200);
}

#[tokio::test]
async fn excess_concurrency_is_shed_with_503_and_retry_after() {
    let wharf = Wharf::start(BOTH).await;
    // max_instances = 2: two slow requests hold both slots.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (wharf.client.clone(), wharf.url("/misbehave/slow?ms=800"));
            tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shed = wharf.get("/misbehave/ok").await;
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(error_code(shed).await, "overloaded");
    // Other components are not affected by this one's cap.
    assert_hello_still_serves(&wharf).await;
    for task in slow {
        assert_eq!(task.await.unwrap(), 200);
    }
    // Slots are released: it serves again.
    assert_eq!(wharf.get("/misbehave/ok").await.status(), 200);
}
