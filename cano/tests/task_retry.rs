//! `RetryMode`, `TaskConfig` and the shared retry loop `run_with_retries`, including its
//! per-attempt timeout and circuit-breaker integration; then the `Task` trait's defaults.
//!
//! Timer-heavy tests run on tokio's paused clock: sleeps complete instantly in real time
//! while `tokio::time::Instant` advances exactly by the slept amounts.

mod support;

use cano::prelude::*;
use cano::task::run_with_retries;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::Recorder;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);
const LONG: Duration = Duration::from_secs(3600);

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

fn breaker(failure_threshold: u32, reset_timeout: Duration) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(CircuitPolicy {
        failure_threshold,
        reset_timeout,
        half_open_max_calls: 1,
    }))
}

fn is_open(b: &CircuitBreaker) -> bool {
    matches!(b.state(), CircuitState::Open { .. })
}

/// A `TaskConfig` whose retry/breaker events go to `recorder` under the name `t`, the way
/// the workflow stamps configs before dispatch.
fn observed(config: TaskConfig, recorder: &Arc<Recorder>) -> TaskConfig {
    let observers: Arc<[Arc<dyn WorkflowObserver>]> =
        Arc::new([recorder.clone() as Arc<dyn WorkflowObserver>]);
    TaskConfig {
        observers: Some(observers),
        task_name: Some("t".into()),
        ..config
    }
}

// ---------------------------------------------------------------------------------------
// RetryMode
// ---------------------------------------------------------------------------------------

#[test]
fn none_allows_one_attempt_and_no_delays() {
    let m = RetryMode::None;
    assert_eq!(m.max_attempts(), 1);
    for a in 0..4 {
        assert_eq!(m.delay_for_attempt(a), None);
    }
}

#[test]
fn fixed_has_a_delay_per_retry_and_none_after() {
    let m = RetryMode::fixed(3, Duration::from_millis(100));
    assert_eq!(m.max_attempts(), 4);
    assert_eq!(m.delay_for_attempt(0), ms(100));
    assert_eq!(m.delay_for_attempt(1), ms(100));
    assert_eq!(m.delay_for_attempt(2), ms(100));
    assert_eq!(m.delay_for_attempt(3), None);
    assert_eq!(m.delay_for_attempt(4), None);
    assert!(matches!(
        m,
        RetryMode::Fixed { retries: 3, delay } if delay == Duration::from_millis(100)
    ));
}

#[test]
fn exponential_uses_the_documented_defaults() {
    let m = RetryMode::exponential(3);
    assert_eq!(m.max_attempts(), 4);
    let RetryMode::ExponentialBackoff {
        max_retries,
        base_delay,
        multiplier,
        max_delay,
        jitter,
    } = m
    else {
        panic!("exponential() builds ExponentialBackoff");
    };
    assert_eq!(max_retries, 3);
    assert_eq!(base_delay, Duration::from_millis(100));
    assert_eq!(multiplier, 2.0);
    assert_eq!(max_delay, Duration::from_secs(30));
    assert_eq!(jitter, 0.1);
}

#[test]
fn exponential_delays_exist_for_each_retry_and_grow() {
    let m = RetryMode::exponential(3);
    let d: Vec<Duration> = (0..3).map(|a| m.delay_for_attempt(a).unwrap()).collect();
    assert_eq!(m.delay_for_attempt(3), None);
    // 100/200/400 ms with ±10 % jitter: the ranges do not overlap, so they increase.
    assert!((90..=110).contains(&d[0].as_millis()), "{d:?}");
    assert!((180..=220).contains(&d[1].as_millis()), "{d:?}");
    assert!((360..=440).contains(&d[2].as_millis()), "{d:?}");
    assert!(d[0] < d[1] && d[1] < d[2]);
}

#[test]
fn exponential_custom_multiplies_from_the_base() {
    let m = RetryMode::exponential_custom(
        2,
        Duration::from_millis(50),
        3.0,
        Duration::from_secs(5),
        0.0,
    );
    assert_eq!(m.max_attempts(), 3);
    assert_eq!(m.delay_for_attempt(0), ms(50));
    assert_eq!(m.delay_for_attempt(1), ms(150));
    assert_eq!(m.delay_for_attempt(2), None);
}

