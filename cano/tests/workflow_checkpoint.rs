//! Checkpointing and `resume_from` for workflows of plain tasks.
//!
//! `support::TestStore` honours the `CheckpointStore` contract (duplicate sequences are a
//! `conflict` error) and keeps an audit trail of every row ever appended, so tests can
//! see rows even after a successful run cleared the live log.

mod support;

use cano::prelude::*;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Log, Probe, Recorder, TestStore, triples};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Start,
    Process,
    Complete,
    Unregistered,
}

/// A named task that logs its name and moves to `next`. It fails with
/// `"{name}: simulated crash"` while its `crash` flag is set, and hangs for an hour on
/// the first run that finds its `hang` flag set (that run clears the flag).
struct Node {
    name: &'static str,
    next: S,
    log: Log,
    crash: Arc<AtomicBool>,
    hang: Arc<AtomicBool>,
}

impl Node {
    fn new(name: &'static str, next: S, log: &Log) -> Self {
        Self {
            name,
            next,
            log: log.clone(),
            crash: Arc::default(),
            hang: Arc::default(),
        }
    }

    fn crashing(mut self, flag: &Arc<AtomicBool>) -> Self {
        self.crash = Arc::clone(flag);
        self
    }

    fn hanging_once(mut self, flag: &Arc<AtomicBool>) -> Self {
        self.hang = Arc::clone(flag);
        self
    }
}

#[task(state = S)]
impl Node {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(self.name)
    }

    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.log.push(self.name);
        if self.hang.swap(false, Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if self.crash.load(Ordering::SeqCst) {
            return Err(CanoError::task_execution(format!(
                "{}: simulated crash",
                self.name
            )));
        }
        Ok(TaskResult::Single(self.next.clone()))
    }
}

/// `Start -> Process -> Complete` with the store attached; no workflow id yet.
fn three_states(log: &Log, store: &Arc<TestStore>) -> Workflow<S> {
    Workflow::bare()
        .register(S::Start, Node::new("start", S::Process, log))
        .register(S::Process, Node::new("process", S::Complete, log))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
}

/// Same, with a `Process` task that crashes while `crash` is set.
fn crashing_at_process(log: &Log, store: &Arc<TestStore>, crash: &Arc<AtomicBool>) -> Workflow<S> {
    Workflow::bare()
        .register(S::Start, Node::new("start", S::Process, log))
        .register(
            S::Process,
            Node::new("process", S::Complete, log).crashing(crash),
        )
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
}

// ---------------------------------------------------------------------------------------
// Forward direction
// ---------------------------------------------------------------------------------------

/// What each `Peek` run saw of its own live log.
type Seen = Arc<Mutex<Vec<Vec<(u64, String, String)>>>>;

struct Peek {
    store: Arc<TestStore>,
    seen: Seen,
    next: S,
}

#[task(state = S)]
impl Peek {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("peek")
    }
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        self.seen
            .lock()
            .unwrap()
            .push(self.store.summary("peek-run"));
        Ok(TaskResult::Single(self.next.clone()))
    }
}

#[tokio::test]
async fn the_entry_row_is_written_before_the_task_runs() {
    let store = TestStore::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let peek = |next| Peek {
        store: store.clone(),
        seen: seen.clone(),
        next,
    };
    let wf = Workflow::bare()
        .register(S::Start, peek(S::Process))
        .register(S::Process, peek(S::Complete))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("peek-run");
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Complete));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            triples(&[(0, "Start", "peek")]),
            triples(&[(0, "Start", "peek"), (1, "Process", "peek")]),
        ]
    );
}

#[tokio::test]
async fn a_successful_run_writes_one_row_per_state_and_clears_its_log() {
    let log = Log::new();
    let store = TestStore::new();
    let rec = Recorder::new();
    let wf = three_states(&log, &store)
        .with_workflow_id("run")
        .with_observer(rec.clone());
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Complete));
    assert_eq!(
        store.audit("run"),
        triples(&[
            (0, "Start", "start"),
            (1, "Process", "process"),
            (2, "Complete", "")
        ])
    );
    for row in store.audit_rows("run") {
        assert_eq!(row.kind, RowKind::StateEntry);
        assert_eq!(row.output_blob, None);
    }
    assert!(
        store.rows("run").is_empty(),
        "the log is cleared after success"
    );
    assert_eq!(
        rec.events(),
        [
            "enter:Start",
            "checkpoint:run:0",
            "start:start",
            "success:start",
            "enter:Process",
            "checkpoint:run:1",
            "start:process",
            "success:process",
            "enter:Complete",
            "checkpoint:run:2",
        ]
    );
}

