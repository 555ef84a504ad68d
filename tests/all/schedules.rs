//! `schedules` in the manifest, on real hosts and both backends: each tick
//! enqueues one job that the component's handler runs; two hosts on one
//! PostgreSQL database enqueue each tick once; a restart across due ticks
//! enqueues one catch-up job, not a burst; bad cron expressions are refused
//! at start and on reload; reloads start and stop schedules; the operator
//! API and `wharf schedules` show last and next runs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::both_backends;
use crate::store::storetest_manifest;
use crate::support::{Backend, Wharf, eventually};

/// A schedule named `tick` on `storetest` with `cron`; its jobs record the effect `tick`.
fn with_schedule(cron: &str) -> String {
    storetest_manifest(&format!(
        r#"queue = {{ workers = 2 }}
        schedules = [{{ name = "tick", cron = "{cron}", payload = '{{"effect":"tick"}}' }}]"#
    ))
}

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// The ticks of schedule `tick` that have a job, in the order enqueued, with the jobs' statuses.
async fn jobs(wharf: &Wharf) -> Vec<(i64, String)> {
    let sql = "SELECT idempotency_key, status FROM _wharf_jobs WHERE queue = 'tick' ORDER BY id";
    let (status, body) = wharf.post_json("/store/query", json!({"sql": sql, "params": []})).await;
    assert_eq!(status, 200, "{body}");
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let key = row[0].as_str().unwrap();
            let tick = key.strip_prefix("schedule:tick:").unwrap_or_else(|| panic!("key {key}"));
            (tick.parse().unwrap(), row[1].as_str().unwrap().to_owned())
        })
        .collect()
}

async fn ticks(wharf: &Wharf) -> Vec<i64> {
    jobs(wharf).await.into_iter().map(|(tick, _)| tick).collect()
}

async fn effects(wharf: &Wharf) -> i64 {
    let sql = "SELECT COUNT(*) FROM effects WHERE effect = 'tick'";
    let (_, body) = wharf.post_json("/store/query", json!({"sql": sql, "params": []})).await;
    body["rows"][0][0].as_i64().unwrap_or_else(|| panic!("{body}"))
}

