//! Per-instance limits: the memory cap (a [`ResourceLimiter`] that records
//! when it refused), the wall-clock deadline (epoch interruption), and the
//! typed errors a broken limit turns into.

use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, UpdateDeadline};

use crate::state::RequestState;

/// How often the host's epoch ticks. A running guest yields to the executor
/// at every tick, so an endless loop cannot starve other requests.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Most table elements an instance may have (function tables stay small in
/// practice; this only stops a table-growth bomb).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The guest ran past its wall-clock deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline of {0:?} exceeded")]
pub struct DeadlineExceeded(pub Duration);

/// The guest tried to grow its memory past the cap.
#[derive(Debug, thiserror::Error)]
#[error("memory cap of {cap} bytes exceeded (wanted {desired})")]
pub struct MemoryCapExceeded {
    /// The cap.
    pub cap: u64,
    /// The size the guest asked for.
    pub desired: u64,
}

/// Caps linear memory and tables of one instance.
#[derive(Debug)]
pub struct InstanceLimiter {
    memory_cap: u64,
    /// Set when a growth request was refused, so the failure can be told
    /// apart from an ordinary trap even if the guest catches the failed grow.
    pub(crate) memory_cap_hit: bool,
}

impl InstanceLimiter {
    /// A limiter allowing `memory_cap` bytes of linear memory.
    pub fn new(memory_cap: u64) -> Self {
        Self { memory_cap, memory_cap_hit: false }
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_cap {
            self.memory_cap_hit = true;
            return Err(wasmtime::Error::new(MemoryCapExceeded { cap: self.memory_cap, desired: desired as u64 }));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Installs the memory limiter and the deadline on a fresh store.
///
/// The epoch callback fires every [`EPOCH_TICK`] while the guest runs: it
/// yields to tokio (fairness) until the deadline, then traps with
/// [`DeadlineExceeded`]. Time spent waiting in host calls is bounded
/// separately by the caller's `tokio::time::timeout`.
pub fn apply(store: &mut Store<RequestState>, deadline: Duration) {
    store.limiter(|state| &mut state.limiter);
    let ends_at = Instant::now() + deadline;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= ends_at {
            Err(wasmtime::Error::new(DeadlineExceeded(deadline)))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
}
