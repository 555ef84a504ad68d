//! Wharf: a host runtime that serves sandboxed WebAssembly components over
//! HTTP. See `docs/architecture.md` for the request path.

#![deny(missing_docs)]

pub mod capability;
pub mod compile_cache;
pub mod engine;
pub mod grants;
pub mod guest_output;
pub mod limits;
pub mod manifest;
pub mod outbound;
pub mod registry;
pub mod router;
pub mod server;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::compile_cache::CompileCache;
use crate::manifest::Manifest;
use crate::registry::{Loader, Registry};

/// A running host's shared state.
pub struct Host {
    /// The components being served.
    pub registry: Registry,
    /// Loads (and later reloads) components.
    pub loader: Loader,
}

/// What `wharf serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The manifest to load.
    pub manifest: PathBuf,
    /// Where to listen for HTTP.
    pub listen: SocketAddr,
    /// Where state lives (compile cache, databases, `http.addr`).
    pub data_dir: PathBuf,
}

/// Loads every component and serves until SIGINT or SIGTERM.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let manifest = Manifest::load(&options.manifest)?;
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("failed to create data dir `{}`", options.data_dir.display()))?;

    let instances = manifest.components.values().map(|c| c.limits.max_instances).sum();
    let engine = engine::build(instances)?;
    let _ticker = engine::EpochTicker::start(&engine);
    let cache = CompileCache::new(&engine, options.data_dir.join("cache").join("components"));
    let loader = Loader::new(engine, cache)?;
    let snapshot = {
        let (loader_ref, manifest_ref) = (&loader, &manifest);
        tokio::task::block_in_place(|| loader_ref.load_all(manifest_ref))?
    };
    let host = Arc::new(Host {
        registry: Registry::new(snapshot),
        loader,
    });

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("failed to listen on {}", options.listen))?;
    let bound = listener.local_addr()?;
    // Tests and tools started with port 0 read the real address from here.
    let addr_file = options.data_dir.join("http.addr");
    std::fs::write(&addr_file, bound.to_string())
        .with_context(|| format!("failed to write `{}`", addr_file.display()))?;
    tracing::info!(
        listen = %bound,
        components = manifest.components.len(),
        "wharf listening on http://{bound}"
    );

    server::run(host, listener, shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
