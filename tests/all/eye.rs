//! Event tracking, "the eye" (SPEC §2), on both backends: sessions, events
//! accepted at once and validated by jobs, errors, filters, writes under
//! concurrency, and accepted events surviving `kill -9`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Wharf, error_code, eventually};

pub(crate) fn eye_manifest() -> String {
    r#"
    [components.eye]
    wasm = "{wasm:eye}"
    routes = [{ path = "/eye/*" }]
    grants = { interfaces = ["log", "store", "queue"] }
    migrations = "{repo}/components/eye/migrations"
    queue = { workers = 4, backoff = "100ms", max_backoff = "1s", lease = "5s" }
    limits = { deadline = "3s" }
    "#
    .to_owned()
}

async fn session(wharf: &Wharf) -> String {
    let (status, body) = wharf.post_json("/eye/sessions/", json!({})).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

fn event(session: &str, name: &str, timestamp: &str) -> Value {
    json!({"session": {"id": session}, "category": "page interaction", "name": name,
           "data": {"host": "www.example.com", "path": "/"}, "timestamp": timestamp})
}

/// Posts an event, waits for its job to finish, returns the job's final status body.
async fn submit(wharf: &Wharf, body: Value) -> Value {
    let (status, accepted) = wharf.post_json("/eye/events/", body).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "accepted");
    let job = accepted["job_id"].as_i64().unwrap();
    eventually(Duration::from_secs(20), "the job to finish", || async {
        let (_, body) = wharf.get_json(&format!("/eye/jobs/{job}")).await;
        matches!(body["status"].as_str(), Some("done" | "failed")).then_some(body)
    })
    .await
}