async fn admin_get(wharf: &Wharf, path: &str) -> (u16, Value) {
    let response = wharf.client.get(wharf.admin_url(path)).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn reload(wharf: &Wharf) -> (u16, Value) {
    let response = wharf.client.post(wharf.admin_url("/components/storetest/reload")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// Runs the `wharf` CLI against `wharf`'s operator API: exit code, stdout, stderr.
fn cli(wharf: &Wharf, args: &[&str]) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .arg("--data-dir")
        .arg(wharf.dir.join("data"))
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

fn rewrite_manifest(wharf: &Wharf, text: &str) {
    std::fs::write(wharf.dir.join("components.toml"), crate::support::manifest(text)).unwrap();
}

both_backends! {
    async fn a_seconds_schedule_enqueues_a_job_per_tick_that_the_handler_runs(backend: Backend) {
        let wharf = Wharf::start_on(&with_schedule("* * * * * *"), backend).await;
        eventually(Duration::from_secs(20), "three ticks handled", || async {
            (effects(&wharf).await >= 3).then_some(())
        })
        .await;
        let jobs = jobs(&wharf).await;
        let ticks: Vec<i64> = jobs.iter().map(|(t, _)| *t).collect();
        assert!(ticks.iter().all(|t| t % 1000 == 0), "ticks fall on whole seconds: {ticks:?}");
        assert!(ticks.windows(2).all(|w| w[0] < w[1]), "one job per tick, in order: {ticks:?}");
        assert!(jobs.iter().filter(|(_, status)| status == "done").count() >= 3, "{jobs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_postgres_database_enqueue_each_tick_once() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let Backend::Postgres(url) = backend.clone() else { unreachable!() };
    let manifest = with_schedule("* * * * * *");
    let mut first = Wharf::start_on(&manifest, backend.clone()).await;
    let mut second = Wharf::start_on(&manifest, backend).await;
    let both_up = now_ms();
    eventually(Duration::from_secs(30), "six ticks with both hosts up", || async {
        (ticks(&first).await.iter().filter(|t| **t > both_up).count() >= 6).then_some(())
    })
    .await;
    // Stopped gracefully, each host has logged every tick it took.
    assert_eq!(first.terminate(), Some(0));
    assert_eq!(second.terminate(), Some(0));

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM storetest._wharf_jobs WHERE queue = 'tick' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let ticks: Vec<i64> = keys.iter().map(|k| k.strip_prefix("schedule:tick:").unwrap().parse().unwrap()).collect();
    let taken = |w: &Wharf| w.log().matches("schedule tick enqueued").count();
    let (by_first, by_second) = (taken(&first), taken(&second));
    assert_eq!(by_first + by_second, ticks.len(), "each job was taken by one host: {by_first} + {by_second}");
    for host in [&first, &second] {
        assert!(!host.log().contains("already had its job"), "a tick was taken twice:\n{}", host.log());
    }
    let together: Vec<i64> = ticks.iter().copied().filter(|t| *t > both_up).collect();
    assert!(together.windows(2).all(|w| w[1] - w[0] == 1000), "every second has its job, once: {together:?}");
    eprintln!("ticks taken: first host {by_first}, second host {by_second}");
}

both_backends! {
    async fn a_restart_across_due_ticks_enqueues_one_catch_up_job_then_ticks_on(backend: Backend) {
        // The host is up before the schedule exists, so its timetable is relative to now.
        let wharf = Wharf::start_on(&storetest_manifest(""), backend).await;
        let base = now_ms() / 1000 * 1000;
        let at = |seconds: i64| base + seconds * 1000;
        // Up at 3 and 4; down at 6 and 7 (missed); up again at 12 and 13.
        let seconds = [3, 4, 6, 7, 12, 13].map(|s| ((at(s) / 1000) % 60).to_string()).join(",");
        rewrite_manifest(&wharf, &with_schedule(&format!("{seconds} * * * * *")));
        let (status, body) = reload(&wharf).await;
        assert_eq!(status, 200, "{body}");
        assert!(now_ms() < at(3) - 200, "the reload took too long for this timetable");

        eventually(Duration::from_secs(10), "the tick at 4", || async {
            ticks(&wharf).await.contains(&at(4)).then_some(())
        })
        .await;
        let mut wharf = wharf;
        assert_eq!(wharf.terminate(), Some(0));
        assert!(now_ms() < at(6) - 200, "the host took too long to stop for this timetable");
        tokio::time::sleep(Duration::from_millis(u64::try_from(at(8) - now_ms()).unwrap_or(0))).await;

        let wharf = wharf.restart().await;
        assert!(now_ms() < at(12) - 200, "the host took too long to start for this timetable");
        eventually(Duration::from_secs(15), "the tick at 13", || async {
            ticks(&wharf).await.contains(&at(13)).then_some(())
        })
        .await;
        assert_eq!(
            ticks(&wharf).await,
            [at(3), at(4), at(7), at(12), at(13)],
            "the missed ticks at 6 and 7 make one job, for 7, enqueued at start (base {base})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_cron_is_refused_at_start_and_on_reload_naming_the_field() {
    let Err(failure) = Wharf::try_start(&with_schedule("0 25 * * *")).await else {
        panic!("a bad cron must refuse the start");
    };
    assert_ne!(failure.code, Some(0));
    assert!(failure.stderr.contains("component `storetest`: field `schedules[0].cron`"), "{}", failure.stderr);
    assert!(failure.stderr.contains("`0 25 * * *` is not a cron expression"), "{}", failure.stderr);

    let wharf = Wharf::start(&with_schedule("* * * * * *")).await;
    eventually(Duration::from_secs(10), "a first tick", || async { (!ticks(&wharf).await.is_empty()).then_some(()) })
        .await;
    rewrite_manifest(&wharf, &with_schedule("61 * * * * *"));
    let (code, _, stderr) = cli(&wharf, &["reload", "storetest"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("field `schedules[0].cron`"), "{stderr}");
    // The old version keeps serving, and ticking.
    let before = ticks(&wharf).await.len();
    eventually(Duration::from_secs(10), "another tick after the refused reload", || async {
        (ticks(&wharf).await.len() > before).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_on_a_component_without_a_job_handler_is_refused() {
    let manifest = r#"
        [components.std-proxy]
        wasm = "{wasm:std_proxy}"
        routes = [{ path = "/std/*" }]
        grants = { interfaces = ["queue"] }
        schedules = [{ name = "tick", cron = "* * * * *" }]
    "#;
    let Err(failure) = Wharf::try_start(manifest).await else {
        panic!("a schedule without a job handler must refuse the start");
    };
    assert!(
        failure.stderr.contains("its `schedules` enqueue jobs, but it does not export `wharf:host/job-handler`"),
        "{}",
        failure.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_start_and_stop_schedules_and_operators_see_last_and_next_runs() {
    let wharf = Wharf::start(&storetest_manifest("")).await;
    let (status, body) = admin_get(&wharf, "/components/storetest/schedules").await;
    assert_eq!((status, &body), (200, &json!({"items": [], "total": 0})));

    // A reload that adds a schedule starts it.
    rewrite_manifest(&wharf, &with_schedule("* * * * * *"));
    assert_eq!(reload(&wharf).await.0, 200);
    eventually(Duration::from_secs(10), "two ticks", || async { (ticks(&wharf).await.len() >= 2).then_some(()) }).await;

    let (status, body) = admin_get(&wharf, "/components/storetest/schedules").await;
    assert_eq!(status, 200, "{body}");
    let item = &body["items"][0];
    assert_eq!((item["name"].as_str(), item["cron"].as_str()), (Some("tick"), Some("* * * * * *")), "{body}");
    let (last, next) = (item["last_run"].as_i64().unwrap(), item["next_run"].as_i64().unwrap());
    assert!(ticks(&wharf).await.contains(&last), "{body}");
    assert!(next > last && next <= now_ms() + 2000, "{body}");
    assert!(item["last_job"].as_i64().is_some(), "{body}");

    let (status, all) = admin_get(&wharf, "/schedules").await;
    assert_eq!(status, 200);
    assert_eq!(all["total"], 1, "{all}");
    assert_eq!(all["items"][0]["component"], "storetest", "{all}");
    let (code, stdout, stderr) = cli(&wharf, &["schedules"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("storetest/tick  \"* * * * * *\"  last 20"), "{stdout}");
    assert_eq!(admin_get(&wharf, "/components/nope/schedules").await.0, 404);
    let metrics = wharf.client.get(wharf.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"wharf_schedule_ticks_total{component="storetest",schedule="tick"}"#), "{metrics}");

    // A reload that removes it stops it.
    rewrite_manifest(&wharf, &storetest_manifest(""));
    assert_eq!(reload(&wharf).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopped = ticks(&wharf).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ticks(&wharf).await.len(), stopped, "a removed schedule kept ticking");
    assert_eq!(admin_get(&wharf, "/components/storetest/schedules").await.1["total"], 0);
}
