//! SQLite's own enforcement of a component's store sandbox.
//!
//! A component sends SQL text the host never parses. What that text may do is
//! decided inside SQLite, on every connection of the component's pool:
//!
//! - an **authorizer** ([`install`]) that allows the component's own `main`
//!   database and ordinary DDL and DML on it, and an allow-list of functions;
//!   it refuses `ATTACH`/`DETACH` (and so `VACUUM`, which attaches), `PRAGMA`
//!   and the `pragma_*` tables, temporary objects (session state), virtual
//!   tables, and every other database;
//! - **limits** (`sqlite3_limit`) on value size, SQL length, expression depth
//!   and friends, so an oversized value is refused before it is allocated;
//! - a **deadline**, checked by a progress handler while a statement runs, so
//!   a runaway statement ends when its request does;
//! - [`check_statement`]: SQLite's own parser decides that the text is exactly
//!   one statement, and not transaction control.
//!
//! This is the only crate of the workspace with `unsafe` code: the calls into
//! SQLite's C API that sqlx does not wrap.

#![deny(missing_docs)]
// The C API needs raw pointers; every `unsafe` block says why it is sound.
#![allow(unsafe_code)]

mod authorizer;
mod connection;
mod run;
mod state;

use std::ffi::{c_char, c_int};
use std::ptr::{self, NonNull};
use std::time::Instant;

use libsqlite3_sys as ffi;

pub use authorizer::ALLOWED_FUNCTIONS;
pub use connection::Connection;
pub use run::{Budget, Output, RunError, Value, run};
use state::ConnState;

/// Bounds SQLite enforces on one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest string or blob, in bytes (the component's `query_bytes`).
    pub value_bytes: u64,
    /// Longest SQL text, in bytes.
    pub sql_bytes: u32,
}

impl Limits {
    /// The bounds for a component whose results may be `query_bytes` long.
    pub fn for_query_bytes(query_bytes: u64) -> Self {
        Self { value_bytes: query_bytes, sql_bytes: 1 << 20 }
    }
}

/// SQLite's own memory, process-wide: past this, statements fail with
/// `SQLITE_NOMEM` instead of growing the host. Values sqlx copies out of a
/// row are SQLite allocations too, so they count.
pub const HEAP_LIMIT_BYTES: i64 = 512 << 20;

/// Past this, SQLite shrinks its page caches before asking for more.
const SOFT_HEAP_LIMIT_BYTES: i64 = 256 << 20;

/// VM instructions between two deadline checks.
const PROGRESS_INTERVAL: c_int = 1000;

/// Why a connection could not be sandboxed or a statement was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// The connection has no sandbox (a bug in the host, never the guest).
    #[error("the connection has no sandbox installed")]
    NotInstalled,
    /// SQLite reads text only up to a NUL, so the rest would be ignored.
    #[error("the SQL text contains a NUL character")]
    Nul,
    /// Nothing but whitespace and comments.
    #[error("the SQL text is empty")]
    Empty,
    /// More than one statement.
    #[error("one statement per call: the SQL text contains several")]
    Several,
    /// The authorizer refused part of the statement.
    #[error("{0}")]
    Denied(String),
    /// SQLite could not compile it (syntax, unknown table, a limit).
    #[error("{0}")]
    Invalid(String),
    /// Installing the sandbox failed.
    #[error("cannot sandbox the connection: {0}")]
    Install(String),
}

