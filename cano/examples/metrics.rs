//! # Metrics: a workflow's runs, states, retries and rollbacks as Prometheus metrics
//!
//! Run with:
//! `cargo run -p cano --example metrics --features metrics`
//!
//! The program installs a Prometheus recorder (`metrics-exporter-prometheus`, in process:
//! no HTTP server), calls [`cano::metrics::describe`] — which registers the help texts and
//! switches the engine's metrics on — and runs an order workflow 20 times with a
//! [`MetricsObserver`] attached: `Validate → Quote (a split over three carriers, two of
//! three must answer) → Charge (a saga step) → Ship → Done`. A carrier times out now and
//! then, the payment gateway fails every fourth call (the retry gets through), and every fifth
//! order cannot ship, so its charge is refunded. It then prints what a Prometheus server
//! would scrape (the `cano_*` series, quantile lines left out for brevity): runs by
//! outcome, runs in progress, attempts, split branches, checkpoint rows, compensations, and
//! the observer's per-state and per-task counters. The metric names and the label policy
//! are in the [`cano::metrics`] module docs.

use cano::MemoryCheckpointStore;
use cano::metrics::MetricsObserver;
use cano::prelude::*;
use metrics_exporter_prometheus::PrometheusBuilder;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Order {
    Validate,
    Quote,
    Charge,
    Ship,
    Done,
}

struct Validate;

#[task(state = Order)]
impl Validate {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "validate".into()
    }
    async fn run_bare(&self) -> Result<TaskResult<Order>, CanoError> {
        Ok(TaskResult::Single(Order::Quote))
    }
}

/// A carrier's quote; carrier 2 misses every fourth call.
struct Carrier(u32, Arc<AtomicU32>);

#[task(state = Order)]
impl Carrier {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "carrier".into()
    }
    async fn run_bare(&self) -> Result<TaskResult<Order>, CanoError> {
        let call = self.1.fetch_add(1, Ordering::SeqCst);
        if self.0 == 2 && call.is_multiple_of(4) {
            return Err(CanoError::timeout("carrier did not answer"));
        }
        Ok(TaskResult::Single(Order::Charge))
    }
}

/// Charges the card: the gateway fails every fourth call.
struct Charge(Arc<AtomicU32>);

#[saga::task(state = Order)]
impl Charge {
    type Output = u32;
    fn config(&self) -> TaskConfig {
        TaskConfig::new().with_fixed_retry(2, Duration::from_millis(1))
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "charge".into()
    }
    async fn run(&self, _res: &Resources) -> Result<(TaskResult<Order>, u32), CanoError> {
        let call = self.0.fetch_add(1, Ordering::SeqCst);
        if call.is_multiple_of(4) {
            return Err(CanoError::task_execution("gateway 503"));
        }
        Ok((TaskResult::Single(Order::Ship), call))
    }
    async fn compensate(&self, _res: &Resources, _charge: u32) -> Result<(), CanoError> {
        Ok(()) // refund
    }
}

/// Ships, unless the order number is a multiple of five.
struct Ship;

#[task(state = Order)]
impl Ship {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "ship".into()
    }
    async fn run(&self, res: &Resources) -> Result<TaskResult<Order>, CanoError> {
        let order: u32 = res.get::<MemoryStore, _>("orders")?.get("number")?;
        if order.is_multiple_of(5) {
            return Err(CanoError::task_execution("address not deliverable"));
        }
        Ok(TaskResult::Single(Order::Done))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), CanoError> {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| CanoError::configuration(format!("cannot install the recorder: {e}")))?;
    cano::metrics::describe();

    let orders = MemoryStore::new();
    let store = Arc::new(MemoryCheckpointStore::new());
    let calls = Arc::new(AtomicU32::new(0));
    let carriers = (1..=3).map(|n| Carrier(n, calls.clone()));
    let workflow = Workflow::new(Resources::new().insert("orders", orders.clone()))
        .register(Order::Validate, Validate)
        .register_split_from(
            Order::Quote,
            carriers,
            JoinConfig::new(JoinStrategy::Quorum(2), Order::Charge),
        )
        .register_with_compensation(Order::Charge, Charge(Arc::default()))
        .register(Order::Ship, Ship)
        .add_exit_state(Order::Done)
        .with_checkpoint_store(store)
        .with_observer(Arc::new(MetricsObserver::new()));

    let (mut shipped, mut refunded) = (0, 0);
    for number in 1..=20_u32 {
        orders.put("number", number)?;
        let run = workflow.clone().with_workflow_id(format!("order-{number}"));
        match run.orchestrate(Order::Validate).await {
            Ok(_) => shipped += 1,
            Err(_) => refunded += 1,
        }
    }
    println!("20 orders: {shipped} shipped, {refunded} refunded\n");
    println!("# what a Prometheus server would scrape (cano_* series, no quantile lines):");
    for line in prometheus.render().lines() {
        let series = line.starts_with("cano_") && !line.contains("quantile=");
        let help = line.starts_with("# HELP cano_");
        if series || help {
            println!("{line}");
        }
    }
    Ok(())
}
