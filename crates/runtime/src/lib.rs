//! The part of Wharf that runs components, below any server: the engine
//! and its compile cache, grants and limits, the per-request state (the
//! only type that names every capability), the linker, one way to run a
//! guest ([`run::run_http`], [`run::run_job`]), opt-in instance reuse, the registry of
//! loaded components, hot reload and the job workers.
//!
//! [`Runtime`] ties them together for an embedder: it holds what is loaded
//! and answers for it (snapshot, reload, workers, database).

#![deny(missing_docs)]

pub mod compile_cache;
pub mod engine;
pub mod grants;
pub mod guest_output;
pub mod limits;
pub mod linker;
pub mod registry;
pub mod reload;
pub mod reuse;
pub mod run;
pub mod state;
pub mod workers;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use wharf_store::Database;

pub use registry::{LoadedComponent, Loader, Registry, Snapshot};
pub use reload::{ReloadError, Reloaded};

/// The components a host runs, and what keeps them running: the registry
/// requests read, the loader reloads go through, and the job workers.
pub struct Runtime {
    registry: Arc<Registry>,
    loader: Loader,
    workers: workers::WorkerPool,
    manifest_path: PathBuf,
    /// Reloads run one at a time: each builds on the snapshot the last left.
    reload_lock: Mutex<()>,
}

impl Runtime {
    /// Runs what `registry` holds (loaded by `loader` from `manifest_path`)
    /// and starts its job workers, which stop when `stop_workers` turns `true`.
    pub fn start(
        registry: Arc<Registry>,
        loader: Loader,
        manifest_path: PathBuf,
        stop_workers: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let workers = workers::WorkerPool::new(registry.clone(), stop_workers);
        workers.top_up();
        Arc::new(Self { registry, loader, workers, manifest_path, reload_lock: Mutex::new(()) })
    }

    /// The components to serve one request from.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.registry.snapshot()
    }

    /// The host's database.
    pub fn database(&self) -> &Database {
        self.loader.database()
    }

    /// The manifest reloads read.
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    /// Waits up to `timeout` for the job workers to stop (after
    /// `stop_workers` turned `true`); `false` if some did not.
    pub async fn join_workers(&self, timeout: Duration) -> bool {
        self.workers.join(timeout).await
    }
}
