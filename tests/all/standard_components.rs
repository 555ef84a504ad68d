//! A standard `wasi:http/proxy` component, built against the WASI 0.2
//! bindings alone (`tests/components/std-proxy`), served by Wharf as by
//! `wasmtime serve`: status, headers (repeated ones in order), streamed
//! bodies, and trailers in both directions.
//!
//! Each exchange is checked against the expected answer, which is what
//! `wasmtime serve` 48.0.8 answers; when that `wasmtime` is installed
//! (`WHARF_TEST_WASMTIME`, or on `PATH`), the same exchanges also run
//! against it live and both answers must be equal.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::net::TcpStream;

use crate::support::{Wharf, wasm};

const MANIFEST: &str = r#"
[components.std-proxy]
wasm = "{wasm:std_proxy}"
routes = [{ path = "/std/*" }]
"#;

/// One request: method, path, `x-echo-*` headers, body, request trailers.
struct Exchange {
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
    trailers: &'static [(&'static str, &'static str)],
}

/// What a client sees, minus what each host adds of its own (`date`, and
/// Wharf's `x-request-id` / `x-wharf-component`).
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    /// Lossy UTF-8: every body here is text, and a diff stays readable.
    body: String,
    trailers: Vec<(String, String)>,
}

const EXCHANGES: &[Exchange] = &[
    Exchange {
        method: "GET",
        path: "/std/echo?op=echo&x=1",
        headers: &[("x-echo-one", "1")],
        body: b"",
        trailers: &[],
    },
    Exchange {
        method: "POST",
        path: "/std/echo",
        headers: &[("x-echo-b", "two"), ("x-echo-a", "one")],
        body: b"hello, standard world",
        trailers: &[],
    },
    Exchange {
        method: "PUT",
        path: "/std/echo?op=echo",
        // HTTP/1.1 sends only the trailer fields the head announces.
        headers: &[("trailer", "x-echo-checksum, x-echo-other")],
        body: b"a body and then trailers",
        trailers: &[("x-echo-checksum", "abc123"), ("x-echo-other", "kept")],
    },
    Exchange { method: "GET", path: "/std/t?op=trailers", headers: &[("te", "trailers")], body: b"", trailers: &[] },
    Exchange { method: "GET", path: "/std/s?op=stream&n=64", headers: &[], body: b"", trailers: &[] },
    Exchange { method: "GET", path: "/std/s?op=status&code=418", headers: &[], body: b"", trailers: &[] },
    Exchange { method: "DELETE", path: "/std/s?op=status&code=204", headers: &[], body: b"", trailers: &[] },
    Exchange { method: "GET", path: "/std/h?op=headers", headers: &[], body: b"", trailers: &[] },
    Exchange { method: "PATCH", path: "/std/x?op=nope", headers: &[], body: b"", trailers: &[] },
];

/// Sends `exchange` to `addr` over a fresh HTTP/1.1 connection; the body
/// goes chunked, with its trailers, when it has any.
async fn send(addr: &str, exchange: &Exchange) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = Vec::new();
    if !exchange.body.is_empty() {
        frames.push(Ok(Frame::data(Bytes::from_static(exchange.body))));
    }
    if !exchange.trailers.is_empty() {
        let mut trailers = http::HeaderMap::new();
        for (name, value) in exchange.trailers {
            trailers.append(*name, value.parse().unwrap());
        }
        frames.push(Ok(Frame::trailers(trailers)));
    }
    let mut request = http::Request::builder().method(exchange.method).uri(exchange.path).header("host", addr);
    for (name, value) in exchange.headers {
        request = request.header(*name, *value);
    }
    let request = request.body(StreamBody::new(futures_util::stream::iter(frames))).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request)).await.unwrap().unwrap();
    let status = response.status().as_u16();
    let own = ["date", "x-request-id", "x-wharf-component", "transfer-encoding", "content-length"];
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| !own.contains(&name.as_str()))
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let collected =
        tokio::time::timeout(Duration::from_secs(10), response.into_body().collect()).await.unwrap().unwrap();
    let trailers = collected
        .trailers()
        .map(|t| t.iter().map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect())
        .unwrap_or_default();
    Answer { status, headers, body: String::from_utf8_lossy(&collected.to_bytes()).into_owned(), trailers }
}

