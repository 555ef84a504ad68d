//! `components.toml`: what a host loads. Parsing ([`raw`]) is kept apart from
//! validation (this module): [`Manifest::load`] returns either a manifest the
//! host can run from without further checks, or an error naming the file, the
//! component and the field.

mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::component::*;
pub use crate::interface::HostInterface;
pub use crate::name::ComponentName;
use crate::route::RoutePattern;
pub use crate::route::{RateLimit, RouteSpec};
use crate::router::RouteTable;
use raw::{RawComponent, RawLimits, RawManifest, RawOutbound, RawQueue, RawReuse, RawSize, RawWebSocket};

/// A manifest that failed to load or validate.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest `{file}`: {source}")]
    Read {
        /// The manifest path.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{file}: {message}")]
    Syntax {
        /// The manifest path.
        file: PathBuf,
        /// What the TOML parser said, with line and column.
        message: String,
    },
    /// A field holds a value the host cannot run with.
    #[error("{file}: component `{component}`: field `{field}`: {message}")]
    Invalid {
        /// The manifest path.
        file: PathBuf,
        /// The component whose entry is wrong (`defaults` for `[defaults]`).
        component: String,
        /// The field, as a dotted TOML path inside the component's table.
        field: String,
        /// What is wrong, in a sentence.
        message: String,
    },
}

/// The validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it was read from.
    pub path: PathBuf,
    /// Every component, by name.
    pub components: BTreeMap<ComponentName, ComponentSpec>,
    /// WebSocket endpoints, by path.
    pub websockets: Vec<WebSocketSpec>,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ManifestError::Read { file: path.to_owned(), source })?;
        Self::parse(path, &text)
    }

    /// Validates manifest `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Syntax {
            file: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let invalid = |component: &str, field: &str, message: String| ManifestError::Invalid {
            file: path.to_owned(),
            component: component.to_owned(),
            field: field.to_owned(),
            message,
        };

        let defaults = resolve_limits(&raw.defaults.limits, Limits::default())
            .map_err(|(field, message)| invalid("defaults", &format!("limits.{field}"), message))?;

        let mut components = BTreeMap::new();
        for (name, raw_component) in &raw.components {
            let spec = resolve_component(name, raw_component, defaults, base_dir)
                .map_err(|(field, message)| invalid(name, &field, message))?;
            components.insert(spec.name.clone(), spec);
        }

        let mut websockets = Vec::new();
        for (name, raw_ws) in &raw.websockets {
            let section = format!("websockets.{name}");
            let ws = resolve_websocket(name, raw_ws, &mut components)
                .map_err(|(field, message)| invalid(&section, &field, message))?;
            if let Some(other) = websockets.iter().find(|w: &&WebSocketSpec| w.path == ws.path) {
                let message = format!("`{}` is also the path of websocket `{}`", ws.path, other.name);
                return Err(invalid(&section, "path", message));
            }
            websockets.push(ws);
        }

        let manifest = Self { path: path.to_owned(), components, websockets };
        // Building the table is what finds overlaps between components.
        RouteTable::build(manifest.components.values(), &manifest.websockets)
            .map_err(|overlap| invalid(overlap.component.as_str(), &overlap.field, overlap.message))?;
        Ok(manifest)
    }
}

type FieldError = (String, String);

