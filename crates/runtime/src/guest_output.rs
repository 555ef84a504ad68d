//! A guest's stdout and stderr, turned into log lines under target
//! `wharf::guest` in the request's span, so a panic message or a stray
//! `println!` is visible to operators next to the failure it explains.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use wharf_spec::manifest::ComponentName;

/// Most bytes kept of one line; the rest of the line is dropped.
const MAX_LINE: usize = 16 * 1024;

/// One of a guest's output streams.
#[derive(Clone)]
pub struct GuestOutput {
    inner: Arc<Mutex<LineBuffer>>,
}

struct LineBuffer {
    component: ComponentName,
    stream: &'static str,
    span: tracing::Span,
    pending: Vec<u8>,
}

impl GuestOutput {
    /// The stream `stream` (`stdout`/`stderr`) of `component`, logging in the current span.
    pub fn new(component: ComponentName, stream: &'static str) -> Self {
        let buffer = LineBuffer { component, stream, span: tracing::Span::current(), pending: Vec::new() };
        Self { inner: Arc::new(Mutex::new(buffer)) }
    }
}

impl LineBuffer {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let room = MAX_LINE.saturating_sub(self.pending.len());
            self.pending.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.ends_with(b"\n") {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.pending);
        let line = line.trim_end();
        if !line.is_empty() {
            let (component, stream) = (self.component.as_str(), self.stream);
            self.span.in_scope(|| tracing::warn!(target: "wharf::guest", component, stream, "{line}"));
        }
        self.pending.clear();
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        self.emit();
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if let Ok(mut inner) = self.inner.lock() {
            inner.write(buf);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
