//! Host-side bindings generated from `wit/` (kept private: the capability
//! modules re-export what they implement).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wharf:host/imports",
});

pub(crate) use self::wharf::host::*;
