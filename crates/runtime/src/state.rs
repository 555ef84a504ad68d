//! The data of one request's `Store`: one field per capability, nothing
//! else. Built fresh for every request (and every job) and dropped with it,
//! so nothing leaks from one request to the next.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::limits::InstanceLimiter;
use wharf_auth::AuthCtx;
use wharf_config_log::config::ConfigCtx;
use wharf_config_log::log::LogCtx;
use wharf_hub::HubCtx;
use wharf_outbound::OutboundHooks;
use wharf_queue::QueueCtx;
use wharf_store::StoreCtx;

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
    /// `wharf:host/store` (named `db` so that `store.data().db` reads as
    /// the request's database, not the wasmtime store).
    pub(crate) db: StoreCtx,
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
