//! Calls from one component to another on the same host, without TCP: a
//! request to `http://NAME.wharf.internal/path` is routed like a client's
//! request but only to component `NAME`, under NAME's own limits (deadline,
//! memory, instances, body cap). Errors come back as the same JSON responses
//! a client would get. Chains of calls are cut at [`MAX_DEPTH`].

use std::sync::Weak;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::registry::Registry;
use crate::server::dispatch::{self, Via};
use crate::server::request_id;

/// Hosts ending in this reach the component named by the first label.
pub const INTERNAL_DOMAIN: &str = ".wharf.internal";

/// In-process calls one client request may lead to in a chain (A → B → …).
const MAX_DEPTH: u8 = 8;

/// The component a request to `uri` is for, when it targets this host
/// (host names are case-insensitive, as the allow-list treats them).
pub(super) fn component_of(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?.to_ascii_lowercase();
    let name = host.strip_suffix(INTERNAL_DOMAIN)?;
    (!name.is_empty() && !name.contains('.')).then(|| name.to_owned())
}

/// Serves `request` with `component`; `depth` is the caller's depth.
pub(super) async fn send(
    registry: &Weak<Registry>,
    component: &str,
    request: http::Request<WasiBody>,
    options: RequestOptions,
    depth: u8,
) -> Result<http::Response<WasiBody>, Error> {
    if depth + 1 >= MAX_DEPTH {
        tracing::warn!(target_component = component, depth, "in-process call refused: call chain too deep");
        return Err(Error::LoopDetected);
    }
    let registry = registry.upgrade().ok_or(Error::DestinationUnavailable)?;
    let snapshot = registry.snapshot();
    if !snapshot.components.keys().any(|name| name.as_str() == component) {
        return Err(Error::DestinationNotFound);
    }
    let request_id = request_id::for_request(request.headers());
    let via = Via::InProcess { target: component, depth: depth + 1 };
    // The callee's deadline bounds its run; the caller's first-byte timeout
    // bounds how long the caller waits for the head.
    let first_byte = options.first_byte_timeout.unwrap_or(std::time::Duration::from_secs(600));
    let served = tokio::time::timeout(
        first_byte,
        dispatch::serve_routed(&snapshot, request, &request_id, via, &mut dispatch::Routed::default()),
    )
    .await
    .map_err(|_| Error::ConnectionReadTimeout)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_hosts_name_one_component() {
        let of = |u: &str| component_of(&u.parse().unwrap());
        assert_eq!(of("http://acme-data.wharf.internal/api/x"), Some("acme-data".into()));
        assert_eq!(of("http://Acme-Data.WHARF.Internal/x"), Some("acme-data".into()));
        assert_eq!(of("http://wharf.internal/x"), None);
        assert_eq!(of("http://a.b.wharf.internal/x"), None);
        assert_eq!(of("http://example.com/x"), None);
    }
}
