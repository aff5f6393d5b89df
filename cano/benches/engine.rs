//! Criterion benchmarks for the engine's hot paths, mirroring the scenarios of the
//! side-by-side comparison with cano 0.12.0 (BENCHMARKS.md), plus how cost grows with
//! workflow length, split width and the number of concurrent runs.
//!
//! Run with: `cargo bench -p cano --bench engine` (add `-- <filter>` for one group), and
//! `--features recovery` for the redb checkpoint benches. Two floors sit beside the
//! scenarios they bound: `resources_get_floor` (the `Arc` clone, type check and drop that
//! `Resources::get`'s return type implies) and `disk_sync_floor` (one small write and
//! `fdatasync` in a file's allocated space, what every durable checkpoint row waits for).

use cano::prelude::*;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// States `0..n` advance to the next; `n` is the exit state.
#[derive(Clone)]
struct Step(u32);

#[task(state = u32)]
impl Step {
    async fn run_bare(&self) -> Result<TaskResult<u32>, CanoError> {
        Ok(TaskResult::Single(self.0 + 1))
    }
}

fn linear(n: u32) -> Workflow<u32> {
    (0..n)
        .fold(Workflow::bare(), |wf, i| wf.register(i, Step(i)))
        .add_exit_state(n)
}

/// A split member that succeeds at once.
#[derive(Clone)]
struct Branch;

#[task(state = u32)]
impl Branch {
    async fn run_bare(&self) -> Result<TaskResult<u32>, CanoError> {
        Ok(TaskResult::Single(1))
    }
}

fn split(width: usize) -> Workflow<u32> {
    Workflow::bare()
        .register_split(
            0,
            vec![Branch; width],
            JoinConfig::new(JoinStrategy::All, 1),
        )
        .add_exit_state(1)
}

/// Fails twice, then succeeds; retried without delay.
struct Flaky(AtomicU64);

#[task(state = u32)]
impl Flaky {
    fn config(&self) -> TaskConfig {
        TaskConfig::new().with_retry(RetryMode::fixed(2, Duration::ZERO))
    }
    async fn run_bare(&self) -> Result<TaskResult<u32>, CanoError> {
        if self.0.fetch_add(1, Ordering::Relaxed) % 3 < 2 {
            Err(CanoError::task_execution("transient"))
        } else {
            Ok(TaskResult::Single(1))
        }
    }
}

/// A trivial in-memory checkpoint store.
#[derive(Default)]
struct MemLog(Mutex<HashMap<String, Vec<CheckpointRow>>>);

#[checkpoint_store]
impl CheckpointStore for MemLog {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let mut runs = self
            .0
            .lock()
            .map_err(|_| CanoError::checkpoint_store("poisoned"))?;
        runs.entry(workflow_id.to_string()).or_default().push(row);
        Ok(())
    }
    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        let runs = self
            .0
            .lock()
            .map_err(|_| CanoError::checkpoint_store("poisoned"))?;
        Ok(runs.get(workflow_id).cloned().unwrap_or_default())
    }
    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        let mut runs = self
            .0
            .lock()
            .map_err(|_| CanoError::checkpoint_store("poisoned"))?;
        runs.remove(workflow_id);
        Ok(())
    }
}

#[derive(Resource)]
struct Config(u64);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn transitions(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("workflow_length");
    for n in [1u32, 10, 100] {
        let wf = linear(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.to_async(&rt)
                .iter(|| async { assert_eq!(wf.orchestrate(0).await, Ok(n)) });
        });
    }
    group.finish();
}

fn splits(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("split_width");
    for width in [10usize, 100, 1000] {
        let wf = split(width);
        group.bench_with_input(BenchmarkId::from_parameter(width), &width, |b, _| {
            b.to_async(&rt)
                .iter(|| async { assert_eq!(wf.orchestrate(0).await, Ok(1)) });
        });
    }
    group.finish();
}

fn concurrent(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("concurrent_runs");
    group.sample_size(20);
    let wf = Arc::new(linear(5));
    // The floor under a batch: the same number of tasks that do nothing.
    group.bench_function("spawn_floor/10000", |b| {
        b.to_async(&rt).iter(|| async {
            let handles: Vec<_> = (0..10_000u32)
                .map(|i| tokio::spawn(async move { black_box(i) }))
                .collect();
            for h in handles {
                black_box(h.await.expect("join"));
            }
        });
    });
    for runs in [100usize, 1000, 10_000] {
        group.bench_with_input(BenchmarkId::from_parameter(runs), &runs, |b, &runs| {
            b.to_async(&rt).iter(|| {
                let wf = Arc::clone(&wf);
                async move {
                    let handles: Vec<_> = (0..runs)
                        .map(|_| {
                            let wf = Arc::clone(&wf);
                            tokio::spawn(async move { wf.orchestrate(0).await })
                        })
                        .collect();
                    for h in handles {
                        assert_eq!(h.await.expect("join"), Ok(5));
                    }
                }
            });
        });
    }
    group.finish();
}

fn retries(c: &mut Criterion) {
    let rt = runtime();
    let wf = Workflow::bare()
        .register(0u32, Flaky(AtomicU64::new(0)))
        .add_exit_state(1);
    c.bench_function("retry_path_zero_delay", |b| {
        b.to_async(&rt)
            .iter(|| async { assert_eq!(wf.orchestrate(0).await, Ok(1)) });
    });
}

fn checkpoints(c: &mut Criterion) {
    let rt = runtime();
    let wf = linear(10)
        .with_checkpoint_store(Arc::new(MemLog::default()))
        .with_workflow_id("bench");
    c.bench_function("checkpoint_memory_10_states", |b| {
        b.to_async(&rt)
            .iter(|| async { assert_eq!(wf.orchestrate(0).await, Ok(10)) });
    });
}