#[test]
fn exponential_custom_caps_at_max_delay() {
    let m = RetryMode::exponential_custom(
        5,
        Duration::from_millis(100),
        10.0,
        Duration::from_millis(500),
        0.0,
    );
    assert_eq!(m.delay_for_attempt(0), ms(100));
    assert_eq!(m.delay_for_attempt(1), ms(500));
    assert_eq!(m.delay_for_attempt(2), ms(500));
    assert_eq!(m.delay_for_attempt(4), ms(500));
    assert_eq!(m.delay_for_attempt(5), None);
}

#[test]
fn jitter_keeps_the_first_delay_within_half_either_way() {
    let m = RetryMode::exponential_custom(
        3,
        Duration::from_millis(100),
        2.0,
        Duration::from_secs(10),
        0.5,
    );
    for _ in 0..20 {
        let d = m.delay_for_attempt(0).unwrap().as_millis();
        assert!((50..=150).contains(&d), "{d} ms outside [50, 150]");
    }
}

#[test]
fn exponential_custom_clamps_jitter_into_zero_to_one() {
    let jitter_of = |j: f64| match RetryMode::exponential_custom(
        2,
        Duration::from_millis(10),
        2.0,
        Duration::from_secs(1),
        j,
    ) {
        RetryMode::ExponentialBackoff { jitter, .. } => jitter,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(jitter_of(-0.5), 0.0);
    assert_eq!(jitter_of(1.5), 1.0);
    assert_eq!(jitter_of(0.25), 0.25);

    let wild = RetryMode::exponential_custom(
        3,
        Duration::from_millis(100),
        2.0,
        Duration::from_secs(1),
        1.5,
    );
    for a in 0..3 {
        let d = wild.delay_for_attempt(a).expect("a retry exists");
        assert!(d <= Duration::from_millis(800), "{d:?}");
    }
    let negative = RetryMode::exponential_custom(
        3,
        Duration::from_millis(100),
        2.0,
        Duration::from_secs(1),
        -0.5,
    );
    assert_eq!(
        negative.delay_for_attempt(0),
        ms(100),
        "clamped to no jitter"
    );
}

#[test]
fn the_default_retry_mode_is_three_exponential_retries() {
    let m = RetryMode::default();
    assert_eq!(m.max_attempts(), 4);
    assert_eq!(
        format!("{m:?}"),
        "ExponentialBackoff { max_retries: 3, base_delay: 100ms, multiplier: 2.0, max_delay: 30s, jitter: 0.1 }"
    );
}

#[test]
fn zero_retries_means_a_single_attempt_for_every_mode() {
    assert_eq!(RetryMode::fixed(0, MS).max_attempts(), 1);
    assert_eq!(RetryMode::exponential(0).max_attempts(), 1);
    assert_eq!(RetryMode::fixed(0, MS).delay_for_attempt(0), None);
    assert_eq!(RetryMode::exponential(0).delay_for_attempt(0), None);
}

// ---------------------------------------------------------------------------------------
// TaskConfig
// ---------------------------------------------------------------------------------------

#[test]
fn task_config_defaults() {
    for cfg in [TaskConfig::new(), TaskConfig::default()] {
        assert_eq!(cfg.retry_mode.max_attempts(), 4);
        assert!(matches!(
            cfg.retry_mode,
            RetryMode::ExponentialBackoff { max_retries: 3, .. }
        ));
        assert_eq!(cfg.attempt_timeout, None);
        assert!(cfg.circuit_breaker.is_none());
        assert!(cfg.observers.is_none());
        assert!(cfg.task_name.is_none());
    }
    let minimal = TaskConfig::minimal();
    assert_eq!(minimal.retry_mode.max_attempts(), 1);
    assert!(matches!(minimal.retry_mode, RetryMode::None));
    assert_eq!(minimal.attempt_timeout, None);
    assert!(minimal.circuit_breaker.is_none());
}

#[test]
fn task_config_builders_set_their_fields() {
    assert_eq!(
        TaskConfig::new()
            .with_fixed_retry(5, MS)
            .retry_mode
            .max_attempts(),
        6
    );
    assert_eq!(
        TaskConfig::new()
            .with_exponential_retry(2)
            .retry_mode
            .max_attempts(),
        3
    );
    assert_eq!(
        TaskConfig::minimal()
            .with_retry(RetryMode::fixed(1, MS))
            .retry_mode
            .max_attempts(),
        2
    );
    let b = breaker(3, LONG);
    let cfg = TaskConfig::minimal()
        .with_attempt_timeout(Duration::from_secs(2))
        .with_circuit_breaker(b.clone());
    assert_eq!(cfg.attempt_timeout, Some(Duration::from_secs(2)));
    assert!(Arc::ptr_eq(cfg.circuit_breaker.as_ref().unwrap(), &b));
    assert_eq!(cfg.retry_mode.max_attempts(), 1, "other fields untouched");
}

#[test]
fn task_config_supports_struct_update_syntax() {
    let cfg = TaskConfig {
        retry_mode: RetryMode::None,
        ..Default::default()
    };
    assert_eq!(cfg.retry_mode.max_attempts(), 1);
    let cloned = cfg.clone();
    assert_eq!(cloned.retry_mode.max_attempts(), 1);
}

// ---------------------------------------------------------------------------------------
// run_with_retries: attempts and error wrapping
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn success_on_the_first_try_calls_once() {
    let calls = AtomicUsize::new(0);
    let out = run_with_retries(&TaskConfig::new(), || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, CanoError>("done")
    })
    .await;
    assert_eq!(out, Ok("done"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn failing_twice_then_succeeding_uses_three_calls() {
    let calls = AtomicUsize::new(0);
    let cfg = TaskConfig::new().with_fixed_retry(2, Duration::from_millis(10));
    let out = run_with_retries(&cfg, || async {
        if calls.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(CanoError::task_execution("flaky"))
        } else {
            Ok(42u32)
        }
    })
    .await;
    assert_eq!(out, Ok(42));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn exhausting_the_retries_wraps_the_last_error_in_retry_exhausted() {
    let calls = AtomicUsize::new(0);
    let cfg = TaskConfig::new().with_fixed_retry(2, Duration::from_millis(10));
    let err = run_with_retries(&cfg, || async {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(CanoError::task_execution(format!("nope {n}")))
    })
    .await
    .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        err,
        CanoError::retry_exhausted("Task failed after 3 attempt(s): Task execution error: nope 2")
    );
    assert_eq!(
        err.to_string(),
        "Retry exhausted: Task failed after 3 attempt(s): Task execution error: nope 2"
    );
}

#[tokio::test(start_paused = true)]
async fn a_single_attempt_returns_the_raw_error() {
    for cfg in [
        TaskConfig::minimal(),
        TaskConfig::new().with_fixed_retry(0, MS),
        TaskConfig::new().with_exponential_retry(0),
    ] {
        let calls = AtomicUsize::new(0);
        let err = run_with_retries(&cfg, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(CanoError::task_execution("raw"))
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(err, CanoError::task_execution("raw"));
    }
}

#[tokio::test(start_paused = true)]
async fn the_default_config_makes_four_attempts() {
    let calls = AtomicUsize::new(0);
    let err = run_with_retries(&TaskConfig::default(), || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(CanoError::generic("x"))
    })
    .await
    .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        err.to_string(),
        "Retry exhausted: Task failed after 4 attempt(s): Error: x"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_wait_the_backoff_before_each_retry_only() {
    let start = Instant::now();
    let call_times = std::sync::Mutex::new(Vec::new());
    let cfg = TaskConfig::new().with_retry(RetryMode::exponential_custom(
        2,
        Duration::from_millis(50),
        3.0,
        Duration::from_secs(5),
        0.0,
    ));
    let _ = run_with_retries(&cfg, || async {
        call_times.lock().unwrap().push(start.elapsed());
        Err::<(), _>(CanoError::generic("x"))
    })
    .await;
    let total = start.elapsed();
    let times = call_times.into_inner().unwrap();
    assert_eq!(times.len(), 3);
    assert_eq!(
        times[0],
        Duration::ZERO,
        "no delay before the first attempt"
    );
    assert!(
        times[1] >= Duration::from_millis(50) && times[1] < Duration::from_millis(52),
        "{times:?}"
    );
    assert!(
        times[2] >= Duration::from_millis(200) && times[2] < Duration::from_millis(203),
        "{times:?}"
    );
    assert_eq!(total, times[2], "no delay after the last attempt");
}

#[tokio::test(start_paused = true)]
async fn a_zero_retry_delay_does_not_wait_for_a_timer() {
    // Put the clock between two millisecond ticks: any timer, even a zero-length sleep,
    // would now have to advance the paused clock to the next tick.
    tokio::time::advance(Duration::from_micros(500)).await;
    let before = Instant::now();
    let calls = AtomicUsize::new(0);
    let cfg = TaskConfig::new().with_fixed_retry(3, Duration::ZERO);
    let err = run_with_retries(&cfg, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(CanoError::generic("again"))
    })
    .await
    .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(err.category(), "retry_exhausted");
    assert_eq!(Instant::now(), before, "the paused clock did not move");
}

#[tokio::test(start_paused = true)]
async fn each_attempt_calls_run_fn_afresh() {
    let created = AtomicUsize::new(0);
    let cfg = TaskConfig::new().with_fixed_retry(2, MS);
    let _ = run_with_retries(&cfg, || {
        created.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), _>(CanoError::generic("x")) }
    })
    .await;
    assert_eq!(created.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_circuit_open_error_from_the_body_is_retried_like_any_error() {
    let calls = AtomicUsize::new(0);
    let cfg = TaskConfig::new().with_fixed_retry(2, MS);
    let err = run_with_retries(&cfg, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(CanoError::circuit_open("manual breaker"))
    })
    .await
    .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        err.to_string(),
        "Retry exhausted: Task failed after 3 attempt(s): Circuit open: manual breaker"
    );
}

