//! Calls from one component to another on the same host, without TCP: a
//! request to `http://NAME.wharf.internal/path` goes to component `NAME`
//! through the [`InProcess`] trait, which the server implements (routing it
//! like a client's request, under NAME's own limits). Chains of calls are
//! cut at [`MAX_DEPTH`], and the caller's first-byte timeout bounds the wait.

use std::pin::Pin;
use std::time::Duration;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Hosts ending in this reach the component named by the first label.
pub const INTERNAL_DOMAIN: &str = ".wharf.internal";

/// In-process calls one client request may lead to in a chain (A → B → …).
const MAX_DEPTH: u8 = 8;

/// The answer of an in-process call, as it arrives.
pub type InProcessFuture<'a> = Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, Error>> + Send + 'a>>;

/// Serves a request to one component of this host. Defined here and
/// implemented by the embedder, so outbound depends on neither the
/// registry nor the server.
pub trait InProcess: Send + Sync + 'static {
    /// Serves `request` with `component`, in an instance `depth` calls deep.
    /// Errors the component's client would see as a JSON response come back
    /// as that response; `Err` means there was no one to ask.
    fn call<'a>(&'a self, component: &'a str, request: http::Request<WasiBody>, depth: u8) -> InProcessFuture<'a>;
}

/// The component a request to `uri` is for, when it targets this host
/// (host names are case-insensitive, as the allow-list treats them).
pub(super) fn component_of(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?.to_ascii_lowercase();
    let name = host.strip_suffix(INTERNAL_DOMAIN)?;
    (!name.is_empty() && !name.contains('.')).then(|| name.to_owned())
}

/// Serves `request` with `component`; `depth` is the caller's depth.
pub(super) async fn send(
    calls: &dyn InProcess,
    component: &str,
    request: http::Request<WasiBody>,
    options: RequestOptions,
    depth: u8,
) -> Result<http::Response<WasiBody>, Error> {
    if depth + 1 >= MAX_DEPTH {
        tracing::warn!(target_component = component, depth, "in-process call refused: call chain too deep");
        return Err(Error::LoopDetected);
    }
    // The callee's deadline bounds its run; the caller's first-byte timeout
    // bounds how long the caller waits for the head.
    let first_byte = options.first_byte_timeout.unwrap_or(Duration::from_secs(600));
    tokio::time::timeout(first_byte, calls.call(component, request, depth + 1))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
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
