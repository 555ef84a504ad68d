//! The loaded components and their routes, held as one snapshot behind an
//! [`ArcSwap`]: a request takes the current snapshot once and keeps it, so
//! replacing a component (hot swap) never disturbs a request in flight.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi_http::handler::ProxyPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre as P2Pre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::compile_cache::{self, CacheOutcome, CompileCache};
use crate::reuse::InstancePool;
use crate::state::RequestState;
use wharf_auth::AuthKey;
use wharf_bindings::JobWorkerPre;
use wharf_hub::{Hub, HubCtx};
use wharf_outbound::{Outbound, OutboundHooks};
use wharf_spec::manifest::{ComponentName, ComponentSpec, Manifest, WebSocketSpec};
use wharf_spec::router::RouteTable;
use wharf_store::{ComponentDb, Database, DbLimits};

/// One component, compiled, checked and pre-instantiated.
pub struct LoadedComponent {
    /// Its manifest entry.
    pub(crate) spec: ComponentSpec,
    /// Short content hash of the `.wasm` (12 hex digits).
    pub(crate) version: String,
    /// When this version was loaded.
    pub(crate) loaded_at: SystemTime,
    /// Whether loading compiled or reused the cache.
    pub(crate) compile: CacheOutcome,
    /// Ready to instantiate per request: a WASIp2 `incoming-handler` or a
    /// WASIp3 `handler` (told apart at load).
    pub(crate) pre: ProxyPre<RequestState>,
    /// One permit per running instance (`limits.max_instances`).
    pub(crate) instances: Arc<Semaphore>,
    /// Its idle instances, when it opted into reuse.
    pub(crate) reuse: Option<Arc<InstancePool>>,
    /// Its database, when it has one.
    pub(crate) db: Option<ComponentDb>,
    /// Ready to instantiate for jobs, when it exports `job-handler`.
    pub(crate) job_worker: Option<JobWorkerPre<RequestState>>,
    /// Woken when jobs are committed, so idle workers start at once.
    pub(crate) jobs_ready: Arc<Notify>,
    /// One permit per job running at once (`queue.workers`).
    pub(crate) job_slots: Arc<Semaphore>,
    /// What its instances publish through.
    pub(crate) hub: HubCtx,
    /// Its OpenAPI fragment, if it ships one.
    pub(crate) openapi: Option<serde_json::Value>,
    /// Its outbound HTTP policy, cloned into each instance.
    pub(crate) outbound: OutboundHooks,
    /// The host's token signing key (`wharf:host/auth`).
    pub(crate) auth: Arc<AuthKey>,
}

impl LoadedComponent {
    /// Its manifest entry.
    pub fn spec(&self) -> &ComponentSpec {
        &self.spec
    }

    /// Its name.
    pub fn name(&self) -> &ComponentName {
        &self.spec.name
    }

    /// Short content hash of its `.wasm` (12 hex digits).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// When this version was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// Whether loading it compiled or reused the cache.
    pub fn compile(&self) -> CacheOutcome {
        self.compile
    }

    /// Its OpenAPI fragment, if it ships one.
    pub fn openapi(&self) -> Option<&serde_json::Value> {
        self.openapi.as_ref()
    }

    /// Instances running now.
    pub fn instances_running(&self) -> usize {
        (self.spec.limits.max_instances as usize).saturating_sub(self.instances.available_permits())
    }

    /// Its idle instances, when it opted into reuse.
    pub fn instance_pool(&self) -> Option<&InstancePool> {
        self.reuse.as_deref()
    }

    /// Whether it is a WASIp3 component (`wasi:http/handler@0.3`).
    pub fn is_p3(&self) -> bool {
        matches!(self.pre, ProxyPre::P3(_))
    }

    /// The engine it was compiled for.
    pub(crate) fn engine(&self) -> &Engine {
        match &self.pre {
            ProxyPre::P2(pre) => pre.engine(),
            ProxyPre::P3(pre) => pre.engine(),
        }
    }

    /// Whether it exports `job-handler` (and so has workers).
    pub fn handles_jobs(&self) -> bool {
        self.job_worker.is_some()
    }

    /// A slot to run one instance in, held until dropped: at once or `None`
    /// when all `limits.max_instances` are taken, or (`wait`) when one frees.
    pub async fn instance_slot(&self, wait: bool) -> Option<OwnedSemaphorePermit> {
        match wait {
            false => self.instances.clone().try_acquire_owned().ok(),
            true => self.instances.clone().acquire_owned().await.ok(),
        }
    }

    /// `NAME@VERSION`, as in the `x-wharf-component` header.
    pub fn label(&self) -> String {
        format!("{}@{}", self.spec.name, self.version)
    }

