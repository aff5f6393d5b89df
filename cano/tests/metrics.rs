//! The `metrics` feature: what the engine and `MetricsObserver` report to a recorder, and
//! that nothing is reported (or formatted) until metrics are switched on.
#![cfg(feature = "metrics")]

use cano::metrics::{self as cano_metrics, MetricsObserver, names};
use cano::prelude::*;
use cano::{CircuitBreaker, CircuitPolicy, MemoryCheckpointStore};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything a recorder was told, keyed `name{label=value,…}` (labels sorted).
#[derive(Default)]
struct TestRecorder {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
    described: Mutex<Vec<String>>,
    registrations: AtomicU64,
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn key_text(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    if labels.is_empty() {
        key.name().to_string()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, _unit: Option<Unit>, _d: SharedString) {
        self.described
            .lock()
            .unwrap()
            .push(key.as_str().to_string());
    }
    fn describe_gauge(&self, key: KeyName, _unit: Option<Unit>, _d: SharedString) {
        self.described
            .lock()
            .unwrap()
            .push(key.as_str().to_string());
    }
    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, _d: SharedString) {
        self.described
            .lock()
            .unwrap()
            .push(key.as_str().to_string());
    }
    fn register_counter(&self, key: &Key, _m: &Metadata<'_>) -> Counter {
        self.registrations.fetch_add(1, Ordering::SeqCst);
        let c = self
            .counters
            .lock()
            .unwrap()
            .entry(key_text(key))
            .or_default()
            .clone();
        Counter::from_arc(c)
    }
    fn register_gauge(&self, key: &Key, _m: &Metadata<'_>) -> Gauge {
        self.registrations.fetch_add(1, Ordering::SeqCst);
        let g = self
            .gauges
            .lock()
            .unwrap()
            .entry(key_text(key))
            .or_default()
            .clone();
        Gauge::from_arc(g)
    }
    fn register_histogram(&self, key: &Key, _m: &Metadata<'_>) -> Histogram {
        self.registrations.fetch_add(1, Ordering::SeqCst);
        let h = self
            .histograms
            .lock()
            .unwrap()
            .entry(key_text(key))
            .or_default()
            .clone();
        Histogram::from_arc(h)
    }
}

impl TestRecorder {
    fn counter(&self, key: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
    fn gauge(&self, key: &str) -> f64 {
        self.gauges
            .lock()
            .unwrap()
            .get(key)
            .map_or(0.0, |g| f64::from_bits(g.load(Ordering::SeqCst)))
    }
    fn samples(&self, key: &str) -> usize {
        self.histograms
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |h| h.0.lock().unwrap().len())
    }
    fn keys(&self) -> Vec<String> {
        self.counters.lock().unwrap().keys().cloned().collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Flaky,
    Fanout,
    Reserve,
    Ship,
    Done,
}

/// Fails its first attempt.
struct Flaky(Arc<AtomicU32>);

#[task(state = S)]
impl Flaky {
    fn config(&self) -> TaskConfig {
        TaskConfig::new().with_fixed_retry(3, Duration::ZERO)
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "flaky".into()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(CanoError::task_execution("first try"));
        }
        Ok(TaskResult::Single(S::Fanout))
    }
}

struct Member(bool);

#[task(state = S)]
impl Member {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        if self.0 {
            Ok(TaskResult::Single(S::Reserve))
        } else {
            Err(CanoError::task_execution("member down"))
        }
    }
}

struct Reserve;

#[saga::task(state = S)]
impl Reserve {
    type Output = u8;
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "reserve".into()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<S>, u8), CanoError> {
        Ok((TaskResult::Single(S::Ship), 1))
    }
    async fn compensate(&self, _res: &Resources, _out: u8) -> Result<(), CanoError> {
        Ok(())
    }
}

struct Ship(bool);

#[task(state = S)]
impl Ship {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "ship".into()
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        if self.0 {
            Ok(TaskResult::Single(S::Done))
        } else {
            Err(CanoError::task_execution("carrier down"))
        }
    }
}

fn workflow(ship: bool, store: &Arc<MemoryCheckpointStore>) -> Workflow<S> {
    Workflow::bare()
        .register(S::Flaky, Flaky(Arc::default()))
        .register_split(
            S::Fanout,
            vec![Member(true), Member(true), Member(false)],
            JoinConfig::new(JoinStrategy::Quorum(2), S::Reserve),
        )
        .register_with_compensation(S::Reserve, Reserve)
        .register(S::Ship, Ship(ship))
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
}

/// Run `f` on a current-thread runtime with `recorder` as the thread's recorder.
fn recorded<T>(recorder: &TestRecorder, f: impl std::future::Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || rt.block_on(f))
}

