//! The authorizer: SQLite asks it about every table, column, function and
//! statement kind while it compiles a statement, and compiling fails on a
//! refusal. A component may use its own `main` database with ordinary DDL
//! and DML, and the functions in [`ALLOWED_FUNCTIONS`].

use std::ffi::{CStr, c_char, c_int, c_void};

use libsqlite3_sys as ffi;

use crate::state::ConnState;

/// Functions a component may call: deterministic or harmless, and linear in
/// their input, since SQLite cannot interrupt a function call. Left out:
/// `load_extension`, introspection (`sqlite_*`), and functions quadratic in
/// their arguments' lengths (`instr`, `replace`, the two-argument trims,
/// `json_patch`).
pub const ALLOWED_FUNCTIONS: &[&str] = &[
    // Core scalars.
    "abs",
    "changes",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "ifnull",
    "iif",
    "last_insert_rowid",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "round",
    "sign",
    "substr",
    "substring",
    "total_changes",
    "typeof",
    "unhex",
    "unicode",
    "unlikely",
    "upper",
    "zeroblob",
    // Aggregates and windows.
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // Dates.
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    "current_date",
    "current_time",
    "current_timestamp",
    // JSON.
    "json",
    "jsonb",
    "json_array",
    "jsonb_array",
    "json_array_length",
    "json_error_position",
    "json_extract",
    "jsonb_extract",
    "json_insert",
    "jsonb_insert",
    "json_object",
    "jsonb_object",
    "json_patch",
    "jsonb_patch",
    "json_quote",
    "json_remove",
    "jsonb_remove",
    "json_replace",
    "jsonb_replace",
    "json_set",
    "jsonb_set",
    "json_type",
    "json_valid",
    "json_group_array",
    "jsonb_group_array",
    "json_group_object",
    "jsonb_group_object",
    "->",
    "->>",
    // Math.
    "ceil",
    "ceiling",
    "floor",
    "trunc",
    "exp",
    "ln",
    "log",
    "log2",
    "log10",
    "mod",
    "pi",
    "pow",
    "power",
    "sqrt",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "degrees",
    "radians",
    // SQLite's internal functions for ALTER TABLE; SQL text cannot call them
    // (they exist only inside SQLite's own nested statements).
    "sqlite_rename_column",
    "sqlite_rename_table",
    "sqlite_rename_test",
    "sqlite_drop_column",
    "sqlite_rename_quotefix",
];

/// Built-ins that are also shadowed on every connection by a function that
/// fails, because a column's DEFAULT expression is compiled without asking
/// the authorizer: quadratic or dangerous, whatever the parse path.
pub(crate) const SHADOWED_FUNCTIONS: &[&str] = &[
    "instr",
    "replace",
    "trim",
    "ltrim",
    "rtrim",
    "json_patch",
    "jsonb_patch",
    "load_extension",
    "fts3_tokenizer",
    "sqlite_compileoption_get",
    "sqlite_compileoption_used",
    "sqlite_offset",
];

/// Tables the host itself reads and writes in a component's database (the
/// queue's jobs, the migrations' record): no component statement may attach
/// a trigger to them, replace or alter them, because the host's own
/// statements on them run without the component's deadline.
fn host_owned(name: Option<&str>) -> bool {
    name.is_some_and(|n| {
        let n = n.to_ascii_lowercase();
        n.starts_with("_wharf_") || n.starts_with("_sqlx_")
    })
}

/// The names of SQLite's schema table.
const SCHEMA_TABLES: &[&str] = &["sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"];

/// `sqlite3_set_authorizer`'s callback; `state` is the connection's state.
pub(crate) unsafe extern "C" fn callback(
    state: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    database: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    // SAFETY: registered with the connection's own `ConnState`; the strings
    // are SQLite's, valid for this call, or null.
    let (state, arg1, arg2, database) =
        unsafe { (state.cast::<ConnState>().as_ref(), text(arg1), text(arg2), text(database)) };
    let inspecting = state.is_some_and(ConnState::inspecting);
    match decide(action, arg1, arg2, database, inspecting) {
        Ok(()) => ffi::SQLITE_OK,
        Err(reason) => {
            if let Some(state) = state {
                state.record_denial(reason);
            }
            ffi::SQLITE_DENY
        }
    }
}

unsafe fn text<'a>(s: *const c_char) -> Option<&'a str> {
    // SAFETY: the caller passes SQLite's NUL-terminated strings or null.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_str().unwrap_or("\u{fffd}"))
}