// ---------------------------------------------------------------------------------------
// run_with_retries: observers
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn retries_are_reported_with_one_based_attempt_numbers() {
    let rec = Recorder::new();
    let cfg = observed(TaskConfig::new().with_fixed_retry(2, MS), &rec);
    let _ = run_with_retries(&cfg, || async { Err::<(), _>(CanoError::generic("x")) }).await;
    assert_eq!(
        rec.events(),
        ["retry:t:1", "retry:t:2"],
        "no retry event after the last attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unnamed_config_reports_as_task_placeholder() {
    let rec = Recorder::new();
    let observers: Arc<[Arc<dyn WorkflowObserver>]> =
        Arc::new([rec.clone() as Arc<dyn WorkflowObserver>]);
    let cfg = TaskConfig {
        observers: Some(observers),
        ..TaskConfig::new().with_fixed_retry(1, MS)
    };
    let _ = run_with_retries(&cfg, || async { Err::<(), _>(CanoError::generic("x")) }).await;
    assert_eq!(rec.events(), ["retry:<task>:1"]);
}

#[tokio::test(start_paused = true)]
async fn a_success_after_retries_reports_only_the_failed_attempts() {
    let rec = Recorder::new();
    let calls = AtomicUsize::new(0);
    let cfg = observed(TaskConfig::new().with_fixed_retry(5, MS), &rec);
    let out = run_with_retries(&cfg, || async {
        if calls.fetch_add(1, Ordering::SeqCst) < 1 {
            Err(CanoError::generic("x"))
        } else {
            Ok(())
        }
    })
    .await;
    assert_eq!(out, Ok(()));
    assert_eq!(rec.events(), ["retry:t:1"]);
}

// ---------------------------------------------------------------------------------------
// run_with_retries: attempt timeout
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_timed_out_single_attempt_is_a_raw_timeout_error() {
    let cfg = TaskConfig::minimal().with_attempt_timeout(Duration::from_millis(20));
    let start = Instant::now();
    let err = run_with_retries(&cfg, || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, CanoError>(())
    })
    .await
    .unwrap_err();
    assert_eq!(
        err,
        CanoError::timeout("task attempt exceeded attempt_timeout")
    );
    assert_eq!(
        err.to_string(),
        "Timeout error: task attempt exceeded attempt_timeout"
    );
    assert!(
        start.elapsed() < Duration::from_millis(25),
        "cancelled at the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn timed_out_attempts_are_retried_and_then_exhausted() {
    let calls = AtomicUsize::new(0);
    let cfg = TaskConfig::new()
        .with_fixed_retry(2, Duration::from_millis(5))
        .with_attempt_timeout(Duration::from_millis(20));
    let err = run_with_retries(&cfg, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, CanoError>(())
    })
    .await
    .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        err.to_string(),
        "Retry exhausted: Task failed after 3 attempt(s): Timeout error: task attempt exceeded attempt_timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn every_attempt_gets_a_fresh_deadline() {
    let calls = AtomicUsize::new(0);
    let cfg = TaskConfig::new()
        .with_fixed_retry(2, Duration::ZERO)
        .with_attempt_timeout(Duration::from_millis(20));
    let start = Instant::now();
    let out = run_with_retries(&cfg, || async {
        // The first attempt hangs; the second needs 15 ms, which would not fit in what
        // is left of a deadline shared with the first attempt.
        let d = if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            200
        } else {
            15
        };
        tokio::time::sleep(Duration::from_millis(d)).await;
        Ok::<_, CanoError>(d)
    })
    .await;
    assert_eq!(out, Ok(15));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(start.elapsed() >= Duration::from_millis(35));
}

