//! When flows fire: interval flows (at start, then a fixed delay after each run), cron
//! flows (at wall-clock ticks across minute and day boundaries), and no flow ever
//! overlapping itself. All on Tokio's paused clock.
#![cfg(feature = "scheduler")]

mod scheduler_support;

use cano::prelude::*;
use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use scheduler_support::{Job, Step, close, info, run_times, settle, wait_until, workflow};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Whether `t` is at most a few milliseconds past a whole second whose time of day
/// satisfies `tick` (a run starts right after its tick: the timer rounds up to 1 ms).
fn just_after(t: DateTime<Utc>, tick: impl Fn(u32, u32, u32) -> bool) -> bool {
    t.nanosecond() < 5_000_000 && tick(t.hour(), t.minute(), t.second())
}

/// Whether consecutive times are `secs` seconds apart, give or take a few milliseconds
/// (the timer rounds wake-ups up to the millisecond).
fn spaced(times: &[DateTime<Utc>], secs: i64) -> bool {
    times
        .windows(2)
        .all(|w| ((w[1] - w[0]).num_milliseconds() - secs * 1000).abs() <= 3)
}

#[tokio::test(start_paused = true)]
async fn an_interval_flow_runs_at_start_then_a_fixed_delay_after_each_run_ends() {
    let job = Job::new().taking(secs(2));
    let mut s = Scheduler::new();
    s.every("tick", workflow(&job), Step::Run, secs(10))
        .unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(secs(40)).await;
    let starts = job.starts();
    let expected = [0, 12, 24, 36].map(secs);
    assert_eq!(starts.len(), expected.len(), "{starts:?}");
    for (got, want) in starts.iter().zip(expected) {
        assert!(close(*got, want, 10), "{starts:?}");
    }
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn interval_runs_keep_their_spacing_across_minute_and_day_boundaries() {
    let job = Job::new();
    let mut s = Scheduler::new();
    s.every_hours("hourly", workflow(&job), Step::Run, 1)
        .unwrap();
    s.every_seconds("seconds", workflow(&job), Step::Run, 25)
        .unwrap();
    let running = s.start().await.unwrap();
    settle().await;
    let first = info(&running, "hourly").await.last_run.unwrap();

    // Seconds: 25 s apart whatever the minute, so the runs cross minute boundaries.
    let times = run_times(&running, "seconds", secs(1), secs(130)).await;
    assert_eq!(times.len(), 5, "{times:?}");
    assert!(spaced(&times, 25), "{times:?}");
    assert!(
        times.windows(2).any(|w| w[0].minute() != w[1].minute()),
        "{times:?}"
    );

    // Hours: after 49 hours the runs span at least two midnights, still exactly 1 h apart.
    tokio::time::sleep(Duration::from_secs(49 * 3600)).await;
    let hourly = info(&running, "hourly").await;
    assert_eq!(hourly.run_count, 50);
    let last = hourly.last_run.unwrap();
    let spread = last - first;
    assert!(
        (spread - TimeDelta::hours(49)).num_milliseconds().abs() < 100,
        "{spread:?}"
    );
    assert!((last.date_naive() - first.date_naive()).num_days() >= 2);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_cron_flow_waits_for_its_first_tick() {
    let job = Job::new();
    let mut s = Scheduler::new();
    // Far in the future: never fires during the test.
    s.cron("later", workflow(&job), Step::Run, "0 0 0 1 1 * 2099")
        .unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3 * 24 * 3600)).await;
    assert_eq!(job.calls(), 0);
    assert_eq!(info(&running, "later").await.status, Status::Idle);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_per_second_cron_fires_on_each_second_across_minute_boundaries() {
    let job = Job::new();
    let mut s = Scheduler::new();
    s.cron("secondly", workflow(&job), Step::Run, "* * * * * *")
        .unwrap();
    s.cron("thrice", workflow(&job), Step::Run, "*/20 * * * * *")
        .unwrap();
    let running = s.start().await.unwrap();

    let times = run_times(&running, "secondly", Duration::from_millis(250), secs(65)).await;
    assert!((64..=66).contains(&times.len()), "{}", times.len());
    assert!(
        times.iter().all(|t| just_after(*t, |_, _, _| true)),
        "{times:?}"
    );
    assert!(spaced(&times, 1), "{times:?}");
    assert!(
        times.iter().any(|t| t.second() == 0),
        "crossed a minute boundary"
    );

    let thrice = running.status("thrice").await.unwrap();
    assert!((3..=4).contains(&thrice.run_count), "{thrice:?}");
    // 125 s hold six or seven ticks, depending on the wall-clock phase at start.
    let times = run_times(&running, "thrice", secs(5), secs(125)).await;
    assert!((6..=7).contains(&times.len()), "{times:?}");
    assert!(
        times
            .iter()
            .all(|t| just_after(*t, |_, _, s| [0, 20, 40].contains(&s))),
        "{times:?}"
    );
    assert!(spaced(&times, 20), "{times:?}");
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_daily_cron_fires_at_each_utc_midnight() {
    let job = Job::new();
    let mut s = Scheduler::new();
    s.cron("nightly", workflow(&job), Step::Run, "0 0 0 * * *")
        .unwrap();
    s.cron("mondays", workflow(&job), Step::Run, "0 0 9 * * MON")
        .unwrap();
    let running = s.start().await.unwrap();
    settle().await;
    let start = chrono::Utc::now();

    let times = run_times(
        &running,
        "nightly",
        secs(600),
        Duration::from_secs(3 * 24 * 3600),
    )
    .await;
    assert_eq!(times.len(), 3, "{times:?}");
    assert!(
        times
            .iter()
            .all(|t| just_after(*t, |h, m, s| (h, m, s) == (0, 0, 0))),
        "{times:?}"
    );
    assert!(spaced(&times, 24 * 3600), "{times:?}");
    // The first run is the first midnight after start.
    assert!(times[0] > start && times[0] - start <= TimeDelta::hours(24));

    // Mondays 09:00 over two more weeks (17 days have passed in all): two or three runs,
    // each on a Monday at 09:00, a week apart.
    tokio::time::sleep(Duration::from_secs(14 * 24 * 3600)).await;
    let mondays = info(&running, "mondays").await;
    assert!((2..=3).contains(&mondays.run_count), "{mondays:?}");
    let last = mondays.last_run.unwrap();
    assert_eq!(last.weekday(), chrono::Weekday::Mon);
    assert!(just_after(last, |h, m, s| (h, m, s) == (9, 0, 0)), "{last}");
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cron_ticks_that_pass_during_a_run_are_skipped_not_queued() {
    let job = Job::new().taking(Duration::from_millis(2500));
    let mut s = Scheduler::new();
    s.cron("slow", workflow(&job), Step::Run, "* * * * * *")
        .unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(secs(13)).await;
    let starts = job.starts();
    // Each run takes 2.5 s, so the next tick it can take is 3 s after its own.
    let spacing: Vec<u128> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    assert!(
        spacing.iter().all(|g| (2999..=3002).contains(g)),
        "{spacing:?}"
    );
    assert!((4..=5).contains(&starts.len()), "{starts:?}");
    assert_eq!(job.max_active(), 1);
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_flow_never_overlaps_itself() {
    let job = Job::new().taking(secs(5));
    let mut s = Scheduler::new();
    // The interval is far shorter than a run.
    s.every("slow", workflow(&job), Step::Run, Duration::from_millis(10))
        .unwrap();
    let running = s.start().await.unwrap();
    settle().await;
    assert_eq!(info(&running, "slow").await.status, Status::Running);

    // Triggers while the loop's run is in flight are refused.
    for _ in 0..3 {
        let err = running.trigger("slow").await.unwrap_err();
        assert_eq!(err, CanoError::workflow("Flow 'slow' is already running"));
        tokio::time::sleep(secs(1)).await;
    }
    tokio::time::sleep(secs(20)).await;
    assert_eq!(job.max_active(), 1);
    let starts = job.start_millis();
    // Fixed delay: each run starts 10 ms after the previous one ended.
    assert!(
        starts
            .windows(2)
            .all(|w| (5010..=5012).contains(&(w[1] - w[0]))),
        "{starts:?}"
    );
    assert_eq!(info(&running, "slow").await.run_count as usize, job.calls());

    // A triggered run holds the loop back until it ends.
    running.stop().await.unwrap();
    let job = Job::new().taking(secs(5));
    let mut s = Scheduler::new();
    s.every("loop", workflow(&job), Step::Run, secs(2)).unwrap();
    let running = s.start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(5100)).await; // first run done at 5 s
    running.trigger("loop").await.unwrap(); // at 5.1 s, runs until 10.1 s
    tokio::time::sleep(secs(12)).await;
    assert_eq!(job.max_active(), 1);
    let starts = job.start_millis();
    // 0 (at start), 5100 (trigger); the loop's tick at 7 s finds the flow running and is
    // skipped; the next one, at 9 s, too; at 11 s it runs.
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert!(
        close(job.starts()[1], Duration::from_millis(5100), 5),
        "{starts:?}"
    );
    assert!(close(job.starts()[2], secs(11), 10), "{starts:?}");
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_zero_interval_flow_runs_back_to_back() {
    let job = Job::new().taking(Duration::from_millis(100));
    let mut s = Scheduler::new();
    s.every("busy", workflow(&job), Step::Run, Duration::ZERO)
        .unwrap();
    let running = s.start().await.unwrap();
    let done = wait_until(&running, "busy", MS * 50, secs(5), |f| f.run_count >= 10).await;
    assert_eq!(done.status, Status::Running);
    assert_eq!(job.max_active(), 1);
    running.stop().await.unwrap();
    assert_eq!(info(&running, "busy").await.status, Status::Completed);
}
