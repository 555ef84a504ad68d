//! `wharf:host/queue`: durable jobs in the component's own database.
//! `enqueue` inside a store transaction writes the job in that transaction,
//! so a job exists exactly when the data it belongs to does.
//!
//! [`Jobs`] is the only code that runs queue SQL: the host's workers claim
//! and settle jobs through it, and the operator API, metrics and readiness
//! read and repair the queue through it. The workers themselves (which
//! instantiate components) live in the runtime.
//!
//! [`Schedules`] keeps durable cron ticks beside the jobs (`_wharf_schedules`):
//! the host's ticker takes each due tick through it, which enqueues that
//! tick's job exactly once across hosts and restarts, through the same
//! insert as `enqueue`.

#![deny(missing_docs)]

mod jobs;
mod schedules;

pub use jobs::{Claimed, DeadJob, JobCounts, Jobs, QueueError, backoff, now_ms};
pub use schedules::{ScheduleRow, Schedules, Tick, TickOutcome};

use std::sync::Arc;

use tokio::sync::Notify;
use wasmtime::component::{HasData, Linker};

use wharf_bindings::queue::{self, EnqueueOptions, Error, Host, JobInfo, JobStatus};
use wharf_bindings::store::Value;
use wharf_store::StoreCtx;

/// Longest queue name.
const MAX_QUEUE_NAME: usize = 128;
/// Largest payload, in bytes.
const MAX_PAYLOAD: usize = 1 << 20;

/// Per-request state of the queue capability.
#[derive(Debug, Clone)]
pub struct QueueCtx {
    /// Wakes this component's workers when new jobs are committed.
    notify: Arc<Notify>,
    /// `max-attempts` when the caller gives none.
    default_max_attempts: u32,
}

impl QueueCtx {
    /// A context for a component whose workers wait on `notify`.
    pub fn new(notify: Arc<Notify>, default_max_attempts: u32) -> Self {
        Self { notify, default_max_attempts }
    }
}

/// What the queue's host functions borrow: the store (for the request's
/// transaction) and the queue's own context.
pub struct QueueView<'a> {
    store: &'a mut StoreCtx,
    queue: &'a QueueCtx,
}

impl<'a> QueueView<'a> {
    /// The view of one request: its store context and its queue context.
    pub fn new(store: &'a mut StoreCtx, queue: &'a QueueCtx) -> Self {
        Self { store, queue }
    }
}

impl Host for QueueView<'_> {
    #[tracing::instrument(skip_all, name = "queue.enqueue", fields(queue = %queue_name))]
    async fn enqueue(&mut self, queue_name: String, payload: String, options: EnqueueOptions) -> Result<i64, Error> {
        if queue_name.is_empty() || queue_name.len() > MAX_QUEUE_NAME {
            return Err(Error::Invalid(format!("queue names are 1 to {MAX_QUEUE_NAME} bytes")));
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(Error::Invalid(format!("payloads are at most {MAX_PAYLOAD} bytes")));
        }
        let max_attempts = options.max_attempts.unwrap_or(self.queue.default_max_attempts);
        if max_attempts == 0 {
            return Err(Error::Invalid("max-attempts must be at least 1".into()));
        }
        let delay = i64::try_from(options.delay_ms.unwrap_or(0)).unwrap_or(i64::MAX / 2);
        let now = jobs::now_ms();
        let job = jobs::NewJob {
            queue: &queue_name,
            payload: &payload,
            max_attempts,
            run_at: now.saturating_add(delay),
            idempotency_key: options.idempotency_key.as_deref(),
            enqueued_at: now,
        };
        let id = jobs::insert(self.store, job).await.map_err(|e| Error::Unavailable(format!("{e:?}")))?;
        if self.store.in_transaction() {
            self.store.notify_after_commit(self.queue.notify.clone());
        } else {
            self.queue.notify.notify_waiters();
        }
        Ok(id)
    }

    async fn status(&mut self, id: i64) -> Result<Option<JobInfo>, Error> {
        let rows = self
            .store
            .run_query(
                "SELECT id, queue, status, CAST(attempts AS BIGINT), last_error FROM _wharf_jobs WHERE id = $1",
                &[Value::Integer(id)],
            )
            .await
            .map_err(|e| Error::Unavailable(format!("{e:?}")))?;
        let Some(row) = rows.rows.into_iter().next() else {
            return Ok(None);
        };
        let mut values = row.into_iter();
        let (
            Some(Value::Integer(id)),
            Some(Value::Text(queue)),
            Some(Value::Text(status)),
            Some(Value::Integer(attempts)),
            last,
        ) = (values.next(), values.next(), values.next(), values.next(), values.next())
        else {
            return Err(Error::Unavailable("unexpected row shape in the jobs table".into()));
        };
        let status = match status.as_str() {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "done" => JobStatus::Done,
            _ => JobStatus::Dead,
        };
        let last_error = match last {
            Some(Value::Text(e)) => Some(e),
            _ => None,
        };
        Ok(Some(JobInfo { id, queue, status, attempts: u32::try_from(attempts).unwrap_or(u32::MAX), last_error }))
    }
}

struct HasQueue;

impl HasData for HasQueue {
    type Data<'a> = QueueView<'a>;
}

/// Adds `wharf:host/queue` to `linker`, reaching each store's contexts
/// through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> QueueView<'_>,
) -> wasmtime::Result<()> {
    queue::add_to_linker::<T, HasQueue>(linker, get)
}
