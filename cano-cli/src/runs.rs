//! The commands: each opens the store, does its work through the `cano` library and
//! prints what the [`crate::report`] module describes.

use crate::error::Failure;
use crate::graph;
use crate::report::{self, PathRow, PendingSignal, PurgeView, RunView, ShowView};
use crate::store::{Store, StoreSpec};
use cano::CheckpointRow;
use cano::recovery::{RunStatus, log};
use cano::signal::Signal;
use std::fmt::Write as _;
use std::io::Write as _;

/// Which runs `runs list --status` keeps (see `cano runs list --help` for the mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Filter {
    /// Stopped going forward, marked failed by the store, or rolling back.
    Failed,
    /// Never on a redb store; on a PostgreSQL store, the runs that may be running.
    Running,
    /// On a timer or a signal.
    Waiting,
    /// Never: finished runs clear their log.
    Done,
    /// A rollback with steps left.
    RollingBack,
    /// A log that does not follow the format.
    Malformed,
}

impl Filter {
    /// Whether a run with `status` is kept; `live`: the store may have runs in progress
    /// (a database).
    fn keeps(self, run: &RunView, live: bool) -> bool {
        let status = &run.raw;
        // A run under a live lease is running, never failed.
        if run.lease_holder.is_some() {
            return self == Self::Running;
        }
        match self {
            Self::Failed => matches!(
                status,
                RunStatus::Forward | RunStatus::RollingBack { .. } | RunStatus::Failed { .. }
            ),
            Self::Running => {
                live && matches!(status, RunStatus::Forward | RunStatus::RollingBack { .. })
            }
            Self::Waiting => matches!(status, RunStatus::Waiting { .. }),
            Self::RollingBack => matches!(status, RunStatus::RollingBack { .. }),
            Self::Malformed => matches!(status, RunStatus::Malformed(_)),
            Self::Done => false,
        }
    }

    /// What to know about the runs the filter keeps on this store, if anything.
    fn note(self, live: bool) -> Option<&'static str> {
        match self {
            Self::Running if !live => Some(
                "no run in a redb file is running while the CLI has it open (a running \
                 program holds the file); stopped runs are listed as failed",
            ),
            Self::Running | Self::Failed if live => Some(
                "a log does not say whether a process is working on its run: on a \
                 PostgreSQL store, running and failed runs are the same runs \
                 (running-or-failed, rolling-back)",
            ),
            Self::Done => Some("a finished run clears its log: a store holds no done runs"),
            _ => None,
        }
    }
}

/// Which runs `runs purge` clears.
pub enum Which {
    /// These runs.
    Ids(Vec<String>),
    /// Every failed or rolling-back run.
    AllFailed,
}

/// More runs than this get a progress bar while they are purged.
const PROGRESS_OVER: usize = 5;

/// Print `text` on stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::error(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// A value as pretty JSON and a newline.
fn to_json(value: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| Failure::error(format!("cannot encode the output as JSON: {e}")))
}

/// Every run of the store, by id.
pub(crate) async fn all_runs(store: &dyn Store, spec: &StoreSpec) -> Result<Vec<RunView>, Failure> {
    let live = spec.is_live();
    let mut runs: Vec<RunView> = store
        .list_runs()
        .await?
        .iter()
        .map(|r| RunView::new(r, live))
        .collect();
    runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    if live {
        for run in runs.iter_mut().filter(|r| r.raw == RunStatus::Forward) {
            held(store, run).await?;
        }
    }
    Ok(runs)
}

/// A run going forward in a shared store is `running` while a worker holds a live lease on
/// it.
async fn held(store: &dyn Store, run: &mut RunView) -> Result<(), Failure> {
    if let Some((worker, until)) = store.lease_holder(&run.run_id).await? {
        let until_ms = until
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        run.held(worker, until_ms);
    }
    Ok(())
}

