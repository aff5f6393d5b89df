//! # Saga rollback: undo completed steps, most recent first, when a later step fails
//!
//! Run with: `cargo run -p cano --example saga_rollback`
//!
//! An order reserves stock, charges the card and ships. Each step is a
//! `#[saga::task]`, registered with [`Workflow::register_with_compensation`]: its `run`
//! returns the next state *and* an output describing what it did (a hold id, a payment
//! id), and its `compensate` undoes the step from that output alone.
//!
//! - In the first run the courier rejects the parcel. The engine compensates the
//!   completed steps in reverse order (refund the card, then release the stock), each
//!   with the output its step recorded, and the run returns the original error.
//! - In the second run the refund itself fails. The rollback still releases the stock,
//!   and the run returns [`CanoError::CompensationFailed`], carrying the original error
//!   first and then every compensation error.

use cano::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Order {
    Reserve,
    Charge,
    Ship,
    Done,
}

/// The outside world: what happened, in order, and whether refunds work today.
#[derive(Clone, Default, Resource)]
struct World {
    events: Arc<Mutex<Vec<String>>>,
    refunds_down: Arc<AtomicBool>,
}

impl World {
    fn record(&self, event: String) {
        println!("  {event}");
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

fn world(res: &Resources) -> Result<Arc<World>, CanoError> {
    res.get::<World, _>("world")
}

/// What `ReserveStock` did: enough to release it again.
#[derive(Debug, Serialize, Deserialize)]
struct Hold {
    hold_id: String,
    sku: String,
    qty: u32,
}

struct ReserveStock;

#[saga::task(state = Order)]
impl ReserveStock {
    type Output = Hold;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(&self, res: &Resources) -> Result<(TaskResult<Order>, Hold), CanoError> {
        let hold = Hold {
            hold_id: "H-7".into(),
            sku: "MUG-RED".into(),
            qty: 2,
        };
        world(res)?.record(format!(
            "reserve: hold {} on {} x {}",
            hold.hold_id, hold.qty, hold.sku
        ));
        Ok((TaskResult::Single(Order::Charge), hold))
    }

    async fn compensate(&self, res: &Resources, hold: Hold) -> Result<(), CanoError> {
        world(res)?.record(format!("undo reserve: release {hold:?}"));
        Ok(())
    }
}

/// What `ChargeCard` did: enough to refund it.
#[derive(Debug, Serialize, Deserialize)]
struct Payment {
    payment_id: String,
    amount_cents: u64,
}

struct ChargeCard;

#[saga::task(state = Order)]
impl ChargeCard {
    type Output = Payment;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(&self, res: &Resources) -> Result<(TaskResult<Order>, Payment), CanoError> {
        let payment = Payment {
            payment_id: "PAY-31".into(),
            amount_cents: 2_598,
        };
        world(res)?.record(format!(
            "charge: {} for {} cents",
            payment.payment_id, payment.amount_cents
        ));
        Ok((TaskResult::Single(Order::Ship), payment))
    }

    async fn compensate(&self, res: &Resources, payment: Payment) -> Result<(), CanoError> {
        let world = world(res)?;
        if world.refunds_down.load(Ordering::SeqCst) {
            world.record(format!(
                "undo charge: refund of {} FAILED (provider down)",
                payment.payment_id
            ));
            return Err(CanoError::task_execution(format!(
                "refund {}: payment provider unavailable",
                payment.payment_id
            )));
        }
        world.record(format!("undo charge: refund {payment:?}"));
        Ok(())
    }
}

struct ShipParcel;

#[saga::task(state = Order)]
impl ShipParcel {
    type Output = String;

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(&self, res: &Resources) -> Result<(TaskResult<Order>, String), CanoError> {
        world(res)?.record("ship: courier rejected the parcel".into());
        Err(CanoError::task_execution(
            "courier rejected the parcel: address not deliverable",
        ))
    }

    async fn compensate(&self, res: &Resources, label: String) -> Result<(), CanoError> {
        world(res)?.record(format!("undo ship: cancel label {label}"));
        Ok(())
    }
}

fn order_workflow(world: &World) -> Workflow<Order> {
    Workflow::new(Resources::new().insert("world", world.clone()))
        .register_with_compensation(Order::Reserve, ReserveStock)
        .register_with_compensation(Order::Charge, ChargeCard)
        .register_with_compensation(Order::Ship, ShipParcel)
        .add_exit_state(Order::Done)
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    let original =
        CanoError::task_execution("courier rejected the parcel: address not deliverable");

    println!("=== order 1: shipping fails, the saga rolls back ===");
    let world = World::default();
    let err = match order_workflow(&world).orchestrate(Order::Reserve).await {
        Ok(state) => return Err(format!("expected a failure, got {state:?}").into()),
        Err(err) => err,
    };
    println!("run returned the original error: {err}");
    assert_eq!(err, original);
    let events = world.events();
    assert!(events[3].starts_with("undo charge: refund"), "{events:?}");
    assert!(events[4].starts_with("undo reserve: release"), "{events:?}");
    assert_eq!(events.len(), 5, "the failed ship step is not compensated");

    println!("\n=== order 2: shipping fails and the refund fails too ===");
    let world = World::default();
    world.refunds_down.store(true, Ordering::SeqCst);
    let err = match order_workflow(&world).orchestrate(Order::Reserve).await {
        Ok(state) => return Err(format!("expected a failure, got {state:?}").into()),
        Err(err) => err,
    };
    println!("run returned:\n  {err}");
    let CanoError::CompensationFailed { errors } = &err else {
        return Err(format!("expected CompensationFailed, got {err:?}").into());
    };
    println!("its errors, original first:");
    for (i, e) in errors.iter().enumerate() {
        println!("  [{i}] {e}");
    }
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0], original);
    assert_eq!(
        errors[1],
        CanoError::task_execution("refund PAY-31: payment provider unavailable")
    );
    // The failed refund did not stop the rollback: the stock was still released.
    let events = world.events();
    assert!(events[4].starts_with("undo reserve: release"), "{events:?}");
    println!("the stock hold was released anyway; the refund needs a human");
    Ok(())
}
