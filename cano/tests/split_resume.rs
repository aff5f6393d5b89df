//! A split records each member that finished (a `SplitMember` row), so that a resumed
//! split runs only the members that had not: a member that sent an email does not send it
//! again. Paused clock; a dropped run future stands for a crash.

use cano::MemoryCheckpointStore;
use cano::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum S {
    Notify,
    Done,
}

type Sent = Arc<Mutex<Vec<usize>>>;

/// Member `i` sleeps `i * 10` s, then "sends an email" (records `i`).
struct Email {
    i: usize,
    sent: Sent,
}

#[task(state = S)]
impl Email {
    async fn run_bare(&self) -> Result<TaskResult<S>, CanoError> {
        tokio::time::sleep(Duration::from_secs(10 * self.i as u64)).await;
        self.sent.lock().unwrap().push(self.i);
        Ok(TaskResult::Single(S::Done))
    }
}

fn workflow(
    sent: &Sent,
    store: &Arc<MemoryCheckpointStore>,
    strategy: JoinStrategy,
) -> Workflow<S> {
    let members = (0..5).map(|i| Email {
        i,
        sent: sent.clone(),
    });
    Workflow::bare()
        .register_split(
            S::Notify,
            members.collect(),
            JoinConfig::new(strategy, S::Done),
        )
        .add_exit_state(S::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id("mail-1")
}

fn sent(sent: &Sent) -> Vec<usize> {
    let mut all = sent.lock().unwrap().clone();
    all.sort_unstable();
    all
}

async fn kinds(store: &MemoryCheckpointStore) -> Vec<RowKind> {
    store
        .load_run("mail-1")
        .await
        .unwrap()
        .iter()
        .map(|r| r.kind)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_resumed_split_runs_only_the_members_that_had_not_finished() {
    let (log, store) = (Sent::default(), Arc::new(MemoryCheckpointStore::new()));
    let wf = workflow(&log, &store, JoinStrategy::All);
    // Crash at 15 s: members 0 and 1 are done.
    let crashed = tokio::time::timeout(Duration::from_secs(15), wf.orchestrate(S::Notify)).await;
    assert!(crashed.is_err());
    assert_eq!(sent(&log), [0, 1]);
    assert_eq!(
        kinds(&store).await,
        [
            RowKind::StateEntry,
            RowKind::SplitMember,
            RowKind::SplitMember
        ]
    );
    // Crash again 25 s into the resume: members 2 (20 s) is done, 3 and 4 are not.
    let again = tokio::time::timeout(Duration::from_secs(25), wf.resume_from("mail-1")).await;
    assert!(again.is_err());
    assert_eq!(sent(&log), [0, 1, 2]);
    assert_eq!(wf.resume_from("mail-1").await, Ok(S::Done));
    assert_eq!(sent(&log), [0, 1, 2, 3, 4], "every email sent exactly once");
    assert!(kinds(&store).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_finished_member_satisfies_an_any_join_on_resume() {
    let (log, store) = (Sent::default(), Arc::new(MemoryCheckpointStore::new()));
    // `Any` stops at the first success, so an uninterrupted run ends at once after member 0.
    // Record member 0's success by hand as a crashed run would have left it.
    let wf = workflow(&log, &store, JoinStrategy::All);
    let crashed = tokio::time::timeout(Duration::from_secs(5), wf.orchestrate(S::Notify)).await;
    assert!(crashed.is_err());
    assert_eq!(sent(&log), [0]);
    let any = workflow(&log, &store, JoinStrategy::Any);
    let started = tokio::time::Instant::now();
    assert_eq!(any.resume_from("mail-1").await, Ok(S::Done));
    assert_eq!(started.elapsed(), Duration::ZERO, "nothing ran again");
    assert_eq!(sent(&log), [0]);
}

#[tokio::test(start_paused = true)]
async fn a_split_without_a_store_writes_nothing_and_runs_everything() {
    let log = Sent::default();
    let members = (0..3).map(|i| Email {
        i,
        sent: log.clone(),
    });
    let wf = Workflow::bare()
        .register_split(
            S::Notify,
            members.collect(),
            JoinConfig::new(JoinStrategy::All, S::Done),
        )
        .add_exit_state(S::Done);
    assert_eq!(wf.orchestrate(S::Notify).await, Ok(S::Done));
    assert_eq!(sent(&log), [0, 1, 2]);
}
