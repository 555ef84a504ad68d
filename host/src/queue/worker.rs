//! Workers: per component, `queue.workers` tasks that claim due jobs, run
//! the component's `job-handler` on a fresh instance under the component's
//! limits, and record the outcome (done, retry with backoff, or dead).
//! Each job runs on the version of the component current when it is claimed,
//! so a hot swap takes effect at the next job.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::jobs::{self, Claimed};
use crate::capability::job_handler::Job;
use crate::limits::{GuestFailure, classify};
use crate::manifest::{ComponentName, QueueSpec};
use crate::registry::{LoadedComponent, Registry};

/// How often an idle worker looks for due jobs it was not woken for
/// (retries coming due, jobs enqueued by another host).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Longest time between two prunings of done jobs.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The job workers of a host: `queue.workers` tasks per component that
/// handles jobs. Started at boot and topped up after each reload (a
/// component that gained a job handler, or more workers, gets them then).
/// Workers never exit on their own before shutdown: one whose component
/// stopped handling jobs, or whose index is beyond `queue.workers`, idles
/// until a reload brings it back.
pub struct WorkerPool {
    registry: Arc<Registry>,
    shutdown: watch::Receiver<bool>,
    started: Mutex<BTreeMap<ComponentName, u32>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl WorkerPool {
    /// A pool working for the components of `registry` until `shutdown` is `true`.
    pub fn new(registry: Arc<Registry>, shutdown: watch::Receiver<bool>) -> Self {
        Self { registry, shutdown, started: Mutex::default(), handles: Mutex::default() }
    }

    /// Starts the workers each component handling jobs is still missing.
    pub fn top_up(&self) {
        let snapshot = self.registry.snapshot();
        let mut started = self.started.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut handles = self.handles.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for component in snapshot.components.values().filter(|c| c.jobs.is_some() && c.db.is_some()) {
            let name = &component.spec.name;
            let running = started.entry(name.clone()).or_default();
            for index in *running..component.spec.queue.workers {
                let (registry, name, shutdown) = (self.registry.clone(), name.clone(), self.shutdown.clone());
                let span = tracing::info_span!("worker", component = %name, index);
                handles.push(tokio::spawn(work(registry, name, shutdown, index).instrument(span)));
            }
            *running = (*running).max(component.spec.queue.workers);
        }
    }

    /// Waits up to `timeout` for every worker to finish its job and stop
    /// (after `shutdown` turned `true`); `false` if some did not.
    pub async fn join(&self, timeout: Duration) -> bool {
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        tokio::time::timeout(timeout, futures_util::future::join_all(handles)).await.is_ok()
    }
}

async fn work(registry: Arc<Registry>, name: ComponentName, mut shutdown: watch::Receiver<bool>, index: u32) {
    let mut next_prune = std::time::Instant::now();
    while !*shutdown.borrow() {
        let component = registry.snapshot().components.get(&name).cloned();
        let ready = component.filter(|c| c.jobs.is_some() && index < c.spec.queue.workers);
        let Some((component, db)) = ready.and_then(|c| c.db.clone().map(|db| (c, db))) else {
            // Not needed by the version now serving: wait for a reload.
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        };
        // One worker per component prunes done jobs past their retention.
        if index == 0 && std::time::Instant::now() >= next_prune {
            let retention = component.spec.queue.retention;
            next_prune = std::time::Instant::now() + (retention / 4).clamp(Duration::from_millis(250), PRUNE_EVERY);
            match jobs::prune_done(&db, jobs::now_ms() - millis(retention)).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(pruned = n, "pruned done jobs past their retention"),
                Err(e) => tracing::warn!(error = %e, "cannot prune done jobs"),
            }
        }
        // A slot first, then the claim: a claimed job never waits for a slot
        // while its lease runs out.
        let Ok(_slot) = component.job_slots.clone().acquire_owned().await else { return };
        let lease_until = jobs::now_ms() + millis(component.spec.queue.lease);
        match jobs::claim(&db, lease_until).await {
            Ok(Some(job)) => run(&component, &db, job).await,
            Ok(None) => {
                tokio::select! {
                    () = component.jobs_ready.notified() => {}
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim jobs; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn run(component: &LoadedComponent, db: &crate::store::ComponentDb, job: Claimed) {
    let span = tracing::info_span!("job", id = job.id, queue = %job.queue, attempt = job.attempts);
    async {
        if job.attempts > job.max_attempts {
            // Its earlier workers died holding it (lease expired) every time.
            let error = format!("gave up after {} deliveries whose workers never reported back", job.max_attempts);
            record(jobs::bury(db, job.id, &error).await);
            tracing::warn!("job dead: {error}");
            return;
        }
        let outcome = deliver(component, &job).await;
        match outcome {
            Ok(()) => {
                record(jobs::complete(db, job.id).await);
                tracing::debug!("job done");
            }
            Err(error) if job.attempts >= job.max_attempts => {
                record(jobs::bury(db, job.id, &error).await);
                tracing::warn!(%error, "job dead after {} attempts", job.attempts);
            }
            Err(error) => {
                let delay = backoff(&component.spec.queue, job.attempts);
                record(jobs::retry(db, job.id, jobs::now_ms() + millis(delay), &error).await);
                tracing::info!(%error, retry_in = ?delay, "job failed; will retry");
            }
        }
    }
    .instrument(span)
    .await
}

/// Runs the job handler once; `Err` carries the reason it failed.
async fn deliver(component: &LoadedComponent, job: &Claimed) -> Result<(), String> {
    let Some(pre) = component.jobs.clone() else {
        return Err("the component no longer handles jobs".into());
    };
    let mut store = crate::instance::new_store(component);
    let wit_job = Job {
        id: job.id,
        queue: job.queue.clone(),
        payload: job.payload.clone(),
        attempt: u32::try_from(job.attempts).unwrap_or(u32::MAX),
    };
    let call = async {
        let worker = pre.instantiate_async(&mut store).await?;
        worker.wharf_host_job_handler().call_handle(&mut store, &wit_job).await
    };
    let result = match tokio::time::timeout(component.spec.limits.deadline, call).await {
        Err(_) => Err(GuestFailure::Deadline.describe()),
        Ok(Err(error)) => {
            let failure = classify(error, store.data().limiter.memory_cap_hit);
            if let GuestFailure::Trap(error) = &failure {
                tracing::warn!(error = format!("{error:#}"), "job handler trapped");
            }
            Err(failure.describe())
        }
        Ok(Ok(Err(message))) => Err(message),
        Ok(Ok(Ok(()))) if store.data().store.in_transaction() => {
            Err("the handler returned with its transaction still open; it was rolled back".into())
        }
        Ok(Ok(Ok(()))) => Ok(()),
    };
    // Dropping the store rolls back any transaction the handler left open.
    drop(store);
    result
}

/// Delay before retry number `attempt`: exponential, capped, with jitter
/// (a random 50-100% of the step) so retries of a burst spread out.
fn backoff(spec: &QueueSpec, attempt: i64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(30);
    let step = spec.backoff.saturating_mul(1 << exponent).min(spec.max_backoff);
    step.mul_f64(rand::rng().random_range(0.5..=1.0))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

fn record(result: Result<(), sqlx::Error>) {
    if let Err(e) = result {
        // The lease will expire and the job run again: at-least-once.
        tracing::error!(error = %e, "cannot record the job's outcome");
    }
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
