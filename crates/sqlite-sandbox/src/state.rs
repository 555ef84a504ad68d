//! What the sandbox keeps per connection, in SQLite's client data (freed by
//! SQLite when the connection closes): the deadline, and whether a
//! statement is being inspected rather than run; and the callbacks that read
//! it (progress and busy handlers).

use std::ffi::{CStr, c_int, c_void};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The client data key.
pub(crate) const KEY: &CStr = c"wharf.sandbox";

/// Per-connection sandbox state. Atomics, because SQLite calls back on the
/// thread running the statement while the host sets the deadline.
#[derive(Default)]
pub(crate) struct ConnState {
    /// Milliseconds after [`epoch`] when statements must stop; 0 = never.
    deadline_ms: AtomicU64,
    /// Set when the progress handler stopped a statement.
    passed: AtomicBool,
    /// When the current wait for a lock began ([`epoch`] milliseconds).
    busy_since_ms: AtomicU64,
    /// Set while [`crate::check_statement`] compiles the component's text.
    inspecting: AtomicBool,
    /// Why the authorizer last refused something, for the component's error.
    denial: Mutex<Option<String>>,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_millis()).unwrap_or(u64::MAX).max(1)
}

impl ConnState {
    pub(crate) fn set_deadline(&self, deadline: Option<Instant>) {
        self.passed.store(false, Ordering::Relaxed);
        self.deadline_ms.store(deadline.map_or(0, millis_since_epoch), Ordering::Release);
    }

    pub(crate) fn deadline_passed(&self) -> bool {
        self.passed.load(Ordering::Relaxed)
    }

    /// Marks the connection as inspecting until the guard drops.
    pub(crate) fn inspect(&self) -> Inspecting<'_> {
        self.inspecting.store(true, Ordering::Release);
        self.take_denial();
        Inspecting(self)
    }

    pub(crate) fn inspecting(&self) -> bool {
        self.inspecting.load(Ordering::Acquire)
    }

    pub(crate) fn record_denial(&self, reason: String) {
        if let Ok(mut slot) = self.denial.lock() {
            slot.get_or_insert(reason);
        }
    }

    pub(crate) fn take_denial(&self) -> Option<String> {
        self.denial.lock().ok().and_then(|mut slot| slot.take())
    }

    /// Time left before the deadline, if one is set.
    fn until_deadline(&self) -> Option<Duration> {
        let deadline = self.deadline_ms.load(Ordering::Acquire);
        (deadline != 0).then(|| Duration::from_millis(deadline.saturating_sub(millis_since_epoch(Instant::now()))))
    }

    fn past_deadline(&self) -> bool {
        let deadline = self.deadline_ms.load(Ordering::Acquire);
        deadline != 0 && millis_since_epoch(Instant::now()) >= deadline
    }
}

/// Ends an inspection.
pub(crate) struct Inspecting<'a>(&'a ConnState);

impl Drop for Inspecting<'_> {
    fn drop(&mut self) {
        self.0.inspecting.store(false, Ordering::Release);
    }
}

/// SQLite's progress handler: a non-zero answer interrupts the statement.
pub(crate) unsafe extern "C" fn progress(state: *mut c_void) -> c_int {
    // SAFETY: registered with the connection's own `ConnState`, which lives
    // as long as the connection.
    let Some(state) = (unsafe { state.cast::<ConnState>().as_ref() }) else { return 0 };
    if state.past_deadline() {
        state.passed.store(true, Ordering::Relaxed);
        return 1;
    }
    0
}

/// How long a statement waits in all for another connection's lock.
pub(crate) const BUSY_LIMIT: Duration = Duration::from_secs(5);

/// Waits between retries while the database is locked, in µs (then 100 ms
/// each). A write transaction of a request or a job holds the lock for tens
/// to hundreds of µs: starting at SQLite's own 1 ms left the lock idle for
/// most of every wait.
const BUSY_DELAYS_US: [u64; 16] =
    [50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 25_000, 25_000, 25_000, 50_000, 50_000, 100_000];

/// SQLite's busy handler: waits and retries (non-zero) while the lock is
/// held, up to [`BUSY_LIMIT`] in all, but never past the deadline, where
/// it gives up (zero: the statement fails with `SQLITE_BUSY`, counted as
/// stopped at the deadline).
pub(crate) unsafe extern "C" fn busy(state: *mut c_void, count: c_int) -> c_int {
    // SAFETY: registered with the connection's own `ConnState`, which lives
    // as long as the connection.
    let Some(state) = (unsafe { state.cast::<ConnState>().as_ref() }) else { return 0 };
    let count = usize::try_from(count).unwrap_or(0);
    let now = millis_since_epoch(Instant::now());
    if count == 0 {
        state.busy_since_ms.store(now, Ordering::Relaxed);
    }
    if state.past_deadline() {
        state.passed.store(true, Ordering::Relaxed);
        return 0;
    }
    // Time really waited, not the sum of the sleeps asked for.
    let waited_ms = now.saturating_sub(state.busy_since_ms.load(Ordering::Relaxed));
    if u128::from(waited_ms) >= BUSY_LIMIT.as_millis() {
        return 0;
    }
    let delay = Duration::from_micros(BUSY_DELAYS_US.get(count).copied().unwrap_or(100_000));
    std::thread::sleep(state.until_deadline().map_or(delay, |left| delay.min(left)));
    1
}

/// Frees the state when SQLite closes the connection.
pub(crate) unsafe extern "C" fn destroy(state: *mut c_void) {
    if !state.is_null() {
        // SAFETY: made by `Box::into_raw` in `install`; SQLite calls this once.
        drop(unsafe { Box::from_raw(state.cast::<ConnState>()) });
    }
}
