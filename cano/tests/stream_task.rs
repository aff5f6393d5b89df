//! The stream model (`#[task::stream]`, `Workflow::register_stream`): windows by count and
//! by time, cursors committed after each flush and resumed from, error policies,
//! `WindowSignal::Stop`, cancellation and the total timeout draining the window in flight.

use cano::cancel::CancellationToken;
use cano::prelude::*;
use cano::task::stream::items;
use cano::{ListRuns, MemoryCheckpointStore};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Ingest,
    Done,
    Stopped,
}

/// What the stream saw and did, shared with the test.
#[derive(Default)]
struct Book {
    /// Every flushed window's outputs.
    flushed: Mutex<Vec<Vec<u64>>>,
    /// Every cursor `open` was called with.
    opened: Mutex<Vec<Option<u64>>>,
    /// Every `on_close` reason.
    closed: Mutex<Vec<CloseReason>>,
    flushes: AtomicU32,
}

/// Streams the numbers `from..total` (from the cursor); the output of `n` is `n`, its
/// cursor `n + 1`. Items in `bad` fail; flush number `fail_flush` (1-based) fails once;
/// after `pause_after` items the source goes quiet (pending forever).
struct Numbers {
    total: u64,
    window: StreamWindow,
    policy: StreamErrorPolicy,
    bad: Vec<u64>,
    fail_flush: Option<u32>,
    stop_at_flush: Option<u32>,
    pause_after: Option<u64>,
    gap: Option<Duration>,
    book: Arc<Book>,
}

impl Numbers {
    fn new(total: u64, window: StreamWindow, book: &Arc<Book>) -> Self {
        Self {
            total,
            window,
            policy: StreamErrorPolicy::FailFast,
            bad: Vec::new(),
            fail_flush: None,
            stop_at_flush: None,
            pause_after: None,
            gap: None,
            book: book.clone(),
        }
    }
}

#[task::stream(state = S)]
impl Numbers {
    fn window(&self) -> StreamWindow {
        self.window
    }
    fn on_item_error(&self) -> StreamErrorPolicy {
        self.policy
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "numbers".into()
    }
    async fn open(
        &self,
        _res: &Resources,
        cursor: Option<u64>,
    ) -> Result<ItemStream<u64>, CanoError> {
        self.book.opened.lock().unwrap().push(cursor);
        let from = cursor.unwrap_or(0);
        let upto = self.pause_after.map_or(self.total, |p| p.min(self.total));
        let head = futures_util::stream::iter(from..upto);
        let gap = self.gap;
        let head = futures_util::StreamExt::then(head, move |n| async move {
            if let Some(gap) = gap {
                tokio::time::sleep(gap).await;
            }
            n
        });
        if self.pause_after.is_some() {
            Ok(Box::pin(futures_util::StreamExt::chain(
                head,
                futures_util::stream::pending(),
            )))
        } else {
            Ok(Box::pin(head))
        }
    }
    async fn process_item(&self, _res: &Resources, n: u64) -> Result<(u64, u64), CanoError> {
        if self.bad.contains(&n) {
            return Err(CanoError::task_execution(format!("item {n} is malformed")));
        }
        Ok((n, n + 1))
    }
    async fn flush_window(
        &self,
        _res: &Resources,
        outputs: Vec<u64>,
    ) -> Result<WindowSignal<S>, CanoError> {
        let number = self.book.flushes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_flush == Some(number) {
            return Err(CanoError::task_execution("warehouse unreachable"));
        }
        self.book.flushed.lock().unwrap().push(outputs);
        if self.stop_at_flush == Some(number) {
            return Ok(WindowSignal::Stop(TaskResult::Single(S::Stopped)));
        }
        Ok(WindowSignal::Continue)
    }
    async fn on_close(
        &self,
        _res: &Resources,
        reason: CloseReason,
    ) -> Result<TaskResult<S>, CanoError> {
        self.book.closed.lock().unwrap().push(reason);
        Ok(TaskResult::Single(S::Done))
    }
}

fn workflow(task: Numbers, store: &Arc<MemoryCheckpointStore>) -> Workflow<S> {
    Workflow::bare()
        .register_stream(S::Ingest, task)
        .add_exit_states_from([S::Done, S::Stopped])
        .with_checkpoint_store(store.clone())
        .with_workflow_id("ingest")
}

