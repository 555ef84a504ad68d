//! The hub's own threads. Fan-out tasks and WebSocket clients run there, at a
//! lower CPU priority than the request workers: delivering a batch to
//! thousands of clients then cannot starve the requests that publish it.
//! Under contention the clients fall behind first, and a client that falls
//! too far behind is dropped, as everywhere in the hub.

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How much nicer than the request workers the hub's threads run (Linux
/// `nice`: weight 1024 against 335, about a quarter of a contended core).
pub const NICENESS: i32 = 5;

/// The hub's runtime and its threads; dropping it stops them.
pub struct Delivery {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl Delivery {
    /// Starts the threads, one per core.
    pub fn start() -> std::io::Result<Self> {
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let runtime = Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("wharf-hub")
            // On Linux a nice value belongs to the calling thread only.
            .on_thread_start(|| {
                if let Err(e) = rustix::process::setpriority_process(None, NICENESS) {
                    tracing::debug!(error = %e, "the hub's threads keep the default priority");
                }
            })
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("wharf-hub-main".into()).spawn(move || {
            runtime.block_on(async move {
                let _ = stopped.await;
            });
        })?;
        Ok(Self { handle, stop: Some(stop) })
    }

    /// Runs `task` on the hub's threads.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
