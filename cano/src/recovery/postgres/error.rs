//! Driver errors as [`CanoError::CheckpointStore`] text that says what went wrong and what
//! to do about it.

use crate::error::CanoError;
use tokio_postgres::error::SqlState;

/// What the store was doing when the driver failed (the first words of the message).
#[derive(Debug, Clone, Copy)]
pub(super) enum Doing {
    Connect,
    Migrate,
    Check,
    Prepare,
    Append,
    Load,
    Clear,
    List,
    Signal,
    Claim,
    Renew,
    Release,
    Cluster,
}

impl Doing {
    fn text(self) -> &'static str {
        match self {
            Self::Connect => "cannot connect to the database",
            Self::Migrate => "cannot create or upgrade the cano tables",
            Self::Check => "cannot read which cano tables the database has",
            Self::Prepare => "cannot prepare the checkpoint statements",
            Self::Append => "append failed",
            Self::Load => "loading a run failed",
            Self::Clear => "clearing a run failed",
            Self::List => "listing runs failed",
            Self::Signal => "signal store failed",
            Self::Claim => "claiming a run failed",
            Self::Renew => "renewing a lease failed",
            Self::Release => "releasing a lease failed",
            Self::Cluster => "a cluster runtime query failed",
        }
    }
}

/// What to do about `e`, when the error says.
fn advice(e: &tokio_postgres::Error, doing: Doing) -> &'static str {
    let code = e.code();
    if code == Some(&SqlState::INVALID_PASSWORD)
        || code == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    {
        return "check the user name and password in the connection string";
    }
    if code == Some(&SqlState::INVALID_CATALOG_NAME) {
        return "the database does not exist: create it (`createdb NAME`) or fix `dbname` in the connection string";
    }
    if code == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        return "the user lacks a privilege the store needs: grant it, or connect as the tables' owner";
    }
    if code == Some(&SqlState::UNDEFINED_TABLE) {
        return "a cano table is missing although `cano_schema_version` says it was created \
                (dropped by hand, or another `search_path`): restore it, or drop \
                `cano_schema_version` so that the next connect creates the tables again";
    }
    if code == Some(&SqlState::TOO_MANY_CONNECTIONS) {
        return "the server has no free connection slot: lower the pool size or raise `max_connections`";
    }
    if code == Some(&SqlState::ADMIN_SHUTDOWN)
        || code == Some(&SqlState::CRASH_SHUTDOWN)
        || code == Some(&SqlState::CANNOT_CONNECT_NOW)
    {
        return "the server ended the connection (a restart, a shutdown or an administrator); \
                the next call opens a new one, retry the operation";
    }
    if e.is_closed() {
        return "the connection was closed (server restart or network loss); the next call opens a new one, retry the operation";
    }
    if matches!(doing, Doing::Connect) && e.to_string().contains("TLS") {
        return "the client and the server disagree on TLS: check `sslmode` in the connection \
                string, and pass a TLS connector with `PostgresCheckpointStore::builder(url).with_tls(…)` \
                when the server requires TLS";
    }
    if matches!(doing, Doing::Connect) && e.as_db_error().is_none() {
        return "is the server running and reachable at the host and port of the connection string? \
                check the URL, the firewall and that PostgreSQL listens on TCP";
    }
    ""
}

/// `e` as a checkpoint-store error: what was being done, the driver's and the server's
/// text (message, detail, hint), and what to do when it is clear.
/// Whether a statement refused with `e` may succeed if sent again: the server broke a
/// deadlock or a serialization conflict by cancelling it.
pub(crate) fn worth_retrying(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

pub(super) fn pg_error(e: &tokio_postgres::Error, doing: Doing) -> CanoError {
    let mut text = format!("postgres: {}: ", doing.text());
    if let Some(db) = e.as_db_error() {
        // The driver's `Display` says only "db error": the server's words are here.
        text.push_str(&format!("{}: {}", db.severity(), db.message()));
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!(" (hint: {hint})"));
        }
        text.push_str(&format!(" [SQLSTATE {}]", db.code().code()));
    } else {
        text.push_str(&e.to_string());
        // The driver's own errors keep their cause in `source()`; name it once.
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(&format!(": {cause_text}"));
            }
            source = cause.source();
        }
    }
    let advice = advice(e, doing);
    if !advice.is_empty() {
        text.push_str("; ");
        text.push_str(advice);
    }
    CanoError::checkpoint_store(text)
}
