//! The HTTP front door: accept TCP connections under the limits of
//! [`front_door`], serve HTTP/1.1 with keep-alive on each, hand every
//! request to [`dispatch::handle`], and on shutdown stop accepting and let
//! in-flight requests finish.

pub mod buffered_body;
pub(crate) mod dispatch;
mod docs_page;
pub mod error;
pub mod front_door;
pub(crate) mod guest;
pub mod in_process;
mod rate_limit;
pub mod request_id;
pub mod websocket;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::App;

/// Serves HTTP on `listener` until `shutdown` resolves, then drains.
pub async fn run(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let tracker = app.connections().clone();
    front_door::serve(listener, tracker, "http", shutdown, move |request| dispatch::handle(app.clone(), request)).await;
}