#[tokio::test]
async fn a_failed_run_keeps_its_log_and_returns_the_task_error() {
    let log = Log::new();
    let store = TestStore::new();
    let crash = Arc::new(AtomicBool::new(true));
    let wf = crashing_at_process(&log, &store, &crash).with_workflow_id("run");
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err, CanoError::task_execution("process: simulated crash"));
    assert_eq!(
        store.summary("run"),
        triples(&[(0, "Start", "start"), (1, "Process", "process")])
    );
}

#[tokio::test]
async fn an_unregistered_state_gets_a_row_with_an_empty_task_id_before_failing() {
    let log = Log::new();
    let store = TestStore::new();
    let wf = Workflow::bare()
        .register(S::Start, Node::new("start", S::Unregistered, &log))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("run");
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(
        err,
        CanoError::workflow("No task registered for state: Unregistered")
    );
    assert_eq!(
        store.summary("run"),
        triples(&[(0, "Start", "start"), (1, "Unregistered", "")])
    );
}

#[tokio::test]
async fn starting_at_an_exit_state_writes_one_row_then_clears() {
    let log = Log::new();
    let store = TestStore::new();
    let wf = three_states(&log, &store).with_workflow_id("run");
    assert_eq!(wf.orchestrate(S::Complete).await, Ok(S::Complete));
    assert_eq!(store.audit("run"), triples(&[(0, "Complete", "")]));
    assert!(store.rows("run").is_empty());
    assert!(log.entries().is_empty());
}

#[tokio::test]
async fn a_store_without_a_workflow_id_fails_at_the_first_state_entry() {
    let log = Log::new();
    let store = TestStore::new();
    let rec = Recorder::new();
    let wf = Workflow::new(Resources::new().insert("probe", Probe::new("R", &log)))
        .register(S::Start, Node::new("start", S::Complete, &log))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_observer(rec.clone());
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("workflow id"), "{err}");
    assert_eq!(
        err,
        CanoError::checkpoint_store("checkpointing requires a workflow id (call with_workflow_id)")
    );
    assert_eq!(rec.events(), ["enter:Start"], "fails after on_state_enter");
    assert_eq!(
        log.entries(),
        ["setup:R", "teardown:R"],
        "resources set up and torn down, the task never ran"
    );
}

#[tokio::test]
async fn a_store_without_a_workflow_id_fails_even_when_starting_at_an_exit_state() {
    let log = Log::new();
    let store = TestStore::new();
    let wf = three_states(&log, &store);
    let err = wf.orchestrate(S::Complete).await.unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("workflow id"), "{err}");
}

#[tokio::test]
async fn an_append_failure_ends_the_run_with_the_store_error_nested() {
    let log = Log::new();
    let store = TestStore::new();
    store.fail_append_at(1);
    let rec = Recorder::new();
    let wf = three_states(&log, &store)
        .with_workflow_id("run")
        .with_observer(rec.clone());
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(
        err,
        CanoError::checkpoint_store("append checkpoint: Checkpoint store error: disk full")
    );
    assert_eq!(
        err.to_string(),
        "Checkpoint store error: append checkpoint: Checkpoint store error: disk full"
    );
    assert_eq!(log.entries(), ["start"], "Process never ran");
    assert_eq!(store.summary("run"), triples(&[(0, "Start", "start")]));
    assert_eq!(rec.events_with("checkpoint:"), ["checkpoint:run:0"]);
}

#[tokio::test]
async fn a_fresh_run_over_an_uncleared_log_conflicts_at_sequence_zero() {
    let log = Log::new();
    let store = TestStore::new();
    store.seed("run", &[(0, "Start", "start"), (1, "Process", "process")]);
    let wf = three_states(&log, &store).with_workflow_id("run");
    let err = wf.orchestrate(S::Start).await.unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("conflict"), "{err}");
    assert_eq!(
        err.message(),
        "append checkpoint: Checkpoint store error: checkpoint conflict: run already has sequence 0"
    );
    assert!(log.entries().is_empty(), "no task ran");
    assert_eq!(
        store.summary("run"),
        triples(&[(0, "Start", "start"), (1, "Process", "process")]),
        "the old rows are untouched"
    );
}

