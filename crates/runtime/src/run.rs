//! Running a guest, the same way for a client's request, an in-process
//! call and a job: a fresh store (every capability's context, sandboxed
//! WASI, the limits) → instantiate from the pre-instance → call the entry
//! point under the component's deadline → say how it ended. The store is
//! dropped with the run, which rolls back a transaction left open.

use std::time::Instant;

use wasmtime::Store;
use wasmtime::component::Resource;
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p2::bindings::http::types::{IncomingRequest, ResponseOutparam};
use wharf_bindings::job_handler::Job;

use crate::guest_output::GuestOutput;
use crate::limits::{self, DeadlineExceeded, InstanceLimiter, MemoryCapExceeded};
use crate::registry::LoadedComponent;
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
    let caps = ResultCaps {
        rows: spec.limits.query_rows as usize,
        bytes: usize::try_from(spec.limits.query_bytes).unwrap_or(usize::MAX),
    };
    let state = RequestState {
        table: Default::default(),
        wasi: wasi_ctx(spec),
        http: WasiHttpCtx::new(),
        outbound: component.outbound.for_depth(depth),
        limiter: InstanceLimiter::new(spec.limits.memory),
        config: ConfigCtx::new(spec.config.clone()),
        log: LogCtx::new(spec.name.clone()),
        db: StoreCtx::new(component.db.clone(), caps, Some(Instant::now() + spec.limits.deadline)),
        queue: QueueCtx::new(component.jobs_ready.clone(), spec.queue.max_attempts),
        hub: component.hub.clone(),
        auth: AuthCtx::new(component.auth.clone(), spec.name.as_str(), spec.grants.issue_tokens.clone()),
    };
    let mut store = Store::new(component.pre.engine(), state);
    limits::apply(&mut store, spec.limits.deadline);
    store
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

/// Where a guest is entered.
pub enum Entry {
    /// `wasi:http/incoming-handler.handle`: the response goes to the
    /// outparam's receiver, possibly before the run ends (streaming).
    Http {
        /// The request, as a resource of the store it was made in.
        request: Resource<IncomingRequest>,
        /// Where the guest sets its response.
        response: Resource<ResponseOutparam>,
    },
    /// `wharf:host/job-handler.handle`.
    Job(Job),
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

/// Instantiates `component` in `store` and calls `entry` under the
/// component's deadline. The store is dropped before this returns.
pub async fn run_guest(
    component: &LoadedComponent,
    mut store: Store<RequestState>,
    entry: Entry,
) -> Result<(), RunError> {
    let is_job = matches!(entry, Entry::Job(_));
    let run = async {
        match entry {
            Entry::Http { request, response } => {
                let started = Instant::now();
                let proxy = component.pre.instantiate_async(&mut store).await?;
                wharf_metrics::global().instantiated(component.spec.name.as_str(), started.elapsed());
                proxy.wasi_http_incoming_handler().call_handle(&mut store, request, response).await.map(Ok)
            }
            Entry::Job(job) => {
                let Some(pre) = &component.job_worker else {
                    return Ok(Err("the component no longer handles jobs".to_owned()));
                };
                let worker = pre.instantiate_async(&mut store).await?;
                worker.wharf_host_job_handler().call_handle(&mut store, &job).await
            }
        }
    };
    match tokio::time::timeout(component.spec.limits.deadline, run).await {
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
