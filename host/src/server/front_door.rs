//! The TCP side of a listener, shared by the public server and the operator
//! API: who gets a connection, for how long, and how accept failures are
//! survived. Header read timeout, header size and count caps (hyper), an
//! idle keep-alive timeout, a cap on connections in total and per client
//! address, and an accept loop that backs off without flooding the log.
//!
//! At the total cap an idle connection (no request in flight) is closed to
//! make room, so a flood of idle sockets cannot keep a real client out.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// hyper's own head limits are this many times the caps: a head over a cap
/// but within hyper's limit gets the host's 431 with the JSON error body;
/// only one over hyper's limit gets hyper's bare 431.
const HYPER_HEAD_SLACK: usize = 4;

/// Bounds on the connections of one listener. Every field is a CLI flag of
/// `wharf serve` (see `docs/operators.md`).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's whole head.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Time a client has to send a request's whole body.
    pub body_read_timeout: Duration,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Open connections, in total.
    pub max_connections: usize,
    /// Open connections from one client address (WebSockets counted too).
    pub max_connections_per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            max_header_bytes: 32 << 10,
            max_headers: 100,
            max_connections: 10_000,
            max_connections_per_ip: 1024,
        }
    }
}

/// One admitted connection, as the tracker sees it.
struct Slot {
    ip: IpAddr,
    /// Asked to close to make room; not picked again.
    closing: std::sync::atomic::AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds since the tracker started, at the last request start or end.
    last_active: AtomicU64,
    close: tokio::sync::Notify,
}

/// Counts connections in total and per address; hands out [`Admission`]s.
pub struct ConnectionTracker {
    limits: ConnectionLimits,
    started: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its address has `max_connections_per_ip` open already.
    PerAddress,
    /// `max_connections` are open and none is idle.
    Total,
}

/// An admitted connection; dropping it frees its place.
pub struct Admission {
    tracker: Arc<ConnectionTracker>,
    id: u64,
    slot: Arc<Slot>,
}

impl ConnectionTracker {
    /// A tracker enforcing `limits`.
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            started: Instant::now(),
            next_id: AtomicU64::new(1),
            open: Mutex::default(),
            per_ip: Mutex::default(),
        })
    }

    /// The limits enforced.
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Admits a connection from `ip`, closing an idle one when at the total cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refused> {
        let ip = client_key(ip);
        {
            let mut per_ip = self.per_ip.lock().map_err(|_| Refused::Total)?;
            let count = per_ip.entry(ip).or_default();
            if *count >= self.limits.max_connections_per_ip {
                return Err(Refused::PerAddress);
            }
            *count += 1;
        }
        let mut open = match self.open.lock() {
            Ok(open) => open,
            Err(_) => {
                self.release_ip(ip);
                return Err(Refused::Total);
            }
        };
        if open.len() >= self.limits.max_connections {
            let idlest = open
                .values()
                .filter(|s| s.in_flight.load(Ordering::Acquire) == 0 && !s.closing.load(Ordering::Acquire))
                .min_by_key(|s| s.last_active.load(Ordering::Relaxed));
            match idlest {
                // It leaves shortly; its place is ours meanwhile.
                Some(slot) => {
                    slot.closing.store(true, Ordering::Release);
                    slot.close.notify_one();
                }
                None => {
                    drop(open);
                    self.release_ip(ip);
                    return Err(Refused::Total);
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            ip,
            closing: std::sync::atomic::AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(self.now_ms()),
            close: tokio::sync::Notify::new(),
        });
        open.insert(id, slot.clone());
        Ok(Admission { tracker: self.clone(), id, slot })
    }

    /// Counts a connection that is not an HTTP connection any more (a
    /// WebSocket) against its address's cap only.
    pub fn admit_upgraded(self: &Arc<Self>, ip: IpAddr) -> Result<UpgradedAdmission, Refused> {
        let ip = client_key(ip);
        let mut per_ip = self.per_ip.lock().map_err(|_| Refused::Total)?;
        let count = per_ip.entry(ip).or_default();
        if *count >= self.limits.max_connections_per_ip {
            return Err(Refused::PerAddress);
        }
        *count += 1;
        Ok(UpgradedAdmission { tracker: self.clone(), ip })
    }

    fn release_ip(&self, ip: IpAddr) {
        if let Ok(mut per_ip) = self.per_ip.lock()
            && let Some(count) = per_ip.get_mut(&ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut open) = self.tracker.open.lock() {
            open.remove(&self.id);
        }
        self.tracker.release_ip(self.slot.ip);
    }
}

/// A WebSocket's place under its address's cap.
pub struct UpgradedAdmission {
    tracker: Arc<ConnectionTracker>,
    ip: IpAddr,
}

impl Drop for UpgradedAdmission {
    fn drop(&mut self) {
        self.tracker.release_ip(self.ip);
    }
}