/// The decision for one authorizer question. `inspecting` is set while the
/// host checks a component's statement (transaction control is refused
/// then, and allowed to the host's own `BEGIN`/`COMMIT`).
pub(crate) fn decide(
    action: c_int,
    arg1: Option<&str>,
    arg2: Option<&str>,
    database: Option<&str>,
    inspecting: bool,
) -> Result<(), String> {
    let main_only = |db: Option<&str>| match db {
        None | Some("main") => Ok(()),
        Some(other) => Err(format!("only the component's own database is reachable, not `{other}`")),
    };
    // ALTER TABLE also rewrites `temp`'s schema table (for temporary
    // triggers); no temporary object can exist, so it is always empty.
    let main_or_temp_schema = |table: Option<&str>, db: Option<&str>| match (table, db) {
        (Some(t), Some("temp")) if SCHEMA_TABLES.iter().any(|s| s.eq_ignore_ascii_case(t)) => Ok(()),
        _ => main_only(db),
    };
    match action {
        ffi::SQLITE_SELECT | ffi::SQLITE_RECURSIVE => Ok(()),
        ffi::SQLITE_READ => {
            let table = arg1.unwrap_or_default();
            if table.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("pragma_")) {
                return Err(format!("`{table}` is a PRAGMA, and PRAGMAs are not allowed"));
            }
            main_or_temp_schema(arg1, database)
        }
        ffi::SQLITE_INSERT | ffi::SQLITE_UPDATE | ffi::SQLITE_DELETE => main_or_temp_schema(arg1, database),
        // Triggers on the host's tables (second argument: the table).
        ffi::SQLITE_CREATE_TRIGGER | ffi::SQLITE_CREATE_TEMP_TRIGGER if host_owned(arg2) => {
            Err(format!("`{}` belongs to the host; no trigger may be attached to it", arg2.unwrap_or_default()))
        }
        // The host creates its tables (and indexes) before a component's
        // migrations run; a name taken cannot be replaced without a DROP.
        ffi::SQLITE_CREATE_TABLE | ffi::SQLITE_CREATE_INDEX if !inspecting => main_only(database),
        ffi::SQLITE_CREATE_TABLE
        | ffi::SQLITE_CREATE_VIEW
        | ffi::SQLITE_CREATE_INDEX
        | ffi::SQLITE_DROP_TABLE
        | ffi::SQLITE_DROP_VIEW
        | ffi::SQLITE_DROP_INDEX
            if host_owned(arg1)
                || (action == ffi::SQLITE_CREATE_INDEX || action == ffi::SQLITE_DROP_INDEX) && host_owned(arg2) =>
        {
            Err(format!("`{}` belongs to the host", arg1.unwrap_or_default()))
        }
        ffi::SQLITE_ALTER_TABLE if host_owned(arg2) => {
            Err(format!("`{}` belongs to the host", arg2.unwrap_or_default()))
        }
        ffi::SQLITE_CREATE_TABLE
        | ffi::SQLITE_CREATE_INDEX
        | ffi::SQLITE_CREATE_TRIGGER
        | ffi::SQLITE_CREATE_VIEW
        | ffi::SQLITE_DROP_TABLE
        | ffi::SQLITE_DROP_INDEX
        | ffi::SQLITE_DROP_TRIGGER
        | ffi::SQLITE_DROP_VIEW
        | ffi::SQLITE_REINDEX
        | ffi::SQLITE_ANALYZE => main_only(database),
        // Its first argument is the database.
        ffi::SQLITE_ALTER_TABLE => main_only(arg1),
        ffi::SQLITE_FUNCTION => {
            let name = arg2.unwrap_or_default();
            if ALLOWED_FUNCTIONS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
                Ok(())
            } else {
                Err(format!("the SQL function `{name}` is not allowed in a component's store"))
            }
        }
        ffi::SQLITE_TRANSACTION | ffi::SQLITE_SAVEPOINT if inspecting => {
            Err("transaction control in SQL is not allowed: use store.begin/commit/rollback".into())
        }
        ffi::SQLITE_TRANSACTION | ffi::SQLITE_SAVEPOINT => Ok(()),
        ffi::SQLITE_PRAGMA => Err("PRAGMA statements are not allowed".into()),
        ffi::SQLITE_ATTACH | ffi::SQLITE_DETACH => {
            Err("ATTACH and DETACH (and VACUUM, which attaches) are not allowed".into())
        }
        ffi::SQLITE_CREATE_TEMP_TABLE
        | ffi::SQLITE_CREATE_TEMP_INDEX
        | ffi::SQLITE_CREATE_TEMP_TRIGGER
        | ffi::SQLITE_CREATE_TEMP_VIEW
        | ffi::SQLITE_DROP_TEMP_TABLE
        | ffi::SQLITE_DROP_TEMP_INDEX
        | ffi::SQLITE_DROP_TEMP_TRIGGER
        | ffi::SQLITE_DROP_TEMP_VIEW => Err("temporary tables, views and triggers are not allowed".into()),
        ffi::SQLITE_CREATE_VTABLE | ffi::SQLITE_DROP_VTABLE => Err("virtual tables are not allowed".into()),
        other => Err(format!("this kind of statement ({other}) is not allowed")),
    }
}
