//! Cron across machines: every node may run the same schedules, and each tick of a
//! schedule starts exactly one run in the cluster.
//!
//! No leader: each node, for each schedule, in one transaction, locks the schedule's row
//! in `cano_cluster_schedules` (schema version 7), reads the database's clock, submits a
//! run for every tick since the row's `last_tick` that is due (the idempotency key
//! `cron:<schedule>:<tick>` makes a second submit of a tick a no-op even if the row were
//! lost) and moves `last_tick` forward. Nodes queue on the row lock; whichever comes
//! first submits, the others find the work done. Every decision uses the database's
//! `now()`: a node whose clock is off by minutes only tries at other moments, it never
//! starts a tick early, late or twice.

use super::client::{SUBMIT, to_json};
use super::{DEFAULT_QUEUE, READY_CHANNEL};
use crate::cancel::CancellationToken;
use crate::error::CanoError;
use crate::recovery::postgres::PostgresCheckpointStore;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde::Serialize;
use std::str::FromStr;
use std::time::Duration;

/// Register schedule `$1` at the database's clock (its first tick is the first after
/// now), unless it is registered; then lock its row and answer the database's clock and
/// the schedule's last tick handled (ms since the Unix epoch).
const REGISTER: &str = "
    INSERT INTO cano_cluster_schedules (name, last_tick) VALUES ($1, now())
    ON CONFLICT (name) DO NOTHING";

/// Lock schedule `$1`'s row: the database's clock and its last tick handled (ms).
const LOCK: &str = "
    SELECT (extract(epoch FROM now()) * 1000)::double precision,
           (extract(epoch FROM last_tick) * 1000)::double precision
    FROM cano_cluster_schedules WHERE name = $1 FOR UPDATE";

/// Schedule `$1` has handled every tick up to `$2` (ms).
const ADVANCE: &str = "
    UPDATE cano_cluster_schedules SET last_tick = to_timestamp($2::double precision / 1000)
    WHERE name = $1";

/// How many missed ticks [`Misfire::RunAll`] starts at most in one pass.
const MAX_CATCH_UP: usize = 1_000;

/// How often a [`Cron`] looks at least (a tick it slept through is found then).
const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// How late a tick may be found and still count as on time, unless set with
/// [`Cron::with_misfire_after`].
const DEFAULT_MISFIRE_AFTER: Duration = Duration::from_secs(60);

/// What a schedule does with the ticks that passed while no node ran it (found later
/// than [`Cron::with_misfire_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Misfire {
    /// Start nothing for them.
    Skip,
    /// Start one run, for the latest of them.
    RunOnce,
    /// Start one run for each of them (at most 1,000 per pass; the rest on the next).
    RunAll,
}

/// One schedule: a cron expression and the run each tick starts.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    schedule: cron::Schedule,
    workflow: String,
    input: String,
    initial: String,
    misfire: Misfire,
}

/// Starts the runs of cron schedules in the cluster: run one on every node that should
/// (any number of them); each tick starts exactly one run. See the [module docs](self).
///
/// Ticks are UTC times of cron expressions with seconds (as
/// [`Scheduler::cron`](crate::scheduler::Scheduler::cron) reads them). A schedule's first
/// tick is the first after the schedule was first seen by any node. The runs are plain
/// cluster runs, submitted to the cron's queue with the idempotency key
/// `cron:<schedule>:<tick in RFC 3339>`; [`Worker`](super::Worker)s run them.
///
/// ```no_run
/// use cano::cancel::CancellationToken;
/// use cano::cluster::{Cron, Misfire};
/// use cano::prelude::*;
///
/// # async fn f() -> Result<(), CanoError> {
/// let store = PostgresCheckpointStore::connect("postgresql://cano@db/app").await?;
/// let cron = Cron::new(store).schedule(
///     "nightly-report",
///     "0 0 2 * * *", // 02:00:00 UTC every day
///     "report",      // a workflow registered with the workers
///     &serde_json::json!({ "format": "pdf" }),
///     &"Collect",
///     Misfire::RunOnce,
/// )?;
/// let (stop, token) = CancellationToken::new();
/// tokio::spawn(async move { cron.run(token).await });
/// # stop.cancel();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Cron {
    store: PostgresCheckpointStore,
    entries: Vec<Entry>,
    queue: String,
    poll_interval: Duration,
    misfire_after: Duration,
}

impl Cron {
    /// No schedules yet, on `store`'s database, submitting to the queue `"default"`.
    pub fn new(store: PostgresCheckpointStore) -> Self {
        Self {
            store,
            entries: Vec::new(),
            queue: DEFAULT_QUEUE.to_owned(),
            poll_interval: DEFAULT_POLL,
            misfire_after: DEFAULT_MISFIRE_AFTER,
        }
    }

