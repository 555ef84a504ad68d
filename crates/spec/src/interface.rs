//! The `wharf:host` interfaces a manifest can grant, by name.

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
