//! A component that misbehaves on purpose, for the host's containment tests.
//! It imports `wharf:host/log`, so loading it without that grant tests the
//! least-privilege check too.
//!
//! - `/misbehave/trap`: panics (a wasm trap).
//! - `/misbehave/loop`: spins forever without yielding.
//! - `/misbehave/alloc`: allocates until memory runs out.
//! - `/misbehave/sleep`: waits in a host call far past any deadline.
//! - `/misbehave/slow?ms=N`: answers after N ms (holds an instance slot).
//! - `/misbehave/ok`: answers 200.
//!
//! For instance reuse, on any prefix (the same component is routed twice):
//! - `…/count`: how many `count` requests this instance has served, this one
//!   included (1 in a fresh instance).
//! - `…/leak?mb=N`: keeps N more MiB for good; answers the total kept.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Lives as long as the instance: what reuse carries over.
static COUNT: AtomicU64 = AtomicU64::new(0);
static LEAKED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_owned();
    wharf_guest::warn!("misbehaving: {path}");
    match path.as_str() {
        "/misbehave/trap" => panic!("asked to trap"),
        "/misbehave/loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "/misbehave/alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "/misbehave/sleep" => {
            wstd::task::sleep(wstd::time::Duration::from_secs(3600)).await;
            Ok(Response::new("woke up".into()))
        }
        "/misbehave/slow" => {
            let ms = request
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("ms="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(100);
            wstd::task::sleep(Duration::from_millis(ms).into()).await;
            Ok(Response::new("slow".into()))
        }
        p if p.ends_with("/count") => {
            let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
            Ok(Response::new(n.to_string().into()))
        }
        p if p.ends_with("/leak") => {
            let mb = request
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("mb="))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(1);
            let mut leaked = LEAKED.lock().unwrap_or_else(|e| e.into_inner());
            leaked.push(vec![1u8; mb << 20]);
            Ok(Response::new(leaked.len().to_string().into()))
        }
        _ => Ok(Response::new("ok".into())),
    }
}
