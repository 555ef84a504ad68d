//! Host-side bindings of the `wharf:host` WIT package, generated once for the
//! whole house (as spin-world does for Spin): every capability crate
//! implements its interface's `Host` trait on these types, so a `Value` of
//! `wharf:host/store` is the same Rust type in the store, queue and runtime.
//!
//! The world struct the macro generates is re-exported only as
//! [`JobWorkerPre`], so `Host` here always means an interface's trait.

#![deny(missing_docs)]

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "wharf:host/host",
        imports: {
            "wharf:host/store": async,
            "wharf:host/queue": async,
            "wharf:host/hub": async,
            "wharf:host/auth": async | trappable,
        },
        exports: { default: async },
    });
}

/// A component pre-instantiated for the queue's `job-handler` export.
pub use generated::Host_Pre as JobWorkerPre;
pub use generated::exports::wharf::host::job_handler;
pub use generated::wharf::host::*;
