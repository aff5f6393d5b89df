//! The cano guide: how to build, run, recover and test workflows.
//!
//! This module holds no code, only chapters. Read them in order the first time; later,
//! jump to the one you need. Every code block in them is compiled and run as a doc test,
//! so what you read here works as written.
//!
//! | chapter | what it covers | example to run |
//! |---|---|---|
//! | [`concepts`] | states, tasks, resources, exit states, what a run does | `checkout` |
//! | [`retries_and_timeouts`] | retry modes, the default of four attempts, the three kinds of timeout, rate limits | `checkout`, `poll_task`, `rate_limiter` |
//! | [`split_join`] | running tasks in parallel and joining them | `split_join` |
//! | [`circuit_breakers`] | stop calling a failing dependency, probe, recover | `circuit_breaker` |
//! | [`processing_models`] | router, poll, batch, stepped and stream states | `router_task`, `poll_task`, `batch_task`, `stepped_task`, `stream_task`, `processing_models` |
//! | [`observers_and_tracing`] | watching runs: observers, `tracing` spans and events, metrics | `observer_metrics`, `tracing_spans`, `metrics` |
//! | [`recovery`] | checkpoint logs, `RedbCheckpointStore`, `resume_from`, what a crash leaves, workflow versions | `checkout`, `stepped_task`, `crash_resume`, `workflow_versions` |
//! | [`sagas`] | undoing completed steps when a later one fails | `saga_rollback`, `saga_crash_resume` |
//! | [`scheduler`] | interval, cron and manual flows, backoff, shutdown | `scheduler_cron`, `scheduler_backoff`, `scheduler_manual`, `scheduler_shutdown` |
//! | [`waiting`] | timers, signals, cancelling runs, run deadlines, durable run data and idempotency keys | `reminder`, `approval` |
//! | [`testing`] | testing your workflows: paused clock, in-memory stores, observers as probes, the testing kit | `testing_kit` |
//! | [`troubleshooting`] | what each error means and what to do about it | — |
//!
//! The examples live in `cano/examples/`; each file opens with what it shows and the
//! exact command that runs it, for instance
//! `cargo run -p cano --example checkout` or, for an example that needs a feature,
//! `cargo run -p cano --example crash_resume --features recovery`.
//!
//! # Setting up a project
//!
//! cano needs Rust 1.95 or newer (edition 2024) and runs on Tokio. A program that uses it
//! needs, in its `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! cano = { path = "../cano/cano" }              # or a git dependency on this repository
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! serde = { version = "1", features = ["derive"] } # only for saga outputs and stepped cursors
//! ```
//!
//! Turn on the optional parts with cano's features: `recovery` (the durable
//! `RedbCheckpointStore`), `scheduler` (interval and cron flows), `tracing` (spans and
//! `TracingObserver`; add the `tracing` crate and a subscriber such as
//! `tracing-subscriber` to see the output), or `all`. No feature is on by default.
//!
//! Everything a program normally uses comes from one import:
//!
//! ```
//! use cano::prelude::*;
//! ```
//!
//! # cano 0.12.0
//!
//! This crate is a clean-room reimplementation of the `cano` 0.12.0 API: programs written
//! for 0.12.0 compile and run unchanged. Where 0.12.0 behaves in a way that is plainly a
//! bug, this crate keeps the API and does the right thing; each such difference is
//! listed in `COMPATIBILITY.md` at the root of the repository, and the chapters below
//! point them out where they matter.

pub mod circuit_breakers;
pub mod concepts;
pub mod observers_and_tracing;
pub mod processing_models;
pub mod recovery;
pub mod retries_and_timeouts;
pub mod sagas;
pub mod scheduler;
pub mod split_join;
pub mod testing;
pub mod troubleshooting;
pub mod waiting;
