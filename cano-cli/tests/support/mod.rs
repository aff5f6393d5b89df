//! Real redb stores for the CLI tests, written by running workflows through `cano`.
#![allow(dead_code)]

use cano::cancel::CancellationToken;
use cano::prelude::*;
use cano::run_data::RunData;
use cano::signal::SignalStore;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub mod pg;
/// The library tests' throwaway PostgreSQL server, shared rather than copied.
#[path = "../../../cano/tests/pg_support/mod.rs"]
mod pg_support;

/// A run that failed going forward (in `Load`, after `Fetch` wrote run data).
pub const FAILED: &str = "import-7";
/// A run parked on a one-hour timer.
pub const TIMER: &str = "reminder-3";
/// A run waiting for the signal `approval`.
pub const SIGNAL: &str = "order-1042";
/// A saga whose rollback stopped with one compensation (the refund) not done.
pub const ROLLBACK: &str = "order-1043";

/// The `cano` binary, with a clean environment for `--store`.
pub fn cano() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("cano").expect("the cano binary is built");
    cmd.env_remove("CANO_STORE");
    cmd
}

/// Start `cano dashboard` on `store` on a free local port (with `token`, if any); the
/// process (kill it when done) and the `host:port` it serves on.
pub fn start_dashboard(store: &str, token: Option<&str>) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cano"));
    cmd.args(["dashboard", "--store", store, "--listen", "127.0.0.1:0"])
        .env_remove("CANO_DASHBOARD_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(token) = token {
        cmd.args(["--token", token]);
    }
    let mut child = cmd.spawn().expect("start the dashboard");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the dashboard's first line");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr)
}

/// Run `cano` with `args`, expect success, and return its stdout.
pub fn stdout_of<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = cano()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).expect("UTF-8 on stdout")
}

/// `cano runs list --json` on `store` (with `extra` options), parsed.
pub fn list_json(store: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = stdout_of(
        ["runs", "list", "--json", "--store", store]
            .iter()
            .chain(extra),
    );
    serde_json::from_str(&out).expect("JSON on stdout")
}

/// The ids of runs listed as JSON, joined by spaces.
pub fn ids(runs: &[serde_json::Value]) -> String {
    let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    ids.join(" ")
}

/// `--store redb:PATH`.
pub fn store_arg(path: &Path) -> String {
    format!("redb:{}", path.display())
}

/// A temp dir holding `runs.redb` with the four runs above, closed.
pub fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("runs.redb");
    runtime().block_on(async {
        let store = Arc::new(RedbCheckpointStore::new(&path).expect("create the store"));
        write_runs(&store).await;
    });
    (dir, path)
}

/// Run the four workflows above on `store` (a redb or a PostgreSQL one), leaving their
/// runs in it.
pub async fn write_runs<S: SignalStore>(store: &Arc<S>) {
    failed_run(store).await;
    timer_run(store).await;
    signal_run(store).await;
    rollback_run(store).await;
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    Fetch,
    Load,
    Wait,
    AwaitApproval,
    Ship,
    Rejected,
    Reserve,
    Charge,
    Send,
    Done,
}

/// A task that moves to `next`, or fails with `fail` when it is set.
struct Go {
    name: &'static str,
    next: Step,
    fail: Option<&'static str>,
}

#[task(state = Step)]
impl Go {
    fn name(&self) -> Cow<'static, str> {
        self.name.into()
    }

    /// One attempt: a failing task fails the run at once.
    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run_bare(&self) -> Result<TaskResult<Step>, CanoError> {
        if let Some(why) = self.fail {
            return Err(CanoError::task_execution(why));
        }
        if self.name == "fetch" {
            let data = RunData::current()?;
            data.put("source", "s3://bucket/2026-12-05.csv")?;
            data.put("batches", 12)?;
        }
        Ok(TaskResult::Single(self.next.clone()))
    }
}

fn go(name: &'static str, next: Step) -> Go {
    Go {
        name,
        next,
        fail: None,
    }
}

async fn failed_run<S: SignalStore>(store: &Arc<S>) {
    let wf = Workflow::bare()
        .register(Step::Fetch, go("fetch", Step::Load))
        .register(
            Step::Load,
            Go {
                name: "load",
                next: Step::Done,
                fail: Some("database refused the batch"),
            },
        )
        .add_exit_state(Step::Done)
        .with_checkpoint_store(store.clone())
        .with_run_data()
        .with_workflow_id(FAILED);
    let err = wf.orchestrate(Step::Fetch).await.unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}

