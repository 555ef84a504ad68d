//! A minimal WASIp3 HTTP component: it exports `wasi:http/handler@0.3.0`
//! (the `wasi:http/service@0.3.0` world) with an async `handle`, built with
//! stock tooling only (the `wasip3` crate's bindings, `wasm32-wasip2`
//! target). It is the p3 counterpart of `std-proxy`, for checking that a
//! host serves WASIp3 components as `wasmtime serve` does:
//!
//! - `GET /` or any path ending in `/` (any query): 200, `text/plain`, a
//!   one-line greeting (so it can be routed under a prefix);
//! - another path: 404; another method: 405 (each with a one-line body).
//!
//! The body is a `stream<u8>` the guest writes from a task spawned beside
//! the handler: the host reads it only once `handle` has returned the
//! response, so the handler cannot write it itself. No trailers.

use wasip3::http::types::{ErrorCode, Fields, Method, Request, Response};
use wasip3::{wit_future, wit_stream};

wasip3::http::service::export!(P3Hello);

/// What `GET /` answers.
const GREETING: &str = "Hello from a WASIp3 component!\n";

struct P3Hello;

impl wasip3::exports::http::handler::Guest for P3Hello {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query();
        let path = path.as_deref().map(|p| p.split_once('?').map_or(p, |(path, _)| path));
        let (status, body) = match (request.get_method(), path) {
            (Method::Get, None | Some("")) => (200, GREETING),
            (Method::Get, Some(p)) if p.ends_with('/') => (200, GREETING),
            (Method::Get, Some(_)) => (404, "not found\n"),
            _ => (405, "method not allowed\n"),
        };
        respond(status, body)
    }
}

/// A response with `status` and the text `body`, which a spawned task
/// writes once the host reads it.
fn respond(status: u16, body: &'static str) -> Result<Response, ErrorCode> {
    let internal = |what: &str| ErrorCode::InternalError(Some(what.to_owned()));
    let headers = Fields::from_list(&[
        ("content-type".to_owned(), b"text/plain; charset=utf-8".to_vec()),
        ("content-length".to_owned(), body.len().to_string().into_bytes()),
    ])
    .map_err(|_| internal("invalid response headers"))?;

    let (mut body_tx, body_rx) = wit_stream::new();
    // Dropping the writer unwritten resolves the trailers future with its
    // default: the body ends without trailers.
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers_tx);
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    response.set_status_code(status).map_err(|()| internal("invalid status code"))?;

    wasip3::spawn_local(async move {
        // What is left unwritten (the host stopped reading) is dropped.
        let _unwritten = body_tx.write_all(body.as_bytes().to_vec()).await;
    });
    Ok(response)
}
