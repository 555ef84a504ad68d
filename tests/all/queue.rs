//! `wharf:host/queue` on both backends: transactional enqueue, retries with
//! backoff, dead jobs, idempotency keys, delays, and no lost job across a
//! `kill -9` of the host.

use std::time::Duration;

use serde_json::json;

use crate::both_backends;
use crate::store::storetest_manifest;
use crate::support::{Backend, Wharf, eventually};

const FAST_RETRIES: &str = r#"queue = { workers = 2, backoff = "50ms", max_backoff = "200ms" }"#;

async fn job(wharf: &Wharf, id: i64) -> (u16, serde_json::Value) {
    wharf.get_json(&format!("/store/job/{id}")).await
}

async fn wait_for_status(wharf: &Wharf, id: i64, status: &str) -> serde_json::Value {
    eventually(Duration::from_secs(20), &format!("job {id} to be {status}"), || async {
        let (_, body) = job(wharf, id).await;
        (body["status"] == status).then_some(body)
    })
    .await
}

async fn count(wharf: &Wharf, sql: &str) -> i64 {
    let (_, body) = wharf.post_json("/store/query", json!({"sql": sql, "params": []})).await;
    body["rows"][0][0].as_i64().unwrap_or_else(|| panic!("{sql}: {body}"))
}

both_backends! {
    async fn enqueue_commits_and_rolls_back_with_the_request_transaction(backend: Backend) {
        let wharf = Wharf::start_on(&storetest_manifest(FAST_RETRIES), backend).await;
        let insert = json!({"sql": "INSERT INTO items (name) VALUES ('with-job')", "params": []});
        let enqueue = json!({"enqueue": {"queue": "q", "payload": {"effect": "a"}}});

        let (status, _) = wharf.post_json("/store/tx", json!({"steps": [insert, enqueue], "then": "trap"})).await;
        assert_eq!(status, 500);
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM items").await, 0, "no data without its job");
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM _wharf_jobs").await, 0, "no job without its data");

        let (status, body) = wharf.post_json("/store/tx", json!({"steps": [insert, enqueue], "then": "commit"})).await;
        assert_eq!(status, 200, "{body}");
        let id = body["results"][1]["job_id"].as_i64().unwrap();
        wait_for_status(&wharf, id, "done").await;
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM items").await, 1);
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM effects").await, 1);
    }
}

both_backends! {
    async fn failed_jobs_are_retried_with_backoff_until_done(backend: Backend) {
        let wharf = Wharf::start_on(&storetest_manifest(FAST_RETRIES), backend).await;
        let (_, body) = wharf.post_json("/store/enqueue", json!({"queue": "q", "payload": {"effect": "x", "fail_times": 2}})).await;
        let id = body["job_id"].as_i64().unwrap();
        let done = wait_for_status(&wharf, id, "done").await;
        assert_eq!(done["attempts"], 3);
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM deliveries").await, 3);
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM effects").await, 1);
    }
}

both_backends! {
    async fn a_job_is_dead_after_its_attempts_and_keeps_its_last_error(backend: Backend) {
        let wharf = Wharf::start_on(&storetest_manifest(FAST_RETRIES), backend).await;
        let plan = json!({"queue": "q", "payload": {"fail_times": 10}, "max_attempts": 3});
        let id = wharf.post_json("/store/enqueue", plan).await.1["job_id"].as_i64().unwrap();
        let dead = wait_for_status(&wharf, id, "dead").await;
        assert_eq!(dead["attempts"], 3);
        assert_eq!(dead["last_error"], "planned failure 3 of 10");

        // A trapping handler counts as a failed attempt, and the host keeps working.
        let plan = json!({"queue": "q", "payload": {"trap": true}, "max_attempts": 2});
        let id = wharf.post_json("/store/enqueue", plan).await.1["job_id"].as_i64().unwrap();
        let dead = wait_for_status(&wharf, id, "dead").await;
        assert!(dead["last_error"].as_str().unwrap().starts_with("trapped"), "{dead}");
        assert_eq!(wharf.get("/healthz").await.status(), 200);
    }
}

both_backends! {
    async fn an_idempotency_key_enqueues_once_and_delays_are_honoured(backend: Backend) {
        let wharf = Wharf::start_on(&storetest_manifest(FAST_RETRIES), backend).await;
        let plan = json!({"queue": "q", "payload": {"effect": "once"}, "idempotency_key": "order-7", "delay_ms": 1500});
        let first = wharf.post_json("/store/enqueue", plan.clone()).await.1["job_id"].as_i64().unwrap();
        let second = wharf.post_json("/store/enqueue", plan).await.1["job_id"].as_i64().unwrap();
        assert_eq!(first, second);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(job(&wharf, first).await.1["status"], "queued", "delayed job ran early");
        wait_for_status(&wharf, first, "done").await;
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM _wharf_jobs").await, 1);
    }
}

