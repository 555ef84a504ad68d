//! The guest side of `wharf:host`: bindings generated from `wit/` once, so
//! every component crate depends on this instead of running `wit-bindgen`
//! itself. A component only imports the interfaces whose functions it calls;
//! unused ones are dropped when the component is linked, so depending on
//! this crate asks for nothing the code does not use.
//!
//! HTTP itself is plain `wasi:http` (use the `wstd` crate). Feature `reply`
//! adds the one way components answer ([`reply`]) and read requests
//! ([`request`]); feature `url` the escaping of outbound path segments.

#![deny(missing_docs)]

/// What `wit-bindgen` generates (undocumented, with the `unsafe` glue of the
/// canonical ABI); the interfaces are re-exported below.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, unreachable_pub)]
pub mod generated {
    #[cfg(not(feature = "jobs"))]
    wit_bindgen::generate!({
        path: "../wit",
        world: "wharf:host/imports",
    });

    // With `jobs`, the world also exports `job-handler`: implement
    // `wharf_guest::job_handler::Guest` and call `wharf_guest::export_job_handler!(T)`.
    #[cfg(feature = "jobs")]
    wit_bindgen::generate!({
        path: "../wit",
        world: "wharf:host/job-worker",
        pub_export_macro: true,
        export_macro_name: "export_job_handler",
        default_bindings_module: "wharf_guest::generated",
    });
}

pub use generated::wharf::host::{auth, config, hub, log, queue, store};

#[cfg(feature = "jobs")]
pub use generated::export_job_handler;
#[cfg(feature = "jobs")]
pub use generated::exports::wharf::host::job_handler;

#[cfg(feature = "reply")]
pub mod reply;
#[cfg(feature = "reply")]
pub mod request;
#[cfg(feature = "url")]
pub mod url;

/// Logs a formatted line at `info` through `wharf:host/log`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, &format!($($arg)*)) };
}

/// Logs a formatted line at `warn` through `wharf:host/log`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, &format!($($arg)*)) };
}

/// Logs a formatted line at `error` through `wharf:host/log`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, &format!($($arg)*)) };
}
