//! The jobs table (`_wharf_jobs`, in the component's own database so a job
//! commits in the same transaction as the data it belongs to) and every
//! statement the queue runs on it. Times are unix milliseconds.

use crate::capability::store::Value;
use crate::store::{ComponentDb, SqliteDb, StoreCtx};

/// Creates the jobs table if missing.
pub(crate) async fn ensure_table(db: &ComponentDb) -> anyhow::Result<()> {
    let id = match db {
        ComponentDb::Sqlite(_) => "id INTEGER PRIMARY KEY AUTOINCREMENT",
        ComponentDb::Postgres(_) => "id BIGSERIAL PRIMARY KEY",
    };
    let ddl = format!(
        "CREATE TABLE IF NOT EXISTS _wharf_jobs (
            {id},
            queue TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued',
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            run_at BIGINT NOT NULL,
            lease_until BIGINT,
            last_error TEXT,
            idempotency_key TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS _wharf_jobs_idempotency ON _wharf_jobs (queue, idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        CREATE INDEX IF NOT EXISTS _wharf_jobs_due ON _wharf_jobs (status, run_at, id);"
    );
    match db {
        ComponentDb::Sqlite(SqliteDb { pool, .. }) => sqlx::raw_sql(&ddl).execute(pool).await.map(drop)?,
        ComponentDb::Postgres(pool) => sqlx::raw_sql(&ddl).execute(pool).await.map(drop)?,
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new job.
pub(crate) struct NewJob<'a> {
    pub(crate) queue: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) max_attempts: u32,
    pub(crate) run_at: i64,
    pub(crate) idempotency_key: Option<&'a str>,
}

/// Inserts a job through `store` (inside its transaction when one is open);
/// with an idempotency key already used on the queue, returns that job's id.
pub(crate) async fn insert(store: &mut StoreCtx, job: NewJob<'_>) -> Result<i64, crate::capability::store::Error> {
    let now = now_ms();
    let key = job.idempotency_key.map_or(Value::Null, |k| Value::Text(k.to_owned()));
    let inserted = store
        .run_query(
            "INSERT INTO _wharf_jobs (queue, payload, max_attempts, run_at, idempotency_key, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING id",
            &[
                Value::Text(job.queue.to_owned()),
                Value::Text(job.payload.to_owned()),
                Value::Integer(job.max_attempts.into()),
                Value::Integer(job.run_at),
                key.clone(),
                Value::Integer(now),
            ],
        )
        .await?;
    if let Some(id) = first_integer(&inserted.rows) {
        return Ok(id);
    }
    let existing = store
        .run_query(
            "SELECT id FROM _wharf_jobs WHERE queue = $1 AND idempotency_key = $2",
            &[Value::Text(job.queue.to_owned()), key],
        )
        .await?;
    first_integer(&existing.rows)
        .ok_or_else(|| crate::capability::store::Error::QueryFailed("the job vanished after a key conflict".into()))
}

fn first_integer(rows: &[Vec<Value>]) -> Option<i64> {
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(id)) => Some(*id),
        _ => None,
    }
}

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: i64,
    pub(crate) queue: String,
    pub(crate) payload: String,
    pub(crate) attempts: i64,
    pub(crate) max_attempts: i64,
}

