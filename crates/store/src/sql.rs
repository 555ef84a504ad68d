//! Running one statement on PostgreSQL: binding `value`s, decoding rows
//! into `value`s under the result caps, and sorting database errors into the
//! WIT `error` cases. (On SQLite, statements run on the sandbox's own
//! connections: `sandbox_pool`.)

use futures_util::TryStreamExt;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgRow, PgTypeInfo, Postgres};
use sqlx::{Arguments, Column, Row, TypeInfo, ValueRef};

use wharf_bindings::store::{Error, ExecResult, Rows, Value};

/// Caps on one query's result.
#[derive(Debug, Clone, Copy)]
pub struct ResultCaps {
    /// Most rows.
    pub rows: usize,
    /// Most bytes (text and blob lengths, 8 per number).
    pub bytes: usize,
}

impl Default for ResultCaps {
    fn default() -> Self {
        Self { rows: 10_000, bytes: 16 << 20 }
    }
}

/// Counts a result against the caps as rows arrive.
struct Budget {
    caps: ResultCaps,
    rows: usize,
    bytes: usize,
}

impl Budget {
    fn new(caps: ResultCaps) -> Self {
        Self { caps, rows: 0, bytes: 0 }
    }

    fn charge(&mut self, row: &[Value]) -> Result<(), Error> {
        self.rows += 1;
        self.bytes += row
            .iter()
            .map(|v| match v {
                Value::Text(s) => s.len(),
                Value::Blob(b) => b.len(),
                _ => 8,
            })
            .sum::<usize>();
        if self.rows > self.caps.rows {
            return Err(Error::TooLarge(format!(
                "the result has more than {} rows; add a LIMIT or filter",
                self.caps.rows
            )));
        }
        if self.bytes > self.caps.bytes {
            return Err(Error::TooLarge(format!(
                "the result is larger than {} bytes; select fewer columns or rows",
                self.caps.bytes
            )));
        }
        Ok(())
    }
}

/// Decodes a result stream into `rows`, stopping at the caps.
async fn collect_rows<R: Row>(
    mut stream: impl futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
    caps: ResultCaps,
    decode: fn(&R) -> Result<Vec<Value>, Error>,
) -> Result<Rows, Error> {
    let mut budget = Budget::new(caps);
    let mut out = Rows { columns: Vec::new(), rows: Vec::new() };
    while let Some(row) = stream.try_next().await.map_err(map_error)? {
        if out.columns.is_empty() {
            out.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
        }
        let values = decode(&row)?;
        budget.charge(&values)?;
        out.rows.push(values);
    }
    Ok(out)
}

/// The WIT error for a database error.
pub(crate) fn map_error(error: sqlx::Error) -> Error {
    match &error {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation
                | sqlx::error::ErrorKind::ForeignKeyViolation
                | sqlx::error::ErrorKind::NotNullViolation
                | sqlx::error::ErrorKind::CheckViolation => Error::ConstraintViolation(message),
                _ if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
                    // SQLite's primary result code (the low byte of the extended one).
                    match db.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff) {
                        // BUSY, LOCKED, INTERRUPT (the sandbox's deadline).
                        Some(5 | 6 | 9) => Error::Unavailable(message),
                        // NOMEM (the sandbox's heap limit), TOOBIG (its value limit).
                        Some(7 | 18) => Error::TooLarge(message),
                        // AUTH: the sandbox's authorizer.
                        Some(23) => Error::AccessDenied(message),
                        _ => Error::QueryFailed(message),
                    }
                }
                _ => match db.code().as_deref() {
                    // insufficient_privilege: another component's schema.
                    Some("42501") => Error::AccessDenied(message),
                    // Serialization failure, deadlock, lock or statement
                    // timeout (the request's deadline), idle transaction ended.
                    Some("40001" | "40P01" | "55P03" | "57014" | "25P03") => Error::Unavailable(message),
                    // program_limit_exceeded, out_of_memory.
                    Some("54000" | "53200") => Error::TooLarge(message),
                    _ => Error::QueryFailed(message),
                },
            }
        }
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Error::Unavailable(error.to_string())
        }
        _ => Error::QueryFailed(error.to_string()),
    }
}

