//! Per-route rate limits, per client address: a token bucket (governor's
//! GCRA) for every route whose manifest entry has `rate_limit`. Limiters
//! live host-wide, keyed by component, route and limit, so a reload that
//! keeps a route's limit keeps its buckets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::manifest::RateLimit;

/// Checks between two sweeps of addresses whose buckets are full again.
const SWEEP_EVERY: u64 = 4096;

type Limiter = Arc<DefaultKeyedRateLimiter<IpAddr>>;

struct Limiters {
    by_route: Mutex<HashMap<(String, String, RateLimit), Limiter>>,
    checks: AtomicU64,
}

static LIMITERS: LazyLock<Limiters> =
    LazyLock::new(|| Limiters { by_route: Mutex::default(), checks: AtomicU64::new(0) });

/// Takes a token for `client` on `route` of `component`; when the bucket is
/// empty, how long until the next token.
pub(crate) fn check(component: &str, route: &str, limit: RateLimit, client: IpAddr) -> Result<(), Duration> {
    let limiter = {
        let Ok(mut by_route) = LIMITERS.by_route.lock() else { return Ok(()) };
        by_route
            .entry((component.to_owned(), route.to_owned(), limit))
            .or_insert_with(|| Arc::new(RateLimiter::keyed(quota(limit))))
            .clone()
    };
    if LIMITERS.checks.fetch_add(1, Ordering::Relaxed).is_multiple_of(SWEEP_EVERY) {
        limiter.retain_recent();
    }
    let client = super::front_door::client_key(client);
    limiter.check_key(&client).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

fn quota(limit: RateLimit) -> Quota {
    let period = (limit.per / limit.requests.get()).max(Duration::from_nanos(1));
    Quota::with_period(period).unwrap_or_else(|| Quota::per_second(limit.requests)).allow_burst(limit.burst)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn limit(requests: u32, per: Duration) -> RateLimit {
        let n = NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN);
        RateLimit { requests: n, per, burst: n }
    }

    #[test]
    fn a_burst_then_429_with_the_wait_and_other_addresses_unaffected() {
        let l = limit(3, Duration::from_secs(60));
        let a = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..3 {
            assert!(check("users", "/login", l, a).is_ok());
        }
        let wait = check("users", "/login", l, a).expect_err("the fourth is limited");
        assert!(wait > Duration::from_secs(10) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(check("users", "/login", l, IpAddr::from([10, 0, 0, 2])).is_ok());
        assert!(check("users", "/register", l, a).is_ok(), "routes have their own buckets");
    }
}
