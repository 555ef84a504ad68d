//! Where an allowed request goes: to a component of this host (no TCP) or
//! over the network with wasmtime-wasi-http's client.

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::{Outbound, in_process};

/// A response head with its body, and the future driving the connection
/// (what [`wasmtime_wasi_http::WasiHttpHooks::send_request`] returns).
pub(super) type Sent = (http::Response<WasiBody>, IoFuture);

/// Drives a connection's I/O until the response body is done.
pub(super) type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// Everything a request needs besides itself.
pub(super) struct Target<'a> {
    pub(super) shared: &'a Outbound,
    pub(super) options: RequestOptions,
    pub(super) depth: u8,
}

/// Sends `request` and returns the response head as soon as it arrives.
pub(super) async fn send(target: &Target<'_>, request: http::Request<WasiBody>) -> Result<Sent, Error> {
    if let Some(component) = in_process::component_of(request.uri()) {
        let response =
            in_process::send(&*target.shared.in_process, &component, request, target.options, target.depth).await?;
        return Ok((response, no_io()));
    }
    let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(target.options)).await?;
    Ok((response.map(BodyExt::boxed_unsync), Box::new(io)))
}

/// The I/O future of a response that needs no connection.
pub(super) fn no_io() -> IoFuture {
    Box::new(async { Ok(()) })
}
