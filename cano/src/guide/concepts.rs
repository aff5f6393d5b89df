//! Concepts: states, tasks, resources and exit states.
//!
//! Example: `cano/examples/checkout.rs` (`cargo run -p cano --example checkout`), an
//! order that is validated, reserved, charged (with retries) and shipped.
//!
//! # A workflow is a state machine over your own type
//!
//! You describe the steps of a process as the values of a type of your own, usually an
//! `enum`. It needs `Debug`, `Clone`, `PartialEq`, `Eq` and `Hash` (the engine keys its
//! tables by state and uses the `Debug` text in observer events and checkpoint logs):
//!
//! ```
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Signup {
//!     CheckEmail,
//!     CreateAccount,
//!     SendWelcome,
//!     Done,
//!     Refused,
//! }
//! ```
//!
//! A [`Workflow`](crate::Workflow) maps some of those states to a *task* each, and marks
//! others as *exit states*. [`orchestrate`](crate::Workflow::orchestrate) starts at the
//! state you give it, runs that state's task, moves to the state the task returns, and
//! repeats until it enters an exit state, which it returns. A run that never reaches an
//! exit state runs forever (or until a timeout, see [`retries_and_timeouts`](super::retries_and_timeouts)).
//!
//! # Tasks
//!
//! A task is a type with an async `run` method, written with the `#[task(state = …)]`
//! attribute on an ordinary `impl` block. `run` receives the workflow's resources and
//! returns the next state wrapped in [`TaskResult::Single`](crate::TaskResult::Single);
//! if the task needs no resources, write `run_bare(&self)` instead.
//!
//! ```
//! use cano::prelude::*;
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! # enum Signup { CheckEmail, CreateAccount, SendWelcome, Done, Refused }
//!
//! struct CheckEmail;
//!
//! #[task(state = Signup)]
//! impl CheckEmail {
//!     async fn run(&self, res: &Resources) -> Result<TaskResult<Signup>, CanoError> {
//!         let store = res.get::<MemoryStore, _>("store")?;
//!         let email: String = store.get("email")?;
//!         Ok(TaskResult::Single(if email.contains('@') {
//!             Signup::CreateAccount
//!         } else {
//!             Signup::Refused
//!         }))
//!     }
//! }
//!
//! struct SendWelcome;
//!
//! #[task(state = Signup)]
//! impl SendWelcome {
//!     async fn run_bare(&self) -> Result<TaskResult<Signup>, CanoError> {
//!         Ok(TaskResult::Single(Signup::Done))
//!     }
//! }
//! ```
//!
//! Besides `run`/`run_bare`, the block may define two plain methods:
//!
//! * `fn config(&self) -> TaskConfig`: retries, timeouts and a circuit breaker (see the
//!   next chapters). The engine reads it once, when the task is registered.
//! * `fn name(&self) -> Cow<'static, str>`: how the task is named in observer events and
//!   checkpoint rows. The default is the type's path (`my_app::tasks::CheckEmail`).
//!
//! A task fails by returning `Err(CanoError)`. For your own failures use
//! [`CanoError::task_execution`](crate::CanoError::task_execution); errors from cano calls
//! (resources, the store) convert with `?`. A panic inside a task is caught and becomes a
//! `TaskExecution` error whose message starts with `panic: `.
//!
//! You can also implement the trait itself, `#[task] impl Task<Signup> for CheckEmail { … }`;
//! the two forms are equivalent.
//!
//! # Resources
//!
//! Tasks reach the outside world through [`Resources`](crate::Resources), a typed map the
//! workflow hands to every task. Anything that implements [`Resource`](crate::Resource)
//! can go in it; `#[derive(Resource)]` gives a type the default (do-nothing) lifecycle.
//! [`MemoryStore`](crate::MemoryStore), a thread-safe key–value map, is a resource too,
//! and the usual way for tasks to pass data to each other.
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! #[derive(Resource, Default)]
//! struct Mailer {
//!     sent: AtomicU32,
//! }
//!
//! let store = MemoryStore::new();
//! let resources: Resources = Resources::new()
//!     .insert("store", store.clone()) // clones of a MemoryStore share their data
//!     .insert("mailer", Mailer::default());
//!
//! let mailer = resources.get::<Mailer, _>("mailer")?; // an Arc<Mailer>
//! mailer.sent.fetch_add(1, Ordering::Relaxed);
//! # Ok::<(), CanoError>(())
//! ```
//!
//! `Resources` is generic over its key type. Passed straight to `Workflow::new`, the key
//! type is inferred from the tasks; on its own, as here, name it: `let resources:
//! Resources = …` (otherwise the compiler asks for "type annotations needed").
//!
//! `get::<T, _>(key)` needs the type you stored; the second parameter (the borrowed key
//! type) is inferred, so write `_`. Asking for a key that is not there, or for the wrong
//! type, is an error (`ResourceNotFound`, `ResourceTypeMismatch`); inserting the same key
//! twice panics (use `try_insert` to get an error instead).
//!
//! A resource may also do work around each run: implement `setup`, `teardown` or
//! `health` under `#[resource]`. Before every `orchestrate` the engine calls `setup` on
//! each resource in insertion order, and after the run (success, failure or timeout) it
//! calls `teardown` in reverse order. If a `setup` fails, the resources already set up are
//! torn down and the run returns that error without entering any state.
//!
//! ```
//! use cano::prelude::*;
//!
//! struct Database;
//!
//! #[resource]
//! impl Resource for Database {
//!     async fn setup(&self) -> Result<(), CanoError> {
//!         // open the connection pool
//!         Ok(())
//!     }
//!     async fn teardown(&self) -> Result<(), CanoError> {
//!         // close it; an error here is reported on stderr (or through `tracing`), not returned
//!         Ok(())
//!     }
//! }
//! ```
//!
//! The default key type is `Cow<'static, str>`, so keys are string literals or `String`s
//! and lookups take a `&str`. Any `Hash + Eq` type can be the key instead (an `enum`, so
//! that a typo does not compile): use `Resources::<MyKey>::new()` and write the tasks with
//! `#[task(state = S, key = MyKey)]` and `res: &Resources<MyKey>`.
//!
//! # Building and running a workflow
//!
//! ```
//! use cano::prelude::*;
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! # enum Signup { CheckEmail, CreateAccount, SendWelcome, Done, Refused }
//! # struct CheckEmail;
//! # #[task(state = Signup)]
//! # impl CheckEmail {
//! #     async fn run(&self, res: &Resources) -> Result<TaskResult<Signup>, CanoError> {
//! #         let email: String = res.get::<MemoryStore, _>("store")?.get("email")?;
//! #         Ok(TaskResult::Single(if email.contains('@') { Signup::CreateAccount } else { Signup::Refused }))
//! #     }
//! # }
//! # struct SendWelcome;
//! # #[task(state = Signup)]
//! # impl SendWelcome {
//! #     async fn run_bare(&self) -> Result<TaskResult<Signup>, CanoError> { Ok(TaskResult::Single(Signup::Done)) }
//! # }
//!
//! struct CreateAccount;
//!
//! #[task(state = Signup)]
//! impl CreateAccount {
//!     async fn run(&self, res: &Resources) -> Result<TaskResult<Signup>, CanoError> {
//!         let store = res.get::<MemoryStore, _>("store")?;
//!         store.put("account_id", 42u64)?;
//!         Ok(TaskResult::Single(Signup::SendWelcome))
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), CanoError> {
//!     let store = MemoryStore::new();
//!     store.put("email", String::from("ada@example.com"))?;
//!
//!     let workflow = Workflow::new(Resources::new().insert("store", store.clone()))
//!         .register(Signup::CheckEmail, CheckEmail)
//!         .register(Signup::CreateAccount, CreateAccount)
//!         .register(Signup::SendWelcome, SendWelcome)
//!         .add_exit_states(vec![Signup::Done, Signup::Refused]);
//!
//!     let end = workflow.orchestrate(Signup::CheckEmail).await?;
//!     assert_eq!(end, Signup::Done);
//!     assert_eq!(store.get::<u64>("account_id")?, 42);
//!     Ok(())
//! }
//! ```
//!
//! What `orchestrate` does, in order:
//!
//! 1. checks the workflow (at least one registered state, at least one exit state, valid
//!    split settings; the result is cached) and that the initial state is registered or
//!    an exit state; a mistake here is a `Configuration` error and nothing has run yet;
//! 2. sets up the resources;
//! 3. runs the state machine: for each state entered it fires observer events, records a
//!    checkpoint row if a checkpoint store is attached, stops if the state is an exit
//!    state, and otherwise runs the state's task (with its retries) and moves on;
//! 4. tears the resources down and returns the exit state, or the error that ended the
//!    run.
//!
//! Some consequences worth knowing:
//!
//! * An exit state ends the run even if a task is registered for it; that task never runs.
//! * A task that returns a state with no task and that is not an exit state ends the run
//!   with `Workflow error: No task registered for state: …`. Loops between states are
//!   allowed.
//! * A workflow can be run many times, and concurrently: `orchestrate` takes `&self`, the
//!   future is `Send`, and cloning a workflow is cheap (clones share tasks and resources).
//!   Runs share the resources and nothing else.
//! * Registering a state again replaces its task. Builder calls never fail; mistakes
//!   surface when the workflow first runs (or when you call
//!   [`validate`](crate::Workflow::validate) yourself, say in a test).
//!
//! # Where next
//!
//! * Make a flaky step retry, or bound how long it may take:
//!   [`retries_and_timeouts`](super::retries_and_timeouts).
//! * Run several tasks of one state in parallel: [`split_join`](super::split_join).
//! * Survive a crash: [`recovery`](super::recovery).