struct Later;

#[task::timer(state = Step)]
impl Later {
    fn name(&self) -> Cow<'static, str> {
        "later".into()
    }

    async fn wait(&self, _res: &Resources) -> Result<TimerOutcome, CanoError> {
        Ok(TimerOutcome::Duration(Duration::from_secs(3600)))
    }

    async fn after_wait(&self, _res: &Resources) -> Result<TaskResult<Step>, CanoError> {
        Ok(TaskResult::Single(Step::Send))
    }
}

/// Run `wf` from `start` until its log's last row is of `kind`, then cancel it.
async fn run_until<S: SignalStore>(
    store: &Arc<S>,
    wf: Workflow<Step>,
    start: Step,
    id: &str,
    kind: RowKind,
) {
    let (handle, token) = CancellationToken::new();
    let run = tokio::spawn(async move { wf.orchestrate_with_token(start, token).await });
    for _ in 0..500 {
        let rows = store.load_run(id).await.expect("read");
        if rows.last().is_some_and(|r| r.kind == kind) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.cancel();
    let err = run.await.expect("no panic").unwrap_err();
    assert!(err.is_cancelled(), "{err}");
}

async fn timer_run<S: SignalStore>(store: &Arc<S>) {
    let wf = Workflow::bare()
        .register(Step::Fetch, go("fetch_reminder", Step::Wait))
        .register(Step::Wait, Later)
        .register(Step::Send, go("send", Step::Done))
        .add_exit_state(Step::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id(TIMER);
    run_until(store, wf, Step::Fetch, TIMER, RowKind::Timer).await;
}

#[derive(Debug, serde::Deserialize)]
pub struct Approval {
    pub approved: bool,
    pub by: String,
}

struct AwaitApproval;

#[task::signal(state = Step)]
impl AwaitApproval {
    type Payload = Approval;

    fn name(&self) -> Cow<'static, str> {
        "await_approval".into()
    }

    fn signal(&self) -> Cow<'static, str> {
        "approval".into()
    }

    fn timeout(&self) -> Option<(Duration, Step)> {
        Some((Duration::from_secs(7 * 24 * 3600), Step::Rejected))
    }

    async fn on_signal(
        &self,
        _res: &Resources,
        a: Approval,
    ) -> Result<TaskResult<Step>, CanoError> {
        RunData::current()?.put("approved_by", a.by)?;
        Ok(TaskResult::Single(if a.approved {
            Step::Ship
        } else {
            Step::Rejected
        }))
    }
}

/// The approval workflow: `Fetch → AwaitApproval → Ship | Rejected → Done`.
pub fn approval_workflow<S: SignalStore>(store: Arc<S>) -> Workflow<Step> {
    Workflow::bare()
        .register(Step::Fetch, go("submit", Step::AwaitApproval))
        .register_signal(Step::AwaitApproval, AwaitApproval)
        .register(Step::Ship, go("ship", Step::Done))
        .register(Step::Rejected, go("rejected", Step::Done))
        .add_exit_state(Step::Done)
        .with_signal_store(store)
        .with_run_data()
        .with_workflow_id(SIGNAL)
}