/// Installs the sandbox on a freshly opened connection: limits, the
/// authorizer, the deadline's progress handler and safe engine settings.
pub fn install(db: NonNull<ffi::sqlite3>, limits: &Limits) -> Result<(), Refusal> {
    let db = db.as_ptr();
    static HEAP_LIMIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: process-wide setting, thread-safe by SQLite's contract.
    HEAP_LIMIT.call_once(|| unsafe {
        ffi::sqlite3_hard_heap_limit64(HEAP_LIMIT_BYTES);
        ffi::sqlite3_soft_heap_limit64(SOFT_HEAP_LIMIT_BYTES);
    });
    let clamp = |n: u64| c_int::try_from(n).unwrap_or(c_int::MAX).max(1);
    let bounds = [
        (ffi::SQLITE_LIMIT_LENGTH, clamp(limits.value_bytes)),
        (ffi::SQLITE_LIMIT_SQL_LENGTH, clamp(limits.sql_bytes.into())),
        (ffi::SQLITE_LIMIT_EXPR_DEPTH, 200),
        (ffi::SQLITE_LIMIT_COMPOUND_SELECT, 64),
        (ffi::SQLITE_LIMIT_FUNCTION_ARG, 64),
        (ffi::SQLITE_LIMIT_ATTACHED, 0),
        (ffi::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 64),
        (ffi::SQLITE_LIMIT_VARIABLE_NUMBER, 999),
        (ffi::SQLITE_LIMIT_TRIGGER_DEPTH, 16),
        (ffi::SQLITE_LIMIT_COLUMN, 500),
    ];
    // SAFETY: `db` is an open connection the caller holds exclusively (a
    // locked sqlx handle); every call below only configures that connection.
    unsafe {
        for (limit, value) in bounds {
            ffi::sqlite3_limit(db, limit, value);
        }
        for (option, on) in [
            (ffi::SQLITE_DBCONFIG_DEFENSIVE, 1),
            (ffi::SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0),
            (ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0),
            (ffi::SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0),
            (ffi::SQLITE_DBCONFIG_WRITABLE_SCHEMA, 0),
        ] {
            let rc = ffi::sqlite3_db_config(db, option, on, ptr::null_mut::<c_int>());
            if rc != ffi::SQLITE_OK {
                return Err(Refusal::Install(format!("sqlite3_db_config({option}) failed: {rc}")));
            }
        }
        // Virtual table modules (dbstat, fts, rtree, ...) read pages and
        // shadow tables; only JSON's table functions stay.
        let keep: [*const c_char; 3] = [c"json_each".as_ptr(), c"json_tree".as_ptr(), ptr::null()];
        ffi::sqlite3_drop_modules(db, keep.as_ptr().cast_mut());

        // Shadow dangerous built-ins with a function that fails: DEFAULT
        // expressions reach functions without the authorizer.
        for name in authorizer::SHADOWED_FUNCTIONS {
            let Ok(name) = std::ffi::CString::new(*name) else { continue };
            let flags = ffi::SQLITE_UTF8 | ffi::SQLITE_DIRECTONLY;
            ffi::sqlite3_create_function_v2(
                db,
                name.as_ptr(),
                -1,
                flags,
                ptr::null_mut(),
                Some(refuse_function),
                None,
                None,
                None,
            );
        }
        let state = Box::into_raw(Box::new(ConnState::default()));
        let rc = ffi::sqlite3_set_clientdata(db, state::KEY.as_ptr(), state.cast(), Some(state::destroy));
        if rc != ffi::SQLITE_OK {
            // SQLite calls the destructor itself when it fails.
            return Err(Refusal::Install(format!("sqlite3_set_clientdata failed: {rc}")));
        }
        let rc = ffi::sqlite3_set_authorizer(db, Some(authorizer::callback), state.cast());
        if rc != ffi::SQLITE_OK {
            return Err(Refusal::Install(format!("sqlite3_set_authorizer failed: {rc}")));
        }
        ffi::sqlite3_progress_handler(db, PROGRESS_INTERVAL, Some(state::progress), state.cast());
        // Replaces any busy timeout: waiting for a lock also ends at the deadline.
        ffi::sqlite3_busy_handler(db, Some(state::busy), state.cast());
    }
    Ok(())
}

/// The body of a shadowed built-in: always an error.
unsafe extern "C" fn refuse_function(
    context: *mut ffi::sqlite3_context,
    _argc: c_int,
    _argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: SQLite's own context for this call; the message is static.
    unsafe {
        ffi::sqlite3_result_error(context, c"this SQL function is not allowed in a component's store".as_ptr(), -1)
    };
}