/// Takes the next runnable job and leases it until `lease_until`: a due
/// queued job first, else one whose lease expired (its worker died). Two
/// statements rather than one `OR`, so each is a range scan of the
/// `(status, run_at, id)` index however many finished jobs the table keeps.
/// On PostgreSQL, `SKIP LOCKED` lets several hosts claim different jobs at once.
pub(crate) async fn claim(db: &ComponentDb, lease_until: i64) -> Result<Option<Claimed>, sqlx::Error> {
    let now = now_ms();
    for (condition, order) in
        [("status = 'queued' AND run_at <= $2", "run_at, id"), ("status = 'running' AND lease_until < $2", "id")]
    {
        let lock = match db {
            ComponentDb::Sqlite(_) => "",
            ComponentDb::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE _wharf_jobs SET status = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2
             WHERE id = (SELECT id FROM _wharf_jobs WHERE {condition} ORDER BY {order} LIMIT 1 {lock})
             RETURNING id, queue, payload, CAST(attempts AS BIGINT) AS attempts, CAST(max_attempts AS BIGINT) AS max_attempts"
        );
        let row: Option<(i64, String, String, i64, i64)> = match db {
            ComponentDb::Sqlite(SqliteDb { pool, .. }) => {
                sqlx::query_as(&sql).bind(lease_until).bind(now).fetch_optional(pool).await?
            }
            ComponentDb::Postgres(pool) => {
                sqlx::query_as(&sql).bind(lease_until).bind(now).fetch_optional(pool).await?
            }
        };
        if let Some((id, queue, payload, attempts, max_attempts)) = row {
            return Ok(Some(Claimed { id, queue, payload, attempts, max_attempts }));
        }
    }
    Ok(None)
}

/// Marks a job done.
pub(crate) async fn complete(db: &ComponentDb, id: i64) -> Result<(), sqlx::Error> {
    let sql =
        "UPDATE _wharf_jobs SET status = 'done', lease_until = NULL, last_error = NULL, updated_at = $2 WHERE id = $1";
    run(db, sql, id, now_ms(), None, None).await
}

/// Schedules a retry at `run_at`, keeping `error`.
pub(crate) async fn retry(db: &ComponentDb, id: i64, run_at: i64, error: &str) -> Result<(), sqlx::Error> {
    let sql = "UPDATE _wharf_jobs SET status = 'queued', lease_until = NULL, run_at = $4, last_error = $3, updated_at = $2 WHERE id = $1";
    run(db, sql, id, now_ms(), Some(error), Some(run_at)).await
}

/// Marks a job dead with its last error.
pub(crate) async fn bury(db: &ComponentDb, id: i64, error: &str) -> Result<(), sqlx::Error> {
    let sql =
        "UPDATE _wharf_jobs SET status = 'dead', lease_until = NULL, last_error = $3, updated_at = $2 WHERE id = $1";
    run(db, sql, id, now_ms(), Some(error), None).await
}

async fn run(
    db: &ComponentDb,
    sql: &str,
    id: i64,
    now: i64,
    error: Option<&str>,
    run_at: Option<i64>,
) -> Result<(), sqlx::Error> {
    // Unused trailing parameters are not bound: each statement uses $1..$N.
    macro_rules! bind_all {
        ($pool:expr) => {{
            let mut q = sqlx::query(sql).bind(id).bind(now);
            if let Some(e) = error {
                q = q.bind(e);
            }
            if let Some(t) = run_at {
                q = q.bind(t);
            }
            q.execute($pool).await.map(drop)
        }};
    }
    match db {
        ComponentDb::Sqlite(SqliteDb { pool, .. }) => bind_all!(pool),
        ComponentDb::Postgres(pool) => bind_all!(pool),
    }
}

/// Deletes done jobs last updated before `before` (unix ms); returns how many.
pub(crate) async fn prune_done(db: &ComponentDb, before: i64) -> Result<u64, sqlx::Error> {
    let sql = "DELETE FROM _wharf_jobs WHERE status = 'done' AND updated_at < $1";
    let done = match db {
        ComponentDb::Sqlite(SqliteDb { pool, .. }) => {
            sqlx::query(sql).bind(before).execute(pool).await?.rows_affected()
        }
        ComponentDb::Postgres(pool) => sqlx::query(sql).bind(before).execute(pool).await?.rows_affected(),
    };
    Ok(done)
}

