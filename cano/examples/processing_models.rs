//! # Processing models together: router, poll, batch and stepped states in one pipeline
//!
//! Run with: `cargo run -p cano --example processing_models`
//!
//! An ingest pipeline for customer feeds, mixing every processing model with plain
//! `#[task]` states:
//!
//! ```text
//! partner feed:  Receive -> Route -> AwaitExport -> Validate -> Load -> Report -> Done
//! internal feed: Receive -> Route ----------------> Validate -> Load -> Report -> Done
//!                task       router   poll           batch       stepped task
//! ```
//!
//! - `Receive` (plain task) takes the feed and, for a partner feed, requests an export;
//! - `Route` (`#[task::router]`, [`Workflow::register_router`]) sends partner feeds to
//!   wait for their export and internal feeds straight to validation;
//! - `AwaitExport` (`#[task::poll]`) polls until the partner's export is ready;
//! - `Validate` (`#[task::batch]`) checks every record, four at a time, and `finish`
//!   keeps the valid ones (or rejects the feed if none is valid);
//! - `Load` (`#[task::stepped]`, [`Workflow::register_stepped`]) writes the valid records
//!   to the warehouse two per step, with a struct cursor;
//! - `Report` (plain task) summarizes.
//!
//! A printing in-memory checkpoint store shows what each model records: nothing for the
//! router, one entry row for the poll and batch states, and for the stepped state an
//! entry row plus a `StepCursor` row after every step that leaves work to do.

use cano::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ingest {
    Receive,
    Route,
    AwaitExport,
    Validate,
    Load,
    Report,
    Done,
    Rejected,
}

/// One customer record of a feed.
#[derive(Debug, Clone)]
struct Customer {
    id: u32,
    email: &'static str,
}

/// A feed to ingest: its source and its records.
#[derive(Debug, Clone)]
struct Feed {
    source: &'static str,
    partner: bool,
    records: Vec<Customer>,
}

/// The destination: every record loaded, shared between clones.
#[derive(Clone, Default, Resource)]
struct Warehouse(Arc<Mutex<Vec<u32>>>);

impl Warehouse {
    fn ids(&self) -> Vec<u32> {
        self.0.lock().map(|ids| ids.clone()).unwrap_or_default()
    }
}

fn store(res: &Resources) -> Result<Arc<MemoryStore>, CanoError> {
    res.get::<MemoryStore, _>("store")
}

struct Receive;

#[task(state = Ingest)]
impl Receive {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Ingest>, CanoError> {
        let store = store(res)?;
        let feed = store.get::<Feed>("feed")?;
        println!(
            "  receive: {} records from {}",
            feed.records.len(),
            feed.source
        );
        if feed.partner {
            store.put("export_requested", Instant::now())?;
            println!("  receive: export requested from {}", feed.source);
        }
        Ok(TaskResult::Single(Ingest::Route))
    }
}

/// Partner feeds wait for their export; internal feeds are validated at once.
struct Route;

#[task::router(state = Ingest)]
impl Route {
    async fn route(&self, res: &Resources) -> Result<TaskResult<Ingest>, CanoError> {
        let feed = store(res)?.get::<Feed>("feed")?;
        let next = if feed.partner {
            Ingest::AwaitExport
        } else {
            Ingest::Validate
        };
        println!("  route: {} feed -> {next:?}", feed.source);
        Ok(TaskResult::Single(next))
    }
}

/// Waits until the partner's export is ready (it takes 120 ms), for at most 2 s.
struct AwaitExport;

#[task::poll(state = Ingest)]
impl AwaitExport {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal().with_attempt_timeout(Duration::from_secs(2))
    }

    async fn poll(&self, res: &Resources) -> Result<PollOutcome<Ingest>, CanoError> {
        let requested = store(res)?.get::<Instant>("export_requested")?;
        let waited = requested.elapsed();
        if waited < Duration::from_millis(120) {
            println!("  await export: not yet ({} ms)", waited.as_millis());
            return Ok(PollOutcome::Pending { delay_ms: 50 });
        }
        println!("  await export: ready after {} ms", waited.as_millis());
        Ok(PollOutcome::Ready(TaskResult::Single(Ingest::Validate)))
    }
}