#[tokio::test(start_paused = true)]
async fn without_an_attempt_timeout_an_attempt_may_take_as_long_as_it_needs() {
    let out = run_with_retries(&TaskConfig::minimal(), || async {
        tokio::time::sleep(Duration::from_secs(10 * 60)).await;
        Ok::<_, CanoError>("slow but fine")
    })
    .await;
    assert_eq!(out, Ok("slow but fine"));
}

// ---------------------------------------------------------------------------------------
// run_with_retries: circuit breaker
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn failing_calls_trip_the_breaker_and_later_calls_are_rejected_without_running() {
    let b = breaker(3, LONG);
    let cfg = TaskConfig::minimal().with_circuit_breaker(b.clone());
    let calls = AtomicUsize::new(0);
    let body = || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(CanoError::task_execution("down"))
    };
    for _ in 0..3 {
        assert_eq!(
            run_with_retries(&cfg, body).await,
            Err(CanoError::task_execution("down"))
        );
    }
    assert!(is_open(&b));
    let err = run_with_retries(&cfg, body).await.unwrap_err();
    assert_eq!(err.category(), "circuit_open");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the fourth call never ran the body"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_short_circuits_without_consuming_retries_or_wrapping() {
    let b = breaker(1, LONG);
    drop(b.try_acquire().unwrap()); // trip it
    let rec = Recorder::new();
    let cfg = observed(
        TaskConfig::new()
            .with_fixed_retry(5, Duration::from_millis(10))
            .with_circuit_breaker(b.clone()),
        &rec,
    );
    let calls = AtomicUsize::new(0);
    let start = Instant::now();
    let err = run_with_retries(&cfg, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, CanoError>(())
    })
    .await
    .unwrap_err();
    assert_eq!(
        err,
        CanoError::circuit_open("circuit breaker open: rejecting call")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(start.elapsed(), Duration::ZERO, "no backoff was slept");
    assert_eq!(rec.events(), ["circuit_open:t"]);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_tripped_mid_loop_ends_the_loop_at_the_next_attempt() {
    let b = breaker(2, LONG);
    let rec = Recorder::new();
    let cfg = observed(
        TaskConfig::new()
            .with_fixed_retry(5, Duration::from_millis(10))
            .with_circuit_breaker(b.clone()),
        &rec,
    );
    let calls = AtomicUsize::new(0);
    let start = Instant::now();
    let err = run_with_retries(&cfg, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(CanoError::task_execution("boom"))
    })
    .await
    .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        err.category(),
        "circuit_open",
        "raw CircuitOpen, not RetryExhausted: {err}"
    );
    assert_eq!(rec.events(), ["retry:t:1", "retry:t:2", "circuit_open:t"]);
    assert!(
        start.elapsed() >= Duration::from_millis(20),
        "the backoff after the tripping failure is still slept"
    );
}

