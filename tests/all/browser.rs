//! A real headless Chromium for page tests, driven over the DevTools
//! protocol with the WebSocket client the other tests use: open a page,
//! evaluate JavaScript in it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Where Debian installs Chromium.
const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium with one page open.
pub struct Browser {
    child: Child,
    page: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens `url` in a new headless Chromium, or returns `None` (loudly)
    /// when Chromium is not installed; under `CI=true` that is a failure.
    pub async fn open(url: &str) -> Option<Browser> {
        if !std::path::Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{CHROMIUM} is missing: CI must run the page tests (scripts/test.sh installs Chromium)"
            );
            eprintln!("!!! SKIPPING a browser test: {CHROMIUM} is not installed (scripts/test.sh installs it)");
            return None;
        }
        let profile = tempfile::tempdir().unwrap();
        // The flags keep Chromium off the network it cannot reach here.
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // Chromium prints the DevTools address on stderr.
        let stderr = child.stderr.take().unwrap();
        let port = tokio::task::spawn_blocking(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    return rest.split('/').next().map(str::to_owned);
                }
            }
            None
        });
        let port = tokio::time::timeout(Duration::from_secs(60), port)
            .await
            .expect("chromium announces DevTools")
            .unwrap()
            .expect("DevTools port");
        let targets: Value =
            reqwest::get(format!("http://127.0.0.1:{port}/json/list")).await.unwrap().json().await.unwrap();
        let page_url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (page, _) = tokio_tungstenite::connect_async(page_url).await.expect("connect to the page");
        Some(Browser { child, page, next_id: 1, _profile: profile })
    }

    /// Evaluates `expression` in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"id": id, "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": true}});
        self.page.send(Message::Text(request.to_string().into())).await.unwrap();
        loop {
            let frame =
                tokio::time::timeout(Duration::from_secs(10), self.page.next()).await.expect("DevTools answers");
            if let Some(Ok(Message::Text(text))) = frame {
                let answer: Value = serde_json::from_str(&text).unwrap();
                if answer["id"] == id {
                    return answer["result"]["result"]["value"].clone();
                }
            }
        }
    }

    /// Waits until `expression` evaluates to `true`.
    pub async fn wait_for(&mut self, expression: &str, what: &str) {
        let started = std::time::Instant::now();
        while self.eval(expression).await != Value::Bool(true) {
            assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
