//! Troubleshooting: what each error means and what to do.
//!
//! Every fallible cano API returns a [`CanoError`](crate::CanoError). Its `Display` is
//! `"{category prefix}: {message}"`; match on the variant (or
//! [`category()`](crate::CanoError::category)) in code, and read the message for the
//! details. The texts below are exact up to the parts in `…`; they are part of cano's
//! compatibility with 0.12.0, which is why some are terse — this page says what they
//! leave out.
//!
//! **First, unwrap the retry wrapper.** A task with retries (the default config allows
//! four attempts) reports its last error inside
//! `Retry exhausted: Task failed after N attempt(s): <the real error>`. Read the part
//! after the colon; if that error is one retrying cannot fix (a missing resource, a bad
//! input), the task should not have retried — give it `TaskConfig::minimal()` (see
//! [`retries_and_timeouts`](super::retries_and_timeouts)).
//!
//! ```
//! use cano::prelude::*;
//!
//! fn root_cause(err: &CanoError) -> &str {
//!     match err {
//!         CanoError::RetryExhausted(m) => m.splitn(2, ": ").nth(1).unwrap_or(m),
//!         CanoError::CompensationFailed { errors } => errors.first().map_or("", CanoError::message),
//!         other => other.message(),
//!     }
//! }
//!
//! let err = CanoError::retry_exhausted(
//!     "Task failed after 4 attempt(s): Resource not found: no resource found for the given key (requested type: cano::store::memory::MemoryStore)",
//! );
//! assert!(root_cause(&err).starts_with("Resource not found"));
//! ```
//!
//! # Before the run starts: `Configuration error: …`
//!
//! These come from `orchestrate`/`resume_from` (or `validate`, or the scheduler's
//! `start`) before any resource is set up or any task runs. They are mistakes in how the
//! workflow is built; fix the code.
//!
//! | message | what to do |
//! |---|---|
//! | `Workflow has no registered state handlers` | `register` at least one task. |
//! | `Workflow has no exit states defined — orchestration may loop forever` | `add_exit_state` for every state where a run is finished (success *and* failure outcomes such as `Rejected`). |
//! | `Initial state X is neither registered nor an exit state` | Register a task for `X`, or start from the state you meant. |
//! | `Split join_state X is neither registered nor an exit state` | Register a task for the join state of that split, or make it an exit state. |
//! | `PartialTimeout strategy requires a timeout to be configured` | Add `.with_timeout(d)` to that `JoinConfig`. |
//! | `Percentage strategy requires a finite value in (0.0, 1.0], got p` | Use a fraction: `Percentage(0.75)`, not `Percentage(75.0)`. |
//! | `bulkhead requires a positive permit count, got 0` | `with_bulkhead(n)` needs `n ≥ 1`; leave it out for no limit. |
//! | `resume_from requires a checkpoint store (call with_checkpoint_store)` | Attach the store the run was recorded in. |
//! | ``Task<T>: neither `run` nor `run_bare` was implemented; override one of them`` | A hand-written `impl Task` has neither method. Implement one (the inherent `#[task(state = …)]` form checks this at compile time). Usually seen wrapped in `Retry exhausted`. |
//! | `Invalid cron expression: …` (scheduler) | Cron needs six or seven fields, seconds first: `0 */5 * * * *`, not `*/5 * * * *`. The message points at the bad field. |
//! | `Flow 'id' already exists` (scheduler) | Flow ids are unique within a scheduler. |
//! | `Flow 'id' not found — cannot set backoff` (scheduler) | Register the flow before `set_backoff`, with the same id. |
//!
//! # While a run is under way: `Workflow error: …`
//!
//! | message | meaning and what to do |
//! |---|---|
//! | `No task registered for state: X` | A task returned `X`, which has no task and is not an exit state. Register a task for `X` or `add_exit_state(X)`. (Not caught by validation: the engine cannot know in advance which states tasks return.) |
//! | `Single task returned split result - use register_split() for split tasks` | A task registered with `register` returned `TaskResult::Split`. Return `TaskResult::Single`; for parallel work register the state with `register_split`. Stepped and saga tasks have the same rule (`… split is not supported for Stepped states`, `… split states cannot be compensatable`). |
//! | `Join condition not met: S of T tasks completed successfully, strategy: …; errors: task i: …` | Too few split members succeeded. The member errors follow `errors:` (the first three). Fix the members, or loosen the strategy (`Quorum`, `PartialResults`). |
//! | `Partial results condition not met: S completed successfully, N required…` | The same for `PartialResults(N)`. |
//! | `PartialTimeout: No tasks completed before timeout` | No member of a `PartialTimeout` split finished before its timeout. Lengthen the timeout or speed the members up. |
//! | `Split task timeout exceeded` | The split's `JoinConfig::with_timeout` fired while members were running. Note that `Quorum`/`Percentage`/`All` wait for *every* member: use `PartialResults(n)` if the first `n` answers are enough. |
//! | `Workflow timeout exceeded` | The run's `Workflow::with_timeout` fired. The run stopped where it was, without a saga rollback; with a checkpoint store its log is kept, so `resume_from` can continue it. |
//! | `checkpoint state "X" is not a registered or exit state of this workflow` | `resume_from` found a log whose last state's `Debug` text matches no state of this workflow: the log comes from another workflow, or a state was renamed since. Resume with the matching definition, or `clear` the log. |
//! | `no compensator registered for task "name" — cannot roll it back` | Found inside `CompensationFailed`: a completed saga step (recorded under its task's `name()`) has no compensatable task with that name in this workflow — the task was renamed, moved (the default name is its type path), or replaced. Keep `name()` stable; undo that step by hand. |
//!
//! The scheduler's handle reports these as `Workflow` errors too:
//!
//! | message | meaning and what to do |
//! |---|---|
//! | `No workflow registered with id 'id'` | `trigger`/`reset_flow` with an id no flow has. |
//! | `Flow 'id' is already running` | A flow never overlaps itself. Wait for the run (see `status`/`has_running_flows`) and trigger again. |
//! | `Flow 'id' is tripped — call reset_flow before triggering` | The flow's failure streak reached its `BackoffPolicy` limit. Look at `status(id)`'s `last_error`, fix the cause, then `reset_flow(id)`. |
//! | `Scheduler not running — call start() before trigger()` (or `reset_flow()`) | The scheduler is stopping or stopped; a stopped scheduler cannot be restarted — build and `start` a new one. |
//! | `Scheduler command queue full` | 64 triggers/resets are waiting for the scheduler; back off and retry. |
//! | `Scheduler stopped before trigger was processed` (or `reset`) | The scheduler stopped while the request was queued; it did not happen. |
//! | `Timeout waiting for workflows to complete` | `stop()` had to cancel runs still going after its bound (30 s, or `stop_with_timeout`'s). Each cancelled run is recorded in its flow's `last_error` as `Run cancelled: …`. Resources were still torn down. |
//! | `Scheduler driver task terminated unexpectedly without publishing a result` | The scheduler's internal task died (the runtime shut down under it). |
//!
//! # Task failures
//!
//! | error | meaning and what to do |
//! |---|---|
//! | `Task execution error: …` | Your task returned this error (or one of its `?` conversions did). `panic: …` means the task panicked; `panic in split task i: …`, that split member `i` did. A panic is not retried. |
//! | `Retry exhausted: Task failed after N attempt(s): …` | Every attempt failed; the last error follows. |
//! | `Timeout error: task attempt exceeded attempt_timeout` | One attempt took longer than the task's `with_attempt_timeout`. The attempt was cancelled; raise the limit or speed the task up. For a poll task it bounds the whole wait. |
//! | `Circuit open: circuit breaker open: rejecting call` | The task's breaker is open after repeated failures: the task was **not run**. It lets a probe through once its `reset_timeout` has passed. |
//! | `Circuit open: circuit breaker half-open: trial slot exhausted` | The breaker is probing and all probe slots are busy; the task was not run. |
//! | `Error: …` | A `Generic` error: a string converted with `?`/`into()`, or `IO error: …` from a `std::io::Error`. Prefer `CanoError::task_execution` for your own errors, so they are told apart. |
//!
//! # Resources and the store
//!
//! | error | meaning and what to do |
//! |---|---|
//! | `Resource not found: no resource found for the given key (requested type: T)` | No resource under the key you passed to `res.get`. The message names the type you asked for, not the key: compare the key string with the one given to `Resources::insert` (a typo is the usual cause), and check the resources went into *this* workflow. |
//! | `Resource type mismatch: resource found but the requested type T does not match the stored type` | The key exists, with another type. Ask for exactly the inserted type: `insert("db", pool)` is fetched as `get::<PoolType, _>("db")`, not as `Arc<PoolType>` or a trait. |
//! | `Resource duplicate key: duplicate resource key inserted into Resources` | `try_insert` with a key already present. (`insert` panics in that case, with the same text.) |
//! | `Store error: Key not found: Key 'k' not found in store` | Nothing under `k` in the `MemoryStore`: an earlier task did not write it (or wrote another key), or this run did not pass through that task. |
//! | `Store error: Type mismatch: Cannot downcast value for key 'k' to requested type` | `k` holds another type. Types must match exactly: `u32` is not `u64`, `&'static str` is not `String`, `Vec<T>` from `append` is read as `Vec<T>`. |
//! | `Store error: Append type mismatch: Cannot append to key 'k': existing value is not a Vec<TState>` | `append` onto a key that holds something other than a `Vec` of the item's type. The value was left unchanged. |
//!
//! A resource whose `setup` fails ends the run before the first state with that error
//! (the resources set up before it are torn down). A failing `teardown` never fails the
//! run: it is reported on standard error as `cano: resource teardown error: …`, or as a
//! `tracing` error event with the `tracing` feature.
//!
//! # Checkpoints and recovery: `Checkpoint store error: …`
//!
//! | message | meaning and what to do |
//! |---|---|
//! | `checkpointing requires a workflow id (call with_workflow_id)` | A store is attached but the run has no id. Add `with_workflow_id(id)`; use one id per run. |
//! | `append checkpoint: … checkpoint conflict: workflow "id" already has a row at sequence 0; …` | A fresh `orchestrate` found an old log under this id — a run that failed and kept its log — or another run with the same id is going right now. Resume the old run (`resume_from(id)`), clear it (`store.clear(id)`), or use a new id. |
//! | `append checkpoint: …`, `append step cursor checkpoint: …`, `append compensation checkpoint: …`, `append rollback checkpoint: …`, `append compensated checkpoint: …` | The store could not write a row; the store's own error follows. The run stopped before its next task; the rows written so far are kept, so fix the store and `resume_from`. A failed rollback row (the last two) only matters if the log could not be cleared either: a clean rollback clears the log. |
//! | `load checkpoint run "id": …` | `resume_from` could not read the log; the store's error follows. |
//! | `no checkpoint rows for workflow id "id"` | Nothing to resume: wrong id, or the run finished (a finished run clears its log), or it was rolled back cleanly. Start it with `orchestrate` instead. |
//! | `redb: … (checkpoint database path: hint)` | `RedbCheckpointStore::new` could not open the file; the hint says why. Most often the file is already open — redb allows **one open handle per file**, across processes too — so share one store (clone it) instead of opening the path twice, and stop the other process first. |
//! | `decode checkpoint row: …` | A row in the redb file cannot be read: the file is damaged, or another program wrote to the `cano_checkpoints` table. |
//! | `checkpoint log …-wal: not a checkpoint log of this version of cano, or damaged; …` | `RedbCheckpointStore::new` found a file beside the database, under the name of its write-ahead log, that it cannot read. Nothing was changed. If it is not cano's, move it away; if it is, the writes it holds are lost when it is moved away. |
//! | `checkpoint log …: a write failed (…)` or `… a disk sync failed (…)` | The disk refused a checkpoint write (disk full, I/O error). The rows in that write may or may not have reached the disk, so the store refuses every later write: fix the disk, drop every clone of the store and open it again; resuming reads whatever did reach the disk. |
//! | `redb: the writer thread of … has stopped; reopen the store` | The store's background writer is gone (a panic inside redb). Drop every clone of the store and open it again. |
//!
//! # Sagas: `Compensation failed (N error(s)); original: …; compensation #1: …`
//!
//! The run failed, the rollback ran, and at least one compensation failed too.
//! `CanoError::CompensationFailed { errors }` holds the error that caused the rollback
//! first, then every compensation error in the order they happened; `message()` is the
//! original error's message. Compensations are not retried, so the steps named in the
//! errors are still done in the outside world: undo them by hand, or retry them from your
//! own code. The checkpoint log is kept. Errors you may find inside:
//!
//! * `compensate for "name" exceeded attempt_timeout …` (a `Timeout`): the step's
//!   `compensate` ran longer than the task's attempt timeout and was cancelled;
//! * `compensate for "name" panicked: …`;
//! * ``deserialize compensation output for `name`: …`` (a `Generic`): the recorded output
//!   does not parse as the task's `Output` type — it changed between the process that ran
//!   the step and the one compensating it. Keep `Output` types backward compatible
//!   (`#[serde(default)]` on new fields).
//!
//! Likewise ``deserialize cursor for `name`: …`` (a `TaskExecution` error) means a stepped
//! task's cursor type changed between the run that recorded the cursor and the resume.
//!
//! # Compile errors
//!
//! * `type annotations needed` on `Resources::new()`: the key type is inferred from the
//!   workflow; when the map stands alone, write `let res: Resources = Resources::new()…`.
//! * `method takes 2 generic arguments but 1 generic argument was supplied` on
//!   `res.get::<T>("key")`: the second parameter is the key's borrowed type; write
//!   `res.get::<T, _>("key")`.
//! * ``#[cano::task] on an inherent `impl T { ... }` block requires `state = T` ``: write
//!   `#[task(state = MyState)]` on an inherent `impl`, or implement the trait:
//!   `#[task] impl Task<MyState> for T`.
//! * ``#[cano::task] requires exactly one of `run` / `run_bare` ``: the block must define
//!   one of the two (with the signature the message shows), not both.
//! * ``unexpected method `helper` in inherent impl``: a `#[task]` block may only contain
//!   `run` or `run_bare`, plus `config` and `name`; move helpers to another `impl` block.
//!   Each processing model lists its own allowed methods in the message.
//! * The trait bound `MyState: Hash` (or `Eq`, `Debug`, `Clone`) is not satisfied: derive
//!   `Debug, Clone, PartialEq, Eq, Hash` on the state type.
