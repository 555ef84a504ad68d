//! Running a guest, the same way for a client's request, an in-process
//! call and a job: a store (every capability's context, sandboxed WASI,
//! the limits) → instantiate from the pre-instance → call the entry point
//! under the component's deadline → say how it ended. The store is dropped
//! with the run, which rolls back a transaction left open, unless the
//! component opted into reuse and the run ended well (see [`crate::reuse`]).

use std::time::Instant;

use wasmtime::component::Resource;
use wasmtime::{AsContextMut, Store};
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::handler::{Prepared, Proxy};
use wasmtime_wasi_http::p2::bindings::http::types::{IncomingRequest, ResponseOutparam};
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode as P3ErrorCode;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpView};
use wharf_bindings::job_handler::Job;

use crate::guest_output::GuestOutput;
use crate::limits::{self, DeadlineExceeded, InstanceLimiter, MemoryCapExceeded};
use crate::registry::LoadedComponent;
use crate::reuse::Instance;
use crate::state::RequestState;
use wharf_auth::AuthCtx;
use wharf_config_log::config::ConfigCtx;
use wharf_config_log::log::LogCtx;
use wharf_queue::QueueCtx;
use wharf_spec::manifest::ComponentSpec;
use wharf_store::{ResultCaps, StoreCtx};

/// Builds the store an instance of `component` runs in; `depth` counts the
/// in-process calls that led to it (0 for a client's request or a job).
pub fn new_store(component: &LoadedComponent, depth: u8) -> Store<RequestState> {
    let spec = &component.spec;
    let state = RequestState {
        table: Default::default(),
        wasi: wasi_ctx(spec),
        http: WasiHttpCtx::new(),
        outbound: component.outbound.for_depth(depth),
        limiter: InstanceLimiter::new(spec.limits.memory),
        config: ConfigCtx::new(spec.config.clone()),
        log: LogCtx::new(spec.name.clone()),
        db: db_ctx(component),
        queue: queue_ctx(component),
        hub: component.hub.clone(),
        auth: auth_ctx(component),
    };
    let mut store = Store::new(component.engine(), state);
    limits::apply(&mut store, spec.limits.deadline);
    store
}

/// The instance one HTTP request runs in: with `reuse`, an idle one renewed
/// for this request when there is one; otherwise a fresh store.
pub fn instance_for(component: &LoadedComponent, depth: u8) -> Instance {
    let Some(mut instance) = component.reuse.as_ref().and_then(|pool| pool.take()) else {
        return Instance::fresh(new_store(component, depth));
    };
    // What belongs to one request starts anew: its deadline, its database
    // session (dropping the old one rolls back a transaction left open),
    // its outbound depth, its queue and auth state. The guest's memory,
    // globals and resource table carry over: that is what reuse is.
    let state = instance.store.data_mut();
    state.http = WasiHttpCtx::new();
    state.outbound = component.outbound.for_depth(depth);
    state.db = db_ctx(component);
    state.queue = queue_ctx(component);
    state.auth = auth_ctx(component);
    limits::apply(&mut instance.store, component.spec.limits.deadline);
    instance
}

/// The database session of one request, ending at its deadline.
fn db_ctx(component: &LoadedComponent) -> StoreCtx {
    let limits = &component.spec.limits;
    let caps = ResultCaps {
        rows: limits.query_rows as usize,
        bytes: usize::try_from(limits.query_bytes).unwrap_or(usize::MAX),
    };
    StoreCtx::new(component.db.clone(), caps, Some(Instant::now() + limits.deadline))
}

fn queue_ctx(component: &LoadedComponent) -> QueueCtx {
    QueueCtx::new(component.jobs_ready.clone(), component.spec.queue.max_attempts)
}

fn auth_ctx(component: &LoadedComponent) -> AuthCtx {
    let spec = &component.spec;
    AuthCtx::new(component.auth.clone(), spec.name.as_str(), spec.grants.issue_tokens.clone())
}

/// Sandboxed WASI: no environment, no arguments, no network, output to the
/// log, and only the directories of `grants.files`, read-only.
fn wasi_ctx(spec: &ComponentSpec) -> WasiCtx {
    let mut builder = WasiCtx::builder();
    builder.stdout(GuestOutput::new(spec.name.clone(), "stdout")).stderr(GuestOutput::new(spec.name.clone(), "stderr"));
    for grant in &spec.grants.files {
        // Checked at load; a directory removed since then is left out.
        if let Err(e) = builder.preopened_dir(&grant.host, &grant.guest, FsPerms::ReadOnly) {
            tracing::warn!(component = %spec.name, dir = %grant.host.display(), error = %e, "granted directory unavailable");
        }
    }
    builder.build()
}

/// How a guest run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Past its deadline (trapped by the epoch callback or timed out waiting).
    #[error("deadline exceeded")]
    Deadline,
    /// Tried to grow memory past its cap.
    #[error("memory cap exceeded")]
    Memory,
    /// Trapped for another reason (panic, unreachable, host error). Shown
    /// by its root cause; the full chain (with the wasm backtrace) is logged
    /// where the failure is handled.
    #[error("trapped: {}", .0.root_cause())]
    Trap(anyhow::Error),
    /// The job handler reported a failure of its own.
    #[error("{0}")]
    Handler(String),
    /// The job handler returned with its transaction still open.
    #[error("the handler returned with its transaction still open; it was rolled back")]
    LeftTransactionOpen,
}