both_backends! {
    async fn sessions_are_created_listed_and_counted(backend: Backend) {
        let wharf = Wharf::start_on(&eye_manifest(), backend).await;
        let first = session(&wharf).await;
        let second = session(&wharf).await;
        assert_eq!(uuid::Uuid::parse_str(&first).unwrap().get_version_num(), 4);
        let empty = wharf.client.post(wharf.url("/eye/sessions/")).send().await.unwrap();
        assert_eq!(empty.status(), 201, "an empty body creates a session");
        let (_, list) = wharf.get_json("/eye/sessions/").await;
        assert_eq!(list["total"], 3);
        assert_eq!(list["items"][1]["id"], second, "newest first");
        assert_eq!(list["items"][2]["id"], first);
        submit(&wharf, event(&first, "pageview", "2021-06-15 00:00:00")).await;
        let (status, one) = wharf.get_json(&format!("/eye/sessions/{first}")).await;
        assert_eq!(status, 200);
        assert_eq!(one["event_count"], 1);
        assert!(one["created_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(wharf.get("/eye/sessions/00000000-0000-4000-8000-000000000000").await.status(), 404);
    }
}

both_backends! {
    async fn accepted_events_become_events_or_errors(backend: Backend) {
        let wharf = Wharf::start_on(&eye_manifest(), backend).await;
        let s = session(&wharf).await;
        let done = submit(&wharf, event(&s, "pageview", "2021-06-15 00:00:00")).await;
        assert_eq!(done["status"], "done", "{done}");
        let (_, created) = wharf.get_json(&format!("/eye/events/{}", done["event_id"])).await;
        assert_eq!(created["session"]["id"], s);
        assert_eq!(created["timestamp"], "2021-06-15T00:00:00Z");
        assert_eq!(created["data"]["path"], "/");
        // A bare session id string is accepted too.
        let mut bare = event(&s, "click", "2021-06-15T00:00:01Z");
        bare["session"] = json!(s);
        assert_eq!(submit(&wharf, bare).await["status"], "done");

        let future = chrono::Utc::now() + chrono::Duration::minutes(5);
        let cases = [
            (event("00000000-0000-4000-8000-000000000000", "x", "2021-06-15 00:00:00"), "does not exist"),
            (json!({"session": {"id": s}, "category": "", "name": "x", "data": {"a": 1}, "timestamp": "2021-06-15 00:00:00"}), "category"),
            (json!({"session": {"id": s}, "category": "c", "name": "x", "data": {}, "timestamp": "2021-06-15 00:00:00"}), "data"),
            (event(&s, "x", &future.to_rfc3339()), "future"),
            (event(&s, "x", "yesterday"), "timestamp"),
        ];
        for (body, reason) in cases {
            let failed = submit(&wharf, body.clone()).await;
            assert_eq!(failed["status"], "failed", "{body}");
            let (_, error) = wharf.get_json(&format!("/eye/errors/{}", failed["error_id"])).await;
            assert!(error["reason"].as_str().unwrap().contains(reason), "{error}");
            assert_eq!(error["payload"], body);
        }
        let (_, errors) = wharf.get_json("/eye/errors/").await;
        assert_eq!(errors["total"], 5);
        let (_, events) = wharf.get_json("/eye/events/").await;
        assert_eq!(events["total"], 2, "invalid events are not created");

        // Not a JSON object: refused at once, nothing queued.
        let response = wharf.client.post(wharf.url("/eye/events/")).body("[1, 2]").send().await.unwrap();
        assert_eq!(response.status(), 400);
        let response = wharf.client.post(wharf.url("/eye/events/")).body("{nope").send().await.unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(error_code(response).await, "invalid_json");
        assert_eq!(wharf.get("/eye/jobs/999999").await.status(), 404);
    }
}

both_backends! {
    async fn events_are_filtered_and_ordered_by_timestamp(backend: Backend) {
        let wharf = Wharf::start_on(&eye_manifest(), backend).await;
        let (a, b) = (session(&wharf).await, session(&wharf).await);
        let mut e = event(&a, "late", "2021-06-15 10:00:00");
        e["category"] = json!("form interaction");
        for body in [e, event(&a, "early", "2021-06-15 08:00:00"), event(&b, "tie-1", "2021-06-15 09:00:00"), event(&b, "tie-2", "2021-06-15 09:00:00")] {
            assert_eq!(submit(&wharf, body).await["status"], "done");
        }
        let names = |list: &Value| -> Vec<String> {
            list["items"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
        };
        let (_, all) = wharf.get_json("/eye/events/").await;
        assert_eq!(names(&all), ["early", "tie-1", "tie-2", "late"]);
        assert_eq!(names(&wharf.get_json(&format!("/eye/events/?session={a}")).await.1), ["early", "late"]);
        assert_eq!(names(&wharf.get_json("/eye/events/?category=form%20interaction").await.1), ["late"]);
        assert_eq!(names(&wharf.get_json("/eye/events/?name=tie-2").await.1), ["tie-2"]);
        let range = "/eye/events/?timestamp__gte=2021-06-15T08:30:00Z&timestamp__lte=2021-06-15%2009:00:00";
        assert_eq!(names(&wharf.get_json(range).await.1), ["tie-1", "tie-2"]);
        let (_, page) = wharf.get_json("/eye/events/?limit=2&offset=1").await;
        assert_eq!(names(&page), ["tie-1", "tie-2"]);
        assert_eq!(page["total"], 4);
        let (status, bad) = wharf.get_json("/eye/events/?timestamp__gte=soon").await;
        assert_eq!(status, 400);
        assert_eq!(bad["error"]["code"], "invalid_fields");
        // An empty filter is no filter; a session id is a UUID in any case.
        let empty = "/eye/events/?session=&category=&name=&timestamp__gte=&timestamp__lte=";
        assert_eq!(names(&wharf.get_json(empty).await.1), ["early", "tie-1", "tie-2", "late"]);
        let upper = a.to_uppercase();
        assert_eq!(names(&wharf.get_json(&format!("/eye/events/?session={upper}")).await.1), ["early", "late"]);
        for not_an_id in ["nope", "1", &a.replace('-', "")] {
            let (status, bad) = wharf.get_json(&format!("/eye/events/?session={not_an_id}")).await;
            assert_eq!(status, 400, "{not_an_id}");
            assert_eq!(bad["error"]["fields"]["session"], "must be a session id (a UUID)");
        }
    }
}

both_backends! {
    async fn put_patch_and_delete_are_validated_synchronously(backend: Backend) {
        let wharf = Wharf::start_on(&eye_manifest(), backend).await;
        let s = session(&wharf).await;
        let id = submit(&wharf, event(&s, "pageview", "2021-06-15 00:00:00")).await["event_id"].as_i64().unwrap();
        let url = wharf.url(&format!("/eye/events/{id}"));

        let put = json!({"session": {"id": s}, "category": "c2", "name": "n2", "data": {"k": "v"}, "timestamp": "2021-06-16 00:00:00"});
        let response = wharf.client.put(&url).json(&put).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let incomplete = wharf.client.put(&url).json(&json!({"name": "only"})).send().await.unwrap();
        assert_eq!(incomplete.status(), 400);

        let patched: Value = wharf.client.patch(&url).json(&json!({"data": {"other": 1}})).send().await.unwrap().json().await.unwrap();
        assert_eq!(patched["data"], json!({"other": 1}), "data is replaced, not merged");
        assert_eq!(patched["name"], "n2");

        let bad = wharf.client.patch(&url).json(&json!({"name": "", "data": {"x": 1}})).send().await.unwrap();
        assert_eq!(bad.status(), 400);
        let body: Value = bad.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_fields");
        assert!(body["error"]["fields"]["name"].is_string());
        let (_, unchanged) = wharf.get_json(&format!("/eye/events/{id}")).await;
        assert_eq!(unchanged["data"], json!({"other": 1}), "a refused write changes nothing");

        assert_eq!(wharf.client.delete(&url).send().await.unwrap().status(), 204);
        assert_eq!(wharf.get(&format!("/eye/events/{id}")).await.status(), 404);
        assert_eq!(wharf.client.delete(&url).send().await.unwrap().status(), 404);
    }
}

both_backends! {
    async fn concurrent_patches_of_one_event_never_lose_an_update(backend: Backend) {
        let wharf = Wharf::start_on(&eye_manifest(), backend).await;
        let s = session(&wharf).await;
        let id = submit(&wharf, event(&s, "pageview", "2021-06-15 00:00:00")).await["event_id"].as_i64().unwrap();
        let url = wharf.url(&format!("/eye/events/{id}"));
        for round in 0..8 {
            // Four clients at once, each changing a different field: a
            // read-modify-write without a lock would revert someone's field.
            let patches = [
                json!({"category": format!("c{round}")}),
                json!({"name": format!("n{round}")}),
                json!({"data": {"round": round}}),
                json!({"timestamp": format!("2021-06-{:02} 00:00:00", round + 1)}),
            ];
            let tasks: Vec<_> = patches
                .into_iter()
                .map(|patch| {
                    let (client, url) = (wharf.client.clone(), url.clone());
                    tokio::spawn(async move { client.patch(url).json(&patch).send().await.unwrap().status().as_u16() })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await.unwrap(), 200);
            }
            let (_, now) = wharf.get_json(&format!("/eye/events/{id}")).await;
            assert_eq!(now["category"], format!("c{round}"), "{now}");
            assert_eq!(now["name"], format!("n{round}"), "{now}");
            assert_eq!(now["data"], json!({"round": round}), "{now}");
            assert_eq!(now["timestamp"], format!("2021-06-{:02}T00:00:00Z", round + 1), "{now}");
        }
    }
}

both_backends! {
    async fn accepted_events_survive_kill_9_exactly_once(backend: Backend) {
        const N: usize = 80;
        let wharf = Wharf::start_on(&eye_manifest(), backend).await;
        let s = session(&wharf).await;
        let mut jobs = Vec::new();
        for i in 0..N {
            // Every fifth is invalid (empty name) and must become an error.
            let name = if i % 5 == 0 { String::new() } else { format!("e{i}") };
            let (status, body) = wharf.post_json("/eye/events/", event(&s, &name, "2021-06-15 00:00:00")).await;
            assert_eq!(status, 202);
            jobs.push(body["job_id"].as_i64().unwrap());
        }
        // kill -9 right after the last 202, then start again.
        let wharf = wharf.restart().await;
        let finished = eventually(Duration::from_secs(60), "every accepted event processed", || async {
            let (_, events) = wharf.get_json("/eye/events/?limit=500").await;
            let (_, errors) = wharf.get_json("/eye/errors/?limit=500").await;
            let total = events["total"].as_i64().unwrap_or(0) + errors["total"].as_i64().unwrap_or(0);
            (total >= N as i64).then_some((events, errors))
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, events) = wharf.get_json("/eye/events/?limit=500").await;
        let (_, errors) = wharf.get_json("/eye/errors/?limit=500").await;
        assert_eq!(events["total"], (N - N / 5) as i64, "each valid event created once: {}", finished.0["total"]);
        assert_eq!(errors["total"], (N / 5) as i64, "each invalid event recorded once");
        // A job whose worker died after creating its event but before
        // reporting back runs again when its lease expires: still one event.
        for job in jobs {
            eventually(Duration::from_secs(30), &format!("job {job} to finish"), || async {
                let (_, status) = wharf.get_json(&format!("/eye/jobs/{job}")).await;
                matches!(status["status"].as_str(), Some("done" | "failed")).then_some(())
            })
            .await;
        }
        let (_, events) = wharf.get_json("/eye/events/?limit=500").await;
        let (_, errors) = wharf.get_json("/eye/errors/?limit=500").await;
        assert_eq!(events["total"], (N - N / 5) as i64, "still once after the re-runs");
        assert_eq!(errors["total"], (N / 5) as i64);
    }
}