fn stores(c: &mut Criterion) {
    let store = MemoryStore::new();
    let keys: Vec<String> = (0..64).map(|i| format!("key-{i:02}")).collect();
    for (i, k) in keys.iter().enumerate() {
        store.put(k, i as u64).expect("put");
    }
    let mut i = 0usize;
    c.bench_function("memory_store_put", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            store.put(black_box(&keys[i & 63]), i as u64).expect("put");
        });
    });
    c.bench_function("memory_store_get", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(store.get::<u64>(black_box(&keys[i & 63])).expect("get"));
        });
    });
    let mut res: Resources = Resources::new().insert("config", Config(7));
    for i in 0..7u64 {
        res = res.insert(format!("filler-{i}"), Config(i));
    }
    c.bench_function("resources_get", |b| {
        b.iter(|| black_box(res.get::<Config, _>(black_box("config")).expect("get").0));
    });
    let erased: Arc<dyn std::any::Any + Send + Sync> = Arc::new(Config(7));
    c.bench_function("resources_get_floor", |b| {
        b.iter(|| {
            let Ok(config) = Arc::clone(black_box(&erased)).downcast::<Config>() else {
                panic!("type");
            };
            black_box(config.0)
        });
    });
}

fn durable(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::File::create(dir.path().join("floor")).expect("file");
        file.set_len(1 << 20).expect("allocate");
        file.sync_all().expect("sync");
        let record = [7u8; 128];
        let mut at = 0u64;
        c.bench_function("disk_sync_floor", |b| {
            b.iter(|| {
                at = (at + 128) % (1 << 20);
                file.seek(SeekFrom::Start(at)).expect("seek");
                file.write_all(&record).expect("write");
                file.sync_data().expect("sync");
            });
        });
    }
    #[cfg(feature = "recovery")]
    {
        let rt = runtime();
        let store = Arc::new(RedbCheckpointStore::new(dir.path().join("ckpt.redb")).expect("open"));
        let wf = linear(10)
            .with_checkpoint_store(Arc::clone(&store) as Arc<dyn CheckpointStore>)
            .with_workflow_id("bench");
        let mut group = c.benchmark_group("checkpoint_redb");
        group.sample_size(20);
        group.bench_function("one_run_10_states", |b| {
            b.to_async(&rt)
                .iter(|| async { assert_eq!(wf.orchestrate(0).await, Ok(10)) });
        });
        let wf = Arc::new(wf);
        let mut batch = 0u64;
        group.bench_function("64_concurrent_runs_10_states", |b| {
            b.to_async(&rt).iter(|| {
                batch += 1;
                let (wf, batch) = (Arc::clone(&wf), batch);
                async move {
                    let handles: Vec<_> = (0..64)
                        .map(|i| {
                            let wf =
                                Workflow::clone(&wf).with_workflow_id(format!("bench-{batch}-{i}"));
                            tokio::spawn(async move { wf.orchestrate(0).await })
                        })
                        .collect();
                    for h in handles {
                        assert_eq!(h.await.expect("join"), Ok(10));
                    }
                }
            });
        });
        group.finish();
    }
}

/// `try_acquire` on an uncontended limiter: the cost a task pays per call it guards
/// (target: 30 ns or less). The limits are far above what the loop can drain.
fn rate_limits(c: &mut Criterion) {
    use cano::rate_limit::{RateLimiter, RateLimiterPolicy, WindowPolicy, WindowedRateLimiter};
    // Outside a runtime, as most callers are: with the `test-util` feature (which this
    // crate's dev-dependencies turn on) Tokio's clock inside a runtime takes a lock.
    let mut group = c.benchmark_group("rate_limiter");
    let bucket = RateLimiter::new(RateLimiterPolicy::per_second(u32::MAX / 2))
        .unwrap_or_else(|e| panic!("policy: {e}"));
    group.bench_function("token_bucket_try_acquire", |b| {
        b.iter(|| std::hint::black_box(bucket.try_acquire().is_ok()))
    });
    // A rate that divides its period into whole nanoseconds (one token per nanosecond).
    // The policy above (2^31 - 1 tokens per second, a prime) counts in units of 1/(2^31 - 1)
    // ns, so its bucket moves its base every 1.15 s.
    let even = RateLimiter::new(RateLimiterPolicy::per_second(1_000_000_000))
        .unwrap_or_else(|e| panic!("policy: {e}"));
    group.bench_function("token_bucket_even_rate_try_acquire", |b| {
        b.iter(|| std::hint::black_box(even.try_acquire().is_ok()))
    });
    let window = WindowedRateLimiter::new(WindowPolicy::per_second(u64::MAX / 2))
        .unwrap_or_else(|e| panic!("policy: {e}"));
    group.bench_function("window_try_acquire", |b| {
        b.iter(|| std::hint::black_box(window.try_acquire().is_ok()))
    });
    // The floor: every `try_acquire` reads Tokio's clock once.
    group.bench_function("clock_tokio_instant_now", |b| {
        b.iter(|| std::hint::black_box(tokio::time::Instant::now()))
    });
    group.bench_function("clock_std_instant_now", |b| {
        b.iter(|| std::hint::black_box(std::time::Instant::now()))
    });
    group.finish();
}

mod harness {
    #![allow(missing_docs)]
    use super::*;
    criterion_group!(
        benches,
        transitions,
        splits,
        concurrent,
        retries,
        checkpoints,
        stores,
        durable,
        rate_limits
    );
}

criterion_main!(harness::benches);
