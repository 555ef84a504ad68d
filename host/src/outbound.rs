//! Outbound HTTP from components (`wasi:http/outgoing-handler`): every
//! request passes the component's allow-list from `grants.outbound` before
//! it leaves the host; anything else gets `HTTP-request-denied`.

use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::manifest::{ComponentName, Origin};

/// Default connect timeout when the guest sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time to the first response byte when the guest sets none.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time between response body chunks when the guest sets none.
const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(5);

/// The outbound policy of one component instance.
#[derive(Debug, Clone)]
pub struct OutboundHooks {
    component: ComponentName,
    allowed: Arc<Vec<Origin>>,
}

impl OutboundHooks {
    /// A policy allowing exactly `allowed`.
    pub fn new(component: ComponentName, allowed: Arc<Vec<Origin>>) -> Self {
        Self { component, allowed }
    }

    fn permits(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let Some(host) = uri.host() else { return false };
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        self.allowed
            .iter()
            .any(|o| o.scheme == scheme && o.host.eq_ignore_ascii_case(host) && o.effective_port() == port)
    }
}

type SendFuture = Box<
    dyn Future<Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>>
        + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        if !self.permits(request.uri()) {
            tracing::warn!(
                component = self.component.as_str(),
                uri = %request.uri(),
                "outbound request denied: origin not in the component's grants.outbound"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let mut options = options.unwrap_or_default();
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.first_byte_timeout.get_or_insert(FIRST_BYTE_TIMEOUT);
        options.between_bytes_timeout.get_or_insert(BETWEEN_BYTES_TIMEOUT);
        // `[(); 0]` is wasmtime-wasi-http's stock policy: send it as is.
        let mut stock: [(); 0] = [];
        stock.send_request(request, Some(options), fut)
    }
}
