//! Two small `wharf:host` capabilities: [`config`] (the component's config
//! table from the manifest, read-only) and [`log`] (guest log lines into
//! the host's `tracing`). Each has a context, a view and a generic
//! `add_to_linker`.

#![deny(missing_docs)]

pub mod config;
pub mod log;
