//! `cano::rate_limit`: the token bucket, the fixed window and the multi-tier limiter, all on
//! Tokio's paused clock so waits are exact.

use cano::prelude::*;
use cano::rate_limit::{
    Meter, MultiRateLimiter, RateLimited, RateLimiter, RateLimiterPolicy, WindowPolicy,
    WindowedRateLimiter,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn bucket(tokens: u32) -> RateLimiter {
    RateLimiter::new(RateLimiterPolicy::per_second(tokens)).unwrap()
}

fn window(limit: u64, len: Duration) -> WindowedRateLimiter {
    WindowedRateLimiter::new(WindowPolicy::new(limit, len)).unwrap()
}

#[test]
fn limiters_and_permits_are_send_sync_and_meter_is_object_safe() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<RateLimiter>();
    send_sync::<WindowedRateLimiter>();
    send_sync::<MultiRateLimiter>();
    send_sync::<RateLimited>();
    send_sync::<Arc<dyn Meter>>();
    fn send<F: Send>(_: &F) {}
    let b = bucket(1);
    send(&b.acquire());
    send(&b.acquire_n(1));
    let w = window(1, ms(10));
    send(&w.acquire());
    let m = MultiRateLimiter::new();
    send(&m.acquire());
}

// ---- token bucket ----

#[tokio::test(start_paused = true)]
async fn bucket_starts_full_and_acquire_waits_exactly_for_each_refill() {
    let limiter = bucket(4); // one token every 250 ms
    let start = Instant::now();
    for _ in 0..4 {
        let _p = limiter.acquire().await;
    }
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "a full bucket does not wait"
    );
    let _p = limiter.acquire().await;
    assert_eq!(start.elapsed(), ms(250));
    let p = limiter.acquire_n(2).await.unwrap();
    assert_eq!(p.cost(), 2);
    assert_eq!(start.elapsed(), ms(750));
}

#[tokio::test(start_paused = true)]
async fn bucket_refills_over_time_up_to_capacity_only() {
    let limiter = bucket(10);
    let _ = limiter.try_acquire_n(10).unwrap();
    assert_eq!(limiter.tokens_available(), 0);
    tokio::time::sleep(ms(300)).await;
    assert_eq!(limiter.tokens_available(), 3);
    tokio::time::sleep(ms(50)).await;
    assert_eq!(limiter.tokens_available(), 3, "half a token is not a token");
    assert_eq!(limiter.time_until(4), Some(ms(50)));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(limiter.tokens_available(), 10, "capped at capacity");
    assert_eq!(limiter.time_until(11), None);
}

#[tokio::test(start_paused = true)]
async fn bucket_burst_adds_capacity_but_not_rate() {
    let policy = RateLimiterPolicy::per_second(2).with_burst(3);
    assert_eq!(policy.capacity(), 5);
    let limiter = RateLimiter::new(policy).unwrap();
    let _ = limiter.try_acquire_n(5).unwrap();
    let err = limiter.try_acquire().unwrap_err();
    assert_eq!(err.retry_after, ms(500));
}

#[tokio::test(start_paused = true)]
async fn bucket_try_acquire_never_waits_and_reports_retry_after() {
    let limiter = bucket(2).with_name("api");
    let _ = limiter.try_acquire().unwrap();
    let _ = limiter.try_acquire().unwrap();
    let start = Instant::now();
    let err = limiter.try_acquire().unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        err,
        RateLimited {
            tier: "api".into(),
            retry_after: ms(500)
        }
    );
    tokio::time::sleep(ms(200)).await;
    assert_eq!(limiter.try_acquire().unwrap_err().retry_after, ms(300));
    let too_big = limiter.try_acquire_n(3).unwrap_err();
    assert_eq!(
        too_big.retry_after,
        Duration::MAX,
        "cost above capacity: never"
    );
    assert_eq!(limiter.try_acquire_n(0).unwrap().cost(), 0);
}

#[tokio::test(start_paused = true)]
async fn rejection_converts_to_a_generic_cano_error_naming_tier_and_wait() {
    let limiter = bucket(1).with_name("search");
    let _ = limiter.try_acquire().unwrap();
    let rejected = limiter.try_acquire().unwrap_err();
    assert_eq!(
        rejected.to_string(),
        "rate limited by tier 'search': retry after 1s"
    );
    let err: CanoError = rejected.into();
    assert!(matches!(err, CanoError::Generic(_)), "{err:?}");
    assert_eq!(err.category(), "generic");
    assert_eq!(
        err.to_string(),
        "Error: rate limited by tier 'search': retry after 1s"
    );
}