fn text(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// What `wasmtime serve` 48.0.8 answered to each of [`EXCHANGES`].
fn expected() -> Vec<Answer> {
    let plain = pairs(&[("content-type", "text/plain")]);
    let stream: String = (0..64u8).flat_map(|i| [char::from(b'a' + i % 26); 1024]).collect();
    vec![
        Answer {
            status: 200,
            headers: plain.clone(),
            body: text(&[
                "method: GET",
                "path: /std/echo?op=echo&x=1",
                "scheme-given: true",
                "x-echo-one: 1",
                "body-bytes: 0",
                "body-checksum: cbf29ce484222325",
                "no trailers",
            ]),
            trailers: vec![],
        },
        Answer {
            status: 200,
            headers: plain.clone(),
            body: text(&[
                "method: POST",
                "path: /std/echo",
                "scheme-given: true",
                "x-echo-a: one",
                "x-echo-b: two",
                "body-bytes: 21",
                "body-checksum: a986f6b0a056f816",
                "no trailers",
            ]),
            trailers: vec![],
        },
        Answer {
            status: 200,
            headers: plain.clone(),
            body: text(&[
                "method: PUT",
                "path: /std/echo?op=echo",
                "scheme-given: true",
                "body-bytes: 24",
                "body-checksum: 7fed5e2f8b8921c8",
                "trailer x-echo-checksum: abc123",
                "trailer x-echo-other: kept",
            ]),
            trailers: vec![],
        },
        Answer {
            status: 200,
            headers: pairs(&[("content-type", "text/plain"), ("trailer", "x-checksum, x-chunks")]),
            body: "body before trailers\n".into(),
            trailers: pairs(&[("x-checksum", "fe572ce92abfb7be"), ("x-chunks", "1")]),
        },
        Answer {
            status: 200,
            headers: pairs(&[("content-type", "application/octet-stream")]),
            body: stream,
            trailers: vec![],
        },
        Answer { status: 418, headers: vec![], body: String::new(), trailers: vec![] },
        Answer { status: 204, headers: vec![], body: String::new(), trailers: vec![] },
        Answer {
            status: 200,
            headers: pairs(&[
                ("x-repeated", "one"),
                ("x-repeated", "two"),
                ("x-mixed-case", "kept"),
                ("content-type", "text/plain"),
            ]),
            body: "headers\n".into(),
            trailers: vec![],
        },
        Answer { status: 400, headers: vec![], body: "unknown op\n".into(), trailers: vec![] },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_wasi_http_component_is_served_as_wasmtime_serve_serves_it() {
    let wharf = Wharf::start(MANIFEST).await;
    let addr = wharf.url("").trim_start_matches("http://").to_owned();
    let mut answers = Vec::new();
    for exchange in EXCHANGES {
        answers.push(send(&addr, exchange).await);
    }
    for (i, (got, want)) in answers.iter().zip(expected()).enumerate() {
        assert_eq!(got, &want, "exchange {i}: {} {}", EXCHANGES[i].method, EXCHANGES[i].path);
    }

    let Some(reference) = WasmtimeServe::start() else {
        eprintln!("!!! wasmtime 48.0.8 is not installed: compared with the recorded answers only");
        return;
    };
    for (i, exchange) in EXCHANGES.iter().enumerate() {
        let theirs = send(&reference.addr, exchange).await;
        assert_eq!(
            answers[i], theirs,
            "exchange {i} differs from wasmtime serve: {} {}",
            exchange.method, exchange.path
        );
    }
    eprintln!("reliability: standard component, {} exchanges equal on Wharf and wasmtime serve", EXCHANGES.len());
}

/// `wasmtime serve` on the same component, killed when dropped.
struct WasmtimeServe {
    child: Child,
    addr: String,
}

impl WasmtimeServe {
    fn start() -> Option<Self> {
        let binary = std::env::var_os("WHARF_TEST_WASMTIME").map(PathBuf::from).unwrap_or_else(|| "wasmtime".into());
        let version = Command::new(&binary).arg("--version").output().ok()?;
        if !String::from_utf8_lossy(&version.stdout).contains("48.0.8") {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args(["serve", "--addr", &addr, "-Scli"])
            .arg(wasm("std_proxy"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "wasmtime serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child, addr })
    }
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
