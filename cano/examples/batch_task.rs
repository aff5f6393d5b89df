//! # Batch task: fan out over items with bounded concurrency and per-item retries
//!
//! Run with: `cargo run -p cano --example batch_task`
//!
//! A photo service makes thumbnails for a batch of uploads in one `#[task::batch]` state:
//!
//! - `load` reads the uploads from a [`MemoryStore`] in [`Resources`];
//! - `process_item` renders one thumbnail, with at most `concurrency()` = 3 in flight, so
//!   items finish out of order;
//! - `item_retry()` gives each item two retries: a flaky decoder recovers on its second
//!   attempt, a corrupt file fails all three attempts. A failing item does not fail the
//!   state;
//! - `finish` receives one result per item **in input order** and decides the next
//!   state: everything rendered goes straight to `Publish`, a few failures go through
//!   `Quarantine` first, too many abort the batch.

use cano::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Photos {
    Thumbnails,
    Quarantine,
    Publish,
    Done,
    Aborted,
}

/// One uploaded file.
#[derive(Debug, Clone)]
struct Upload {
    name: &'static str,
    size_kb: u64,
}

/// Renders thumbnails; counts attempts per file and the peak number in flight.
#[derive(Default)]
struct Thumbnails {
    attempts: Mutex<HashMap<&'static str, u32>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

impl Thumbnails {
    fn attempt(&self, name: &'static str) -> u32 {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let n = attempts.entry(name).or_default();
        *n += 1;
        *n
    }

    async fn render(&self, upload: &Upload) -> Result<String, CanoError> {
        let attempt = self.attempt(upload.name);
        // Bigger files take longer, so items complete out of input order.
        tokio::time::sleep(Duration::from_millis(upload.size_kb / 20)).await;
        if upload.name.ends_with(".tiff") {
            return Err(CanoError::task_execution(format!(
                "unsupported TIFF compression (attempt {attempt})"
            )));
        }
        if upload.name.ends_with(".heic") && attempt == 1 {
            return Err(CanoError::task_execution(format!(
                "HEIC decoder busy (attempt {attempt})"
            )));
        }
        Ok(format!(
            "thumbs/{}.jpg",
            upload.name.split('.').next().unwrap_or("x")
        ))
    }
}

#[task::batch(state = Photos)]
impl Thumbnails {
    fn concurrency(&self) -> usize {
        3
    }

    fn item_retry(&self) -> RetryMode {
        RetryMode::fixed(2, Duration::from_millis(20))
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn load(&self, res: &Resources) -> Result<Vec<Upload>, CanoError> {
        let uploads = res
            .get::<MemoryStore, _>("store")?
            .get::<Vec<Upload>>("uploads")?;
        println!("  load: {} upload(s), 3 at a time", uploads.len());
        Ok(uploads)
    }

    async fn process_item(&self, upload: &Upload) -> Result<String, CanoError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let result = self.render(upload).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match &result {
            Ok(thumb) => println!("    {:<12} -> {thumb}", upload.name),
            Err(e) => println!("    {:<12} x  {}", upload.name, e.message()),
        }
        result
    }

