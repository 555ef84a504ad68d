//! Job workers: per component, `queue.workers` tasks that claim due jobs, run
//! the component's `job-handler` on a fresh instance under the component's
//! limits, and record the outcome (done, retry with backoff, or dead).
//! A worker claims fast jobs several at a time ([`Pace`]) and runs them one
//! after another; each runs on the version of the component current when it
//! was claimed, so a hot swap takes effect at the next claim, within
//! [`CLAIM_TIME`] or so. A worker marks its done jobs
//! in batches ([`Done`]): one statement for up to [`DONE_BATCH`] jobs, at the
//! latest [`DONE_WAIT`] after the first, and always before it idles or stops.
//! Until then a done job keeps its lease, so a crash in between runs it again
//! (at least once, as a crash between a handler and its bookkeeping always did).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use wharf_bindings::job_handler::Job;
use wharf_queue::{Claimed, Jobs, QueueError, backoff, now_ms};

use crate::registry::{LoadedComponent, Registry};
use crate::run::{RunError, new_store, run_job};
use wharf_spec::manifest::ComponentName;

/// How often an idle worker looks for due jobs it was not woken for
/// (retries coming due, jobs enqueued by another host).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Most jobs a worker claims in one statement.
const MAX_CLAIM: u32 = 16;
/// How long the jobs a worker claims at once should take to run, by its
/// recent jobs: short, so a batch never holds jobs other workers could run.
const CLAIM_TIME: Duration = Duration::from_millis(20);
/// Most done jobs a worker marks in one statement.
const DONE_BATCH: usize = 32;
/// Longest a worker holds a done job before marking it (far below any lease).
const DONE_WAIT: Duration = Duration::from_millis(50);
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
        for component in snapshot.components.values().filter(|c| c.job_worker.is_some() && c.db.is_some()) {
            let name = &component.spec.name;
            let running = started.entry(name.clone()).or_default();
            for index in *running..component.spec.queue.workers {
                let (registry, name, shutdown) = (self.registry.clone(), name.clone(), self.shutdown.clone());
                let span = tracing::info_span!(target: "wharf::queue", "worker", component = %name, index);
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
    let mut done = Done::default();
    let mut pace = Pace::default();
    while !*shutdown.borrow() {
        let component = registry.snapshot().components.get(&name).cloned();
        if let Some(component) = &component {
            done.mark_due(component).await;
        }
        let ready = component.filter(|c| c.job_worker.is_some() && index < c.spec.queue.workers);
        let Some(component) = ready.filter(|c| c.db.is_some()) else {
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
            let Some(jobs) = component.queue() else { continue };
            match jobs.prune_done(now_ms() - millis(retention)).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(target: "wharf::queue", pruned = n, "pruned done jobs past their retention"),
                Err(e) => tracing::warn!(target: "wharf::queue", error = %e, "cannot prune done jobs"),
            }
        }
        // A slot first, then the claim: a claimed job never waits for a slot
        // while its lease runs out.
        let Ok(_slot) = component.job_slots.clone().acquire_owned().await else { return };
        let lease = component.spec.queue.lease;
        let lease_until = now_ms() + millis(lease);
        let Some(jobs) = component.queue() else { continue };
        match jobs.claim(lease_until, pace.claim_size()).await {
            Ok(batch) if batch.is_empty() => {
                done.mark(&component).await;
                tokio::select! {
                    () = component.jobs_ready.notified() => {}
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Ok(batch) => {
                tracing::debug!(target: "wharf::queue", jobs = batch.len(), "claimed jobs");
                let claimed_at = Instant::now();
                let mut batch = batch.into_iter();
                while let Some(job) = batch.next() {
                    // Start no job once half the lease is gone, or the host is
                    // stopping: give the rest back for any worker to take.
                    if *shutdown.borrow() || claimed_at.elapsed() > lease / 2 {
                        let rest: Vec<i64> = std::iter::once(job.id).chain(batch.by_ref().map(|j| j.id)).collect();
                        tracing::debug!(target: "wharf::queue", jobs = rest.len(), "gave back unstarted jobs");
                        record(jobs.release(&rest, lease_until).await);
                        break;
                    }
                    let started = Instant::now();
                    if let Some(id) = run(&component, jobs, job).await {
                        done.push(id);
                    }
                    pace.record(started.elapsed());
                }
            }
            Err(e) => {
                tracing::warn!(target: "wharf::queue", error = %e, "cannot claim jobs; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    if let Some(component) = registry.snapshot().components.get(&name) {
        done.mark(component).await;
    }
}

/// How many jobs a worker claims in one statement: as many as it expects to
/// finish within [`CLAIM_TIME`], judging by its recent jobs, so fast jobs are
/// claimed in batches while slow ones stay spread over every worker.
#[derive(Default)]
struct Pace {
    /// Moving mean of recent jobs' run time; `None` before the first.
    mean: Option<Duration>,
}

impl Pace {
    fn claim_size(&self) -> u32 {
        let Some(mean) = self.mean else { return 1 };
        let size = CLAIM_TIME.as_secs_f64() / mean.as_secs_f64().max(1e-6);
        // Truncation is the intent: a whole number of jobs, at least one.
        size.clamp(1.0, f64::from(MAX_CLAIM)) as u32
    }

    fn record(&mut self, took: Duration) {
        self.mean = Some(self.mean.map_or(took, |mean| mean.mul_f64(0.8) + took.mul_f64(0.2)));
    }
}

/// A worker's done jobs not yet marked in the queue.
#[derive(Default)]
struct Done {
    ids: Vec<i64>,
    since: Option<Instant>,
}

impl Done {
    fn push(&mut self, id: i64) {
        self.since.get_or_insert_with(Instant::now);
        self.ids.push(id);
    }

    /// Marks them if there are enough, or the first has waited long enough.
    async fn mark_due(&mut self, component: &LoadedComponent) {
        if self.ids.len() >= DONE_BATCH || self.since.is_some_and(|t| t.elapsed() >= DONE_WAIT) {
            self.mark(component).await;
        }
    }

    /// Marks them all done.
    async fn mark(&mut self, component: &LoadedComponent) {
        if self.ids.is_empty() {
            return;
        }
        if let Some(jobs) = component.queue() {
            record(jobs.complete_many(&self.ids).await);
        }
        self.ids.clear();
        self.since = None;
    }
}

/// Runs one claimed job and records a retry or a death; returns its id when
/// it is done, for the caller to mark with others.
async fn run(component: &LoadedComponent, jobs: Jobs<'_>, job: Claimed) -> Option<i64> {
    let span =
        tracing::info_span!(target: "wharf::queue", "job", id = job.id, queue = %job.queue, attempt = job.attempts);
    async {
        if job.attempts > job.max_attempts {
            // Its earlier workers died holding it (lease expired) every time.
            let error = format!("gave up after {} deliveries whose workers never reported back", job.max_attempts);
            record(jobs.bury(job.id, &error).await);
            tracing::warn!(target: "wharf::queue", "job dead: {error}");
            return None;
        }
        let outcome = deliver(component, &job).await;
        match outcome {
            Ok(()) => {
                tracing::debug!(target: "wharf::queue", "job done");
                return Some(job.id);
            }
            Err(error) if job.attempts >= job.max_attempts => {
                record(jobs.bury(job.id, &error).await);
                tracing::warn!(target: "wharf::queue", %error, "job dead after {} attempts", job.attempts);
            }
            Err(error) => {
                let delay = backoff(&component.spec.queue, job.attempts);
                record(jobs.retry(job.id, now_ms() + millis(delay), &error).await);
                tracing::info!(target: "wharf::queue", %error, retry_in = ?delay, "job failed; will retry");
            }
        }
        None
    }
    .instrument(span)
    .await
}

/// Runs the job handler once; `Err` carries the reason it failed.
async fn deliver(component: &LoadedComponent, job: &Claimed) -> Result<(), String> {
    let job = Job {
        id: job.id,
        queue: job.queue.clone(),
        payload: job.payload.clone(),
        attempt: u32::try_from(job.attempts).unwrap_or(u32::MAX),
    };
    match run_job(component, new_store(component, 0), job).await {
        Ok(()) => Ok(()),
        Err(RunError::Handler(message)) => Err(message),
        Err(failure) => {
            if let RunError::Trap(error) = &failure {
                tracing::warn!(target: "wharf::queue", error = format!("{error:#}"), "job handler trapped");
            }
            Err(failure.to_string())
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

fn record(result: Result<(), QueueError>) {
    if let Err(e) = result {
        // The lease will expire and the job run again: at-least-once.
        tracing::error!(target: "wharf::queue", error = %e, "cannot record the job's outcome");
    }
}
