//! Opt-in instance reuse (`reuse` in the manifest): the idle instances of
//! one component version, kept for their next request.
//!
//! An instance comes back here only after a request it served ended well;
//! a trap, a deadline or a memory kill drops it instead. It is dropped too
//! after `max_requests` requests, after `idle` without one, and when its
//! version is swapped out ([`InstancePool::retire`]). Which requests it
//! serves next is the pool's choice (the most recently used first, as its
//! pages are warm), so a component may see any of its earlier requests'
//! state, never another component's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime_wasi_http::handler::Proxy;

use crate::state::RequestState;
use wharf_spec::manifest::ReuseSpec;

/// One instance and its store, fresh or kept from earlier requests.
pub struct Instance {
    pub(crate) store: Store<RequestState>,
    /// `None` until instantiated in `store`; p2 or p3 as the component is.
    pub(crate) proxy: Option<Proxy>,
    /// Requests it has served.
    pub(crate) served: u32,
}

impl Instance {
    /// An instance yet to be instantiated in `store`.
    pub(crate) fn fresh(store: Store<RequestState>) -> Self {
        Self { store, proxy: None, served: 0 }
    }

    /// Its store, to make the request's resources in.
    pub fn store_mut(&mut self) -> &mut Store<RequestState> {
        &mut self.store
    }
}

/// The idle instances of one component version.
pub struct InstancePool {
    component: String,
    spec: ReuseSpec,
    /// Most recently given back last.
    idle: Mutex<Vec<Idle>>,
    retired: AtomicBool,
}

struct Idle {
    instance: Instance,
    since: Instant,
}

impl InstancePool {
    /// An empty pool for `component`'s instances, swept of expired ones
    /// by a task of its own (when there is a runtime) until it is retired
    /// or dropped.
    pub(crate) fn start(component: &str, spec: ReuseSpec) -> Arc<Self> {
        let pool = Arc::new(Self {
            component: component.to_owned(),
            spec,
            idle: Mutex::new(Vec::new()),
            retired: AtomicBool::new(false),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&pool), pool.sweep_every()));
        }
        pool
    }

    /// The most recently used idle instance, if one is left.
    pub(crate) fn take(&self) -> Option<Instance> {
        let expired = self.expire(Instant::now());
        let taken = self.lock().pop().map(|idle| idle.instance);
        drop(expired);
        if taken.is_some() {
            wharf_metrics::global().instance_reuse(&self.component, "reused");
        }
        taken
    }

    /// Keeps `instance` for a later request, unless it has served its
    /// `max_requests` or this version was retired.
    pub(crate) fn give_back(&self, instance: Instance) {
        if instance.served >= self.spec.max_requests {
            wharf_metrics::global().instance_reuse(&self.component, "max_requests");
            return;
        }
        if self.retired.load(Ordering::Acquire) {
            wharf_metrics::global().instance_reuse(&self.component, "swapped");
            return;
        }
        self.lock().push(Idle { instance, since: Instant::now() });
        // A retire that ran between the check and the push left it here.
        if self.retired.load(Ordering::Acquire) {
            drop(self.drain());
        }
    }

    /// Drops the idle instances and every busy one as it comes back: this
    /// version no longer serves (hot swap, removal).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        let dropped = self.drain();
        for _ in &dropped {
            wharf_metrics::global().instance_reuse(&self.component, "swapped");
        }
    }

    /// Drops instances idle for longer than `idle`; returns how many remain.
    pub fn sweep(&self) -> usize {
        drop(self.expire(Instant::now()));
        self.idle_instances()
    }

    /// Idle instances kept now.
    pub fn idle_instances(&self) -> usize {
        self.lock().len()
    }

    /// How often the pool is swept.
    fn sweep_every(&self) -> Duration {
        (self.spec.idle / 2).max(Duration::from_millis(10))
    }

    /// Whether this version was retired.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Takes the expired instances out, to be dropped outside the lock
    /// (dropping a store returns its slot to the allocator).
    fn expire(&self, now: Instant) -> Vec<Idle> {
        let mut idle = self.lock();
        // Oldest first: everything before the first fresh one has expired.
        let fresh = idle.iter().position(|i| now.duration_since(i.since) <= self.spec.idle).unwrap_or(idle.len());
        let expired: Vec<Idle> = idle.drain(..fresh).collect();
        drop(idle);
        for _ in &expired {
            wharf_metrics::global().instance_reuse(&self.component, "idle");
        }
        expired
    }

    fn drain(&self) -> Vec<Idle> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Nothing panics while holding it; a poisoned lock still holds a valid list.
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sweeps `pool` every `every` until it is retired or dropped.
async fn sweep(pool: Weak<InstancePool>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match pool.upgrade() {
            Some(pool) if !pool.is_retired() => {
                pool.sweep();
            }
            _ => return,
        }
    }
}
