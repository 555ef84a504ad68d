//! Hot swap: load one component anew from the manifest and `.wasm` on disk,
//! off the request path, and swap it in atomically. Requests and jobs in
//! flight keep the version they started on (they hold its `Arc`); new ones
//! get the new version. A version that fails to compile, link, pass its
//! grants check or migrate is refused with the reason and the old one keeps
//! serving. Route changes in the manifest apply with the reload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Runtime;
use crate::registry::{LoadedComponent, Snapshot};
use wharf_spec::manifest::{ComponentName, Manifest};
use wharf_spec::router::RouteTable;

/// A reload that took effect.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    /// The component.
    pub name: String,
    /// The version now serving.
    pub version: String,
    /// The version it replaced, if it was loaded.
    pub previous: Option<String>,
    /// How long loading took.
    #[serde(serialize_with = "millis")]
    pub took: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why a reload did not take effect (the old version keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The manifest on disk has no such component.
    #[error("the manifest has no component `{0}`")]
    Unknown(String),
    /// The manifest, the `.wasm` or the migrations were refused.
    #[error("{0:#}")]
    Refused(anyhow::Error),
}

impl Runtime {
    /// Loads component `name` anew (even if unchanged) and swaps it in.
    ///
    /// Runs on a blocking thread: compiling stays off the request path, and
    /// the future need not be `Send` (sqlx's generic migration futures defeat
    /// the auto-trait check in callers that spawn reloads).
    pub async fn reload(self: &Arc<Self>, name: &str) -> Result<Reloaded, ReloadError> {
        let (this, name) = (self.clone(), name.to_owned());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(this.reload_and_report(&name)))
            .await
            .unwrap_or_else(|e| Err(ReloadError::Refused(anyhow::anyhow!("the reload task failed: {e}"))))
    }

    async fn reload_and_report(&self, name: &str) -> Result<Reloaded, ReloadError> {
        let outcome = self.reload_inner(name).await;
        match &outcome {
            Ok(done) => {
                tracing::info!(component = name, version = %done.version, previous = ?done.previous, took = ?done.took, "component reloaded");
            }
            Err(error) => {
                tracing::warn!(component = name, %error, "reload refused; the previous version keeps serving")
            }
        }
        // Names of components that do not exist would make unbounded labels.
        if !matches!(outcome, Err(ReloadError::Unknown(_))) {
            wharf_metrics::global().reload(name, outcome.is_ok());
        }
        outcome
    }

    async fn reload_inner(&self, name: &str) -> Result<Reloaded, ReloadError> {
        // One reload at a time: each builds on the snapshot the last one left.
        let _one_at_a_time = self.reload_lock.lock().await;
        let started = Instant::now();
        let manifest = Manifest::load(&self.manifest_path).map_err(|e| ReloadError::Refused(e.into()))?;
        let Some(spec) = manifest.components.values().find(|c| c.name.as_str() == name) else {
            return Err(ReloadError::Unknown(name.to_owned()));
        };
        let current = self.registry.snapshot();
        let routes = routes_with(&current, &manifest, &spec.name)?;
        let instances: u32 = current
            .components
            .values()
            .filter(|c| c.spec.name != spec.name)
            .map(|c| c.spec.limits.max_instances)
            .sum::<u32>()
            .saturating_add(spec.limits.max_instances);
        if instances > self.loader.instance_budget() {
            return Err(ReloadError::Refused(anyhow::anyhow!(
                "limits.max_instances would bring the host to {instances} instances, over the {} its instance pool was sized for at start; restart the host to raise it",
                self.loader.instance_budget()
            )));
        }
        let previous = current.components.get(&spec.name).cloned();
        let mut loaded = self.loader.load(spec).await.map_err(ReloadError::Refused)?;
        if let Some(previous) = &previous {
            loaded.carry_over(previous);
        }
        let reloaded = Reloaded {
            name: name.to_owned(),
            version: loaded.version.clone(),
            previous: previous.map(|p| p.version.clone()),
            took: started.elapsed(),
        };
        let mut components = current.components.clone();
        components.insert(spec.name.clone(), Arc::new(loaded));
        self.registry.swap(Snapshot { components, routes, websockets: current.websockets.clone() });
        // A version that gained a job handler or workers gets them now.
        self.workers.top_up();
        // Cached answers of the old version must not outlive it.
        self.loader.outbound().forget_answers_of(name);
        Ok(reloaded)
    }
}

/// The routes of the components now loaded, with `name`'s taken from the
/// new manifest; refused if they would overlap.
fn routes_with(current: &Snapshot, manifest: &Manifest, name: &ComponentName) -> Result<RouteTable, ReloadError> {
    let mut specs: std::collections::BTreeMap<_, _> = current.components.iter().map(|(n, c)| (n, &c.spec)).collect();
    if let Some(spec) = manifest.components.get(name) {
        specs.insert(name, spec);
    }
    RouteTable::build(specs.into_values(), &current.websockets).map_err(|overlap| {
        ReloadError::Refused(anyhow::anyhow!(
            "route of `{}` ({}): {}",
            overlap.component,
            overlap.field,
            overlap.message
        ))
    })
}

impl LoadedComponent {
    /// Keeps what must stay shared across versions: the instance cap (so
    /// old and new instances together stay under it), job slots and the
    /// wake-up of idle workers.
    fn carry_over(&mut self, previous: &LoadedComponent) {
        if previous.spec.limits.max_instances == self.spec.limits.max_instances {
            self.instances = previous.instances.clone();
        }
        if previous.spec.queue.workers == self.spec.queue.workers {
            self.job_slots = previous.job_slots.clone();
        }
        self.jobs_ready = previous.jobs_ready.clone();
    }
}
