//! Prometheus metrics (`GET /metrics` on the operator API), on the
//! `prometheus-client` crate. Counters and histograms are updated on the
//! request path; gauges that describe state (queue depth, dead jobs, hub
//! clients, loaded versions) are handed to [`Metrics::render`] by whoever
//! scrapes, so this crate depends on nothing of the host's.
//!
//! One set per process ([`global`]): a process runs one host.

#![deny(missing_docs)]

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of one answered request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// The component, or `-` when none was routed.
    pub component: String,
    /// The route pattern as in the manifest (`/api/events/*`), or `-`.
    pub route: String,
    /// The HTTP status code.
    pub status: u16,
}

/// Labels naming a component and a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// The component.
    pub component: String,
    /// The route pattern.
    pub route: String,
}

/// Labels naming a component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ComponentLabels {
    /// The component.
    pub component: String,
}

/// Labels of a guest stopped or refused by the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FailureLabels {
    /// The component.
    pub component: String,
    /// `trap`, `deadline`, `memory` or `overloaded`.
    pub kind: &'static str,
}

/// Labels of a reused instance's event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReuseLabels {
    /// The component.
    pub component: String,
    /// `reused` (served another request), or why it was dropped: `failed`
    /// (trap, deadline or memory kill), `max_requests`, `idle` or `swapped`.
    pub event: &'static str,
}

/// Labels of a reload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReloadLabels {
    /// The component.
    pub component: String,
    /// `ok` or `refused`.
    pub outcome: &'static str,
}

/// Labels of a scheduled tick.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ScheduleLabels {
    /// The component.
    pub component: String,
    /// The schedule's name.
    pub schedule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    component: String,
    version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobLabels {
    component: String,
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

/// Labels of `wharf_refused_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    kind: &'static str,
}

/// The state gauges of one scrape, read by the caller just before it.
#[derive(Debug, Default)]
pub struct Gauges {
    /// `(component, version)` of every component now serving.
    pub loaded: Vec<(String, String)>,
    /// `(component, status, count)` of every component's jobs.
    pub jobs: Vec<(String, String, i64)>,
    /// `(topic, clients)` of every hub topic.
    pub hub_clients: Vec<(String, usize)>,
}

/// Every metric the host keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram>,
    instantiate_seconds: Family<ComponentLabels, Histogram>,
    guest_failures: Family<FailureLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    loaded: Family<VersionLabels, Gauge>,
    jobs: Family<JobLabels, Gauge>,
    hub_clients: Family<TopicLabels, Gauge>,
    refused: Family<RefusalLabels, Counter>,
    schedule_ticks: Family<ScheduleLabels, Counter>,
    reuse: Family<ReuseLabels, Counter>,
    /// Scrapes reset and refill the state gauges: one at a time.
    scraping: Mutex<()>,
}

