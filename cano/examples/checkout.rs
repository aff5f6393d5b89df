//! # Checkout: a workflow that retries, fails, and resumes from its checkpoint log
//!
//! Run with: `cargo run -p cano --example checkout`
//!
//! An order goes `Validate → Reserve → Charge → Ship → Done` (or `Rejected`). The demo
//! shows, in one run of the program:
//!
//! - tasks written with `#[task(state = …)]`, sharing a [`MemoryStore`] through
//!   [`Resources`];
//! - a flaky payment call retried by the engine (`TaskConfig::with_fixed_retry`), with
//!   an observer printing every event;
//! - a checkpoint store (an in-memory one written with `#[checkpoint_store]`): every
//!   state entry is recorded *before* its task runs;
//! - the shipping step failing on the first run, the log kept, and
//!   [`Workflow::resume_from`] continuing at `Ship` without charging the card again;
//! - the workflow drawn as a Mermaid flowchart ([`Workflow::to_mermaid`], with the
//!   transitions declared by [`Workflow::with_transitions`]), printed first.

use cano::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Order {
    Validate,
    Reserve,
    Charge,
    Ship,
    Done,
    Rejected,
}

/// Counts calls to the (pretend) payment gateway and the courier.
#[derive(Default, Resource)]
struct Outside {
    charge_calls: AtomicU32,
    ship_calls: AtomicU32,
}

struct Validate;

#[task(state = Order)]
impl Validate {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(&self, res: &Resources) -> Result<TaskResult<Order>, CanoError> {
        let store = res.get::<MemoryStore, _>("store")?;
        let qty = store.get::<u32>("qty")?;
        println!("  validate: {qty} item(s)");
        Ok(TaskResult::Single(if qty > 0 {
            Order::Reserve
        } else {
            Order::Rejected
        }))
    }
}

struct Reserve;

#[task(state = Order)]
impl Reserve {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Order>, CanoError> {
        let store = res.get::<MemoryStore, _>("store")?;
        store.put("reservation", String::from("R-1001"))?;
        println!("  reserve: stock held as R-1001");
        Ok(TaskResult::Single(Order::Charge))
    }
}

struct Charge;

#[task(state = Order)]
impl Charge {
    fn config(&self) -> TaskConfig {
        TaskConfig::new().with_fixed_retry(3, Duration::from_millis(20))
    }

    async fn run(&self, res: &Resources) -> Result<TaskResult<Order>, CanoError> {
        let outside = res.get::<Outside, _>("outside")?;
        let call = outside.charge_calls.fetch_add(1, Ordering::SeqCst) + 1;
        if call < 3 {
            println!("  charge: gateway timeout (call {call})");
            return Err(CanoError::task_execution("payment gateway timed out"));
        }
        println!("  charge: card charged (call {call})");
        res.get::<MemoryStore, _>("store")?
            .put("payment", String::from("PAY-77"))?;
        Ok(TaskResult::Single(Order::Ship))
    }
}

struct Ship;

#[task(state = Order)]
impl Ship {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(&self, res: &Resources) -> Result<TaskResult<Order>, CanoError> {
        let outside = res.get::<Outside, _>("outside")?;
        if outside.ship_calls.fetch_add(1, Ordering::SeqCst) == 0 {
            println!("  ship: courier API is down");
            return Err(CanoError::task_execution("courier API unavailable"));
        }
        println!("  ship: label printed");
        Ok(TaskResult::Single(Order::Done))
    }
}

/// Prints what the engine does.
struct Narrator;

impl WorkflowObserver for Narrator {
    fn on_state_enter(&self, state: &str) {
        println!("-> {state}");
    }
    fn on_retry(&self, task_id: &str, attempt: u32) {
        println!(
            "   (retrying {} after failed attempt {attempt})",
            short(task_id)
        );
    }
    fn on_task_failure(&self, task_id: &str, err: &CanoError) {
        println!("   ({} failed: {err})", short(task_id));
    }
    fn on_checkpoint(&self, workflow_id: &str, sequence: u64) {
        println!("   [checkpoint {workflow_id}#{sequence}]");
    }
    fn on_resume(&self, workflow_id: &str, sequence: u64) {
        println!("   [resuming {workflow_id} after row {sequence}]");
    }
}

fn short(task_id: &str) -> &str {
    task_id.rsplit("::").next().unwrap_or(task_id)
}

/// An in-memory checkpoint log. A real deployment would use a durable store.
#[derive(Default)]
struct MemoryLog(Mutex<HashMap<String, Vec<CheckpointRow>>>);

#[checkpoint_store]
impl MemoryLog {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let mut runs = self
            .0
            .lock()
            .map_err(|_| CanoError::checkpoint_store("log poisoned"))?;
        let rows = runs.entry(workflow_id.to_string()).or_default();
        if rows.iter().any(|r| r.sequence == row.sequence) {
            return Err(CanoError::checkpoint_store(format!(
                "checkpoint conflict: {workflow_id:?} already has sequence {}",
                row.sequence
            )));
        }
        rows.push(row);
        Ok(())
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        let runs = self
            .0
            .lock()
            .map_err(|_| CanoError::checkpoint_store("log poisoned"))?;
        let mut rows = runs.get(workflow_id).cloned().unwrap_or_default();
        rows.sort_by_key(|r| r.sequence);
        Ok(rows)
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        let mut runs = self
            .0
            .lock()
            .map_err(|_| CanoError::checkpoint_store("log poisoned"))?;
        runs.remove(workflow_id);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let store = MemoryStore::new();
    store.put("qty", 2u32)?;
    let log = Arc::new(MemoryLog::default());
    let resources = Resources::new()
        .insert("store", store.clone())
        .insert("outside", Outside::default());

    let workflow = Workflow::new(resources)
        .register(Order::Validate, Validate)
        .register(Order::Reserve, Reserve)
        .register(Order::Charge, Charge)
        .register(Order::Ship, Ship)
        .add_exit_states(vec![Order::Done, Order::Rejected])
        // Where each state may lead, for the diagram (the tasks decide at run time).
        .with_transitions(Order::Validate, [Order::Reserve, Order::Rejected])
        .with_transitions(Order::Reserve, [Order::Charge])
        .with_transitions(Order::Charge, [Order::Ship])
        .with_transitions(Order::Ship, [Order::Done])
        .with_observer(Arc::new(Narrator))
        .with_checkpoint_store(log.clone())
        .with_workflow_id("order-1001");

    println!("=== the workflow, as Mermaid (Workflow::to_mermaid) ===");
    print!("{}", workflow.to_mermaid());

    println!("\n=== first run ===");
    let err = match workflow.orchestrate(Order::Validate).await {
        Ok(state) => {
            return Err(CanoError::generic(format!(
                "expected a failure, got {state:?}"
            )));
        }
        Err(err) => err,
    };
    println!("first run stopped: {err}");

    println!("\ncheckpoint log kept for resume:");
    for row in log.load_run("order-1001").await? {
        println!(
            "  #{} {:<8} {}",
            row.sequence,
            row.state,
            short(&row.task_id)
        );
    }

    println!("\n=== resume ===");
    let end = workflow.resume_from("order-1001").await?;
    println!("resumed run finished in {end:?}");

    println!(
        "\npayment {} for reservation {}; log now has {} row(s)",
        store.get::<String>("payment")?,
        store.get::<String>("reservation")?,
        log.load_run("order-1001").await?.len()
    );
    assert_eq!(end, Order::Done);
    Ok(())
}
