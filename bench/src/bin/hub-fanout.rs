//! Hub fan-out benchmark: connects N WebSocket clients to `/ws/email/`, posts
//! Mandrill batches, and measures, per delivered message, the time from the
//! start of the POST that carried it to its arrival at a client.
//!
//! `hub-fanout BASE_URL CLIENTS BATCHES BATCH_SIZE [PAUSE_MS]` prints one table row:
//! clients | batches x size | deliveries | deliveries/s | p50 ms | p99 ms | max ms | POST ms (mean)
//!
//! Batches are posted PAUSE_MS apart (default 100; 0 posts them back to
//! back). deliveries/s counts from the first POST to the last arrival.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or_default()
}

/// The send time (µs) the poster put in the event's subject. A substring
/// search: with 10,000 clients, parsing every message as JSON would make this
/// client the bottleneck.
fn sent_us(text: &str) -> u64 {
    const KEY: &str = "\"subject\":\"";
    if let Some(at) = text.find(KEY) {
        let digits = &text[at + KEY.len()..];
        let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
        if let Ok(sent) = digits[..end].parse() {
            return sent;
        }
    }
    let event: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    event["subject"].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args.get(1).cloned().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let clients: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let batches: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let size: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(100);
    let pause = Duration::from_millis(args.get(5).and_then(|a| a.parse().ok()).unwrap_or(100));
    let ws_url = format!("{}/ws/email/", base.replacen("http", "ws", 1));
    let expected = batches * size;

    // Connect in waves so the accept queue is not overrun.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Vec<u64>, Option<Instant>)>();
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    for wave in (0..clients).collect::<Vec<_>>().chunks(200) {
        let mut handles = Vec::new();
        for _ in wave {
            let (url, tx, connected) = (ws_url.clone(), tx.clone(), connected.clone());
            handles.push(tokio::spawn(async move {
                let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else { return };
                connected.add_permits(1);
                let mut latencies = Vec::with_capacity(expected);
                let mut last = None;
                while latencies.len() < expected {
                    match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                        Ok(Some(Ok(Message::Text(text)))) => {
                            latencies.push(now_us().saturating_sub(sent_us(&text)));
                            last = Some(Instant::now());
                        }
                        Ok(Some(Ok(_))) => continue,
                        _ => break,
                    }
                }
                let _ = tx.send((latencies, last));
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(60), connected.acquire_many(clients as u32)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut post_ms = Vec::new();
    for b in 0..batches {
        let sent = now_us();
        let events: Vec<serde_json::Value> = (0..size)
            .map(|i| {
                serde_json::json!({"event": "send", "_id": format!("bench-{sent}-{b}-{i}"), "ts": 1_700_000_000 + i,
                "msg": {"email": format!("u{i}@example.com"), "subject": sent.to_string()}})
            })
            .collect();
        let body = serde_json::Value::Array(events).to_string();
        let post = Instant::now();
        let response = http.post(format!("{base}/api/hook/")).form(&[("mandrill_events", body)]).send().await;
        post_ms.push(post.elapsed().as_secs_f64() * 1000.0);
        assert!(response.is_ok_and(|r| r.status().is_success()), "batch {b} was refused");
        if b + 1 < batches {
            tokio::time::sleep(pause).await;
        }
    }
    let posted = started.elapsed();
    let mut all = Vec::new();
    let (mut complete, mut last_arrival) = (0, None::<Instant>);
    while let Some((latencies, last)) = rx.recv().await {
        complete += usize::from(latencies.len() == expected);
        all.extend(latencies);
        last_arrival = last_arrival.max(last);
    }
    // Clients that missed a message wait out their timeout: count to the last arrival.
    let elapsed = last_arrival.map_or(posted, |t| t.duration_since(started)).as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0) as f64
            / 1000.0
    };
    let mean_post = post_ms.iter().sum::<f64>() / post_ms.len().max(1) as f64;
    println!(
        "| {clients} ({complete} complete) | {batches} x {size} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        mean_post
    );
}