#[tokio::test(start_paused = true)]
async fn a_half_open_breaker_closes_after_a_successful_probe() {
    let b = breaker(1, Duration::ZERO);
    let cfg = TaskConfig::minimal().with_circuit_breaker(b.clone());
    let _ = run_with_retries(&cfg, || async { Err::<(), _>(CanoError::generic("x")) }).await;
    assert!(is_open(&b));
    let out = run_with_retries(&cfg, || async { Ok::<_, CanoError>(7) }).await;
    assert_eq!(out, Ok(7));
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_shared_by_two_configs_rejects_both() {
    let b = breaker(2, LONG);
    let a_cfg = TaskConfig::minimal().with_circuit_breaker(b.clone());
    let b_cfg = TaskConfig::new()
        .with_fixed_retry(3, MS)
        .with_circuit_breaker(b.clone());
    for _ in 0..2 {
        let _ = run_with_retries(&a_cfg, || async { Err::<(), _>(CanoError::generic("a")) }).await;
    }
    let ran = AtomicUsize::new(0);
    let err = run_with_retries(&b_cfg, || async {
        ran.fetch_add(1, Ordering::SeqCst);
        Ok::<_, CanoError>(())
    })
    .await
    .unwrap_err();
    assert_eq!(err.category(), "circuit_open");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn successes_are_recorded_so_failures_must_be_consecutive() {
    let b = breaker(2, LONG);
    let cfg = TaskConfig::minimal().with_circuit_breaker(b.clone());
    for round in 0..5 {
        let _ = run_with_retries(&cfg, || async { Err::<(), _>(CanoError::generic("x")) }).await;
        let ok = run_with_retries(&cfg, || async { Ok::<_, CanoError>(round) }).await;
        assert_eq!(ok, Ok(round));
    }
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn timed_out_attempts_count_as_breaker_failures() {
    let b = breaker(2, LONG);
    let cfg = TaskConfig::minimal()
        .with_attempt_timeout(Duration::from_millis(10))
        .with_circuit_breaker(b.clone());
    for _ in 0..2 {
        let err = run_with_retries(&cfg, || async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, CanoError>(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.category(), "timeout");
    }
    assert!(is_open(&b));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_attempt_records_its_permit_as_a_failure() {
    let b = breaker(1, LONG);
    let cfg = TaskConfig::minimal().with_circuit_breaker(b.clone());
    let joined = tokio::spawn(async move {
        run_with_retries(&cfg, || async {
            if true {
                panic!("attempt exploded");
            }
            Ok::<_, CanoError>(())
        })
        .await
    })
    .await;
    assert!(
        joined.unwrap_err().is_panic(),
        "run_with_retries itself does not catch panics"
    );
    assert!(is_open(&b), "the dropped permit counted as a failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_future_is_send_and_can_be_spawned() {
    let cfg = TaskConfig::new().with_fixed_retry(1, Duration::ZERO);
    let handle = tokio::spawn(async move {
        let calls = AtomicUsize::new(0);
        run_with_retries(&cfg, || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(CanoError::generic("first"))
            } else {
                Ok(calls.load(Ordering::SeqCst))
            }
        })
        .await
    });
    assert_eq!(handle.await.unwrap(), Ok(2));
}

// ---------------------------------------------------------------------------------------
// The Task trait's defaults
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Go,
    Done,
}

struct BareOnly;

#[task(state = Step)]
impl BareOnly {
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

struct Neither;

impl Task<Step> for Neither {}

struct RunOnly {
    bare_calls: AtomicUsize,
}

#[task]
impl Task<Step> for RunOnly {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        res.get::<MemoryStore, _>("store")?.put("ran", true)?;
        Ok(TaskResult::Single(Step::Done))
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        self.bare_calls.fetch_add(1, Ordering::SeqCst);
        Ok(TaskResult::Single(Step::Go))
    }
}

struct Renamed;

#[task(state = Step)]
impl Renamed {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "renamed-task".into()
    }
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

struct TraitRenamed;

#[task]
impl Task<Step> for TraitRenamed {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Owned(String::from("trait-renamed"))
    }
    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Done))
    }
}

