//! Runs one request through a component: take an instance slot, build a
//! fresh store, instantiate from the pre-instance, call
//! `wasi:http/incoming-handler`, and turn how it ended into a response or a
//! [`HostError`]. The instance (and its store) is dropped when the response
//! body has been produced.

use std::sync::Arc;

use anyhow::anyhow;
use bytes::Bytes;
use http_body_util::Full;
use tracing::Instrument;
use wasmtime::Store;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use super::error::HostError;
use crate::capability::config::ConfigCtx;
use crate::capability::log::LogCtx;
use crate::guest_output::GuestOutput;
use crate::limits::{self, DeadlineExceeded, InstanceLimiter, MemoryCapExceeded};
use crate::outbound::OutboundHooks;
use crate::registry::LoadedComponent;
use crate::state::RequestState;

/// How a guest run ended, when it did not end well.
enum Failure {
    Deadline,
    Memory,
    Trap(anyhow::Error),
}

/// Serves `request` with `component`.
pub(super) async fn serve(
    component: Arc<LoadedComponent>,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<HyperOutgoingBody>, HostError> {
    let name = component.spec.name.clone();
    let permit = component
        .instances
        .clone()
        .try_acquire_owned()
        .map_err(|_| HostError::Overloaded(name.clone()))?;

    let mut store = new_store(&component);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let fail = |error: wasmtime::Error| HostError::ComponentFailed {
        component: name.clone(),
        error: error.into(),
    };
    let request = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)
        .map_err(fail)?;
    let outparam = store.data_mut().http().new_response_outparam(sender).map_err(fail)?;

    // The guest runs in its own task so it can keep streaming the body after
    // it has handed over the response head.
    let deadline = component.spec.limits.deadline;
    let pre = component.pre.clone();
    let task = tokio::spawn(
        async move {
            let _permit = permit;
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, outparam)
                    .await
            };
            match tokio::time::timeout(deadline, run).await {
                Err(_elapsed) => Err(Failure::Deadline),
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(classify(error, store.data().limiter.memory_cap_hit)),
            }
        }
        .in_current_span(),
    );

    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(HostError::ComponentFailed {
            component: name,
            error: anyhow!("component answered with error code {code:?}"),
        }),
        // The store (and with it the sender) is gone without a response:
        // the task tells why.
        Err(_) => Err(match task.await {
            Ok(Err(Failure::Deadline)) => HostError::DeadlineExceeded(name),
            Ok(Err(Failure::Memory)) => HostError::MemoryCapExceeded(name),
            Ok(Err(Failure::Trap(error))) => HostError::ComponentFailed { component: name, error },
            Ok(Ok(())) => HostError::ComponentFailed {
                component: name,
                error: anyhow!("component returned without calling `response-outparam.set`"),
            },
            Err(join) => HostError::ComponentFailed {
                component: name,
                error: anyhow!("guest task failed: {join}"),
            },
        }),
    }
}

fn new_store(component: &LoadedComponent) -> Store<RequestState> {
    let spec = &component.spec;
    let state = RequestState {
        table: Default::default(),
        // No preopens, no environment, no arguments, no network; output to the log.
        wasi: WasiCtx::builder()
            .stdout(GuestOutput::new(spec.name.clone(), "stdout"))
            .stderr(GuestOutput::new(spec.name.clone(), "stderr"))
            .build(),
        http: WasiHttpCtx::new(),
        outbound: OutboundHooks::new(spec.name.clone(), Arc::new(spec.grants.outbound.clone())),
        limiter: InstanceLimiter::new(spec.limits.memory),
        config: ConfigCtx::new(spec.config.clone()),
        log: LogCtx::new(spec.name.clone()),
    };
    let mut store = Store::new(component.pre.engine(), state);
    limits::apply(&mut store, spec.limits.deadline);
    store
}

fn classify(error: wasmtime::Error, memory_cap_hit: bool) -> Failure {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        Failure::Deadline
    } else if memory_cap_hit || error.downcast_ref::<MemoryCapExceeded>().is_some() {
        Failure::Memory
    } else {
        Failure::Trap(error.into())
    }
}