    async fn finish(
        &self,
        res: &Resources,
        outputs: Vec<Result<String, CanoError>>,
    ) -> Result<TaskResult<Photos>, CanoError> {
        let store = res.get::<MemoryStore, _>("store")?;
        let uploads = store.get::<Vec<Upload>>("uploads")?;
        println!("  finish: results in input order");
        let mut rendered = Vec::new();
        let mut failed = Vec::new();
        for (upload, output) in uploads.iter().zip(&outputs) {
            let attempts = self
                .attempts
                .lock()
                .map_or(0, |a| a.get(upload.name).copied().unwrap_or(0));
            match output {
                Ok(thumb) => {
                    println!(
                        "    {:<12} ok      {thumb} ({attempts} attempt(s))",
                        upload.name
                    );
                    rendered.push(thumb.clone());
                }
                Err(_) => {
                    println!("    {:<12} FAILED  ({attempts} attempt(s))", upload.name);
                    failed.push(upload.name.to_string());
                }
            }
        }
        let next = if failed.is_empty() {
            Photos::Publish
        } else if failed.len() * 4 <= outputs.len() {
            Photos::Quarantine
        } else {
            Photos::Aborted
        };
        println!(
            "  finish: {} rendered, {} failed -> {next:?}",
            rendered.len(),
            failed.len()
        );
        store.put("peak", self.peak.load(Ordering::SeqCst))?;
        store.put("rendered", rendered)?;
        store.put("failed", failed)?;
        Ok(TaskResult::Single(next))
    }
}

struct Quarantine;

#[task(state = Photos)]
impl Quarantine {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Photos>, CanoError> {
        let failed = res
            .get::<MemoryStore, _>("store")?
            .get::<Vec<String>>("failed")?;
        println!("  quarantine: {} sent to manual review", failed.join(", "));
        Ok(TaskResult::Single(Photos::Publish))
    }
}

struct Publish;

#[task(state = Photos)]
impl Publish {
    async fn run(&self, res: &Resources) -> Result<TaskResult<Photos>, CanoError> {
        let rendered = res
            .get::<MemoryStore, _>("store")?
            .get::<Vec<String>>("rendered")?;
        println!("  publish: {} thumbnail(s) live", rendered.len());
        Ok(TaskResult::Single(Photos::Done))
    }
}

/// Runs one batch; returns the final state, the store and the peak concurrency.
async fn run_batch(uploads: Vec<Upload>) -> Result<(Photos, MemoryStore, usize), CanoError> {
    let store = MemoryStore::new();
    store.put("uploads", uploads)?;
    let workflow = Workflow::new(Resources::new().insert("store", store.clone()))
        .register(Photos::Thumbnails, Thumbnails::default())
        .register(Photos::Quarantine, Quarantine)
        .register(Photos::Publish, Publish)
        .add_exit_states(vec![Photos::Done, Photos::Aborted]);
    let end = workflow.orchestrate(Photos::Thumbnails).await?;
    let peak = store.get::<usize>("peak")?;
    Ok((end, store, peak))
}

fn upload(name: &'static str, size_kb: u64) -> Upload {
    Upload { name, size_kb }
}

#[tokio::main]
async fn main() -> Result<(), CanoError> {
    println!("=== six uploads: one flaky, one corrupt ===");
    let (end, store, peak) = run_batch(vec![
        upload("harbor.jpg", 2400),
        upload("beach.heic", 800),
        upload("scan.tiff", 400),
        upload("dog.png", 1200),
        upload("sunset.jpg", 300),
        upload("map.png", 1600),
    ])
    .await?;
    println!("finished in {end:?}; at most {peak} item(s) were in flight");
    assert_eq!(end, Photos::Done);
    assert!((2..=3).contains(&peak), "peak concurrency {peak}");
    assert_eq!(store.get::<Vec<String>>("failed")?, ["scan.tiff"]);
    assert_eq!(
        store.get::<Vec<String>>("rendered")?,
        [
            "thumbs/harbor.jpg",
            "thumbs/beach.jpg",
            "thumbs/dog.jpg",
            "thumbs/sunset.jpg",
            "thumbs/map.jpg"
        ]
    );

    println!("\n=== two corrupt files out of three: finish aborts ===");
    let (end, store, _) = run_batch(vec![
        upload("old.tiff", 200),
        upload("cat.jpg", 200),
        upload("fax.tiff", 200),
    ])
    .await?;
    println!("finished in {end:?}");
    assert_eq!(end, Photos::Aborted);
    assert_eq!(
        store.get::<Vec<String>>("failed")?,
        ["old.tiff", "fax.tiff"]
    );
    Ok(())
}
