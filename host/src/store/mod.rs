//! `wharf:host/store`: parameterised SQL on the component's own database,
//! with an optional transaction scoped to the request. The per-request
//! [`StoreCtx`] holds the component's database handle and the open
//! transaction; dropping it (the request ended, trapped or timed out) rolls
//! an uncommitted transaction back.

mod backend;
pub mod guard;
pub mod migrate;
pub mod sql;

use std::sync::Arc;

use tokio::sync::Notify;
use wasmtime::component::{HasData, Linker};

pub use backend::{ComponentDb, Database};
pub use sql::ResultCaps;

use crate::capability::store::{self, Error, ExecResult, Host, Rows, Value};
use crate::state::RequestState;

/// An open transaction on either backend.
pub(crate) enum OpenTx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Per-request state of the store capability.
#[derive(Default)]
pub struct StoreCtx {
    db: Option<ComponentDb>,
    tx: Option<OpenTx>,
    caps: ResultCaps,
    /// Woken after a commit that enqueued jobs, so workers start at once.
    notify_on_commit: Option<Arc<Notify>>,
}

impl StoreCtx {
    /// A context on `db` (none when the component has no database).
    pub fn new(db: Option<ComponentDb>, caps: ResultCaps) -> Self {
        Self { db, tx: None, caps, notify_on_commit: None }
    }

    fn db(&self) -> Result<&ComponentDb, Error> {
        self.db.as_ref().ok_or_else(|| Error::Unavailable("this component has no database".into()))
    }

    /// Whether a transaction is open.
    pub(crate) fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// Asks for `notify` to be woken when the open transaction commits.
    pub(crate) fn notify_after_commit(&mut self, notify: Arc<Notify>) {
        self.notify_on_commit = Some(notify);
    }

    /// Runs a statement returning rows, in the open transaction if any.
    pub(crate) async fn run_query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, Error> {
        let caps = self.caps;
        match (&mut self.tx, self.db.as_ref()) {
            (Some(OpenTx::Sqlite(tx)), _) => sql::sqlite_query(&mut **tx, sql, params, caps).await,
            (Some(OpenTx::Postgres(tx)), _) => sql::pg_query(&mut **tx, sql, params, caps).await,
            (None, Some(ComponentDb::Sqlite(pool))) => sql::sqlite_query(pool, sql, params, caps).await,
            (None, Some(ComponentDb::Postgres(pool))) => sql::pg_query(pool, sql, params, caps).await,
            (None, None) => Err(Error::Unavailable("this component has no database".into())),
        }
    }

    /// Runs a statement changing rows, in the open transaction if any.
    pub(crate) async fn run_execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecResult, Error> {
        match (&mut self.tx, self.db.as_ref()) {
            (Some(OpenTx::Sqlite(tx)), _) => sql::sqlite_execute(&mut **tx, sql, params).await,
            (Some(OpenTx::Postgres(tx)), _) => sql::pg_execute(&mut **tx, sql, params).await,
            (None, Some(ComponentDb::Sqlite(pool))) => sql::sqlite_execute(pool, sql, params).await,
            (None, Some(ComponentDb::Postgres(pool))) => sql::pg_execute(pool, sql, params).await,
            (None, None) => Err(Error::Unavailable("this component has no database".into())),
        }
    }
}

impl Host for StoreCtx {
    #[tracing::instrument(skip_all, name = "store.query")]
    async fn query(&mut self, sql: String, params: Vec<Value>) -> Result<Rows, Error> {
        guard::check_statement(&sql).map_err(Error::AccessDenied)?;
        self.run_query(&sql, &params).await
    }

    #[tracing::instrument(skip_all, name = "store.execute")]
    async fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<ExecResult, Error> {
        guard::check_statement(&sql).map_err(Error::AccessDenied)?;
        self.run_execute(&sql, &params).await
    }

    async fn begin(&mut self) -> Result<(), Error> {
        if self.tx.is_some() {
            return Err(Error::TransactionState("a transaction is already open".into()));
        }
        let tx = match self.db()? {
            // IMMEDIATE takes the write lock now, so a transaction that
            // writes later cannot fail half-way with SQLITE_BUSY.
            ComponentDb::Sqlite(pool) => {
                OpenTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await.map_err(sql::map_error)?)
            }
            ComponentDb::Postgres(pool) => OpenTx::Postgres(pool.begin().await.map_err(sql::map_error)?),
        };
        self.tx = Some(tx);
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), Error> {
        let committed = match self.tx.take() {
            None => return Err(Error::TransactionState("no transaction is open".into())),
            Some(OpenTx::Sqlite(tx)) => tx.commit().await,
            Some(OpenTx::Postgres(tx)) => tx.commit().await,
        };
        committed.map_err(sql::map_error)?;
        if let Some(notify) = self.notify_on_commit.take() {
            notify.notify_waiters();
        }
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), Error> {
        self.notify_on_commit = None;
        let rolled_back = match self.tx.take() {
            None => return Err(Error::TransactionState("no transaction is open".into())),
            Some(OpenTx::Sqlite(tx)) => tx.rollback().await,
            Some(OpenTx::Postgres(tx)) => tx.rollback().await,
        };
        rolled_back.map_err(sql::map_error)
    }
}

struct Store;

impl HasData for Store {
    type Data<'a> = &'a mut StoreCtx;
}

/// Adds `wharf:host/store` to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    store::add_to_linker::<RequestState, Store>(linker, |state| &mut state.store)?;
    Ok(())
}
