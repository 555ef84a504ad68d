//! `wharf:host/log`: guest log lines, written to `tracing` under target
//! `wharf::guest` inside the current request span.

use wasmtime::component::{HasData, Linker};

use wharf_bindings::log::{self, Host, Level};
use wharf_spec::ComponentName;

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

/// What a host call borrows: the request's context.
pub type LogView<'a> = &'a mut LogCtx;

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = LogView<'a>;
}

/// Adds `wharf:host/log` to `linker`, reaching each store's context
/// through `get`.
pub fn add_to_linker<T: 'static>(linker: &mut Linker<T>, get: fn(&mut T) -> LogView<'_>) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasLog>(linker, get)
}
