//! # Router task: choose the next state from data, without a checkpoint row
//!
//! Run with: `cargo run -p cano --example router_task`
//!
//! Support tickets arrive with a priority and a customer plan. A `#[task::router]` state
//! reads both from a [`MemoryStore`] in [`Resources`] and sends each ticket to one of
//! three branches: page the on-call engineer, queue it for the support team, or answer it
//! with an automatic reply.
//!
//! A router only decides; it has no side effects. Registered with
//! [`Workflow::register_router`], its state writes no checkpoint row and uses no
//! sequence number (on resume, the engine would simply route again). An in-memory
//! checkpoint store written with `#[checkpoint_store]` prints every row it receives, so
//! you can see that the first row of each run belongs to the branch, not the router.
//! The last run registers the same router with plain [`Workflow::register`] for
//! comparison: now the router's state is recorded like any other.

use cano::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ticket {
    Triage,
    PageOnCall,
    SupportQueue,
    AutoReply,
    Done,
}

/// Picks a branch from the ticket's priority and the customer's plan.
struct Triage;

#[task::router(state = Ticket)]
impl Triage {
    async fn route(&self, res: &Resources) -> Result<TaskResult<Ticket>, CanoError> {
        let store = res.get::<MemoryStore, _>("store")?;
        let priority = store.get::<u8>("priority")?;
        let plan = store.get::<String>("plan")?;
        let next = match (priority, plan.as_str()) {
            (1, _) => Ticket::PageOnCall,
            (2, "enterprise") => Ticket::PageOnCall,
            (2 | 3, _) => Ticket::SupportQueue,
            _ => Ticket::AutoReply,
        };
        println!("  triage: P{priority}, {plan} plan -> {next:?}");
        Ok(TaskResult::Single(next))
    }
}

/// One of the three branches: records what it did and ends the run.
struct Handle(&'static str);

#[task(state = Ticket)]
impl Handle {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(&self, res: &Resources) -> Result<TaskResult<Ticket>, CanoError> {
        println!("  {}", self.0);
        res.get::<MemoryStore, _>("store")?
            .put("handled_by", self.0.to_string())?;
        Ok(TaskResult::Single(Ticket::Done))
    }
}

/// An in-memory checkpoint log that prints each row and keeps a journal of every row
/// ever appended (the live log is cleared when a run finishes).
#[derive(Default)]
struct PrintingLog {
    runs: Mutex<HashMap<String, Vec<CheckpointRow>>>,
    journal: Mutex<Vec<(String, CheckpointRow)>>,
}

impl PrintingLog {
    /// The states of every row appended for `workflow_id`, in order.
    fn states_of(&self, workflow_id: &str) -> Vec<String> {
        lock(&self.journal)
            .map(|journal| {
                journal
                    .iter()
                    .filter(|(id, _)| id == workflow_id)
                    .map(|(_, row)| row.state.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, CanoError> {
    m.lock()
        .map_err(|_| CanoError::checkpoint_store("log poisoned"))
}

#[checkpoint_store]
impl PrintingLog {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        let mut runs = lock(&self.runs)?;
        let rows = runs.entry(workflow_id.to_string()).or_default();
        if rows.iter().any(|r| r.sequence == row.sequence) {
            return Err(CanoError::checkpoint_store(format!(
                "checkpoint conflict: {workflow_id:?} already has sequence {}",
                row.sequence
            )));
        }
        println!(
            "    [row {workflow_id} #{} {} {:?}]",
            row.sequence, row.state, row.kind
        );
        lock(&self.journal)?.push((workflow_id.to_string(), row.clone()));
        rows.push(row);
        Ok(())
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        let mut rows = lock(&self.runs)?
            .get(workflow_id)
            .cloned()
            .unwrap_or_default();
        rows.sort_by_key(|r| r.sequence);
        Ok(rows)
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        lock(&self.runs)?.remove(workflow_id);
        Ok(())
    }
}

/// Runs one ticket through `workflow` under its own checkpoint id.
async fn triage(
    workflow: &Workflow<Ticket>,
    store: &MemoryStore,
    id: &str,
    priority: u8,
    plan: &str,
) -> Result<String, CanoError> {
    println!("\n=== {id}: P{priority}, {plan} ===");
    store.put("priority", priority)?;
    store.put("plan", plan.to_string())?;
    let end = workflow
        .clone()
        .with_workflow_id(id)
        .orchestrate(Ticket::Triage)
        .await?;
    assert_eq!(end, Ticket::Done);
    Ok(store.get::<String>("handled_by")?)
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let store = MemoryStore::new();
    let log = Arc::new(PrintingLog::default());
    let branches = |wf: Workflow<Ticket>| {
        wf.register(Ticket::PageOnCall, Handle("paged the on-call engineer"))
            .register(Ticket::SupportQueue, Handle("queued for the support team"))
            .register(Ticket::AutoReply, Handle("sent the self-help article"))
            .add_exit_state(Ticket::Done)
            .with_checkpoint_store(log.clone())
    };
    let routed = branches(
        Workflow::new(Resources::new().insert("store", store.clone()))
            .register_router(Ticket::Triage, Triage),
    );

    let outage = triage(&routed, &store, "ticket-1", 1, "free").await?;
    let billing = triage(&routed, &store, "ticket-2", 3, "enterprise").await?;
    let question = triage(&routed, &store, "ticket-3", 4, "team").await?;
    assert_eq!(outage, "paged the on-call engineer");
    assert_eq!(billing, "queued for the support team");
    assert_eq!(question, "sent the self-help article");

    // The same router, registered as an ordinary task: its state is checkpointed.
    let plain = branches(
        Workflow::new(Resources::new().insert("store", store.clone()))
            .register(Ticket::Triage, Triage),
    );
    println!("\n(the same router registered with plain `register`)");
    triage(&plain, &store, "ticket-4", 1, "free").await?;

    println!("\nrows written per run:");
    for id in ["ticket-1", "ticket-2", "ticket-3", "ticket-4"] {
        println!("  {id}: {}", log.states_of(id).join(" -> "));
    }
    assert_eq!(log.states_of("ticket-1"), ["PageOnCall", "Done"]);
    assert_eq!(log.states_of("ticket-2"), ["SupportQueue", "Done"]);
    assert_eq!(log.states_of("ticket-4"), ["Triage", "PageOnCall", "Done"]);
    println!("register_router: the Triage state never reached the checkpoint log");
    Ok(())
}
