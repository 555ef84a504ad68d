//! The outbound response cache with single-flight. Only plain GETs take part
//! (no declared body, no credentials, no `Cache-Control: no-cache` from the guest).
//! Identical requests of one component that overlap share one upstream call
//! (its response, or its error); a 2xx or 404 response is then kept for the
//! manifest's `cache_ttl`, or less when the upstream's `Cache-Control: max-age`
//! says so, and not at all when it says `no-store`, `no-cache` or `private`
//! or varies on everything. Keys hold the component, the URL and every request
//! header that can change the answer (all but per-request ids), so neither
//! components nor differently-authenticated callers share entries. Bounded
//! by bytes, keys included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use moka::future::Cache;
use wasmtime_wasi_http::{Error, WasiBody};

use super::transport::{self, Sent, Target};
use wharf_spec::ComponentName;
use wharf_spec::component::OutboundSpec;

/// Tells the component where a response came from: `miss` (this request
/// fetched it), `hit` (cache or a request already in flight).
pub const CACHE_HEADER: &str = "x-wharf-cache";

/// Identifies one cacheable request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    component: ComponentName,
    /// In-process call depth: a call chain that repeats a URL must not wait
    /// on its own ancestor's flight (it reaches the depth cut instead).
    depth: u8,
    uri: http::Uri,
    /// Request headers that can change the answer, sorted. Cloned from the
    /// request, which shares their bytes: building a key copies no text.
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Headers that differ per request without changing the answer.
const NOT_KEYED: &[&str] = &["x-request-id", "user-agent", "traceparent", "tracestate", "host"];

/// A response read whole, shareable between requests.
#[derive(Debug)]
struct Buffered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// How long it may be reused (zero: shared in flight only).
    ttl: Duration,
}

/// Why a shared fetch produced nothing to keep.
#[derive(Debug)]
enum NotKept {
    /// A response that must not be reused, shared with the requests that
    /// were waiting for it.
    Uncacheable(Arc<Buffered>),
    /// The upstream failed; everyone waiting gets the same error.
    Failed(Error),
    /// The body is over `cache_max_entry`: the fetching request streams it,
    /// the others fetch for themselves.
    TooLarge,
}

/// Responses kept for reuse, bounded in bytes.
pub struct ResponseCache {
    entries: Cache<CacheKey, Arc<Buffered>>,
}

struct Freshness;