/// The address a client is counted under: IPv4 as is, IPv6 by its /64
/// (one host usually has a whole /64 to rotate through).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
        v4 => v4,
    }
}

/// A request in flight on a connection; keeps it from counting as idle.
struct InFlight<'a>(&'a Slot, &'a ConnectionTracker);

impl<'a> InFlight<'a> {
    fn start(slot: &'a Slot, tracker: &'a ConnectionTracker) -> Self {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        slot.last_active.store(tracker.now_ms(), Ordering::Relaxed);
        Self(slot, tracker)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.last_active.store(self.1.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The client address of a request, in its extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Accepts connections on `listener` and serves each with `handler` under
/// the tracker's limits, until `shutdown` resolves; then stops accepting and
/// lets requests in flight finish (up to 30 s).
pub async fn serve<H, Fut, B>(
    listener: TcpListener,
    tracker: Arc<ConnectionTracker>,
    name: &'static str,
    shutdown: impl Future<Output = ()>,
    handler: H,
) where
    H: Fn(http::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Every connection task holds a receiver; shutdown is signalled through
    // it, and draining is done when all receivers are gone.
    let (drain_signal, drain_watch) = tokio::sync::watch::channel(());
    let mut backoff = AcceptBackoff::default();
    let mut builder = http1::Builder::new();
    let limits = tracker.limits().clone();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers.saturating_mul(HYPER_HEAD_SLACK))
        .max_buf_size(limits.max_header_bytes.saturating_mul(HYPER_HEAD_SLACK).max(8192));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    backoff.failed(name, &e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        backoff.succeeded();
        let admission = match tracker.admit(peer.ip()) {
            Ok(admission) => admission,
            Err(refused) => {
                crate::metrics::global().refused(match refused {
                    Refused::PerAddress => "connections_per_ip",
                    Refused::Total => "connections_total",
                });
                tokio::spawn(turn_away(stream, refused));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (tracker, handler, builder) = (tracker.clone(), handler.clone(), builder.clone());
        let mut drain = drain_watch.clone();
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            let slot = admission.slot.clone();
            let service = service_fn(|mut request: http::Request<Incoming>| {
                let (slot, tracker, handler) = (slot.clone(), tracker.clone(), handler.clone());
                request.extensions_mut().insert(ClientAddr(peer));
                let oversized = head_over_caps(&request, tracker.limits());
                async move {
                    if let Some(why) = oversized {
                        crate::metrics::global().refused("header_too_large");
                        return Ok::<_, Infallible>(head_too_large(why).map(Either::Right));
                    }
                    let _in_flight = InFlight::start(&slot, &tracker);
                    Ok::<_, Infallible>(handler(request).await.map(Either::Left))
                }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            tokio::pin!(connection);
            let idle = idle_watch(&admission, idle_timeout);
            tokio::pin!(idle);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = drain.changed() => finish(connection.as_mut()).await,
                () = admission.slot.close.notified() => finish(connection.as_mut()).await,
                () = &mut idle => finish(connection.as_mut()).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "{name}: connection ended with an error");
            }
            // `admission` drops last, freeing the connection's place.
        });
    }
    // Stop accepting: new connections are refused while the rest drains.
    drop(listener);
    drop(drain_watch);
    tracing::info!("{name}: shutting down, draining in-flight requests");
    let _ = drain_signal.send(());
    if tokio::time::timeout(DRAIN_TIMEOUT, drain_signal.closed()).await.is_err() {
        tracing::warn!("{name}: drain timed out; closing remaining connections");
    }
}

/// Finishes the request in flight, then closes; a client that will not
/// take its answer is dropped after [`FINISH_TIMEOUT`].
async fn finish<C>(mut connection: std::pin::Pin<&mut C>) -> Result<(), hyper::Error>
where
    C: GracefulConnection,
{
    connection.as_mut().shut_down();
    tokio::time::timeout(FINISH_TIMEOUT, connection).await.unwrap_or(Ok(()))
}

/// How long a connection asked to close may take to finish its request.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// hyper's connection types, which share `graceful_shutdown` but no trait.
trait GracefulConnection: Future<Output = Result<(), hyper::Error>> {
    fn shut_down(self: std::pin::Pin<&mut Self>);
}

impl<I, S> GracefulConnection for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    Self: Future<Output = Result<(), hyper::Error>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: http_body::Body + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut_down(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Resolves once the connection has had no request in flight for `timeout`.
async fn idle_watch(admission: &Admission, timeout: Duration) {
    let (slot, tracker) = (&admission.slot, &admission.tracker);
    loop {
        let since = tracker.now_ms().saturating_sub(slot.last_active.load(Ordering::Relaxed));
        let since = Duration::from_millis(since);
        if slot.in_flight.load(Ordering::Acquire) == 0 && since >= timeout {
            return;
        }
        tokio::time::sleep(timeout.saturating_sub(since).max(Duration::from_millis(100))).await;
    }
}

/// Answers a connection over its cap and closes it: 429 when its address
/// has too many (SPEC §0), 503 when the host has.
/// Why a request's head is over the caps, if it is: the header count, or the
/// bytes of the request line and header fields as sent.
fn head_over_caps(request: &http::Request<Incoming>, limits: &ConnectionLimits) -> Option<String> {
    let headers = request.headers();
    if headers.len() > limits.max_headers {
        return Some(format!(
            "The request has {} header fields; at most {} are read.",
            headers.len(),
            limits.max_headers
        ));
    }
    let line = request.method().as_str().len() + request.uri().to_string().len() + " HTTP/1.1\r\n".len() + 1;
    let bytes = headers.iter().fold(line + 2, |sum, (name, value)| sum + name.as_str().len() + value.len() + 4);
    (bytes > limits.max_header_bytes)
        .then(|| format!("The request head has {bytes} bytes; at most {} are read.", limits.max_header_bytes))
}

/// 431 with the SPEC §0 error body; the connection is closed after it.
fn head_too_large(message: String) -> http::Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({
        "error": { "code": "header_too_large", "message": message, "request_id": request_id }
    });
    let mut response = http::Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    if let Ok(id) = http::HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

async fn turn_away(mut stream: TcpStream, refused: Refused) {
    let (status, reason) = match refused {
        Refused::PerAddress => {
            ("429 Too Many Requests", "Too many connections from this address; close some and retry.")
        }
        Refused::Total => {
            ("503 Service Unavailable", "The server has as many connections as it accepts; retry shortly.")
        }
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({
        "error": { "code": "too_many_connections", "message": reason, "request_id": request_id }
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nretry-after: 1\r\nx-request-id: {request_id}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
    // Read what the client was sending, so closing does not reset the
    // connection before it reads the answer.
    let mut sink = [0u8; 4096];
    let linger = async {
        let mut read = 0;
        while read < 64 << 10 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), linger).await;
}

/// Backs off after accept errors (EMFILE, ENFILE, ENOBUFS): 5 ms doubling to
/// 1 s, and one log line per second at most, with the count since the last.
#[derive(Default)]
struct AcceptBackoff {
    delay: Duration,
    failures: u64,
    last_log: Option<Instant>,
}

impl AcceptBackoff {
    async fn failed(&mut self, name: &str, error: &std::io::Error) {
        self.failures += 1;
        if self.last_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            tracing::warn!(error = %error, failures = self.failures, "{name}: accept failed; backing off");
            self.last_log = Some(Instant::now());
            self.failures = 0;
        }
        self.delay = (self.delay * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
        crate::metrics::global().refused("accept_failed");
        tokio::time::sleep(self.delay).await;
    }

    fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

/// Raises the open-file limit to its hard limit, so the caps above bind
/// before the kernel's does. Returns the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize) -> ConnectionLimits {
        ConnectionLimits { max_connections: total, max_connections_per_ip: per_ip, ..Default::default() }
    }

    #[test]
    fn caps_connections_per_address() {
        let tracker = ConnectionTracker::new(limits(100, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([10, 0, 0, 1]));
        let b: IpAddr = IpAddr::from([10, 0, 0, 2]);
        let first = tracker.admit(a);
        let _second = tracker.admit(a);
        assert!(matches!(tracker.admit(a), Err(Refused::PerAddress)));
        assert!(tracker.admit(b).is_ok(), "another address is not affected");
        drop(first);
        assert!(tracker.admit(a).is_ok(), "a closed connection frees its place");
    }

    #[test]
    fn at_the_total_cap_an_idle_connection_makes_room_and_a_busy_one_does_not() {
        let tracker = ConnectionTracker::new(limits(2, 10));
        let ip = IpAddr::from([10, 0, 0, 1]);
        let busy = tracker.admit(ip).ok();
        let idle = tracker.admit(ip).ok();
        let busy_slot = busy.as_ref().map(|a| a.slot.clone());
        if let Some(slot) = &busy_slot {
            slot.in_flight.fetch_add(1, Ordering::AcqRel);
        }
        assert!(tracker.admit(ip).is_ok(), "the idle one is asked to close");
        drop(idle);
        if let Some(slot) = &busy_slot {
            assert_eq!(slot.in_flight.load(Ordering::Acquire), 1);
        }
        let third = tracker.admit(ip);
        drop(third);
        drop(busy);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap_or(IpAddr::from([0; 16]));
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap_or(IpAddr::from([0; 16]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(client_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn refuses_when_every_connection_is_busy() {
        let tracker = ConnectionTracker::new(limits(1, 10));
        let ip = IpAddr::from([10, 0, 0, 1]);
        let busy = tracker.admit(ip).ok();
        if let Some(admission) = &busy {
            admission.slot.in_flight.fetch_add(1, Ordering::AcqRel);
        }
        assert!(matches!(tracker.admit(ip), Err(Refused::Total)));
        assert_eq!(tracker.open(), 1);
    }
}
