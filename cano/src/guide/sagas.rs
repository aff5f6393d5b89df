//! Sagas: undoing completed steps when a later one fails.
//!
//! Examples: `cano/examples/saga_rollback.rs`
//! (`cargo run -p cano --example saga_rollback`): an order reserves stock, charges a card,
//! fails to ship, and is rolled back — once cleanly, once with a refund that fails too;
//! `cano/examples/saga_crash_resume.rs`
//! (`cargo run -p cano --example saga_crash_resume --features recovery`): the process
//! running the saga is killed, once during the forward steps and once during the
//! rollback, and another process finishes the job without undoing any step twice.
//!
//! # When
//!
//! Some workflows change things outside that cannot be wrapped in one transaction: a
//! stock hold in the warehouse system, a charge with the payment provider, a shipping
//! label. If a later step fails, the earlier ones must be undone by doing something
//! else — releasing the hold, refunding the charge. A *saga* pairs every such step with
//! its *compensation*, and cano runs the compensations for you, most recent first, when a
//! run fails.
//!
//! # Compensatable steps
//!
//! Write the step with `#[saga::task(state = …)]`. Its `run` returns the next state
//! **and** an `Output` describing what it did; `compensate` receives that output and
//! undoes the step. Register it with
//! [`register_with_compensation`](crate::Workflow::register_with_compensation). The
//! output must be `Serialize + Deserialize` (it is stored as JSON, so a step done by a
//! process that died can be undone by another).
//!
//! ```
//! use cano::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Order { Reserve, Charge, Ship, Done }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Hold {
//!     hold_id: String,
//! }
//!
//! struct ReserveStock;
//!
//! #[saga::task(state = Order)]
//! impl ReserveStock {
//!     type Output = Hold;
//!
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::minimal()
//!     }
//!     async fn run(&self, res: &Resources) -> Result<(TaskResult<Order>, Hold), CanoError> {
//!         res.get::<MemoryStore, _>("world")?.append("log", "reserve H-7".to_string())?;
//!         Ok((TaskResult::Single(Order::Charge), Hold { hold_id: "H-7".into() }))
//!     }
//!     async fn compensate(&self, res: &Resources, hold: Hold) -> Result<(), CanoError> {
//!         let world = res.get::<MemoryStore, _>("world")?;
//!         world.append("log", format!("release {}", hold.hold_id))?;
//!         Ok(())
//!     }
//! }
//!
//! struct ChargeCard;
//!
//! #[saga::task(state = Order)]
//! impl ChargeCard {
//!     type Output = String; // the payment id
//!
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::minimal()
//!     }
//!     async fn run(&self, res: &Resources) -> Result<(TaskResult<Order>, String), CanoError> {
//!         res.get::<MemoryStore, _>("world")?.append("log", "charge PAY-31".to_string())?;
//!         Ok((TaskResult::Single(Order::Ship), "PAY-31".into()))
//!     }
//!     async fn compensate(&self, res: &Resources, payment: String) -> Result<(), CanoError> {
//!         res.get::<MemoryStore, _>("world")?.append("log", format!("refund {payment}"))?;
//!         Ok(())
//!     }
//! }
//!
//! /// An ordinary task: it fails, so the saga rolls back.
//! struct Ship;
//!
//! #[task(state = Order)]
//! impl Ship {
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::minimal()
//!     }
//!     async fn run_bare(&self) -> Result<TaskResult<Order>, CanoError> {
//!         Err(CanoError::task_execution("courier rejected the parcel"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! let world = MemoryStore::new();
//! let workflow = Workflow::new(Resources::new().insert("world", world.clone()))
//!     .register_with_compensation(Order::Reserve, ReserveStock)
//!     .register_with_compensation(Order::Charge, ChargeCard)
//!     .register(Order::Ship, Ship)
//!     .add_exit_state(Order::Done);
//!
//! let err = workflow.orchestrate(Order::Reserve).await.unwrap_err();
//! // Every compensation succeeded: the run returns the error that caused the rollback.
//! assert_eq!(err, CanoError::task_execution("courier rejected the parcel"));
//! assert_eq!(
//!     world.get::<Vec<String>>("log")?,
//!     ["reserve H-7", "charge PAY-31", "refund PAY-31", "release H-7"],
//! );
//! # Ok(())
//! # }
//! ```
//!
//! # What a rollback does
//!
//! Each completed compensatable step pushes its output on the run's *compensation
//! stack*. Any error that ends the run once it is under way — a task error, a missing
//! handler, a failed checkpoint write — starts the rollback:
//!
//! * every step on the stack is compensated, most recent first, each exactly once;
//! * a compensation is **not retried**; the step's attempt timeout, if it has one, bounds
//!   it, and a panic is caught. A failing compensation does not stop the others;
//! * if every compensation succeeded, the run returns the **original error**, and the
//!   checkpoint log (if any) is cleared: there is nothing left to resume;
//! * if any failed, the run returns [`CanoError::CompensationFailed`](crate::CanoError::CompensationFailed)
//!   `{ errors }`: `errors[0]` is the original error, then each compensation error in the
//!   order they happened. The log is kept. Something outside is now in a state that needs
//!   attention — page a human, or retry the compensation yourself from `errors`.
//!
//! ```
//! use cano::CanoError;
//!
//! fn report(err: &CanoError) {
//!     match err {
//!         CanoError::CompensationFailed { errors } => {
//!             eprintln!("order failed ({}) and could not be fully undone:", errors[0]);
//!             for e in &errors[1..] {
//!                 eprintln!("  - {e}");
//!             }
//!         }
//!         other => eprintln!("order failed and was rolled back: {other}"),
//!     }
//! }
//! ```
//!
//! A compensatable step whose own `run` fails pushed nothing, so it is not compensated:
//! make its `run` leave nothing behind when it fails. Ordinary
//! tasks, and router, poll, batch, stepped and split states, are never compensated, but
//! their failure rolls back the saga steps before them. The workflow timeout is the one
//! exception: it stops the run where it is, without a rollback, and keeps the log (resume
//! the run to finish or roll it back).
//!
//! # Writing compensations
//!
//! * Make `compensate` work from `(resources, output)` alone: after a crash it may run in
//!   another process, long after `run`. Put everything it needs (ids, amounts) in the
//!   output.
//! * Make it idempotent: refunding an already refunded payment should succeed without
//!   refunding twice. cano never calls it twice for one completed step, but a process can
//!   die after the outside effect and before the engine recorded it.
//! * Give each compensatable task a stable, unique [`name`](crate::CompensatableTask::name):
//!   compensations are looked up by name, so two steps whose tasks share a name share one
//!   compensator, and a step recorded under a name the workflow no longer has cannot be
//!   undone (`no compensator registered for task "…" — cannot roll it back`). The default
//!   name is the type's path, which changes if you move the type.
//!
//! # Sagas and recovery
//!
//! With a checkpoint store each completed step also writes a row holding its output, so
//! the stack survives a crash: `resume_from` rebuilds it, and a resumed run that fails
//! compensates steps done by the dead process too. A rollback is recorded as it goes — a
//! `RollbackStarted` row, then a `Compensated` row after each step undone — so a process
//! killed mid-rollback is finished by `resume_from`, which undoes only the remaining
//! steps and returns the original error (or `CompensationFailed`). cano 0.12.0 did not
//! record rollbacks; see `COMPATIBILITY.md` and the `saga_crash_resume` example.
//!
//! Compensatable steps are single-task states: there is no compensatable split.
