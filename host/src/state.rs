//! The data of one request's `Store`: one field per capability, nothing
//! else. Built fresh for every request (and every job) and dropped with it,
//! so nothing leaks from one request to the next.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::capability::auth::AuthCtx;
use crate::capability::config::ConfigCtx;
use crate::capability::log::LogCtx;
use crate::hub::HubCtx;
use crate::limits::InstanceLimiter;
use crate::outbound::OutboundHooks;
use crate::queue::QueueCtx;
use crate::store::StoreCtx;

/// Store data of one component instance.
pub struct RequestState {
    /// Resources handed to the guest (WASI and wasi:http handles).
    pub(crate) table: ResourceTable,
    /// Sandboxed WASI: no preopens, no environment, no network.
    pub(crate) wasi: WasiCtx,
    /// wasi:http state.
    pub(crate) http: WasiHttpCtx,
    /// Outbound HTTP policy (allow-list).
    pub(crate) outbound: OutboundHooks,
    /// Memory and table caps.
    pub(crate) limiter: InstanceLimiter,
    /// `wharf:host/config`.
    pub(crate) config: ConfigCtx,
    /// `wharf:host/log`.
    pub(crate) log: LogCtx,
    /// `wharf:host/store`.
    pub(crate) store: StoreCtx,
    /// `wharf:host/queue`.
    pub(crate) queue: QueueCtx,
    /// `wharf:host/hub`.
    pub(crate) hub: HubCtx,
    /// `wharf:host/auth`.
    pub(crate) auth: AuthCtx,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}
