//! Recovery: checkpoint logs, `RedbCheckpointStore`, resuming, and what a crash leaves.
//!
//! Examples:
//!
//! * `cano/examples/checkout.rs` (`cargo run -p cano --example checkout`): a run fails at
//!   `Ship`, keeps its log, and `resume_from` continues at `Ship` without charging again;
//! * `cano/examples/stepped_task.rs` (`cargo run -p cano --example stepped_task`): a
//!   stepped copy fails mid-way and resumes from its last recorded cursor;
//! * `cano/examples/crash_resume.rs`
//!   (`cargo run -p cano --example crash_resume --features recovery`): a worker process is
//!   killed with SIGKILL in the middle of a run on a redb file; another process resumes it.
//!
//! # The checkpoint log
//!
//! Give a workflow a [`CheckpointStore`](crate::CheckpointStore) and an id, and it keeps
//! a log of each run:
//!
//! ```
//! # #[derive(Debug, Clone, PartialEq, Eq, Hash)] enum Step { Fetch, Done }
//! # fn build() -> cano::Workflow<Step> { cano::Workflow::bare() }
//! use cano::prelude::*;
//! use std::sync::Arc;
//!
//! # #[cfg(feature = "recovery")]
//! # fn main() -> Result<(), CanoError> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("checkpoints.redb");
//! let store = Arc::new(RedbCheckpointStore::new(path)?); // feature `recovery`
//! let workflow = build()
//!     .with_checkpoint_store(store)
//!     .with_workflow_id("invoice-2026-0042");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "recovery"))]
//! # fn main() {}
//! ```
//!
//! From then on, every time the run enters a state, the engine appends a row (sequence
//! number, the state's `Debug` text, the task's name) **before** the state's task runs,
//! and fires `on_checkpoint`. A stepped state adds a row for every cursor, a saga step a
//! row with its output after it completes (see [`processing_models`](super::processing_models)
//! and [`sagas`](super::sagas)); a router registered with `register_router` writes none.
//!
//! What happens to the log:
//!
//! | the run… | the log |
//! |---|---|
//! | reaches an exit state | is cleared |
//! | fails (a task error, a missing handler, a checkpoint write error, …) | is **kept**, so the run can be resumed |
//! | fails after saga steps, and every compensation succeeds | is cleared (the saga is fully undone) |
//! | fails after saga steps, and a compensation fails | is kept |
//! | hits the workflow timeout (`with_timeout`) | is kept |
//! | dies with its process | is kept, up to the last row written |
//!
//! # Resuming
//!
//! [`resume_from(id)`](crate::Workflow::resume_from) reads the log of `id`, re-enters
//! the state of its last row — writing a new row for it and running its task **again** —
//! and carries on as `orchestrate` would. States before it do not run again. So:
//!
//! * **the task at the resume point runs twice** (once in the run that died, once now).
//!   Make tasks idempotent — check whether the work is already done, use idempotency keys
//!   with outside services — or at least safe to repeat;
//! * a stepped state continues from the last cursor recorded before the crash;
//! * saga steps completed before the resume point are still undone if the resumed run
//!   fails.
//!
//! ```
//! use cano::prelude::*;
//! use std::collections::HashMap;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::{Arc, Mutex};
//!
//! #[derive(Debug, Clone, PartialEq, Eq, Hash)]
//! enum Invoice { Render, Send, Done }
//!
//! struct Render;
//! #[task(state = Invoice)]
//! impl Render {
//!     async fn run(&self, res: &Resources) -> Result<TaskResult<Invoice>, CanoError> {
//!         res.get::<MemoryStore, _>("out")?.append("rendered", 1u32)?;
//!         Ok(TaskResult::Single(Invoice::Send))
//!     }
//! }
//!
//! /// The mail server is down on the first call.
//! struct Send {
//!     calls: AtomicU32,
//! }
//! #[task(state = Invoice)]
//! impl Send {
//!     fn config(&self) -> TaskConfig {
//!         TaskConfig::minimal()
//!     }
//!     async fn run_bare(&self) -> Result<TaskResult<Invoice>, CanoError> {
//!         if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
//!             return Err(CanoError::task_execution("SMTP: connection refused"));
//!         }
//!         Ok(TaskResult::Single(Invoice::Done))
//!     }
//! }
//! # #[derive(Default)]
//! # struct MemoryLog(Mutex<HashMap<String, Vec<CheckpointRow>>>);
//! # #[checkpoint_store]
//! # impl MemoryLog {
//! #     async fn append(&self, id: &str, row: CheckpointRow) -> Result<(), CanoError> {
//! #         let mut runs = self.0.lock().unwrap();
//! #         let rows = runs.entry(id.to_string()).or_default();
//! #         if rows.iter().any(|r| r.sequence == row.sequence) {
//! #             return Err(CanoError::checkpoint_store(format!("checkpoint conflict at {}", row.sequence)));
//! #         }
//! #         rows.push(row);
//! #         Ok(())
//! #     }
//! #     async fn load_run(&self, id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
//! #         Ok(self.0.lock().unwrap().get(id).cloned().unwrap_or_default())
//! #     }
//! #     async fn clear(&self, id: &str) -> Result<(), CanoError> {
//! #         self.0.lock().unwrap().remove(id);
//! #         Ok(())
//! #     }
//! # }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), CanoError> {
//! let out = MemoryStore::new();
//! let log = Arc::new(MemoryLog::default()); // any CheckpointStore; see below
//! let workflow = Workflow::new(Resources::new().insert("out", out.clone()))
//!     .register(Invoice::Render, Render)
//!     .register(Invoice::Send, Send { calls: AtomicU32::new(0) })
//!     .add_exit_state(Invoice::Done)
//!     .with_checkpoint_store(log.clone())
//!     .with_workflow_id("invoice-42");
//!
//! let err = workflow.orchestrate(Invoice::Render).await.unwrap_err();
//! assert_eq!(err.message(), "SMTP: connection refused");
//! let rows = log.load_run("invoice-42").await?;
//! assert_eq!(rows.len(), 2); // Render, then Send: the log says where the run stopped
//!
//! let end = workflow.resume_from("invoice-42").await?; // re-enters Send
//! assert_eq!(end, Invoice::Done);
//! assert_eq!(out.get::<Vec<u32>>("rendered")?.len(), 1); // Render did not run again
//! assert!(log.load_run("invoice-42").await?.is_empty()); // finished: log cleared
//! # Ok(())
//! # }
//! ```
//!
//! Resuming needs the same workflow definition, or a compatible one: the last row's state
//! is found again by comparing `Debug` texts with the registered and exit states, so
//! renaming a state variant (or giving states duplicate `Debug` texts) makes old logs
//! unresumable (`checkpoint state "…" is not a registered or exit state of this
//! workflow`). A state that carries data, such as `Page(3)`, is found only if that exact
//! value is registered. Saga steps are found by task [`name`](crate::CompensatableTask::name),
//! so keep those stable too.
//!
//! # Which runs to resume
//!
//! cano does not watch for dead runs; your program decides when to resume. The usual
//! shape: derive the workflow id from your own data (an order id, a date), and when you
//! start work for it, resume if a log exists and start fresh otherwise:
//!
//! ```
//! use cano::prelude::*;
//! use std::sync::Arc;
//!
//! async fn run_invoice<S>(
//!     workflow: &Workflow<S>,
//!     store: &Arc<dyn CheckpointStore>,
//!     id: &str,
//!     start: S,
//! ) -> Result<S, CanoError>
//! where
//!     S: Clone + std::fmt::Debug + std::hash::Hash + Eq + Send + Sync + 'static,
//! {
//!     if store.load_run(id).await?.is_empty() {
//!         workflow.clone().with_workflow_id(id).orchestrate(start).await
//!     } else {
//!         workflow.resume_from(id).await
//!     }
//! }
//! ```
//!
//! Starting a fresh run over a log that was not cleared fails at once: the store refuses
//! a second row 0 (`checkpoint conflict: workflow "…" already has a row at sequence 0;
//! resume the existing run or clear it before starting a new one`). The same check stops
//! two processes that run one id at the same time: the second one's first write fails. To
//! give up on a failed run instead of resuming it, call `store.clear(id)`.
//!
//! `resume_from` on an id without a log fails with `no checkpoint rows for workflow id
//! "…"` (a run that finished has cleared its log).
//!
//! # `RedbCheckpointStore` (feature `recovery`)
//!
//! `RedbCheckpointStore::new(path)` opens (or creates) a [redb](https://docs.rs/redb)
//! database file, a single embedded file with no server. Each `append` returns once the
//! row is on disk, so a row the engine wrote survives the process being killed right
//! after. A write is made durable by appending it to a write-ahead log beside the
//! database, `<path>-wal`, and syncing that (one small write and one disk sync, about
//! half what a redb commit costs); appends from concurrent runs share one sync, so many
//! runs can share one store without each paying for its own. Every few thousand writes
//! (`with_fold_interval` sets how many), when the store is dropped, and when the file is
//! next opened after a crash, the log is moved into the database's table and emptied; a
//! clean close leaves no log behind. After a crash, keep the two files together and open
//! them with cano first: the newest rows are in the log until then. The table is the one
//! cano 0.12.0 uses, so it reads 0.12.0's files, and 0.12.0 reads a file cano closed.
//!
//! redb lets only **one open handle per file**. Share one store — clone it, or one `Arc`
//! — between every workflow of a process; opening the same path a second time, in this
//! process or another, fails (`Checkpoint store error: redb: Database already open…`)
//! until every clone of the first handle is dropped. Consequently a log is resumed by the
//! process that owns the file: after a crash, by the restarted process.
//!
//! # What a crash leaves behind
//!
//! Because the entry row is written before the task runs, a crash at any point leaves a
//! log whose last row names the state that was running (or the last stepped cursor, or the
//! last saga step's output):
//!
//! * killed inside a task: the task runs again on resume, from the start (or from the last
//!   cursor, for a stepped state). A step that finished but whose cursor had not been
//!   written yet runs again;
//! * killed between a saga step's completion row and the next state's row: the step is
//!   the resume point and runs again; its earlier output is not compensated twice;
//! * killed in the middle of a saga rollback: the rows written so far record which steps
//!   were already undone; `resume_from` finishes the rollback and compensates each
//!   remaining step once (cano 0.12.0 did not record rollbacks, and could compensate a
//!   step twice; see `COMPATIBILITY.md`);
//! * killed while resuming: the resumed run's rows are in the log too; resuming again
//!   continues from the latest of them, and a stepped state keeps its cursor (a
//!   difference from 0.12.0, which could lose it or feed a stale one).
//!
//! If a checkpoint write itself fails (disk full, a custom store's database down), the
//! run stops with a `CheckpointStore` error before the next task runs, and the log keeps
//! what was written.
//!
//! Only what the log holds survives a crash: besides the run's position, saga outputs and
//! cursors, that is timer deadlines, signal waits and consumed signals, and the values
//! tasks wrote with [`RunData`](crate::run_data::RunData) in states that completed. A
//! [`MemoryStore`](crate::MemoryStore) and every other resource live in the process, so a
//! restarted process starts them empty: a resumed task must not count on what an earlier
//! state put there, and should keep it in run data instead. The
//! [`waiting`](super::waiting) chapter has the whole table, and idempotency keys for the
//! side effects a resumed task repeats.
//!
//! # Writing your own store
//!
//! A store is three async methods under `#[checkpoint_store]` (see the
//! [`recovery`](crate::recovery) module for a complete in-memory one). The engine relies
//! on this contract:
//!
//! * `append` stores the row durably before returning `Ok`, and **rejects** a second row
//!   with the same `(workflow_id, sequence)` with an error (say `conflict` in it);
//! * `load_run` returns the id's rows sorted by sequence, and an empty `Vec` (not an
//!   error) for an unknown id;
//! * `clear` removes the id's rows; clearing an unknown id is `Ok`;
//! * calls may come concurrently, for the same and for different ids.
//!
//! Keep rows whole: the engine stores cursors and saga outputs (JSON bytes) in
//! `output_blob` and distinguishes rows by `kind`. [`RowKind`](crate::RowKind) is
//! `#[non_exhaustive]`: store the kind as it comes (e.g. with serde) rather than matching
//! on the variants you know.
//!
//! # Changing a workflow while runs are in flight
//!
//! A log records states by their `Debug` text and saga outputs and cursors as JSON: a new
//! release that renames a state or changes an output's shape cannot resume the logs the
//! old release left. Give the workflow a version with
//! [`with_workflow_version`](crate::Workflow::with_workflow_version) and bump it with such
//! a change: each run's log records the version it was started under (in its first row),
//! and `resume_from` of a run started under another version fails before anything runs,
//! with an error naming both versions
//! ([`workflow_version_mismatch_versions`](crate::CanoError::workflow_version_mismatch_versions)
//! gives them back). Keep the old release running until its runs are done, or resume them
//! with a build of the old version. Logs without a version — every log of cano 0.12.0 —
//! are version 0, the default. [`ListRuns`](crate::ListRuns) reports each run's version.
//! The example `workflow_versions` (`cargo run -p cano --example workflow_versions`)
//! shows a refused and an accepted resume.
//!
//! # Scheduled runs
//!
//! A workflow with a checkpoint store that runs under the [`scheduler`](super::scheduler)
//! writes each run's log under its own id, `"{base}@{run}-{millis}"`, so a failed run's
//! log never blocks the next scheduled run (see `COMPATIBILITY.md`).