#[tokio::test(start_paused = true)]
async fn bucket_acquire_n_above_capacity_is_an_error_not_a_hang() {
    let limiter = bucket(3);
    let err = limiter.acquire_n(4).await.unwrap_err();
    assert_eq!(err.category(), "configuration");
    assert!(
        err.to_string().contains("exceeds the capacity of 3"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn fractional_rate_waits_exactly() {
    let limiter = RateLimiter::new(RateLimiterPolicy::from_rate(0.5, 1).unwrap()).unwrap();
    let start = Instant::now();
    let _a = limiter.acquire().await;
    let _b = limiter.acquire().await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn concurrent_bucket_acquirers_never_exceed_capacity_plus_refill() {
    let limiter = bucket(5); // 5 at once, then one every 200 ms
    let start = Instant::now();
    let times = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for _ in 0..50 {
        let limiter = limiter.clone();
        let times = times.clone();
        handles.push(tokio::spawn(async move {
            let _p = limiter.acquire().await;
            times.lock().push(start.elapsed());
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mut times = times.lock().clone();
    times.sort();
    assert_eq!(times.len(), 50);
    assert_eq!(
        *times.last().unwrap(),
        Duration::from_secs(9),
        "45 refills of 200 ms"
    );
    // By time t, at most 5 + floor(t / 200 ms) permits were granted.
    for (i, t) in times.iter().enumerate() {
        let allowed = 5 + (t.as_millis() / 200) as usize;
        assert!(i < allowed, "permit #{i} at {t:?} exceeds {allowed}");
    }
}

// ---- fixed window ----

#[tokio::test(start_paused = true)]
async fn window_waits_exactly_until_reset() {
    let limiter = window(3, Duration::from_secs(10));
    assert_eq!(limiter.resets_at(), None, "no window until the first call");
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..3 {
        let _p = limiter.acquire().await;
    }
    assert_eq!(limiter.used(), 3);
    assert_eq!(limiter.remaining(), 0);
    assert_eq!(
        limiter.resets_at(),
        Some(start + Duration::from_secs(12)),
        "the window opened at the first call, not at construction"
    );
    let _p = limiter.acquire().await;
    assert_eq!(start.elapsed(), Duration::from_secs(12));
    assert_eq!(limiter.used(), 1, "a new window opened");
}

#[tokio::test(start_paused = true)]
async fn window_try_acquire_reports_time_to_reset() {
    let limiter = window(2, Duration::from_secs(60)).with_name("hourly");
    let _ = limiter.try_acquire_n(2).unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let err = limiter.try_acquire().unwrap_err();
    assert_eq!(err.tier, "hourly");
    assert_eq!(err.retry_after, Duration::from_secs(45));
    assert_eq!(
        limiter.try_acquire_n(3).unwrap_err().retry_after,
        Duration::MAX
    );
    tokio::time::sleep(Duration::from_secs(45)).await;
    assert_eq!(
        limiter.remaining(),
        2,
        "reset exactly at the end of the window"
    );
    let _ = limiter.try_acquire().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_late_refund_does_not_erase_usage_in_a_new_window() {
    let limiter = window(2, Duration::from_secs(1));
    let old = limiter.try_debit(1).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let new = limiter.try_debit(2).unwrap();
    assert_ne!(old, new);
    limiter.credit(1, old);
    assert_eq!(limiter.used(), 2, "the stale credit was ignored");
    limiter.credit(1, new);
    assert_eq!(limiter.used(), 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_window_acquirers_never_exceed_the_limit_per_window() {
    let limiter = window(4, Duration::from_secs(1));
    let start = Instant::now();
    let times = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for _ in 0..30 {
        let limiter = limiter.clone();
        let times = times.clone();
        handles.push(tokio::spawn(async move {
            let _p = limiter.acquire().await;
            times.lock().push(start.elapsed());
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let times = times.lock().clone();
    let mut per_window = [0usize; 8];
    for t in &times {
        per_window[t.as_secs() as usize] += 1;
    }
    assert_eq!(per_window, [4, 4, 4, 4, 4, 4, 4, 2]);
    assert!(
        times.iter().all(|t| t.subsec_nanos() == 0),
        "every grant happens exactly at a window start: {times:?}"
    );
}

// ---- multi-tier ----

#[tokio::test(start_paused = true)]
async fn multi_charges_every_tier_or_none_and_refunds_on_rejection() {
    let fast = bucket(10);
    let daily = window(2, Duration::from_secs(86_400));
    let multi = MultiRateLimiter::new()
        .with_tier("fast", Arc::new(fast.clone()), 3)
        .with_tier("daily", Arc::new(daily.clone()), 1);
    assert_eq!(multi.tier_names().collect::<Vec<_>>(), ["fast", "daily"]);

    let permit = multi.try_acquire().unwrap();
    assert_eq!(
        permit.charged().collect::<Vec<_>>(),
        [("fast", 3), ("daily", 1)]
    );
    let _ = multi.try_acquire().unwrap();
    assert_eq!(fast.tokens_available(), 4);
    assert_eq!(daily.remaining(), 0);

    let err = multi.try_acquire().unwrap_err();
    assert_eq!(err.tier, "daily");
    assert_eq!(err.retry_after, Duration::from_secs(86_400));
    assert_eq!(fast.tokens_available(), 4, "the fast tier was refunded");
    assert_eq!(daily.used(), 2);
}

#[tokio::test(start_paused = true)]
async fn multi_first_tier_rejection_charges_nothing() {
    let fast = bucket(1);
    let daily = window(5, Duration::from_secs(100));
    let multi = MultiRateLimiter::new()
        .with_tier("fast", Arc::new(fast.clone()), 1)
        .with_tier("daily", Arc::new(daily.clone()), 1);
    let _ = multi.try_acquire().unwrap();
    let err = multi.try_acquire().unwrap_err();
    assert_eq!((err.tier.as_str(), err.retry_after), ("fast", ms(1000)));
    assert_eq!(
        daily.used(),
        1,
        "daily was not charged by the rejected call"
    );
}

#[tokio::test(start_paused = true)]
async fn multi_acquire_waits_for_the_blocking_tier_exactly() {
    let per_sec = bucket(2);
    let per_window = window(3, Duration::from_secs(5));
    let multi = MultiRateLimiter::new()
        .with_tier("second", Arc::new(per_sec), 1)
        .with_tier("window", Arc::new(per_window), 1);
    let start = Instant::now();
    let mut grants = Vec::new();
    for _ in 0..4 {
        let _ = multi.acquire().await.unwrap();
        grants.push(start.elapsed());
    }
    // Two from the full bucket, the third after a 500 ms refill, the fourth when the
    // 5 s window resets.
    assert_eq!(grants, [ms(0), ms(0), ms(500), ms(5000)]);
}

#[tokio::test(start_paused = true)]
async fn multi_zero_cost_tiers_are_inert_and_same_meter_twice_is_charged_twice() {
    let shared = bucket(4);
    let never = window(1, Duration::from_secs(1));
    let _ = never.try_acquire().unwrap();
    let multi = MultiRateLimiter::new()
        .with_tier("a", Arc::new(shared.clone()), 1)
        .with_tier("b", Arc::new(shared.clone()), 2)
        .with_tier("inert", Arc::new(never), 0);
    let permit = multi.try_acquire().unwrap();
    assert_eq!(permit.charged().count(), 2);
    assert_eq!(shared.tokens_available(), 1);
}

#[tokio::test(start_paused = true)]
async fn multi_acquire_with_an_impossible_tier_is_an_error() {
    let multi = MultiRateLimiter::new().with_tier("tiny", Arc::new(bucket(1)), 2);
    let err = multi.acquire().await.unwrap_err();
    assert_eq!(err.category(), "configuration");
    assert!(err.to_string().contains("'tiny'"), "{err}");
    assert_eq!(multi.try_acquire().unwrap_err().retry_after, Duration::MAX);
}

#[tokio::test(start_paused = true)]
async fn concurrent_multi_acquirers_never_overdraw_any_tier() {
    let per_sec = bucket(3);
    let per_window = window(5, Duration::from_secs(2));
    let multi = MultiRateLimiter::new()
        .with_tier("second", Arc::new(per_sec), 1)
        .with_tier("window", Arc::new(per_window), 1);
    let start = Instant::now();
    let times = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for _ in 0..20 {
        let multi = multi.clone();
        let times = times.clone();
        handles.push(tokio::spawn(async move {
            let _ = multi.acquire().await.unwrap();
            times.lock().push(start.elapsed());
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mut times = times.lock().clone();
    times.sort();
    assert_eq!(times.len(), 20);
    // Window tier: windows open at the first grant after a reset, so at most 5 grants in
    // any 2 s span starting at a grant.
    for (i, t) in times.iter().enumerate() {
        let in_span = times[i..]
            .iter()
            .take_while(|u| **u < *t + Duration::from_secs(2))
            .count();
        assert!(
            in_span <= 5,
            "{in_span} grants within 2 s of {t:?}: {times:?}"
        );
    }
    // Bucket tier: at most 3 + t * 3/s by time t.
    for (i, t) in times.iter().enumerate() {
        let allowed = 3 + (t.as_millis() * 3 / 1000) as usize;
        assert!(i < allowed, "grant #{i} at {t:?} exceeds {allowed}");
    }
}

/// The token bucket as first specified: a level in scaled units (a token is
/// `refill_period` ns worth, a nanosecond adds `tokens_per_period`), refilled lazily up to
/// the capacity. The limiter must answer every question exactly as this model does.
struct ModelBucket {
    units: u128,
    last: Instant,
    unit: u128,
    gain: u128,
    capacity: u64,
}

impl ModelBucket {
    fn new(policy: RateLimiterPolicy) -> Self {
        let unit = policy.refill_period.as_nanos();
        Self {
            units: u128::from(policy.capacity()) * unit,
            last: Instant::now(),
            unit,
            gain: u128::from(policy.tokens_per_period),
            capacity: policy.capacity(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        if now > self.last {
            let gained = now.duration_since(self.last).as_nanos() * self.gain;
            self.units = (self.units + gained).min(u128::from(self.capacity) * self.unit);
            self.last = now;
        }
    }

    fn time_until(&mut self, cost: u64) -> Option<Duration> {
        self.refill();
        if cost > self.capacity {
            return None;
        }
        let deficit = (u128::from(cost) * self.unit).saturating_sub(self.units);
        Some(Duration::from_nanos(
            u64::try_from(deficit.div_ceil(self.gain)).unwrap(),
        ))
    }

    fn try_debit(&mut self, cost: u64) -> Result<(), Duration> {
        let wait = self.time_until(cost).unwrap_or(Duration::MAX);
        if wait.is_zero() {
            self.units -= u128::from(cost) * self.unit;
            Ok(())
        } else {
            Err(wait)
        }
    }

    fn credit(&mut self, cost: u64) {
        self.refill();
        self.units =
            (self.units + u128::from(cost) * self.unit).min(u128::from(self.capacity) * self.unit);
    }

    fn tokens(&mut self) -> u64 {
        self.refill();
        u64::try_from(self.units / self.unit).unwrap()
    }
}

/// Drives `policy`'s limiter and the model through the same pseudo-random debits,
/// refunds, questions and clock steps (on the paused clock), comparing every answer.
async fn bucket_matches_the_model(policy: RateLimiterPolicy, steps: usize) {
    let limiter = RateLimiter::new(policy).unwrap();
    let mut model = ModelBucket::new(policy);
    let capacity = policy.capacity();
    let token_ns =
        u64::try_from(policy.refill_period.as_nanos() / u128::from(policy.tokens_per_period))
            .unwrap_or(u64::MAX / 4)
            .clamp(1, 1 << 40);
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound.max(1)
    };
    for step in 0..steps {
        let cost = match next(6) {
            0 => 0,
            1 => 1,
            2 => capacity,
            3 => capacity + 1,
            _ => next(capacity + 1),
        };
        let context = format!("{policy:?}, step {step}, cost {cost}");
        match next(5) {
            0 | 1 => {
                let got = limiter.try_acquire_n(cost).map(|p| p.cost());
                let want = model.try_debit(cost).map(|()| cost);
                assert_eq!(got.map_err(|r| r.retry_after), want, "{context}");
            }
            2 => {
                Meter::credit(&limiter, cost, limiter.try_debit(0).unwrap());
                model.credit(cost);
            }
            3 => assert_eq!(
                limiter.time_until(cost),
                model.time_until(cost),
                "{context}"
            ),
            _ => assert_eq!(limiter.tokens_available(), model.tokens(), "{context}"),
        }
        let step_ns = match next(5) {
            0 => 0,
            1 => next(3),
            2 => next(token_ns),
            3 => token_ns.saturating_mul(next(u64::from(policy.max_tokens) + 2)),
            _ => next(token_ns.saturating_mul(3)),
        };
        tokio::time::advance(Duration::from_nanos(step_ns)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn bucket_matches_the_lazy_refill_model_for_even_and_uneven_rates() {
    let policies = [
        RateLimiterPolicy::per_second(4),
        RateLimiterPolicy::per_second(3).with_burst(2),
        RateLimiterPolicy::new(7, Duration::from_nanos(1_000_000_003)),
        RateLimiterPolicy::new(1_000, Duration::from_nanos(999)),
        RateLimiterPolicy::from_rate(0.5, 1).unwrap(),
        RateLimiterPolicy::per_second(u32::MAX / 2),
        RateLimiterPolicy::new(3, Duration::from_secs(400 * 365 * 86_400)),
        RateLimiterPolicy::new(2, Duration::from_secs(1)).with_max_tokens(u32::MAX),
    ];
    for policy in policies {
        bucket_matches_the_model(policy, 3_000).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_uneven_rate_carries_fractions_of_a_nanosecond_between_waits() {
    // 3 per second: a token every 333 333 333.3 ns. The waits round up to whole
    // nanoseconds, but the fractions carry over, so three tokens take exactly a second.
    let limiter = RateLimiter::new(RateLimiterPolicy::per_second(3)).unwrap();
    let _ = limiter.try_acquire_n(3).unwrap();
    let start = Instant::now();
    let mut waits = Vec::new();
    for _ in 0..3 {
        let wait = limiter.try_acquire().unwrap_err().retry_after;
        tokio::time::advance(wait - Duration::from_nanos(1)).await;
        let early = limiter.try_acquire().unwrap_err();
        assert_eq!(
            early.retry_after,
            Duration::from_nanos(1),
            "not a nanosecond early"
        );
        tokio::time::advance(Duration::from_nanos(1)).await;
        let _p = limiter.try_acquire().unwrap();
        waits.push(wait.as_nanos());
    }
    assert_eq!(waits, [333_333_334, 333_333_333, 333_333_333]);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(limiter.tokens_available(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_huge_uneven_bucket_holds_its_capacity_and_waits_exactly() {
    // 2^31 - 1 tokens per second (a prime: the bucket's 63-bit clock spans 2.3 s, and
    // its base moves every 1.15 s).
    let limiter = RateLimiter::new(RateLimiterPolicy::per_second(u32::MAX / 2)).unwrap();
    let capacity = limiter.policy().capacity();
    let _ = limiter.try_acquire_n(capacity).unwrap();
    assert_eq!(limiter.tokens_available(), 0);
    let err = limiter.try_acquire_n(3).unwrap_err();
    // 3 tokens need 3e9 units at 2^31 - 1 units per ns: 1.397 ns, rounded up.
    assert_eq!(err.retry_after, Duration::from_nanos(2));
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(limiter.tokens_available(), capacity, "capped at capacity");
    let _ = limiter.try_acquire_n(capacity).unwrap();
    assert!(
        limiter.try_acquire().is_err(),
        "no more than the capacity at once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refund_fills_the_bucket_no_further_than_its_capacity() {
    let limiter = bucket(4);
    let _ = limiter.try_acquire_n(3).unwrap();
    Meter::credit(&limiter, 10, limiter.try_debit(0).unwrap());
    assert_eq!(limiter.tokens_available(), 4);
    assert!(limiter.try_acquire_n(4).is_ok());
    assert_eq!(limiter.try_acquire().unwrap_err().retry_after, ms(250));
}

#[tokio::test(start_paused = true)]
async fn a_window_past_the_clocks_range_never_resets() {
    let limiter = window(2, Duration::MAX);
    assert_eq!(limiter.resets_at(), None, "no window open yet");
    let _ = limiter.try_acquire_n(2).unwrap();
    assert_eq!(
        limiter.resets_at(),
        None,
        "open, but its end is out of range"
    );
    assert_eq!(
        limiter.try_acquire().unwrap_err().retry_after,
        Duration::MAX
    );
    tokio::time::advance(Duration::from_secs(10 * 365 * 86_400)).await;
    assert_eq!(limiter.used(), 2);
    assert_eq!(limiter.time_until(1), Some(Duration::MAX));
}

#[tokio::test(start_paused = true)]
async fn a_window_opens_at_the_first_debit_and_reports_its_end() {
    let limiter = window(3, ms(100));
    tokio::time::advance(ms(40)).await;
    assert_eq!(limiter.resets_at(), None);
    let _ = limiter.try_acquire_n(0).unwrap();
    assert_eq!(limiter.resets_at(), None, "a zero cost opens nothing");
    let opened = Instant::now();
    let _ = limiter.try_acquire().unwrap();
    assert_eq!(limiter.resets_at(), Some(opened + ms(100)));
    tokio::time::advance(ms(99)).await;
    assert_eq!(limiter.remaining(), 2);
    tokio::time::advance(ms(1)).await;
    assert_eq!(limiter.remaining(), 3, "reset exactly at the end");
    assert_eq!(limiter.resets_at(), None);
}

// ---- bad policies ----

#[test]
fn bad_policies_are_configuration_errors_not_panics() {
    let bad_buckets = [
        RateLimiterPolicy::per_second(0),
        RateLimiterPolicy::new(5, Duration::ZERO),
        RateLimiterPolicy {
            max_tokens: 5,
            tokens_per_period: 0,
            refill_period: Duration::from_secs(1),
            burst: 0,
        },
        RateLimiterPolicy::per_second(3).with_max_tokens(0),
    ];
    for policy in bad_buckets {
        let err = RateLimiter::new(policy).unwrap_err();
        assert_eq!(err.category(), "configuration", "{policy:?}");
    }
    // Zero max_tokens is fine when the burst gives capacity.
    assert!(
        RateLimiter::new(
            RateLimiterPolicy::per_second(3)
                .with_max_tokens(0)
                .with_burst(1)
        )
        .is_ok()
    );

    for rate in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -1.0, 1e300] {
        let err = RateLimiterPolicy::from_rate(rate, 1).unwrap_err();
        assert_eq!(err.category(), "configuration", "{rate}");
    }
    let err = RateLimiter::new(RateLimiterPolicy::from_rate(2.0, 0).unwrap()).unwrap_err();
    assert_eq!(err.category(), "configuration");

    for policy in [
        WindowPolicy::per_second(0),
        WindowPolicy::new(3, Duration::ZERO),
        WindowPolicy::per_hours(3, 0),
    ] {
        let err = WindowedRateLimiter::new(policy).unwrap_err();
        assert_eq!(err.category(), "configuration", "{policy:?}");
    }
}

// ---- as resources in a workflow ----

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Call,
    Done,
}

struct CallApi {
    calls: Arc<AtomicUsize>,
    total: usize,
}

#[task(state = S)]
impl CallApi {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(&self, res: &Resources) -> Result<TaskResult<S>, CanoError> {
        let limiter = res.get::<RateLimiter, _>("api")?;
        let _permit = limiter.acquire().await;
        let quota = res.get::<WindowedRateLimiter, _>("quota")?;
        let _q = quota.try_acquire()?;
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(TaskResult::Single(if n == self.total {
            S::Done
        } else {
            S::Call
        }))
    }
}

fn api_workflow(calls: &Arc<AtomicUsize>, total: usize, quota: u64) -> Workflow<S> {
    let resources = Resources::new().insert("api", bucket(2)).insert(
        "quota",
        window(quota, Duration::from_secs(3600)).with_name("hourly"),
    );
    Workflow::new(resources)
        .register(
            S::Call,
            CallApi {
                calls: calls.clone(),
                total,
            },
        )
        .add_exit_state(S::Done)
}

#[tokio::test(start_paused = true)]
async fn a_task_rate_limits_itself_through_resources() {
    let calls = Arc::new(AtomicUsize::new(0));
    let wf = api_workflow(&calls, 5, 100);
    let start = Instant::now();
    assert_eq!(wf.orchestrate(S::Call).await, Ok(S::Done));
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // Two at once from the full bucket, then one every 500 ms.
    assert_eq!(start.elapsed(), ms(1500));
}

#[tokio::test(start_paused = true)]
async fn a_rejection_inside_a_task_fails_the_run_with_the_documented_text() {
    let calls = Arc::new(AtomicUsize::new(0));
    let wf = api_workflow(&calls, 5, 2);
    let err = wf.orchestrate(S::Call).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        err.to_string()
            .contains("rate limited by tier 'hourly': retry after"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn all_three_limiters_are_resources() {
    let multi = MultiRateLimiter::new().with_tier("a", Arc::new(bucket(1)), 1);
    let res: Resources = Resources::new()
        .insert("bucket", bucket(1))
        .insert("window", window(1, ms(100)))
        .insert("multi", multi);
    res.setup_all().await.unwrap();
    let _ = res
        .get::<RateLimiter, _>("bucket")
        .unwrap()
        .try_acquire()
        .unwrap();
    let _ = res
        .get::<WindowedRateLimiter, _>("window")
        .unwrap()
        .try_acquire()
        .unwrap();
    let _ = res
        .get::<MultiRateLimiter, _>("multi")
        .unwrap()
        .try_acquire()
        .unwrap();
    assert!(res.aggregate_health().await.is_healthy());
    res.teardown_all().await;
}
