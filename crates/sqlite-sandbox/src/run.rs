//! Running a component's statement on the raw connection: bind, step, and
//! copy each value out only after it is charged to the result's budget. The
//! budget is checked against SQLite's own size of a value before the host
//! allocates anything for it, and a value SQLite cannot allocate fails the
//! step with `SQLITE_NOMEM` instead of handing back a null.

use std::ffi::{CStr, c_int};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;

use crate::Refusal;

/// A SQL value, as the component sends and receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// The most a result may hold.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Rows.
    pub rows: usize,
    /// Bytes: text and blob lengths, 8 per number or null.
    pub bytes: usize,
}

/// What running a statement gave.
#[derive(Debug, Default)]
pub struct Output {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows (kept only when asked for).
    pub rows: Vec<Vec<Value>>,
    /// Rows the statement inserted, updated or deleted.
    pub changes: u64,
    /// The rowid of the last insert on this connection.
    pub last_insert_rowid: i64,
}

/// Why running failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RunError {
    /// The sandbox refused the text (see [`crate::check_statement`]).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The result is over its budget; nothing past it was copied.
    #[error("{0}")]
    TooLarge(String),
    /// A parameter could not be bound.
    #[error("cannot bind parameter {index}: {message}")]
    Bind {
        /// 1-based.
        index: usize,
        /// SQLite's reason.
        message: String,
    },
    /// The statement ran past its deadline and was stopped.
    #[error("the statement ran past the deadline and was stopped")]
    DeadlinePassed,
    /// SQLite failed the statement: its primary and extended result codes, and message.
    #[error("{message}")]
    Sqlite {
        /// The extended result code.
        code: c_int,
        /// SQLite's message.
        message: String,
    },
}

impl RunError {
    /// SQLite's primary result code, if SQLite failed the statement.
    pub fn primary_code(&self) -> Option<c_int> {
        match self {
            Self::Sqlite { code, .. } => Some(code & 0xff),
            _ => None,
        }
    }
}

/// A prepared statement, finalized when dropped.
pub(crate) struct Statement(pub(crate) NonNull<ffi::sqlite3_stmt>);

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: a statement we prepared and own.
        unsafe { ffi::sqlite3_finalize(self.0.as_ptr()) };
    }
}

/// The connection's last error message.
pub(crate) fn errmsg(db: *mut ffi::sqlite3) -> String {
    // SAFETY: the message belongs to the connection and is copied at once.
    unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) }.to_string_lossy().into_owned()
}

fn sqlite_error(db: *mut ffi::sqlite3, code: c_int) -> RunError {
    let message = errmsg(db);
    // SAFETY: reads the connection's last extended code.
    let extended = unsafe { ffi::sqlite3_extended_errcode(db) };
    RunError::Sqlite { code: if extended & 0xff == code & 0xff { extended } else { code }, message }
}

/// Checks `sql` (one allowed statement), then runs it with `params` bound
/// by number (`$1`, `?1`) or position, under `budget`; keeps rows only if
/// `keep_rows`. The caller holds the connection exclusively (a locked sqlx
/// handle) for the whole call, which blocks until the statement ends (at
/// the latest at the connection's deadline).
pub fn run(
    db: NonNull<ffi::sqlite3>,
    sql: &str,
    params: &[Value],
    budget: Budget,
    keep_rows: bool,
) -> Result<Output, RunError> {
    let db = db.as_ptr();
    let stmt = crate::prepare_checked(db, sql)?;
    all_or_nothing(db, stmt, params, budget, keep_rows)
}

/// Runs the host's own single statement: compiled without inspection (the
/// authorizer still applies), then like [`run`].
pub(crate) fn run_trusted(
    db: NonNull<ffi::sqlite3>,
    sql: &str,
    params: &[Value],
    budget: Budget,
    keep_rows: bool,
) -> Result<Output, RunError> {
    let db = db.as_ptr();
    let state = crate::conn_state(db)?;
    let (stmt, _) = crate::compile(db, state, sql.as_bytes())?;
    all_or_nothing(db, stmt.ok_or(Refusal::Empty)?, params, budget, keep_rows)
}

