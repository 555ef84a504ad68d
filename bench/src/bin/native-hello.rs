//! The native baseline: a hyper HTTP/1.1 server answering every request with
//! the same bytes as the `hello` component, configured like Wharf's front
//! door (keep-alive, nodelay). `native-hello ADDR [BODY_FILE]` prints the
//! bound address; with `BODY_FILE` it answers that file's bytes instead
//! (the Acme bench serves the same answer as the component).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

const BODY: &str = r#"{"message":"Hello, world!","component":"hello"}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let body = match std::env::args().nth(2) {
        Some(file) => Bytes::from(std::fs::read(file)?),
        None => Bytes::from_static(BODY.as_bytes()),
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request| {
                let body = body.clone();
                async move {
                    let response =
                        hyper::Response::builder().header("content-type", "application/json").body(Full::new(body));
                    Ok::<_, Infallible>(response.unwrap_or_default())
                }
            });
            let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
