//! What the host runs: one validated component (routes, grants, limits,
//! queue, schedules and outbound settings) and the hub's WebSocket endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::interface::HostInterface;
use crate::name::ComponentName;
use crate::route::RouteSpec;
pub use crate::schedule::{Cron, ScheduleSpec};

/// A WebSocket endpoint of the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketSpec {
    /// Its name in the manifest.
    pub name: String,
    /// The exact path clients connect to.
    pub path: String,
    /// The topic its clients receive.
    pub topic: String,
    /// Components that may publish to the topic.
    pub publishers: BTreeSet<ComponentName>,
    /// Where `?after=ID` is answered, if anywhere.
    pub replay: Option<ReplaySpec>,
    /// Clients connected at once.
    pub max_clients: u32,
    /// Messages queued per client before it is dropped.
    pub buffer: u32,
    /// Largest message a client may send, in bytes.
    pub max_client_message: u64,
}

/// A component route answering replay requests for a WebSocket endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaySpec {
    /// The component.
    pub component: ComponentName,
    /// Its path (the host adds `?after=ID&limit=N`).
    pub path: String,
}

/// One component as the host runs it.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    /// Its name.
    pub name: ComponentName,
    /// The `.wasm` file, resolved against the manifest's directory.
    pub wasm: PathBuf,
    /// The crate it is built from, if the manifest says.
    pub source_crate: Option<String>,
    /// The paths it answers.
    pub routes: Vec<RouteSpec>,
    /// Values for `wharf:host/config`.
    pub config: Arc<BTreeMap<String, String>>,
    /// What it may use.
    pub grants: Grants,
    /// Its limits.
    pub limits: Limits,
    /// Its migrations directory, resolved against the manifest's directory.
    pub migrations: Option<PathBuf>,
    /// Its OpenAPI fragment, resolved against the manifest's directory.
    pub openapi: Option<PathBuf>,
    /// How its jobs are processed.
    pub queue: QueueSpec,
    /// Hub topics it may publish to (from `[websockets]` publishers).
    pub publish_topics: BTreeSet<String>,
    /// How its outgoing HTTP requests are sent and cached.
    pub outbound: OutboundSpec,
    /// Operator views: name → the GET path answering it.
    pub operator_views: BTreeMap<String, String>,
    /// Jobs it gets on a timetable, into its own queue.
    pub schedules: Vec<ScheduleSpec>,
    /// Instance reuse, when its author opted in; `None`: a fresh instance
    /// per request.
    pub reuse: Option<ReuseSpec>,
}

/// Timeouts and caching of one component's outgoing HTTP requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundSpec {
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Time from sending a request to its response head.
    pub first_byte_timeout: Duration,
    /// Longest pause inside a response body.
    pub between_bytes_timeout: Duration,
    /// Reuse of 2xx GET responses without `Cache-Control: max-age`; zero
    /// turns the cache off (identical requests in flight are still shared).
    pub cache_ttl: Duration,
    /// Largest response body that is cached or shared, in bytes.
    pub cache_max_entry: u64,
}

impl Default for OutboundSpec {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(5),
            between_bytes_timeout: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(60),
            cache_max_entry: 1 << 20,
        }
    }
}

impl ComponentSpec {
    /// Whether the component gets a database (it may use the store or the
    /// queue, or ships migrations).
    pub fn needs_database(&self) -> bool {
        self.migrations.is_some()
            || self.grants.interfaces.contains(&HostInterface::Store)
            || self.grants.interfaces.contains(&HostInterface::Queue)
    }
}

/// Opt-in instance reuse (`reuse` in the manifest): what an instance may
/// carry from one request to the next is the author's choice, not the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReuseSpec {
    /// Requests one instance serves before it is dropped.
    pub max_requests: u32,
    /// Requests one instance serves at once (p3 only; p2 instances serve one
    /// at a time).
    pub max_concurrent: u32,
    /// How long an idle instance is kept for its next request.
    pub idle: Duration,
}

impl Default for ReuseSpec {
    /// `wasmtime serve`'s defaults: 128 requests, 16 at once, 1 s idle.
    fn default() -> Self {
        Self { max_requests: 128, max_concurrent: 16, idle: Duration::from_secs(1) }
    }
}

/// Job processing settings of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpec {
    /// Jobs run at once by one host.
    pub workers: u32,
    /// Default deliveries before a job is dead.
    pub max_attempts: u32,
    /// First retry delay (doubles per attempt, with jitter).
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How long a claimed job stays reserved; a job whose worker died runs
    /// again after this. At least the deadline, so live workers keep theirs.
    pub lease: Duration,
    /// How long done jobs are kept.
    pub retention: Duration,
}

/// What a component may use beyond the sandboxed WASI basics.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// `wharf:host` interfaces it may import.
    pub interfaces: BTreeSet<HostInterface>,
    /// Origins it may call over outbound HTTP (shared with every instance).
    pub outbound: Arc<Vec<Origin>>,
    /// Host directories it may read.
    pub files: Vec<FileGrant>,
    /// Token kinds it may sign through `wharf:host/auth` (none: verify only).
    pub issue_tokens: Arc<BTreeSet<String>>,
}

/// A host directory a component may read (never write), and where it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    /// The absolute path inside the component, e.g. `/data`.
    pub guest: String,
    /// The directory on the host, resolved against the manifest's directory.
    pub host: PathBuf,
}

/// An outbound origin: scheme, host and port (`None` = the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal, lowercase.
    pub host: String,
    /// Port, when the manifest names one.
    pub port: Option<u16>,
}

impl Origin {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let uri: http::Uri =
            text.parse().map_err(|_| format!("`{text}` is not an origin like `https://api.example.com:8443`"))?;
        let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("`{text}` must start with `http://` or `https://`"));
        }
        let Some(host) = uri.host() else {
            return Err(format!("`{text}` names no host"));
        };
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(format!("`{text}` must be an origin without a path"));
        }
        Ok(Self { scheme, host: host.to_ascii_lowercase(), port: uri.port_u16() })
    }

    /// The port requests to this origin use.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.effective_port())
    }
}

/// Resource limits of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline per request.
    pub deadline: Duration,
    /// Linear memory cap per instance, in bytes.
    pub memory: u64,
    /// Instances running at once; more requests get 503.
    pub max_instances: u32,
    /// Default request body cap, in bytes.
    pub max_body: u64,
    /// Most rows one store query may return.
    pub query_rows: u32,
    /// Most bytes one store query may return.
    pub query_bytes: u64,
    /// Connections its database pool may open (requests and workers share them).
    pub db_connections: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            memory: 64 << 20,
            max_instances: 100,
            max_body: 1 << 20,
            query_rows: 10_000,
            query_bytes: 16 << 20,
            db_connections: 16,
        }
    }
}

/// The most memory one instance may be granted (the pooling allocator
/// reserves this much address space per slot).
pub const MAX_MEMORY_LIMIT: u64 = 1 << 30;
