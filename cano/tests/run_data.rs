//! Durable run data: values written by completed states survive a crash and a resume in
//! another process; a value written by the interrupted state does not; idempotency keys
//! are stable across resumes of one visit and differ between visits; split members share
//! their run's data; bad values and missing setups are clear errors.

use cano::MemoryCheckpointStore;
use cano::prelude::*;
use cano::run_data::RunData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Quote,
    Charge,
    Ship,
    Fan,
    Sum,
    Done,
}

type Seen = Arc<Mutex<Vec<String>>>;

/// Writes `amount`, then moves to Charge.
struct Quote;
#[task(state = S)]
impl Quote {
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        RunData::current()?.put("amount", 1999u64)?;
        Ok(TaskResult::Single(S::Charge))
    }
}

/// Reads `amount`, writes `charge_id` (then sleeps `slow`: a crash there loses the
/// write), records its idempotency key and what it saw.
struct Charge {
    seen: Seen,
    slow: Duration,
}
#[task(state = S)]
impl Charge {
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        let data = RunData::current()?;
        let amount: u64 = data.get("amount")?;
        let before = data.get::<String>("charge_id").ok();
        data.put("charge_id", format!("ch-{amount}"))?;
        self.seen.lock().unwrap().push(format!(
            "charge key={} amount={amount} charge_id_before={before:?}",
            data.idempotency_key()
        ));
        tokio::time::sleep(self.slow).await;
        Ok(TaskResult::Single(S::Ship))
    }
}

/// Reads what the earlier states wrote.
struct Ship {
    seen: Seen,
}
#[task(state = S)]
impl Ship {
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        let data = RunData::current()?;
        let id: String = data.get("charge_id")?;
        self.seen.lock().unwrap().push(format!(
            "ship key={} charge_id={id} keys={:?}",
            data.idempotency_key(),
            data.keys()
        ));
        Ok(TaskResult::Single(S::Done))
    }
}

fn order(seen: &Seen, slow: Duration, store: &Arc<MemoryCheckpointStore>) -> Workflow<S> {
    Workflow::bare()
        .register(S::Quote, Quote)
        .register(
            S::Charge,
            Charge {
                seen: seen.clone(),
                slow,
            },
        )
        .register(S::Ship, Ship { seen: seen.clone() })
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("order-1")
        .with_run_data()
}

