//! Helpers shared by the integration tests.
#![allow(dead_code)]

use cano::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// An observer that records every callback as a short string:
/// `enter:{state}`, `start:{id}`, `success:{id}`, `failure:{id}`, `retry:{id}:{n}`,
/// `circuit_open:{id}`, `checkpoint:{wf}:{seq}`, `resume:{wf}:{seq}`.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<String>>,
    errors: Mutex<Vec<CanoError>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    /// The events that start with `prefix`.
    pub fn events_with(&self, prefix: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e.starts_with(prefix))
            .collect()
    }

    /// Position of the first event equal to `event`; panics with the log if absent.
    pub fn position(&self, event: &str) -> usize {
        let events = self.events();
        events
            .iter()
            .position(|e| e == event)
            .unwrap_or_else(|| panic!("no event {event:?} in {events:?}"))
    }

    /// The errors passed to `on_task_failure`, in order.
    pub fn failures(&self) -> Vec<CanoError> {
        self.errors.lock().unwrap().clone()
    }

    fn push(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
}

impl WorkflowObserver for Recorder {
    fn on_state_enter(&self, state: &str) {
        self.push(format!("enter:{state}"));
    }
    fn on_task_start(&self, task_id: &str) {
        self.push(format!("start:{task_id}"));
    }
    fn on_task_success(&self, task_id: &str) {
        self.push(format!("success:{task_id}"));
    }
    fn on_task_failure(&self, task_id: &str, err: &CanoError) {
        self.errors.lock().unwrap().push(err.clone());
        self.push(format!("failure:{task_id}"));
    }
    fn on_retry(&self, task_id: &str, attempt: u32) {
        self.push(format!("retry:{task_id}:{attempt}"));
    }
    fn on_circuit_open(&self, task_id: &str) {
        self.push(format!("circuit_open:{task_id}"));
    }
    fn on_checkpoint(&self, workflow_id: &str, sequence: u64) {
        self.push(format!("checkpoint:{workflow_id}:{sequence}"));
    }
    fn on_resume(&self, workflow_id: &str, sequence: u64) {
        self.push(format!("resume:{workflow_id}:{sequence}"));
    }
    fn on_cancelled(&self, state: &str) {
        self.push(format!("cancelled:{state}"));
    }
    fn on_workflow_timeout(&self, elapsed: std::time::Duration, limit: std::time::Duration) {
        self.push(format!("workflow_timeout:{elapsed:?}:{limit:?}"));
    }
}

/// Compile-time check that `T` is `Send + Sync`.
pub fn assert_send_sync<T: Send + Sync + ?Sized>() {}

/// Compile-time check that a value (typically a future) is `Send`.
pub fn assert_send<T: Send>(value: T) -> T {
    value
}