    /// Its jobs table, when it has a database.
    pub fn queue(&self) -> Option<wharf_queue::Jobs<'_>> {
        self.db.as_ref().map(wharf_queue::Jobs::of)
    }

    /// Its schedules' table, when it has a database.
    pub fn schedules(&self) -> Option<wharf_queue::Schedules<'_>> {
        self.db.as_ref().map(wharf_queue::Schedules::of)
    }

    /// Wakes its idle workers (jobs became due outside a request).
    pub fn wake_workers(&self) {
        self.jobs_ready.notify_waiters();
    }
}

/// Everything a request needs to find its component.
pub struct Snapshot {
    /// The components by name.
    pub(crate) components: BTreeMap<ComponentName, Arc<LoadedComponent>>,
    /// Their routes.
    pub(crate) routes: RouteTable,
    /// The hub's WebSocket endpoints.
    pub(crate) websockets: Vec<WebSocketSpec>,
}

impl Snapshot {
    /// Nothing loaded yet.
    pub fn empty() -> Self {
        Self { components: BTreeMap::new(), routes: RouteTable::default(), websockets: Vec::new() }
    }

    /// The component named `name`, if loaded.
    pub fn component(&self, name: &str) -> Option<&Arc<LoadedComponent>> {
        self.components.get(name)
    }

    /// Every loaded component, by name.
    pub fn components(&self) -> impl Iterator<Item = &Arc<LoadedComponent>> {
        self.components.values()
    }

    /// The routes of the loaded components.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// The hub's WebSocket endpoints.
    pub fn websockets(&self) -> &[WebSocketSpec] {
        &self.websockets
    }
}

/// The host's components, swappable as a whole.
pub struct Registry {
    current: ArcSwap<Snapshot>,
}

impl Registry {
    /// A registry serving `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Self { current: ArcSwap::from_pointee(snapshot) }
    }

    /// The snapshot to serve one request from.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the served snapshot atomically; tokens verify against the
    /// issue grants of the components it serves. Versions no longer served
    /// drop their idle instances; their busy ones finish and are dropped.
    pub fn swap(&self, snapshot: Snapshot) {
        if let Some(any) = snapshot.components.values().next() {
            let grants = snapshot.components.values().map(|c| (c.spec.name.as_str(), &*c.spec.grants.issue_tokens));
            any.auth.set_issuers(grants);
        }
        let old = self.current.swap(Arc::new(snapshot));
        let new = self.current.load();
        for (name, component) in &old.components {
            let kept = new.components.get(name).is_some_and(|c| Arc::ptr_eq(c, component));
            if let (false, Some(pool)) = (kept, &component.reuse) {
                pool.retire();
            }
        }
    }
}

/// Loads components: compile (or reuse the cache), check grants, link.
pub struct Loader {
    engine: Engine,
    linker: Linker<RequestState>,
    cache: CompileCache,
    database: Database,
    hub: Arc<Hub>,
    outbound: Arc<Outbound>,
    /// The sum of `max_instances` the engine's pool was sized for.
    instance_budget: u32,
    auth: Arc<AuthKey>,
}

impl Loader {
    /// A loader for `engine`, caching artifacts in `cache`.
    pub fn new(
        engine: Engine,
        cache: CompileCache,
        database: Database,
        hub: Arc<Hub>,
        outbound: Arc<Outbound>,
        instance_budget: u32,
        auth: Arc<AuthKey>,
    ) -> anyhow::Result<Self> {
        let mut linker = Linker::new(&engine);
        crate::linker::add_to_linker(&mut linker)?;
        Ok(Self { engine, linker, cache, database, hub, outbound, instance_budget, auth })
    }

    /// The host's database.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The sum of `max_instances` the instance pool was sized for at start.
    pub fn instance_budget(&self) -> u32 {
        self.instance_budget
    }

    /// The outbound HTTP state shared by every component.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// The engine components are compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads one component: compile (or reuse the cache), check grants,
    /// link, then prepare its database (jobs table, migrations). Nothing is
    /// served from it until this returns.
    pub async fn load(&self, spec: &ComponentSpec) -> anyhow::Result<LoadedComponent> {
        for grant in &spec.grants.files {
            if !grant.host.is_dir() {
                anyhow::bail!(
                    "component `{}` refused: grants.files \"{}\" names `{}`, which is not a directory",
                    spec.name,
                    grant.guest,
                    grant.host.display()
                );
            }
        }
        let (pre, jobs, version, compile) = tokio::task::block_in_place(|| self.compile_and_link(spec))?;
        if jobs.is_none() && !spec.schedules.is_empty() {
            anyhow::bail!(
                "component `{}` refused: its `schedules` enqueue jobs, but it does not export `wharf:host/job-handler`",
                spec.name
            );
        }
        let openapi = match &spec.openapi {
            None => None,
            Some(path) => {
                Some(read_openapi_fragment(path).with_context(|| format!("component `{}` refused", spec.name))?)
            }
        };
        let db = match spec.needs_database() {
            false => None,
            true => Some(prepare_database(&self.database, spec).await?),
        };
        Ok(LoadedComponent {
            version,
            loaded_at: SystemTime::now(),
            compile,
            instances: Arc::new(Semaphore::new(spec.limits.max_instances as usize)),
            reuse: spec.reuse.map(|reuse| InstancePool::start(spec.name.as_str(), reuse)),
            db,
            job_worker: jobs,
            jobs_ready: Arc::new(Notify::new()),
            job_slots: Arc::new(Semaphore::new(spec.queue.workers as usize)),
            hub: HubCtx::new(spec.name.clone(), self.hub.clone(), Arc::new(spec.publish_topics.clone())),
            openapi,
            outbound: OutboundHooks::new(
                spec.name.clone(),
                spec.grants.outbound.clone(),
                spec.outbound,
                self.outbound.clone(),
            ),
            auth: self.auth.clone(),
            spec: spec.clone(),
            pre,
        })
    }