#[tokio::test]
async fn a_failing_clear_does_not_fail_a_successful_run() {
    let log = Log::new();
    let store = TestStore::new();
    store.fail_clear();
    let wf = three_states(&log, &store).with_workflow_id("run");
    assert_eq!(wf.orchestrate(S::Start).await, Ok(S::Complete));
    assert_eq!(store.rows("run").len(), 3, "the log could not be cleared");
}

#[tokio::test]
async fn the_last_workflow_id_wins() {
    let log = Log::new();
    let store = TestStore::new();
    let wf = three_states(&log, &store)
        .with_workflow_id("first")
        .with_workflow_id("second");
    wf.orchestrate(S::Start).await.unwrap();
    assert!(store.audit("first").is_empty());
    assert_eq!(store.audit("second").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_runs_on_one_store_stay_isolated() {
    let store = TestStore::new();
    let log = Log::new();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let wf = three_states(&log, &store).with_workflow_id(format!("run-{i}"));
            tokio::spawn(async move { wf.orchestrate(S::Start).await })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), Ok(S::Complete));
    }
    for i in 0..16 {
        let id = format!("run-{i}");
        assert_eq!(
            store.audit(&id),
            triples(&[
                (0, "Start", "start"),
                (1, "Process", "process"),
                (2, "Complete", "")
            ]),
            "{id}"
        );
        assert!(store.rows(&id).is_empty(), "{id}");
    }
    assert_eq!(log.count("start"), 16);
    assert_eq!(log.count("process"), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_runs_of_one_id_never_both_write_the_same_rows() {
    let store = TestStore::new();
    let log = Log::new();
    let wf = three_states(&log, &store).with_workflow_id("dup");
    let (a, b) = tokio::join!(
        tokio::spawn({
            let wf = wf.clone();
            async move { wf.orchestrate(S::Start).await }
        }),
        tokio::spawn({
            let wf = wf.clone();
            async move { wf.orchestrate(S::Start).await }
        })
    );
    let results = [a.unwrap(), b.unwrap()];
    for r in &results {
        match r {
            Ok(s) => assert_eq!(*s, S::Complete),
            Err(e) => assert_eq!(e.category(), "checkpoint_store", "{e}"),
        }
    }
    assert!(results.iter().any(Result::is_ok), "{results:?}");
}

// ---------------------------------------------------------------------------------------
// resume_from
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn resume_re_runs_the_last_recorded_state_and_not_earlier_ones() {
    let log = Log::new();
    let store = TestStore::new();
    let crash = Arc::new(AtomicBool::new(true));
    let wf = crashing_at_process(&log, &store, &crash).with_workflow_id("run");
    assert!(wf.orchestrate(S::Start).await.is_err());
    assert_eq!(log.entries(), ["start", "process"]);

    crash.store(false, Ordering::SeqCst);
    assert_eq!(wf.resume_from("run").await, Ok(S::Complete));
    assert_eq!(log.entries(), ["start", "process", "process"]);
    assert_eq!(
        store.audit("run"),
        triples(&[
            (0, "Start", "start"),
            (1, "Process", "process"),
            (2, "Process", "process"),
            (3, "Complete", ""),
        ])
    );
    assert!(
        store.rows("run").is_empty(),
        "cleared after the resumed run succeeded"
    );
}

#[tokio::test]
async fn resume_reports_resume_then_the_new_checkpoints() {
    let log = Log::new();
    let store = TestStore::new();
    store.seed("run-2", &[(0, "Start", "start"), (1, "Process", "process")]);
    let rec = Recorder::new();
    let wf = three_states(&log, &store).with_observer(rec.clone());
    assert_eq!(wf.resume_from("run-2").await, Ok(S::Complete));
    let bookkeeping: Vec<String> = rec
        .events()
        .into_iter()
        .filter(|e| e.starts_with("resume:") || e.starts_with("checkpoint:"))
        .collect();
    assert_eq!(
        bookkeeping,
        ["resume:run-2:1", "checkpoint:run-2:2", "checkpoint:run-2:3"]
    );
    assert_eq!(
        log.entries(),
        ["process"],
        "Start runs 0 times, Process once"
    );
    assert_eq!(rec.events()[0], "resume:run-2:1");
    assert_eq!(rec.events()[1], "enter:Process");
}

#[tokio::test]
async fn resume_continues_the_sequence_after_the_highest_row() {
    let log = Log::new();
    let store = TestStore::new();
    store.seed(
        "loop",
        &[
            (0, "Start", "start"),
            (1, "Process", "process"),
            (2, "Start", "start"),
            (3, "Process", "process"),
        ],
    );
    let rec = Recorder::new();
    let wf = three_states(&log, &store).with_observer(rec.clone());
    assert_eq!(wf.resume_from("loop").await, Ok(S::Complete));
    assert_eq!(
        rec.events_with("checkpoint:"),
        ["checkpoint:loop:4", "checkpoint:loop:5"]
    );
    assert_eq!(
        store.audit("loop"),
        triples(&[(4, "Process", "process"), (5, "Complete", "")])
    );
}

#[tokio::test]
async fn resuming_into_an_exit_state_appends_one_row_and_clears() {
    let log = Log::new();
    let store = TestStore::new();
    store.seed("done", &[(0, "Start", "start"), (1, "Complete", "")]);
    let rec = Recorder::new();
    let wf = Workflow::new(Resources::new().insert("probe", Probe::new("R", &log)))
        .register(S::Start, Node::new("start", S::Process, &log))
        .register(S::Process, Node::new("process", S::Complete, &log))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_observer(rec.clone());
    assert_eq!(wf.resume_from("done").await, Ok(S::Complete));
    assert_eq!(store.audit("done"), triples(&[(2, "Complete", "")]));
    assert!(store.rows("done").is_empty());
    assert_eq!(log.entries(), ["setup:R", "teardown:R"], "no task ran");
    assert_eq!(
        rec.events(),
        ["resume:done:1", "enter:Complete", "checkpoint:done:2"]
    );
}

#[tokio::test]
async fn resume_without_a_store_is_a_configuration_error_reported_before_validation() {
    // No handlers and no exit states either: the store check comes first.
    let wf = Workflow::<S>::bare();
    let err = wf.resume_from("run").await.unwrap_err();
    assert_eq!(
        err,
        CanoError::configuration(
            "resume_from requires a checkpoint store (call with_checkpoint_store)"
        )
    );
    assert!(err.message().contains("checkpoint store"));
}

#[tokio::test]
async fn resume_validates_the_workflow() {
    let store = TestStore::new();
    store.seed("run", &[(0, "Start", "start")]);
    let log = Log::new();
    let wf = Workflow::bare()
        .register(S::Start, Node::new("start", S::Complete, &log))
        .with_checkpoint_store(store.clone());
    let err = wf.resume_from("run").await.unwrap_err();
    assert_eq!(err.category(), "configuration");
    assert!(err.message().contains("no exit states"), "{err}");
    assert!(log.entries().is_empty());
}

#[tokio::test]
async fn resuming_an_unknown_id_finds_no_rows() {
    let log = Log::new();
    let store = TestStore::new();
    let rec = Recorder::new();
    let wf = Workflow::new(Resources::new().insert("probe", Probe::new("R", &log)))
        .register(S::Start, Node::new("start", S::Complete, &log))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_observer(rec.clone());
    let err = wf.resume_from("nope").await.unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("no checkpoint rows"), "{err}");
    assert_eq!(
        err,
        CanoError::checkpoint_store("no checkpoint rows for workflow id \"nope\"")
    );
    assert!(rec.events().is_empty(), "no on_resume");
    assert!(log.entries().is_empty(), "no setup");
}

