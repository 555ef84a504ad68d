//! Hostile clients at the front door and at costly routes: slow and stalled
//! clients, oversized heads, floods of connections and logins, rate limits,
//! forged hub notifications, tokens from components that may not issue
//! them. Each test says what was tried and asserts what held; the counts go
//! to docs/reliability.md.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{Backend, Wharf, error_code};

const HELLO: &str = r#"
[components.misbehave]
wasm = "{wasm:misbehave}"
routes = [
    { path = "/misbehave/*" },
    { path = "/misbehave/limited/*", rate_limit = { requests = 3, per = "1m" } },
]
grants = { interfaces = ["log"] }
limits = { max_body = "1KiB" }
"#;

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.X).
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads until the peer closes or `limit` passes; what was read, and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

async fn get_ok(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /misbehave/ok HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn slow_heads_stalled_bodies_and_idle_connections_are_cut_off() {
    let args = ["--header-timeout", "1s", "--idle-timeout", "1s", "--body-timeout", "1s"];
    let wharf = Wharf::try_start_with(HELLO, Backend::Sqlite, &args).await.unwrap();
    let started = Instant::now();

    // Slowloris: half a head, then silence.
    let mut slow = TcpStream::connect(wharf.addr).await.unwrap();
    slow.write_all(b"GET /misbehave/ok HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed, "a connection sending half a head was kept open");

    // A body that stops half-way: 408 with the JSON body.
    let mut stalled = TcpStream::connect(wharf.addr).await.unwrap();
    stalled
        .write_all(b"POST /misbehave/ok HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut stalled, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(closed);

    // Keep-alive with nothing in flight: closed after the idle timeout.
    let mut idle = TcpStream::connect(wharf.addr).await.unwrap();
    assert!(get_ok(&mut idle).await.starts_with("HTTP/1.1 200"));
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed, "an idle keep-alive connection was kept open");
    assert!(started.elapsed() < Duration::from_secs(15));

    // And the host still serves.
    assert_eq!(wharf.get("/misbehave/ok").await.status(), 200);
    eprintln!("reliability: slow-clients tried=3 held=3");
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let wharf = Wharf::start(HELLO).await;
    // Over the caps (32 KiB, 100 fields): 431 with the JSON error body.
    let huge = "x".repeat(64 << 10);
    let response = wharf.client.get(wharf.url("/misbehave/ok")).header("x-big", &huge).send().await.unwrap();
    assert_eq!(response.status(), 431);
    assert_eq!(error_code(response).await, "header_too_large");
    let mut many = wharf.client.get(wharf.url("/misbehave/ok"));
    for i in 0..200 {
        many = many.header(format!("x-h{i}"), "v");
    }
    let response = many.send().await.unwrap();
    assert_eq!(response.status(), 431);
    assert_eq!(error_code(response).await, "header_too_large");
    // Over four times the cap hyper's parser refuses it before the host sees
    // it: a bare 431, or the connection closed.
    let enormous = "x".repeat(1 << 20);
    let response = wharf.client.get(wharf.url("/misbehave/ok")).header("x-big", &enormous).send().await;
    let status = response.map(|r| r.status().as_u16()).unwrap_or(0);
    assert!(status == 431 || status == 0, "a 1 MiB header was accepted: {status}");
    assert_eq!(wharf.get("/misbehave/ok").await.status(), 200);
}

#[tokio::test]
async fn a_body_over_its_cap_gets_a_readable_413_while_the_client_is_still_sending() {
    let wharf = Wharf::start(HELLO).await;
    for size in [2 << 10, 1 << 20, 8 << 20] {
        let response = wharf.client.post(wharf.url("/misbehave/ok")).body(vec![b'x'; size]).send().await;
        let response = response.unwrap_or_else(|e| panic!("{size} bytes: the client saw {e} instead of a 413"));
        assert_eq!(response.status(), 413, "{size} bytes");
        assert_eq!(error_code(response).await, "body_too_large");
    }
}

#[tokio::test]
async fn connections_are_capped_per_address_and_a_flood_keeps_no_one_else_out() {
    let args = ["--max-connections-per-ip", "20", "--max-connections", "60"];
    let wharf = Wharf::try_start_with(HELLO, Backend::Sqlite, &args).await.unwrap();
    // 20 idle connections from one address are its share.
    let mut flood = Vec::new();
    for _ in 0..20 {
        flood.push(connect_from([127, 0, 0, 1], wharf.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = connect_from([127, 0, 0, 1], wharf.addr).await;
    over.write_all(b"GET /misbehave/ok HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let (answer, _) = read_until_closed(&mut over, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("\"code\":\"too_many_connections\"") && answer.to_lowercase().contains("retry-after"));

    // Other addresses fill the total cap with idle sockets...
    for i in 0..3u8 {
        for _ in 0..20 {
            flood.push(connect_from([127, 0, 1, i], wharf.addr).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...and a real client still gets in: an idle socket makes room.
    let mut real = connect_from([127, 0, 2, 1], wharf.addr).await;
    assert!(get_ok(&mut real).await.starts_with("HTTP/1.1 200"));
    eprintln!("reliability: connection-flood tried={} real-client=served", flood.len() + 1);
}

#[tokio::test]
async fn a_rate_limited_route_answers_429_with_retry_after_per_address() {
    let wharf = Wharf::start(HELLO).await;
    for _ in 0..3 {
        assert_eq!(wharf.get("/misbehave/limited/x").await.status(), 200);
    }
    let limited = wharf.get("/misbehave/limited/x").await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let request_id = limited.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["error"]["request_id"], request_id.as_str());
    // A doubled slash is the same route.
    assert_eq!(wharf.get("/misbehave//limited/x").await.status(), 429);
    // Other routes and other addresses are not limited.
    assert_eq!(wharf.get("/misbehave/ok").await.status(), 200);
    let other =
        reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).no_proxy().build().unwrap();
    assert_eq!(other.get(wharf.url("/misbehave/limited/x")).send().await.unwrap().status(), 200);
}

fn users_manifest(issue: &str) -> String {
    format!(
        r#"
        [components.users]
        wasm = "{{wasm:users}}"
        routes = [
            {{ path = "/api/auth/*" }},
            {{ path = "/api/auth/login/*", methods = ["POST"], rate_limit = {{ requests = 60, per = "1m" }} }},
        ]
        grants = {{ interfaces = ["config", "log", "store", "auth"]{issue} }}
        migrations = "{{repo}}/components/users/migrations"
        "#
    )
}

fn person(email: &str) -> serde_json::Value {
    json!({"email_id": email, "first_name": "Ada", "last_name": "Lovelace", "password": "correct horse",
           "phone_no": "+44 20 7946 0018"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_logins_for_unknown_emails_does_not_lock_a_real_user_out() {
    let wharf = Wharf::start(&users_manifest(r#", auth = { issue = ["access", "refresh"] }"#)).await;
    let (status, body) = wharf.post_json("/api/auth/users/", person("real@example.com")).await;
    assert_eq!(status, 201, "{body}");
    let flood = (0..200).map(|i| {
        let (client, url) = (wharf.client.clone(), wharf.url("/api/auth/login/"));
        tokio::spawn(async move {
            let body = json!({"email_id": format!("nobody{i}@example.com"), "password": "guess"});
            client.post(url).json(&body).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        })
    });
    let flood: Vec<_> = flood.collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The real user logs in from their own address while the flood runs.
    let real =
        reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).no_proxy().build().unwrap();
    let mut got_in = 0;
    let attempts = 10;
    for _ in 0..attempts {
        let response = real
            .post(wharf.url("/api/auth/login/"))
            .json(&json!({"email_id": "real@example.com", "password": "correct horse"}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status == 200 && body["access"].is_string() {
            got_in += 1;
        }
    }
    let flood_statuses = futures_util::future::join_all(flood).await;
    let refused = flood_statuses.iter().filter(|s| matches!(s, Ok(401))).count();
    let limited = flood_statuses.iter().filter(|s| matches!(s, Ok(429))).count();
    assert_eq!(got_in, attempts, "the real user got in {got_in} of {attempts} times during the flood");
    assert!(limited >= 100, "the login rate limit did not hold: {limited} of 200 limited");
    eprintln!(
        "reliability: login-flood unknown-email-logins=200 answered-401={refused} rate-limited-429={limited} real-logins={got_in}/{attempts}"
    );
}

#[tokio::test]
async fn a_component_granted_auth_cannot_issue_tokens_it_was_not_granted() {
    // `users` with `auth` but no issue grant: logging in would mint tokens.
    let wharf = Wharf::start(&users_manifest("")).await;
    let (status, body) = wharf.post_json("/api/auth/users/", person("ada@example.com")).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        wharf.post_json("/api/auth/login/", json!({"email_id": "ada@example.com", "password": "correct horse"})).await;
    assert_eq!(status, 500, "a token was issued without the grant: {body}");
    assert!(body["access"].is_null());
    assert!(wharf.log().contains("may not issue `access` tokens"), "{}", wharf.log());
    // The host keeps serving.
    assert_eq!(wharf.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_key_with_less_than_32_bytes_of_material_refuses_the_start() {
    for weak in ["short", "00112233445566778899aabbccddeeff"] {
        // Through the environment, as operators set it.
        let failure = {
            let temp = tempfile::tempdir().unwrap();
            std::fs::write(temp.path().join("components.toml"), crate::support::manifest(HELLO)).unwrap();
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
                .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--manifest"])
                .arg(temp.path().join("components.toml"))
                .arg("--data-dir")
                .arg(temp.path().join("data"))
                .env("WHARF_AUTH_KEY", weak)
                .env_remove("DATABASE_URL")
                .output()
                .unwrap();
            (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
        };
        assert_eq!(failure.0, Some(1), "{weak}: {}", failure.1);
        assert!(failure.1.contains("WHARF_AUTH_KEY holds"), "{weak}: {}", failure.1);
    }
}

const HUB: &str = r#"
[components.misbehave]
wasm = "{wasm:misbehave}"
routes = [{ path = "/misbehave/*" }]
grants = { interfaces = ["log", "hub"] }

[websockets.feed]
path = "/ws/feed/"
topic = "feed"
publishers = ["misbehave"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_hub_notifications_reach_no_client() {
    let Some(backend) = Backend::postgres().await else { return };
    let Backend::Postgres(url) = &backend else { unreachable!() };
    let url = url.clone();
    let wharf = Wharf::start_on(HUB, backend).await;
    let (mut client, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/feed/", wharf.addr)).await.expect("websocket");
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let secret: Vec<u8> =
        sqlx::query_scalar("SELECT secret FROM public.wharf_host_secret WHERE id = 1").fetch_one(&admin).await.unwrap();
    let channel = wharf::hub::relay::channel_for(&secret);
    let now = chrono::Utc::now().timestamp_millis();
    let unsigned =
        json!({"origin": "x", "topic": "feed", "message": "forged", "sent_ms": now, "nonce": "n1", "mac": ""});
    let wrong_key = wharf::hub::relay::signed_payload(&[9; 32], "x", "feed", "forged", now, "n2");
    let stale = wharf::hub::relay::signed_payload(&secret, "x", "feed", "forged", now - 3_600_000, "n3");
    let genuine = wharf::hub::relay::signed_payload(&secret, "x", "feed", "genuine", now, "n4");
    let mut forgeries = 0;
    for (channel, payload) in [
        ("wharf_hub".to_owned(), unsigned.to_string()),
        (channel.clone(), unsigned.to_string()),
        (channel.clone(), wrong_key),
        (channel.clone(), stale),
    ] {
        sqlx::query("SELECT pg_notify($1, $2)").bind(&channel).bind(payload).execute(&admin).await.unwrap();
        forgeries += 1;
    }
    // The genuine one, twice: the replay is dropped.
    for _ in 0..2 {
        sqlx::query("SELECT pg_notify($1, $2)").bind(&channel).bind(&genuine).execute(&admin).await.unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(5), client.next()).await.expect("the genuine message");
    let first = first.unwrap().unwrap().into_text().unwrap();
    assert_eq!(first.as_str(), "genuine");
    let more = tokio::time::timeout(Duration::from_millis(700), client.next()).await;
    assert!(more.is_err(), "something else reached the client: {more:?}");
    eprintln!("reliability: hub-forgery forged={forgeries} replayed=1 delivered-forgeries=0");
}

const HUBTX: &str = r#"
[components.hubtx]
wasm = "{wasm:hubtx}"
routes = [{ path = "/hubtx/*" }]
grants = { interfaces = ["store", "hub"] }

[websockets.feed]
path = "/ws/feed/"
topic = "feed"
publishers = ["hubtx"]
"#;

crate::both_backends! {
    async fn a_publish_inside_a_transaction_is_sent_only_if_it_commits(backend: Backend) {
        let wharf = Wharf::start_on(HUBTX, backend).await;
        let (mut client, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws/feed/", wharf.addr)).await.expect("websocket");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(wharf.get("/hubtx/rollback/rolled-back").await.status(), 200);
        assert_eq!(wharf.get("/hubtx/trap/trapped").await.status(), 500);
        assert_eq!(wharf.get("/hubtx/commit/committed").await.status(), 200);
        assert_eq!(wharf.get("/hubtx/direct/direct").await.status(), 200);
        let mut received = Vec::new();
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_millis(700), client.next()).await {
            received.push(frame.into_text().unwrap().to_string());
        }
        assert_eq!(received, ["committed", "direct"], "only what committed (and what needed no transaction) was sent");
    }
}
