//! `cano`: look at and act on the runs a cano checkpoint store holds.
//!
//! ```text
//! cano runs list   --store STORE [--status S] [--since WHEN] [--limit N] [--json]
//! cano runs show   --store STORE RUN_ID [--json]
//! cano runs signal --store STORE RUN_ID NAME --payload JSON [--id ID]
//! cano runs purge  --store STORE RUN_ID… | --all-failed [--yes] [--json]
//! cano graph       --store STORE RUN_ID --format mermaid|dot
//! cano dashboard   --store STORE [--listen 127.0.0.1:8080] [--token TOKEN]
//! ```
//!
//! `STORE` is `redb:PATH` or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`.
//!
//! Exit codes: 0 success, 1 an error (the store, the file or the run is not what the
//! command needs), 2 a usage problem. `cano --help` and `cano runs list --help` say more.

mod dashboard;
mod error;
mod graph;
mod report;
mod runs;
mod store;

use clap::{Args, CommandFactory, Parser, Subcommand};
use error::Failure;
use std::io::Write;
use std::process::ExitCode;
use store::StoreSpec;

/// Look at and act on the runs a cano checkpoint store holds.
#[derive(Debug, Parser)]
#[command(name = "cano", version, about, long_about = None)]
#[command(after_help = "Exit codes: 0 ok, 1 error, 2 usage.")]
struct Cli {
    /// The store: `redb:PATH` (a cano redb checkpoint file; it must exist and no other
    /// process may have it open) or `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (also
    /// `postgresql://`; a database holding cano's tables, which the CLI never creates).
    // Parsed in `main`, not by clap: clap's error would repeat the text, password included.
    #[arg(long, global = true, env = "CANO_STORE", value_name = "STORE")]
    store: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, inspect and act on runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Draw a run's path (the states it entered, in order) as a diagram on stdout.
    Graph(GraphArgs),
    /// Serve a web dashboard of the store's runs (read-only unless a token is given).
    Dashboard(DashboardArgs),
}

#[derive(Debug, Args)]
struct DashboardArgs {
    /// The address to serve on (keep it on localhost, or put it behind a proxy with TLS).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR:PORT")]
    listen: std::net::SocketAddr,
    /// Allow actions (send a signal, purge a run, cancel or retry a cluster run) to browsers
    /// that log in with this token (at least 12 characters). Without it the dashboard is
    /// read-only.
    #[arg(long, env = "CANO_DASHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// List the runs the store holds.
    #[command(long_about = LIST_ABOUT)]
    List(ListArgs),
    /// Show a run's path, row by row, and where it stopped and why.
    Show(ShowArgs),
    /// Send a signal to a run (kept in the store until the run consumes it).
    Signal(SignalArgs),
    /// Clear runs' logs for good (and their pending signals).
    Purge(PurgeArgs),
    /// Cancel a run of the cluster runtime (PostgreSQL); another run only the program
    /// that runs it can cancel (the CLI says how).
    Cancel(ActionArgs),
    /// Retry a failed or parked run of the cluster runtime (PostgreSQL); another run only
    /// the program that owns its workflow can resume (the CLI says how).
    Retry(ActionArgs),
}

const LIST_ABOUT: &str = "\
List the runs the store holds, by run id.

A store keeps a checkpoint log per run, and a log alone cannot tell a run in progress
from one that stopped. The CLI opens a redb file only when no process has it open, so
nothing in it is running; a PostgreSQL database is shared, and other processes may be
running runs in it while the CLI reads. Statuses:

  failed        went forward as far as its last row and stopped there: a task returned
                an error, or its process died. Workflow::resume_from continues it.
                A run of a program that attached the store with
                Workflow::with_run_writers is marked when it returns an error: the
                error is shown (also on a PostgreSQL store, whatever its lease says).
                (--status failed also lists rolling-back runs.)
  running-or-failed
                the same on a PostgreSQL store, for a run that is not marked: it may as
                well be going on in another process (--status failed and --status
                running list it).
  running       on a PostgreSQL store, a run a worker holds a live lease on (a cluster
                worker, or a program writing through with_run_writers): it is going on
                now (--status running lists it; --status failed and purge --all-failed
                leave it alone).
  rolling-back  a saga rollback is recorded with steps still to undo: a compensation
                failed, or the process died during it. Workflow::resume_from finishes it.
  waiting       parked on a timer (until its deadline) or on a signal (until it comes,
                or its timeout). Workflow::resume_from continues the wait.
  malformed     the log does not follow cano's format (only --status malformed lists it).
  running       none on a redb store (see above); on a PostgreSQL store, the
                running-or-failed and rolling-back runs.
  done          none: a run that finished (or whose rollback finished cleanly) clears
                its log.

