//! Scheduled jobs: the ticker that turns each due time of a component's
//! `schedules` (cron, UTC) into one job in that component's own queue, and
//! the operator's view of them (last and next runs).
//!
//! One ticker per host. It reads the registry's current snapshot on every
//! turn, so a reload that adds, changes or removes schedules takes effect
//! within a second, without a restart. It sleeps until the earliest tick it
//! knows of, then asks the database to take it ([`wharf_queue::Schedules::take`]):
//! the compare-and-set there, not this timing, makes a tick enqueue exactly
//! once across every host sharing the database and across restarts. A
//! schedule seen for the first time (start, reload) is asked at once, which
//! is when a tick missed while no host ran is enqueued: once, for the latest.

#![deny(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use wharf_queue::{Tick, TickOutcome, now_ms};
use wharf_runtime::{LoadedComponent, Registry};
use wharf_spec::manifest::{ComponentName, ScheduleSpec};

/// Longest sleep: how soon a reload's schedules are seen.
const IDLE: Duration = Duration::from_secs(1);
/// Delay before asking again after the database failed.
const RETRY_MS: i64 = 1000;

/// Why the schedules of a component cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// Its schedules table could not be read.
    #[error("the schedules table of `{component}` cannot be read: {source}")]
    Unavailable {
        /// The component.
        component: String,
        /// What the database said.
        source: wharf_queue::QueueError,
    },
}

/// The host's ticker, running until its shutdown signal.
pub struct Ticker {
    handle: JoinHandle<()>,
}

impl Ticker {
    /// Starts ticking the schedules of the components `registry` serves,
    /// until `shutdown` turns `true`.
    pub fn start(registry: Arc<Registry>, shutdown: watch::Receiver<bool>) -> Self {
        let span = tracing::info_span!(target: "wharf::schedule", "ticker");
        Self { handle: tokio::spawn(run(registry, shutdown).instrument(span)) }
    }

    /// Waits up to `timeout` for the ticker to stop (after its shutdown
    /// signal); `false` if it did not. A tick cut off is taken by the next
    /// host to ask: its transaction either committed or did not happen.
    pub async fn join(self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.handle).await.is_ok()
    }
}

/// When the ticker next asks the database about one schedule.
struct Pending {
    /// The expression the time was computed from (a reload may change it).
    cron: String,
    /// Unix ms; `i64::MIN` asks at once.
    ask_at: i64,
}

async fn run(registry: Arc<Registry>, mut shutdown: watch::Receiver<bool>) {
    let mut pending: HashMap<(ComponentName, String), Pending> = HashMap::new();
    while !*shutdown.borrow() {
        let snapshot = registry.snapshot();
        let mut live = HashSet::new();
        for component in snapshot.components().filter(|c| c.handles_jobs()) {
            for schedule in &component.spec().schedules {
                let key = (component.name().clone(), schedule.name.clone());
                let entry =
                    pending.entry(key.clone()).or_insert_with(|| Pending { cron: String::new(), ask_at: i64::MIN });
                if entry.cron != schedule.cron.as_str() {
                    // New, or changed by a reload: ask at once.
                    *entry = Pending { cron: schedule.cron.as_str().to_owned(), ask_at: i64::MIN };
                }
                live.insert(key);
                if entry.ask_at > now_ms() {
                    continue;
                }
                let span = tracing::info_span!(
                    target: "wharf::schedule",
                    "schedule",
                    component = %component.name(),
                    schedule = %schedule.name
                );
                entry.ask_at = ask(component, schedule).instrument(span).await;
            }
        }
        // Schedules a reload removed stop here; their rows stay, unused.
        pending.retain(|key, _| live.contains(key));
        let wake = pending.values().map(|p| p.ask_at).min().unwrap_or(i64::MAX);
        let sleep = Duration::from_millis(u64::try_from(wake.saturating_sub(now_ms())).unwrap_or(0)).min(IDLE);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            changed = shutdown.changed() => if changed.is_err() { break },
        }
    }
}

/// Asks the database to take `schedule`'s due tick, if any; returns when to
/// ask next (Unix ms).
async fn ask(component: &LoadedComponent, schedule: &ScheduleSpec) -> i64 {
    let Some(table) = component.schedules() else { return i64::MAX };
    let now = now_ms();
    let Some(next) = schedule.cron.next_after(now) else {
        tracing::warn!(target: "wharf::schedule", "the schedule never comes due again");
        return i64::MAX;
    };
    let tick = Tick {
        name: &schedule.name,
        cron: schedule.cron.as_str(),
        payload: &schedule.payload,
        max_attempts: component.spec().queue.max_attempts,
        now,
        latest: schedule.cron.latest_at_or_before(now),
        next,
    };
    match table.take(&tick).await {
        Ok(TickOutcome::Enqueued { tick, job: None }) => {
            // The compare-and-set should make this impossible; the key kept it harmless.
            tracing::warn!(target: "wharf::schedule", tick, "schedule tick already had its job");
            next
        }
        Ok(TickOutcome::Enqueued { tick, job: Some(job) }) => {
            tracing::info!(target: "wharf::schedule", tick, job, "schedule tick enqueued");
            wharf_metrics::global().schedule_tick(component.name().as_str(), &schedule.name);
            component.wake_workers();
            next
        }
        Ok(TickOutcome::Started) => {
            tracing::debug!(target: "wharf::schedule", next, "schedule started");
            next
        }
        Ok(TickOutcome::NotDue) => next,
        Err(error) => {
            tracing::warn!(target: "wharf::schedule", %error, "cannot take the schedule's tick; asking again shortly");
            now.saturating_add(RETRY_MS)
        }
    }
}

/// One schedule as operators see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScheduleStatus {
    /// Its name (also its jobs' queue).
    pub name: String,
    /// Its cron expression (UTC).
    pub cron: String,
    /// The last tick a job was enqueued for (Unix ms), if any.
    pub last_run: Option<i64>,
    /// That job's id.
    pub last_job: Option<i64>,
    /// When it comes due next (Unix ms), if ever.
    pub next_run: Option<i64>,
}

/// The schedules `component` runs, with their last and next runs.
pub async fn status(component: &LoadedComponent) -> Result<Vec<ScheduleStatus>, ScheduleError> {
    let specs = &component.spec().schedules;
    let rows = match (specs.is_empty(), component.schedules()) {
        (false, Some(table)) => table
            .list()
            .await
            .map_err(|source| ScheduleError::Unavailable { component: component.name().to_string(), source })?,
        _ => Vec::new(),
    };
    let now = now_ms();
    Ok(specs
        .iter()
        .map(|spec| {
            // A row written for another expression says nothing of this one.
            let row = rows.iter().find(|r| r.name == spec.name && r.cron == spec.cron.as_str());
            ScheduleStatus {
                name: spec.name.clone(),
                cron: spec.cron.as_str().to_owned(),
                last_run: row.and_then(|r| r.last_tick),
                last_job: row.and_then(|r| r.last_job),
                next_run: row.map(|r| r.next_tick).or_else(|| spec.cron.next_after(now)),
            }
        })
        .collect())
}
