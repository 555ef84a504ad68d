//! The Mandrill feature (SPEC §1) over HTTP and WebSocket, on both backends.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::both_backends;
use crate::support::{Backend, Wharf, error_code};

pub(crate) fn mandrill_manifest(config: &str) -> String {
    mandrill_manifest_with(config, "")
}

pub(crate) fn mandrill_manifest_with(config: &str, ws_extra: &str) -> String {
    format!(
        r#"
        [components.mandrill]
        wasm = "{{wasm:mandrill}}"
        routes = [
            {{ path = "/", methods = ["GET", "HEAD"] }},
            {{ path = "/api/hook/*", methods = ["GET", "HEAD", "POST"], max_body = "20MiB", too_large_code = "batch_too_large" }},
            {{ path = "/api/events/*", methods = ["GET", "HEAD"] }},
        ]
        grants = {{ interfaces = ["config", "log", "store", "hub"] }}
        migrations = "{{repo}}/components/mandrill/migrations"
        config = {{ {config} }}

        [websockets.email]
        path = "/ws/email/"
        topic = "email"
        publishers = ["mandrill"]
        replay = {{ component = "mandrill", path = "/api/events/_replay" }}
        {ws_extra}
        "#
    )
}

/// A message event with distinct id material.
pub(crate) fn send_event(n: usize) -> Value {
    json!({"event": "send", "_id": format!("msg{n}"), "ts": 1_600_000_000 + n, "msg": {"email": format!("user{n}@example.com"), "subject": format!("Subject {n}"), "tags": []}})
}

pub(crate) async fn post_form(wharf: &Wharf, events: &Value) -> (u16, Value) {
    let response = wharf
        .client
        .post(wharf.url("/api/hook/"))
        .form(&[("mandrill_events", events.to_string())])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(wharf: &Wharf, query: &str) -> Client {
    let url = format!("ws://{}/ws/email/{query}", wharf.addr);
    tokio_tungstenite::connect_async(url).await.expect("websocket connect").0
}

/// The next text frame as JSON (fails after 10 s).
pub(crate) async fn next_event(client: &mut Client) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), client.next()).await.expect("a frame within 10 s");
        match frame.expect("stream open").expect("frame") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