/// Steps a statement that writes inside a savepoint, undone if the
/// statement fails for any reason, its result going over `budget` included:
/// SQLite makes every change of an `… RETURNING` on its first step, before
/// the host has seen the rows it would refuse.
fn all_or_nothing(
    db: *mut ffi::sqlite3,
    stmt: Statement,
    params: &[Value],
    budget: Budget,
    keep_rows: bool,
) -> Result<Output, RunError> {
    // SAFETY: asks about our own prepared statement.
    if unsafe { ffi::sqlite3_stmt_readonly(stmt.0.as_ptr()) } != 0 {
        return step(db, stmt, params, budget, keep_rows);
    }
    exec(db, c"SAVEPOINT wharf_statement")?;
    // `step` finalizes the statement, so the savepoint can be released.
    let result = step(db, stmt, params, budget, keep_rows)
        .and_then(|output| exec(db, c"RELEASE wharf_statement").map(|()| output));
    if result.is_err() {
        // An interrupt may already have rolled the whole transaction back,
        // and the savepoint with it: then there is nothing left to undo. If
        // the savepoint is there but cannot be rolled back to (out of
        // memory), the whole transaction goes, rather than keep the
        // statement's changes; the host then sees the transaction lost.
        if exec(db, c"ROLLBACK TO wharf_statement").is_ok() {
            let _ = exec(db, c"RELEASE wharf_statement");
        // SAFETY: reads our connection's transaction state.
        } else if unsafe { ffi::sqlite3_get_autocommit(db) } == 0 {
            let _ = exec(db, c"ROLLBACK");
        }
    }
    result
}

/// Runs the host's own fixed SQL.
fn exec(db: *mut ffi::sqlite3, sql: &CStr) -> Result<(), RunError> {
    // SAFETY: our connection; no callback; the error message is not requested.
    let rc = unsafe { ffi::sqlite3_exec(db, sql.as_ptr(), None, std::ptr::null_mut(), std::ptr::null_mut()) };
    if rc == ffi::SQLITE_OK { Ok(()) } else { Err(sqlite_error(db, rc)) }
}

/// Binds and steps `stmt` to the end under `budget`.
fn step(
    db: *mut ffi::sqlite3,
    stmt: Statement,
    params: &[Value],
    budget: Budget,
    keep_rows: bool,
) -> Result<Output, RunError> {
    bind(db, &stmt, params)?;
    let s = stmt.0.as_ptr();
    // SAFETY: a counter of the connection; the difference afterwards is
    // what this statement changed (sqlite3_changes keeps an older statement's).
    let changes_before = unsafe { ffi::sqlite3_total_changes64(db) };
    // SAFETY: column metadata of our own statement.
    let columns: Vec<String> = (0..unsafe { ffi::sqlite3_column_count(s) })
        .map(|i| {
            let name = unsafe { ffi::sqlite3_column_name(s, i) };
            if name.is_null() { String::new() } else { unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned() }
        })
        .collect();
    let mut out = Output { columns, ..Output::default() };
    let (mut rows, mut bytes) = (0usize, 0usize);
    loop {
        // SAFETY: stepping our own statement on the locked connection.
        match unsafe { ffi::sqlite3_step(s) } {
            ffi::SQLITE_ROW => {
                rows += 1;
                if rows > budget.rows {
                    return Err(RunError::TooLarge(format!(
                        "the result has more than {} rows; add a LIMIT or filter",
                        budget.rows
                    )));
                }
                let mut row = Vec::with_capacity(out.columns.len());
                for i in 0..out.columns.len() as c_int {
                    // SAFETY: reading column `i` of the current row; sizes
                    // come before any copy.
                    let kind = unsafe { ffi::sqlite3_column_type(s, i) };
                    let size = match kind {
                        ffi::SQLITE_TEXT | ffi::SQLITE_BLOB => {
                            usize::try_from(unsafe { ffi::sqlite3_column_bytes(s, i) }).unwrap_or(0)
                        }
                        _ => 8,
                    };
                    bytes = bytes.saturating_add(size);
                    if bytes > budget.bytes {
                        return Err(RunError::TooLarge(format!(
                            "the result is larger than {} bytes; select fewer columns or rows",
                            budget.bytes
                        )));
                    }
                    if keep_rows {
                        row.push(column(db, s, i, kind, size)?);
                    }
                }
                if keep_rows {
                    out.rows.push(row);
                }
            }
            ffi::SQLITE_DONE => break,
            rc => return Err(sqlite_error(db, rc)),
        }
    }
    // SAFETY: counters of the connection.
    unsafe {
        out.changes = u64::try_from(ffi::sqlite3_total_changes64(db) - changes_before).unwrap_or(0);
        out.last_insert_rowid = ffi::sqlite3_last_insert_rowid(db);
    }
    Ok(out)
}

