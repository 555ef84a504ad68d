//! The schedules table (`_wharf_schedules`, beside `_wharf_jobs` in the
//! component's own database) and the one transaction that turns a due tick
//! into a job. The database, not timing, makes each tick enqueue exactly
//! once across hosts and restarts: a tick is taken by a compare-and-set on
//! the schedule's `next_tick`, and its job is inserted in the same
//! transaction, keyed `schedule:NAME:TICK` so even a replayed tick adds
//! nothing. Times are Unix milliseconds.

use wharf_store::{ComponentDb, SqliteDb};

use crate::jobs::{self, NewJob, QueueError};

/// The schedules table of one component's database.
#[derive(Clone, Copy)]
pub struct Schedules<'a> {
    db: &'a ComponentDb,
}

/// One tick to take: what the ticker knows from the manifest and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Tick<'a> {
    /// The schedule's name (also the job's queue).
    pub name: &'a str,
    /// Its cron expression, as written.
    pub cron: &'a str,
    /// What the job carries.
    pub payload: &'a str,
    /// Deliveries before the job is dead.
    pub max_attempts: u32,
    /// The clock reading the ticks were computed from.
    pub now: i64,
    /// The latest tick at or before `now`, if the expression has one.
    pub latest: Option<i64>,
    /// The first tick after `now`.
    pub next: i64,
}

impl Tick<'_> {
    /// The job a tick enqueues: due at once, on the queue named after the
    /// schedule, under `key`.
    fn job<'k>(&'k self, key: &'k str) -> NewJob<'k> {
        NewJob {
            queue: self.name,
            payload: self.payload,
            max_attempts: self.max_attempts,
            run_at: self.now,
            idempotency_key: Some(key),
            enqueued_at: self.now,
        }
    }
}

/// What [`Schedules::take`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// The schedule was new here, or its expression changed: it starts from
    /// its next tick (nothing is enqueued for the past).
    Started,
    /// Its stored next tick is still ahead (another host took this one).
    NotDue,
    /// This host took tick `tick` and enqueued job `job` for it (`None`
    /// when a job with that tick's key already existed).
    Enqueued {
        /// The tick, Unix ms.
        tick: i64,
        /// The job's id.
        job: Option<i64>,
    },
}

/// One schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScheduleRow {
    /// Its name.
    pub name: String,
    /// The expression its `next_tick` was computed from.
    pub cron: String,
    /// The last tick enqueued (Unix ms), if any.
    pub last_tick: Option<i64>,
    /// The job enqueued for it.
    pub last_job: Option<i64>,
    /// When it comes due next (Unix ms).
    pub next_tick: i64,
}

/// The row's state before a tick, and the new row when it is new or changed.
const UPSERT: &str = "INSERT INTO _wharf_schedules (name, cron, next_tick, updated_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, next_tick = excluded.next_tick,
         updated_at = excluded.updated_at
     WHERE _wharf_schedules.cron <> excluded.cron";

/// The compare-and-set that takes a due tick: only one transaction can move
/// `next_tick` past `now` (PostgreSQL re-checks the condition on the row a
/// concurrent winner committed; SQLite has one writer).
const TAKE: &str = "UPDATE _wharf_schedules SET last_tick = $3, next_tick = $4, updated_at = $5
     WHERE name = $1 AND cron = $2 AND next_tick <= $5";

const RECORD_JOB: &str = "UPDATE _wharf_schedules SET last_job = $2 WHERE name = $1";

impl<'a> Schedules<'a> {
    /// The schedules table in `db`.
    pub fn of(db: &'a ComponentDb) -> Self {
        Self { db }
    }

    /// Creates the schedules table if missing.
    pub async fn ensure_table(&self) -> anyhow::Result<()> {
        let ddl = "CREATE TABLE IF NOT EXISTS _wharf_schedules (
            name TEXT PRIMARY KEY,
            cron TEXT NOT NULL,
            last_tick BIGINT,
            last_job BIGINT,
            next_tick BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )";
        match self.db {
            ComponentDb::Sqlite(SqliteDb { pool, .. }) => sqlx::raw_sql(ddl).execute(pool).await.map(drop)?,
            ComponentDb::Postgres(pool) => sqlx::raw_sql(ddl).execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    /// Takes `tick` if it is due and no one took it: in one transaction,
    /// registers the schedule (new, or its expression changed), moves its
    /// `next_tick` past now and enqueues the job of the latest due tick.
    /// However many ticks were missed, one job is enqueued, for the latest.
    pub async fn take(&self, tick: &Tick<'_>) -> Result<TickOutcome, QueueError> {
        // The same statements on either backend; only the pool's type differs.
        macro_rules! take_in {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await?;
                let upserted = sqlx::query(UPSERT)
                    .bind(tick.name)
                    .bind(tick.cron)
                    .bind(tick.next)
                    .bind(tick.now)
                    .execute(&mut *tx)
                    .await?;
                if upserted.rows_affected() > 0 {
                    tx.commit().await?;
                    return Ok(TickOutcome::Started);
                }
                let Some(latest) = tick.latest else {
                    tx.commit().await?;
                    return Ok(TickOutcome::NotDue);
                };
                let taken = sqlx::query(TAKE)
                    .bind(tick.name)
                    .bind(tick.cron)
                    .bind(latest)
                    .bind(tick.next)
                    .bind(tick.now)
                    .execute(&mut *tx)
                    .await?;
                if taken.rows_affected() == 0 {
                    tx.commit().await?;
                    return Ok(TickOutcome::NotDue);
                }
                let key = format!("schedule:{}:{latest}", tick.name);
                let job = jobs::insert_on(&mut *tx, &tick.job(&key)).await?;
                if let Some(id) = job {
                    sqlx::query(RECORD_JOB).bind(tick.name).bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(TickOutcome::Enqueued { tick: latest, job })
            }};
        }
        match self.db {
            ComponentDb::Sqlite(SqliteDb { pool, .. }) => take_in!(pool),
            ComponentDb::Postgres(pool) => take_in!(pool),
        }
    }

    /// Every stored schedule, by name (rows of schedules no longer in the
    /// manifest included; the caller shows the ones it runs).
    pub async fn list(&self) -> Result<Vec<ScheduleRow>, QueueError> {
        type Row = (String, String, Option<i64>, Option<i64>, i64);
        let sql = "SELECT name, cron, last_tick, last_job, next_tick FROM _wharf_schedules ORDER BY name";
        let rows: Vec<Row> = match self.db {
            ComponentDb::Sqlite(SqliteDb { pool, .. }) => sqlx::query_as(sql).fetch_all(pool).await?,
            ComponentDb::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(name, cron, last_tick, last_job, next_tick)| ScheduleRow {
                name,
                cron,
                last_tick,
                last_job,
                next_tick,
            })
            .collect())
    }
}
