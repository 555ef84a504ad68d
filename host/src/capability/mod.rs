//! The `wharf:host` capabilities a component can be granted. Each interface
//! is one module here implementing one generated WIT `Host` trait on a small
//! context that lives in the per-request store data ([`crate::state`]).

pub mod auth;
mod bindings;
pub mod config;
pub mod fair_slots;
pub mod log;

pub(crate) use bindings::{Host_Pre as JobWorkerPre, hub, job_handler, queue, store};

use wasmtime::component::Linker;

use crate::state::RequestState;

/// A `wharf:host` interface, as named in a manifest's `grants.interfaces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostInterface {
    /// `wharf:host/config`: read the component's config strings.
    Config,
    /// `wharf:host/log`: write log lines.
    Log,
    /// `wharf:host/store`: SQL on the component's own database.
    Store,
    /// `wharf:host/queue`: durable jobs.
    Queue,
    /// `wharf:host/hub`: publish to WebSocket clients.
    Hub,
    /// `wharf:host/auth`: password hashing and tokens.
    Auth,
}

impl HostInterface {
    /// Every interface this host provides.
    pub const ALL: &'static [HostInterface] =
        &[Self::Config, Self::Log, Self::Store, Self::Queue, Self::Hub, Self::Auth];

    /// The short name used in grants and in the WIT interface name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Log => "log",
            Self::Store => "store",
            Self::Queue => "queue",
            Self::Hub => "hub",
            Self::Auth => "auth",
        }
    }

    /// Parses a grant (`"config"`).
    pub fn from_grant(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|i| i.name() == name)
    }

    /// Recognises a component import such as `wharf:host/config@0.1.0`.
    /// Returns `Some(Err(name))` for a `wharf:host` interface this host does
    /// not know, `None` for imports outside the package.
    pub fn from_import(import: &str) -> Option<Result<Self, String>> {
        let rest = import.strip_prefix("wharf:host/")?;
        let name = rest.split('@').next().unwrap_or(rest);
        Some(Self::from_grant(name).ok_or_else(|| name.to_owned()))
    }
}

/// Adds every `wharf:host` interface to `linker`. Whether a component may
/// actually import one is decided at load time by [`crate::grants`].
pub fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    config::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    crate::store::add_to_linker(linker)?;
    crate::queue::add_to_linker(linker)?;
    crate::hub::add_to_linker(linker)?;
    auth::add_to_linker(linker)?;
    Ok(())
}
