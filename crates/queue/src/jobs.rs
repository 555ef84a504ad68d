//! The jobs table (`_wharf_jobs`, in the component's own database so a job
//! commits in the same transaction as the data it belongs to) and every
//! statement the queue runs on it. Times are unix milliseconds.

use std::time::Duration;

use rand::Rng;
use wharf_bindings::store::{Error, Value};
use wharf_spec::component::QueueSpec;
use wharf_store::{ComponentDb, SqliteDb, StoreCtx};

/// The queue's table could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct QueueError(#[from] sqlx::Error);

/// Jobs by status (`queued`, `running`, `done`, `dead`), as counted now.
pub type JobCounts = Vec<(String, i64)>;

/// The jobs table of one component's database.
#[derive(Clone, Copy)]
pub struct Jobs<'a> {
    db: &'a ComponentDb,
}

impl<'a> Jobs<'a> {
    /// The jobs table in `db`.
    pub fn of(db: &'a ComponentDb) -> Self {
        Self { db }
    }

    /// Creates the jobs table if missing.
    pub async fn ensure_table(&self) -> anyhow::Result<()> {
        let db = self.db;
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

    /// Takes up to `limit` runnable jobs and leases them until `lease_until`:
    /// due queued jobs first, oldest first, then jobs whose lease expired
    /// (their worker died). Two statements rather than one `OR`, so each is a
    /// range scan of the `(status, run_at, id)` index however many finished
    /// jobs the table keeps. On PostgreSQL, `SKIP LOCKED` lets several hosts
    /// claim different jobs at once. The jobs come back in the order claimed.
    pub async fn claim(&self, lease_until: i64, limit: u32) -> Result<Vec<Claimed>, QueueError> {
        let db = self.db;
        let now = now_ms();
        let mut claimed = Vec::new();
        for (condition, order) in
            [("status = 'queued' AND run_at <= $2", "run_at, id"), ("status = 'running' AND lease_until < $2", "id")]
        {
            let wanted = i64::from(limit) - i64::try_from(claimed.len()).unwrap_or(i64::MAX);
            if wanted <= 0 {
                break;
            }
            let lock = match db {
                ComponentDb::Sqlite(_) => "",
                ComponentDb::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            };
            let sql = format!(
                "UPDATE _wharf_jobs SET status = 'running', attempts = attempts + 1, lease_until = $1, updated_at = $2
                 WHERE id IN (SELECT id FROM _wharf_jobs WHERE {condition} ORDER BY {order} LIMIT $3 {lock})
                 RETURNING id, queue, payload, CAST(attempts AS BIGINT) AS attempts,
                           CAST(max_attempts AS BIGINT) AS max_attempts, run_at"
            );
            let rows: Vec<(i64, String, String, i64, i64, i64)> = match db {
                ComponentDb::Sqlite(SqliteDb { pool, .. }) => {
                    sqlx::query_as(&sql).bind(lease_until).bind(now).bind(wanted).fetch_all(pool).await?
                }
                ComponentDb::Postgres(pool) => {
                    sqlx::query_as(&sql).bind(lease_until).bind(now).bind(wanted).fetch_all(pool).await?
                }
            };
            // RETURNING promises no order.
            let mut rows = rows;
            rows.sort_by_key(|&(id, .., run_at)| (run_at, id));
            claimed.extend(rows.into_iter().map(|(id, queue, payload, attempts, max_attempts, _)| Claimed {
                id,
                queue,
                payload,
                attempts,
                max_attempts,
            }));
        }
        Ok(claimed)
    }

    /// Gives back claimed jobs that were never started (leased until
    /// `lease_until`), as if they had not been claimed: runnable again at
    /// once, the delivery not counted. A job whose lease already changed
    /// hands is left alone.
    pub async fn release(&self, ids: &[i64], lease_until: i64) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let set =
            "UPDATE _wharf_jobs SET status = 'queued', attempts = attempts - 1, lease_until = NULL, updated_at = $1";
        match self.db {
            ComponentDb::Sqlite(SqliteDb { pool, .. }) => {
                sqlx::query(&format!(
                    "{set} WHERE id IN (SELECT value FROM json_each($2)) AND status = 'running' AND lease_until = $3"
                ))
                .bind(now)
                .bind(json_ids(ids))
                .bind(lease_until)
                .execute(pool)
                .await?;
            }
            ComponentDb::Postgres(pool) => {
                sqlx::query(&format!("{set} WHERE id = ANY($2) AND status = 'running' AND lease_until = $3"))
                    .bind(now)
                    .bind(ids)
                    .bind(lease_until)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Marks the jobs `ids` done, in one statement.
    pub async fn complete_many(&self, ids: &[i64]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        match self.db {
            ComponentDb::Sqlite(SqliteDb { pool, .. }) => {
                sqlx::query(
                    "UPDATE _wharf_jobs SET status = 'done', lease_until = NULL, last_error = NULL, updated_at = $1
                     WHERE id IN (SELECT value FROM json_each($2))",
                )
                .bind(now)
                .bind(json_ids(ids))
                .execute(pool)
                .await?;
            }
            ComponentDb::Postgres(pool) => {
                sqlx::query(
                    "UPDATE _wharf_jobs SET status = 'done', lease_until = NULL, last_error = NULL, updated_at = $1
                     WHERE id = ANY($2)",
                )
                .bind(now)
                .bind(ids)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Schedules a retry at `run_at`, keeping `error`.
    pub async fn retry(&self, id: i64, run_at: i64, error: &str) -> Result<(), QueueError> {
        let db = self.db;
        let sql = "UPDATE _wharf_jobs SET status = 'queued', lease_until = NULL, run_at = $4, last_error = $3, updated_at = $2 WHERE id = $1";
        run(db, sql, id, now_ms(), Some(error), Some(run_at)).await
    }

    /// Marks a job dead with its last error.
    pub async fn bury(&self, id: i64, error: &str) -> Result<(), QueueError> {
        let db = self.db;
        let sql = "UPDATE _wharf_jobs SET status = 'dead', lease_until = NULL, last_error = $3, updated_at = $2 WHERE id = $1";
        run(db, sql, id, now_ms(), Some(error), None).await
    }

    /// Deletes done jobs last updated before `before` (unix ms); returns how many.
    pub async fn prune_done(&self, before: i64) -> Result<u64, QueueError> {
        let db = self.db;
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
    pub async fn counts(&self) -> Result<JobCounts, QueueError> {
        let db = self.db;
        let sql = "SELECT status, COUNT(*) FROM _wharf_jobs GROUP BY status";
        let rows: Vec<(String, i64)> = match db {
            ComponentDb::Sqlite(SqliteDb { pool, .. }) => sqlx::query_as(sql).fetch_all(pool).await?,
            ComponentDb::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        };
        Ok(rows)
    }

    /// One page of dead jobs, newest first, and how many there are.
    pub async fn list_dead(&self, limit: i64, offset: i64) -> Result<(Vec<DeadJob>, i64), QueueError> {
        let db = self.db;
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
    pub async fn revive(&self, id: i64) -> Result<bool, QueueError> {
        let db = self.db;
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
    pub async fn discard(&self, id: i64) -> Result<bool, QueueError> {
        let db = self.db;
        let sql = "DELETE FROM _wharf_jobs WHERE id = $1 AND status = 'dead'";
        let changed = match db {
            ComponentDb::Sqlite(SqliteDb { pool, .. }) => {
                sqlx::query(sql).bind(id).execute(pool).await?.rows_affected()
            }
            ComponentDb::Postgres(pool) => sqlx::query(sql).bind(id).execute(pool).await?.rows_affected(),
        };
        Ok(changed == 1)
    }
}

/// `ids` as a JSON array, for SQLite's `json_each`: integers only, so no
/// text of anyone's goes into it.
fn json_ids(ids: &[i64]) -> String {
    format!("[{}]", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new job.
pub(crate) struct NewJob<'a> {
    pub(crate) queue: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) max_attempts: u32,
    pub(crate) run_at: i64,
    pub(crate) idempotency_key: Option<&'a str>,
    /// Its `created_at` and `updated_at`.
    pub(crate) enqueued_at: i64,
}

/// The one statement that writes a job, for `enqueue` and for schedule
/// ticks alike: nothing when the job's idempotency key is already used on
/// its queue (then no id comes back).
const INSERT: &str =
    "INSERT INTO _wharf_jobs (queue, payload, max_attempts, run_at, idempotency_key, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $6)
     ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
     RETURNING id";

impl NewJob<'_> {
    /// [`INSERT`]'s parameters, in order.
    fn params(&self) -> [Value; 6] {
        [
            Value::Text(self.queue.to_owned()),
            Value::Text(self.payload.to_owned()),
            Value::Integer(self.max_attempts.into()),
            Value::Integer(self.run_at),
            self.idempotency_key.map_or(Value::Null, |k| Value::Text(k.to_owned())),
            Value::Integer(self.enqueued_at),
        ]
    }
}

/// Inserts a job through `store` (inside its transaction when one is open);
/// with an idempotency key already used on the queue, returns that job's id.
pub(crate) async fn insert(store: &mut StoreCtx, job: NewJob<'_>) -> Result<i64, Error> {
    let inserted = store.run_query(INSERT, &job.params()).await?;
    if let Some(id) = first_integer(&inserted.rows) {
        return Ok(id);
    }
    let key = job.idempotency_key.map_or(Value::Null, |k| Value::Text(k.to_owned()));
    let existing = store
        .run_query(
            "SELECT id FROM _wharf_jobs WHERE queue = $1 AND idempotency_key = $2",
            &[Value::Text(job.queue.to_owned()), key],
        )
        .await?;
    first_integer(&existing.rows).ok_or_else(|| Error::QueryFailed("the job vanished after a key conflict".into()))
}

/// Inserts a job on a connection of the host's own (in the caller's
/// transaction, if it holds one), as [`insert`] does through a request's
/// store; `None` when the job's idempotency key is already used on its queue.
pub(crate) async fn insert_on<'c, E, DB>(conn: E, job: &NewJob<'_>) -> Result<Option<i64>, QueueError>
where
    E: sqlx::Executor<'c, Database = DB>,
    DB: sqlx::Database,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut query = sqlx::query_scalar(INSERT);
    for param in job.params() {
        query = match param {
            Value::Integer(i) => query.bind(i),
            Value::Text(t) => query.bind(Some(t)),
            Value::Null => query.bind(None::<String>),
            Value::Real(_) | Value::Blob(_) => unreachable!("a job's parameters are integers and text"),
        };
    }
    Ok(query.fetch_optional(conn).await?)
}

fn first_integer(rows: &[Vec<Value>]) -> Option<i64> {
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(id)) => Some(*id),
        _ => None,
    }
}

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its id in the component's queue.
    pub id: i64,
    /// The queue it was enqueued on.
    pub queue: String,
    /// What it was enqueued with.
    pub payload: String,
    /// Deliveries so far, this one included.
    pub attempts: i64,
    /// Deliveries allowed before it is dead.
    pub max_attempts: i64,
}

async fn run(
    db: &ComponentDb,
    sql: &str,
    id: i64,
    now: i64,
    error: Option<&str>,
    run_at: Option<i64>,
) -> Result<(), QueueError> {
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
            q.execute($pool).await.map(drop).map_err(QueueError::from)
        }};
    }
    match db {
        ComponentDb::Sqlite(SqliteDb { pool, .. }) => bind_all!(pool),
        ComponentDb::Postgres(pool) => bind_all!(pool),
    }
}

/// A dead job, as the operator API shows it.
#[derive(Debug, serde::Serialize)]
pub struct DeadJob {
    /// Its id in the component's queue.
    pub id: i64,
    /// The queue it was enqueued on.
    pub queue: String,
    /// What it was enqueued with.
    pub payload: String,
    /// Deliveries made.
    pub attempts: i32,
    /// Why the last one failed.
    pub last_error: Option<String>,
    /// When it was enqueued (Unix ms).
    pub created_at: i64,
    /// When it died (Unix ms).
    pub died_at: i64,
}

/// Delay before retry number `attempt`: exponential, capped, with jitter
/// (a random 50-100% of the step) so retries of a burst spread out.
pub fn backoff(spec: &QueueSpec, attempt: i64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(30);
    let step = spec.backoff.saturating_mul(1 << exponent).min(spec.max_backoff);
    step.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let spec = QueueSpec {
            workers: 1,
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            lease: Duration::from_secs(30),
            retention: Duration::from_secs(3600),
        };
        for _ in 0..50 {
            let first = backoff(&spec, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
            let third = backoff(&spec, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400), "{third:?}");
            let tenth = backoff(&spec, 10);
            assert!(tenth <= Duration::from_millis(1000), "{tenth:?}");
        }
    }
}
