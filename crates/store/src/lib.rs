//! `wharf:host/store`: parameterised SQL on the component's own database,
//! with an optional transaction scoped to the request. The per-request
//! [`StoreCtx`] holds the component's database handle and the open
//! transaction; dropping it (the request ended, trapped or timed out) rolls
//! an uncommitted transaction back.
//!
//! Also the host's side of databases: [`Database`] opens one per component
//! (SQLite file or PostgreSQL role), [`migrate`] applies migrations and
//! [`guard`] refuses statements no component may run.

#![deny(missing_docs)]

mod backend;
pub mod guard;
pub mod migrate;
mod pg_relay;
mod sandbox_pool;
pub mod sql;

use std::sync::Arc;
use std::time::Instant;

use sandbox_pool::{Author, Checkout, Control, PoolError};
use sqlx::postgres::PgConnection;
use wharf_sqlite_sandbox::{self as sandbox, Refusal};

use tokio::sync::Notify;
use wasmtime::component::{HasData, Linker};

pub use backend::{ComponentDb, Database, DbLimits, SqliteDb};
pub use sql::ResultCaps;

use wharf_bindings::store::{self, Error, ExecResult, Host, Rows, Value};

/// An open transaction on either backend.
pub(crate) enum OpenTx {
    Sqlite(Checkout),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Per-request state of the store capability.
#[derive(Default)]
pub struct StoreCtx {
    db: Option<ComponentDb>,
    tx: Option<OpenTx>,
    caps: ResultCaps,
    /// When the request or job ends: no statement runs past it.
    deadline: Option<Instant>,
    /// Woken after a commit that enqueued jobs, so workers start at once.
    notify_on_commit: Option<Arc<Notify>>,
    /// Run, in order, after the open transaction commits (hub publishes).
    after_commit: Vec<AfterCommit>,
}

/// Work that waits for the open transaction to commit.
pub type AfterCommit = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl StoreCtx {
    /// A context on `db` (none when the component has no database) whose
    /// statements stop at `deadline`.
    pub fn new(db: Option<ComponentDb>, caps: ResultCaps, deadline: Option<Instant>) -> Self {
        Self { db, tx: None, caps, deadline, notify_on_commit: None, after_commit: Vec::new() }
    }

    fn db(&self) -> Result<&ComponentDb, Error> {
        self.db.as_ref().ok_or_else(|| Error::Unavailable("this component has no database".into()))
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// Runs `work` after the open transaction commits (never if it rolls back).
    pub fn after_commit(&mut self, work: AfterCommit) {
        self.after_commit.push(work);
    }

    /// Asks for `notify` to be woken when the open transaction commits.
    pub fn notify_after_commit(&mut self, notify: Arc<Notify>) {
        self.notify_on_commit = Some(notify);
    }

    /// Runs the host's own statement returning rows, in the open transaction if any.
    pub async fn run_query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, Error> {
        self.query_as(Author::Host, sql, params).await
    }

    async fn query_as(&mut self, author: Author, sql: &str, params: &[Value]) -> Result<Rows, Error> {
        refuse_nul(sql)?;
        let (caps, deadline) = (self.caps, self.deadline);
        match (&mut self.tx, self.db.as_ref()) {
            (Some(OpenTx::Sqlite(tx)), _) => query_sqlite(tx, author, sql, params, caps, deadline).await,
            (Some(OpenTx::Postgres(tx)), _) => {
                let conn = &mut **tx;
                prepare_postgres(conn, deadline).await?;
                sql::pg_query(conn, sql, params, caps).await
            }
            (None, Some(ComponentDb::Sqlite(db))) => {
                let checkout = db.sandbox.checkout().await.map_err(pool_error)?;
                query_sqlite(&checkout, author, sql, params, caps, deadline).await
            }
            (None, Some(ComponentDb::Postgres(pool))) => {
                let mut conn = pool.acquire().await.map_err(sql::map_error)?;
                prepare_postgres(&mut conn, deadline).await?;
                sql::pg_query(&mut *conn, sql, params, caps).await
            }
            (None, None) => Err(Error::Unavailable("this component has no database".into())),
        }
    }

    async fn execute_as(&mut self, author: Author, sql: &str, params: &[Value]) -> Result<ExecResult, Error> {
        refuse_nul(sql)?;
        let (caps, deadline) = (self.caps, self.deadline);
        match (&mut self.tx, self.db.as_ref()) {
            (Some(OpenTx::Sqlite(tx)), _) => execute_sqlite(tx, author, sql, params, caps, deadline).await,
            (Some(OpenTx::Postgres(tx)), _) => {
                let conn = &mut **tx;
                prepare_postgres(conn, deadline).await?;
                sql::pg_execute(conn, sql, params).await
            }
            (None, Some(ComponentDb::Sqlite(db))) => {
                let checkout = db.sandbox.checkout().await.map_err(pool_error)?;
                execute_sqlite(&checkout, author, sql, params, caps, deadline).await
            }
            (None, Some(ComponentDb::Postgres(pool))) => {
                let mut conn = pool.acquire().await.map_err(sql::map_error)?;
                prepare_postgres(&mut conn, deadline).await?;
                sql::pg_execute(&mut *conn, sql, params).await
            }
            (None, None) => Err(Error::Unavailable("this component has no database".into())),
        }
    }
}

/// Both engines read SQL text only up to a NUL (PostgreSQL's protocol
/// cannot even carry one), so text holding one would not be what runs.
fn refuse_nul(sql: &str) -> Result<(), Error> {
    match sql.contains('\0') {
        true => Err(Error::AccessDenied("the SQL text contains a NUL character".into())),
        false => Ok(()),
    }
}

/// A statement returning rows on SQLite, on a sandboxed connection.
async fn query_sqlite(
    checkout: &Checkout,
    author: Author,
    sql: &str,
    params: &[Value],
    caps: ResultCaps,
    deadline: Option<Instant>,
) -> Result<Rows, Error> {
    let output = run_sandboxed(checkout, author, sql, params, caps, deadline, true).await?;
    Ok(Rows { columns: output.columns, rows: output.rows.into_iter().map(from_sandbox_row).collect() })
}

/// A statement changing rows on SQLite, on a sandboxed connection.
async fn execute_sqlite(
    checkout: &Checkout,
    author: Author,
    sql: &str,
    params: &[Value],
    caps: ResultCaps,
    deadline: Option<Instant>,
) -> Result<ExecResult, Error> {
    let output = run_sandboxed(checkout, author, sql, params, caps, deadline, false).await?;
    Ok(ExecResult { rows_affected: output.changes, last_insert_id: Some(output.last_insert_rowid) })
}

/// Runs a statement through the sandbox: a component's is checked by
/// SQLite's parser and authorizer first; every one stops at the deadline
/// and has each value charged to the result caps before it is copied.
async fn run_sandboxed(
    checkout: &Checkout,
    author: Author,
    sql: &str,
    params: &[Value],
    caps: ResultCaps,
    deadline: Option<Instant>,
    keep_rows: bool,
) -> Result<wharf_sqlite_sandbox::Output, Error> {
    let params: Vec<sandbox::Value> = params.iter().map(to_sandbox).collect();
    let budget = sandbox::Budget { rows: caps.rows, bytes: caps.bytes };
    checkout.run(author, sql, params, budget, keep_rows, deadline).await.map_err(pool_error)
}

/// The WIT error for a sandboxed connection's failure.
fn pool_error(error: PoolError) -> Error {
    let error = match error {
        PoolError::Run(error) => error,
        PoolError::TransactionLost => return Error::TransactionState(error.to_string()),
        other => return Error::Unavailable(other.to_string()),
    };
    match error {
        sandbox::RunError::DeadlinePassed => {
            Error::Unavailable("the statement ran past the request's deadline and was stopped".into())
        }
        sandbox::RunError::Refused(Refusal::Invalid(message)) => Error::QueryFailed(message),
        sandbox::RunError::Refused(refusal @ (Refusal::NotInstalled | Refusal::Install(_))) => {
            Error::Unavailable(refusal.to_string())
        }
        sandbox::RunError::Refused(refusal) => Error::AccessDenied(refusal.to_string()),
        sandbox::RunError::TooLarge(message) => Error::TooLarge(message),
        sandbox::RunError::Bind { .. } => Error::QueryFailed(error.to_string()),
        sandbox::RunError::Sqlite { code, message } => match code & 0xff {
            // CONSTRAINT
            19 => Error::ConstraintViolation(message),
            // BUSY, LOCKED, INTERRUPT
            5 | 6 | 9 => Error::Unavailable(message),
            // NOMEM (SQLite's heap limit), TOOBIG (the value limit)
            7 | 18 => Error::TooLarge(message),
            // AUTH: the authorizer
            23 => Error::AccessDenied(message),
            _ => Error::QueryFailed(message),
        },
    }
}

fn to_sandbox(value: &Value) -> sandbox::Value {
    match value {
        Value::Null => sandbox::Value::Null,
        Value::Integer(n) => sandbox::Value::Integer(*n),
        Value::Real(f) => sandbox::Value::Real(*f),
        Value::Text(t) => sandbox::Value::Text(t.clone()),
        Value::Blob(b) => sandbox::Value::Blob(b.clone()),
    }
}

fn from_sandbox_row(row: Vec<sandbox::Value>) -> Vec<Value> {
    row.into_iter()
        .map(|value| match value {
            sandbox::Value::Null => Value::Null,
            sandbox::Value::Integer(n) => Value::Integer(n),
            sandbox::Value::Real(f) => Value::Real(f),
            sandbox::Value::Text(t) => Value::Text(t),
            sandbox::Value::Blob(b) => Value::Blob(b),
        })
        .collect()
}

/// Before a statement on PostgreSQL: its `statement_timeout` is what is left
/// of the request's deadline (the server cancels it then). The setting is
/// session state, cleared by `DISCARD ALL` when the connection is released.
async fn prepare_postgres(conn: &mut PgConnection, deadline: Option<Instant>) -> Result<(), Error> {
    let Some(deadline) = deadline else { return Ok(()) };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Error::Unavailable("the request's deadline has passed".into()));
    }
    let millis = left.as_millis().clamp(1, i32::MAX as u128).to_string();
    // The lock and idle timeouts too: the component could have changed them.
    let lock = left.min(std::time::Duration::from_secs(5)).as_millis().max(1).to_string();
    sqlx::query(
        "SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false),
                set_config('idle_in_transaction_session_timeout', $1, false)",
    )
    .bind(millis)
    .bind(lock)
    .execute(conn)
    .await
    .map_err(sql::map_error)?;
    Ok(())
}

