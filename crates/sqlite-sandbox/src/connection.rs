//! A component's own SQLite connection, opened and owned here (not through
//! sqlx), with the sandbox installed: the host runs every statement a
//! component sends on one of these, on a blocking thread, so a statement
//! that outlives its request still ends at its deadline and then frees the
//! connection — nothing has to be cancelled from outside.

use std::ffi::{CString, c_int};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::time::Instant;

use libsqlite3_sys as ffi;

use crate::run::{Budget, Output, RunError, Value, errmsg};
use crate::{Limits, Refusal};

/// An open, sandboxed connection. Used by one thread at a time (the caller
/// keeps it behind a mutex); closed when dropped.
pub struct Connection {
    db: NonNull<ffi::sqlite3>,
}

// SAFETY: SQLite connections are opened in serialized mode (FULLMUTEX) and
// the owner never shares one between threads without a lock.
unsafe impl Send for Connection {}

impl Connection {
    /// Opens (creating if missing) the database at `path` in WAL mode with
    /// foreign keys on, and installs the sandbox with `limits`.
    pub fn open(path: &Path, limits: &Limits) -> Result<Self, Refusal> {
        let path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| Refusal::Install("the database path contains a NUL".into()))?;
        let mut db = ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_FULLMUTEX;
        // SAFETY: opening a connection we own from here on (closed on drop,
        // also when the open fails).
        let rc = unsafe { ffi::sqlite3_open_v2(path.as_ptr(), &mut db, flags, ptr::null()) };
        let db = NonNull::new(db).ok_or_else(|| Refusal::Install("SQLite could not allocate a connection".into()))?;
        let connection = Self { db };
        if rc != ffi::SQLITE_OK {
            return Err(Refusal::Install(errmsg(db.as_ptr())));
        }
        // Switching to WAL may wait for another connection; `install` then
        // replaces this timeout with the sandbox's deadline-aware busy handler.
        let busy = c_int::try_from(crate::state::BUSY_LIMIT.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: configuring our own connection before anyone else uses it.
        unsafe { ffi::sqlite3_busy_timeout(db.as_ptr(), busy) };
        // Settings, before the authorizer refuses PRAGMAs.
        connection.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON")?;
        crate::install(db, limits)?;
        Ok(connection)
    }

    /// Runs SQL of the host's own (no inspection; the authorizer still applies).
    fn exec(&self, sql: &str) -> Result<(), Refusal> {
        let sql = CString::new(sql).map_err(|_| Refusal::Nul)?;
        // SAFETY: our connection; no callback; the error message is not requested.
        let rc = unsafe { ffi::sqlite3_exec(self.db.as_ptr(), sql.as_ptr(), None, ptr::null_mut(), ptr::null_mut()) };
        match rc {
            ffi::SQLITE_OK => Ok(()),
            _ => Err(Refusal::Invalid(errmsg(self.db.as_ptr()))),
        }
    }

    /// Runs a component's statement: checked (one allowed statement), bound,
    /// stepped until `deadline`, each value charged to `budget` first.
    pub fn run(
        &mut self,
        sql: &str,
        params: &[Value],
        budget: Budget,
        keep_rows: bool,
        deadline: Option<Instant>,
    ) -> Result<Output, RunError> {
        self.until(deadline, |db| crate::run::run(db, sql, params, budget, keep_rows))
    }

    /// Runs the host's own statement (the queue's SQL inside a component's
    /// transaction): not inspected, otherwise like [`Connection::run`].
    pub fn run_trusted(
        &mut self,
        sql: &str,
        params: &[Value],
        budget: Budget,
        keep_rows: bool,
        deadline: Option<Instant>,
    ) -> Result<Output, RunError> {
        self.until(deadline, |db| crate::run::run_trusted(db, sql, params, budget, keep_rows))
    }

    /// Runs `statement` with `deadline` armed, telling a stop at the
    /// deadline apart from other failures.
    fn until(
        &mut self,
        deadline: Option<Instant>,
        statement: impl FnOnce(NonNull<ffi::sqlite3>) -> Result<Output, RunError>,
    ) -> Result<Output, RunError> {
        crate::set_deadline(self.db, deadline)?;
        let result = match statement(self.db) {
            Err(_) if crate::deadline_passed(self.db) => Err(RunError::DeadlinePassed),
            other => other,
        };
        crate::set_deadline(self.db, None)?;
        result
    }

    /// Starts a transaction that takes the write lock now, so a transaction
    /// that writes later cannot fail half-way on another writer. Waiting for
    /// the lock ends at `deadline`.
    pub fn begin(&mut self, deadline: Option<Instant>) -> Result<(), RunError> {
        crate::set_deadline(self.db, deadline)?;
        let result = match self.control("BEGIN IMMEDIATE") {
            Err(_) if crate::deadline_passed(self.db) => Err(RunError::DeadlinePassed),
            other => other,
        };
        crate::set_deadline(self.db, None)?;
        result
    }

    /// Commits the open transaction.
    pub fn commit(&mut self) -> Result<(), RunError> {
        self.control("COMMIT")
    }

    /// Rolls back the open transaction, if any.
    pub fn rollback(&mut self) -> Result<(), RunError> {
        if self.is_autocommit() {
            return Ok(());
        }
        self.control("ROLLBACK")
    }

    fn control(&mut self, sql: &str) -> Result<(), RunError> {
        self.exec(sql).map_err(|e| RunError::Sqlite {
            // SAFETY: reads the connection's last extended code.
            code: unsafe { ffi::sqlite3_extended_errcode(self.db.as_ptr()) },
            message: e.to_string(),
        })
    }

    /// Whether the connection is outside any transaction.
    pub fn is_autocommit(&self) -> bool {
        crate::is_autocommit(self.db)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: every statement was finalized where it was made; this is
        // the last use of the connection.
        unsafe { ffi::sqlite3_close(self.db.as_ptr()) };
    }
}