    /// Add the schedule `name`: at each tick of `expr` (a cron expression with seconds,
    /// in UTC), start a run of the registered workflow `workflow` with `input` from
    /// `initial_state`. Give every node the same schedules under the same names: the name
    /// is what makes a tick one run.
    ///
    /// # Errors
    /// [`CanoError::Configuration`] when `expr` does not parse, a schedule of that name
    /// was added already, or the input or state does not serialize as JSON.
    pub fn schedule<I, S>(
        mut self,
        name: impl Into<String>,
        expr: &str,
        workflow: &str,
        input: &I,
        initial_state: &S,
        misfire: Misfire,
    ) -> Result<Self, CanoError>
    where
        I: Serialize + ?Sized,
        S: Serialize + ?Sized,
    {
        let name = name.into();
        if self.entries.iter().any(|e| e.name == name) {
            return Err(CanoError::configuration(format!(
                "cluster cron: a schedule named {name:?} was added already; give each its own \
                 name"
            )));
        }
        let schedule = cron::Schedule::from_str(expr).map_err(|e| {
            CanoError::configuration(format!(
                "cluster cron: schedule {name:?}: invalid cron expression: {e}"
            ))
        })?;
        self.entries.push(Entry {
            input: to_json("input", workflow, input)?,
            initial: to_json("initial state", workflow, initial_state)?,
            name,
            schedule,
            workflow: workflow.to_owned(),
            misfire,
        });
        Ok(self)
    }

