//! `wharf:host/log`: guest log lines, written to `tracing` under target
//! `wharf::guest` inside the current request span.

use wasmtime::component::{HasData, Linker};

use super::bindings::log::{self, Host, Level};
use crate::manifest::ComponentName;
use crate::state::RequestState;

/// Longest message kept; longer ones are cut (a guest must not flood logs).
const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Per-request state: which component is writing.
#[derive(Debug, Clone)]
pub struct LogCtx {
    component: ComponentName,
}

impl LogCtx {
    /// A context writing as `component`.
    pub fn new(component: ComponentName) -> Self {
        Self { component }
    }
}

impl Host for LogCtx {
    fn write(&mut self, level: Level, mut message: String) {
        if message.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("… (truncated)");
        }
        let component = self.component.as_str();
        match level {
            Level::Trace => tracing::trace!(target: "wharf::guest", component, "{message}"),
            Level::Debug => tracing::debug!(target: "wharf::guest", component, "{message}"),
            Level::Info => tracing::info!(target: "wharf::guest", component, "{message}"),
            Level::Warn => tracing::warn!(target: "wharf::guest", component, "{message}"),
            Level::Error => tracing::error!(target: "wharf::guest", component, "{message}"),
        }
    }
}

struct Log;

impl HasData for Log {
    type Data<'a> = &'a mut LogCtx;
}

pub(super) fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    log::add_to_linker::<RequestState, Log>(linker, |state| &mut state.log)?;
    Ok(())
}