/// Checks every record, four at a time.
struct Validate;

#[task::batch(state = Ingest)]
impl Validate {
    fn concurrency(&self) -> usize {
        4
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn load(&self, res: &Resources) -> Result<Vec<Customer>, CanoError> {
        Ok(store(res)?.get::<Feed>("feed")?.records)
    }

    async fn process_item(&self, customer: &Customer) -> Result<u32, CanoError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if customer.email.contains('@') {
            Ok(customer.id)
        } else {
            Err(CanoError::task_execution(format!(
                "customer {}: invalid email {:?}",
                customer.id, customer.email
            )))
        }
    }

    async fn finish(
        &self,
        res: &Resources,
        outputs: Vec<Result<u32, CanoError>>,
    ) -> Result<TaskResult<Ingest>, CanoError> {
        let mut valid = Vec::new();
        for output in outputs {
            match output {
                Ok(id) => valid.push(id),
                Err(e) => println!("  validate: dropped, {}", e.message()),
            }
        }
        println!("  validate: {} valid record(s)", valid.len());
        let next = if valid.is_empty() {
            Ingest::Rejected
        } else {
            Ingest::Load
        };
        store(res)?.put("valid", valid)?;
        Ok(TaskResult::Single(next))
    }
}

/// Where the load stands.
#[derive(Debug, Serialize, Deserialize)]
struct LoadCursor {
    offset: usize,
}

/// Loads the valid records two per step.
struct Load;

#[task::stepped(state = Ingest)]
impl Load {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn step(
        &self,
        res: &Resources,
        cursor: Option<LoadCursor>,
    ) -> Result<StepOutcome<LoadCursor, Ingest>, CanoError> {
        let offset = cursor.map_or(0, |c| c.offset);
        let valid = store(res)?.get::<Vec<u32>>("valid")?;
        let chunk = &valid[offset..valid.len().min(offset + 2)];
        res.get::<Warehouse, _>("warehouse")?
            .0
            .lock()
            .map_err(|_| CanoError::task_execution("warehouse poisoned"))?
            .extend_from_slice(chunk);
        println!("  load: wrote customers {chunk:?}");
        let offset = offset + chunk.len();
        Ok(if offset < valid.len() {
            StepOutcome::More(LoadCursor { offset })
        } else {
            StepOutcome::Done(TaskResult::Single(Ingest::Report))
        })
    }
}

struct Report;

#[task(state = Ingest)]
impl Report {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Ingest>, CanoError> {
        let store = store(res)?;
        let feed = store.get::<Feed>("feed")?;
        let valid = store.get::<Vec<u32>>("valid")?;
        println!(
            "  report: {}: {} of {} records loaded",
            feed.source,
            valid.len(),
            feed.records.len()
        );
        Ok(TaskResult::Single(Ingest::Done))
    }
}

/// An in-memory checkpoint log that prints every row and keeps a journal of them all
/// (the live log is cleared when a run finishes).
#[derive(Default)]
struct PrintingLog {
    runs: Mutex<HashMap<String, Vec<CheckpointRow>>>,
    journal: Mutex<Vec<(String, CheckpointRow)>>,
}