    /// Submit the runs to `queue` instead (only workers of that queue run them).
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// How often [`run`](Self::run) looks at the schedules at least (default 1 s; at
    /// least 1 ms). It also wakes for each schedule's next tick.
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(1));
        self
    }

    /// A tick found more than `late` after its time (every node was down, say) is missed
    /// and follows its schedule's [`Misfire`] policy (default 60 s).
    pub fn with_misfire_after(mut self, late: Duration) -> Self {
        self.misfire_after = late;
        self
    }

    /// Look at every schedule once: start the runs of the ticks due since the last look
    /// (by any node). Answers the ids of the runs this call submitted (a tick another node
    /// submitted is not among them).
    ///
    /// # Errors
    /// [`CanoError::CheckpointStore`] when the database cannot be reached (the ticks are
    /// then handled by the next look, here or on another node).
    pub async fn tick(&self) -> Result<Vec<String>, CanoError> {
        let mut started = Vec::new();
        for entry in &self.entries {
            started.extend(self.fire(entry).await?);
        }
        Ok(started)
    }

    /// Look at the schedules until `shutdown` fires: at each schedule's next tick, and
    /// every poll interval. Database trouble does not end the loop: it tries again at
    /// the next look (reported as a `tracing` warning with the feature `tracing`).
    ///
    /// # Errors
    /// None today; the `Result` leaves room for errors that must end it.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), CanoError> {
        loop {
            let wait = match self.tick().await {
                Ok(_) => self.until_next_tick().await,
                Err(e) => {
                    #[cfg(feature = "tracing")]
                    tracing::warn!(error = %e, "cluster cron: looking at the schedules failed; trying again");
                    #[cfg(not(feature = "tracing"))]
                    let _ = e;
                    self.poll_interval
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// How long until the next tick of any schedule (by the database's clock), at most a
    /// poll interval.
    async fn until_next_tick(&self) -> Duration {
        let now = async {
            let conn = self.store.connection().await?;
            let ms: f64 = conn
                .client
                .query_one(
                    "SELECT (extract(epoch FROM now()) * 1000)::double precision",
                    &[],
                )
                .await
                .map_err(conn.on_cluster_error())?
                .try_get(0)
                .map_err(conn.on_cluster_error())?;
            Ok::<_, CanoError>(from_ms(ms))
        };
        let Ok(now) = now.await else {
            return self.poll_interval;
        };
        self.entries
            .iter()
            .filter_map(|e| e.schedule.after(&now).next())
            .map(|tick| (tick - now).to_std().unwrap_or(Duration::ZERO))
            .min()
            .map_or(self.poll_interval, |d| d.min(self.poll_interval))
    }

    /// Handle `entry`'s due ticks in one transaction; the runs submitted.
    async fn fire(&self, entry: &Entry) -> Result<Vec<String>, CanoError> {
        let mut conn = self.store.connection().await?;
        let failed = conn.on_cluster_error();
        let tx = conn.client.transaction().await.map_err(&failed)?;
        tx.execute(REGISTER, &[&entry.name])
            .await
            .map_err(&failed)?;
        let row = tx.query_one(LOCK, &[&entry.name]).await.map_err(&failed)?;
        let now = from_ms(row.try_get(0).map_err(&failed)?);
        let last = from_ms(row.try_get(1).map_err(&failed)?);
        let late = TimeDelta::from_std(self.misfire_after).unwrap_or(TimeDelta::MAX);
        let (fire, handled) = due(entry, last, now, late);
        let mut started = Vec::new();
        for tick in &fire {
            let key = format!(
                "cron:{}:{}",
                entry.name,
                tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            let submitted = tx
                .query_opt(
                    SUBMIT,
                    &[
                        &self.queue,
                        &entry.workflow,
                        &entry.input,
                        &entry.initial,
                        &Some(key.as_str()),
                        &READY_CHANNEL,
                    ],
                )
                .await
                .map_err(&failed)?;
            if let Some(row) = submitted {
                started.push(row.try_get(0).map_err(&failed)?);
            }
        }
        if let Some(handled) = handled {
            let ms = handled.timestamp_millis() as f64;
            tx.execute(ADVANCE, &[&entry.name, &ms])
                .await
                .map_err(&failed)?;
        }
        tx.commit().await.map_err(&failed)?;
        Ok(started)
    }
}

/// The ticks of `entry` after `last` up to `now` that start a run (by its misfire policy:
/// ticks older than `late` are missed), and the newest tick handled (`None`: none due).
fn due(
    entry: &Entry,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    late: TimeDelta,
) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let limit = match entry.misfire {
        Misfire::RunAll => MAX_CATCH_UP,
        Misfire::Skip | Misfire::RunOnce => usize::MAX,
    };
    let mut missed = Vec::new();
    let mut on_time = Vec::new();
    let mut handled = None;
    for tick in entry.schedule.after(&last).take_while(|t| *t <= now) {
        handled = Some(tick);
        if now - tick > late {
            missed.push(tick);
            if missed.len() >= limit {
                // The rest on the next pass.
                break;
            }
        } else {
            on_time.push(tick);
        }
        // A schedule firing every second after a long outage: what is skipped need not
        // be listed.
        if entry.misfire != Misfire::RunAll && missed.len() > 1 {
            missed.remove(0);
        }
    }
    let mut fire = match entry.misfire {
        Misfire::Skip => Vec::new(),
        Misfire::RunOnce => missed.pop().into_iter().collect(),
        Misfire::RunAll => missed,
    };
    fire.extend(on_time);
    (fire, handled)
}

/// Milliseconds since the Unix epoch as a UTC time (to the millisecond).
fn from_ms(ms: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
        .trunc_subsecs(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn entry(expr: &str, misfire: Misfire) -> Entry {
        Entry {
            name: "t".into(),
            schedule: cron::Schedule::from_str(expr).unwrap(),
            workflow: "w".into(),
            input: "null".into(),
            initial: "null".into(),
            misfire,
        }
    }

    fn times(ticks: &[DateTime<Utc>]) -> Vec<String> {
        ticks
            .iter()
            .map(|t| t.format("%H:%M:%S").to_string())
            .collect()
    }

    #[test]
    fn missed_ticks_follow_the_policy_and_on_time_ticks_always_fire() {
        // Every 10 s; last handled 12:00:00; now 12:01:05; 30 s late is missed.
        let (last, now) = (at("2026-12-05T12:00:00Z"), at("2026-12-05T12:01:05Z"));
        let late = TimeDelta::seconds(30);
        let every = "*/10 * * * * *";
        let (fire, handled) = due(&entry(every, Misfire::Skip), last, now, late);
        assert_eq!(times(&fire), ["12:00:40", "12:00:50", "12:01:00"]);
        assert_eq!(handled, Some(at("2026-12-05T12:01:00Z")));
        let (fire, _) = due(&entry(every, Misfire::RunOnce), last, now, late);
        assert_eq!(
            times(&fire),
            ["12:00:30", "12:00:40", "12:00:50", "12:01:00"]
        );
        let (fire, _) = due(&entry(every, Misfire::RunAll), last, now, late);
        assert_eq!(fire.len(), 6, "{:?}", times(&fire));
        // Nothing due yet.
        let (fire, handled) = due(&entry(every, Misfire::RunAll), last, last, late);
        assert!(fire.is_empty() && handled.is_none());
    }

    #[test]
    fn run_all_catches_up_in_bounded_passes() {
        let (last, now) = (at("2026-12-05T00:00:00Z"), at("2026-12-05T12:00:00Z"));
        let (fire, handled) = due(
            &entry("* * * * * *", Misfire::RunAll),
            last,
            now,
            TimeDelta::seconds(60),
        );
        assert_eq!(fire.len(), MAX_CATCH_UP);
        assert_eq!(
            handled,
            Some(at("2026-12-05T00:16:40Z")),
            "the rest next pass"
        );
        let (fire, handled) = due(
            &entry("* * * * * *", Misfire::RunOnce),
            last,
            now,
            TimeDelta::seconds(60),
        );
        // The latest missed tick (11:58:59), then the on-time ticks 11:59:00..=12:00:00.
        assert_eq!(fire.len(), 62);
        assert_eq!(times(&fire[..2]), ["11:58:59", "11:59:00"]);
        assert_eq!(handled, Some(now));
    }
}