/// A run's rows (by sequence) and its summary; an error if the store holds no such run.
pub(crate) async fn load(
    store: &dyn Store,
    spec: &StoreSpec,
    run_id: &str,
) -> Result<(Vec<CheckpointRow>, RunView), Failure> {
    let mut rows = store.load_run(run_id).await?;
    if rows.is_empty() {
        return Err(unknown_run(spec, run_id));
    }
    rows.sort_by_key(|r| r.sequence);
    // The store's summary has the run's times and failure mark; a log read alone has not.
    let summary = match store.run_summary(run_id).await? {
        Some(summary) => summary,
        None => log::summarize(run_id, &rows),
    };
    let mut view = RunView::new(&summary, spec.is_live());
    if spec.is_live() && view.raw == RunStatus::Forward {
        held(store, &mut view).await?;
    }
    Ok((rows, view))
}

fn unknown_run(spec: &StoreSpec, run_id: &str) -> Failure {
    Failure::error(format!(
        "{} holds no run {run_id:?}: it was never started with this store, or it finished \
         (a finished run clears its log). `cano runs list` shows the runs it holds",
        spec.name()
    ))
}

/// `cano runs list`: the runs `filter` keeps, last written at or after `since_ms` if
/// given, at most `limit` of them.
pub async fn list(
    spec: &StoreSpec,
    filter: Option<Filter>,
    since_ms: Option<u64>,
    limit: Option<usize>,
    json: bool,
) -> Result<(), Failure> {
    let store = spec.open().await?;
    let mut runs = all_runs(store.as_ref(), spec).await?;
    if let Some(filter) = filter {
        runs.retain(|r| filter.keeps(r, spec.is_live()));
        if let Some(why) = filter.note(spec.is_live()) {
            let _ = writeln!(std::io::stderr(), "note: {why}");
        }
    }
    if let Some(since) = since_ms {
        // A run whose last write the store does not know cannot be placed: left out.
        runs.retain(|r| r.updated_ms.is_some_and(|t| t >= since));
    }
    runs.truncate(limit.unwrap_or(usize::MAX));
    if json {
        return emit(&to_json(&runs)?);
    }
    if runs.is_empty() {
        let what = filter.map_or(String::new(), |f| {
            format!(
                " {}",
                clap::ValueEnum::to_possible_value(&f)
                    .map_or_else(String::new, |v| v.get_name().to_string())
            )
        });
        let when = since_ms.map_or(String::new(), |t| {
            format!(" written since {}", report::utc_text(t))
        });
        return emit(&format!("no{what} runs{when} in {}\n", spec.name()));
    }
    emit(&table(&runs, report::now_ms()))
}