/// Serves one WASIp2 request with `instance` (instantiating it first when
/// it is fresh) under the component's deadline; the response goes to the
/// outparam's receiver, possibly before the run ends (streaming). After a
/// clean run a reusable instance goes back to its pool; otherwise it is
/// dropped, which also rolls back a transaction left open.
pub async fn run_http(
    component: &LoadedComponent,
    mut instance: Instance,
    request: Resource<IncomingRequest>,
    response: Resource<ResponseOutparam>,
) -> Result<(), RunError> {
    let (store, proxy) = (&mut instance.store, &mut instance.proxy);
    let run = async {
        let Proxy::P2(proxy) = instantiated(component, store, proxy).await? else {
            wasmtime::bail!("a WASIp3 component was served as WASIp2");
        };
        proxy.wasi_http_incoming_handler().call_handle(&mut *store, request, response).await.map(Ok)
    };
    let timed = tokio::time::timeout(component.spec.limits.deadline, run).await;
    let outcome = ended(&instance.store, false, timed);
    keep_or_drop(component, instance, &outcome);
    outcome
}

/// What a WASIp3 guest answered: a response whose body it may still be
/// writing, or the error code it returned instead.
pub type P3Answer = Result<http::Response<WasiBody>, P3ErrorCode>;

/// Serves one WASIp3 request with `instance`, one at a time like p2, under
/// the component's deadline. The answer goes to `answer` as soon as the
/// guest returns it; the run goes on until the guest's last task (writing
/// the body, say) has ended. A trap before the answer drops `answer`, and
/// the returned error says why.
pub async fn run_http_p3(
    component: &LoadedComponent,
    mut instance: Instance,
    request: http::Request<WasiBody>,
    answer: tokio::sync::oneshot::Sender<P3Answer>,
) -> Result<(), RunError> {
    let (store, proxy) = (&mut instance.store, &mut instance.proxy);
    let run = async {
        let proxy = instantiated(component, store, proxy).await?;
        store
            .run_concurrent(async |accessor| {
                let (sent, received) = futures_channel::oneshot::channel();
                let prepared = accessor.with(|mut store| {
                    Prepared::new(store.as_context_mut(), proxy, request, RequestState::http, sent)
                })?;
                // The deadline is enforced from outside the event loop (below).
                prepared.run(accessor, std::future::pending()).await?;
                match received.await {
                    Ok(Ok(response)) => drop(answer.send(Ok(response))),
                    Ok(Err(error)) => match error.downcast::<P3ErrorCode>() {
                        Ok(code) => drop(answer.send(Err(code))),
                        Err(trap) => return Err(trap),
                    },
                    Err(_) => wasmtime::bail!("the guest ended without an answer"),
                }
                // The guest may still be writing the body from a task of its own.
                std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
                Ok(Ok(()))
            })
            .await?
    };
    let timed = tokio::time::timeout(component.spec.limits.deadline, run).await;
    let outcome = ended(&instance.store, false, timed);
    keep_or_drop(component, instance, &outcome);
    outcome
}

/// `instance`'s proxy, instantiating it first in its store when it is fresh.
async fn instantiated<'a>(
    component: &LoadedComponent,
    store: &mut Store<RequestState>,
    proxy: &'a mut Option<Proxy>,
) -> wasmtime::Result<&'a Proxy> {
    if proxy.is_none() {
        let started = Instant::now();
        let fresh = component.pre.instantiate_async(&mut *store).await?;
        wharf_metrics::global().instantiated(component.spec.name.as_str(), started.elapsed());
        *proxy = Some(fresh);
    }
    proxy.as_ref().ok_or_else(|| wasmtime::format_err!("no instance"))
}

/// After a clean run a reusable instance goes back to its pool; after any
/// failure it is dropped here.
fn keep_or_drop(component: &LoadedComponent, mut instance: Instance, outcome: &Result<(), RunError>) {
    let Some(pool) = &component.reuse else { return };
    match outcome {
        Ok(()) => {
            // End the request's database session now, not when the
            // instance is next used: a transaction it left open would
            // otherwise hold its locks while the instance sits idle.
            instance.store.data_mut().db = db_ctx(component);
            instance.served += 1;
            pool.give_back(instance);
        }
        Err(_) => wharf_metrics::global().instance_reuse(component.spec.name.as_str(), "failed"),
    }
}

/// Runs one job in a fresh instance of `component`'s job worker under the
/// component's deadline. Jobs never reuse instances.
pub async fn run_job(component: &LoadedComponent, mut store: Store<RequestState>, job: Job) -> Result<(), RunError> {
    let run = async {
        let Some(pre) = &component.job_worker else {
            return Ok(Err("the component no longer handles jobs".to_owned()));
        };
        let worker = pre.instantiate_async(&mut store).await?;
        worker.wharf_host_job_handler().call_handle(&mut store, &job).await
    };
    let timed = tokio::time::timeout(component.spec.limits.deadline, run).await;
    ended(&store, true, timed)
}

/// How a run ended, from its timed result and what its store recorded.
fn ended(
    store: &Store<RequestState>,
    is_job: bool,
    timed: Result<wasmtime::Result<Result<(), String>>, tokio::time::error::Elapsed>,
) -> Result<(), RunError> {
    match timed {
        Err(_elapsed) => Err(RunError::Deadline),
        Ok(Err(error)) => Err(classify(error, store.data().limiter.memory_cap_hit)),
        Ok(Ok(Err(message))) => Err(RunError::Handler(message)),
        Ok(Ok(Ok(()))) if is_job && store.data().db.in_transaction() => Err(RunError::LeftTransactionOpen),
        Ok(Ok(Ok(()))) => Ok(()),
    }
}

/// Tells a broken limit from an ordinary trap.
fn classify(error: wasmtime::Error, memory_cap_hit: bool) -> RunError {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        RunError::Deadline
    } else if memory_cap_hit || error.downcast_ref::<MemoryCapExceeded>().is_some() {
        RunError::Memory
    } else {
        RunError::Trap(error.into())
    }
}
