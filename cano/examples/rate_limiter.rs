//! # Rate limiters: a workflow's calls to an API held to "5 per second and 20 per minute"
//!
//! Run with:
//! `cargo run -p cano --example rate_limiter`
//!
//! An enrichment workflow looks up 12 customers in a partner API that allows 5 calls per
//! second and 20 per minute. The limit lives in the workflow's resources as a
//! [`MultiRateLimiter`] over a token bucket ([`RateLimiter`]) and a fixed window
//! ([`WindowedRateLimiter`]): every lookup reserves a token in both tiers or in neither.
//! The split's members wait in `acquire` exactly until the bucket refills, so the program
//! prints when each call went out: five at once, then one every 200 ms. A last
//! `try_acquire` shows a rejection: which tier refused and how long to wait. The program
//! runs on Tokio's paused clock, so it takes no real time and its output is the same on
//! every machine.

use cano::prelude::*;
use cano::rate_limit::{
    MultiRateLimiter, RateLimiter, RateLimiterPolicy, WindowPolicy, WindowedRateLimiter,
};
use std::sync::Arc;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Enrich {
    Lookup,
    Done,
}

/// Looks up one customer, under the partner API's limits.
struct Lookup {
    customer: u32,
    started: Instant,
}

#[task(state = Enrich)]
impl Lookup {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }
    async fn run(&self, res: &Resources) -> Result<TaskResult<Enrich>, CanoError> {
        let limits = res.get::<MultiRateLimiter, _>("partner_api")?;
        let _permit = limits.acquire().await?;
        let at = self.started.elapsed().as_millis();
        println!("  t = {at:>4} ms  lookup customer {}", self.customer);
        Ok(TaskResult::Single(Enrich::Done))
    }
}

async fn run() -> Result<(), CanoError> {
    let per_second = RateLimiter::new(RateLimiterPolicy::per_second(5))?.with_name("per-second");
    let per_minute =
        WindowedRateLimiter::new(WindowPolicy::per_minute(20))?.with_name("per-minute");
    let limits = MultiRateLimiter::new()
        .with_tier("per-second", Arc::new(per_second), 1)
        .with_tier("per-minute", Arc::new(per_minute.clone()), 1);

    let started = Instant::now();
    let lookups = (1..=12).map(|customer| Lookup { customer, started });
    let wf = Workflow::new(Resources::new().insert("partner_api", limits.clone()))
        .register_split_from(
            Enrich::Lookup,
            lookups,
            JoinConfig::new(JoinStrategy::All, Enrich::Done),
        )
        .add_exit_state(Enrich::Done);
    println!("12 lookups, at most 5 per second and 20 per minute:");
    wf.orchestrate(Enrich::Lookup).await?;
    println!(
        "done after {} ms; {} of the minute's 20 calls left",
        started.elapsed().as_millis(),
        per_minute.remaining()
    );

    match limits.try_acquire() {
        Ok(_) => println!("a 13th call may go at once"),
        Err(limited) => println!(
            "a 13th call now is refused by tier {:?}: retry after {:?}",
            limited.tier, limited.retry_after
        ),
    }
    Ok(())
}

fn main() -> Result<(), CanoError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| CanoError::configuration(format!("cannot start a Tokio runtime: {e}")))?
        .block_on(run())
}