/// The runs as an aligned table.
fn table(runs: &[RunView], now_ms: u64) -> String {
    const COLUMNS: usize = 7;
    let header = [
        "RUN ID",
        "STATUS",
        "LAST STATE",
        "ROWS",
        "STARTED (UTC)",
        "UPDATED (UTC)",
        "DETAIL",
    ];
    let lines: Vec<[String; COLUMNS]> = runs
        .iter()
        .map(|r| {
            [
                r.run_id.clone(),
                r.status.to_string(),
                r.last_state.clone(),
                r.rows.to_string(),
                report::utc_cell(r.started_ms),
                report::utc_cell(r.updated_ms),
                r.detail(now_ms),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: [&str; COLUMNS]| {
        let [id, status, state, rows, started, updated, detail] = cells;
        let line = format!(
            "{id:<w0$}  {status:<w1$}  {state:<w2$}  {rows:>w3$}  {started:<w4$}  {updated:<w5$}  {detail}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
            w5 = widths[5],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push(header);
    for line in &lines {
        push(std::array::from_fn(|i| line[i].as_str()));
    }
    out
}

/// A run's decoded path, its summary and the signals sent to it and not consumed yet
/// (what `runs show` and the dashboard's run page report).
pub(crate) async fn inspect(
    store: &dyn Store,
    spec: &StoreSpec,
    run_id: &str,
) -> Result<(Vec<PathRow>, RunView, Vec<PendingSignal>), Failure> {
    let (rows, run) = load(store, spec, run_id).await?;
    let pending = match &run.signal {
        Some(name) => store
            .pending_signals(run_id, name)
            .await?
            .iter()
            .map(PendingSignal::new)
            .collect(),
        None => Vec::new(),
    };
    Ok((PathRow::decode(run_id, &rows), run, pending))
}

/// `cano runs show`.
pub async fn show(spec: &StoreSpec, run_id: &str, json: bool) -> Result<(), Failure> {
    let store = spec.open().await?;
    let (path, run, pending) = inspect(store.as_ref(), spec, run_id).await?;
    let now = report::now_ms();
    let view = ShowView {
        why: why(&run, &path, &pending, now),
        run,
        pending_signals: pending,
        path,
    };
    if json {
        return emit(&to_json(&view)?);
    }
    let run = &view.run;
    let mut out = String::new();
    let version = match run.version {
        0 => String::new(),
        v => format!(", workflow version {v}"),
    };
    let _ = writeln!(
        out,
        "run {:?} in {}: {}, {} rows (last sequence {}){version}",
        run.run_id,
        spec.name(),
        run.status,
        run.rows,
        run.last_sequence
    );
    let when = |ms: Option<u64>| ms.map_or_else(|| "not known".to_owned(), report::utc_text);
    let _ = writeln!(
        out,
        "started {}, last written {}",
        when(run.started_ms),
        when(run.updated_ms)
    );
    if let Some(error) = &run.error {
        let _ = writeln!(out, "error: {error}");
    }
    let _ = writeln!(out, "\npath:");
    for step in &view.path {
        let _ = writeln!(out, "  #{:<4} {}", step.sequence(), describe(step));
    }
    let _ = writeln!(out, "\nstopped: {}", view.why);
    for s in &view.pending_signals {
        let _ = writeln!(
            out,
            "pending signal {:?} (id {:?}): {}",
            s.name, s.id, s.payload
        );
    }
    emit(&out)
}

/// One decoded row, in words.
pub(crate) fn describe(step: &PathRow) -> String {
    match step {
        PathRow::StateEntry {
            state,
            task_id,
            visit,
            version,
            resumed,
            supersedes,
            data_set,
            data_removed,
            ..
        } => {
            let mut line = format!("enter {state}");
            let mut notes = Vec::new();
            if !task_id.is_empty() {
                notes.push(format!("task {task_id}"));
            }
            if *resumed {
                notes.push(format!("resumed: re-entry of visit {visit}"));
            } else if *visit > 1 {
                notes.push(format!("visit {visit}"));
            }
            if let Some(s) = supersedes {
                notes.push(format!("supersedes #{s}"));
            }
            if let Some(v) = version {
                notes.push(format!("workflow version {v}"));
            }
            if !notes.is_empty() {
                let _ = write!(line, " ({})", notes.join(", "));
            }
            if !data_set.is_empty() || !data_removed.is_empty() {
                let set: Vec<String> = data_set.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                let _ = write!(line, "; run data from the states before:");
                if !set.is_empty() {
                    let _ = write!(line, " set {}", set.join(", "));
                }
                if !data_removed.is_empty() {
                    let _ = write!(line, " removed {}", data_removed.join(", "));
                }
            }
            line
        }
        PathRow::StepCursor {
            state,
            task_id,
            cursor,
            ..
        } => format!("{state}: step cursor {cursor} (task {task_id})"),
        PathRow::Completion {
            state,
            task_id,
            output,
            ..
        } => format!("{state}: saga step {task_id} completed, output {output}"),
        PathRow::Timer {
            state, deadline_ms, ..
        } => format!(
            "{state}: timer waits until {}",
            report::utc_text(*deadline_ms)
        ),
        PathRow::SignalWait {
            state,
            signal,
            deadline_ms,
            ..
        } => match deadline_ms {
            Some(d) => format!(
                "{state}: waits for signal {signal:?} until {}",
                report::utc_text(*d)
            ),
            None => format!("{state}: waits for signal {signal:?} (no timeout)"),
        },
        PathRow::Signal {
            state,
            signal,
            id,
            payload,
            ..
        } => format!("{state}: consumed signal {signal:?} (id {id:?}), payload {payload}"),
        PathRow::SplitMember { state, index, .. } => {
            format!("{state}: split member {index} succeeded")
        }
        PathRow::RollbackStarted {
            category,
            message,
            steps,
            ..
        } => format!(
            "rollback started after {category} error: {message}; steps to undo: {} (undone last first)",
            steps.join(", ")
        ),
        PathRow::Compensated { index, task_id, .. } => match task_id {
            Some(task) => format!("compensated {task} (step {index})"),
            None => format!("compensated step {index} (not in the rollback's list)"),
        },
        PathRow::Malformed { problem, .. } => format!("MALFORMED: {problem}"),
    }
}

/// Where a run stopped and why, in words.
pub(crate) fn why(
    run: &RunView,
    path: &[PathRow],
    pending: &[PendingSignal],
    now_ms: u64,
) -> String {
    let resume = format!(
        "the program that owns the workflow continues it with Workflow::resume_from({:?})",
        run.run_id
    );
    let last = path.last();
    match &run.raw {
        RunStatus::Waiting {
            signal: Some(signal),
            deadline_ms,
        } => {
            let until = deadline_ms.map_or_else(
                || " with no timeout".to_string(),
                |d| {
                    format!(
                        " until {} ({})",
                        report::utc_text(d),
                        report::relative(d, now_ms)
                    )
                },
            );
            let sent = match pending.len() {
                0 => "no signal has been sent yet".to_string(),
                n => format!("{n} signal(s) sent and not consumed yet"),
            };
            format!(
                "in {}, waiting for signal {signal:?}{until}; {sent}. Send one with \
                 `cano runs signal`; {resume}",
                run.last_state
            )
        }
        RunStatus::Waiting { deadline_ms, .. } => {
            let until = deadline_ms.map_or_else(String::new, |d| {
                format!(
                    " until {} ({})",
                    report::utc_text(d),
                    report::relative(d, now_ms)
                )
            });
            format!("in {}, on a timer{until}; {resume}", run.last_state)
        }
        RunStatus::RollingBack { remaining } => {
            let cause = path.iter().rev().find_map(|s| match s {
                PathRow::RollbackStarted {
                    category, message, ..
                } => Some(format!("{category} error: {message}")),
                _ => None,
            });
            format!(
                "rolling back after {}; {remaining} compensation(s) not done: a compensation \
                 failed or the process died during the rollback; {resume}, which finishes \
                 the rollback",
                cause.unwrap_or_else(|| "an error".into())
            )
        }
        RunStatus::Forward => {
            let at = match last {
                Some(PathRow::StepCursor { cursor, .. }) => format!(" at its step cursor {cursor}"),
                Some(PathRow::Completion { task_id, .. }) => {
                    format!(" after its saga step {task_id} completed (it runs again)")
                }
                Some(PathRow::Signal { signal, .. }) => {
                    format!(" having consumed signal {signal:?} (its task gets it again)")
                }
                _ => String::new(),
            };
            format!(
                "in {}{at} (row #{}): a task returned an error or the process died (the log \
                 does not record which, nor the error); {resume}, re-entering {}",
                run.last_state, run.last_sequence, run.last_state
            )
        }
        RunStatus::Malformed(problem) => {
            format!("the log does not follow cano's format, so it cannot be resumed: {problem}")
        }
        RunStatus::Failed { error } => format!(
            "in {} (row #{}): the run returned an error and nothing is running it: {error}; \
             {resume}",
            run.last_state, run.last_sequence
        ),
        other => format!("{other:?}"),
    }
}

/// `cano runs signal`.
pub async fn signal(
    spec: &StoreSpec,
    run_id: &str,
    name: &str,
    payload: &str,
    id: Option<String>,
) -> Result<(), Failure> {
    let id = id.unwrap_or_else(|| format!("cli-{}", report::now_ms()));
    // Checked before the store is opened: a bad payload writes nothing.
    let signal = Signal::from_json(name, id.as_str(), payload)
        .map_err(|e| Failure::usage(format!("--payload: {}; nothing was sent", e.message())))?;
    let store = spec.open().await?;
    let (_, run) = load(store.as_ref(), spec, run_id).await?;
    let stored = store.send_signal(run_id, signal).await?;
    let mut out = String::new();
    if stored {
        let _ = writeln!(
            out,
            "sent signal {name:?} (id {id:?}) to run {run_id:?}; it is kept in {} until the run consumes it",
            spec.name()
        );
    } else {
        let _ = writeln!(
            out,
            "run {run_id:?} already has a signal with id {id:?} (pending or consumed): nothing changed"
        );
    }
    match &run.signal {
        Some(waits) if waits == name && spec.is_live() => {
            let _ = writeln!(
                out,
                "the run waits for it: a program waiting on the run now wakes and consumes it \
                 at once; else the program that owns the workflow consumes it when it resumes \
                 the run (Workflow::resume_from({run_id:?}))"
            );
        }
        Some(waits) if waits == name => {
            let _ = writeln!(
                out,
                "the run waits for it: it consumes it when the program that owns the workflow \
                 resumes it (Workflow::resume_from({run_id:?}))"
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "note: the run is not waiting for {name:?} now (status: {}); a signal state \
                 of the run that waits for {name:?} will consume it",
                run.status
            );
        }
    }
    emit(&out)
}

/// `cano runs purge`.
pub async fn purge(spec: &StoreSpec, which: Which, yes: bool, json: bool) -> Result<(), Failure> {
    let store = spec.open().await?;
    let ids: Vec<String> = match which {
        Which::Ids(mut ids) => {
            ids.dedup();
            for id in &ids {
                if store.load_run(id).await?.is_empty() {
                    return Err(Failure::error(format!(
                        "{}; nothing was purged",
                        unknown_run(spec, id)
                    )));
                }
            }
            ids
        }
        Which::AllFailed => all_runs(store.as_ref(), spec)
            .await?
            .into_iter()
            .filter(|r| Filter::Failed.keeps(r, false))
            .map(|r| r.run_id)
            .collect(),
    };
    if ids.len() > 1 && !yes {
        confirm(&ids)?;
    }
    let bar = (ids.len() > PROGRESS_OVER).then(|| {
        let bar = indicatif::ProgressBar::new(ids.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "purging {bar:40} {pos}/{len} runs ({eta} left)",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut purged = Vec::with_capacity(ids.len());
    for id in ids {
        if let Err(e) = store.clear(&id).await {
            if let Some(bar) = &bar {
                bar.abandon();
            }
            return Err(Failure::error(format!(
                "could not purge run {id:?} ({} purged before it: {}): {e}",
                purged.len(),
                purged.join(", ")
            )));
        }
        purged.push(id);
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json {
        return emit(&to_json(&PurgeView { purged })?);
    }
    emit(&match purged.len() {
        0 => format!("no failed runs to purge in {}\n", spec.name()),
        n => format!(
            "purged {n} run(s) from {}: {}\n",
            spec.name(),
            purged.join(", ")
        ),
    })
}

/// Ask before purging several runs: at a terminal, a yes/no question; elsewhere, a usage
/// error that asks for `--yes`.
fn confirm(ids: &[String]) -> Result<(), Failure> {
    use std::io::IsTerminal;
    let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
    let more = if ids.len() > 5 { ", …" } else { "" };
    let what = format!("{} runs ({}{more})", ids.len(), shown.join(", "));
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Failure::usage(format!(
            "this purges {what} for good; run it again with --yes to go ahead"
        )));
    }
    let _ = write!(std::io::stderr(), "purge {what} for good? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure::error(format!("cannot read the answer: {e}")))?;
    match answer.trim() {
        "y" | "Y" | "yes" => Ok(()),
        _ => Err(Failure::error("nothing was purged")),
    }
}

/// What `cano runs cancel` / `retry` did to a cluster run, for `--json`.
#[derive(serde::Serialize)]
struct ActionView<'a> {
    run_id: &'a str,
    action: &'a str,
    /// `cancelled`, `requested`, `already-ended` (cancel) or `ready` (retry).
    outcome: &'a str,
    /// The run's cluster status after the action.
    status: &'a str,
}

/// `cano runs cancel`: a run of the cluster runtime (PostgreSQL) is cancelled through
/// the cluster's tables; other runs only by the program running them (the CLI says how).
pub async fn cancel(spec: &StoreSpec, run_id: &str, json: bool) -> Result<(), Failure> {
    let store = spec.open().await?;
    if let Some(client) = store.cluster()
        && client.status(run_id).await?.is_some()
    {
        let (outcome, text) = cluster_cancel(&client, run_id).await?;
        let status = client.status(run_id).await?.map(|s| s.state.as_str());
        return emit(&if json {
            to_json(&ActionView {
                run_id,
                action: "cancel",
                outcome,
                status: status.unwrap_or("pruned"),
            })?
        } else {
            format!("{text}\n")
        });
    }
    let (_, run) = load(store.as_ref(), spec, run_id).await?;
    let who = if spec.is_live() {
        "a process may be working on it now; on a PostgreSQL store a run that is not a \
         cluster run (cano::cluster) is cancelled by the program that runs it"
    } else {
        "no process is running it (the CLI could open the file); on a redb store a run is \
         cancelled by the program that runs it"
    };
    Err(Failure::error(format!(
        "run {run_id:?} is {}: {who} (a CancellationToken passed to orchestrate_with_token \
         or resume_from_with_token). To drop its log for good instead: cano runs purge \
         {run_id}",
        run.status
    )))
}

/// Cancel cluster run `run_id`: the outcome's name and a sentence saying what happened.
pub async fn cluster_cancel(
    client: &cano::cluster::Client,
    run_id: &str,
) -> Result<(&'static str, String), Failure> {
    use cano::cluster::CancelOutcome;
    Ok(match client.cancel(run_id).await? {
        CancelOutcome::Cancelled => (
            "cancelled",
            format!("cancelled run {run_id:?}: it had not started, nothing of it ran"),
        ),
        CancelOutcome::AlreadyEnded(state) => (
            "already-ended",
            format!(
                "run {run_id:?} has ended already ({}): nothing changed",
                state.as_str()
            ),
        ),
        // `CancelOutcome::Requested`, and whatever a newer library adds.
        _ => (
            "requested",
            format!(
                "asked the cluster to cancel run {run_id:?}: the worker running it (or the \
                 next to claim it) drops its task in flight, compensates its completed saga \
                 steps and records it cancelled; `cano runs show {run_id}` shows the progress"
            ),
        ),
    })
}

/// `cano runs retry`: a failed or parked run of the cluster runtime (PostgreSQL) is made
/// ready again; other runs only by the program that owns the workflow (the CLI says how).
pub async fn retry(spec: &StoreSpec, run_id: &str, json: bool) -> Result<(), Failure> {
    let store = spec.open().await?;
    if let Some(client) = store.cluster()
        && client.status(run_id).await?.is_some()
    {
        client.retry(run_id).await?;
        return emit(&if json {
            to_json(&ActionView {
                run_id,
                action: "retry",
                outcome: "ready",
                status: "ready",
            })?
        } else {
            format!(
                "run {run_id:?} is ready again: a worker of its queue resumes it from its log \
                 (or starts it again if its log is gone)\n"
            )
        });
    }
    let (_, run) = load(store.as_ref(), spec, run_id).await?;
    let kind = if spec.is_live() {
        "a PostgreSQL"
    } else {
        "a redb"
    };
    Err(Failure::error(format!(
        "run {run_id:?} is {} in {}; on {kind} store only the program that owns the \
         workflow can run its tasks (unless it is a cluster run): that program continues it \
         with Workflow::resume_from({run_id:?})",
        run.status,
        spec.name()
    )))
}

/// `cano graph`.
pub async fn graph(spec: &StoreSpec, run_id: &str, format: graph::Format) -> Result<(), Failure> {
    let store = spec.open().await?;
    let (rows, run) = load(store.as_ref(), spec, run_id).await?;
    let path = PathRow::decode(run_id, &rows);
    emit(&graph::render(&run, &path, format))
}