#[tokio::test]
async fn run_delegates_to_run_bare_by_default() {
    let res: Resources = Resources::new();
    assert_eq!(BareOnly.run(&res).await, Ok(TaskResult::Single(Step::Done)));
    assert_eq!(
        BareOnly.run_bare().await,
        Ok(TaskResult::Single(Step::Done))
    );
}

#[tokio::test]
async fn a_task_overriding_run_never_calls_run_bare_through_run() {
    let task = RunOnly {
        bare_calls: AtomicUsize::new(0),
    };
    let store = MemoryStore::new();
    let res: Resources = Resources::new().insert("store", store.clone());
    assert_eq!(task.run(&res).await, Ok(TaskResult::Single(Step::Done)));
    assert_eq!(task.bare_calls.load(Ordering::SeqCst), 0);
    assert!(store.get::<bool>("ran").unwrap());
}

#[tokio::test]
async fn a_task_implementing_neither_method_fails_at_runtime_naming_its_type() {
    let res: Resources = Resources::new();
    let err = Neither.run(&res).await.unwrap_err();
    assert_eq!(err.category(), "configuration");
    assert!(err.message().contains("Neither"), "{err}");
    assert_eq!(
        err,
        CanoError::configuration(format!(
            "Task<{}>: neither `run` nor `run_bare` was implemented; override one of them",
            std::any::type_name::<Neither>()
        ))
    );
    assert_eq!(Neither.run_bare().await, Err(err));
}