fn seconds_histogram() -> Histogram {
    // 50µs .. ~26s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// Instantiation is measured in µs: buckets from 1 µs, so its percentiles
/// (and a 10 µs target) can be read from the histogram.
fn instantiate_histogram() -> Histogram {
    // 1µs .. ~8s
    Histogram::new(exponential_buckets(0.000_001, 2.0, 24))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("wharf");
        let requests = Family::default();
        registry.register("requests", "HTTP requests answered, by component, route and status", requests.clone());
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        registry.register(
            "request_duration_seconds",
            "Time from routing a request to its response head",
            request_seconds.clone(),
        );
        let instantiate_seconds =
            Family::<ComponentLabels, Histogram>::new_with_constructor(instantiate_histogram as fn() -> _);
        registry.register(
            "instantiate_duration_seconds",
            "Time to instantiate a component for one request",
            instantiate_seconds.clone(),
        );
        let guest_failures = Family::default();
        registry.register(
            "guest_failures",
            "Requests a component did not answer: trap, deadline, memory cap, overloaded",
            guest_failures.clone(),
        );
        let reloads = Family::default();
        registry.register("reloads", "Component reloads, by outcome", reloads.clone());
        let loaded = Family::default();
        registry.register("component_loaded", "1 for the version of each component now serving", loaded.clone());
        let jobs = Family::default();
        registry.register("queue_jobs", "Jobs by component and status (queued, running, done, dead)", jobs.clone());
        let hub_clients = Family::default();
        registry.register("hub_clients", "WebSocket clients connected, by topic", hub_clients.clone());
        let refused = Family::default();
        registry.register(
            "refused",
            "What a boundary refused, by kind: forged hub notifications, rate limits, connection caps",
            refused.clone(),
        );
        let schedule_ticks = Family::default();
        registry.register(
            "schedule_ticks",
            "Scheduled ticks this host enqueued a job for, by component and schedule",
            schedule_ticks.clone(),
        );
        let reuse = Family::default();
        registry.register(
            "instance_reuse",
            "Instances of components with `reuse`: requests served by a kept instance, and instances dropped, by why",
            reuse.clone(),
        );
        Self {
            refused,
            schedule_ticks,
            reuse,
            registry,
            requests,
            request_seconds,
            instantiate_seconds,
            guest_failures,
            reloads,
            loaded,
            jobs,
            hub_clients,
            scraping: Mutex::new(()),
        }
    }

    /// Records one answered request.
    pub fn request(&self, labels: RequestLabels, took: Duration) {
        if labels.component != "-" {
            let route = RouteLabels { component: labels.component.clone(), route: labels.route.clone() };
            self.request_seconds.get_or_create(&route).observe(took.as_secs_f64());
        }
        self.requests.get_or_create(&labels).inc();
    }

    /// Records the time one instantiation took.
    pub fn instantiated(&self, component: &str, took: Duration) {
        let labels = ComponentLabels { component: component.to_owned() };
        self.instantiate_seconds.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Records a guest the host stopped or refused.
    pub fn guest_failure(&self, component: &str, kind: &'static str) {
        self.guest_failures.get_or_create(&FailureLabels { component: component.to_owned(), kind }).inc();
    }

    /// Records something a boundary refused.
    pub fn refused(&self, kind: &'static str) {
        self.refused.get_or_create(&RefusalLabels { kind }).inc();
    }

    /// Records a hub notification dropped as forged, stale or replayed.
    pub fn hub_forgery_dropped(&self) {
        self.refused("hub_forgery");
    }

    /// Records a scheduled tick this host enqueued.
    pub fn schedule_tick(&self, component: &str, schedule: &str) {
        let labels = ScheduleLabels { component: component.to_owned(), schedule: schedule.to_owned() };
        self.schedule_ticks.get_or_create(&labels).inc();
    }

    /// Records a reused instance serving again (`reused`) or dropped (why).
    pub fn instance_reuse(&self, component: &str, event: &'static str) {
        self.reuse.get_or_create(&ReuseLabels { component: component.to_owned(), event }).inc();
    }

    /// Records a reload.
    pub fn reload(&self, component: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "refused" };
        self.reloads.get_or_create(&ReloadLabels { component: component.to_owned(), outcome }).inc();
    }

    /// The Prometheus text exposition, with the state gauges set to `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        // A poisoned lock only means another scrape panicked mid-way; the
        // gauges are cleared below anyway.
        let _one_scrape_at_a_time = self.scraping.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.loaded.clear();
        for (component, version) in &gauges.loaded {
            self.loaded.get_or_create(&VersionLabels { component: component.clone(), version: version.clone() }).set(1);
        }
        self.jobs.clear();
        for (component, status, count) in &gauges.jobs {
            self.jobs.get_or_create(&JobLabels { component: component.clone(), status: status.clone() }).set(*count);
        }
        self.hub_clients.clear();
        for (topic, clients) in &gauges.hub_clients {
            let clients = i64::try_from(*clients).unwrap_or(i64::MAX);
            self.hub_clients.get_or_create(&TopicLabels { topic: topic.clone() }).set(clients);
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::warn!(error = %e, "metrics: cannot encode");
        }
        text
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}