impl moka::Expiry<CacheKey, Arc<Buffered>> for Freshness {
    fn expire_after_create(&self, _key: &CacheKey, value: &Arc<Buffered>, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The key for `request` from `component` at in-process `depth`, or `None`
/// when it must bypass the cache.
pub(super) fn key_for(component: &ComponentName, depth: u8, request: &http::Request<WasiBody>) -> Option<CacheKey> {
    let headers = request.headers();
    let bypass = request.method() != http::Method::GET
        || headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key(header::COOKIE)
        || headers.contains_key(header::RANGE)
        || directives(headers).any(|d| d == "no-cache" || d == "no-store")
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|v| v != "0");
    if bypass {
        return None;
    }
    let mut keyed: Vec<(HeaderName, HeaderValue)> = headers
        .iter()
        .filter(|(name, _)| !NOT_KEYED.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    keyed.sort_unstable_by(|(a, x), (b, y)| (a.as_str(), x.as_bytes()).cmp(&(b.as_str(), y.as_bytes())));
    Some(CacheKey { component: component.clone(), depth, uri: request.uri().clone(), headers: keyed })
}

impl ResponseCache {
    /// A cache holding at most `capacity` bytes of responses.
    pub fn new(capacity: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(capacity)
            .weigher(|key: &CacheKey, value: &Arc<Buffered>| weight(key, value))
            .expire_after(Freshness)
            .support_invalidation_closures()
            .build();
        Self { entries }
    }

    /// Drops every entry fetched from `host`.
    pub(super) fn forget_host(&self, host: &str) {
        let host = host.to_owned();
        let matches =
            move |key: &CacheKey, _: &Arc<Buffered>| key.uri.host().is_some_and(|h| h.eq_ignore_ascii_case(&host));
        if let Err(e) = self.entries.invalidate_entries_if(matches) {
            tracing::warn!(error = %e, "cannot drop cached responses");
        }
    }

    /// Answers `request` from the cache, from an identical request in flight,
    /// or by sending it (and sharing the result).
    pub(super) async fn fetch(
        &self,
        key: CacheKey,
        request: http::Request<WasiBody>,
        target: &Target<'_>,
        spec: &OutboundSpec,
    ) -> Result<Sent, Error> {
        // Requests are plain GETs without a body: keep a copy of the head in
        // case this request has to fetch for itself after all.
        let (parts, body) = request.into_parts();
        let rebuild = || {
            let mut request = http::Request::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed_unsync());
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = parts.uri.clone();
            *request.headers_mut() = parts.headers.clone();
            request
        };
        let mut fetched_here = false;
        // Set when this request fetched a body too large to share.
        let mut streaming: Option<Sent> = None;
        let outcome = self
            .entries
            .try_get_with(key, async {
                fetched_here = true;
                fetch_once(target, rebuild(), spec, &mut streaming).await
            })
            .await;
        let label = if fetched_here { "miss" } else { "hit" };
        // The guest may still be finishing its (empty) request body: it is
        // read to the end, or the guest's send fails as if the connection had
        // been reset. With a response, that rides on the I/O future wasmtime
        // runs anyway; otherwise it gets a task of its own.
        match outcome {
            Ok(kept) => Ok((respond(&kept, label), drain(body))),
            Err(not_kept) => match &*not_kept {
                NotKept::Uncacheable(response) => Ok((respond(response, label), drain(body))),
                NotKept::Failed(error) => {
                    tokio::spawn(Box::into_pin(drain(body)));
                    Err(copy_error(error))
                }
                NotKept::TooLarge => {
                    tokio::spawn(Box::into_pin(drain(body)));
                    match streaming.take() {
                        Some(sent) => Ok(sent),
                        None => transport::send(target, rebuild()).await,
                    }
                }
            },
        }
    }
}

/// Reads a request body to its end, as the I/O future of a response.
fn drain(mut body: WasiBody) -> transport::IoFuture {
    Box::new(async move {
        while let Some(Ok(_)) = body.frame().await {}
        Ok(())
    })
}

/// Sends the request and reads the whole response, up to `cache_max_entry`.
async fn fetch_once(
    target: &Target<'_>,
    request: http::Request<WasiBody>,
    spec: &OutboundSpec,
    streaming: &mut Option<Sent>,
) -> Result<Arc<Buffered>, NotKept> {
    let (response, io) = transport::send(target, request).await.map_err(NotKept::Failed)?;
    // Reading the body needs the connection driven alongside.
    let io = tokio::spawn(Box::into_pin(io));
    let (parts, mut body) = response.into_parts();
    let limit = usize::try_from(spec.cache_max_entry).unwrap_or(usize::MAX);
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(NotKept::Failed)?;
        let Ok(data) = frame.into_data() else { continue };
        collected.extend_from_slice(&data);
        if collected.len() > limit {
            let rest = Prefixed { prefix: Some(collected.freeze()), rest: body };
            let io: transport::IoFuture = Box::new(async move { io.await.unwrap_or(Ok(())) });
            *streaming = Some((http::Response::from_parts(parts, rest.boxed_unsync()), io));
            return Err(NotKept::TooLarge);
        }
    }
    // A body cut short (the upstream or an in-process callee died mid-way)
    // must not be shared or kept as if whole.
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len != collected.len()) {
        return Err(NotKept::Failed(Error::HttpResponseIncomplete));
    }
    let ttl = freshness(parts.status, &parts.headers, spec.cache_ttl);
    let buffered = Arc::new(Buffered { status: parts.status, headers: parts.headers, body: collected.freeze(), ttl });
    if ttl.is_zero() { Err(NotKept::Uncacheable(buffered)) } else { Ok(buffered) }
}

/// How long a response may be reused: zero unless its status is cacheable
/// by default (RFC 9111 §4.2.2: 2xx answers and definite "no" answers such
/// as 404, never 5xx); at most the manifest's `ttl` (the operator's ceiling;
/// zero turns keeping off), less when the upstream's `max-age` (or
/// `s-maxage`) says so; never when it forbids it or varies on everything.
fn freshness(status: StatusCode, headers: &HeaderMap, ttl: Duration) -> Duration {
    if ttl.is_zero() || !matches!(status.as_u16(), 200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414) {
        return Duration::ZERO;
    }
    let varies_on_everything = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|f| f.trim() == "*"));
    if varies_on_everything {
        return Duration::ZERO;
    }
    let mut max_age = None;
    for directive in directives(headers) {
        match directive.split_once('=') {
            None if matches!(directive.as_str(), "no-store" | "no-cache" | "private") => return Duration::ZERO,
            Some(("max-age" | "s-maxage", seconds)) => {
                max_age = seconds.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs).or(max_age);
            }
            _ => {}
        }
    }
    max_age.map_or(ttl, |age| age.min(ttl))
}

/// The `Cache-Control` directives, lower-cased.
fn directives(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

fn respond(buffered: &Buffered, label: &'static str) -> http::Response<WasiBody> {
    let mut response = http::Response::new(Full::new(buffered.body.clone()).map_err(|e| match e {}).boxed_unsync());
    *response.status_mut() = buffered.status;
    *response.headers_mut() = buffered.headers.clone();
    response.headers_mut().insert(CACHE_HEADER, HeaderValue::from_static(label));
    response
}

fn weight(key: &CacheKey, buffered: &Buffered) -> u32 {
    let headers: usize = buffered.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum();
    let uri =
        key.uri.authority().map_or(0, |a| a.as_str().len()) + key.uri.path_and_query().map_or(0, |p| p.as_str().len());
    let key_bytes: usize = uri + key.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 32).sum::<usize>();
    u32::try_from(buffered.body.len() + headers + key_bytes + 256).unwrap_or(u32::MAX)
}