#[test]
fn the_default_name_is_the_type_name_and_overrides_are_verbatim() {
    assert_eq!(
        Task::<Step>::name(&BareOnly),
        std::any::type_name::<BareOnly>()
    );
    assert!(Task::<Step>::name(&BareOnly).contains("BareOnly"));
    assert_eq!(Task::<Step>::name(&Renamed), "renamed-task");
    assert_eq!(Task::<Step>::name(&TraitRenamed), "trait-renamed");
}

#[test]
fn the_default_config_has_retries_and_overrides_are_used() {
    assert_eq!(Task::<Step>::config(&BareOnly).retry_mode.max_attempts(), 4);
    assert_eq!(Task::<Step>::config(&Renamed).retry_mode.max_attempts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_bare_can_be_called_concurrently_through_an_arc() {
    struct Counting(AtomicUsize);
    #[task(state = Step)]
    impl Counting {
        async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(TaskResult::Single(Step::Done))
        }
    }
    let task = Arc::new(Counting(AtomicUsize::new(0)));
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let task = Arc::clone(&task);
            tokio::spawn(async move { task.run_bare().await })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), Ok(TaskResult::Single(Step::Done)));
    }
    assert_eq!(task.0.load(Ordering::SeqCst), 10);
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Store,
}

struct Keyed(&'static str);

#[task(state = Step, key = Key)]
impl Keyed {
    async fn run(&self, res: &Resources<Key>) -> Result<TaskResult<Step>, CanoError> {
        res.get::<MemoryStore, _>(&Key::Store)?
            .append("order", self.0)?;
        Ok(TaskResult::Single(Step::Done))
    }
}

#[tokio::test]
async fn task_objects_with_a_custom_key_run_through_dynamic_dispatch() {
    let store = MemoryStore::new();
    let res = Resources::<Key>::new().insert(Key::Store, store.clone());
    let objects: Vec<cano::TaskObject<Step, Key>> =
        vec![Arc::new(Keyed("a")), Arc::new(Keyed("b"))];
    for obj in &objects {
        assert_eq!(obj.run(&res).await, Ok(TaskResult::Single(Step::Done)));
    }
    assert_eq!(store.get::<Vec<&str>>("order").unwrap(), ["a", "b"]);
    assert!(objects[0].name().ends_with("Keyed"));
}

#[tokio::test]
async fn task_objects_with_the_default_key() {
    let objects: Vec<TaskObject<Step>> = vec![Arc::new(BareOnly), Arc::new(Renamed)];
    let res: Resources = Resources::new();
    let names: Vec<String> = objects.iter().map(|t| t.name().into_owned()).collect();
    assert_eq!(names[1], "renamed-task");
    for obj in objects {
        assert_eq!(obj.run(&res).await, Ok(TaskResult::Single(Step::Done)));
    }
    let boxed: Box<cano::DynTask<Step>> = Box::new(BareOnly);
    assert_eq!(boxed.run_bare().await, Ok(TaskResult::Single(Step::Done)));
}

#[test]
fn task_results_compare_and_clone() {
    let single = TaskResult::Single(Step::Go);
    assert_eq!(single.clone(), TaskResult::Single(Step::Go));
    assert_ne!(single, TaskResult::Single(Step::Done));
    assert_ne!(
        TaskResult::Split(vec![Step::Go]),
        TaskResult::Single(Step::Go)
    );
    assert_eq!(format!("{single:?}"), "Single(Go)");
}
