//! The operator API: a second HTTP listener, on loopback by default, for
//! what operators do to a running host (list and reload components, handle
//! dead jobs, scrape `/metrics`). Bound beyond loopback it requires a bearer
//! token. `wharf components` and `wharf reload` are its clients ([`client`]).

pub mod client;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::App;
use crate::server::front_door::{self, ConnectionLimits, ConnectionTracker};

/// Where the operator API listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9090";

/// The file in the data dir holding the operator API's bound address.
pub const ADDR_FILE: &str = "admin.addr";

/// Binds the operator API. `requested` is `None` for the default address,
/// which falls back to a free port when taken (another host on this machine);
/// an address asked for explicitly must be available.
pub async fn bind(requested: Option<SocketAddr>, token: Option<&str>) -> anyhow::Result<TcpListener> {
    let addr = match requested {
        Some(addr) => addr,
        None => DEFAULT_ADDR.parse().context("default admin address")?,
    };
    if !addr.ip().is_loopback() && token.is_none_or(str::is_empty) {
        anyhow::bail!(
            "refusing to serve the operator API on {addr} without a token: set --admin-token (or WHARF_ADMIN_TOKEN), or bind it to loopback"
        );
    }
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e) if requested.is_none() => {
            tracing::warn!(error = %e, "operator API: {addr} unavailable, using a free loopback port (see DATA_DIR/{ADDR_FILE})");
            TcpListener::bind("127.0.0.1:0").await.context("failed to bind the operator API")
        }
        Err(e) => Err(e).with_context(|| format!("failed to listen on {addr} for the operator API")),
    }
}

/// Serves the operator API on `listener` until `shutdown` resolves, under
/// the same connection limits as the public listener (its own counts).
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    token: Option<String>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let token: Option<Arc<str>> = token.filter(|t| !t.is_empty()).map(Into::into);
    let tracker = ConnectionTracker::new(limits);
    front_door::serve(listener, tracker, "operator API", shutdown, move |request| {
        let (app, token) = (app.clone(), token.clone());
        async move { routes::handle(&app, token.as_deref(), request).await }
    })
    .await;
}