/// The same error again, for each request that shared a failed fetch
/// (errors are not `Clone`; what the guest sees is kept).
fn copy_error(error: &Error) -> Error {
    match error {
        Error::ConnectionTimeout => Error::ConnectionTimeout,
        Error::ConnectionReadTimeout => Error::ConnectionReadTimeout,
        Error::ConnectionWriteTimeout => Error::ConnectionWriteTimeout,
        Error::HttpResponseTimeout => Error::HttpResponseTimeout,
        Error::ConnectionRefused => Error::ConnectionRefused,
        Error::ConnectionTerminated => Error::ConnectionTerminated,
        Error::DestinationNotFound => Error::DestinationNotFound,
        Error::DestinationUnavailable => Error::DestinationUnavailable,
        Error::DnsTimeout => Error::DnsTimeout,
        Error::HttpRequestDenied => Error::HttpRequestDenied,
        Error::HttpResponseIncomplete => Error::HttpResponseIncomplete,
        Error::HttpProtocolError => Error::HttpProtocolError,
        Error::LoopDetected => Error::LoopDetected,
        Error::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        Error::Connect(e) if e.kind() == std::io::ErrorKind::TimedOut => Error::ConnectionTimeout,
        other => Error::InternalError(Some(format!("{other:?}"))),
    }
}

/// A body whose first bytes were already read.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: WasiBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return std::task::Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cache_control: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CACHE_CONTROL, cache_control.parse().unwrap());
        h
    }

    #[test]
    fn freshness_follows_cache_control_then_the_manifest() {
        let default = Duration::from_secs(60);
        assert_eq!(freshness(StatusCode::OK, &HeaderMap::new(), default), default);
        assert_eq!(freshness(StatusCode::OK, &headers("public, max-age=5"), default), Duration::from_secs(5));
        assert_eq!(freshness(StatusCode::OK, &headers("max-age=86400"), default), default, "the manifest caps");
        assert_eq!(freshness(StatusCode::OK, &headers("max-age=86400"), Duration::ZERO), Duration::ZERO, "0s = off");
        let mut vary = HeaderMap::new();
        vary.insert(header::VARY, "*".parse().unwrap());
        assert_eq!(freshness(StatusCode::OK, &vary, default), Duration::ZERO);
        assert_eq!(freshness(StatusCode::OK, &headers("s-maxage=7"), default), Duration::from_secs(7));
        assert_eq!(freshness(StatusCode::OK, &headers("No-Store"), default), Duration::ZERO);
        assert_eq!(freshness(StatusCode::OK, &headers("private, max-age=5"), default), Duration::ZERO);
        assert_eq!(freshness(StatusCode::NOT_FOUND, &HeaderMap::new(), default), default);
        assert_eq!(freshness(StatusCode::CREATED, &HeaderMap::new(), default), Duration::ZERO);
        assert_eq!(freshness(StatusCode::BAD_GATEWAY, &headers("max-age=60"), default), Duration::ZERO);
        assert_eq!(freshness(StatusCode::OK, &HeaderMap::new(), Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn only_plain_gets_are_cacheable() {
        let name = ComponentName::parse("acme").unwrap();
        let empty = || http_body_util::Empty::new().map_err(|e| match e {}).boxed_unsync();
        fn get(f: impl FnOnce(http::request::Builder) -> http::request::Builder) -> http::Request<WasiBody> {
            let empty = http_body_util::Empty::new().map_err(|e| match e {}).boxed_unsync();
            f(http::Request::get("http://u.test/a")).body(empty).unwrap()
        }
        assert!(key_for(&name, 0, &get(|b| b)).is_some());
        assert!(key_for(&name, 0, &get(|b| b.header("authorization", "Bearer x"))).is_none());
        assert!(key_for(&name, 0, &get(|b| b.header("cache-control", "no-cache"))).is_none());
        let post = http::Request::post("http://u.test/a").body(empty()).unwrap();
        assert!(key_for(&name, 0, &post).is_none());
        let other = ComponentName::parse("other").unwrap();
        assert_ne!(key_for(&name, 0, &get(|b| b)), key_for(&other, 0, &get(|b| b)));
        assert_ne!(key_for(&name, 0, &get(|b| b)), key_for(&name, 1, &get(|b| b)), "depth is keyed");
        // Headers that can change the answer are keyed; per-request ids are not.
        let tenant = |t: &'static str| get(move |b| b.header("x-tenant", t).header("x-request-id", t));
        assert_ne!(key_for(&name, 0, &tenant("a")), key_for(&name, 0, &tenant("b")));
        let id = |i: &'static str| get(move |b| b.header("x-request-id", i));
        assert_eq!(key_for(&name, 0, &id("1")), key_for(&name, 0, &id("2")));
    }
}