/// Send [`SIGNAL`] its approval with `cano runs signal` twice on `store` (the second
/// changes nothing), check that `runs show` lists it pending, and return what the first
/// send printed.
pub fn send_approval(store: &str) -> String {
    let send = || {
        cano()
            .args(["runs", "signal", SIGNAL, "approval", "--id", "click-1"])
            .args(["--payload", r#"{"approved": true, "by": "ana"}"#])
            .args(["--store", store])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let first = String::from_utf8(send()).expect("UTF-8 on stdout");
    assert!(
        first.contains("sent signal \"approval\" (id \"click-1\") to run \"order-1042\""),
        "{first}"
    );
    let again = String::from_utf8(send()).expect("UTF-8 on stdout");
    assert!(again.contains("nothing changed"), "{again}");
    let shown = stdout_of(["runs", "show", SIGNAL, "--store", store]);
    for says in [
        "pending signal \"approval\" (id \"click-1\"): {\"approved\":true,\"by\":\"ana\"}",
        "1 signal(s) sent and not consumed yet",
    ] {
        assert!(shown.contains(says), "{says:?} not in {shown}");
    }
    first
}

/// The program that owns the workflow resumes [`SIGNAL`] on `store`: it consumes the
/// approval sent before without waiting, ships, and finishes, clearing the run.
pub async fn resume_approved<S: SignalStore>(store: Arc<S>) {
    let trail = Arc::new(Trail::default());
    let wf = approval_workflow(store.clone()).with_observer(trail.clone());
    let end = tokio::time::timeout(Duration::from_secs(10), wf.resume_from(SIGNAL))
        .await
        .expect("the signal was in the store: no wait")
        .unwrap();
    assert_eq!(end, Step::Done);
    assert!(trail.0.lock().unwrap().contains(&"Ship".to_string()));
    assert!(store.load_run(SIGNAL).await.unwrap().is_empty());
    assert!(
        store
            .pending_signals(SIGNAL, "approval")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn signal_run<S: SignalStore>(store: &Arc<S>) {
    let wf = approval_workflow(store.clone());
    run_until(store, wf, Step::Fetch, SIGNAL, RowKind::SignalWait).await;
}

/// A saga step named `name` whose compensation fails when `refund_fails`.
struct Saga {
    name: &'static str,
    next: Step,
    fail: bool,
    refund_fails: bool,
}

#[saga::task(state = Step)]
impl Saga {
    type Output = serde_json::Value;

    fn name(&self) -> Cow<'static, str> {
        self.name.into()
    }

    fn config(&self) -> TaskConfig {
        TaskConfig::minimal()
    }

    async fn run(
        &self,
        _res: &Resources,
    ) -> Result<(TaskResult<Step>, serde_json::Value), CanoError> {
        if self.fail {
            return Err(CanoError::task_execution("courier rejected the parcel"));
        }
        Ok((
            TaskResult::Single(self.next.clone()),
            serde_json::json!({ "done_by": self.name }),
        ))
    }

    async fn compensate(
        &self,
        _res: &Resources,
        _output: serde_json::Value,
    ) -> Result<(), CanoError> {
        if self.refund_fails {
            return Err(CanoError::task_execution("payment provider unavailable"));
        }
        Ok(())
    }
}

async fn rollback_run<S: SignalStore>(store: &Arc<S>) {
    let saga = |name, next, fail, refund_fails| Saga {
        name,
        next,
        fail,
        refund_fails,
    };
    let wf = Workflow::bare()
        .register_with_compensation(Step::Reserve, saga("reserve", Step::Charge, false, false))
        .register_with_compensation(Step::Charge, saga("charge", Step::Ship, false, true))
        .register_with_compensation(Step::Ship, saga("ship", Step::Done, true, false))
        .add_exit_state(Step::Done)
        .with_checkpoint_store(store.clone())
        .with_workflow_id(ROLLBACK);
    let err = wf.orchestrate(Step::Reserve).await.unwrap_err();
    assert!(err.to_string().contains("courier"), "{err}");
}

/// Add `n` failed runs `bulk-0`, `bulk-1`, … to the store at `path` (closed afterwards).
pub fn add_failed_runs(path: &Path, n: usize) {
    runtime().block_on(async {
        let store = Arc::new(RedbCheckpointStore::new(path).expect("open the store"));
        for i in 0..n {
            let wf = Workflow::bare()
                .register(
                    Step::Load,
                    Go {
                        name: "load",
                        next: Step::Done,
                        fail: Some("disk full"),
                    },
                )
                .add_exit_state(Step::Done)
                .with_checkpoint_store(store.clone())
                .with_workflow_id(format!("bulk-{i}"));
            assert!(wf.orchestrate(Step::Load).await.is_err());
        }
    });
}

/// The states a run entered, as an observer saw them.
#[derive(Default)]
pub struct Trail(pub std::sync::Mutex<Vec<String>>);

impl WorkflowObserver for Trail {
    fn on_state_enter(&self, state: &str) {
        self.0.lock().unwrap().push(state.to_string());
    }
}

/// A run whose log does not follow the format: its timer row's deadline is not a number.
pub const MALFORMED: &str = "broken-1";

/// Add [`MALFORMED`] to the store at `path` (closed afterwards).
pub fn add_malformed_run(path: &Path) {
    runtime().block_on(async {
        let store = RedbCheckpointStore::new(path).expect("open the store");
        let mut timer = CheckpointRow::new(1, "Wait", "later");
        timer.kind = RowKind::Timer;
        timer.output_blob = Some(b"soon".to_vec());
        for row in [CheckpointRow::new(0, "Wait", "later"), timer] {
            store.append(MALFORMED, row).await.expect("append");
        }
    });
}