/// Counts of jobs by status, for `/readyz` and metrics.
pub(crate) async fn counts(db: &ComponentDb) -> Result<Vec<(String, serde_json::Value)>, sqlx::Error> {
    let sql = "SELECT status, COUNT(*) FROM _wharf_jobs GROUP BY status";
    let rows: Vec<(String, i64)> = match db {
        ComponentDb::Sqlite(SqliteDb { pool, .. }) => sqlx::query_as(sql).fetch_all(pool).await?,
        ComponentDb::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
    };
    Ok(rows.into_iter().map(|(status, n)| (status, n.into())).collect())
}

/// A dead job, as the operator API shows it.
#[derive(Debug, serde::Serialize)]
pub(crate) struct DeadJob {
    /// Its id in the component's queue.
    pub(crate) id: i64,
    /// The queue it was enqueued on.
    pub(crate) queue: String,
    /// What it was enqueued with.
    pub(crate) payload: String,
    /// Deliveries made.
    pub(crate) attempts: i32,
    /// Why the last one failed.
    pub(crate) last_error: Option<String>,
    /// When it was enqueued (Unix ms).
    pub(crate) created_at: i64,
    /// When it died (Unix ms).
    pub(crate) died_at: i64,
}

/// One page of dead jobs, newest first, and how many there are.
pub(crate) async fn list_dead(db: &ComponentDb, limit: i64, offset: i64) -> Result<(Vec<DeadJob>, i64), sqlx::Error> {
    type Row = (i64, String, String, i32, Option<String>, i64, i64);
    let sql = "SELECT id, queue, payload, attempts, last_error, created_at, updated_at FROM _wharf_jobs \
               WHERE status = 'dead' ORDER BY updated_at DESC, id DESC LIMIT $1 OFFSET $2";
    let count = "SELECT COUNT(*) FROM _wharf_jobs WHERE status = 'dead'";
    let (rows, total): (Vec<Row>, i64) = match db {
        ComponentDb::Sqlite(SqliteDb { pool, .. }) => (
            sqlx::query_as(sql).bind(limit).bind(offset).fetch_all(pool).await?,
            sqlx::query_scalar(count).fetch_one(pool).await?,
        ),
        ComponentDb::Postgres(pool) => (
            sqlx::query_as(sql).bind(limit).bind(offset).fetch_all(pool).await?,
            sqlx::query_scalar(count).fetch_one(pool).await?,
        ),
    };
    let jobs = rows
        .into_iter()
        .map(|(id, queue, payload, attempts, last_error, created_at, died_at)| DeadJob {
            id,
            queue,
            payload,
            attempts,
            last_error,
            created_at,
            died_at,
        })
        .collect();
    Ok((jobs, total))
}

/// Gives a dead job a fresh set of attempts, due now; `false` when no dead
/// job has that id. Attempt numbers keep counting (the handler sees attempt
/// N+1), so the history stays truthful.
pub(crate) async fn revive(db: &ComponentDb, id: i64) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE _wharf_jobs SET status = 'queued', max_attempts = attempts + max_attempts, run_at = $2, \
               lease_until = NULL, updated_at = $2 WHERE id = $1 AND status = 'dead'";
    let now = now_ms();
    let changed = match db {
        ComponentDb::Sqlite(SqliteDb { pool, .. }) => {
            sqlx::query(sql).bind(id).bind(now).execute(pool).await?.rows_affected()
        }
        ComponentDb::Postgres(pool) => sqlx::query(sql).bind(id).bind(now).execute(pool).await?.rows_affected(),
    };
    Ok(changed == 1)
}

/// Deletes a dead job; `false` when no dead job has that id.
pub(crate) async fn discard(db: &ComponentDb, id: i64) -> Result<bool, sqlx::Error> {
    let sql = "DELETE FROM _wharf_jobs WHERE id = $1 AND status = 'dead'";
    let changed = match db {
        ComponentDb::Sqlite(SqliteDb { pool, .. }) => sqlx::query(sql).bind(id).execute(pool).await?.rows_affected(),
        ComponentDb::Postgres(pool) => sqlx::query(sql).bind(id).execute(pool).await?.rows_affected(),
    };
    Ok(changed == 1)
}
