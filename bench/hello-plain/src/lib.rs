//! The `hello` answer without any `wharf:host` import: it only needs
//! `wasi:http`, so it runs unchanged on Wharf and on `wasmtime serve`, which
//! lets the benchmark compare the two hosts on identical guest code.

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>, Error> {
    let response = Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(r#"{"message":"Hello, world!","component":"hello"}"#))?;
    Ok(response)
}
