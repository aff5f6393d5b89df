//! Helpers shared by the integration tests.
#![allow(dead_code)]

use cano::prelude::*;
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
}

/// Compile-time check that `T` is `Send + Sync`.
pub fn assert_send_sync<T: Send + Sync + ?Sized>() {}

/// Compile-time check that a value (typically a future) is `Send`.
pub fn assert_send<T: Send>(value: T) -> T {
    value
}
