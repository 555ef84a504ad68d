//! Host-side bindings generated from `wit/` (kept private: the capability
//! modules use what they implement through `capability::*` re-exports).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wharf:host/host",
    imports: {
        "wharf:host/store": async,
        "wharf:host/queue": async,
        "wharf:host/hub": async,
        "wharf:host/auth": async | trappable,
    },
    exports: { default: async },
});

pub(crate) use self::exports::wharf::host::job_handler;
pub(crate) use self::wharf::host::*;
