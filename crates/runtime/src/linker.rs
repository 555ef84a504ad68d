//! The linker every component is instantiated with: sandboxed WASI (0.2
//! and 0.3), `wasi:http` (0.2 and 0.3) through the outbound hooks, and every `wharf:host`
//! capability. Adding a capability is one line here (and a field in
//! [`RequestState`]); whether a component may actually import an interface
//! is decided at load time by [`crate::grants`].

use wasmtime::component::Linker;
use wasmtime_wasi_http::WasiHttpView;
use wharf_hub::HubView;
use wharf_queue::QueueView;

use crate::state::RequestState;

/// Adds WASI, `wasi:http` and every `wharf:host` interface to `linker`.
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wharf_outbound::add_to_linker(linker, |state| state.http())?;
    // WASIp3 beside p2 (the names differ by version): a p3 component built
    // with Rust std imports both. Never sockets.
    wasmtime_wasi::p3::cli::add_to_linker(linker)?;
    wasmtime_wasi::p3::clocks::add_to_linker(linker)?;
    wasmtime_wasi::p3::random::add_to_linker(linker)?;
    wasmtime_wasi::p3::filesystem::add_to_linker(linker)?;
    wasmtime_wasi_http::p3::add_to_linker(linker)?;
    wharf_config_log::config::add_to_linker(linker, |state| &mut state.config)?;
    wharf_config_log::log::add_to_linker(linker, |state| &mut state.log)?;
    wharf_store::add_to_linker(linker, |state| &mut state.db)?;
    wharf_queue::add_to_linker(linker, |state| QueueView::new(&mut state.db, &state.queue))?;
    wharf_hub::add_to_linker(linker, |state| HubView::new(&state.hub, &mut state.db))?;
    wharf_auth::add_to_linker(linker, |state| &mut state.auth)?;
    Ok(())
}