both_backends! {
    async fn no_job_is_lost_when_the_host_is_killed_mid_processing(backend: Backend) {
        const JOBS: i64 = 60;
        let manifest = storetest_manifest(
            r#"queue = { workers = 2, backoff = "50ms", max_backoff = "200ms", lease = "3s" }
            limits = { deadline = "2s" }"#,
        );
        let wharf = Wharf::start_on(&manifest, backend).await;
        for i in 0..JOBS {
            let plan = json!({"queue": "q", "payload": {"effect": format!("e{i}"), "sleep_ms": 50}});
            assert_eq!(wharf.post_json("/store/enqueue", plan).await.0, 200);
        }
        // Let some finish, then kill -9 while others are running.
        eventually(Duration::from_secs(20), "some jobs done", || async {
            (count(&wharf, "SELECT COUNT(*) FROM effects").await >= 5).then_some(())
        })
        .await;
        let before = count(&wharf, "SELECT COUNT(*) FROM effects").await;
        assert!(before < JOBS, "all jobs finished before the kill; the test proves nothing");

        let wharf = wharf.restart().await; // SIGKILL, then start again
        eventually(Duration::from_secs(60), "every job done after restart", || async {
            (count(&wharf, "SELECT COUNT(*) FROM _wharf_jobs WHERE status = 'done'").await == JOBS).then_some(())
        })
        .await;
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM effects").await, JOBS, "each effect exactly once");
        assert_eq!(count(&wharf, "SELECT COUNT(DISTINCT job_id) FROM deliveries").await, JOBS);
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM _wharf_jobs WHERE status = 'dead'").await, 0);
    }
}

both_backends! {
    async fn fast_jobs_are_claimed_in_batches_and_unstarted_ones_are_given_back(backend: Backend) {
        const FAST: usize = 40;
        const SLOW: usize = 4;
        // A two-second lease: after a 1.1 s job, more than half of it is gone,
        // so the worker must give back the rest of its batch rather than start them.
        let manifest = storetest_manifest(
            r#"queue = { workers = 1, lease = "2s" }
        limits = { deadline = "1500ms" }"#,
        );
        let wharf = Wharf::start_on(&manifest, backend).await;
        let job = |i: usize, sleep_ms: u64| json!({"enqueue": {"queue": "q", "payload": {"effect": format!("e{i}"), "sleep_ms": sleep_ms}}});
        let steps: Vec<_> = (0..FAST).map(|i| job(i, 0)).chain((FAST..FAST + SLOW).map(|i| job(i, 1100))).collect();
        let (status, body) = wharf.post_json("/store/tx", json!({"steps": steps, "then": "commit"})).await;
        assert_eq!(status, 200, "{body}");

        let all = i64::try_from(FAST + SLOW).unwrap();
        eventually(Duration::from_secs(30), "every job done", || async {
            (count(&wharf, "SELECT COUNT(*) FROM _wharf_jobs WHERE status = 'done'").await == all).then_some(())
        })
        .await;
        let log = wharf.log();
        let batches: Vec<usize> = log
            .lines()
            .filter(|l| l.contains("claimed jobs"))
            .filter_map(|l| l.split("jobs=").nth(1)?.split_whitespace().next()?.parse().ok())
            .collect();
        assert!(batches.iter().any(|&n| n > 1), "fast jobs were claimed one at a time: {batches:?}");
        assert!(log.contains("gave back unstarted jobs"), "the batch holding the slow jobs was not given back");
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM deliveries").await, all, "no job ran twice");
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM effects").await, all);
        assert_eq!(
            count(&wharf, "SELECT COUNT(*) FROM _wharf_jobs WHERE attempts <> 1").await,
            0,
            "a given-back job's delivery is not counted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_postgres_database_share_the_jobs() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    const JOBS: i64 = 40;
    let manifest = storetest_manifest(r#"queue = { workers = 2 }"#);
    let first = Wharf::start_on(&manifest, backend.clone()).await;
    let second = Wharf::start_on(&manifest, backend).await;
    for i in 0..JOBS {
        let plan = json!({"queue": "q", "payload": {"effect": format!("e{i}"), "sleep_ms": 30}});
        assert_eq!(first.post_json("/store/enqueue", plan).await.0, 200);
    }
    eventually(Duration::from_secs(30), "every job done", || async {
        (count(&second, "SELECT COUNT(*) FROM _wharf_jobs WHERE status = 'done'").await == JOBS).then_some(())
    })
    .await;
    assert_eq!(count(&first, "SELECT COUNT(*) FROM effects").await, JOBS);
    assert_eq!(count(&first, "SELECT COUNT(*) FROM deliveries").await, JOBS, "no job ran twice");
    let ran = |w: &Wharf| w.log().matches("job done").count();
    assert!(ran(&first) > 0 && ran(&second) > 0, "both hosts must take jobs: {} / {}", ran(&first), ran(&second));
}

both_backends! {
    async fn done_jobs_are_pruned_after_their_retention_and_dead_ones_kept(backend: Backend) {
        let manifest = storetest_manifest(r#"queue = { workers = 2, backoff = "50ms", max_backoff = "100ms", retention = "1s" }"#);
        let wharf = Wharf::start_on(&manifest, backend).await;
        let done = wharf.post_json("/store/enqueue", json!({"queue": "q", "payload": {"effect": "x"}})).await.1["job_id"].as_i64().unwrap();
        let dead_plan = json!({"queue": "q", "payload": {"fail_times": 5}, "max_attempts": 1});
        let dead = wharf.post_json("/store/enqueue", dead_plan).await.1["job_id"].as_i64().unwrap();
        wait_for_status(&wharf, done, "done").await;
        wait_for_status(&wharf, dead, "dead").await;
        eventually(Duration::from_secs(10), "the done job to be pruned", || async {
            (job(&wharf, done).await.0 == 404).then_some(())
        })
        .await;
        assert_eq!(job(&wharf, dead).await.1["status"], "dead", "dead jobs stay for operators");
        assert_eq!(count(&wharf, "SELECT COUNT(*) FROM effects").await, 1, "pruning a job keeps its effects");
    }
}