Times, all in UTC: STARTED and UPDATED are when the run's first and last rows were
written (`-` when the store does not know: runs in a redb file written before cano kept
times); the deadlines of waiting runs. --since keeps the runs last written at or after a
time, and leaves out the runs whose time is not known.";

#[derive(Debug, Args)]
struct ListArgs {
    /// Only runs with this status (see above).
    #[arg(long, value_enum)]
    status: Option<runs::Filter>,
    /// Only runs last written at or after WHEN: an RFC 3339 time (2026-12-05T21:30:00Z) or
    /// an age before now (30s, 30m, 2h, 7d, 2w). Runs whose last write the store does not
    /// know (a redb file written before cano kept times) are left out.
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    since: Option<u64>,
    /// At most this many runs.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// The run's id.
    run_id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct SignalArgs {
    /// The run's id.
    run_id: String,
    /// The signal's name (what the run's signal state waits for).
    name: String,
    /// The payload, as JSON text (e.g. '{"approved": true}').
    #[arg(long, value_name = "JSON")]
    payload: String,
    /// The signal's id: sending the same id again changes nothing. Default: one made from
    /// the current time.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["run_ids", "all_failed"]))]
struct PurgeArgs {
    /// The runs to purge.
    #[arg(value_name = "RUN_ID")]
    run_ids: Vec<String>,
    /// Purge every failed or rolling-back run (not waiting ones; on a PostgreSQL store,
    /// every running-or-failed one: stop the programs running runs first).
    #[arg(long, conflicts_with = "run_ids")]
    all_failed: bool,
    /// Purge more than one run without asking (without it, more than one run is purged
    /// only after a yes at a terminal; elsewhere the command stops with exit code 2).
    #[arg(long)]
    yes: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ActionArgs {
    /// The run's id.
    run_id: String,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct GraphArgs {
    /// The run's id.
    run_id: String,
    /// The diagram's language.
    #[arg(long, value_enum, default_value = "mermaid")]
    format: graph::Format,
}

/// `--since WHEN` as milliseconds since the epoch.
fn parse_since(when: &str) -> Result<u64, String> {
    report::since_ms(when, report::now_ms())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let store = match cli.store.as_deref().map(str::parse::<StoreSpec>) {
        Some(Ok(store)) => store,
        Some(Err(why)) => Cli::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '--store <STORE>': {why}"),
            )
            .exit(),
        None => Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                format!(
                    "no store given: pass --store STORE (or set CANO_STORE), where STORE is {}",
                    store::ACCEPTED
                ),
            )
            .exit(),
    };
    // Nothing here should panic; should something still, the user gets an error and exit
    // code 1, not a backtrace (and the store is dropped on the way, folding its log).
    let outcome = std::panic::catch_unwind(|| run(&store, cli.command))
        .unwrap_or_else(|_| Err(Failure::error("internal error (a bug in the cano CLI)")));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "error: {failure}");
            failure.exit_code()
        }
    }
}

fn run(store: &StoreSpec, command: Command) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::error(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        match command {
            Command::Runs(RunsCommand::List(a)) => {
                runs::list(store, a.status, a.since, a.limit, a.json).await
            }
            Command::Runs(RunsCommand::Show(a)) => runs::show(store, &a.run_id, a.json).await,
            Command::Runs(RunsCommand::Signal(a)) => {
                runs::signal(store, &a.run_id, &a.name, &a.payload, a.id).await
            }
            Command::Runs(RunsCommand::Purge(a)) => {
                let which = if a.all_failed {
                    runs::Which::AllFailed
                } else {
                    runs::Which::Ids(a.run_ids)
                };
                runs::purge(store, which, a.yes, a.json).await
            }
            Command::Runs(RunsCommand::Cancel(a)) => runs::cancel(store, &a.run_id, a.json).await,
            Command::Runs(RunsCommand::Retry(a)) => runs::retry(store, &a.run_id, a.json).await,
            Command::Graph(a) => runs::graph(store, &a.run_id, a.format).await,
            Command::Dashboard(a) => dashboard::serve(store.clone(), a.listen, a.token).await,
        }
    })
}
