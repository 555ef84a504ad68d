//! The manifest exactly as written in `components.toml`: serde structs that
//! mirror the TOML, with no meaning attached yet. `super::resolve` turns them
//! into the validated [`super::Manifest`] the host runs from.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    /// Limits every component starts from; each component may override them.
    ///
    /// ```toml
    /// [defaults.limits]
    /// deadline = "10s"
    /// ```
    #[serde(default)]
    pub(crate) defaults: RawDefaults,

    /// The components, keyed by name.
    ///
    /// ```toml
    /// [components.hello]
    /// wasm = "target/wasm32-wasip2/release/hello.wasm"
    /// ```
    #[serde(default)]
    pub(crate) components: BTreeMap<String, RawComponent>,

    /// WebSocket endpoints served by the hub, keyed by name.
    ///
    /// ```toml
    /// [websockets.email]
    /// path = "/ws/email/"
    /// topic = "email"
    /// publishers = ["mandrill"]
    /// ```
    #[serde(default)]
    pub(crate) websockets: BTreeMap<String, RawWebSocket>,
}

/// One `[websockets.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebSocket {
    /// The exact path clients connect to: `path = "/ws/email/"`.
    pub(crate) path: String,
    /// The hub topic its clients receive: `topic = "email"`.
    pub(crate) topic: String,
    /// Components allowed to publish to the topic: `publishers = ["mandrill"]`.
    #[serde(default)]
    pub(crate) publishers: Vec<String>,
    /// Where a reconnecting client's `?after=ID` is answered:
    /// `replay = { component = "mandrill", path = "/api/events/_replay" }`.
    #[serde(default)]
    pub(crate) replay: Option<RawReplay>,
    /// Clients connected at once: `max_clients = 10000`.
    pub(crate) max_clients: Option<u32>,
    /// Messages queued per client before it is dropped as too slow (default
    /// 4096: a whole 1000-event batch fits twice): `buffer = 4096`.
    pub(crate) buffer: Option<u32>,
    /// Largest message a client may send: `max_client_message = "64KiB"`.
    pub(crate) max_client_message: Option<RawSize>,
}

/// `replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReplay {
    pub(crate) component: String,
    pub(crate) path: String,
}

/// `[defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    #[serde(default)]
    pub(crate) limits: RawLimits,
}

/// One `[components.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawComponent {
    /// The compiled component, relative to the manifest's directory.
    ///
    /// `wasm = "target/wasm32-wasip2/release/hello.wasm"`
    pub(crate) wasm: String,

    /// The crate it is built from (informational; shown to operators).
    ///
    /// `crate = "components/hello"`
    #[serde(default, rename = "crate")]
    pub(crate) source_crate: Option<String>,

    /// The paths this component answers.
    ///
    /// `routes = [{ path = "/hello/*", methods = ["GET"] }]`
    #[serde(default)]
    pub(crate) routes: Vec<RawRoute>,

    /// Strings the component reads through `wharf:host/config`.
    ///
    /// ```toml
    /// [components.hello.config]
    /// greeting = "Hello"
    /// ```
    #[serde(default)]
    pub(crate) config: BTreeMap<String, String>,

    /// What the component may use.
    ///
    /// `grants = { interfaces = ["config", "log"], outbound = ["http://127.0.0.1:9000"] }`
    #[serde(default)]
    pub(crate) grants: RawGrants,

    /// Overrides of `[defaults.limits]`.
    ///
    /// `limits = { deadline = "2s", memory = "32MiB" }`
    #[serde(default)]
    pub(crate) limits: RawLimits,

    /// The component's OpenAPI 3.1 fragment (JSON), merged into `/openapi.json`.
    ///
    /// `openapi = "components/eye/openapi.json"`
    #[serde(default)]
    pub(crate) openapi: Option<String>,

    /// Directory of the component's SQL migrations, relative to the manifest.
    ///
    /// `migrations = "components/eye/migrations"`
    #[serde(default)]
    pub(crate) migrations: Option<String>,

    /// How the component's jobs are processed.
    ///
    /// `queue = { workers = 2, max_attempts = 5, backoff = "1s", max_backoff = "5m" }`
    #[serde(default)]
    pub(crate) queue: RawQueue,

    /// Views operators read through the operator API, by name: each is a
    /// GET path the host calls on the component in-process (keep it off the
    /// component's public routes).
    ///
    /// `operator_views = { unpublished = "/v1/_ops/unpublished" }`
    #[serde(default)]
    pub(crate) operator_views: BTreeMap<String, String>,

    /// Timeouts and caching of its outgoing HTTP requests.
    ///
    /// `outbound = { first_byte_timeout = "2s", cache_ttl = "60s" }`
    #[serde(default)]
    pub(crate) outbound: RawOutbound,

    /// Jobs enqueued into the component's own queue at each due time of a
    /// cron expression (UTC; 5 fields, or 6 with seconds first). The job's
    /// queue is the schedule's name.
    ///
    /// `schedules = [{ name = "digest", cron = "0 * * * *", payload = "{}" }]`
    #[serde(default)]
    pub(crate) schedules: Vec<RawSchedule>,

    /// Opt-in instance reuse: an instance serves up to `max_requests`
    /// requests and is dropped after `idle` without one. Left out, every
    /// request gets a fresh instance.
    ///
    /// `reuse = { max_requests = 128, max_concurrent = 16, idle = "1s" }`
    #[serde(default)]
    pub(crate) reuse: Option<RawReuse>,
}

