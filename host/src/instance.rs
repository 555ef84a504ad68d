//! A fresh store for one request or one job: every capability's context,
//! the sandboxed WASI context and the limits, built from a loaded component.

use std::time::Instant;

use wasmtime::Store;
use wasmtime_wasi::{FsPerms, WasiCtx};
use wasmtime_wasi_http::WasiHttpCtx;

use crate::capability::auth::AuthCtx;
use crate::capability::config::ConfigCtx;
use crate::capability::log::LogCtx;
use crate::guest_output::GuestOutput;
use crate::limits::{self, InstanceLimiter};
use crate::manifest::ComponentSpec;
use crate::queue::QueueCtx;
use crate::registry::LoadedComponent;
use crate::state::RequestState;
use crate::store::{ResultCaps, StoreCtx};

/// Builds the store an instance of `component` runs in.
pub fn new_store(component: &LoadedComponent) -> Store<RequestState> {
    let spec = &component.spec;
    let caps = ResultCaps {
        rows: spec.limits.query_rows as usize,
        bytes: usize::try_from(spec.limits.query_bytes).unwrap_or(usize::MAX),
    };
    let state = RequestState {
        table: Default::default(),
        wasi: wasi_ctx(spec),
        http: WasiHttpCtx::new(),
        outbound: component.outbound.clone(),
        limiter: InstanceLimiter::new(spec.limits.memory),
        config: ConfigCtx::new(spec.config.clone()),
        log: LogCtx::new(spec.name.clone()),
        store: StoreCtx::new(component.db.clone(), caps, Some(Instant::now() + spec.limits.deadline)),
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
