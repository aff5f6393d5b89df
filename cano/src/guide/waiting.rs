//! Waiting: timers, signals, cancellation, deadlines, and what a waiting run keeps.
//!
//! Examples, both with `--features recovery`:
//!
//! * `cano/examples/reminder.rs`
//!   (`cargo run -p cano --features recovery --example reminder -- --after 10`): a timer
//!   waits ten seconds before a reminder fires. Stop the program mid-sleep (Ctrl-C, or
//!   `kill -9` with the pid it prints) and run it again: it finds the run in its redb
//!   file, says how much of the wait is left, sleeps only that, and fires once;
//! * `cano/examples/approval.rs`: an order waits for an approval signal, across three
//!   processes that each open the same redb file in turn:
//!
//!   ```text
//!   cargo run -p cano --features recovery --example approval -- start --order 1042
//!   cargo run -p cano --features recovery --example approval -- approve --order 1042 --by ana
//!   cargo run -p cano --features recovery --example approval -- resume --order 1042
//!   ```
//!
//!   `start` runs the order until it waits and exits; `approve` (add `--reject` to say no)
//!   stores the decision; `resume` consumes it and finishes the order. `status` lists
//!   what the file holds, and `start --timeout 30` lets you watch the wait expire.
//!
//! # Timer, signal or poll?
//!
//! | the run waits for | write | what a resumed run does | while it waits |
//! |---|---|---|---|
//! | time: a duration, or a point in time | a timer, `#[task::timer]` | sleeps what is left of the recorded deadline | a Tokio timer |
//! | someone to tell it something: a person, a webhook, another system | a signal state, `#[task::signal]`, optionally with a timeout | waits again, until the same deadline; takes a signal sent while it was down | a Tokio timer and a wake-up |
//! | something it must ask about: a job's status behind an HTTP API | a poll task, `#[task::poll]` (see [`processing_models`](super::processing_models)) | polls again from the start | one `poll` call per delay |
//! | a few seconds inside one step | `tokio::time::sleep` in the task | runs the task again from the start | a Tokio timer |
//!
//! Use a signal when the other side can call you (it costs nothing until it does), a
//! poll task when you can only ask, and a timer when only time matters. They combine: a
//! signal state with a timeout ("approve within 7 days, else expire"), a timer before a
//! poll ("check back tomorrow"). Only timers and signal states record their wait in the
//! checkpoint log; everything on this page that says *durable* assumes a workflow with a
//! durable checkpoint store and an id (see [`recovery`](super::recovery)).
//!
//! # Timers
//!
//! A timer is a state that waits and then moves on. `wait` says how long, as a
//! [`TimerOutcome`](crate::TimerOutcome): `Duration(d)` from now, `Until(instant)` (an
//! `Instant` of this process), or `At(system_time)` (a wall-clock time such as "tomorrow
//! 09:00 UTC"); a zero duration or a time already past fires at once. `after_wait` gives
//! the next state. Register it with plain [`register`](crate::Workflow::register).
//!
//! With a checkpoint store, the engine calls `wait` once per visit of the state, records
//! the deadline (wall-clock milliseconds, UTC) in a `Timer` row, sleeps, then calls
//! `after_wait`. A run resumed while the timer sleeps does **not** call `wait` again: it
//! sleeps only what is left of the recorded deadline.
//!
//! ```
//! use cano::prelude::*;
//! use cano::recovery::log;
//! use cano::{MemoryCheckpointStore, RunStatus};
//! use std::borrow::Cow;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Trial { Wait, Remind, Done }
//!
//! /// A day after sign-up, remind the user.
//! struct WaitADay;
//!
//! #[task::timer(state = Trial)]
//! impl WaitADay {
//!     fn name(&self) -> Cow<'static, str> {
//!         "wait_a_day".into() // stable: it is the task_id of the run's rows
//!     }
//!     async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
//!         Ok(TimerOutcome::Duration(Duration::from_secs(24 * 3600)))
//!     }
//!     async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<Trial>, CanoError> {
//!         Ok(TaskResult::Single(Trial::Remind))
//!     }
//! }
//!
//! struct Remind;
//!
//! #[task(state = Trial)]
//! impl Remind {
//!     async fn run_bare(&self) -> Result<TaskResult<Trial>, CanoError> {
//!         Ok(TaskResult::Single(Trial::Done)) // send the mail here
//!     }
//! }
//!
//! fn minutes(d: Duration) -> u64 {
//!     (d.as_secs_f64() / 60.0).round() as u64
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), CanoError> {
//! let store = Arc::new(MemoryCheckpointStore::new()); // RedbCheckpointStore in production
//! let workflow = Workflow::bare()
//!     .register(Trial::Wait, WaitADay)
//!     .register(Trial::Remind, Remind)
//!     .add_exit_state(Trial::Done)
//!     .with_checkpoint_store(store.clone())
//!     .with_workflow_id("trial-42");
//!
//! // The process dies ten minutes into the wait (here: the run's future is dropped).
//! let crashed = tokio::time::timeout(Duration::from_secs(600), workflow.orchestrate(Trial::Wait));
//! assert!(crashed.await.is_err());
//! let rows = store.load_run("trial-42").await?;
//! let kinds: Vec<RowKind> = rows.iter().map(|r| r.kind).collect();
//! assert_eq!(kinds, [RowKind::StateEntry, RowKind::Timer]);
//! assert!(matches!(
//!     log::summarize("trial-42", &rows).status,
//!     RunStatus::Waiting { deadline_ms: Some(_), signal: None }
//! ));
//!
//! // The restarted process resumes the run: it sleeps the rest of the day, not a new one.
//! let started = tokio::time::Instant::now();
//! assert_eq!(workflow.resume_from("trial-42").await?, Trial::Done);
//! assert_eq!(minutes(started.elapsed()), 24 * 60 - 10);
//! # Ok(())
//! # }
//! ```
//!
//! A timer's [`TaskConfig`](crate::TaskConfig) (by default one attempt) applies to each
//! call of `wait` and of `after_wait`, not to the sleep between them: only a
//! cancellation or a run timeout (below) cuts a sleep short. Without a checkpoint store,
//! and as a member of a split state, a timer simply sleeps in memory.
//!
//! # Signals
//!
//! A signal state waits until a named signal is sent to its run, then hands the signal's
//! payload (JSON, deserialized into the task's `Payload` type) to `on_signal`, which picks
//! the next state. Its optional `timeout` names the state to move to when no signal came
//! in time; that is a normal transition, not an error. Register it with
//! [`register_signal`](crate::Workflow::register_signal); the workflow needs a store that
//! keeps signals, set with [`with_signal_store`](crate::Workflow::with_signal_store)
//! (`MemoryCheckpointStore` and `RedbCheckpointStore` both do), and an id.
//!
//! Whoever decides sends the signal through the store, by run id, signal name and a
//! **signal id** of the sender's choosing (a request id, a webhook's delivery id, "the
//! click of this button"): [`SignalStore::send_signal`](crate::SignalStore::send_signal)
//! returns whether the signal was stored, [`signal::send`](crate::signal::send) just
//! `Ok(())`.
//!
//! ```
//! use cano::prelude::*;
//! use cano::signal::{self, Signal, SignalStore};
//! use cano::MemoryCheckpointStore;
//! use serde::{Deserialize, Serialize};
//! use std::borrow::Cow;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Order { Submit, AwaitApproval, Ship, Rejected, Expired }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Approval {
//!     approved: bool,
//!     by: String,
//! }
//!
//! struct Submit;
//!
//! #[task(state = Order)]
//! impl Submit {
//!     async fn run_bare(&self) -> Result<TaskResult<Order>, CanoError> {
//!         Ok(TaskResult::Single(Order::AwaitApproval))
//!     }
//! }
//!
//! struct AwaitApproval;
//!
//! #[task::signal(state = Order)]
//! impl AwaitApproval {
//!     type Payload = Approval;
//!
//!     fn signal(&self) -> Cow<'static, str> {
//!         "approval".into()
//!     }
//!     fn timeout(&self) -> Option<(Duration, Order)> {
//!         Some((Duration::from_secs(7 * 24 * 3600), Order::Expired))
//!     }
//!     async fn on_signal(
//!         &self,
//!         _res: &Resources,
//!         a: Approval,
//!     ) -> Result<TaskResult<Order>, CanoError> {
//!         Ok(TaskResult::Single(if a.approved { Order::Ship } else { Order::Rejected }))
//!     }
//! }
//!
//! fn order(store: &Arc<MemoryCheckpointStore>, id: &str) -> Workflow<Order> {
//!     Workflow::bare()
//!         .register(Order::Submit, Submit)
//!         .register_signal(Order::AwaitApproval, AwaitApproval)
//!         .add_exit_states(vec![Order::Ship, Order::Rejected, Order::Expired])
//!         .with_signal_store(store.clone())
//!         .with_workflow_id(id)
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), CanoError> {
//! let store = Arc::new(MemoryCheckpointStore::new());
//! let yes = Signal::new("approval", "click-1", &Approval { approved: true, by: "ana".into() })?;
//!
//! // A run can be signalled once it has written its first row; before that it is unknown.
//! let err = signal::send(&*store, "order-7", yes.clone()).await.unwrap_err();
//! assert!(err.message().contains(r#"no run "order-7" in this store"#), "{err}");
//!
//! let workflow = order(&store, "order-7");
//! let run = tokio::spawn(async move { workflow.orchestrate(Order::Submit).await });
//! while store.load_run("order-7").await?.is_empty() {
//!     tokio::time::sleep(Duration::from_millis(1)).await;
//! }
//! assert!(store.send_signal("order-7", yes.clone()).await?); // stored
//! assert!(!store.send_signal("order-7", yes).await?); // the same id, still pending: no-op
//! assert_eq!(run.await.unwrap()?, Order::Ship);
//!
//! // Nobody decides within seven days: the timeout state.
//! assert_eq!(order(&store, "order-8").orchestrate(Order::Submit).await?, Order::Expired);
//! # Ok(())
//! # }
//! ```
//!
//! What the engine guarantees:
//!
//! * **Nothing is lost.** The store keeps a signal until the run consumes it, so one sent
//!   before the run reaches its signal state, or while its process is down, is consumed
//!   when the run waits (a resumed run too).
//! * **One decision per visit.** Consuming a signal writes a `Signal` row (name, id,
//!   payload) to the log *before* `on_signal` sees the payload. From then on that visit
//!   of the state has its signal: a resumed run hands the same payload to `on_signal`
//!   again and takes no other. A signal id in the log is never consumed again by the run.
//! * **Repeats are harmless.** Sending an id that is already pending returns `Ok(false)`
//!   and changes nothing. An id the run has already consumed is stored again
//!   (`Ok(true)`), but the run drops it unconsumed when it next looks for signals.
//! * A signal that arrives is seen at once when it is sent through the store object the
//!   run waits on (both built-in stores wake the run); a store of your own that cannot
//!   wake runs ([`SignalStore::poll_signal_sent`](crate::SignalStore::poll_signal_sent) returns
//!   `None`) is asked every second.
//! * `on_signal` runs under the task's `config` (by default one attempt); the wait itself
//!   is bounded only by the timeout, a cancellation and the run timeouts.
//!
//! A signal named differently from what the run waits for stays pending until a state
//! waits for that name, or until the run's log is cleared. Observers hear
//! `on_signal_received(name, id)` for each consumed signal.
//!
//! # What is durable, and what is not
//!
//! Durable means: written to the run's checkpoint log (or, for pending signals, to the
//! store's signal table) before the engine goes on, so that another process can continue
//! from it. The table of the [`run_data`](crate::run_data) module, extended to waits:
//!
//! | what | lives | after a crash and `resume_from` |
//! |---|---|---|
//! | [`RunData`](crate::run_data::RunData) values | in the run's checkpoint log | exactly the values that **completed** states wrote |
//! | [`MemoryStore`](crate::MemoryStore), resources, anything in your process | in memory, shared by every run of the workflow, **one per process** | gone: a new process starts empty |
//! | the run's position, saga steps, stepped cursors | in the run's checkpoint log | kept |
//! | a timer's deadline | a `Timer` row | kept: the resumed run sleeps the rest |
//! | a signal wait and its timeout's deadline | a `SignalWait` row | kept: the resumed run waits again, until the same deadline |
//! | a consumed signal (name, id, payload) | a `Signal` row | kept: handed to `on_signal` again, never consumed twice |
//! | signals sent, not consumed yet | the store (in a redb file, its `cano_signals` table) | kept |
//! | a cancellation, the run timeouts' clocks | the running process | not kept: a resumed run is not cancelled, and gets its whole time limit again |
//! | a poll loop's progress, a `sleep` inside a task | the task's future | lost: the state runs again from the start |
//!
//! "In the log" is as durable as the store: `RedbCheckpointStore` (feature `recovery`)
//! or your own database. `MemoryCheckpointStore` keeps logs and signals in memory, so
//! with it nothing survives the process; it is for tests and for runs that need waits but
//! no recovery.
//!
//! Keep what later states need in run data, not in a `MemoryStore`: a run resumed in
//! another process finds the `MemoryStore` empty. A task writes with `put`; the writes of
//! a state are recorded together with the next state's entry row, so a state that was
//! interrupted has written nothing durable, and writes again when it runs again. Run data
//! is there for workflows built with
//! [`with_run_data`](crate::Workflow::with_run_data): durable with a checkpoint store, the
//! same API in memory without one (tests, store-less runs); elsewhere
//! [`RunData::current`](crate::run_data::RunData::current) is a `Configuration` error
//! that says so.
//!
//! # Idempotency keys for side effects
//!
//! The task at the resume point runs again — after a crash, a `resume_from` of a failed
//! run, a cancelled run continued. That includes `after_wait` of a timer and `on_signal`
//! of a signal state: the process can die after they did their work and before the next
//! state's row was written. Whatever they do outside must be safe to repeat.
//!
//! [`RunData::idempotency_key`](crate::run_data::RunData::idempotency_key) is
//! `"{run id}/{visit}"`, where `visit` counts the states the run entered before this one.
//! It is the same each time one visit of a state runs (again after a resume, and on the
//! task's retries) and different for a later visit of the same state (a loop). Give it to
//! the payment provider, the mailer, the queue — most take an idempotency key — so that a
//! repeated call is done once.
//!
//! ```
//! use cano::prelude::*;
//! use cano::run_data::RunData;
//! use cano::MemoryCheckpointStore;
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Pay { Quote, Charge, Done }
//!
//! /// Stands in for a payment provider that deduplicates requests by idempotency key.
//! /// It records a charge at once and answers after five seconds.
//! #[derive(Default)]
//! struct Gateway(Mutex<HashMap<String, u64>>);
//!
//! impl Gateway {
//!     async fn charge(&self, key: &str, cents: u64) -> String {
//!         self.0.lock().unwrap().entry(key.to_string()).or_insert(cents);
//!         tokio::time::sleep(Duration::from_secs(5)).await;
//!         format!("ch_{key}")
//!     }
//! }
//!
//! struct Quote;
//!
//! #[task(state = Pay)]
//! impl Quote {
//!     async fn run_bare(&self) -> Result<TaskResult<Pay>, CanoError> {
//!         RunData::current()?.put("amount_cents", 1999u64)?;
//!         Ok(TaskResult::Single(Pay::Charge))
//!     }
//! }
//!
//! struct Charge(Arc<Gateway>);
//!
//! #[task(state = Pay)]
//! impl Charge {
//!     async fn run_bare(&self) -> Result<TaskResult<Pay>, CanoError> {
//!         let data = RunData::current()?;
//!         let cents: u64 = data.get("amount_cents")?; // written by Quote, a completed state
//!         let charge_id = self.0.charge(&data.idempotency_key(), cents).await;
//!         data.put("charge_id", charge_id)?;
//!         Ok(TaskResult::Single(Pay::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), CanoError> {
//! let gateway = Arc::new(Gateway::default());
//! let store = Arc::new(MemoryCheckpointStore::new());
//! let workflow = Workflow::bare()
//!     .register(Pay::Quote, Quote)
//!     .register(Pay::Charge, Charge(gateway.clone()))
//!     .add_exit_state(Pay::Done)
//!     .with_checkpoint_store(store)
//!     .with_workflow_id("order-42")
//!     .with_run_data();
//!
//! // The process dies while the gateway's answer is on its way.
//! let crashed = tokio::time::timeout(Duration::from_secs(2), workflow.orchestrate(Pay::Quote));
//! assert!(crashed.await.is_err());
//! assert_eq!(workflow.resume_from("order-42").await?, Pay::Done); // Charge runs again
//!
//! // Both calls carried the key "order-42/1": the customer was charged once.
//! let charges = gateway.0.lock().unwrap().clone();
//! assert_eq!(charges, HashMap::from([("order-42/1".to_string(), 1999)]));
//! # Ok(())
//! # }
//! ```
//!
//! A key is only as good as the other side's memory: a provider that forgets keys after
//! a day does not protect a run resumed a week later. For side effects of your own (a row
//! in your database), store the key with the effect, in the same transaction, and check
//! for it first.
//!
//! # Cancelling a run
//!
//! [`CancellationToken::new`](crate::cancel::CancellationToken::new) gives a pair: the
//! handle you keep and the token you hand to
//! [`orchestrate_with_token`](crate::Workflow::orchestrate_with_token) or
//! [`resume_from_with_token`](crate::Workflow::resume_from_with_token). When the handle
//! cancels:
//!
//! * the task in flight is dropped at its next `.await` — a sleeping timer and a waiting
//!   signal state at once. A compensatable (saga) task is never interrupted: it finishes,
//!   and the run stops after it;
//! * observers' `on_cancelled(state)` fires, then the saga's completed steps are
//!   compensated (this rollback cannot be cancelled; only a compensation budget, below,
//!   bounds it), then resources are torn down;
//! * the run ends with `Workflow error: Workflow cancelled in state {state}`; tell it
//!   apart with [`CanoError::is_cancelled`](crate::CanoError::is_cancelled) (also true
//!   for a `CompensationFailed` caused by the cancel).
//!
//! A token cancelled before the run starts runs nothing: no setup, no row. Tasks are not
//! given the token; what they await is simply dropped.
//!
//! **A cancel is not recorded in the log.** A run whose saga was fully undone has cleared
//! its log: it is over. Any other cancelled run keeps its log as it was — a sleeping
//! timer's last row is still its `Timer` row — so it is *stopped*, not over:
//! `resume_from` continues it, with whatever is left of its wait. To give it up for good,
//! clear its log (its pending signals go with it).
//!
//! ```
//! use cano::cancel::CancellationToken;
//! use cano::prelude::*;
//! use cano::MemoryCheckpointStore;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Trial { Wait, Done }
//!
//! struct WaitADay;
//!
//! #[task::timer(state = Trial)]
//! impl WaitADay {
//!     async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
//!         Ok(TimerOutcome::Duration(Duration::from_secs(24 * 3600)))
//!     }
//!     async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<Trial>, CanoError> {
//!         Ok(TaskResult::Single(Trial::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), CanoError> {
//! let store = Arc::new(MemoryCheckpointStore::new());
//! let workflow = Workflow::bare()
//!     .register(Trial::Wait, WaitADay)
//!     .add_exit_state(Trial::Done)
//!     .with_checkpoint_store(store.clone())
//!     .with_workflow_id("trial-7");
//!
//! let (handle, token) = CancellationToken::new();
//! let run = tokio::spawn({
//!     let workflow = workflow.clone();
//!     async move { workflow.orchestrate_with_token(Trial::Wait, token).await }
//! });
//! tokio::time::sleep(Duration::from_secs(60)).await;
//! handle.cancel(); // the user closed their account
//!
//! let err = run.await.unwrap().unwrap_err();
//! assert!(err.is_cancelled());
//! assert_eq!(err.to_string(), "Workflow error: Workflow cancelled in state Wait");
//! let last = store.load_run("trial-7").await?.last().map(|row| row.kind);
//! assert_eq!(last, Some(RowKind::Timer)); // stopped, still resumable…
//! store.clear("trial-7").await?; // …until its log is cleared
//! assert!(workflow.resume_from("trial-7").await.is_err());
//! # Ok(())
//! # }
//! ```
//!
//! Dropping the run's future stops a run too, but abruptly: no compensation, no
//! teardown. Cancel when you mean to stop; drop only when the process is going anyway.
//!
//! ## Cancelling a scheduled flow
//!
//! Under the [`scheduler`](super::scheduler) (feature `scheduler`), each run gets its own
//! token: `running.cancel_flow(id)` cancels the flow's run in flight (a no-op when it is
//! not running; an error for an unknown flow id) and returns as soon as the cancel is
//! requested. A run that stopped cleanly returns the flow to `Status::Idle` without
//! counting a failure, so no backoff; a failed rollback counts as a failed run. The
//! flow's next run happens as scheduled. The cancelled run's log stays in the store under
//! the run's own id, `"{base}@{run}-{millis}"`, like any stopped run: resume it with
//! `resume_from`, or clear it.
//!
//! ```
//! # use cano::prelude::*;
//! # use std::time::Duration;
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum Trial { Wait, Done }
//! # struct WaitADay;
//! # #[task::timer(state = Trial)]
//! # impl WaitADay {
//! #     async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
//! #         Ok(TimerOutcome::Duration(Duration::from_secs(24 * 3600)))
//! #     }
//! #     async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<Trial>, CanoError> {
//! #         Ok(TaskResult::Single(Trial::Done))
//! #     }
//! # }
//! # #[cfg(feature = "scheduler")]
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), CanoError> {
//! let trial = Workflow::bare().register(Trial::Wait, WaitADay).add_exit_state(Trial::Done);
//! let mut scheduler = Scheduler::new();
//! scheduler.manual("trial", trial, Trial::Wait)?;
//! let running = scheduler.start().await?;
//!
//! running.trigger("trial").await?;
//! tokio::time::sleep(Duration::from_secs(60)).await;
//! running.cancel_flow("trial").await?;
//! while running.has_running_flows().await {
//!     tokio::time::sleep(Duration::from_millis(5)).await;
//! }
//! let info = running.status("trial").await.expect("registered");
//! assert_eq!((info.status, info.failure_streak), (Status::Idle, 0));
//! running.stop().await?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "scheduler"))]
//! # fn main() {}
//! ```
//!
//! # Deadlines
//!
//! | bound | set with | bounds | when it passes |
//! |---|---|---|---|
//! | attempt | `TaskConfig::with_attempt_timeout(d)` | one call of a task: `wait` or `after_wait` of a timer, `on_signal` — never the wait itself | the attempt fails (and is retried, if the task allows) |
//! | signal wait | the signal task's `timeout()`, `Some((d, state))` | one visit's wait for a signal; **recorded**, so it survives resumes | the run moves to `state` |
//! | run (0.12.0) | [`Workflow::with_timeout(d)`](crate::Workflow::with_timeout) | the state machine of each `orchestrate` / `resume_from` | the run is dropped at once: no compensation; `Workflow error: Workflow timeout exceeded` |
//! | whole run | [`Workflow::with_total_timeout(d)`](crate::Workflow::with_total_timeout) | each `orchestrate` / `resume_from`, from its start | the task in flight is dropped (a saga step finishes first), `on_workflow_timeout(elapsed, limit)` fires, the saga is rolled back within the compensation budget; `Timeout error: Workflow exceeded its total timeout in state {state}: ran {elapsed}, limit {limit}` |
//! | rollback | [`Workflow::with_compensation_timeout(d)`](crate::Workflow::with_compensation_timeout) | the rollback of a failed run, **only** in a workflow with a total timeout — whatever failed it: the deadline, a task error, a cancel | compensations still running are dropped and those not started are not run; the run ends with `CompensationFailed` listing them; the log keeps the rollback, and `resume_from` finishes it |
//!
//! So `with_total_timeout` is the graceful version of 0.12.0's `with_timeout`: the run
//! stops where it is, as with a cancel, and undoes its saga. Tell its error apart with
//! [`CanoError::is_workflow_timeout`](crate::CanoError::is_workflow_timeout). With both
//! set, the smaller limit applies, the graceful way. The compensation budget defaults to
//! half the total timeout, at most 30 seconds. As with a cancel, the log is cleared if
//! the saga was fully undone and kept otherwise (a run without saga steps keeps it, at
//! its last row).
//!
//! ```
//! use cano::prelude::*;
//! use std::borrow::Cow;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Order { Reserve, AwaitStock, Done }
//!
//! const HOUR: Duration = Duration::from_secs(3600);
//!
//! /// Holds stock; releases it when the order is rolled back.
//! struct Reserve;
//!
//! #[saga::task(state = Order)]
//! impl Reserve {
//!     type Output = String;
//!     fn name(&self) -> Cow<'static, str> {
//!         "reserve".into()
//!     }
//!     async fn run(&self, res: &Resources) -> Result<(TaskResult<Order>, String), CanoError> {
//!         res.get::<MemoryStore, _>("stock")?.put("H-7", "held")?;
//!         Ok((TaskResult::Single(Order::AwaitStock), "H-7".to_string()))
//!     }
//!     async fn compensate(&self, res: &Resources, hold: String) -> Result<(), CanoError> {
//!         res.get::<MemoryStore, _>("stock")?.remove(&hold)?;
//!         Ok(())
//!     }
//! }
//!
//! /// The supplier restocks in two days.
//! struct AwaitStock;
//!
//! #[task::timer(state = Order)]
//! impl AwaitStock {
//!     async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
//!         Ok(TimerOutcome::Duration(48 * HOUR))
//!     }
//!     async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<Order>, CanoError> {
//!         Ok(TaskResult::Single(Order::Done))
//!     }
//! }
//!
//! fn order(stock: &MemoryStore) -> Workflow<Order> {
//!     Workflow::new(Resources::new().insert("stock", stock.clone()))
//!         .register_with_compensation(Order::Reserve, Reserve)
//!         .register(Order::AwaitStock, AwaitStock)
//!         .add_exit_state(Order::Done)
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), CanoError> {
//! let stock = MemoryStore::new();
//!
//! // Give up after a day, and take at most a minute to release the hold.
//! let graceful = order(&stock)
//!     .with_total_timeout(24 * HOUR)
//!     .with_compensation_timeout(Duration::from_secs(60));
//! let err = graceful.orchestrate(Order::Reserve).await.unwrap_err();
//! assert!(err.is_workflow_timeout());
//! assert_eq!(
//!     err.to_string(),
//!     "Timeout error: Workflow exceeded its total timeout in state AwaitStock: ran 86400s, limit 86400s"
//! );
//! assert!(stock.is_empty()?); // the hold was released
//!
//! // 0.12.0's run timeout drops the run where it is: the hold stays.
//! let abrupt = order(&stock).with_timeout(24 * HOUR);
//! let err = abrupt.orchestrate(Order::Reserve).await.unwrap_err();
//! assert_eq!(err.to_string(), "Workflow error: Workflow timeout exceeded");
//! assert!(stock.contains_key("H-7")?);
//! # Ok(())
//! # }
//! ```
//!
//! Neither run timeout is durable: each `resume_from` is a new call and gets the whole
//! limit again, and a run timeout shorter than a wait cuts the wait off. To bound how
//! long a run may *wait*, across crashes and resumes, put the limit on the wait — a
//! signal state's timeout, or a timer that races nothing but time — and keep the run
//! timeouts for how long one process may work on it.
//!
//! # What happens on resume
//!
//! [`resume_from`](crate::Workflow::resume_from) continues at the log's last row (see
//! [`recovery::log`](crate::recovery::log) for the format). For the waiting kinds of
//! state, that row says where in the wait the run was, and the resumed run first writes a
//! re-entry row of the same kind:
//!
//! | the log ends with | the run was | the resumed run |
//! |---|---|---|
//! | `StateEntry` of a timer or signal state | entering the state; the wait was not recorded yet | starts the state afresh: asks `wait` / records a new wait |
//! | `Timer` (the deadline) | sleeping | writes a `Timer` row with the same deadline and sleeps what is left — not at all if it passed — then calls `after_wait`; `wait` is not called |
//! | `SignalWait` (signal name, deadline or none) | waiting for a signal | writes a `SignalWait` row with the same deadline; takes a signal that is pending in the store, **even if the deadline has passed** meanwhile; otherwise waits until the deadline, then moves to the timeout state |
//! | `Signal` (name, id, payload) | running `on_signal`, or about to | writes a `Signal` row with the same signal and calls `on_signal` with the same payload; takes no other signal for this visit |
//! | `StateEntry` of a poll state, or of a task that sleeps | polling, sleeping | runs the task from the start |
//!
//! [`RunStatus::Waiting`](crate::RunStatus::Waiting) is how a log reads when its run is
//! waiting (`deadline_ms`, and `signal` for a signal state): stores that implement
//! [`ListRuns`](crate::ListRuns), both built-in ones included, report it for each run, and
//! [`recovery::log::summarize`](crate::recovery::log::summarize) reads it from a log.
//!
//! cano does not resume anything by itself. A waiting run is a future in a process; when
//! that process is gone, the run sits in the store — past its deadline too — until a
//! program resumes it. At start-up, resume what was waiting:
//!
//! ```
//! use cano::prelude::*;
//! use cano::{ListRuns, RunStatus};
//!
//! async fn resume_waiting<S>(
//!     workflow: &Workflow<S>,
//!     store: &dyn ListRuns,
//! ) -> Result<(), CanoError>
//! where
//!     S: Clone + std::fmt::Debug + std::hash::Hash + Eq + Send + Sync + 'static,
//! {
//!     for run in store.list_runs().await? {
//!         if matches!(run.status, RunStatus::Waiting { .. }) {
//!             let workflow = workflow.clone();
//!             tokio::spawn(async move { workflow.resume_from(run.workflow_id).await });
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Bad input and failures
//!
//! | what | what happens |
//! |---|---|
//! | a signal for a run the store does not hold — never started, not started *yet* (it has no row before it enters its first state), or finished | `send_signal` fails: `Checkpoint store error: cannot send signal "approval" ("click-1"): no run "order-9" in this store (it never started here, or it has finished)` |
//! | a payload that is not JSON | [`Signal::from_json`](crate::Signal::from_json) fails with a `Store` error: `signal "approval": the payload is not valid JSON: …`; [`Signal::new`](crate::Signal::new) fails on a value that does not serialize |
//! | JSON that does not fit the task's `Payload` type | the send succeeds (the store does not know the type). When the run looks at it, the signal is dropped from the store, reported to observers' `on_signal_rejected(name, id, error)` (and as a `tracing` warning), and the run **keeps waiting**. The sender is not told: deserialize into the same type before sending |
//! | the store fails while a signal is consumed | the run fails with a `CheckpointStore` error (`append signal checkpoint: …`) before `on_signal` runs; the signal stays pending, and `resume_from` consumes it |
//! | the store fails while a timer's deadline or a signal wait is recorded | the run fails (`append timer checkpoint: …`, `append signal wait checkpoint: …`) before it waits; `resume_from` starts the state afresh |
//! | `on_signal` or `after_wait` fails | the run fails like any task (saga rolled back, log kept); `resume_from` calls it again with the same payload, or at once after the recorded deadline |
//! | a deadline too far away to record (`Duration::MAX`) | the timer state fails: `timer "…": its deadline (…) is too far away to record; …`; nothing is recorded |
//! | a signal state in a workflow without a signal store | validation fails: `A signal state needs a store that keeps signals: call with_signal_store …` (a later `with_checkpoint_store` replaces the signal store, too) |
//! | a waiting state in a workflow with a store but no id | `checkpointing requires a workflow id (call with_workflow_id)` |
//! | a log written by an older build whose payload no longer fits the `Payload` type, or whose signal task has lost its timeout state | `resume_from` fails with a `Workflow` error that says so; keep payload types and timeout states compatible while runs wait |
//!
//! # Limits
//!
//! * **redb lets one process open a file at a time** (and one handle per file in a
//!   process). A signal for a run that waits in a live process must therefore go
//!   through that process's store object — the `Arc<RedbCheckpointStore>` its workflow
//!   uses — which also wakes the run at once: give the process an endpoint (an HTTP
//!   handler, a queue consumer) that calls `send_signal`. Another process can only send
//!   while nobody holds the file, as in the approval example, whose `approve` refuses to
//!   run while `start` or `resume` holds it.
//! * A sleeping or waiting run is a Tokio timer (and, for a signal, a wake-up), not a
//!   thread: thousands of waiting runs cost only their memory. But each is a future that
//!   someone must keep running, or resume after a restart.
//! * Deadlines are recorded in wall-clock time (milliseconds since the Unix epoch, UTC).
//!   A live sleep follows Tokio's clock; a resumed one measures the rest against the
//!   system clock of the machine that resumes it.
//! * Signals are matched by name per run; a run waits for one name at a time, and to
//!   signal a scheduled run you need its id, `"{base}@{run}-{millis}"`.
//! * After a run finishes, its log and its pending signals are cleared; with redb, should
//!   the process die between the two, the leftover signals stay in the file and a later
//!   run under the **same id** would see them. Use a fresh id per run, as checkpoint logs
//!   require anyway.
