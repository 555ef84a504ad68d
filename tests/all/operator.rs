//! Operators (SPEC §7): hot swap under load with zero failed requests, the
//! operator API (components, reload, dead jobs, metrics, token), and the
//! `wharf components` / `wharf reload` CLI against a running host.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::store::storetest_manifest;
use crate::support::{Backend, Wharf, eventually, wasm};

/// Puts `from` at `to` atomically (write aside, then rename), as a build would.
fn install(from: &Path, to: &Path) {
    let aside = to.with_extension("tmp");
    std::fs::copy(from, &aside).unwrap();
    std::fs::rename(&aside, to).unwrap();
}

fn app_manifest(wasm: &Path, extra_route: &str) -> String {
    format!(
        r#"
[components.app]
wasm = "{}"
routes = [{{ path = "/app/*", methods = ["GET"] }}{extra_route}]
grants = {{ interfaces = ["config", "log"] }}
config = {{ greeting = "Hi" }}
limits = {{ max_instances = 1000 }}
"#,
        wasm.display()
    )
}

async fn reload(wharf: &Wharf, name: &str) -> (u16, Value) {
    let response = wharf.client.post(wharf.admin_url(&format!("/components/{name}/reload"))).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn version_of(response: &reqwest::Response) -> String {
    let label = response.headers()["x-wharf-component"].to_str().unwrap();
    label.split_once('@').unwrap().1.to_owned()
}

/// Clients hammering `/app/` until told to stop; counts what went wrong.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(wharf: &Wharf, clients: usize) -> Load {
        let (stop, ok, failed) = (Arc::new(AtomicBool::new(false)), Arc::default(), Arc::default());
        let tasks = (0..clients)
            .map(|_| {
                // One connection per client, kept alive across reloads.
                let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(1).build().unwrap();
                let url = wharf.url("/app/load");
                let (stop, ok, failed): (Arc<AtomicBool>, Arc<AtomicUsize>, Arc<AtomicUsize>) =
                    (stop.clone(), Arc::clone(&ok), Arc::clone(&failed));
                tokio::spawn(async move {
                    let mut problems = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        match client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => match r.bytes().await {
                                Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                                Err(e) => {
                                    problems.push(format!("body: {e}"));
                                    failed.fetch_add(1, Ordering::Relaxed)
                                }
                            },
                            Ok(r) => {
                                problems.push(format!("status {}", r.status()));
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(e) => {
                                problems.push(format!("request: {e}"));
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                    problems
                })
            })
            .collect();
        Load { stop, ok, failed, tasks }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut problems = Vec::new();
        for task in self.tasks {
            problems.extend(task.await.unwrap());
        }
        assert_eq!(self.failed.load(Ordering::Relaxed), problems.len());
        (self.ok.load(Ordering::Relaxed), problems)
    }
}

/// Reloads `app` `reloads` times alternating two versions while `clients`
/// clients keep requesting it; returns how many requests succeeded.
pub async fn hot_swap_under_load(clients: usize, reloads: usize) -> usize {
    let versions = tempfile::tempdir().unwrap();
    let app = versions.path().join("app.wasm");
    let (a, b) = (wasm("hello"), wasm("hello_plain"));
    install(&a, &app);
    let wharf = Wharf::start(&app_manifest(&app, "")).await;
    let first = version_of(&wharf.get("/app/").await);

    let load = Load::start(&wharf, clients);
    eventually(Duration::from_secs(10), "load to start", || async {
        (load.ok.load(Ordering::Relaxed) > clients).then_some(())
    })
    .await;
    let mut seen = std::collections::BTreeMap::<PathBuf, String>::new();
    seen.insert(a.clone(), first);
    for i in 0..reloads {
        let next = if i % 2 == 0 { &b } else { &a };
        install(next, &app);
        let (status, body) = reload(&wharf, "app").await;
        assert_eq!(status, 200, "reload {i}: {body}");
        let version = body["version"].as_str().unwrap().to_owned();
        if let Some(known) = seen.insert(next.clone(), version.clone()) {
            assert_eq!(known, version, "a version's hash is stable");
        }
        // Once the reload has returned, new requests get the new version.
        let response = wharf.get("/app/after").await;
        assert_eq!(response.status(), 200);
        assert_eq!(version_of(&response), version, "after reload {i}");
    }
    let (ok, problems) = load.finish().await;
    assert!(
        problems.is_empty(),
        "{} failed requests during {reloads} reloads: {:?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    assert_ne!(seen[&a], seen[&b]);

    // A broken version is refused with the reason; the old one keeps serving.
    let serving = version_of(&wharf.get("/app/").await);
    std::fs::write(&app, b"\0asm definitely not a component").unwrap();
    let (status, body) = reload(&wharf, "app").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "reload_refused");
    assert!(body["error"]["message"].as_str().unwrap().contains("compile"), "{body}");
    let response = wharf.get("/app/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(version_of(&response), serving);
    // So is one that imports an interface its grants leave out.
    install(&wasm("storetest"), &app);
    let (status, body) = reload(&wharf, "app").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("grants"), "{body}");
    assert_eq!(version_of(&wharf.get("/app/").await), serving);
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_no_request() {
    let ok = hot_swap_under_load(200, 50).await;
    assert!(ok > 200, "the clients made requests: {ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_route_changes_and_the_cli_reports_versions() {
    let versions = tempfile::tempdir().unwrap();
    let app = versions.path().join("app.wasm");
    install(&wasm("hello"), &app);
    let wharf = Wharf::start(&app_manifest(&app, "")).await;
    assert_eq!(wharf.get("/extra/").await.status(), 404);

    // A new route in the manifest takes effect with the reload.
    let manifest = wharf.dir.join("components.toml");
    std::fs::write(&manifest, app_manifest(&app, r#", { path = "/extra/*" }"#)).unwrap();
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(args)
            .arg("--data-dir")
            .arg(wharf.dir.join("data"))
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = cli(&["reload", "app"]);
    assert_eq!(code, Some(0), "{stderr}");
    let version = version_of(&wharf.get("/extra/").await);
    assert!(stdout.starts_with(&format!("app@{version}")), "{stdout}");

    let (code, stdout, _) = cli(&["components"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains(&format!("app@{version}")), "{stdout}");
    assert!(stdout.contains("/extra/*"), "{stdout}");
    assert!(stdout.contains("config, log"), "{stdout}");

    // Unknown component, and an invalid manifest: refused, nothing changes.
    let (code, _, stderr) = cli(&["reload", "nope"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no component `nope`"), "{stderr}");
    // More instances than the pool was sized for at start: restart needed.
    let bigger =
        app_manifest(&app, r#", { path = "/extra/*" }"#).replace("max_instances = 1000", "max_instances = 1001");
    std::fs::write(&manifest, bigger).unwrap();
    let (code, _, stderr) = cli(&["reload", "app"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("restart the host"), "{stderr}");
    std::fs::write(&manifest, "[components.app]\nwasm = 3\n").unwrap();
    let (code, _, stderr) = cli(&["reload", "app"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("components.toml"), "{stderr}");
    assert_eq!(wharf.get("/extra/").await.status(), 200);

    // The operator API describes the component.
    let body: Value = wharf.client.get(wharf.admin_url("/components/app")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["version"], version.as_str());
    assert_eq!(body["grants"]["interfaces"], json!(["config", "log"]));
    assert_eq!(body["routes"][1]["path"], "/extra/*");
    let (code, _, stderr) = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["components", "--data-dir", "/nonexistent/wharf"])
        .output()
        .map(|o| (o.status.code(), (), String::from_utf8_lossy(&o.stderr).into_owned()))
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no running host found"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_failures_and_reloads() {
    let wharf = Wharf::start(
        r#"
[components.hello]
wasm = "{wasm:hello}"
routes = [{ path = "/hello/*" }]
grants = { interfaces = ["config", "log"] }

[components.misbehave]
wasm = "{wasm:misbehave}"
routes = [{ path = "/misbehave/*" }]
grants = { interfaces = ["log"] }
limits = { deadline = "300ms" }
"#,
    )
    .await;
    for _ in 0..3 {
        assert_eq!(wharf.get("/hello/x").await.status(), 200);
    }
    assert_eq!(wharf.get("/misbehave/trap").await.status(), 500);
    assert_eq!(wharf.get("/misbehave/loop").await.status(), 504);
    assert_eq!(wharf.get("/nowhere").await.status(), 404);
    assert_eq!(reload(&wharf, "hello").await.0, 200);

    let response = wharf.client.get(wharf.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().contains("openmetrics"));
    let text = response.text().await.unwrap();
    for line in [
        r#"wharf_requests_total{component="hello",route="/hello/*",status="200"} 3"#,
        r#"wharf_requests_total{component="misbehave",route="/misbehave/*",status="500"} 1"#,
        r#"wharf_requests_total{component="-",route="-",status="404"} 1"#,
        r#"wharf_guest_failures_total{component="misbehave",kind="trap"} 1"#,
        r#"wharf_guest_failures_total{component="misbehave",kind="deadline"} 1"#,
        r#"wharf_reloads_total{component="hello",outcome="ok"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
    }
    assert!(text.contains(r#"wharf_request_duration_seconds_count{component="hello",route="/hello/*"} 3"#), "{text}");
    assert!(text.contains(r#"wharf_instantiate_duration_seconds_count{component="hello"} 3"#), "{text}");
    assert!(text.contains(r#"wharf_component_loaded{component="hello",version=""#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_jobs_are_listed_retried_and_discarded() {
    let wharf = Wharf::start_on(
        &storetest_manifest(r#"queue = { workers = 2, backoff = "50ms", max_backoff = "200ms" }"#),
        Backend::Sqlite,
    )
    .await;
    let enqueue = |fail_times: u32| json!({"queue": "q", "payload": {"fail_times": fail_times}, "max_attempts": 1});
    let retried = wharf.post_json("/store/enqueue", enqueue(1)).await.1["job_id"].as_i64().unwrap();
    let discarded = wharf.post_json("/store/enqueue", enqueue(5)).await.1["job_id"].as_i64().unwrap();
    let dead = eventually(Duration::from_secs(20), "two dead jobs", || async {
        let body: Value = wharf
            .client
            .get(wharf.admin_url("/components/storetest/jobs/dead"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (body["total"] == 2 && body["items"].as_array().unwrap().len() == 2).then_some(body)
    })
    .await;
    let mut errors: Vec<&str> =
        dead["items"].as_array().unwrap().iter().map(|j| j["last_error"].as_str().unwrap()).collect();
    errors.sort();
    assert_eq!(errors, ["planned failure 1 of 1", "planned failure 1 of 5"], "{dead}");

    let post = wharf.client.post(wharf.admin_url(&format!("/components/storetest/jobs/{retried}/retry")));
    assert_eq!(post.send().await.unwrap().status(), 200);
    eventually(Duration::from_secs(20), "the retried job to be done", || async {
        let (_, job) = wharf.get_json(&format!("/store/job/{retried}")).await;
        (job["status"] == "done").then_some(())
    })
    .await;

    let delete = wharf.client.delete(wharf.admin_url(&format!("/components/storetest/jobs/{discarded}")));
    assert_eq!(delete.send().await.unwrap().status(), 200);
    let again = wharf.client.delete(wharf.admin_url(&format!("/components/storetest/jobs/{discarded}")));
    let response = again.send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = wharf
        .client
        .get(wharf.admin_url("/components/storetest/jobs/dead"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["total"], 0, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_needs_a_token_beyond_loopback() {
    // Refused outright without one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("components.toml"), crate::support::manifest(&app_manifest(&wasm("hello"), "")))
        .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "0.0.0.0:0", "--manifest"])
        .arg(dir.path().join("components.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("without a token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_when_the_wasm_or_the_manifest_changes() {
    let versions = tempfile::tempdir().unwrap();
    let app = versions.path().join("app.wasm");
    install(&wasm("hello"), &app);
    let wharf = Wharf::try_start_with(&app_manifest(&app, ""), Backend::Sqlite, &["--watch"]).await.unwrap();
    let before = version_of(&wharf.get("/app/").await);

    install(&wasm("hello_plain"), &app);
    let after = eventually(Duration::from_secs(20), "the new .wasm to be served", || async {
        let version = version_of(&wharf.get("/app/").await);
        (version != before).then_some(version)
    })
    .await;

    // A broken build is refused; the last good version keeps serving.
    std::fs::write(&app, b"not wasm").unwrap();
    eventually(Duration::from_secs(20), "the refusal to be logged", || async {
        wharf.log().contains("reload refused").then_some(())
    })
    .await;
    assert_eq!(version_of(&wharf.get("/app/").await), after);

    // A manifest change (a new route) is picked up too.
    install(&wasm("hello"), &app);
    std::fs::write(wharf.dir.join("components.toml"), app_manifest(&app, r#", { path = "/extra/*" }"#)).unwrap();
    eventually(Duration::from_secs(20), "the new route", || async {
        (wharf.get("/extra/").await.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish() {
    let mut wharf = Wharf::start(
        r#"
[components.misbehave]
wasm = "{wasm:misbehave}"
routes = [{ path = "/misbehave/*" }]
grants = { interfaces = ["log"] }
"#,
    )
    .await;
    let url = wharf.url("/misbehave/slow?ms=1500");
    let client = wharf.client.clone();
    let in_flight = tokio::spawn(async move {
        let response = client.get(url).send().await.expect("the request in flight is answered");
        (response.status().as_u16(), response.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addr = wharf.addr;
    let exit = tokio::task::spawn_blocking(move || wharf.terminate());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no new connections once draining");
    assert_eq!(in_flight.await.unwrap(), (200, "slow".to_owned()));
    assert_eq!(exit.await.unwrap(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_workers_follow_reloads_of_their_component() {
    // The component starts without a job handler (hello-plain), gains one on
    // reload (storetest), loses it, and gets it back: its jobs keep running.
    let versions = tempfile::tempdir().unwrap();
    let app = versions.path().join("jobs.wasm");
    install(&wasm("hello_plain"), &app);
    let manifest = format!(
        r#"
[components.jobs]
wasm = "{}"
routes = [{{ path = "/store/*" }}]
grants = {{ interfaces = ["store", "queue", "log"] }}
migrations = "{{repo}}/tests/components/storetest/migrations"
queue = {{ workers = 2, backoff = "50ms", max_backoff = "200ms" }}
"#,
        app.display()
    );
    let wharf = Wharf::start(&manifest).await;
    let job_status = |id: i64| {
        let wharf = &wharf;
        async move { wharf.get_json(&format!("/store/job/{id}")).await.1["status"].as_str().map(str::to_owned) }
    };

    install(&wasm("storetest"), &app);
    assert_eq!(reload(&wharf, "jobs").await.0, 200);
    let id = wharf.post_json("/store/enqueue", json!({"queue": "q", "payload": {"effect": "a"}})).await.1["job_id"]
        .as_i64()
        .unwrap();
    eventually(Duration::from_secs(20), "the job to run after the reload", || async {
        (job_status(id).await.as_deref() == Some("done")).then_some(())
    })
    .await;

    // Without a handler its workers idle; a delayed job waits for them.
    let delayed = json!({"queue": "q", "payload": {"effect": "b"}, "delay_ms": 300});
    let later = wharf.post_json("/store/enqueue", delayed).await.1["job_id"].as_i64().unwrap();
    install(&wasm("hello_plain"), &app);
    assert_eq!(reload(&wharf, "jobs").await.0, 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    install(&wasm("storetest"), &app);
    assert_eq!(reload(&wharf, "jobs").await.0, 200);
    eventually(Duration::from_secs(20), "the delayed job to run once the handler is back", || async {
        (job_status(later).await.as_deref() == Some("done")).then_some(())
    })
    .await;
}
