//! Split/join: run several tasks of one state in parallel.
//!
//! Example: `cano/examples/split_join.rs` (`cargo run -p cano --example split_join`) joins
//! the same four replicas with every strategy, prints when each returns, and caps
//! concurrency with a bulkhead.
//!
//! # A split state
//!
//! [`Workflow::register_split`](crate::Workflow::register_split) registers a list of
//! tasks for one state. Entering that state starts all of them at once, in parallel on
//! every worker thread of the Tokio runtime (a member that waits — for I/O, a timer, a
//! bulkhead permit — runs as its own Tokio task; one that just computes and returns
//! needs none), and waits for them according to a [`JoinConfig`](crate::JoinConfig): the
//! [`JoinStrategy`](crate::JoinStrategy) says when the split succeeds, and the
//! *join state* is where the run goes next. The members' own return values are ignored —
//! the next state is always the join state — so members hand their results on through a
//! resource, typically a [`MemoryStore`](crate::MemoryStore) (`append` is safe to call
//! from many members at once).
//!
//! ```
//! use cano::prelude::*;
//! use std::time::Duration;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Quote, Compare, Done }
//!
//! /// Asks one carrier for a shipping price.
//! struct AskCarrier {
//!     carrier: &'static str,
//!     cents: u32,
//! }
//!
//! #[task(state = Step)]
//! impl AskCarrier {
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::new().with_fixed_retry(1, Duration::from_millis(10))
//!     }
//!     async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
//!         let quotes = res.get::<MemoryStore, _>("store")?;
//!         quotes.append("quotes", (self.carrier, self.cents))?;
//!         Ok(TaskResult::Single(Step::Compare)) // ignored: the join state decides
//!     }
//! }
//!
//! struct Compare;
//!
//! #[task(state = Step)]
//! impl Compare {
//!     async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
//!         let store = res.get::<MemoryStore, _>("store")?;
//!         let quotes: Vec<(&'static str, u32)> = store.get("quotes")?;
//!         let best = quotes.iter().min_by_key(|(_, cents)| *cents).copied();
//!         store.put("best", best)?;
//!         Ok(TaskResult::Single(Step::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! let store = MemoryStore::new();
//! let carriers = vec![
//!     AskCarrier { carrier: "swift", cents: 1299 },
//!     AskCarrier { carrier: "parcelo", cents: 999 },
//!     AskCarrier { carrier: "rapido", cents: 1450 },
//! ];
//! let workflow = Workflow::new(Resources::new().insert("store", store.clone()))
//!     .register_split(
//!         Step::Quote,
//!         carriers,
//!         JoinConfig::new(JoinStrategy::Quorum(2), Step::Compare)
//!             .with_timeout(Duration::from_secs(5)),
//!     )
//!     .register(Step::Compare, Compare)
//!     .add_exit_state(Step::Done);
//!
//! assert_eq!(workflow.orchestrate(Step::Quote).await?, Step::Done);
//! assert_eq!(store.get::<Option<(&str, u32)>>("best")?, Some(("parcelo", 999)));
//! # Ok(())
//! # }
//! ```
//!
//! Each member keeps its own `config()`: its retries happen inside the member, before it
//! reports, and its attempt timeout bounds each of its attempts. A panicking member
//! counts as a failed member (`panic in split task {index}: …`).
//!
//! # Join strategies
//!
//! | strategy | waits for | succeeds when |
//! |---|---|---|
//! | `All` | every member | every member succeeded |
//! | `Any` | the first success (then cancels the rest) | at least one succeeded |
//! | `Quorum(n)` | every member | at least `n` succeeded |
//! | `Percentage(p)` | every member | at least `ceil(total × p)` succeeded; `p` in `(0, 1]` |
//! | `PartialResults(n)` | `n` successes (then cancels the rest) | at least `n` succeeded |
//! | `PartialTimeout` | the split's timeout (required) or every member | at least one member *finished*, successfully or not |
//!
//! Two things surprise people:
//!
//! * Only `Any` and `PartialResults` stop early. `Quorum` and `Percentage` wait for every
//!   member even once the threshold is met, so with a split timeout a met quorum still
//!   fails with `Split task timeout exceeded` if a straggler is still running at the
//!   deadline. If you want "the first `n` answers", use `PartialResults(n)`.
//! * `PartialTimeout` succeeds if any member finished by the deadline, even if every
//!   finished member failed. Check what the members wrote before trusting it.
//!
//! When the strategy is not met the run fails with a `Workflow` error that says how many
//! members succeeded and lists the first three member errors, for example
//! `Join condition not met: 1 of 3 tasks completed successfully, strategy: Quorum(2); errors: task 1: …`.
//! Cancelled members are dropped at their next `.await`; what they did before stays done.
//!
//! # Timeouts and bulkheads
//!
//! * `JoinConfig::with_timeout(d)` bounds the whole split, from the moment its members
//!   start. When it fires, members still running are cancelled; the state fails with
//!   `Split task timeout exceeded`, except under `PartialTimeout`, where the deadline is
//!   the normal end.
//! * `JoinConfig::with_bulkhead(n)` lets at most `n` members run at once; the others wait
//!   for a slot (and waiting counts against the split timeout). Use it when the members
//!   hit a service that must not see the whole fan-out at once.
//!
//! Mistakes in a join configuration (a `Percentage` outside `(0, 1]`, `PartialTimeout`
//! without a timeout, a bulkhead of 0, a join state that is neither registered nor an
//! exit state) are reported as `Configuration` errors before the run starts.
//!
//! # Members of different types
//!
//! `register_split` takes a `Vec` of one task type. To fan out to different kinds of
//! work, wrap them in an enum and make the enum the task:
//!
//! ```
//! use cano::prelude::*;
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Step { Notify, Done }
//!
//! enum Channel {
//!     Email(String),
//!     Sms(String),
//! }
//!
//! #[task(state = Step)]
//! impl Channel {
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::minimal()
//!     }
//!     async fn run(&self, res: &Resources) -> Result<TaskResult<Step>, CanoError> {
//!         let sent = res.get::<MemoryStore, _>("sent")?;
//!         match self {
//!             Channel::Email(to) => sent.append("log", format!("email to {to}"))?,
//!             Channel::Sms(to) => sent.append("log", format!("sms to {to}"))?,
//!         }
//!         Ok(TaskResult::Single(Step::Done))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! let sent = MemoryStore::new();
//! let workflow = Workflow::new(Resources::new().insert("sent", sent.clone()))
//!     .register_split(
//!         Step::Notify,
//!         vec![Channel::Email("ada@example.com".into()), Channel::Sms("+4412345".into())],
//!         JoinConfig::new(JoinStrategy::All, Step::Done),
//!     )
//!     .add_exit_state(Step::Done);
//! workflow.orchestrate(Step::Notify).await?;
//! assert_eq!(sent.get::<Vec<String>>("log")?.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Observers and checkpoints
//!
//! Observers see split members as `"{task name}[{index}]"`: every `on_task_start` fires
//! when the members start, and the successes, then the failures, are reported once the
//! split has been joined (none on a split timeout; cancelled members get no event). With
//! a checkpoint store, a split state writes one row, however wide it is; on resume all
//! of its members run again.