#[tokio::test]
async fn resuming_after_a_successful_run_finds_no_rows() {
    let log = Log::new();
    let store = TestStore::new();
    let wf = three_states(&log, &store).with_workflow_id("run");
    wf.orchestrate(S::Start).await.unwrap();
    let err = wf.resume_from("run").await.unwrap_err();
    assert_eq!(err.category(), "checkpoint_store");
    assert!(err.message().contains("no checkpoint rows"), "{err}");
}

#[tokio::test]
async fn resuming_at_an_unrecognised_state_label_fails() {
    let log = Log::new();
    let store = TestStore::new();
    store.seed("run", &[(0, "Start", "start"), (1, "Mystery", "old-task")]);
    let wf = three_states(&log, &store);
    let err = wf.resume_from("run").await.unwrap_err();
    assert_eq!(err.category(), "workflow");
    assert!(
        err.message().contains("is not a registered or exit state"),
        "{err}"
    );
    assert_eq!(
        err,
        CanoError::workflow(
            "checkpoint state \"Mystery\" is not a registered or exit state of this workflow"
        )
    );
    assert!(log.entries().is_empty());
}

#[tokio::test]
async fn a_failing_load_is_reported_with_the_id() {
    let log = Log::new();
    let store = TestStore::new();
    store.fail_load();
    let wf = three_states(&log, &store);
    let err = wf.resume_from("run").await.unwrap_err();
    assert_eq!(
        err,
        CanoError::checkpoint_store(
            "load checkpoint run \"run\": Checkpoint store error: store offline"
        )
    );
}

