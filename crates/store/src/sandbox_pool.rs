//! The connections a component's own SQL runs on (SQLite): sandboxed
//! [`Connection`]s opened by the host, up to `db_connections`, each used on
//! a blocking thread. A request checks one out per statement, or for its
//! whole transaction; a checkout dropped anywhere (the request ended,
//! trapped, timed out) gives its connection back only after the statement
//! still running on it has ended (at its deadline) and any transaction left
//! open is rolled back, so the next user always gets a clean connection.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wharf_sqlite_sandbox::{Budget, Connection, Limits, Output, RunError, Value};

/// How long a statement waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

type Shared = Arc<Mutex<Connection>>;

/// One component's sandboxed connections.
pub(crate) struct SandboxPool {
    path: PathBuf,
    limits: Limits,
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<Shared>>,
}

/// Why a connection could not be had or used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// Every connection stayed busy for the acquire timeout.
    #[error("every database connection of this component is busy")]
    Busy,
    /// Opening a connection failed.
    #[error("cannot open the component's database: {0}")]
    Open(String),
    /// The statement failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// SQLite rolled the open transaction back after an error (out of
    /// memory, interrupted at the deadline, I/O): nothing in it was kept.
    #[error(
        "the database rolled this transaction back after an earlier error; nothing in it was kept: roll back and retry"
    )]
    TransactionLost,
}

impl std::fmt::Debug for SandboxPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxPool").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SandboxPool {
    /// Up to `connections` connections to the database at `path`.
    pub(crate) fn new(path: PathBuf, limits: Limits, connections: u32) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(connections.max(1) as usize));
        Arc::new(Self { path, limits, slots, idle: Mutex::new(Vec::new()) })
    }

    /// A connection for this caller alone until the checkout drops.
    pub(crate) async fn checkout(self: &Arc<Self>) -> Result<Checkout, PoolError> {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| PoolError::Busy)?
            .map_err(|_| PoolError::Busy)?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let (path, limits) = (self.path.clone(), self.limits);
                let opened = tokio::task::spawn_blocking(move || Connection::open(&path, &limits))
                    .await
                    .map_err(|e| PoolError::Open(e.to_string()))?
                    .map_err(|e| PoolError::Open(e.to_string()))?;
                Arc::new(Mutex::new(opened))
            }
        };
        Ok(Checkout { conn: Some((conn, permit)), pool: self.clone(), in_tx: false.into(), lost: false.into() })
    }
}

/// A checked-out connection.
pub(crate) struct Checkout {
    conn: Option<(Shared, OwnedSemaphorePermit)>,
    pool: Arc<SandboxPool>,
    /// A transaction was begun on it.
    in_tx: AtomicBool,
    /// SQLite ended that transaction on its own after an error.
    lost: AtomicBool,
}

/// Who wrote a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Author {
    /// The component: inspected by the sandbox first.
    Component,
    /// The host itself (the queue's SQL).
    Host,
}

impl Checkout {
    fn shared(&self) -> Result<Shared, PoolError> {
        self.conn.as_ref().map(|(c, _)| c.clone()).ok_or(PoolError::Busy)
    }

    /// Runs one statement on a blocking thread.
    pub(crate) async fn run(
        &self,
        author: Author,
        sql: &str,
        params: Vec<Value>,
        budget: Budget,
        keep_rows: bool,
        deadline: Option<Instant>,
    ) -> Result<Output, PoolError> {
        if self.lost.load(Ordering::Acquire) {
            return Err(PoolError::TransactionLost);
        }
        let (conn, sql) = (self.shared()?, sql.to_owned());
        let work = move || {
            let mut conn = conn.lock().map_err(|_| RunError::Refused(wharf_sqlite_sandbox::Refusal::NotInstalled))?;
            let result = match author {
                Author::Component => conn.run(&sql, &params, budget, keep_rows, deadline),
                Author::Host => conn.run_trusted(&sql, &params, budget, keep_rows, deadline),
            };
            Ok::<_, RunError>((result, conn.is_autocommit()))
        };
        let (result, autocommit) =
            tokio::task::spawn_blocking(work).await.map_err(|e| PoolError::Open(e.to_string()))??;
        if autocommit && self.in_tx.load(Ordering::Acquire) {
            // Errors such as NOMEM or INTERRUPT roll the whole transaction back.
            self.lost.store(true, Ordering::Release);
        }
        Ok(result?)
    }

    /// `BEGIN IMMEDIATE` (waiting for the write lock until `deadline`),
    /// `COMMIT` or `ROLLBACK`.
    pub(crate) async fn control(&self, what: Control, deadline: Option<Instant>) -> Result<(), PoolError> {
        match what {
            Control::Begin => self.in_tx.store(true, Ordering::Release),
            Control::Commit if self.lost.load(Ordering::Acquire) => return Err(PoolError::TransactionLost),
            Control::Commit | Control::Rollback => {}
        }
        let conn = self.shared()?;
        let work = move || {
            let mut conn = conn.lock().map_err(|_| RunError::Refused(wharf_sqlite_sandbox::Refusal::NotInstalled))?;
            match what {
                Control::Begin => conn.begin(deadline),
                Control::Commit => conn.commit(),
                Control::Rollback => conn.rollback(),
            }
        };
        Ok(tokio::task::spawn_blocking(work).await.map_err(|e| PoolError::Open(e.to_string()))??)
    }
}

/// Transaction control on a checkout.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    /// `BEGIN IMMEDIATE`.
    Begin,
    /// `COMMIT`.
    Commit,
    /// `ROLLBACK`.
    Rollback,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some((conn, permit)) = self.conn.take() else { return };
        let pool = self.pool.clone();
        // Waits for a statement still running (it ends at its deadline),
        // rolls back what the request left open, then frees the place.
        let give_back = move || {
            let clean = match conn.lock() {
                Ok(mut c) => c.rollback().is_ok() && c.is_autocommit(),
                Err(_) => false,
            };
            if clean && let Ok(mut idle) = pool.idle.lock() {
                idle.push(conn);
            }
            drop(permit);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(give_back)),
            Err(_) => give_back(),
        }
    }
}