    #[allow(clippy::type_complexity)]
    fn compile_and_link(
        &self,
        spec: &ComponentSpec,
    ) -> anyhow::Result<(ProxyPre<RequestState>, Option<JobWorkerPre<RequestState>>, String, CacheOutcome)> {
        let name = &spec.name;
        let wasm = std::fs::read(&spec.wasm)
            .with_context(|| format!("failed to read component `{name}` from `{}`", spec.wasm.display()))?;
        let digest = compile_cache::digest(&wasm);
        let (component, compile) = self
            .cache
            .load(&self.engine, name.as_str(), &digest[..16], &wasm)
            .with_context(|| format!("failed to compile component `{name}` from `{}`", spec.wasm.display()))?;
        crate::grants::check(&self.engine, &component, spec).with_context(|| format!("component `{name}` refused"))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("failed to link component `{name}`"))?;
        // A component without a job handler simply gets no workers.
        let jobs = JobWorkerPre::new(instance_pre.clone()).ok();
        // The exports' types are checked, not just their names.
        let pre = match ServicePre::new(instance_pre.clone()) {
            Ok(p3) => ProxyPre::P3(p3),
            Err(_) => ProxyPre::P2(P2Pre::new(instance_pre).map_err(anyhow::Error::from).with_context(|| {
                format!(
                    "component `{name}` exports neither `wasi:http/incoming-handler@0.2` nor `wasi:http/handler@0.3`"
                )
            })?),
        };
        Ok((pre, jobs, digest[..12].to_owned(), compile))
    }

    /// Loads every component of `manifest` into a snapshot.
    pub async fn load_all(&self, manifest: &Manifest) -> anyhow::Result<Snapshot> {
        let mut components = BTreeMap::new();
        for spec in manifest.components.values() {
            let loaded = self.load(spec).await?;
            tracing::info!(
                component = %spec.name,
                version = %loaded.version,
                compile = loaded.compile.as_str(),
                "component loaded"
            );
            components.insert(spec.name.clone(), Arc::new(loaded));
        }
        let routes = RouteTable::build(manifest.components.values(), &manifest.websockets)
            .map_err(|o| anyhow::anyhow!("{}", o.message))?;
        Ok(Snapshot { components, routes, websockets: manifest.websockets.clone() })
    }
}

/// Opens a component's database and brings it up to date: the queue's
/// table, then the component's migrations.
pub async fn prepare_database(database: &Database, spec: &ComponentSpec) -> anyhow::Result<ComponentDb> {
    let name = &spec.name;
    let db = database
        .component(
            name,
            DbLimits {
                connections: spec.limits.db_connections,
                query_bytes: spec.limits.query_bytes,
                deadline: spec.limits.deadline,
            },
        )
        .await
        .with_context(|| format!("failed to open the database of `{name}`"))?;
    wharf_queue::Jobs::of(&db)
        .ensure_table()
        .await
        .with_context(|| format!("failed to create the jobs table of `{name}`"))?;
    wharf_queue::Schedules::of(&db)
        .ensure_table()
        .await
        .with_context(|| format!("failed to create the schedules table of `{name}`"))?;
    if let Some(dir) = &spec.migrations {
        let files = wharf_store::migrate::read_dir(dir, database.kind())
            .with_context(|| format!("component `{name}` refused"))?;
        wharf_store::migrate::apply(&db, &files).await.with_context(|| format!("component `{name}` refused"))?;
        tracing::info!(component = %name, migrations = files.len(), "migrations up to date");
    }
    Ok(db)
}

/// Reads and checks an OpenAPI fragment: a JSON object with a `paths` object.
fn read_openapi_fragment(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read OpenAPI fragment `{}`", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("OpenAPI fragment `{}` is not valid JSON", path.display()))?;
    if !value.get("paths").is_some_and(serde_json::Value::is_object) {
        anyhow::bail!("OpenAPI fragment `{}` has no `paths` object", path.display());
    }
    Ok(value)
}
