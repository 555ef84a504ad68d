//! The WASIp3 counterpart of `misbehave`: a `wasi:http/handler@0.3.0`
//! component that misbehaves on purpose, so the host's limits can be shown
//! to hold for p3 components as for p2 ones. It also calls `wharf:host`
//! (synchronous WIT imports) from its async handler. On any prefix, by the
//! path's last segment:
//!
//! - `trap`: panics (a wasm trap).
//! - `loop`: spins forever without yielding.
//! - `alloc`: allocates until memory runs out.
//! - `sleep`: waits an hour in `wasi:clocks` (an async host call).
//! - `count`: how many `count` requests this instance has served (1 when fresh).
//! - `config`: the `greeting` entry of its `wharf:host/config`, logged
//!   through `wharf:host/log` too.
//! - anything else: 200 `ok`.

use std::sync::atomic::{AtomicU64, Ordering};

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(P3Misbehave);

/// Lives as long as the instance: what reuse carries over.
static COUNT: AtomicU64 = AtomicU64::new(0);

struct P3Misbehave;

impl wasip3::exports::http::handler::Guest for P3Misbehave {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_default();
        let path = path.split_once('?').map_or(path.as_str(), |(path, _)| path).to_owned();
        match path.rsplit('/').next().unwrap_or_default() {
            "trap" => panic!("asked to trap"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "sleep" => {
                wasip3::clocks::monotonic_clock::wait_for(3_600_000_000_000).await;
                text("woke up".to_owned())
            }
            "count" => text((COUNT.fetch_add(1, Ordering::Relaxed) + 1).to_string()),
            "config" => {
                let greeting = wharf_guest::config::get("greeting").unwrap_or_default();
                wharf_guest::log::write(wharf_guest::log::Level::Info, &format!("p3 greeting: {greeting}"));
                text(greeting)
            }
            _ => text("ok".to_owned()),
        }
    }
}

/// A 200 response with the text `body`, written by a spawned task once the
/// host reads it.
fn text(body: String) -> Result<Response, ErrorCode> {
    let internal = |what: &str| ErrorCode::InternalError(Some(what.to_owned()));
    let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
        .map_err(|_| internal("invalid response headers"))?;
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers_tx);
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    wasip3::spawn_local(async move {
        let _unwritten = body_tx.write_all(body.into_bytes()).await;
    });
    Ok(response)
}
