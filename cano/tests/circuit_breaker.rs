//! `CircuitBreaker`, `CircuitPolicy`, `CircuitState` and `Permit` on their own. The
//! breaker's integration with the retry loop is in `task_retry.rs`.
//!
//! The breaker reads the engine's clock (Tokio's): tests about deadlines run on a paused
//! clock and assert them exactly; the others use a zero `reset_timeout` (the next
//! `try_acquire` may probe at once) or a long one (it may not).

use cano::circuit::Permit;
mod support;

use cano::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{breaker, fail_once, succeed_once};

const LONG: Duration = Duration::from_secs(3600);

fn is_open(b: &CircuitBreaker) -> bool {
    matches!(b.state(), CircuitState::Open { .. })
}

#[test]
fn the_default_policy_is_five_failures_thirty_seconds_one_probe() {
    let p = CircuitPolicy::default();
    assert_eq!(p.failure_threshold, 5);
    assert_eq!(p.reset_timeout, Duration::from_secs(30));
    assert_eq!(p.half_open_max_calls, 1);
    let b = CircuitBreaker::new(p);
    assert_eq!(b.policy().failure_threshold, 5);
    assert_eq!(b.policy().reset_timeout, Duration::from_secs(30));
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn a_new_breaker_is_closed_and_admits_calls() {
    let b = breaker(3, LONG, 1);
    assert_eq!(b.state(), CircuitState::Closed);
    for _ in 0..10 {
        succeed_once(&b);
    }
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_up_to_the_threshold_open_the_breaker() {
    let b = breaker(3, LONG, 1);
    fail_once(&b);
    fail_once(&b);
    assert_eq!(b.state(), CircuitState::Closed, "two of three failures");
    let before = now();
    fail_once(&b);
    assert_eq!(
        b.state(),
        CircuitState::Open {
            until: before + LONG
        }
    );
    // Rejected until exactly `reset_timeout` has passed on the engine clock.
    tokio::time::advance(LONG - Duration::from_millis(1)).await;
    assert_eq!(b.try_acquire().unwrap_err().category(), "circuit_open");
    tokio::time::advance(Duration::from_millis(1)).await;
    let probe = b
        .try_acquire()
        .expect("a probe is let through at the deadline");
    assert_eq!(b.state(), CircuitState::HalfOpen);
    b.record_success(probe);
    assert_eq!(b.state(), CircuitState::Closed);
}

/// The engine clock's "now" (Tokio's).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[test]
fn an_open_breaker_rejects_with_a_circuit_open_error() {
    let b = breaker(1, LONG, 1);
    fail_once(&b);
    for _ in 0..3 {
        let err = b.try_acquire().unwrap_err();
        assert_eq!(err.category(), "circuit_open");
        assert_eq!(
            err,
            CanoError::circuit_open("circuit breaker open: rejecting call")
        );
    }
    assert!(is_open(&b), "rejections do not change the state");
}

#[test]
fn a_success_resets_the_consecutive_failure_count() {
    let b = breaker(3, LONG, 1);
    fail_once(&b);
    fail_once(&b);
    succeed_once(&b);
    fail_once(&b);
    fail_once(&b);
    assert_eq!(
        b.state(),
        CircuitState::Closed,
        "count restarted after success"
    );
    fail_once(&b);
    assert!(is_open(&b));
}

#[test]
fn open_turns_half_open_only_when_try_acquire_runs_after_the_reset_timeout() {
    // Not yet elapsed: still rejected, still Open.
    let waiting = breaker(1, LONG, 1);
    fail_once(&waiting);
    assert!(waiting.try_acquire().is_err());
    assert!(is_open(&waiting));

    // Elapsed (zero timeout): `state()` does not promote by itself...
    let elapsed = breaker(1, Duration::ZERO, 1);
    fail_once(&elapsed);
    assert!(
        is_open(&elapsed),
        "state() reports Open until someone asks for a permit"
    );
    assert!(is_open(&elapsed));
    // ...the next try_acquire does, and admits a probe.
    let probe = elapsed
        .try_acquire()
        .expect("probe admitted after reset_timeout");
    assert_eq!(elapsed.state(), CircuitState::HalfOpen);
    elapsed.record_success(probe);
    assert_eq!(elapsed.state(), CircuitState::Closed);
}

#[test]
fn half_open_admits_max_calls_probes_and_closes_after_that_many_successes() {
    let b = breaker(1, Duration::ZERO, 2);
    fail_once(&b);
    let p1 = b.try_acquire().expect("first probe");
    let p2 = b.try_acquire().expect("second probe");
    let third = b.try_acquire().unwrap_err();
    assert_eq!(
        third,
        CanoError::circuit_open("circuit breaker half-open: trial slot exhausted")
    );
    assert!(third.is_circuit_half_open_busy());
    assert_eq!(b.state(), CircuitState::HalfOpen);

    b.record_success(p1);
    assert_eq!(b.state(), CircuitState::HalfOpen, "one of two successes");
    b.record_success(p2);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn an_open_breaker_is_not_reported_as_half_open_busy() {
    let b = breaker(1, LONG, 1);
    fail_once(&b);
    let err = b.try_acquire().unwrap_err();
    assert_eq!(err.category(), "circuit_open");
    assert!(!err.is_circuit_half_open_busy());
}

#[tokio::test(start_paused = true)]
async fn a_reset_timeout_too_large_for_the_clock_keeps_the_breaker_open() {
    let b = breaker(1, Duration::MAX, 1);
    fail_once(&b);
    assert!(is_open(&b));
    tokio::time::advance(Duration::from_secs(10 * 365 * 24 * 3600)).await;
    let err = b.try_acquire().unwrap_err();
    assert!(!err.is_circuit_half_open_busy());
    assert!(is_open(&b), "still open after ten years");
}

#[test]
fn a_probe_success_frees_its_slot_for_another_probe() {
    let b = breaker(1, Duration::ZERO, 2);
    fail_once(&b);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    b.record_success(p1);
    let p3 = b.try_acquire().expect("slot freed by the first success");
    b.record_success(p2);
    assert_eq!(b.state(), CircuitState::Closed);
    // p3 belongs to the half-open session that just ended: it is stale now.
    b.record_failure(p3);
    assert_eq!(b.state(), CircuitState::Closed, "stale failure ignored");
}

#[test]
fn a_probe_failure_reopens_the_breaker() {
    let b = breaker(1, Duration::from_millis(0), 2);
    fail_once(&b);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    b.record_failure(p1);
    assert!(is_open(&b));
    // The other probe of the failed session no longer counts.
    b.record_success(p2);
    assert!(
        is_open(&b),
        "a stale success does not close the reopened breaker"
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_failure_reopens_for_a_fresh_reset_timeout() {
    let b = Arc::new(CircuitBreaker::new(CircuitPolicy {
        failure_threshold: 1,
        reset_timeout: Duration::from_secs(5),
        half_open_max_calls: 1,
    }));
    fail_once(&b);
    tokio::time::advance(Duration::from_secs(7)).await;
    let probe = b.try_acquire().unwrap();
    let before = now();
    b.record_failure(probe);
    assert_eq!(
        b.state(),
        CircuitState::Open {
            until: before + Duration::from_secs(5)
        }
    );
}

#[test]
fn dropped_permits_count_as_failures() {
    let b = breaker(3, LONG, 1);
    for _ in 0..2 {
        drop(b.try_acquire().unwrap());
    }
    assert_eq!(b.state(), CircuitState::Closed);
    drop(b.try_acquire().unwrap());
    assert!(
        is_open(&b),
        "three dropped permits trip a threshold-3 breaker"
    );
}

#[test]
fn a_dropped_half_open_probe_reopens_the_breaker() {
    let b = breaker(1, Duration::ZERO, 1);
    fail_once(&b);
    let probe = b.try_acquire().unwrap();
    assert_eq!(b.state(), CircuitState::HalfOpen);
    drop(probe);
    assert!(is_open(&b));
}

#[test]
fn a_stale_permit_from_before_a_trip_does_not_close_a_later_half_open() {
    let b = breaker(1, Duration::ZERO, 1);
    let stale = b.try_acquire().unwrap(); // Closed era
    fail_once(&b); // trips
    let probe = b.try_acquire().unwrap(); // HalfOpen era
    assert_eq!(b.state(), CircuitState::HalfOpen);

    b.record_success(stale);
    assert_eq!(b.state(), CircuitState::HalfOpen, "stale success ignored");
    assert!(
        b.try_acquire().is_err(),
        "the stale permit did not free the probe slot"
    );
    b.record_success(probe);
    assert_eq!(b.state(), CircuitState::Closed);
}

#[test]
fn a_stale_failure_does_not_count_against_a_closed_breaker() {
    let b = breaker(2, Duration::ZERO, 1);
    let stale = b.try_acquire().unwrap();
    fail_once(&b);
    fail_once(&b); // Open
    succeed_once(&b); // HalfOpen probe succeeds: Closed again, count 0
    assert_eq!(b.state(), CircuitState::Closed);
    b.record_failure(stale);
    fail_once(&b);
    assert_eq!(
        b.state(),
        CircuitState::Closed,
        "only one current failure so far"
    );
}

#[test]
fn full_round_trip_through_every_state() {
    let b = breaker(2, Duration::ZERO, 1);
    fail_once(&b);
    fail_once(&b);
    assert!(is_open(&b), "Closed -> Open");

    let probe = b.try_acquire().unwrap();
    assert_eq!(b.state(), CircuitState::HalfOpen, "Open -> HalfOpen");
    b.record_failure(probe);
    assert!(is_open(&b), "HalfOpen -> Open");

    let probe = b.try_acquire().unwrap();
    assert_eq!(b.state(), CircuitState::HalfOpen, "Open -> HalfOpen again");
    b.record_success(probe);
    assert_eq!(b.state(), CircuitState::Closed, "HalfOpen -> Closed");

    fail_once(&b);
    assert_eq!(
        b.state(),
        CircuitState::Closed,
        "closing reset the count: a full threshold is needed again"
    );
    fail_once(&b);
    assert!(is_open(&b), "Closed -> Open with a fresh threshold");
}

#[test]
#[should_panic(expected = "failure_threshold must be >= 1")]
fn a_zero_failure_threshold_panics() {
    let _ = CircuitBreaker::new(CircuitPolicy {
        failure_threshold: 0,
        ..CircuitPolicy::default()
    });
}

#[test]
#[should_panic(expected = "half_open_max_calls must be >= 1")]
fn zero_half_open_calls_panics() {
    let _ = CircuitBreaker::new(CircuitPolicy {
        half_open_max_calls: 0,
        ..CircuitPolicy::default()
    });
}

#[test]
#[should_panic(expected = "half_open_max_calls must be <= 2147483647")]
fn huge_half_open_calls_panics() {
    let _ = CircuitBreaker::new(CircuitPolicy {
        half_open_max_calls: u32::MAX,
        ..CircuitPolicy::default()
    });
}

#[test]
fn the_largest_allowed_half_open_calls_is_accepted() {
    let b = CircuitBreaker::new(CircuitPolicy {
        half_open_max_calls: u32::MAX / 2,
        ..CircuitPolicy::default()
    });
    assert_eq!(b.policy().half_open_max_calls, 2_147_483_647);
}

#[test]
fn debug_formats_of_state_and_permit() {
    let b = breaker(1, LONG, 1);
    let permit = b.try_acquire().unwrap();
    assert_eq!(
        format!("{permit:?}"),
        "Permit { was_half_open: false, consumed: false, epoch: 0 }"
    );
    b.record_failure(permit);
    let state = format!("{:?}", b.state());
    assert!(state.starts_with("Open { until:"), "{state}");
    assert_eq!(format!("{:?}", CircuitState::Closed), "Closed");
    assert_eq!(format!("{:?}", CircuitState::HalfOpen), "HalfOpen");
}

#[test]
fn clones_share_state() {
    let original = breaker(2, LONG, 1);
    let clone = Arc::new((*original).clone());
    fail_once(&clone);
    fail_once(&original);
    assert!(is_open(&original));
    assert!(is_open(&clone));
    assert!(clone.try_acquire().is_err());
}

#[test]
fn a_breaker_stored_in_resources_shares_state_with_the_original() {
    let original = breaker(2, LONG, 1);
    let res: Resources = Resources::new().insert("breaker", (*original).clone());
    let from_res = res.get::<CircuitBreaker, _>("breaker").unwrap();
    fail_once(&from_res);
    fail_once(&from_res);
    assert!(
        is_open(&original),
        "tripped through Resources, seen via the original"
    );
    assert_eq!(
        original.try_acquire().unwrap_err().category(),
        "circuit_open"
    );
}

#[test]
fn concurrent_failures_from_many_threads_trip_the_breaker_once() {
    let b = breaker(50, LONG, 1);
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                for _ in 0..5 {
                    if let Ok(p) = b.try_acquire() {
                        b.record_failure(p);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(is_open(&b), "50 failures reach a threshold of 50");
}

#[test]
fn breakers_and_permits_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CircuitBreaker>();
    send_sync::<Arc<CircuitBreaker>>();
    send_sync::<Permit>();
    send_sync::<CircuitPermit>();
    send_sync::<CircuitState>();
    send_sync::<CircuitPolicy>();
}

#[test]
fn a_permit_can_be_recorded_from_another_thread() {
    let b = breaker(1, LONG, 1);
    let permit: CircuitPermit = b.try_acquire().unwrap();
    let b2 = Arc::clone(&b);
    std::thread::spawn(move || b2.record_failure(permit))
        .join()
        .unwrap();
    assert!(is_open(&b));
}
