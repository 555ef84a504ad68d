//! Runs one request through a component: take an instance slot (clients
//! are refused at once, in-process callers wait), make the request and its
//! response outparam in the instance's store (fresh, or kept when the
//! component reuses instances), and hand both to
//! [`wharf_runtime::run::run_http`] in a task of its own; then turn how it
//! ended into a response or a [`HostError`]. The instance is dropped (or
//! kept) when the response body has been produced.

use std::sync::Arc;

use anyhow::anyhow;
use bytes::Bytes;
use http_body_util::BodyExt;
use tracing::Instrument;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::buffered_body::BufferedBody;
use super::error::HostError;
use wharf_runtime::registry::LoadedComponent;
use wharf_runtime::run::{RunError, instance_for, run_http, run_http_p3};
use wharf_spec::manifest::ComponentName;

/// Serves `request` with `component`; `depth` counts the in-process calls
/// that led here (0 for a client's request).
pub(super) async fn serve(
    component: Arc<LoadedComponent>,
    request: http::Request<BufferedBody>,
    depth: u8,
) -> Result<http::Response<HyperOutgoingBody>, HostError> {
    let name = component.spec().name.clone();
    // A client is told to come back later at once; an in-process caller
    // fans out and waits for a slot instead (its own first-byte timeout
    // bounds the wait).
    let permit = component.instance_slot(depth > 0).await.ok_or_else(|| HostError::Overloaded(name.clone()))?;
    let mut instance = instance_for(&component, depth);

    // The guest runs in a task of its own, so it can keep streaming the body
    // after it has handed over the response head (and so that a WASIp3
    // guest's event loop never runs inside another's).
    if component.is_p3() {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = with_absolute_uri(request).map(|body| body.map_err(|never| match never {}).boxed_unsync());
        let task = tokio::spawn(
            async move {
                let _permit = permit;
                run_http_p3(&component, instance, request, sender).await
            }
            .in_current_span(),
        );
        return answer(name, task, receiver, depth).await;
    }
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let fail = |error: wasmtime::Error| HostError::ComponentFailed { component: name.clone(), error: error.into() };
    let http = instance.store_mut().data_mut();
    let request = http.http().new_incoming_request(Scheme::Http, request).map_err(fail)?;
    let outparam = http.http().new_response_outparam(sender).map_err(fail)?;
    let task = tokio::spawn(
        async move {
            let _permit = permit;
            run_http(&component, instance, request, outparam).await
        }
        .in_current_span(),
    );
    answer(name, task, receiver, depth).await
}

/// The guest's answer once it comes, or, when it never does, what the task
/// says went wrong.
async fn answer<E: std::fmt::Debug>(
    name: ComponentName,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
    receiver: tokio::sync::oneshot::Receiver<Result<http::Response<HyperOutgoingBody>, E>>,
    depth: u8,
) -> Result<http::Response<HyperOutgoingBody>, HostError> {
    // An in-process caller that stops waiting (its timeout) takes the callee
    // down with it instead of leaving it running to its own deadline. A
    // client's request runs to completion even if the client leaves, as it
    // may already have changed state.
    let abandon = AbortUnlessAnswered(if depth > 0 { Some(task.abort_handle()) } else { None });
    let answered = receiver.await;
    drop(abandon.disarm());
    match answered {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(HostError::ComponentFailed {
            component: name,
            error: anyhow!("component answered with error code {code:?}"),
        }),
        // The store (and with it the sender) is gone without a response:
        // the task tells why.
        Err(_) => Err(match task.await {
            Ok(Err(RunError::Deadline)) => HostError::DeadlineExceeded(name),
            Ok(Err(RunError::Memory)) => HostError::MemoryCapExceeded(name),
            Ok(Err(RunError::Trap(error))) => HostError::ComponentFailed { component: name, error },
            Ok(Err(other)) => HostError::ComponentFailed { component: name, error: other.into() },
            Ok(Ok(())) => HostError::ComponentFailed {
                component: name,
                error: anyhow!("component returned without calling `response-outparam.set`"),
            },
            Err(join) => HostError::ComponentFailed { component: name, error: anyhow!("guest task failed: {join}") },
        }),
    }
}

/// A WASIp3 guest learns the scheme and authority from the request's URI
/// (not the `host` header), so it is made absolute: `http://HOST/path?query`,
/// as a WASIp2 guest sees it.
fn with_absolute_uri<B>(request: http::Request<B>) -> http::Request<B> {
    let (mut parts, body) = request.into_parts();
    let authority = parts
        .headers
        .get(http::header::HOST)
        .and_then(|host| http::uri::Authority::try_from(host.as_bytes()).ok())
        .unwrap_or_else(|| http::uri::Authority::from_static("localhost"));
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = Some(authority);
    uri.path_and_query =
        parts.uri.path_and_query().cloned().or_else(|| Some(http::uri::PathAndQuery::from_static("/")));
    if let Ok(absolute) = http::Uri::from_parts(uri) {
        parts.uri = absolute;
    }
    http::Request::from_parts(parts, body)
}

/// Aborts a guest task when dropped before [`AbortUnlessAnswered::disarm`].
struct AbortUnlessAnswered(Option<tokio::task::AbortHandle>);

impl AbortUnlessAnswered {
    fn disarm(mut self) -> Self {
        self.0 = None;
        self
    }
}

impl Drop for AbortUnlessAnswered {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// Calls `component` in-process with `GET path_and_query` (no TCP, same
/// limits, no routing) and collects the answer; the hub uses it for replays,
/// the operator API for operator views.
pub(crate) async fn get(
    component: Arc<LoadedComponent>,
    path_and_query: &str,
) -> Result<(http::StatusCode, Bytes), HostError> {
    let name = component.spec().name.clone();
    let request = http::Request::get(path_and_query)
        .header(http::header::HOST, "localhost")
        .body(BufferedBody::default())
        .map_err(|e| HostError::ComponentFailed { component: name.clone(), error: e.into() })?;
    let response = serve(component, request, 0).await?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| HostError::ComponentFailed { component: name, error: anyhow!("{e:?}") })?
        .to_bytes();
    Ok((status, body))
}