// ---- PostgreSQL ----

/// A NULL whose type PostgreSQL infers from context (OID 0, "unspecified"),
/// so `INSERT INTO t (n) VALUES ($1)` works with a null for any column type.
struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(&self, _buf: &mut PgArgumentBuffer) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

pub(crate) fn pg_arguments(params: &[Value]) -> Result<PgArguments, Error> {
    let mut args = PgArguments::default();
    for param in params {
        let added = match param {
            Value::Null => args.add(UntypedNull),
            Value::Integer(i) => args.add(*i),
            Value::Real(f) => args.add(*f),
            Value::Text(s) => args.add(s.clone()),
            Value::Blob(b) => args.add(b.clone()),
        };
        added.map_err(|e| Error::QueryFailed(format!("cannot bind a parameter: {e}")))?;
    }
    Ok(args)
}

fn pg_row(row: &PgRow) -> Result<Vec<Value>, Error> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i).map_err(map_error)?;
            if raw.is_null() {
                return Ok(Value::Null);
            }
            let column = &row.columns()[i];
            let get = |e: sqlx::Error| map_error(e);
            let value = match column.type_info().name() {
                "INT2" => Value::Integer(row.try_get::<i16, _>(i).map_err(get)?.into()),
                "INT4" => Value::Integer(row.try_get::<i32, _>(i).map_err(get)?.into()),
                "INT8" => Value::Integer(row.try_get::<i64, _>(i).map_err(get)?),
                "FLOAT4" => Value::Real(row.try_get::<f32, _>(i).map_err(get)?.into()),
                "FLOAT8" => Value::Real(row.try_get::<f64, _>(i).map_err(get)?),
                "BOOL" => Value::Integer(row.try_get::<bool, _>(i).map_err(get)?.into()),
                "NUMERIC" => {
                    // SUM(bigint) and friends are NUMERIC: integral values
                    // come back as integers, others as reals.
                    let d: rust_decimal::Decimal = row.try_get(i).map_err(get)?;
                    use rust_decimal::prelude::ToPrimitive;
                    match (d.fract().is_zero(), d.to_i64()) {
                        (true, Some(n)) => Value::Integer(n),
                        _ => Value::Real(d.to_f64().unwrap_or(f64::NAN)),
                    }
                }
                "BYTEA" => Value::Blob(row.try_get(i).map_err(get)?),
                "UUID" => Value::Text(row.try_get::<uuid::Uuid, _>(i).map_err(get)?.to_string()),
                "JSON" | "JSONB" => Value::Text(row.try_get::<serde_json::Value, _>(i).map_err(get)?.to_string()),
                "TIMESTAMPTZ" => Value::Text(
                    row.try_get::<chrono::DateTime<chrono::Utc>, _>(i)
                        .map_err(get)?
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                ),
                "TIMESTAMP" => Value::Text(
                    row.try_get::<chrono::NaiveDateTime, _>(i)
                        .map_err(get)?
                        .and_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                ),
                "DATE" => Value::Text(row.try_get::<chrono::NaiveDate, _>(i).map_err(get)?.to_string()),
                "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => Value::Text(row.try_get(i).map_err(get)?),
                other => {
                    return Err(Error::QueryFailed(format!(
                        "column `{}` has type {other}, which the store cannot return; cast it, e.g. CAST({} AS TEXT)",
                        column.name(),
                        column.name()
                    )));
                }
            };
            Ok(value)
        })
        .collect()
}

pub(crate) async fn pg_query<'e, E>(executor: E, sql: &str, params: &[Value], caps: ResultCaps) -> Result<Rows, Error>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let args = pg_arguments(params)?;
    collect_rows(sqlx::query_with(sql, args).fetch(executor), caps, pg_row).await
}

pub(crate) async fn pg_execute<'e, E>(executor: E, sql: &str, params: &[Value]) -> Result<ExecResult, Error>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let args = pg_arguments(params)?;
    let done = sqlx::query_with(sql, args).execute(executor).await.map_err(map_error)?;
    Ok(ExecResult { rows_affected: done.rows_affected(), last_insert_id: None })
}