impl Host for StoreCtx {
    #[tracing::instrument(skip_all, name = "store.query")]
    async fn query(&mut self, sql: String, params: Vec<Value>) -> Result<Rows, Error> {
        guard::check_statement(&sql).map_err(Error::AccessDenied)?;
        self.query_as(Author::Component, &sql, &params).await
    }

    #[tracing::instrument(skip_all, name = "store.execute")]
    async fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<ExecResult, Error> {
        guard::check_statement(&sql).map_err(Error::AccessDenied)?;
        self.execute_as(Author::Component, &sql, &params).await
    }

    async fn begin(&mut self) -> Result<(), Error> {
        if self.tx.is_some() {
            return Err(Error::TransactionState("a transaction is already open".into()));
        }
        let tx = match self.db()? {
            // IMMEDIATE takes the write lock now, so a transaction that
            // writes later cannot fail half-way with SQLITE_BUSY.
            ComponentDb::Sqlite(db) => {
                let checkout = db.sandbox.checkout().await.map_err(pool_error)?;
                checkout.control(Control::Begin, self.deadline).await.map_err(pool_error)?;
                OpenTx::Sqlite(checkout)
            }
            ComponentDb::Postgres(pool) => OpenTx::Postgres(pool.begin().await.map_err(sql::map_error)?),
        };
        self.tx = Some(tx);
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), Error> {
        let committed = match self.tx.take() {
            None => return Err(Error::TransactionState("no transaction is open".into())),
            Some(OpenTx::Sqlite(tx)) => tx.control(Control::Commit, self.deadline).await.map_err(pool_error),
            Some(OpenTx::Postgres(tx)) => tx.commit().await.map_err(sql::map_error),
        };
        let after = std::mem::take(&mut self.after_commit);
        committed?;
        if let Some(notify) = self.notify_on_commit.take() {
            notify.notify_waiters();
        }
        for work in after {
            work.await;
        }
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), Error> {
        self.notify_on_commit = None;
        self.after_commit.clear();
        match self.tx.take() {
            None => Err(Error::TransactionState("no transaction is open".into())),
            Some(OpenTx::Sqlite(tx)) => tx.control(Control::Rollback, self.deadline).await.map_err(pool_error),
            Some(OpenTx::Postgres(tx)) => tx.rollback().await.map_err(sql::map_error),
        }
    }
}

/// What a host call borrows: the request's context.
pub type StoreView<'a> = &'a mut StoreCtx;

struct HasStore;

impl HasData for HasStore {
    type Data<'a> = StoreView<'a>;
}

/// Adds `wharf:host/store` to `linker`, reaching each store's context
/// through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> StoreView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasStore>(linker, get)
}