#[tokio::test]
async fn resume_writes_under_the_given_id_not_the_configured_one() {
    let log = Log::new();
    let store = TestStore::new();
    store.seed("actual", &[(0, "Start", "start")]);
    let wf = three_states(&log, &store).with_workflow_id("configured");
    assert_eq!(wf.resume_from("actual").await, Ok(S::Complete));
    assert_eq!(
        store.audit("actual"),
        triples(&[
            (1, "Start", "start"),
            (2, "Process", "process"),
            (3, "Complete", "")
        ])
    );
    assert!(store.rows("actual").is_empty());
    assert!(store.audit("configured").is_empty());
}

#[tokio::test]
async fn on_resume_fires_before_resource_setup() {
    struct ResumeOrder(Log);
    impl WorkflowObserver for ResumeOrder {
        fn on_resume(&self, id: &str, seq: u64) {
            self.0.push(format!("resume:{id}:{seq}"));
        }
        fn on_state_enter(&self, state: &str) {
            self.0.push(format!("enter:{state}"));
        }
    }
    let log = Log::new();
    let store = TestStore::new();
    store.seed("run", &[(0, "Process", "process")]);
    let wf = Workflow::new(Resources::new().insert("probe", Probe::new("R", &log)))
        .register(S::Process, Node::new("process", S::Complete, &log))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_observer(Arc::new(ResumeOrder(log.clone())));
    wf.resume_from("run").await.unwrap();
    assert_eq!(
        log.entries(),
        [
            "resume:run:0",
            "setup:R",
            "enter:Process",
            "process",
            "enter:Complete",
            "teardown:R"
        ]
    );
}

#[tokio::test]
async fn a_setup_failure_during_resume_is_returned_and_keeps_the_log() {
    let log = Log::new();
    let store = TestStore::new();
    store.seed("run", &[(0, "Process", "process")]);
    let wf = Workflow::new(Resources::new().insert("probe", Probe::new("R", &log).failing_setup()))
        .register(S::Process, Node::new("process", S::Complete, &log))
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone());
    assert_eq!(
        wf.resume_from("run").await,
        Err(CanoError::generic("setup of R failed"))
    );
    assert_eq!(store.summary("run"), triples(&[(0, "Process", "process")]));
}

#[tokio::test]
async fn a_data_carrying_state_label_maps_back_to_its_state() {
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum Page {
        Fetch(u32),
        Done,
    }
    struct Fetch(Arc<AtomicUsize>);
    #[task(state = Page)]
    impl Fetch {
        fn config(&self) -> TaskConfig {
            TaskConfig::minimal()
        }
        async fn run_bare(&self) -> Result<TaskResult<Page>, CanoError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(TaskResult::Single(Page::Done))
        }
    }
    let (one, three) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let store = TestStore::new();
    store.seed("pages", &[(0, "Fetch(3)", "")]);
    let wf = Workflow::bare()
        .register(Page::Fetch(1), Fetch(one.clone()))
        .register(Page::Fetch(3), Fetch(three.clone()))
        .add_exit_state(Page::Done)
        .with_checkpoint_store(store.clone());
    assert_eq!(wf.resume_from("pages").await, Ok(Page::Done));
    assert_eq!(
        (one.load(Ordering::SeqCst), three.load(Ordering::SeqCst)),
        (0, 1)
    );
}

