//! Route patterns as a manifest writes them (`/`, `/api/events/*`), one
//! component route with its caps, and the paths the host keeps for itself.

use std::collections::BTreeSet;
use std::time::Duration;

/// Paths the host answers itself, before any component route.
pub const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz", "/openapi.json", "/docs"];

/// A route's path: exact (`/`) or a prefix (`/api/events/*`, which matches
/// `/api/events` and everything below `/api/events/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoutePattern {
    /// Matches this path only.
    Exact(String),
    /// Matches this path (without trailing slash) and everything below it.
    Prefix(String),
}

impl RoutePattern {
    /// Parses the manifest's `path` syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("`{text}` must start with `/`"));
        }
        if text.contains(['?', '#']) || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("`{text}` must be a plain path, without query, fragment or spaces"));
        }
        let pattern = match text.strip_suffix("/*") {
            Some(base) if !base.contains('*') => Self::Prefix(base.to_owned()),
            _ if text.contains('*') => {
                return Err(format!("`{text}`: `*` is only allowed as a final `/*` (a prefix route)"));
            }
            _ => Self::Exact(text.to_owned()),
        };
        if RESERVED_PATHS.iter().any(|reserved| pattern.is_within(reserved)) {
            return Err(format!("`{text}` is reserved by the host ({})", RESERVED_PATHS.join(", ")));
        }
        Ok(pattern)
    }

    /// Whether `path` is served by this pattern.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => p == path,
            Self::Prefix(base) => {
                path == base || path.strip_prefix(base.as_str()).is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }

    /// Whether every path this pattern matches is also matched by a prefix
    /// rooted at `path`, i.e. the pattern lies inside `path`'s subtree.
    fn is_within(&self, path: &str) -> bool {
        Self::Prefix(path.trim_end_matches('/').to_owned()).matches(self.root())
    }

    pub(crate) fn root(&self) -> &str {
        match self {
            Self::Exact(p) | Self::Prefix(p) => p,
        }
    }

    /// Whether some path is matched by both patterns.
    pub(crate) fn overlaps(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Exact(a), prefix @ Self::Prefix(_)) | (prefix @ Self::Prefix(_), Self::Exact(a)) => {
                prefix.matches(a)
            }
            (Self::Prefix(a), Self::Prefix(b)) => self.matches(b) || other.matches(a),
        }
    }
}

impl std::fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(p) => f.write_str(p),
            Self::Prefix(p) => write!(f, "{p}/*"),
        }
    }
}

/// One route of a component.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// The path pattern.
    pub pattern: RoutePattern,
    /// Allowed methods; `None` allows every method.
    pub methods: Option<BTreeSet<http::Method>>,
    /// Body cap for requests on this route.
    pub max_body: u64,
    /// `error.code` of a 413 on this route (default `body_too_large`).
    pub too_large_code: Option<String>,
    /// Requests per client address, if the route is rate limited.
    pub rate_limit: Option<RateLimit>,
}

/// A token bucket per client address: `requests` per `per`, and up to
/// `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Requests refilled per period.
    pub requests: std::num::NonZeroU32,
    /// The period.
    pub per: Duration,
    /// Bucket size.
    pub burst: std::num::NonZeroU32,
}