fn resolve_component(
    name: &str,
    raw: &RawComponent,
    defaults: Limits,
    base_dir: &Path,
) -> Result<ComponentSpec, FieldError> {
    let name = ComponentName::parse(name).map_err(|m| ("name".to_owned(), m))?;
    if raw.wasm.trim().is_empty() {
        return Err(("wasm".into(), "must name the component's `.wasm` file".into()));
    }
    let limits = resolve_limits(&raw.limits, defaults).map_err(|(f, m)| (format!("limits.{f}"), m))?;

    if raw.routes.is_empty() {
        return Err((
            "routes".into(),
            "must list at least one route, e.g. `routes = [{ path = \"/hello/*\" }]`".into(),
        ));
    }
    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, route) in raw.routes.iter().enumerate() {
        let field = |f: &str| format!("routes[{i}].{f}");
        let pattern = RoutePattern::parse(&route.path).map_err(|m| (field("path"), m))?;
        let methods = match &route.methods {
            None => None,
            Some(list) if list.is_empty() => {
                return Err((field("methods"), "must not be empty; leave it out to allow every method".into()));
            }
            Some(list) => Some(
                list.iter()
                    .map(|m| parse_method(m))
                    .collect::<Result<BTreeSet<_>, _>>()
                    .map_err(|m| (field("methods"), m))?,
            ),
        };
        let max_body = match &route.max_body {
            Some(size) => parse_size(size).map_err(|m| (field("max_body"), m))?,
            None => limits.max_body,
        };
        let too_large_code = match &route.too_large_code {
            Some(code) if !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                Some(code.clone())
            }
            Some(_) => {
                return Err((field("too_large_code"), "must be a snake_case code like \"batch_too_large\"".into()));
            }
            None => None,
        };
        let rate_limit = match &route.rate_limit {
            None => None,
            Some(raw) => Some(parse_rate_limit(raw).map_err(|m| (field("rate_limit"), m))?),
        };
        routes.push(RouteSpec { pattern, methods, max_body, too_large_code, rate_limit });
    }

    let mut interfaces = BTreeSet::new();
    for (i, iface) in raw.grants.interfaces.iter().enumerate() {
        let parsed = HostInterface::from_grant(iface).ok_or_else(|| {
            (
                format!("grants.interfaces[{i}]"),
                format!(
                    "`{iface}` is not a wharf:host interface; known: {}",
                    HostInterface::ALL.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        interfaces.insert(parsed);
    }
    let issue_tokens: BTreeSet<String> = raw.grants.auth.issue.iter().cloned().collect();
    if !issue_tokens.is_empty() && !interfaces.contains(&HostInterface::Auth) {
        return Err(("grants.auth.issue".into(), "issuing tokens needs the `auth` interface granted too".into()));
    }
    if let Some(bad) = issue_tokens.iter().find(|k| {
        k.is_empty()
            || k.len() > 64
            || !k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    }) {
        return Err(("grants.auth.issue".into(), format!("`{bad}` is not a token kind (a-z, 0-9, `_`, `-`)")));
    }
    let origins = raw
        .grants
        .outbound
        .iter()
        .enumerate()
        .map(|(i, o)| Origin::parse(o).map_err(|m| (format!("grants.outbound[{i}]"), m)))
        .collect::<Result<Vec<_>, _>>()?;

    let files = raw
        .grants
        .files
        .iter()
        .map(|(guest, host)| {
            let field = || format!("grants.files.\"{guest}\"");
            let valid = guest.starts_with('/') && guest.len() > 1 && !guest.split('/').any(|s| s == "..");
            if !valid {
                return Err((field(), "the path the component sees must be absolute, like \"/data\"".to_owned()));
            }
            if host.trim().is_empty() {
                return Err((field(), "must name a directory on the host".to_owned()));
            }
            Ok(FileGrant { guest: guest.clone(), host: base_dir.join(host) })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let queue = resolve_queue(&raw.queue, &limits).map_err(|(f, m)| (format!("queue.{f}"), m))?;
    let outbound = resolve_outbound(&raw.outbound).map_err(|(f, m)| (format!("outbound.{f}"), m))?;
    for (view, path) in &raw.operator_views {
        let field = format!("operator_views.{view}");
        if view.is_empty()
            || !view.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err((field, "a view name uses a-z, 0-9, `-` and `_`".into()));
        }
        if !path.starts_with('/') || path.contains(char::is_whitespace) {
            return Err((field, format!("`{path}` must be a path starting with `/`")));
        }
        if routes.iter().any(|r| r.pattern.matches(path.split('?').next().unwrap_or_default())) {
            return Err((
                field,
                format!("`{path}` is one of the component's public routes; operator views must not be"),
            ));
        }
    }
    let schedules = resolve_schedules(&raw.schedules)?;
    let reuse = raw.reuse.as_ref().map(resolve_reuse).transpose().map_err(|(f, m)| (format!("reuse.{f}"), m))?;
    let spec = ComponentSpec {
        reuse,
        schedules,
        operator_views: raw.operator_views.clone(),
        outbound,
        publish_topics: BTreeSet::new(),
        migrations: raw.migrations.as_ref().map(|dir| base_dir.join(dir)),
        openapi: raw.openapi.as_ref().map(|file| base_dir.join(file)),
        queue,
        wasm: base_dir.join(&raw.wasm),
        source_crate: raw.source_crate.clone(),
        routes,
        config: Arc::new(raw.config.clone()),
        grants: Grants { interfaces, outbound: Arc::new(origins), files, issue_tokens: Arc::new(issue_tokens) },
        limits,
        name,
    };
    if !spec.schedules.is_empty() && !spec.needs_database() {
        return Err((
            "schedules".into(),
            "schedules enqueue jobs into the component's database, and it has none: grant it \"queue\" (or \"store\")"
                .into(),
        ));
    }
    Ok(spec)
}

fn resolve_schedules(raw: &[raw::RawSchedule]) -> Result<Vec<ScheduleSpec>, FieldError> {
    let mut schedules: Vec<ScheduleSpec> = Vec::with_capacity(raw.len());
    for (i, schedule) in raw.iter().enumerate() {
        let field = |f: &str| format!("schedules[{i}].{f}");
        crate::schedule::check_name(&schedule.name).map_err(|m| (field("name"), m))?;
        if schedules.iter().any(|s| s.name == schedule.name) {
            return Err((field("name"), format!("`{}` names another schedule of this component", schedule.name)));
        }
        let cron = Cron::parse(&schedule.cron).map_err(|m| (field("cron"), m))?;
        if schedule.payload.len() > crate::schedule::MAX_SCHEDULE_PAYLOAD {
            return Err((
                field("payload"),
                format!("is {} bytes; a job's payload is at most 1MiB", schedule.payload.len()),
            ));
        }
        schedules.push(ScheduleSpec { name: schedule.name.clone(), cron, payload: schedule.payload.clone() });
    }
    Ok(schedules)
}

fn parse_rate_limit(raw: &raw::RawRateLimit) -> Result<RateLimit, String> {
    let requests = std::num::NonZeroU32::new(raw.requests).ok_or("`requests` must be at least 1")?;
    let per = humantime::parse_duration(&raw.per).map_err(|e| format!("`per`: {e} (e.g. \"1m\")"))?;
    if per.is_zero() || per > Duration::from_secs(86_400) {
        return Err("`per` must be between 1ms and 24h".into());
    }
    let burst = match raw.burst {
        Some(n) => std::num::NonZeroU32::new(n).ok_or("`burst` must be at least 1")?,
        None => requests,
    };
    Ok(RateLimit { requests, per, burst })
}

fn resolve_limits(raw: &RawLimits, base: Limits) -> Result<Limits, FieldError> {
    let mut limits = base;
    if let Some(text) = &raw.deadline {
        let deadline = humantime::parse_duration(text)
            .map_err(|e| ("deadline".into(), format!("`{text}` is not a duration like \"5s\" or \"500ms\": {e}")))?;
        if deadline < Duration::from_millis(1) || deadline > Duration::from_secs(3600) {
            return Err(("deadline".into(), "must be between 1ms and 1h".into()));
        }
        limits.deadline = deadline;
    }
    if let Some(size) = &raw.memory {
        let memory = parse_size(size).map_err(|m| ("memory".to_owned(), m))?;
        if !(64 << 10..=MAX_MEMORY_LIMIT).contains(&memory) {
            return Err(("memory".into(), "must be between 64KiB and 1GiB".into()));
        }
        limits.memory = memory;
    }
    if let Some(n) = raw.max_instances {
        if !(1..=10_000).contains(&n) {
            return Err(("max_instances".into(), "must be between 1 and 10000".into()));
        }
        limits.max_instances = n;
    }
    if let Some(size) = &raw.max_body {
        limits.max_body = parse_size(size).map_err(|m| ("max_body".to_owned(), m))?;
    }
    if let Some(rows) = raw.query_rows {
        if rows == 0 {
            return Err(("query_rows".into(), "must be at least 1".into()));
        }
        limits.query_rows = rows;
    }
    if let Some(n) = raw.db_connections {
        if !(1..=500).contains(&n) {
            return Err(("db_connections".into(), "must be between 1 and 500".into()));
        }
        limits.db_connections = n;
    }
    if let Some(size) = &raw.query_bytes {
        limits.query_bytes = parse_size(size).map_err(|m| ("query_bytes".to_owned(), m))?;
    }
    Ok(limits)
}

fn resolve_websocket(
    name: &str,
    raw: &RawWebSocket,
    components: &mut BTreeMap<ComponentName, ComponentSpec>,
) -> Result<WebSocketSpec, FieldError> {
    let pattern = RoutePattern::parse(&raw.path).map_err(|m| ("path".to_owned(), m))?;
    let RoutePattern::Exact(path) = pattern else {
        return Err(("path".into(), "a WebSocket endpoint is one exact path, without `/*`".into()));
    };
    if raw.topic.is_empty() || raw.topic.len() > 128 {
        return Err(("topic".into(), "must be 1 to 128 characters".into()));
    }
    let mut publishers = BTreeSet::new();
    for (i, publisher) in raw.publishers.iter().enumerate() {
        let field = format!("publishers[{i}]");
        let name = ComponentName::parse(publisher).map_err(|m| (field.clone(), m))?;
        let Some(spec) = components.get_mut(&name) else {
            return Err((field, format!("there is no component `{publisher}`")));
        };
        if !spec.grants.interfaces.contains(&HostInterface::Hub) {
            return Err((field, format!("component `{publisher}` is not granted \"hub\"")));
        }
        spec.publish_topics.insert(raw.topic.clone());
        publishers.insert(name);
    }
    let replay = match &raw.replay {
        None => None,
        Some(r) => {
            let component = ComponentName::parse(&r.component).map_err(|m| ("replay.component".to_owned(), m))?;
            if !components.contains_key(&component) {
                return Err(("replay.component".into(), format!("there is no component `{}`", r.component)));
            }
            if !r.path.starts_with('/') {
                return Err(("replay.path".into(), "must start with `/`".into()));
            }
            Some(ReplaySpec { component, path: r.path.clone() })
        }
    };
    let max_client_message = match &raw.max_client_message {
        Some(size) => parse_size(size).map_err(|m| ("max_client_message".to_owned(), m))?,
        None => 64 << 10,
    };
    Ok(WebSocketSpec {
        name: name.to_owned(),
        path,
        topic: raw.topic.clone(),
        publishers,
        replay,
        max_clients: raw.max_clients.unwrap_or(10_000).max(1),
        buffer: raw.buffer.unwrap_or(4096).max(1),
        max_client_message,
    })
}

fn resolve_reuse(raw: &RawReuse) -> Result<ReuseSpec, FieldError> {
    let defaults = ReuseSpec::default();
    let max_requests = raw.max_requests.unwrap_or(defaults.max_requests);
    if !(1..=1_000_000).contains(&max_requests) {
        return Err(("max_requests".into(), "must be between 1 and 1000000".into()));
    }
    let max_concurrent = raw.max_concurrent.unwrap_or(defaults.max_concurrent);
    if !(1..=1024).contains(&max_concurrent) {
        return Err(("max_concurrent".into(), "must be between 1 and 1024".into()));
    }
    let idle = match &raw.idle {
        None => defaults.idle,
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| ("idle".to_owned(), format!("`{text}` is not a duration like \"1s\": {e}")))?,
    };
    if idle.is_zero() || idle > Duration::from_secs(3600) {
        return Err(("idle".into(), "must be longer than 0 and at most 1h".into()));
    }
    Ok(ReuseSpec { max_requests, max_concurrent, idle })
}

fn resolve_queue(raw: &RawQueue, limits: &Limits) -> Result<QueueSpec, FieldError> {
    let duration = |field: &str, text: &Option<String>, default: Duration| match text {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| (field.to_owned(), format!("`{text}` is not a duration like \"1s\": {e}"))),
    };
    let workers = raw.workers.unwrap_or(2);
    if !(1..=256).contains(&workers) {
        return Err(("workers".into(), "must be between 1 and 256".into()));
    }
    let max_attempts = raw.max_attempts.unwrap_or(5);
    if !(1..=100).contains(&max_attempts) {
        return Err(("max_attempts".into(), "must be between 1 and 100".into()));
    }
    let backoff = duration("backoff", &raw.backoff, Duration::from_secs(1))?;
    let max_backoff = duration("max_backoff", &raw.max_backoff, Duration::from_secs(300))?;
    if max_backoff < backoff {
        return Err(("max_backoff".into(), "must not be shorter than `backoff`".into()));
    }
    let lease = duration("lease", &raw.lease, limits.deadline + Duration::from_secs(10))?;
    if lease <= limits.deadline {
        return Err(("lease".into(), format!("must be longer than the deadline ({:?})", limits.deadline)));
    }
    let retention = duration("retention", &raw.retention, Duration::from_secs(24 * 3600))?;
    Ok(QueueSpec { workers, max_attempts, backoff, max_backoff, lease, retention })
}

fn resolve_outbound(raw: &RawOutbound) -> Result<OutboundSpec, FieldError> {
    let defaults = OutboundSpec::default();
    let duration = |field: &str, text: &Option<String>, default: Duration, min: Duration| match text {
        None => Ok(default),
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if d >= min && d <= Duration::from_secs(3600) => Ok(d),
            Ok(_) => Err((field.to_owned(), format!("must be between {} and 1h", humantime::format_duration(min)))),
            Err(e) => Err((field.to_owned(), format!("`{text}` is not a duration like \"5s\" or \"500ms\": {e}"))),
        },
    };
    let ms = Duration::from_millis(1);
    let cache_max_entry = match &raw.cache_max_entry {
        Some(size) => parse_size(size).map_err(|m| ("cache_max_entry".to_owned(), m))?,
        None => defaults.cache_max_entry,
    };
    if cache_max_entry > 64 << 20 {
        return Err(("cache_max_entry".into(), "must be at most 64MiB".into()));
    }
    Ok(OutboundSpec {
        connect_timeout: duration("connect_timeout", &raw.connect_timeout, defaults.connect_timeout, ms)?,
        first_byte_timeout: duration("first_byte_timeout", &raw.first_byte_timeout, defaults.first_byte_timeout, ms)?,
        between_bytes_timeout: duration(
            "between_bytes_timeout",
            &raw.between_bytes_timeout,
            defaults.between_bytes_timeout,
            ms,
        )?,
        cache_ttl: duration("cache_ttl", &raw.cache_ttl, defaults.cache_ttl, Duration::ZERO)?,
        cache_max_entry,
    })
}

fn parse_size(size: &RawSize) -> Result<u64, String> {
    match size {
        RawSize::Bytes(n) => Ok(*n),
        RawSize::Text(text) => text
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|_| format!("`{text}` is not a size like \"1MiB\", \"512KiB\" or a number of bytes")),
    }
}

fn parse_method(text: &str) -> Result<http::Method, String> {
    let valid = !text.is_empty() && text.chars().all(|c| c.is_ascii_uppercase());
    match http::Method::from_bytes(text.as_bytes()) {
        Ok(method) if valid => Ok(method),
        _ => Err(format!("`{text}` is not an HTTP method in upper case, like \"GET\"")),
    }
}

#[cfg(test)]
mod tests;
