//! The scheduler's notion of "now", and cron tick arithmetic.
//!
//! Timestamps ([`FlowInfo::last_run`](super::FlowInfo::last_run), backoff windows) and cron
//! ticks are UTC wall-clock times, while waiting happens on Tokio's timer. [`now`] is the
//! wall clock shifted by however far Tokio's clock runs ahead of the real monotonic clock:
//! zero in a normal runtime (so it is exactly `Utc::now()`), and the virtual time advanced
//! so far when the runtime's clock is paused (`#[tokio::test(start_paused = true)]`). Cron
//! schedules and backoff windows therefore behave on a paused clock the way they do in
//! production, only without real waiting.

use chrono::{DateTime, TimeDelta, Utc};
use std::time::Duration;

/// The current UTC time as the scheduler sees it: the engine's wall clock, which follows
/// a paused Tokio clock.
pub(crate) fn now() -> DateTime<Utc> {
    crate::clock::wall_now()
}

/// `at + d`, saturating at the latest representable time.
pub(crate) fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    at.checked_add_signed(delta(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// How long from `now` until `deadline` (zero if it has passed).
pub(crate) fn until(deadline: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (deadline - now).to_std().unwrap_or(Duration::ZERO)
}

/// The first tick of `schedule` strictly after `after` (`None` when the schedule has no
/// further tick, e.g. a past year).
pub(crate) fn next_tick(schedule: &cron::Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.after(&after).next()
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ticks(expr: &str, from: &str, n: usize) -> Vec<String> {
        let schedule = cron::Schedule::from_str(expr).unwrap();
        let mut t = at(from);
        (0..n)
            .map(|_| {
                t = next_tick(&schedule, t).unwrap();
                t.to_rfc3339()
            })
            .collect()
    }

    #[test]
    fn every_second_crosses_a_minute_boundary() {
        assert_eq!(
            ticks("* * * * * *", "2030-03-04T10:59:58.400Z", 3),
            [
                "2030-03-04T10:59:59+00:00",
                "2030-03-04T11:00:00+00:00",
                "2030-03-04T11:00:01+00:00"
            ]
        );
    }

    #[test]
    fn every_five_minutes_crosses_an_hour_boundary() {
        assert_eq!(
            ticks("0 */5 * * * *", "2030-03-04T10:52:00Z", 3),
            [
                "2030-03-04T10:55:00+00:00",
                "2030-03-04T11:00:00+00:00",
                "2030-03-04T11:05:00+00:00"
            ]
        );
    }

    #[test]
    fn daily_crosses_day_month_and_year_boundaries() {
        assert_eq!(
            ticks("0 0 0 * * *", "2030-12-30T23:59:59.999Z", 3),
            [
                "2030-12-31T00:00:00+00:00",
                "2031-01-01T00:00:00+00:00",
                "2031-01-02T00:00:00+00:00"
            ]
        );
        // Strictly after: a tick exactly at `after` is not repeated.
        assert_eq!(
            ticks("@daily", "2030-02-28T00:00:00Z", 2),
            ["2030-03-01T00:00:00+00:00", "2030-03-02T00:00:00+00:00"]
        );
    }

    #[test]
    fn weekly_on_monday_morning() {
        // 2030-03-04 is a Monday.
        assert_eq!(
            ticks("0 0 9 * * MON", "2030-03-04T09:00:00Z", 2),
            ["2030-03-11T09:00:00+00:00", "2030-03-18T09:00:00+00:00"]
        );
    }

    #[test]
    fn a_past_year_has_no_tick() {
        let schedule = cron::Schedule::from_str("0 0 0 1 1 * 2001").unwrap();
        assert_eq!(next_tick(&schedule, at("2030-01-01T00:00:00Z")), None);
    }

    #[test]
    fn until_and_add_saturate() {
        let t = at("2030-01-01T00:00:00Z");
        assert_eq!(until(t, add(t, Duration::from_secs(5))), Duration::ZERO);
        assert_eq!(
            until(add(t, Duration::from_millis(1500)), t),
            Duration::from_millis(1500)
        );
        assert_eq!(add(t, Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }

    #[tokio::test(start_paused = true)]
    async fn now_follows_a_paused_runtime_clock() {
        let before = now();
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        // Each reading may be late by the nanoseconds its clock reads take.
        let drift = ((now() - before) - TimeDelta::hours(3))
            .num_milliseconds()
            .abs();
        assert!(drift <= 2, "{drift} ms");
    }

    #[tokio::test]
    async fn now_is_the_wall_clock_in_a_running_runtime() {
        let skew = (now() - Utc::now()).num_milliseconds().abs();
        assert!(skew < 50, "{skew} ms");
    }
}
