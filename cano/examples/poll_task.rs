//! # Poll task: wait for an external job, tolerate blips, give up in time
//!
//! Run with: `cargo run -p cano --example poll_task`
//!
//! A workflow submits a video to a (pretend) render farm, waits for the render with a
//! `#[task::poll]` state, then publishes the result. The poll task shows the three knobs
//! of the model:
//!
//! - [`PollOutcome::Pending`] with a delay while the job is running, then
//!   [`PollOutcome::Ready`] with the next state;
//! - [`PollErrorPolicy::RetryOnError`]: a couple of transient errors from the status API
//!   in a row are tolerated (the loop polls again at once), more than the budget fail
//!   the state with the latest error;
//! - `TaskConfig::minimal().with_attempt_timeout(..)`: the poll loop has no iteration cap,
//!   so the attempt timeout is what bounds the whole wait. A job that never finishes
//!   fails the state with [`CanoError::Timeout`] instead of hanging the workflow.

use cano::prelude::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Video {
    Submit,
    AwaitRender,
    Publish,
    Done,
}

/// The render farm's client: how long the job takes, and which status calls fail.
#[derive(Resource)]
struct RenderFarm {
    render_time: Duration,
    failing_calls: Vec<u32>,
    submitted: Mutex<Option<Instant>>,
    calls: AtomicU32,
}

impl RenderFarm {
    fn new(render_time: Duration, failing_calls: Vec<u32>) -> Self {
        Self {
            render_time,
            failing_calls,
            submitted: Mutex::new(None),
            calls: AtomicU32::new(0),
        }
    }

    fn submit(&self) -> Result<(), CanoError> {
        *self.lock()? = Some(Instant::now());
        Ok(())
    }

    /// One status call: `Some(url)` when the render is done.
    fn status(&self) -> Result<(u32, Option<String>), CanoError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.failing_calls.contains(&call) {
            return Err(CanoError::task_execution(format!(
                "status call {call}: 503 Service Unavailable"
            )));
        }
        let submitted = self
            .lock()?
            .ok_or_else(|| CanoError::task_execution("no job submitted"))?;
        let done = submitted.elapsed() >= self.render_time;
        Ok((call, done.then(|| "cdn://renders/v-42.mp4".to_string())))
    }

    fn elapsed_ms(&self) -> u128 {
        self.lock()
            .ok()
            .and_then(|s| *s)
            .map_or(0, |s| s.elapsed().as_millis())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Option<Instant>>, CanoError> {
        self.submitted
            .lock()
            .map_err(|_| CanoError::task_execution("render farm client poisoned"))
    }
}

struct Submit;

#[task(state = Video)]
impl Submit {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(&self, res: &Resources) -> Result<TaskResult<Video>, CanoError> {
        res.get::<RenderFarm, _>("farm")?.submit()?;
        println!("  submit: job v-42 sent to the render farm");
        Ok(TaskResult::Single(Video::AwaitRender))
    }
}

/// Polls the farm every 50 ms until the render is done, for at most `limit`.
struct AwaitRender {
    limit: Duration,
}

#[task::poll(state = Video)]
impl AwaitRender {
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal().with_attempt_timeout(self.limit)
    }

    fn on_poll_error(&self) -> PollErrorPolicy {
        PollErrorPolicy::RetryOnError { max_errors: 2 }
    }

    async fn poll(&self, res: &Resources) -> Result<PollOutcome<Video>, CanoError> {
        let farm = res.get::<RenderFarm, _>("farm")?;
        let at = farm.elapsed_ms();
        match farm.status() {
            Err(e) => {
                println!("  [{at:>4} ms] poll: {e}");
                Err(e)
            }
            Ok((call, None)) => {
                println!("  [{at:>4} ms] poll: call {call}, still rendering");
                Ok(PollOutcome::Pending { delay_ms: 50 })
            }
            Ok((call, Some(url))) => {
                println!("  [{at:>4} ms] poll: call {call}, ready at {url}");
                res.get::<MemoryStore, _>("store")?.put("url", url)?;
                Ok(PollOutcome::Ready(TaskResult::Single(Video::Publish)))
            }
        }
    }
}

struct Publish;

#[task(state = Video)]
impl Publish {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Video>, CanoError> {
        let url = res.get::<MemoryStore, _>("store")?.get::<String>("url")?;
        println!("  publish: {url} is live");
        Ok(TaskResult::Single(Video::Done))
    }
}

fn workflow(farm: RenderFarm, limit: Duration) -> Workflow<Video> {
    let resources = Resources::new()
        .insert("store", MemoryStore::new())
        .insert("farm", farm);
    Workflow::new(resources)
        .register(Video::Submit, Submit)
        .register(Video::AwaitRender, AwaitRender { limit })
        .register(Video::Publish, Publish)
        .add_exit_state(Video::Done)
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    println!("=== a 250 ms render; status calls 3 and 4 fail (budget: 2 in a row) ===");
    let farm = RenderFarm::new(Duration::from_millis(250), vec![3, 4]);
    let end = workflow(farm, Duration::from_secs(2))
        .orchestrate(Video::Submit)
        .await?;
    println!("finished in {end:?}");
    assert_eq!(end, Video::Done);

    println!("\n=== a render that never finishes; the wait is limited to 400 ms ===");
    let farm = RenderFarm::new(Duration::from_secs(3600), vec![]);
    let started = Instant::now();
    let err = match workflow(farm, Duration::from_millis(400))
        .orchestrate(Video::Submit)
        .await
    {
        Ok(state) => return Err(format!("expected a timeout, got {state:?}").into()),
        Err(err) => err,
    };
    let waited = started.elapsed();
    println!("gave up after {} ms: {err}", waited.as_millis());
    assert!(matches!(err, CanoError::Timeout(_)), "{err:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");

    println!("\n=== the status API fails three times in a row: over the budget ===");
    let farm = RenderFarm::new(Duration::from_millis(250), vec![2, 3, 4]);
    let err = match workflow(farm, Duration::from_secs(2))
        .orchestrate(Video::Submit)
        .await
    {
        Ok(state) => return Err(format!("expected a poll error, got {state:?}").into()),
        Err(err) => err,
    };
    println!("failed with the latest error: {err}");
    assert_eq!(
        err,
        CanoError::task_execution("status call 4: 503 Service Unavailable")
    );
    Ok(())
}
