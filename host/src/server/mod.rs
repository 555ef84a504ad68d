//! The HTTP front door: accept TCP connections, serve HTTP/1.1 with
//! keep-alive on each, hand every request to [`dispatch::handle`], and on
//! shutdown stop accepting and let in-flight requests finish.

pub(crate) mod dispatch;
mod docs_page;
pub mod error;
pub(crate) mod guest;
pub mod request_id;
mod websocket;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::Host;

/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves HTTP on `listener` until `shutdown` resolves, then drains.
pub async fn run(host: Arc<Host>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    // Every connection task holds a receiver; shutdown is signalled through
    // it, and draining is done when all receivers are gone.
    let (drain_signal, drain_watch) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let host = host.clone();
        let service = service_fn(move |request| {
            let host = host.clone();
            async move { Ok::<_, std::convert::Infallible>(dispatch::handle(host, request).await) }
        });
        let connection =
            http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).with_upgrades();
        let mut drain = drain_watch.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = drain.changed() => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    // Stop accepting: new connections are refused while the rest drains.
    drop(listener);
    drop(drain_watch);
    tracing::info!("shutting down: draining in-flight requests");
    let _ = drain_signal.send(());
    if tokio::time::timeout(DRAIN_TIMEOUT, drain_signal.closed()).await.is_err() {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}