impl PrintingLog {
    /// `(state, kind)` of every row appended for `workflow_id`, in order.
    fn rows_of(&self, workflow_id: &str) -> Vec<(String, RowKind)> {
        self.journal
            .lock()
            .map(|journal| {
                journal
                    .iter()
                    .filter(|(id, _)| id == workflow_id)
                    .map(|(_, row)| (row.state.clone(), row.kind))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn poisoned<T>(_: T) -> CanoError {
    CanoError::checkpoint_store("log poisoned")
}

#[checkpoint_store]
impl PrintingLog {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let mut runs = self.runs.lock().map_err(poisoned)?;
        let rows = runs.entry(workflow_id.to_string()).or_default();
        if rows.iter().any(|r| r.sequence == row.sequence) {
            return Err(CanoError::checkpoint_store(format!(
                "checkpoint conflict: {workflow_id:?} already has sequence {}",
                row.sequence
            )));
        }
        let cursor = match (&row.kind, &row.output_blob) {
            (RowKind::StepCursor, Some(blob)) => format!(" {}", String::from_utf8_lossy(blob)),
            _ => String::new(),
        };
        println!(
            "    [row #{} {} {:?}{cursor}]",
            row.sequence, row.state, row.kind
        );
        self.journal
            .lock()
            .map_err(poisoned)?
            .push((workflow_id.to_string(), row.clone()));
        rows.push(row);
        Ok(())
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        let runs = self.runs.lock().map_err(poisoned)?;
        let mut rows = runs.get(workflow_id).cloned().unwrap_or_default();
        rows.sort_by_key(|r| r.sequence);
        Ok(rows)
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        self.runs.lock().map_err(poisoned)?.remove(workflow_id);
        Ok(())
    }
}

fn customer(id: u32, email: &'static str) -> Customer {
    Customer { id, email }
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let store = MemoryStore::new();
    let warehouse = Warehouse::default();
    let log = Arc::new(PrintingLog::default());
    let pipeline = Workflow::new(
        Resources::new()
            .insert("store", store.clone())
            .insert("warehouse", warehouse.clone()),
    )
    .register(Ingest::Receive, Receive)
    .register_router(Ingest::Route, Route)
    .register(Ingest::AwaitExport, AwaitExport)
    .register(Ingest::Validate, Validate)
    .register_stepped(Ingest::Load, Load)
    .register(Ingest::Report, Report)
    .add_exit_states(vec![Ingest::Done, Ingest::Rejected])
    .with_checkpoint_store(log.clone());

    println!("=== partner feed: route -> poll -> batch -> stepped -> task ===");
    store.put(
        "feed",
        Feed {
            source: "acme-partner",
            partner: true,
            records: vec![
                customer(101, "ana@acme.test"),
                customer(102, "bo@acme.test"),
                customer(103, "not-an-email"),
                customer(104, "cy@acme.test"),
                customer(105, "dee@acme.test"),
                customer(106, ""),
                customer(107, "eli@acme.test"),
            ],
        },
    )?;
    let end = pipeline
        .clone()
        .with_workflow_id("feed-acme")
        .orchestrate(Ingest::Receive)
        .await?;
    println!("finished in {end:?}");
    assert_eq!(end, Ingest::Done);
    assert_eq!(warehouse.ids(), [101, 102, 104, 105, 107]);

    println!("\n=== internal feed: the router skips the export wait ===");
    store.put(
        "feed",
        Feed {
            source: "crm-internal",
            partner: false,
            records: vec![
                customer(201, "fay@corp.test"),
                customer(202, "gus@corp.test"),
            ],
        },
    )?;
    let end = pipeline
        .clone()
        .with_workflow_id("feed-crm")
        .orchestrate(Ingest::Receive)
        .await?;
    println!("finished in {end:?}");
    assert_eq!(end, Ingest::Done);
    assert_eq!(warehouse.ids(), [101, 102, 104, 105, 107, 201, 202]);

    let acme = log.rows_of("feed-acme");
    println!("\nrows recorded for feed-acme:");
    for (state, kind) in &acme {
        println!("  {state:<12} {kind:?}");
    }
    let entry = |s: &str| (s.to_string(), RowKind::StateEntry);
    let cursor = |s: &str| (s.to_string(), RowKind::StepCursor);
    assert_eq!(
        acme,
        [
            entry("Receive"),
            entry("AwaitExport"),
            entry("Validate"),
            entry("Load"),
            cursor("Load"),
            cursor("Load"),
            entry("Report"),
            entry("Done"),
        ]
    );
    assert!(log.rows_of("feed-crm").iter().all(|(s, _)| s != "Route"));
    Ok(())
}
