//! The scheduler's builder, `start`, the public surface (including the handle's `Debug`
//! and `Clone`) and the resource lifecycle.
#![cfg(feature = "scheduler")]

mod scheduler_support;
mod support;

use cano::prelude::*;
use scheduler_support::{Job, Step, info, settle, workflow, workflow_with};
use std::borrow::Cow;
use std::time::Duration;
use support::{Log, Probe, assert_send, assert_send_sync};

fn config_message(err: CanoError) -> String {
    match err {
        CanoError::Configuration(msg) => msg,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn every_form_of_registration_counts_as_a_flow() {
    let job = Job::new();
    let mut s = Scheduler::new();
    assert!(s.is_empty());
    assert_eq!(s.len(), 0);
    s.every("every", workflow(&job), Step::Run, Duration::from_millis(5))
        .unwrap();
    s.every_seconds("seconds", workflow(&job), Step::Run, 1)
        .unwrap();
    s.every_minutes("minutes", workflow(&job), Step::Run, 2)
        .unwrap();
    s.every_hours("hours", workflow(&job), Step::Run, 3)
        .unwrap();
    s.every("zero", workflow(&job), Step::Run, Duration::ZERO)
        .unwrap();
    s.cron("cron", workflow(&job), Step::Run, "0 */5 * * * *")
        .unwrap();
    s.manual("manual", workflow(&job), Step::Run).unwrap();
    assert_eq!(s.len(), 7);
    assert!(!s.is_empty());
    for id in [
        "every", "seconds", "minutes", "hours", "zero", "cron", "manual",
    ] {
        assert!(s.contains(id), "{id}");
    }
    assert!(!s.contains("missing"));
}

#[test]
fn cron_accepts_seconds_fields_years_and_shorthands() {
    let job = Job::new();
    let mut s = Scheduler::new();
    let exprs = [
        "0 */5 * * * *",
        "0 0 0 * * *",
        "* * * * * *",
        "0 0 9 * * MON",
        "0 30 9 1 1 * 2099",
        "@daily",
        "@hourly",
        "@weekly",
        "@monthly",
        "@yearly",
    ];
    for (i, expr) in exprs.iter().enumerate() {
        s.cron(&format!("c{i}"), workflow(&job), Step::Run, expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
    }
    assert_eq!(s.len(), exprs.len());
}

#[test]
fn a_bad_cron_expression_is_a_configuration_error_naming_it() {
    let job = Job::new();
    let mut s = Scheduler::new();
    for expr in [
        "invalid cron",
        "*/5 * * * *",
        "",
        "61 * * * * *",
        "0 0 25 * * *",
    ] {
        let msg = config_message(s.cron("c", workflow(&job), Step::Run, expr).unwrap_err());
        let cause = <cron::Schedule as std::str::FromStr>::from_str(expr).unwrap_err();
        assert_eq!(msg, format!("Invalid cron expression: {cause}"));
        // The cause starts with the expression itself.
        assert!(
            msg.starts_with(&format!("Invalid cron expression: {expr}\n")),
            "{msg:?}"
        );
    }
    assert!(s.is_empty(), "a rejected flow is not registered");
    let err = s
        .cron("c", workflow(&job), Step::Run, "invalid cron")
        .unwrap_err();
    assert_eq!(err.category(), "configuration");
    assert!(
        err.to_string()
            .starts_with("Configuration error: Invalid cron expression: ")
    );
}

#[test]
fn duplicate_ids_are_rejected_whatever_the_kind() {
    let job = Job::new();
    let mut s = Scheduler::new();
    s.manual("dup", workflow(&job), Step::Run).unwrap();
    let expected = CanoError::configuration("Flow 'dup' already exists");
    assert_eq!(
        s.manual("dup", workflow(&job), Step::Run),
        Err(expected.clone())
    );
    assert_eq!(
        s.every_seconds("dup", workflow(&job), Step::Run, 1),
        Err(expected.clone())
    );
    assert_eq!(
        s.cron("dup", workflow(&job), Step::Run, "* * * * * *"),
        Err(expected.clone())
    );
    assert_eq!(
        s.cron("dup", workflow(&job), Step::Run, "not even cron"),
        Err(expected)
    );
    assert_eq!(s.len(), 1);
}

#[test]
fn set_backoff_needs_a_registered_flow() {
    let job = Job::new();
    let mut s = Scheduler::new();
    s.manual("known", workflow(&job), Step::Run).unwrap();
    assert_eq!(s.set_backoff("known", BackoffPolicy::with_trip(2)), Ok(()));
    assert_eq!(
        s.set_backoff("missing", BackoffPolicy::default()),
        Err(CanoError::configuration(
            "Flow 'missing' not found — cannot set backoff"
        ))
    );
}

#[test]
fn default_is_new_and_schedule_describes_kinds() {
    let s: Scheduler<Step> = Scheduler::default();
    assert!(s.is_empty());
    let kinds = [
        Schedule::Every(Duration::from_secs(1)),
        Schedule::Cron("0 0 0 * * *".into()),
        Schedule::Manual,
    ];
    let copies = kinds.clone();
    assert_eq!(format!("{copies:?}"), format!("{kinds:?}"));
    assert_eq!(format!("{:?}", kinds[0]), "Every(1s)");
}

#[tokio::test(start_paused = true)]
async fn fresh_flows_are_idle_and_listed_in_registration_order() {
    let job = Job::new();
    let mut s = Scheduler::new();
    s.manual("b", workflow(&job), Step::Run).unwrap();
    s.cron("a", workflow(&job), Step::Run, "0 0 0 1 1 * 2099")
        .unwrap();
    s.manual("c", workflow(&job), Step::Run).unwrap();
    let running = s.start().await.unwrap();
    let fresh = info(&running, "a").await;
    assert_eq!(fresh.id, "a");
    assert_eq!(fresh.status, Status::Idle);
    assert_eq!(fresh.run_count, 0);
    assert_eq!(fresh.last_run, None);
    assert_eq!(fresh.failure_streak, 0);
    assert_eq!(fresh.next_eligible, None);
    let ids: Vec<String> = running.list().await.into_iter().map(|f| f.id).collect();
    assert_eq!(ids, ["b", "a", "c"]);
    assert!(running.status("missing").await.is_none());
    assert!(!running.has_running_flows().await);
    running.stop().await.unwrap();
    assert_eq!(job.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn start_validates_every_flow_before_setting_anything_up() {
    let log = Log::new();
    let job = Job::new();

    let mut s = Scheduler::new();
    s.manual(
        "fine",
        workflow_with(&job, Resources::new().insert("r", Probe::new("fine", &log))),
        Step::Run,
    )
    .unwrap();
    let no_exit = Workflow::bare().register(Step::Run, scheduler_support::JobTask(job.clone()));
    s.manual("no-exit", no_exit, Step::Run).unwrap();
    let err = s.start().await.unwrap_err();
    assert_eq!(err.category(), "configuration", "{err}");

    let mut s = Scheduler::new();
    s.manual(
        "fine",
        workflow_with(&job, Resources::new().insert("r", Probe::new("fine", &log))),
        Step::Run,
    )
    .unwrap();
    // `Done` is an exit state, not a registered task state: not a valid initial state.
    let only_exit = Workflow::bare().add_exit_state(Step::Done);
    s.every_seconds("bad-initial", only_exit, Step::Run, 1)
        .unwrap();
    let err = s.start().await.unwrap_err();
    assert_eq!(err.category(), "configuration", "{err}");

    assert!(log.entries().is_empty(), "{:?}", log.entries());
    assert_eq!(job.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn resources_are_set_up_once_in_order_and_torn_down_once_in_reverse() {
    let log = Log::new();
    let job = Job::new();
    let mut s = Scheduler::new();
    for (name, first, second) in [("a", "a1", "a2"), ("b", "b1", "b2"), ("c", "c1", "c2")] {
        let resources = Resources::new()
            .insert("first", Probe::new(first, &log))
            .insert("second", Probe::new(second, &log));
        s.every(
            name,
            workflow_with(&job, resources),
            Step::Run,
            Duration::from_secs(1),
        )
        .unwrap();
    }
    let running = s.start().await.unwrap();
    assert_eq!(
        log.entries(),
        [
            "setup:a1", "setup:a2", "setup:b1", "setup:b2", "setup:c1", "setup:c2"
        ]
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(info(&running, "a").await.run_count, 4);
    assert_eq!(log.entries().len(), 6, "no setup or teardown per run");
    running.stop().await.unwrap();
    assert_eq!(
        log.entries()[6..],
        [
            "teardown:c2",
            "teardown:c1",
            "teardown:b2",
            "teardown:b1",
            "teardown:a2",
            "teardown:a1"
        ]
    );
    running.stop().await.unwrap();
    assert_eq!(log.entries().len(), 12, "teardown happens once");
}

#[tokio::test(start_paused = true)]
async fn a_failed_setup_rolls_back_earlier_flows_and_starts_nothing() {
    let log = Log::new();
    let job = Job::new();
    let mut s = Scheduler::new();
    s.every(
        "a",
        workflow_with(&job, Resources::new().insert("r", Probe::new("a", &log))),
        Step::Run,
        Duration::from_millis(10),
    )
    .unwrap();
    s.every(
        "b",
        workflow_with(&job, Resources::new().insert("r", Probe::new("b", &log))),
        Step::Run,
        Duration::from_millis(10),
    )
    .unwrap();
    let broken = Resources::new()
        .insert("ok", Probe::new("c-ok", &log))
        .insert("bad", Probe::new("c-bad", &log).failing_setup());
    s.every(
        "c",
        workflow_with(&job, broken),
        Step::Run,
        Duration::from_millis(10),
    )
    .unwrap();
    s.manual(
        "d",
        workflow_with(&job, Resources::new().insert("r", Probe::new("d", &log))),
        Step::Run,
    )
    .unwrap();

    let err = s.start().await.unwrap_err();
    assert_eq!(err, CanoError::generic("setup of c-bad failed"));
    assert_eq!(
        log.entries(),
        [
            "setup:a",
            "setup:b",
            "setup:c-ok",
            "setup:c-bad",
            "teardown:c-ok",
            "teardown:b",
            "teardown:a"
        ]
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(job.calls(), 0, "nothing was spawned");
}

#[tokio::test(start_paused = true)]
async fn debug_lists_flows_and_whether_the_driver_finished() {
    let job = Job::new();
    let mut s = Scheduler::new();
    s.manual("alpha", workflow(&job), Step::Run).unwrap();
    s.cron("beta", workflow(&job), Step::Run, "@yearly")
        .unwrap();
    let running = s.start().await.unwrap();
    assert_eq!(
        format!("{running:?}"),
        r#"RunningScheduler { flows: ["alpha", "beta"], driver_finished: false, .. }"#
    );
    running.stop().await.unwrap();
    settle().await;
    assert_eq!(
        format!("{running:?}"),
        r#"RunningScheduler { flows: ["alpha", "beta"], driver_finished: true, .. }"#
    );
}

#[test]
fn handles_and_futures_are_send_and_sync() {
    assert_send_sync::<RunningScheduler<Step>>();
    assert_send_sync::<Scheduler<Step>>();
    assert_send_sync::<FlowInfo>();
    assert_send_sync::<Status>();
    assert_send_sync::<BackoffPolicy>();
    assert_send_sync::<Schedule>();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s: Scheduler<Step> = Scheduler::new();
        let running = assert_send(s.start()).await.unwrap();
        let _ = assert_send(running.trigger("x")).await;
        let _ = assert_send(running.reset_flow("x")).await;
        let _ = assert_send(running.status("x")).await;
        let _ = assert_send(running.list()).await;
        let _ = assert_send(running.has_running_flows()).await;
        assert_send(running.stop()).await.unwrap();
        assert_send(running.wait()).await.unwrap();
        assert_send(running.stop_with_timeout(Duration::from_secs(1)))
            .await
            .unwrap();
    });
}

/// A resource key without `Clone`: the handle is cloneable anyway.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Key(Cow<'static, str>);

impl From<&'static str> for Key {
    fn from(s: &'static str) -> Self {
        Key(Cow::Borrowed(s))
    }
}

#[tokio::test(start_paused = true)]
async fn the_handle_clones_without_a_clone_resource_key() {
    let s: Scheduler<Step, Key> = Scheduler::new();
    let running = s.start().await.unwrap();
    let other = running.clone();
    other.stop().await.unwrap();
    running.wait().await.unwrap();
}

#[test]
fn the_root_and_module_paths_exist() {
    let _: fn() -> cano::Scheduler<Step> = cano::Scheduler::new;
    let _: fn() -> cano::scheduler::Scheduler<Step> = cano::scheduler::Scheduler::new;
    let _: Option<cano::RunningScheduler<Step>> = None;
    let _: Option<cano::scheduler::RunningScheduler<Step>> = None;
    let _: cano::BackoffPolicy = cano::scheduler::BackoffPolicy::default();
    let _: Option<(cano::FlowInfo, cano::scheduler::FlowInfo)> = None;
    let _: (cano::Status, cano::scheduler::Status) = (cano::Status::Idle, Status::Running);
    let _: (cano::Schedule, cano::scheduler::Schedule) = (Schedule::Manual, Schedule::Manual);
}
