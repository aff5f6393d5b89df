//! Processing models: router, poll, batch, stepped and stream states.
//!
//! Examples, one per model and one with all of them in one pipeline:
//!
//! * `cano/examples/router_task.rs` (`cargo run -p cano --example router_task`): route
//!   support tickets; a router state writes no checkpoint row;
//! * `cano/examples/poll_task.rs` (`cargo run -p cano --example poll_task`): wait for a
//!   render job, tolerate status-API blips, give up in time;
//! * `cano/examples/batch_task.rs` (`cargo run -p cano --example batch_task`): thumbnails
//!   for a batch of uploads, three at a time, with per-item retries;
//! * `cano/examples/stepped_task.rs` (`cargo run -p cano --example stepped_task`): a
//!   table copy, one page per step, resumed from its last cursor after a failure;
//! * `cano/examples/processing_models.rs` (`cargo run -p cano --example processing_models`):
//!   all four in one ingest pipeline, with what each records in the checkpoint log;
//! * `cano/examples/stream_task.rs`
//!   (`cargo run -p cano --example stream_task --features recovery`): a million-line import
//!   in windows of 1,000 on redb, its throughput, and a cancelled run resumed.
//!
//! A plain `#[task]` runs once per attempt and returns the next state. Four other shapes
//! of work come up often enough that cano has a model for each. Each is written with its
//! own attribute on an inherent `impl` (`#[task::router(state = S)]` and so on, all
//! available from `use cano::prelude::*`), which also makes the type a
//! [`Task`](crate::Task), so it registers like any task.
//!
//! | model | shape of the work | attribute | register with | default config |
//! |---|---|---|---|---|
//! | router | only decide where to go next | `#[task::router]`, method `route` | `register_router` | four attempts |
//! | poll | wait until something outside is ready | `#[task::poll]`, method `poll` | `register` | **one attempt** |
//! | batch | the same work over many items | `#[task::batch]`, methods `load`, `process_item`, `finish` | `register` | four attempts |
//! | stepped | a long job in resumable steps | `#[task::stepped]`, method `step` | `register_stepped` | four attempts |
//! | stream | a source of items processed in windows, with a durable cursor | `#[task::stream]`, methods `open`, `process_item`, `flush_window`, `on_close` | `register_stream` | one attempt per item, no retry |
//!
//! # Router: decide, nothing else
//!
//! A router reads what it needs and returns the next state. It should have no side
//! effects: registered with [`register_router`](crate::Workflow::register_router), its
//! state writes no checkpoint row (on resume it simply routes again), though observers
//! still see the state entered. Registered with plain `register`, it is an ordinary,
//! checkpointed state.
//!
//! ```
//! use cano::prelude::*;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Ticket { Triage, PageOnCall, Queue, Done }
//!
//! struct ByPriority;
//!
//! #[task::router(state = Ticket)]
//! impl ByPriority {
//!     async fn route(&self, res: &Resources) -> Result<TaskResult<Ticket>, CanoError> {
//!         let priority: u8 = res.get::<MemoryStore, _>("ticket")?.get("priority")?;
//!         Ok(TaskResult::Single(if priority >= 3 { Ticket::PageOnCall } else { Ticket::Queue }))
//!     }
//! }
//! # struct Handle;
//! # #[task(state = Ticket)]
//! # impl Handle {
//! #     async fn run_bare(&self) -> Result<TaskResult<Ticket>, CanoError> { Ok(TaskResult::Single(Ticket::Done)) }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! # let ticket = MemoryStore::new();
//! # ticket.put("priority", 4u8)?;
//! let workflow = Workflow::new(Resources::new().insert("ticket", ticket))
//!     .register_router(Ticket::Triage, ByPriority)
//!     .register(Ticket::PageOnCall, Handle)
//!     .register(Ticket::Queue, Handle)
//!     .add_exit_state(Ticket::Done);
//! # assert_eq!(workflow.orchestrate(Ticket::Triage).await?, Ticket::Done);
//! # Ok(())
//! # }
//! ```
//!
//! # Poll: wait until ready
//!
//! `poll` returns [`PollOutcome::Pending { delay_ms }`](crate::PollOutcome) (the engine
//! sleeps that long and polls again) or `PollOutcome::Ready(next)`. An error ends the wait
//! at once, unless `on_poll_error` returns
//! [`PollErrorPolicy::RetryOnError { max_errors }`](crate::PollErrorPolicy): then up to
//! `max_errors` errors *in a row* are tolerated (the loop polls again immediately, and a
//! `Pending` resets the count).
//!
//! The loop itself has no limit. **Give every poll task an attempt timeout**: it bounds
//! the whole wait, and a job that never finishes then fails the state with a `Timeout`
//! error instead of hanging the run.
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Render { Wait, Publish }
//!
//! struct RenderFinished {
//!     checks: AtomicU32,
//! }
//!
//! #[task::poll(state = Render)]
//! impl RenderFinished {
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::minimal().with_attempt_timeout(Duration::from_secs(600))
//!     }
//!     fn on_poll_error(&self) -> PollErrorPolicy {
//!         PollErrorPolicy::RetryOnError { max_errors: 3 }
//!     }
//!     async fn poll(&self, _res: &Resources) -> Result<PollOutcome<Render>, CanoError> {
//!         if self.checks.fetch_add(1, Ordering::SeqCst) < 2 {
//!             Ok(PollOutcome::Pending { delay_ms: 5 })
//!         } else {
//!             Ok(PollOutcome::Ready(TaskResult::Single(Render::Publish)))
//!         }
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! # let wf = Workflow::bare()
//! #     .register(Render::Wait, RenderFinished { checks: AtomicU32::new(0) })
//! #     .add_exit_state(Render::Publish);
//! # assert_eq!(wf.orchestrate(Render::Wait).await?, Render::Publish);
//! # Ok(())
//! # }
//! ```
//!
//! If you give a poll task retries, a retry starts the whole wait again.
//!
//! # Batch: the same work over many items
//!
//! `load` returns the items; `process_item` handles one, with at most `concurrency()`
//! items in flight (default 1), each retried per `item_retry()` (default none); `finish`
//! receives one `Result` per item, **in input order**, and returns the next state. A
//! failed item does not fail the state — `finish` decides what failures mean. Only an
//! error from `load` or `finish` fails the state, and a retry of the state runs the whole
//! batch again. The item and output types are taken from `process_item`'s signature.
//!
//! ```
//! use cano::prelude::*;
//! use cano::RetryMode;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Upload { Thumbnails, Publish, Quarantine }
//!
//! struct Thumbnails;
//!
//! #[task::batch(state = Upload)]
//! impl Thumbnails {
//!     fn concurrency(&self) -> usize {
//!         4
//!     }
//!     fn item_retry(&self) -> RetryMode {
//!         RetryMode::fixed(2, Duration::from_millis(10))
//!     }
//!     async fn load(&self, res: &Resources) -> Result<Vec<String>, CanoError> {
//!         Ok(res.get::<MemoryStore, _>("uploads")?.get("files")?)
//!     }
//!     async fn process_item(&self, file: &String) -> Result<String, CanoError> {
//!         if file.ends_with(".jpg") {
//!             Ok(format!("thumb-{file}"))
//!         } else {
//!             Err(CanoError::task_execution(format!("{file}: not an image")))
//!         }
//!     }
//!     async fn finish(
//!         &self,
//!         res: &Resources,
//!         outputs: Vec<Result<String, CanoError>>,
//!     ) -> Result<TaskResult<Upload>, CanoError> {
//!         let failed = outputs.iter().filter(|o| o.is_err()).count();
//!         let thumbs: Vec<String> = outputs.into_iter().filter_map(Result::ok).collect();
//!         res.get::<MemoryStore, _>("uploads")?.put("thumbs", thumbs)?;
//!         Ok(TaskResult::Single(if failed == 0 { Upload::Publish } else { Upload::Quarantine }))
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! # let uploads = MemoryStore::new();
//! # uploads.put("files", vec!["a.jpg".to_string(), "b.txt".to_string()])?;
//! # let wf = Workflow::new(Resources::new().insert("uploads", uploads.clone()))
//! #     .register(Upload::Thumbnails, Thumbnails)
//! #     .add_exit_states(vec![Upload::Publish, Upload::Quarantine]);
//! # assert_eq!(wf.orchestrate(Upload::Thumbnails).await?, Upload::Quarantine);
//! # assert_eq!(uploads.get::<Vec<String>>("thumbs")?, ["thumb-a.jpg"]);
//! # Ok(())
//! # }
//! ```
//!
//! Items run concurrently inside the state's own task, not on separate threads: the
//! concurrency helps with waiting (network calls), not with CPU-bound work. Item retries
//! return the item's last error as is; no attempt timeout or circuit breaker applies to
//! single items.
//!
//! # Stepped: a long job in resumable steps
//!
//! `step` receives the cursor the previous step returned (`None` the first time) and
//! returns [`StepOutcome::More(cursor)`](crate::StepOutcome) to be called again, or
//! `StepOutcome::Done(next)`. The cursor type, taken from `step`'s signature, can be any
//! `Serialize + Deserialize` type (a number, a struct with a page and a running total).
//!
//! ```
//! use cano::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Migration { Copy, Verify }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Progress {
//!     page: u32,
//!     rows: u64,
//! }
//!
//! struct CopyTable {
//!     pages: u32,
//! }
//!
//! #[task::stepped(state = Migration)]
//! impl CopyTable {
//!     async fn step(
//!         &self,
//!         _res: &Resources,
//!         cursor: Option<Progress>,
//!     ) -> Result<StepOutcome<Progress, Migration>, CanoError> {
//!         let at = cursor.unwrap_or(Progress { page: 0, rows: 0 });
//!         let copied = 500; // copy page `at.page` here
//!         let next = Progress { page: at.page + 1, rows: at.rows + copied };
//!         if next.page == self.pages {
//!             Ok(StepOutcome::Done(TaskResult::Single(Migration::Verify)))
//!         } else {
//!             Ok(StepOutcome::More(next))
//!         }
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! let workflow = Workflow::bare()
//!     .register_stepped(Migration::Copy, CopyTable { pages: 3 })
//!     .add_exit_state(Migration::Verify);
//! # assert_eq!(workflow.orchestrate(Migration::Copy).await?, Migration::Verify);
//! # Ok(())
//! # }
//! ```
//!
//! How you register it decides what an "attempt" is:
//!
//! * with [`register_stepped`](crate::Workflow::register_stepped), the engine drives the
//!   loop: each *step* gets the task's retries and attempt timeout (a retry reuses the same
//!   cursor), and with a checkpoint store every new cursor is recorded before the next step
//!   runs, so [`resume_from`](crate::Workflow::resume_from) continues from the last cursor
//!   (see [`recovery`](super::recovery));
//! * with plain `register`, the whole loop is one attempt: a retry starts again from
//!   `None`, and no cursor is recorded.
//!
//! Use `register_stepped` unless you have a reason not to. Make each step idempotent: a
//! step that finished but whose cursor was not yet recorded runs again after a crash.
//!
//! A stepped task must end with `Done(TaskResult::Single(..))`; a split result is an error.
//!
//! # Stream: a source in windows
//!
//! A [`StreamTask`](crate::StreamTask) reads a source — a file, a queue, a table scan — one
//! item at a time. `open(res, cursor)` returns the source from where the last run left
//! off; `process_item` turns an item into an output and the cursor just past it; every
//! window of outputs ([`StreamWindow::Count`](crate::StreamWindow::Count) items, or
//! [`StreamWindow::Duration`](crate::StreamWindow::Duration) after its first) goes to
//! `flush_window`, and then the window's cursor is committed to the run's log. When the
//! source ends, `on_close(CloseReason::Exhausted)` picks the next state; `flush_window` can
//! also leave early with `WindowSignal::Stop(result)`. Register it with
//! [`register_stream`](crate::Workflow::register_stream): a resumed run opens the source at
//! the last committed cursor, and a cancelled run (or one past its total timeout) flushes
//! and commits the window in flight before it stops. A failing item follows
//! [`on_item_error`](crate::StreamTask::on_item_error): fail the state (the default), skip
//! it, or tolerate a number of failures in a row. Items after the last commit are
//! processed again after a crash: make the flush idempotent (an upsert keyed by the
//! item). The module [`cano::task::stream`](mod@crate::task::stream) has a complete example;
//! on this machine the `stream_task` example moves about a million items a second through
//! windows of 1,000 with a redb commit per window (`cargo run --release -p cano --example
//! stream_task --features recovery -- --items 1000000`).
//!
//! # The other forms
//!
//! Each attribute also works on a trait impl (`#[task::poll] impl PollTask<S> for T { … }`),
//! for generic types or a non-default resource key; in the inherent form, pass the key as
//! `#[task::batch(state = S, key = K)]`. Because the attribute implements both the model's
//! trait and `Task`, call `config`/`name` on such a type as `Task::name(&t)` or
//! `PollTask::<S>::name(&t)` when both traits are in scope.