fn seen(seen: &Seen) -> Vec<String> {
    seen.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_sees_what_completed_states_wrote_and_nothing_else() {
    let (log, store) = (Seen::default(), Arc::new(MemoryCheckpointStore::new()));
    // Charge writes charge_id and then the process dies: the write is not recorded.
    let crashed = tokio::time::timeout(
        Duration::from_secs(30),
        order(&log, Duration::from_secs(60), &store).orchestrate(S::Quote),
    )
    .await;
    assert!(crashed.is_err());
    // "Another process": a new workflow over the same store; it dies in Charge again.
    let again = tokio::time::timeout(
        Duration::from_secs(30),
        order(&log, Duration::from_secs(60), &store).resume_from("order-1"),
    )
    .await;
    assert!(again.is_err());
    let finished = order(&log, Duration::ZERO, &store)
        .resume_from("order-1")
        .await;
    assert_eq!(finished, Ok(S::Done));
    assert_eq!(
        seen(&log),
        [
            // The same visit three times: the same key; Quote's write is there, Charge's
            // own write from the crashed attempt is not.
            "charge key=order-1/1 amount=1999 charge_id_before=None",
            "charge key=order-1/1 amount=1999 charge_id_before=None",
            "charge key=order-1/1 amount=1999 charge_id_before=None",
            "ship key=order-1/2 charge_id=ch-1999 keys=[\"amount\", \"charge_id\"]",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn each_visit_of_a_state_gets_its_own_key() {
    struct Loop {
        keys: Seen,
    }
    #[task(state = S)]
    impl Loop {
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            let data = RunData::current()?;
            let n: u32 = data.get("n").unwrap_or(0);
            data.put("n", n + 1)?;
            self.keys.lock().unwrap().push(data.idempotency_key());
            Ok(TaskResult::Single(if n < 2 { S::Quote } else { S::Done }))
        }
    }
    let keys = Seen::default();
    let wf = Workflow::bare()
        .register(S::Quote, Loop { keys: keys.clone() })
        .add_exit_state(S::Done)
        .with_run_data();
    assert_eq!(wf.orchestrate(S::Quote).await, Ok(S::Done));
    assert_eq!(seen(&keys), ["-/0", "-/1", "-/2"]);
}

#[tokio::test(start_paused = true)]
async fn split_members_share_their_runs_data() {
    struct Part(u32);
    #[task(state = S)]
    impl Part {
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            tokio::time::sleep(Duration::from_millis(u64::from(self.0))).await;
            RunData::current()?.put(&format!("part-{}", self.0), self.0)?;
            Ok(TaskResult::Single(S::Sum))
        }
    }
    struct Sum(Seen);
    #[task(state = S)]
    impl Sum {
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            let data = RunData::current()?;
            let total: u32 = (0..8)
                .map(|i| data.get::<u32>(&format!("part-{i}")).unwrap())
                .sum();
            self.0.lock().unwrap().push(total.to_string());
            Ok(TaskResult::Single(S::Done))
        }
    }
    let log = Seen::default();
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = Workflow::bare()
        .register_split(
            S::Fan,
            (0..8).map(Part).collect(),
            JoinConfig::new(JoinStrategy::All, S::Sum),
        )
        .register(S::Sum, Sum(log.clone()))
        .add_exit_state(S::Done)
        .with_checkpoint_store(store)
        .with_workflow_id("fan-1")
        .with_run_data();
    assert_eq!(wf.orchestrate(S::Fan).await, Ok(S::Done));
    assert_eq!(seen(&log), ["28"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_members_on_other_threads_share_it_too() {
    struct Put(u32);
    #[task(state = S)]
    impl Put {
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            tokio::task::yield_now().await;
            RunData::current()?.put(&format!("k{}", self.0), self.0)?;
            Ok(TaskResult::Single(S::Done))
        }
    }
    struct Count(Seen);
    #[task(state = S)]
    impl Count {
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            self.0
                .lock()
                .unwrap()
                .push(RunData::current()?.keys().len().to_string());
            Ok(TaskResult::Single(S::Done))
        }
    }
    let log = Seen::default();
    let wf = Workflow::bare()
        .register_split(
            S::Fan,
            (0..64).map(Put).collect(),
            JoinConfig::new(JoinStrategy::All, S::Sum),
        )
        .register(S::Sum, Count(log.clone()))
        .add_exit_state(S::Done)
        .with_run_data();
    assert_eq!(wf.orchestrate(S::Fan).await, Ok(S::Done));
    assert_eq!(seen(&log), ["64"]);
}

#[tokio::test(start_paused = true)]
async fn bad_values_and_missing_setups_are_clear_errors() {
    struct Misread;
    #[task(state = S)]
    impl Misread {
        fn config(&self) -> TaskConfig {
            TaskConfig::minimal()
        }
        async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
            let data = RunData::current()?;
            data.put("amount", 5u64)?;
            let err = data.get::<Vec<String>>("amount").unwrap_err();
            assert_eq!(err.category(), "store");
            let text = err.to_string();
            assert!(
                text.contains("\"amount\"") && text.contains("\"r-9\""),
                "{text}"
            );
            assert!(text.contains("written as u64"), "{text}");
            assert!(text.contains("Vec<alloc::string::String>"), "{text}");
            // A map with non-string keys does not serialize to JSON.
            let map: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
            let err = data.put("map", map).unwrap_err();
            assert!(err.to_string().contains("does not serialize"), "{err}");
            assert!(err.to_string().contains("HashMap"), "{err}");
            Err(CanoError::task_execution("checked"))
        }
    }
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = Workflow::bare()
        .register(S::Quote, Misread)
        .add_exit_state(S::Done)
        .with_checkpoint_store(store)
        .with_workflow_id("r-9")
        .with_run_data();
    assert_eq!(
        wf.orchestrate(S::Quote).await,
        Err(CanoError::task_execution("checked"))
    );
    // Without a store and without with_run_data: a configuration error that says what to do.
    let plain = Workflow::bare()
        .register(S::Quote, Quote)
        .add_exit_state(S::Charge);
    let err = plain.orchestrate(S::Quote).await.unwrap_err();
    assert!(
        err.message()
            .contains("Configuration error: RunData::current()"),
        "{err}"
    );
    assert!(err.message().contains("with_run_data"), "{err}");
}

#[cfg(feature = "recovery")]
#[tokio::test]
async fn run_data_survives_a_reopen_of_a_redb_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.redb");
    let log = Seen::default();
    let build = |store: Arc<RedbCheckpointStore>, slow| {
        Workflow::bare()
            .register(S::Quote, Quote)
            .register(
                S::Charge,
                Charge {
                    seen: log.clone(),
                    slow,
                },
            )
            .register(S::Ship, Ship { seen: log.clone() })
            .add_exit_state(S::Done)
            .with_checkpoint_store(store)
            .with_workflow_id("order-1")
            .with_run_data()
    };
    {
        let store = Arc::new(RedbCheckpointStore::new(&path).unwrap());
        let wf = build(store, Duration::from_secs(60));
        let crashed =
            tokio::time::timeout(Duration::from_millis(300), wf.orchestrate(S::Quote)).await;
        assert!(crashed.is_err());
    }
    let store = Arc::new(RedbCheckpointStore::new(&path).unwrap());
    assert_eq!(
        build(store, Duration::ZERO).resume_from("order-1").await,
        Ok(S::Done)
    );
    assert_eq!(
        seen(&log),
        [
            "charge key=order-1/1 amount=1999 charge_id_before=None",
            "charge key=order-1/1 amount=1999 charge_id_before=None",
            "ship key=order-1/2 charge_id=ch-1999 keys=[\"amount\", \"charge_id\"]",
        ]
    );
}
