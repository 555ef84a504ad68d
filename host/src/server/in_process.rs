//! The server's side of in-process calls (`http://NAME.wharf.internal/…`):
//! routes the request like a client's, but only to component `NAME`, under
//! its own limits. Errors come back as the JSON responses a client would get.

use std::sync::{Arc, Weak};

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, WasiBody};

use crate::server::dispatch::{self, Via};
use crate::server::request_id;
use wharf_outbound::{InProcess, InProcessFuture};
use wharf_runtime::registry::Registry;

/// Serves in-process calls from the registry's current snapshot. Weak:
/// components hold their outbound hooks, which hold this, and the registry
/// holds the components.
pub struct InProcessCalls {
    registry: Weak<Registry>,
}

impl InProcessCalls {
    /// Calls served by the components of `registry`.
    pub fn new(registry: &Arc<Registry>) -> Self {
        Self { registry: Arc::downgrade(registry) }
    }

    async fn serve(
        &self,
        component: &str,
        request: http::Request<WasiBody>,
        depth: u8,
    ) -> Result<http::Response<WasiBody>, Error> {
        let registry = self.registry.upgrade().ok_or(Error::DestinationUnavailable)?;
        let snapshot = registry.snapshot();
        if snapshot.component(component).is_none() {
            return Err(Error::DestinationNotFound);
        }
        let request_id = request_id::for_request(request.headers());
        let via = Via::InProcess { target: component, depth };
        let served =
            dispatch::serve_routed(&snapshot, request, &request_id, via, &mut dispatch::Routed::default()).await;
        let mut response = match served {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(target_component = component, error = %error, "in-process call failed");
                error.into_response(&request_id)
            }
        };
        if let Ok(value) = http::HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(request_id::HEADER, value);
        }
        Ok(response.map(|body| body.map_err(|code| Error::InternalError(Some(format!("{code:?}")))).boxed_unsync()))
    }
}

impl InProcess for InProcessCalls {
    fn call<'a>(&'a self, component: &'a str, request: http::Request<WasiBody>, depth: u8) -> InProcessFuture<'a> {
        Box::pin(self.serve(component, request, depth))
    }
}