fn cursors(rows: &[CheckpointRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.kind == RowKind::StepCursor)
        .map(|r| String::from_utf8_lossy(r.output_blob.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

#[tokio::test]
async fn count_windows_flush_in_order_and_the_last_one_partial() {
    let book = Arc::new(Book::default());
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = workflow(Numbers::new(10, StreamWindow::Count(4), &book), &store);
    assert_eq!(wf.orchestrate(S::Ingest).await, Ok(S::Done));
    assert_eq!(
        *book.flushed.lock().unwrap(),
        [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
    );
    assert_eq!(*book.opened.lock().unwrap(), [None]);
    assert_eq!(*book.closed.lock().unwrap(), [CloseReason::Exhausted]);
    assert!(
        store.load_run("ingest").await.unwrap().is_empty(),
        "cleared at the exit"
    );
}

#[tokio::test]
async fn a_failed_flush_keeps_the_committed_cursor_and_a_resume_continues_from_it() {
    let book = Arc::new(Book::default());
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut task = Numbers::new(10, StreamWindow::Count(3), &book);
    task.fail_flush = Some(3);
    let err = workflow(task, &store)
        .orchestrate(S::Ingest)
        .await
        .unwrap_err();
    assert_eq!(err.message(), "warehouse unreachable");
    let rows = store.load_run("ingest").await.unwrap();
    // Entry, then one cursor per flushed window: after item 2 (cursor 3) and item 5 (6).
    assert_eq!(cursors(&rows), ["3", "6"]);
    assert!(
        book.closed.lock().unwrap().is_empty(),
        "no on_close on an error exit"
    );

    let wf = workflow(Numbers::new(10, StreamWindow::Count(3), &book), &store);
    assert_eq!(wf.resume_from("ingest").await, Ok(S::Done));
    assert_eq!(*book.opened.lock().unwrap(), [None, Some(6)]);
    let all: Vec<u64> = book.flushed.lock().unwrap().concat();
    assert_eq!(
        all,
        (0..10).collect::<Vec<_>>(),
        "every item flushed exactly once"
    );
}

#[tokio::test]
async fn error_policies_fail_skip_or_spend_a_budget() {
    // FailFast: the window in flight is dropped, nothing after it runs.
    let book = Arc::new(Book::default());
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut task = Numbers::new(10, StreamWindow::Count(4), &book);
    task.bad = vec![5];
    let err = workflow(task, &store)
        .orchestrate(S::Ingest)
        .await
        .unwrap_err();
    assert_eq!(err.message(), "item 5 is malformed");
    assert_eq!(*book.flushed.lock().unwrap(), [vec![0, 1, 2, 3]]);
    assert_eq!(cursors(&store.load_run("ingest").await.unwrap()), ["4"]);

    // SkipAndContinue: bad items are dropped.
    let book = Arc::new(Book::default());
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut task = Numbers::new(10, StreamWindow::Count(4), &book);
    task.policy = StreamErrorPolicy::SkipAndContinue;
    task.bad = vec![1, 2, 3, 7];
    assert_eq!(
        workflow(task, &store).orchestrate(S::Ingest).await,
        Ok(S::Done)
    );
    assert_eq!(
        *book.flushed.lock().unwrap(),
        [vec![0, 4, 5, 6], vec![8, 9]]
    );

    // RetryOnError: two failures in a row are tolerated, the third is not.
    let book = Arc::new(Book::default());
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut task = Numbers::new(10, StreamWindow::Count(100), &book);
    task.policy = StreamErrorPolicy::RetryOnError { max_errors: 2 };
    task.bad = vec![1, 2, 4, 5, 6];
    let err = workflow(task, &store)
        .orchestrate(S::Ingest)
        .await
        .unwrap_err();
    assert_eq!(err.message(), "item 6 is malformed");
    assert!(book.flushed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_stop_signal_commits_and_leaves_the_state() {
    let book = Arc::new(Book::default());
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut task = Numbers::new(100, StreamWindow::Count(5), &book);
    task.stop_at_flush = Some(2);
    assert_eq!(
        workflow(task, &store).orchestrate(S::Ingest).await,
        Ok(S::Stopped)
    );
    assert_eq!(book.flushed.lock().unwrap().len(), 2);
    assert!(book.closed.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn duration_windows_close_a_set_time_after_their_first_item() {
    let book = Arc::new(Book::default());
    let store = Arc::new(MemoryCheckpointStore::new());
    // One item every 40 ms, windows of 100 ms: 0,1,2 then 3,4,5 then … (the window opens
    // at its first item, so items at 0,40,80 ms fall in the first).
    let mut task = Numbers::new(7, StreamWindow::Duration(Duration::from_millis(100)), &book);
    task.gap = Some(Duration::from_millis(40));
    assert_eq!(
        workflow(task, &store).orchestrate(S::Ingest).await,
        Ok(S::Done)
    );
    let windows = book.flushed.lock().unwrap().clone();
    assert_eq!(windows.concat(), (0..7).collect::<Vec<_>>());
    assert_eq!(windows, [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_flushes_the_window_in_flight_and_a_resume_has_no_duplicates() {
    let book = Arc::new(Book::default());
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut task = Numbers::new(20, StreamWindow::Count(4), &book);
    task.pause_after = Some(6); // 0..6 arrive, then the source is quiet
    let (handle, token) = CancellationToken::new();
    let wf = workflow(task, &store);
    let run = tokio::spawn(async move { wf.orchestrate_with_token(S::Ingest, token).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    handle.cancel();
    let err = run.await.unwrap().unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(
        *book.flushed.lock().unwrap(),
        [vec![0, 1, 2, 3], vec![4, 5]]
    );
    assert_eq!(*book.closed.lock().unwrap(), [CloseReason::Cancelled]);
    let rows = store.load_run("ingest").await.unwrap();
    assert_eq!(
        cursors(&rows),
        ["4", "6"],
        "the drained window's cursor is committed"
    );

    let wf = workflow(Numbers::new(20, StreamWindow::Count(4), &book), &store);
    assert_eq!(wf.resume_from("ingest").await, Ok(S::Done));
    assert_eq!(book.opened.lock().unwrap().last(), Some(&Some(6)));
    assert_eq!(
        book.flushed.lock().unwrap().concat(),
        (0..20).collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_total_timeout_drains_like_a_cancel() {
    let book = Arc::new(Book::default());
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut task = Numbers::new(20, StreamWindow::Count(10), &book);
    task.pause_after = Some(3);
    let wf = workflow(task, &store).with_total_timeout(Duration::from_secs(5));
    let err = wf.orchestrate(S::Ingest).await.unwrap_err();
    assert!(err.is_workflow_timeout(), "{err}");
    assert_eq!(*book.flushed.lock().unwrap(), [vec![0, 1, 2]]);
    assert_eq!(cursors(&store.load_run("ingest").await.unwrap()), ["3"]);
    let summary = &store.list_runs().await.unwrap()[0];
    assert_eq!(summary.last_state, "Ingest");
}

#[tokio::test]
async fn plain_register_runs_the_stream_in_memory() {
    let book = Arc::new(Book::default());
    let store = Arc::new(MemoryCheckpointStore::new());
    let wf = Workflow::bare()
        .register(S::Ingest, Numbers::new(5, StreamWindow::Count(2), &book))
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("plain");
    assert_eq!(wf.orchestrate(S::Ingest).await, Ok(S::Done));
    assert_eq!(
        *book.flushed.lock().unwrap(),
        [vec![0, 1], vec![2, 3], vec![4]]
    );
}

#[tokio::test(start_paused = true)]
async fn a_hung_item_is_bounded_by_the_attempt_timeout() {
    struct Hang;
    #[task::stream(state = S)]
    impl Hang {
        fn config(&self) -> TaskConfig {
            TaskConfig::minimal().with_attempt_timeout(Duration::from_secs(2))
        }
        async fn open(
            &self,
            _res: &Resources,
            _c: Option<u8>,
        ) -> Result<ItemStream<u8>, CanoError> {
            Ok(items([1_u8]))
        }
        async fn process_item(&self, _res: &Resources, _item: u8) -> Result<((), u8), CanoError> {
            std::future::pending().await
        }
        async fn flush_window(
            &self,
            _res: &Resources,
            _o: Vec<()>,
        ) -> Result<WindowSignal<S>, CanoError> {
            Ok(WindowSignal::Continue)
        }
        async fn on_close(
            &self,
            _res: &Resources,
            _r: CloseReason,
        ) -> Result<TaskResult<S>, CanoError> {
            Ok(TaskResult::Single(S::Done))
        }
    }
    let wf = Workflow::bare()
        .register_stream(S::Ingest, Hang)
        .add_exit_state(S::Done);
    let err = wf.orchestrate(S::Ingest).await.unwrap_err();
    assert_eq!(err.category(), "timeout");
    assert!(err.message().contains("attempt_timeout"), "{err}");
}

/// The trait-impl form of `#[task::stream]`.
struct Letters;

#[task::stream]
impl StreamTask<S> for Letters {
    type Item = char;
    type Output = char;
    type Cursor = usize;

    fn window(&self) -> StreamWindow {
        StreamWindow::Count(2)
    }

    async fn open(
        &self,
        _res: &Resources,
        cursor: Option<usize>,
    ) -> Result<ItemStream<char>, CanoError> {
        Ok(items(
            "abcde"
                .chars()
                .skip(cursor.unwrap_or(0))
                .collect::<Vec<_>>(),
        ))
    }

    async fn process_item(&self, _res: &Resources, c: char) -> Result<(char, usize), CanoError> {
        Ok((c.to_ascii_uppercase(), (c as usize) - ('a' as usize) + 1))
    }

    async fn flush_window(
        &self,
        res: &Resources,
        out: Vec<char>,
    ) -> Result<WindowSignal<S>, CanoError> {
        let store = res.get::<MemoryStore, _>("out")?;
        let mut all: String = store.get("all").unwrap_or_default();
        all.extend(out);
        all.push('|');
        store.put("all", all)?;
        Ok(WindowSignal::Continue)
    }

    async fn on_close(
        &self,
        _res: &Resources,
        _reason: CloseReason,
    ) -> Result<TaskResult<S>, CanoError> {
        Ok(TaskResult::Single(S::Done))
    }
}

#[tokio::test]
async fn the_trait_impl_form_runs_registered_either_way() {
    for durable in [true, false] {
        let out = MemoryStore::new();
        let wf = Workflow::new(Resources::new().insert("out", out.clone()));
        let wf = if durable {
            wf.register_stream(S::Ingest, Letters)
        } else {
            wf.register(S::Ingest, Letters)
        };
        let wf = wf.add_exit_state(S::Done);
        assert_eq!(wf.orchestrate(S::Ingest).await, Ok(S::Done));
        assert_eq!(out.get::<String>("all").unwrap(), "AB|CD|E|");
    }
}