/// Copies column `i` of the current row.
fn column(
    db: *mut ffi::sqlite3,
    s: *mut ffi::sqlite3_stmt,
    i: c_int,
    kind: c_int,
    size: usize,
) -> Result<Value, RunError> {
    // SAFETY: the pointers SQLite returns stay valid until the next step or
    // a type conversion of this column; each is copied at once, and a null
    // pointer for a non-empty value means SQLite ran out of memory.
    unsafe {
        Ok(match kind {
            ffi::SQLITE_INTEGER => Value::Integer(ffi::sqlite3_column_int64(s, i)),
            ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_column_double(s, i)),
            ffi::SQLITE_TEXT => {
                let p = ffi::sqlite3_column_text(s, i);
                if p.is_null() && size > 0 {
                    return Err(sqlite_error(db, ffi::SQLITE_NOMEM));
                }
                let bytes = if size == 0 { &[][..] } else { std::slice::from_raw_parts(p, size) };
                Value::Text(String::from_utf8_lossy(bytes).into_owned())
            }
            ffi::SQLITE_BLOB => {
                let p = ffi::sqlite3_column_blob(s, i).cast::<u8>();
                if p.is_null() && size > 0 {
                    return Err(sqlite_error(db, ffi::SQLITE_NOMEM));
                }
                Value::Blob(if size == 0 { Vec::new() } else { std::slice::from_raw_parts(p, size).to_vec() })
            }
            _ => Value::Null,
        })
    }
}

/// Binds `params`: `$N`/`?N`/`:N` by number, anything else by position.
fn bind(db: *mut ffi::sqlite3, stmt: &Statement, params: &[Value]) -> Result<(), RunError> {
    let s = stmt.0.as_ptr();
    // SAFETY: parameter metadata of our own statement.
    let count = unsafe { ffi::sqlite3_bind_parameter_count(s) };
    for index in 1..=count {
        let name = unsafe { ffi::sqlite3_bind_parameter_name(s, index) };
        let number = (!name.is_null())
            .then(|| unsafe { CStr::from_ptr(name) }.to_str().ok())
            .flatten()
            .and_then(|n| n.get(1..))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(index as usize);
        let Some(value) = number.checked_sub(1).and_then(|n| params.get(n)) else {
            return Err(RunError::Bind {
                index: number,
                message: format!("only {} parameters were given", params.len()),
            });
        };
        // SAFETY: SQLITE_TRANSIENT makes SQLite copy text and blobs now.
        let rc = unsafe {
            match value {
                Value::Null => ffi::sqlite3_bind_null(s, index),
                Value::Integer(n) => ffi::sqlite3_bind_int64(s, index, *n),
                Value::Real(f) => ffi::sqlite3_bind_double(s, index, *f),
                Value::Text(t) => ffi::sqlite3_bind_text64(
                    s,
                    index,
                    t.as_ptr().cast(),
                    t.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                Value::Blob(b) => {
                    ffi::sqlite3_bind_blob64(s, index, b.as_ptr().cast(), b.len() as u64, ffi::SQLITE_TRANSIENT())
                }
            }
        };
        if rc != ffi::SQLITE_OK {
            return Err(RunError::Bind { index: number, message: errmsg(db) });
        }
    }
    Ok(())
}
