//! Outbound HTTP from components (`wasi:http/outgoing-handler`), intercepted
//! by the host through [`WasiHttpHooks::send_request`]. Every request:
//!
//! 1. passes the component's allow-list from `grants.outbound` ([`policy`]),
//!    or fails with `HTTP-request-denied` and a log line;
//! 2. gets the manifest's timeouts (a guest may ask for shorter ones);
//! 3. if it is a plain GET, is answered from the response cache or joins an
//!    identical request already in flight ([`cache`]);
//! 4. goes to another component of this host without TCP when its host is
//!    `NAME.wharf.internal` (through the [`InProcess`] trait the embedder
//!    implements), or over the network.
//!
//! [`add_to_linker`] adds `wasi:http` with these hooks to any linker.

#![deny(missing_docs)]

mod cache;
mod in_process;
mod policy;
mod transport;

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::bindings;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttp, WasiHttpCtxView, WasiHttpHooks};
use wharf_spec::ComponentName;
use wharf_spec::component::{Origin, OutboundSpec};

pub use cache::{CACHE_HEADER, ResponseCache};
pub use in_process::{INTERNAL_DOMAIN, InProcess, InProcessFuture};

/// Bytes of responses the host keeps cached, across all components.
pub const CACHE_CAPACITY: u64 = 64 << 20;

/// What the outbound requests of every component share: the response cache
/// and a way to reach the host's own components.
pub struct Outbound {
    cache: ResponseCache,
    in_process: Arc<dyn InProcess>,
}

impl Outbound {
    /// Shared state for outbound requests; calls to `NAME.wharf.internal`
    /// go to `in_process`.
    pub fn new(in_process: Arc<dyn InProcess>) -> Arc<Self> {
        Arc::new(Self { cache: ResponseCache::new(CACHE_CAPACITY), in_process })
    }

    /// Drops cached responses that component `name` gave in-process (after
    /// it was reloaded, its old answers must not be served).
    pub fn forget_answers_of(&self, name: &str) {
        self.cache.forget_host(&format!("{name}{INTERNAL_DOMAIN}"));
    }
}

/// The outbound policy of one component, cloned into each of its instances.
#[derive(Clone)]
pub struct OutboundHooks {
    component: ComponentName,
    allowed: Arc<Vec<Origin>>,
    settings: OutboundSpec,
    shared: Arc<Outbound>,
    /// How many in-process calls led to this instance (loops are refused).
    depth: u8,
}

impl OutboundHooks {
    /// The policy of `component`: it may call exactly `allowed`.
    pub fn new(
        component: ComponentName,
        allowed: Arc<Vec<Origin>>,
        settings: OutboundSpec,
        shared: Arc<Outbound>,
    ) -> Self {
        Self { component, allowed, settings, shared, depth: 0 }
    }

    /// The policy for an instance started by an in-process call `depth`
    /// levels deep (0: a client's request or a job).
    pub fn for_depth(&self, depth: u8) -> Self {
        Self { depth, ..self.clone() }
    }

    /// Sends `request`, through the cache when it is cacheable.
    async fn send(self, request: http::Request<WasiBody>, options: RequestOptions) -> Result<transport::Sent, Error> {
        let target = transport::Target { shared: &self.shared, options, depth: self.depth };
        match cache::key_for(&self.component, self.depth, &request) {
            Some(key) => self.shared.cache.fetch(key, request, &target, &self.settings).await,
            None => transport::send(&target, request).await,
        }
    }
}

type SendFuture = Box<dyn Future<Output = Result<transport::Sent, Error>> + Send>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        if !policy::permits(&self.allowed, request.uri()) {
            tracing::warn!(
                component = self.component.as_str(),
                uri = %request.uri(),
                "outbound request denied: origin not in the component's grants.outbound"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let options = policy::timeouts(options, &self.settings);
        Box::new(self.clone().send(request, options))
    }
}

/// What `wasi:http` borrows from a store: wasmtime-wasi-http's view, whose
/// hooks are the store's [`OutboundHooks`].
pub type OutboundView<'a> = WasiHttpCtxView<'a>;

/// Adds `wasi:http` (types and outgoing-handler) to `linker`, reaching each
/// store's view through `get`; outgoing requests go through its hooks.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> OutboundView<'_>,
) -> wasmtime::Result<()> {
    let options = bindings::LinkOptions::default();
    bindings::http::outgoing_handler::add_to_linker::<T, WasiHttp>(linker, get)?;
    bindings::http::types::add_to_linker::<T, WasiHttp>(linker, &options.into(), get)?;
    Ok(())
}