both_backends! {
    async fn a_form_batch_is_stored_listed_and_deduplicated(backend: Backend) {
        let wharf = Wharf::start_on(&mandrill_manifest(""), backend).await;
        assert_eq!(wharf.get("/api/hook/").await.status(), 200);
        let head = wharf.client.head(wharf.url("/api/hook/")).send().await.unwrap();
        assert_eq!(head.status(), 200);

        let sync = json!({"type": "blacklist", "action": "add", "entry": {"email": "blocked@example.com"}, "ts": 1_600_000_500});
        let batch = json!([send_event(1), send_event(2), sync]);
        assert_eq!(post_form(&wharf, &batch).await, (200, json!({"received": 3, "stored": 3, "duplicates": 0})));
        // Mandrill retries whole batches: nothing is stored twice.
        let again = json!([send_event(2), send_event(3)]);
        assert_eq!(post_form(&wharf, &again).await, (200, json!({"received": 2, "stored": 1, "duplicates": 1})));

        let (status, list) = wharf.get_json("/api/events/").await;
        assert_eq!(status, 200);
        assert_eq!(list["total"], 4);
        assert_eq!(list["limit"], 50);
        let events: Vec<&str> = list["items"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(events, ["sync:blacklist", "send", "send", "send"], "newest ts first");
        let sync = &list["items"][0];
        assert_eq!(sync["email"], "blocked@example.com");
        assert_eq!(sync["message_id"], Value::Null);
        let first = &list["items"][3];
        assert_eq!(first["message_id"], "msg1");
        assert_eq!(first["subject"], "Subject 1");
        assert_eq!(first["ts"], 1_600_000_001);
        assert_eq!(first["payload"], send_event(1));
        assert!(first["received_at"].as_str().unwrap().ends_with('Z'));

        let (_, by_email) = wharf.get_json("/api/events/?email=user2%40example.com").await;
        assert_eq!(by_email["total"], 1);
        let (_, since) = wharf.get_json("/api/events/?since=1600000002&event=send").await;
        assert_eq!(since["total"], 2, "since is inclusive");
        let (status, bad) = wharf.get_json("/api/events/?limit=-1").await;
        assert_eq!(status, 400);
        assert_eq!(bad["error"]["code"], "invalid_fields");

        let id = first["id"].as_str().unwrap();
        assert_eq!(id.len(), 64);
        let (status, one) = wharf.get_json(&format!("/api/events/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(one["id"], id);
        let missing = wharf.get("/api/events/0000").await;
        assert_eq!(missing.status(), 404);
        assert_eq!(error_code(missing).await, "not_found");
    }
}

both_backends! {
    async fn a_bad_batch_stores_nothing(backend: Backend) {
        let wharf = Wharf::start_on(&mandrill_manifest(""), backend).await;
        for bad in [json!([send_event(1), 7]), json!([send_event(1), {"msg": {}}]), json!({"event": "send"})] {
            let (status, body) = post_form(&wharf, &bad).await;
            assert_eq!(status, 400, "{bad}");
            assert_eq!(body["error"]["code"], "invalid_payload");
        }
        let not_json = wharf.client.post(wharf.url("/api/hook/")).form(&[("mandrill_events", "[{")]).send().await.unwrap();
        assert_eq!(not_json.status(), 400);
        let too_many: Vec<Value> = (0..1001).map(send_event).collect();
        let (status, body) = post_form(&wharf, &Value::Array(too_many)).await;
        assert_eq!(status, 413);
        assert_eq!(body["error"]["code"], "batch_too_large");
        assert_eq!(wharf.get_json("/api/events/").await.1["total"], 0, "nothing stored");
        assert_eq!(post_form(&wharf, &json!([])).await, (200, json!({"received": 0, "stored": 0, "duplicates": 0})));
        // Over the route's 20 MiB the host refuses with the feature's code,
        // before reading the body (raw TCP: the client sends only the head).
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(wharf.addr).await.unwrap();
        let head = format!(
            "POST /api/hook/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            21 << 20
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0; 4096];
        let n = tcp.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains(r#""code":"batch_too_large""#), "{answer}");
    }
}

#[tokio::test]
async fn json_batches_are_accepted_only_without_a_webhook_key() {
    let open = Wharf::start(&mandrill_manifest("")).await;
    let response = open.client.post(open.url("/api/hook/")).json(&json!([send_event(1)])).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let signed = Wharf::start(&mandrill_manifest(
        r#"webhook_key = "test-key", webhook_url = "https://hooks.example.com/api/hook/""#,
    ))
    .await;
    let response = signed.client.post(signed.url("/api/hook/")).json(&json!([send_event(1)])).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "invalid_signature");
}

#[tokio::test]
async fn mandrill_signatures_are_checked_against_an_independent_vector() {
    let wharf = Wharf::start(&mandrill_manifest(
        r#"webhook_key = "test-key", webhook_url = "https://hooks.example.com/api/hook/""#,
    ))
    .await;
    // Computed with Python's hmac/hashlib/base64, not with this code base:
    // base64(HMAC-SHA1("test-key", url + "mandrill_events" + events)).
    let events =
        r#"[{"event":"open","_id":"sig1","ts":1600000100,"msg":{"email":"s@example.com","subject":"Signed"}}]"#;
    let signature = "LJ+AkceiMKcwhv7iGFO3PleVlEI=";
    let post = |sig: &'static str| {
        wharf
            .client
            .post(wharf.url("/api/hook/"))
            .header("x-mandrill-signature", sig)
            .form(&[("mandrill_events", events)])
            .send()
    };
    let wrong = post("AAAAAAAAAAAAAAAAAAAAAAAAAAA=").await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wharf.get_json("/api/events/").await.1["total"], 0);
    let right = post(signature).await.unwrap();
    assert_eq!(right.status(), 200);
    assert_eq!(wharf.get_json("/api/events/").await.1["total"], 1);
}

both_backends! {
    async fn two_clients_receive_every_event_in_batch_order(backend: Backend) {
        let wharf = Wharf::start_on(&mandrill_manifest(""), backend).await;
        let mut a = connect(&wharf, "").await;
        let mut b = connect(&wharf, "").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let batch: Vec<Value> = (0..50).map(send_event).collect();
        assert_eq!(post_form(&wharf, &Value::Array(batch)).await.1["stored"], 50);
        for client in [&mut a, &mut b] {
            for n in 0..50 {
                let event = next_event(client).await;
                assert_eq!(event["message_id"], format!("msg{n}"));
                assert_eq!(event["event"], "send");
            }
        }
        // Duplicates are not pushed again.
        post_form(&wharf, &json!([send_event(0), send_event(99)])).await;
        assert_eq!(next_event(&mut a).await["message_id"], "msg99");
    }
}

#[tokio::test]
async fn a_batch_of_1000_events_is_stored_and_pushed() {
    let wharf = Wharf::start(&mandrill_manifest("")).await;
    let mut client = connect(&wharf, "").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let batch: Vec<Value> = (0..1000).map(send_event).collect();
    assert_eq!(
        post_form(&wharf, &Value::Array(batch)).await,
        (200, json!({"received": 1000, "stored": 1000, "duplicates": 0}))
    );
    for n in 0..1000 {
        assert_eq!(next_event(&mut client).await["message_id"], format!("msg{n}"));
    }
    assert_eq!(wharf.get_json("/api/events/").await.1["total"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_dropped_without_delaying_others() {
    const BATCHES: usize = 6;
    let wharf = Wharf::start(&mandrill_manifest_with("", "buffer = 1500")).await;
    let stalled = connect(&wharf, "").await; // never reads
    let mut live = connect(&wharf, "").await;
    // The live client reads as a browser would, concurrently with the posts.
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        while ids.len() < BATCHES * 1000 {
            ids.push(next_event(&mut live).await["message_id"].as_str().unwrap().to_owned());
        }
        ids
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Far more than the stalled client's buffer (1500 messages) and the
    // socket buffers between it and the host can hold: 6000 x 4 KiB.
    for batch in 0..BATCHES {
        let events: Vec<Value> = (batch * 1000..(batch + 1) * 1000)
            .map(|i| {
                let mut e = send_event(i);
                e["msg"]["subject"] = json!("x".repeat(4096));
                e
            })
            .collect();
        assert_eq!(post_form(&wharf, &Value::Array(events)).await.0, 200);
    }
    let ids = tokio::time::timeout(Duration::from_secs(60), reader).await.expect("live client kept up").unwrap();
    let expected: Vec<String> = (0..BATCHES * 1000).map(|i| format!("msg{i}")).collect();
    assert_eq!(ids, expected, "the live client got every event, in order");

    // Reading the stalled socket now ends with the hub's 1013 close.
    let mut stalled = stalled;
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(frame) = stalled.next().await {
            match frame {
                Ok(Message::Close(Some(frame))) => return Some(u16::from(frame.code)),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the stalled client is closed");
    assert_eq!(closed, Some(1013));
    assert!(wharf.log().contains("dropping clients that fell behind"), "{}", wharf.log());
}

both_backends! {
    async fn a_reconnecting_client_gets_what_it_missed_then_live_events(backend: Backend) {
        let wharf = Wharf::start_on(&mandrill_manifest(""), backend).await;
        let mut client = connect(&wharf, "").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        post_form(&wharf, &json!([send_event(1), send_event(2)])).await;
        next_event(&mut client).await;
        let last = next_event(&mut client).await["id"].as_str().unwrap().to_owned();
        drop(client);

        post_form(&wharf, &json!([send_event(3), send_event(4)])).await;
        let mut client = connect(&wharf, &format!("?after={last}")).await;
        assert_eq!(next_event(&mut client).await["message_id"], "msg3");
        assert_eq!(next_event(&mut client).await["message_id"], "msg4");
        post_form(&wharf, &json!([send_event(5)])).await;
        assert_eq!(next_event(&mut client).await["message_id"], "msg5");

        let mut unknown = connect(&wharf, "?after=not-an-event").await;
        let frame = tokio::time::timeout(Duration::from_secs(10), unknown.next()).await.unwrap().unwrap().unwrap();
        let Message::Close(Some(close)) = frame else { panic!("expected a close frame, got {frame:?}") };
        assert_eq!(u16::from(close.code), 1008);
        assert!(!close.reason.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_one_host_receives_what_another_host_published() {
    let Some(backend) = Backend::postgres().await else { return };
    let first = Wharf::start_on(&mandrill_manifest(""), backend.clone()).await;
    let second = Wharf::start_on(&mandrill_manifest(""), backend).await;
    let mut client = connect(&second, "").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let big = {
        let mut e = send_event(2);
        e["msg"]["subject"] = json!("y".repeat(20_000)); // over NOTIFY's limit
        e
    };
    assert_eq!(post_form(&first, &json!([send_event(1), big])).await.1["stored"], 2);
    assert_eq!(next_event(&mut client).await["message_id"], "msg1");
    let relayed = next_event(&mut client).await;
    assert_eq!(relayed["message_id"], "msg2");
    assert_eq!(relayed["subject"].as_str().unwrap().len(), 20_000);
}

#[tokio::test]
async fn the_websocket_path_without_upgrade_is_426() {
    let wharf = Wharf::start(&mandrill_manifest("")).await;
    let response = wharf.get("/ws/email/").await;
    assert_eq!(response.status(), 426);
    assert_eq!(error_code(response).await, "upgrade_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_a_posted_event_in_a_real_browser() {
    let wharf = Wharf::start(&mandrill_manifest("")).await;
    let html = wharf.get("/").await.text().await.unwrap();
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "the page loads no external asset");
    let Some(mut browser) = crate::browser::Browser::open(&wharf.url("/")).await else { return };
    browser.wait_for("document.getElementById('state').textContent === 'connected'", "the page to connect").await;

    let mut event = send_event(7);
    event["msg"]["email"] = json!("live-page@example.com");
    event["msg"]["subject"] = json!("Seen in Chromium");
    assert_eq!(post_form(&wharf, &json!([event])).await.0, 200);
    browser
        .wait_for("document.getElementById('events').innerText.includes('live-page@example.com')", "the event row")
        .await;
    let row = browser.eval("document.querySelector('#events tr').innerText").await;
    let row = row.as_str().unwrap();
    assert!(row.contains("send") && row.contains("Seen in Chromium") && row.contains("2020-09-13T12:26:47Z"), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_get_a_clean_close_on_shutdown() {
    let mut wharf = Wharf::start(&mandrill_manifest("")).await;
    let mut client = connect(&wharf, "").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let closing = tokio::spawn(async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(20), client.next()).await.expect("close within 20 s") {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    });
    assert_eq!(tokio::task::spawn_blocking(move || wharf.terminate()).await.unwrap(), Some(0));
    assert_eq!(closing.await.unwrap(), Some(1001));
}