pub(crate) fn conn_state<'a>(db: *mut ffi::sqlite3) -> Result<&'a ConnState, Refusal> {
    // SAFETY: the pointer was stored by `install` and lives until the
    // connection closes, which cannot happen while the caller holds it.
    unsafe { ffi::sqlite3_get_clientdata(db, state::KEY.as_ptr()).cast::<ConnState>().as_ref() }
        .ok_or(Refusal::NotInstalled)
}

/// Sets when statements on this connection must stop (`None`: never).
/// A statement still running at `deadline` fails with `SQLITE_INTERRUPT`.
pub fn set_deadline(db: NonNull<ffi::sqlite3>, deadline: Option<Instant>) -> Result<(), Refusal> {
    conn_state(db.as_ptr())?.set_deadline(deadline);
    Ok(())
}

/// Whether the last statement on this connection stopped at its deadline.
pub fn deadline_passed(db: NonNull<ffi::sqlite3>) -> bool {
    conn_state(db.as_ptr()).is_ok_and(ConnState::deadline_passed)
}

/// Whether the connection is outside any transaction (SQLite's own view).
pub fn is_autocommit(db: NonNull<ffi::sqlite3>) -> bool {
    // SAFETY: reads a flag of an open connection.
    unsafe { ffi::sqlite3_get_autocommit(db.as_ptr()) != 0 }
}

/// Checks that `sql` is exactly one statement the component may run, by
/// compiling it with SQLite's own parser under the authorizer: anything but
/// whitespace and comments after the first statement refuses it, and so does
/// transaction control (components use `store.begin`/`commit`).
pub fn check_statement(db: NonNull<ffi::sqlite3>, sql: &str) -> Result<(), Refusal> {
    prepare_checked(db.as_ptr(), sql).map(drop)
}

/// [`check_statement`], keeping the compiled statement.
fn prepare_checked(db: *mut ffi::sqlite3, sql: &str) -> Result<run::Statement, Refusal> {
    if sql.contains('\0') {
        return Err(Refusal::Nul);
    }
    let state = conn_state(db)?;
    let _inspecting = state.inspect();
    let (first, mut rest) = compile(db, state, sql.as_bytes())?;
    let first = first.ok_or(Refusal::Empty)?;
    while !rest.is_empty() {
        let (found, tail) = compile(db, state, rest).map_err(|_| Refusal::Several)?;
        if found.is_some() || tail.len() == rest.len() {
            return Err(Refusal::Several);
        }
        rest = tail;
    }
    Ok(first)
}

/// Compiles the first statement of `sql`: it (if there was one), and the
/// text after it.
pub(crate) fn compile<'s>(
    db: *mut ffi::sqlite3,
    state: &ConnState,
    sql: &'s [u8],
) -> Result<(Option<run::Statement>, &'s [u8]), Refusal> {
    let len = c_int::try_from(sql.len()).map_err(|_| Refusal::Invalid("the SQL text is too long".into()))?;
    let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
    let mut tail: *const c_char = ptr::null();
    // SAFETY: `sql` is valid for `len` bytes; SQLite writes a statement
    // handle (owned by the returned `Statement`) and a tail pointer inside `sql`.
    let rc = unsafe { ffi::sqlite3_prepare_v3(db, sql.as_ptr().cast(), len, 0, &mut stmt, &mut tail) };
    if rc != ffi::SQLITE_OK {
        if let Some(reason) = state.take_denial() {
            return Err(Refusal::Denied(reason));
        }
        return Err(Refusal::Invalid(run::errmsg(db)));
    }
    let statement = NonNull::new(stmt).map(run::Statement);
    let consumed = if tail.is_null() { sql.len() } else { (tail as usize).saturating_sub(sql.as_ptr() as usize) };
    Ok((statement, &sql[consumed.min(sql.len())..]))
}

#[cfg(test)]
mod tests;