/// A shared, ordered log of strings (resource lifecycle events and the like).
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self, entry: &str) -> usize {
        self.entries().iter().filter(|e| *e == entry).count()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A resource that logs `setup:{name}` / `teardown:{name}` and can be told to fail.
pub struct Probe {
    pub name: &'static str,
    pub log: Log,
    pub fail_setup: bool,
    pub fail_teardown: bool,
    pub health: HealthStatus,
}

impl Probe {
    pub fn new(name: &'static str, log: &Log) -> Self {
        Self {
            name,
            log: log.clone(),
            fail_setup: false,
            fail_teardown: false,
            health: HealthStatus::Healthy,
        }
    }

    pub fn failing_setup(mut self) -> Self {
        self.fail_setup = true;
        self
    }

    pub fn failing_teardown(mut self) -> Self {
        self.fail_teardown = true;
        self
    }

    pub fn with_health(mut self, health: HealthStatus) -> Self {
        self.health = health;
        self
    }
}

#[resource]
impl Resource for Probe {
    async fn setup(&self) -> Result<(), CanoError> {
        self.log.push(format!("setup:{}", self.name));
        if self.fail_setup {
            return Err(CanoError::generic(format!("setup of {} failed", self.name)));
        }
        Ok(())
    }

    async fn teardown(&self) -> Result<(), CanoError> {
        self.log.push(format!("teardown:{}", self.name));
        if self.fail_teardown {
            return Err(CanoError::generic(format!(
                "teardown of {} failed",
                self.name
            )));
        }
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        self.health.clone()
    }
}

/// An in-memory [`CheckpointStore`] that honours the contract (duplicate sequences are
/// rejected with a `conflict` error, rows come back sorted, unknown ids are empty) and
/// keeps an audit trail of every row ever appended. Failures can be injected.
#[derive(Default)]
pub struct TestStore {
    live: Mutex<HashMap<String, Vec<CheckpointRow>>>,
    audit: Mutex<Vec<(String, CheckpointRow)>>,
    fail_append_at: Mutex<Option<u64>>,
    fail_load: Mutex<bool>,
    fail_clear: Mutex<bool>,
}

impl TestStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The live log of `id`, by sequence.
    pub fn rows(&self, id: &str) -> Vec<CheckpointRow> {
        let mut rows = self
            .live
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default();
        rows.sort_by_key(|r| r.sequence);
        rows
    }

    /// `(sequence, state, task_id)` of the live log of `id`.
    pub fn summary(&self, id: &str) -> Vec<(u64, String, String)> {
        self.rows(id)
            .into_iter()
            .map(|r| (r.sequence, r.state, r.task_id))
            .collect()
    }

    /// Every row ever appended for `id` (cleared or not), in append order.
    pub fn audit_rows(&self, id: &str) -> Vec<CheckpointRow> {
        self.audit
            .lock()
            .unwrap()
            .iter()
            .filter(|(wid, _)| wid == id)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// `(sequence, state, task_id)` of every row ever appended for `id`, in append order.
    pub fn audit(&self, id: &str) -> Vec<(u64, String, String)> {
        self.audit_rows(id)
            .into_iter()
            .map(|r| (r.sequence, r.state, r.task_id))
            .collect()
    }

    /// Put rows into the live log directly, as if an earlier process had written them.
    pub fn seed(&self, id: &str, rows: &[(u64, &str, &str)]) {
        let mut live = self.live.lock().unwrap();
        let log = live.entry(id.to_string()).or_default();
        for (seq, state, task) in rows {
            log.push(CheckpointRow::new(*seq, *state, *task));
        }
    }

    /// Make the append of the row with this sequence fail with `disk full`.
    pub fn fail_append_at(&self, sequence: u64) {
        *self.fail_append_at.lock().unwrap() = Some(sequence);
    }

    pub fn fail_load(&self) {
        *self.fail_load.lock().unwrap() = true;
    }

    pub fn fail_clear(&self) {
        *self.fail_clear.lock().unwrap() = true;
    }
}

#[checkpoint_store]
impl CheckpointStore for TestStore {
    async fn append(&self, workflow_id: &str, row: CheckpointRow) -> Result<(), CanoError> {
        if *self.fail_append_at.lock().unwrap() == Some(row.sequence) {
            return Err(CanoError::checkpoint_store("disk full"));
        }
        let mut live = self.live.lock().unwrap();
        let log = live.entry(workflow_id.to_string()).or_default();
        if log.iter().any(|r| r.sequence == row.sequence) {
            return Err(CanoError::checkpoint_store(format!(
                "checkpoint conflict: {workflow_id} already has sequence {}",
                row.sequence
            )));
        }
        log.push(row.clone());
        self.audit
            .lock()
            .unwrap()
            .push((workflow_id.to_string(), row));
        Ok(())
    }

    async fn load_run(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, CanoError> {
        if *self.fail_load.lock().unwrap() {
            return Err(CanoError::checkpoint_store("store offline"));
        }
        Ok(self.rows(workflow_id))
    }

    async fn clear(&self, workflow_id: &str) -> Result<(), CanoError> {
        if *self.fail_clear.lock().unwrap() {
            return Err(CanoError::checkpoint_store("clear refused"));
        }
        self.live.lock().unwrap().remove(workflow_id);
        Ok(())
    }
}

/// Owned `(sequence, state, task_id)` triples, for comparing with [`TestStore::summary`]
/// and [`TestStore::audit`].
pub fn triples(rows: &[(u64, &str, &str)]) -> Vec<(u64, String, String)> {
    rows.iter()
        .map(|(seq, state, task)| (*seq, state.to_string(), task.to_string()))
        .collect()
}

/// A shared circuit breaker with the given policy.
pub fn breaker(
    failure_threshold: u32,
    reset_timeout: std::time::Duration,
    half_open_max_calls: u32,
) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(CircuitPolicy {
        failure_threshold,
        reset_timeout,
        half_open_max_calls,
    }))
}

/// Make one call through `b` and report it failed.
pub fn fail_once(b: &Arc<CircuitBreaker>) {
    let permit = b.try_acquire().expect("the breaker admits this call");
    b.record_failure(permit);
}

/// Make one call through `b` and report it succeeded.
pub fn succeed_once(b: &Arc<CircuitBreaker>) {
    let permit = b.try_acquire().expect("the breaker admits this call");
    b.record_success(permit);
}

/// Every `(workflow_id, sequence)` key of a checkpoint database's table, read with redb
/// directly (read-only; no store may have the file open).
#[cfg(feature = "recovery")]
pub fn redb_keys(path: &std::path::Path) -> Vec<(String, u64)> {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};
    const TABLE: TableDefinition<'static, (&'static str, u64), &'static [u8]> =
        TableDefinition::new("cano_checkpoints");
    let db = redb::ReadOnlyDatabase::open(path).expect("open read-only");
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(TABLE).unwrap();
    table
        .iter()
        .unwrap()
        .map(|item| {
            let (key, _) = item.unwrap();
            let (id, seq) = key.value();
            (id.to_string(), seq)
        })
        .collect()
}