/// `reuse`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReuse {
    /// Requests one instance serves before it is dropped: `max_requests = 128`.
    pub(crate) max_requests: Option<u32>,
    /// Requests one instance serves at once (p3; a p2 instance serves one at
    /// a time): `max_concurrent = 16`.
    pub(crate) max_concurrent: Option<u32>,
    /// How long an instance waits for its next request: `idle = "1s"`.
    pub(crate) idle: Option<String>,
}

/// One entry of `schedules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    /// Unique within the component (a-z, 0-9, `-`, `_`): `name = "digest"`.
    pub(crate) name: String,
    /// When it comes due, in UTC: `cron = "0 * * * *"` or, with seconds, `cron = "*/10 * * * * *"`.
    pub(crate) cron: String,
    /// What each tick's job carries (empty when left out): `payload = "{}"`.
    #[serde(default)]
    pub(crate) payload: String,
}

/// `queue`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    /// Jobs processed at once by this host: `workers = 2`.
    pub(crate) workers: Option<u32>,
    /// Deliveries before a job is dead, unless enqueue says: `max_attempts = 5`.
    pub(crate) max_attempts: Option<u32>,
    /// Delay before the first retry; doubles each time: `backoff = "1s"`.
    pub(crate) backoff: Option<String>,
    /// Longest delay between retries: `max_backoff = "5m"`.
    pub(crate) max_backoff: Option<String>,
    /// How long a claimed job is reserved for its worker: `lease = "30s"`.
    pub(crate) lease: Option<String>,
    /// How long finished (done) jobs are kept before pruning: `retention = "24h"`.
    /// Dead jobs are kept until an operator removes them.
    pub(crate) retention: Option<String>,
}

/// One entry of `routes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    /// An exact path (`"/"`) or a prefix ending in `/*` (`"/api/events/*"`).
    pub(crate) path: String,
    /// Allowed methods; every method when absent. `methods = ["GET", "POST"]`
    #[serde(default)]
    pub(crate) methods: Option<Vec<String>>,
    /// Request body cap for this route, overriding `limits.max_body`.
    /// `max_body = "20MiB"`
    #[serde(default)]
    pub(crate) max_body: Option<RawSize>,
    /// The `error.code` of this route's 413, when the feature names one:
    /// `too_large_code = "batch_too_large"`.
    #[serde(default)]
    pub(crate) too_large_code: Option<String>,
    /// Requests per client address: `rate_limit = { requests = 10, per = "1m", burst = 5 }`
    /// (`burst` defaults to `requests`). Over it: 429 with `Retry-After`.
    #[serde(default)]
    pub(crate) rate_limit: Option<RawRateLimit>,
}

/// A route's `rate_limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub(crate) requests: u32,
    pub(crate) per: String,
    #[serde(default)]
    pub(crate) burst: Option<u32>,
}

/// `grants`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrants {
    /// `wharf:host` interfaces by short name: `interfaces = ["config", "log"]`.
    #[serde(default)]
    pub(crate) interfaces: Vec<String>,
    /// Origins the component may call through `wasi:http/outgoing-handler`:
    /// `outbound = ["http://127.0.0.1:9000", "https://api.example.com"]`.
    #[serde(default)]
    pub(crate) outbound: Vec<String>,
    /// Host directories the component may read, by the path it sees them at:
    /// `files = { "/data" = "components/acme-data/data" }` (read-only).
    #[serde(default)]
    pub(crate) files: BTreeMap<String, String>,
    /// What the component may do with `wharf:host/auth`:
    /// `auth = { issue = ["access", "refresh"] }`; without it, verify only.
    #[serde(default)]
    pub(crate) auth: RawAuthGrant,
}

/// `grants.auth`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthGrant {
    /// Token kinds the component may sign.
    #[serde(default)]
    pub(crate) issue: Vec<String>,
}

/// `outbound`: how the host sends the component's outgoing HTTP requests.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutbound {
    /// Time to open the connection: `connect_timeout = "5s"`.
    pub(crate) connect_timeout: Option<String>,
    /// Time from sending the request to the response head: `first_byte_timeout = "5s"`.
    pub(crate) first_byte_timeout: Option<String>,
    /// Longest pause inside the response body: `between_bytes_timeout = "5s"`.
    pub(crate) between_bytes_timeout: Option<String>,
    /// How long a 2xx GET response is reused when it carries no
    /// `Cache-Control: max-age`; `"0s"` turns the cache off: `cache_ttl = "60s"`.
    pub(crate) cache_ttl: Option<String>,
    /// Largest response body the cache keeps: `cache_max_entry = "1MiB"`.
    pub(crate) cache_max_entry: Option<RawSize>,
}

/// `limits` (all optional; unset fields fall back to the defaults).
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    /// Wall-clock time a request may take: `deadline = "5s"`.
    pub(crate) deadline: Option<String>,
    /// Linear memory cap per instance: `memory = "64MiB"`.
    pub(crate) memory: Option<RawSize>,
    /// Instances of this component running at once: `max_instances = 64`.
    pub(crate) max_instances: Option<u32>,
    /// Request body cap: `max_body = "1MiB"`.
    pub(crate) max_body: Option<RawSize>,
    /// Most rows one store query may return: `query_rows = 10000`.
    pub(crate) query_rows: Option<u32>,
    /// Most bytes one store query may return: `query_bytes = "16MiB"`.
    pub(crate) query_bytes: Option<RawSize>,
    /// Database connections this component's pool may open: `db_connections = 16`.
    pub(crate) db_connections: Option<u32>,
}

/// A size written as a number of bytes (`1048576`) or with a unit (`"1MiB"`).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub(crate) enum RawSize {
    Bytes(u64),
    Text(String),
}