/// The tests of this file share the process-wide switch: one test, in steps.
#[test]
fn the_engine_reports_only_once_switched_on() {
    let store = Arc::new(MemoryCheckpointStore::new());

    // Off (the default): a full run reports nothing at all, and no label is built.
    let quiet = TestRecorder::default();
    assert!(!cano_metrics::is_enabled());
    recorded(&quiet, async {
        let wf = workflow(true, &store).with_workflow_id("run-off");
        assert_eq!(wf.orchestrate(S::Flaky).await, Ok(S::Done));
    });
    assert_eq!(quiet.registrations.load(Ordering::SeqCst), 0);

    // On: a successful run and a failed one (rolled back).
    cano_metrics::enable();
    let rec = TestRecorder::default();
    recorded(&rec, async {
        let ok = workflow(true, &store).with_workflow_id("run-ok");
        assert_eq!(ok.orchestrate(S::Flaky).await, Ok(S::Done));
        let failed = workflow(false, &store).with_workflow_id("run-failed");
        let err = failed.orchestrate(S::Flaky).await.unwrap_err();
        assert_eq!(err.message(), "carrier down");
    });
    assert_eq!(rec.counter("cano_workflow_runs_total{outcome=success}"), 1);
    assert_eq!(rec.counter("cano_workflow_runs_total{outcome=failure}"), 1);
    assert_eq!(rec.samples(names::WORKFLOW_DURATION), 2);
    assert_eq!(rec.gauge(names::WORKFLOW_ACTIVE), 0.0, "both runs ended");
    // Flaky: 2 attempts per run; each split member one; Reserve and Ship one each.
    assert_eq!(
        rec.counter("cano_task_attempts_total{outcome=failure}"),
        2 + 2 + 1
    );
    assert_eq!(
        rec.counter("cano_task_attempts_total{outcome=success}"),
        2 + 4 + 2 + 1
    );
    assert_eq!(
        rec.counter("cano_split_branch_results_total{result=success}"),
        4
    );
    assert_eq!(
        rec.counter("cano_split_branch_results_total{result=failure}"),
        2
    );
    assert_eq!(
        rec.samples("cano_task_duration_seconds{kind=single,state=Flaky}"),
        2
    );
    assert_eq!(
        rec.samples("cano_task_duration_seconds{kind=split,state=Fanout}"),
        2
    );
    assert_eq!(
        rec.samples("cano_task_duration_seconds{kind=compensatable,state=Reserve}"),
        2
    );
    // Entry rows: 5 states in the good run, 4 in the failed one (+ rollback rows).
    assert!(rec.counter("cano_checkpoint_appends_total{result=ok}") >= 9);
    assert_eq!(
        rec.counter("cano_checkpoint_appends_total{result=error}"),
        0
    );
    assert_eq!(rec.counter("cano_checkpoint_clears_total{result=ok}"), 2);
    assert_eq!(rec.counter("cano_compensations_run_total{result=ok}"), 1);
    assert_eq!(
        rec.counter("cano_compensation_drains_total{outcome=clean}"),
        1
    );
    // No run id, error text or payload ever becomes a label.
    for key in rec.keys() {
        assert!(!key.contains("run-"), "a run id as a label: {key}");
        assert!(!key.contains("carrier"), "an error text as a label: {key}");
    }

    // The observer counts what observers see.
    let observed = TestRecorder::default();
    recorded(&observed, async {
        let wf = workflow(true, &Arc::new(MemoryCheckpointStore::new()))
            .with_workflow_id("run-observed")
            .with_observer(Arc::new(MetricsObserver::new()));
        assert_eq!(wf.orchestrate(S::Flaky).await, Ok(S::Done));
    });
    assert_eq!(observed.counter("cano_state_enters_total{state=Flaky}"), 1);
    assert_eq!(observed.counter("cano_state_enters_total{state=Done}"), 1);
    assert_eq!(observed.counter("cano_task_retries_total{task=flaky}"), 1);
    assert_eq!(
        observed.counter("cano_observed_task_runs_total{outcome=success,task=ship}"),
        1
    );
    assert_eq!(
        observed.counter("cano_observed_runs_total{outcome=success}"),
        1
    );
    // Five entry rows, Reserve's completion row, two split member rows.
    assert_eq!(observed.counter(names::CHECKPOINTS_OBSERVED), 8);

    // A breaker's life: admitted, opened, rejected, half-open, closed.
    let breaker_rec = TestRecorder::default();
    metrics::with_local_recorder(&breaker_rec, || {
        let breaker = Arc::new(CircuitBreaker::new(CircuitPolicy {
            failure_threshold: 1,
            reset_timeout: Duration::ZERO,
            half_open_max_calls: 1,
        }));
        breaker.record_failure(breaker.try_acquire().unwrap());
        let probe = breaker.try_acquire().unwrap();
        assert!(
            breaker
                .try_acquire()
                .unwrap_err()
                .is_circuit_half_open_busy()
        );
        breaker.record_success(probe);
    });
    let t =
        |x: &str| breaker_rec.counter(&format!("cano_circuit_transitions_total{{transition={x}}}"));
    assert_eq!(
        (
            t("closed_to_open"),
            t("open_to_halfopen"),
            t("halfopen_to_closed")
        ),
        (1, 1, 1)
    );
    assert_eq!(
        breaker_rec.counter("cano_circuit_acquires_total{result=admitted}"),
        2
    );
    assert_eq!(
        breaker_rec.counter("cano_circuit_acquires_total{result=rejected_half_open_busy}"),
        1
    );
    assert_eq!(
        breaker_rec.counter("cano_circuit_outcomes_total{outcome=failure}"),
        1
    );

    // describe() names every metric with the recorder.
    let described = TestRecorder::default();
    metrics::with_local_recorder(&described, cano_metrics::describe);
    let names = described.described.lock().unwrap().clone();
    for name in [
        names::WORKFLOW_RUNS,
        names::TASK_DURATION,
        names::WORKFLOW_ACTIVE,
        names::SIGNALS,
    ] {
        assert!(names.contains(&name.to_string()), "{name} not described");
    }
    assert!(names.iter().all(|n| n.starts_with("cano_")));

    // Off again: nothing more.
    cano_metrics::disable();
    let after = TestRecorder::default();
    recorded(&after, async {
        let wf = workflow(true, &store).with_workflow_id("run-off-again");
        assert_eq!(wf.orchestrate(S::Flaky).await, Ok(S::Done));
    });
    assert_eq!(after.registrations.load(Ordering::SeqCst), 0);
}