// ---------------------------------------------------------------------------------------
// Cancellation and timeouts keep the log
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_dropped_run_keeps_its_log_and_can_be_resumed() {
    let log = Log::new();
    let store = TestStore::new();
    let hang = Arc::new(AtomicBool::new(true));
    let wf = Workflow::bare()
        .register(S::Start, Node::new("start", S::Process, &log))
        .register(
            S::Process,
            Node::new("process", S::Complete, &log).hanging_once(&hang),
        )
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("run");

    let outcome = tokio::time::timeout(Duration::from_millis(10), wf.orchestrate(S::Start)).await;
    assert!(outcome.is_err(), "the caller dropped the run");
    assert_eq!(
        store.summary("run"),
        triples(&[(0, "Start", "start"), (1, "Process", "process")])
    );

    assert_eq!(wf.resume_from("run").await, Ok(S::Complete));
    assert_eq!(log.entries(), ["start", "process", "process"]);
    assert!(store.rows("run").is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_workflow_timeout_keeps_the_log() {
    let log = Log::new();
    let store = TestStore::new();
    let hang = Arc::new(AtomicBool::new(true));
    let wf = Workflow::bare()
        .register(S::Start, Node::new("start", S::Process, &log))
        .register(
            S::Process,
            Node::new("process", S::Complete, &log).hanging_once(&hang),
        )
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("run")
        .with_timeout(Duration::from_millis(50));
    assert_eq!(
        wf.orchestrate(S::Start).await,
        Err(CanoError::workflow("Workflow timeout exceeded"))
    );
    assert_eq!(
        store.summary("run"),
        triples(&[(0, "Start", "start"), (1, "Process", "process")])
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_is_bounded_by_the_workflow_timeout() {
    let log = Log::new();
    let store = TestStore::new();
    store.seed("run", &[(0, "Process", "process")]);
    let hang = Arc::new(AtomicBool::new(true));
    let wf = Workflow::bare()
        .register(
            S::Process,
            Node::new("process", S::Complete, &log).hanging_once(&hang),
        )
        .add_exit_state(S::Complete)
        .with_checkpoint_store(store.clone())
        .with_timeout(Duration::from_millis(50));
    assert_eq!(
        wf.resume_from("run").await,
        Err(CanoError::workflow("Workflow timeout exceeded"))
    );
    assert_eq!(
        store.summary("run"),
        triples(&[(0, "Process", "process"), (1, "Process", "process")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resume_future_is_send() {
    let log = Log::new();
    let store = TestStore::new();
    store.seed("spawned", &[(0, "Start", "start")]);
    let wf = three_states(&log, &store);
    let handle = tokio::spawn(async move { wf.resume_from("spawned").await });
    assert_eq!(handle.await.unwrap(), Ok(S::Complete));
}

#[test]
fn checkpoint_rows_and_kinds() {
    let row = CheckpointRow::new(3, "Process", "process");
    assert_eq!(
        row,
        CheckpointRow {
            sequence: 3,
            state: "Process".into(),
            task_id: "process".into(),
            output_blob: None,
            kind: RowKind::StateEntry,
        }
    );
    let cursor = row.clone().with_cursor(vec![7]);
    assert_eq!(
        (cursor.kind, cursor.output_blob),
        (RowKind::StepCursor, Some(vec![7]))
    );
    let output = row.with_output(vec![1, 2]);
    assert_eq!(
        (output.kind, output.output_blob),
        (RowKind::CompensationCompletion, Some(vec![1, 2]))
    );
    assert_eq!(RowKind::default(), RowKind::StateEntry);
}

#[tokio::test]
async fn the_test_store_honours_the_contract() {
    let store = TestStore::new();
    let dyn_store: Arc<dyn CheckpointStore> = store.clone();
    dyn_store
        .append("a", CheckpointRow::new(1, "B", ""))
        .await
        .unwrap();
    dyn_store
        .append("a", CheckpointRow::new(0, "A", "t"))
        .await
        .unwrap();
    let dup = dyn_store
        .append("a", CheckpointRow::new(0, "X", ""))
        .await
        .unwrap_err();
    assert_eq!(dup.category(), "checkpoint_store");
    assert!(dup.message().contains("conflict"));
    let rows = dyn_store.load_run("a").await.unwrap();
    assert_eq!(rows.iter().map(|r| r.sequence).collect::<Vec<_>>(), [0, 1]);
    assert!(dyn_store.load_run("unknown").await.unwrap().is_empty());
    dyn_store.clear("unknown").await.unwrap();
    dyn_store.clear("a").await.unwrap();
    assert!(dyn_store.load_run("a").await.unwrap().is_empty());
}
