//! Wharf: a host runtime that serves sandboxed WebAssembly components over
//! HTTP. See `docs/architecture.md` for the request path.

#![deny(missing_docs)]

pub mod admin;
pub mod openapi;
pub mod scaffold;
pub mod server;
pub mod watch;

pub use wharf_hub as hub;
pub use wharf_metrics as metrics;
pub use wharf_runtime as runtime;
pub use wharf_spec::{manifest, router};
pub use wharf_store as store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use wharf_hub::Hub;
use wharf_runtime::compile_cache::CompileCache;
use wharf_runtime::{Loader, Registry, Runtime, Snapshot, engine};
use wharf_spec::Manifest;
use wharf_store::Database;

use crate::server::front_door::{ConnectionLimits, ConnectionTracker};

/// A serving host, as its front doors see it: the runtime with the
/// components, the WebSocket hub, the open connections, and whether it is
/// shutting down.
pub struct App {
    runtime: Arc<Runtime>,
    hub: Arc<Hub>,
    connections: Arc<ConnectionTracker>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl App {
    /// The components and what keeps them running.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The WebSocket hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Open client connections (HTTP and WebSocket), against their caps.
    pub fn connections(&self) -> &Arc<ConnectionTracker> {
        &self.connections
    }

    /// Turns `true` when the host shuts down (WebSocket clients close).
    pub fn shutdown(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.clone()
    }
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
    /// `postgres://…` for PostgreSQL; SQLite under the data dir when `None`.
    pub database_url: Option<String>,
    /// Where the operator API listens (`None`: 127.0.0.1:9090, or a free
    /// port when that is taken).
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token the operator API requires (mandatory beyond loopback).
    pub admin_token: Option<String>,
    /// Reload components when the manifest or their `.wasm` files change.
    pub watch: bool,
    /// Timeouts and connection caps of both listeners.
    pub limits: ConnectionLimits,
}

/// Loads every component and serves until SIGINT or SIGTERM.
pub async fn serve(mut options: ServeOptions) -> anyhow::Result<()> {
    let manifest = Manifest::load(&options.manifest)?;
    if let Some(files) = server::front_door::raise_open_file_limit() {
        // Leave room for databases, compiled modules, outbound calls and logs.
        let room = usize::try_from(files.saturating_sub(256)).unwrap_or(usize::MAX).max(16);
        if options.limits.max_connections > room {
            tracing::warn!(
                open_files = files,
                max_connections = room,
                "the open-file limit is low: capping connections below it"
            );
            options.limits.max_connections = room;
        }
    }
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("failed to create data dir `{}`", options.data_dir.display()))?;

    let instances: u32 = manifest.components.values().map(|c| c.limits.max_instances).sum();
    let engine = engine::build(instances)?;
    let _ticker = engine::EpochTicker::start(&engine);
    let cache = CompileCache::new(&engine, options.data_dir.join("cache").join("components"));
    let database = Database::open(options.database_url.as_deref(), &options.data_dir).await?;
    tracing::info!(backend = database.kind(), "database ready");
    let relay = match database.admin_pool() {
        Some(pool) => Some(hub::relay::Relay::new(pool.clone()).await?),
        None => None,
    };
    let hub = Hub::new(relay).context("starting the hub's delivery thread")?;
    hub::relay::Relay::listen(&hub).await?;
    // Components reach each other through the registry, so it exists (empty)
    // before they load.
    let registry = Arc::new(Registry::new(Snapshot::empty()));
    let outbound = wharf_outbound::Outbound::new(Arc::new(server::in_process::InProcessCalls::new(&registry)));
    let auth = wharf_auth::AuthKey::load(&options.data_dir)?;
    let loader = Loader::new(engine, cache, database, hub.clone(), outbound, instances, auth)?;
    registry.swap(loader.load_all(&manifest).await?);
    let (closing, shutdown) = tokio::sync::watch::channel(false);
    let (stop_workers, workers_stopped) = tokio::sync::watch::channel(false);
    // Scheduled ticks go to the same queues, so they start and stop with the workers.
    let ticker = wharf_schedule::Ticker::start(registry.clone(), workers_stopped.clone());
    let runtime = Runtime::start(registry, loader, options.manifest.clone(), workers_stopped);
    let app = Arc::new(App { runtime, hub, shutdown, connections: ConnectionTracker::new(options.limits.clone()) });

    let _watching = match options.watch {
        true => Some(watch::start(app.runtime().clone())?),
        false => None,
    };
    start_operator_api(&app, &options).await?;
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

    let closing = Arc::new(closing);
    let signal = closing.clone();
    let runtime = app.runtime().clone();
    server::run(app, listener, async move {
        shutdown_signal().await;
        // WebSocket connections are detached from hyper: tell them directly.
        let _ = signal.send(true);
    })
    .await;
    // Each WebSocket task holds a receiver until its close frame is sent
    // (the host keeps one); give them a moment to say goodbye.
    let goodbye = async {
        while closing.receiver_count() > 1 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), goodbye).await;
    let _ = stop_workers.send(true);
    if !ticker.join(std::time::Duration::from_secs(5)).await {
        tracing::warn!("the schedule ticker did not stop in time; a tick it was taking is taken at the next start");
    }
    if !runtime.join_workers(std::time::Duration::from_secs(30)).await {
        tracing::warn!("job workers did not finish in time; their jobs run again after their leases expire");
    }
    // So no tool finds this stopped host's addresses (and reaches whatever
    // listens there next).
    for file in ["http.addr", admin::ADDR_FILE] {
        let _ = std::fs::remove_file(options.data_dir.join(file));
    }
    Ok(())
}

/// Binds the operator API, writes its address to `DATA_DIR/admin.addr`
/// (before `http.addr`, so whoever waits for the latter finds both) and
/// serves it until shutdown.
async fn start_operator_api(app: &Arc<App>, options: &ServeOptions) -> anyhow::Result<()> {
    let listener = admin::bind(options.admin_listen, options.admin_token.as_deref()).await?;
    let bound = listener.local_addr()?;
    let file = options.data_dir.join(admin::ADDR_FILE);
    std::fs::write(&file, bound.to_string()).with_context(|| format!("failed to write `{}`", file.display()))?;
    tracing::info!(admin = %bound, "operator API on http://{bound}");
    let mut stop = app.shutdown();
    let (token, limits) = (options.admin_token.clone(), options.limits.clone());
    tokio::spawn(admin::run(app.clone(), listener, token, limits, async move {
        let _ = stop.wait_for(|closing| *closing).await;
    }));
    Ok(())
}

/// Applies every component's migrations without serving (`wharf migrate`).
pub async fn migrate(
    manifest: &std::path::Path,
    data_dir: &std::path::Path,
    database_url: Option<&str>,
) -> anyhow::Result<()> {
    let manifest = Manifest::load(manifest)?;
    std::fs::create_dir_all(data_dir).with_context(|| format!("failed to create data dir `{}`", data_dir.display()))?;
    let database = Database::open(database_url, data_dir).await?;
    for spec in manifest.components.values().filter(|s| s.needs_database()) {
        wharf_runtime::registry::prepare_database(&database, spec).await?;
        println!("{}: up to date", spec.name);
    }
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
