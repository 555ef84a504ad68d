//! What the SPEC §5 simulators (user-service, product-service) share: fault
//! injection from config, applied to every look-up: a delay (fixed
//! `delay_ms`, or uniform between `delay_min_ms` and `delay_max_ms`) and a
//! failure rate (`failure_rate`, from 0 to 1, answered 503); and the
//! read-only API they both serve ([`simulator`]).

#![deny(missing_docs)]

pub mod simulator;

use wstd::time::Duration;

/// Sleeps the configured delay and returns it in milliseconds. `delay_ms`
/// wins over the range; nothing configured answers at once.
pub async fn delay() -> u64 {
    let millis = match config_ms("delay_ms") {
        Some(fixed) => fixed,
        None => {
            let low = config_ms("delay_min_ms").unwrap_or(0);
            let high = config_ms("delay_max_ms").unwrap_or(low);
            let (low, high) = (low.min(high), low.max(high));
            low + random() % (high - low).saturating_add(1)
        }
    };
    sleep(millis).await;
    millis
}

/// Sleeps `millis` milliseconds (none for 0).
pub async fn sleep(millis: u64) {
    if millis > 0 {
        wstd::task::sleep(Duration::from_millis(millis)).await;
    }
}

/// Whether this call fails, drawn against `failure_rate`.
pub fn injected_failure() -> bool {
    let rate = match wharf_guest::config::get("failure_rate").filter(|text| !text.trim().is_empty()) {
        None => return false,
        Some(text) => match text.trim().parse::<f64>() {
            Ok(rate) if (0.0..=1.0).contains(&rate) => rate,
            _ => {
                wharf_guest::warn!(
                    "config `failure_rate` = `{text}` is not a number from 0 to 1; injecting no failures"
                );
                return false;
            }
        },
    };
    // 53 random bits give a uniform float in [0, 1).
    let draw = (random() >> 11) as f64 / (1u64 << 53) as f64;
    rate >= 1.0 || draw < rate
}

/// A millisecond count from config: `None` when absent or empty; a value
/// that is not one is logged and ignored, so a typo injects nothing.
pub fn config_ms(key: &str) -> Option<u64> {
    let text = wharf_guest::config::get(key).filter(|text| !text.trim().is_empty())?;
    text.trim()
        .parse()
        .map_err(|_| wharf_guest::warn!("config `{key}` = `{text}` is not a whole number of milliseconds; ignored"))
        .ok()
}

fn random() -> u64 {
    let mut bytes = [0u8; 8];
    wstd::rand::get_random_bytes(&mut bytes);
    u64::from_le_bytes(bytes)
}
