//! Which store a command works on (`--store`), and opening it without harm.
//!
//! A redb file is opened only if it already exists, is a redb database, holds cano's
//! checkpoint table and no other process has it open; each of these is checked before
//! [`RedbCheckpointStore::new`] is called (which would otherwise create a missing file,
//! or add the table to a foreign database).
//!
//! A PostgreSQL database is opened with migrations off: the store checks that the cano
//! tables are there, at the library's schema version, and refuses the database
//! otherwise, creating nothing.

use crate::error::Failure;
use cano::RedbCheckpointStore;
use cano::recovery::ListRuns;
use cano::recovery::StoreFuture;
use cano::recovery::postgres::PostgresCheckpointStore;
use cano::signal::SignalStore;
use redb::{ReadableDatabase, TableHandle};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

/// The forms `--store` accepts, for error messages and help.
pub const ACCEPTED: &str = "redb:PATH (a cano redb checkpoint file) or \
     postgres://USER:PASSWORD@HOST:PORT/DATABASE (a PostgreSQL database holding cano's tables)";

/// What the commands need of a store; both kinds have it.
pub trait Store: ListRuns + SignalStore {
    /// The worker holding a live lease on `run_id` and when that lease ends unless
    /// renewed (PostgreSQL; a redb file has no leases: `None`).
    fn lease_holder<'a>(
        &'a self,
        run_id: &'a str,
    ) -> StoreFuture<'a, Option<(String, SystemTime)>> {
        let _ = run_id;
        Box::pin(std::future::ready(Ok(None)))
    }

    /// A client of the cluster runtime on this store (PostgreSQL), which can cancel and
    /// retry cluster runs; `None` for a redb file.
    fn cluster(&self) -> Option<cano::cluster::Client> {
        None
    }
}

impl Store for RedbCheckpointStore {}

impl Store for PostgresCheckpointStore {
    fn lease_holder<'a>(
        &'a self,
        run_id: &'a str,
    ) -> StoreFuture<'a, Option<(String, SystemTime)>> {
        Box::pin(async move {
            Ok(self
                .holder(run_id)
                .await?
                .map(|h| (h.worker_id, h.expires_at)))
        })
    }

    fn cluster(&self) -> Option<cano::cluster::Client> {
        Some(cano::cluster::Client::new(self.clone()))
    }
}

/// PostgreSQL connections the CLI opens at most: it does one thing at a time.
const PG_CONNECTIONS: usize = 2;

/// The table every cano redb checkpoint file has (see `cano::RedbCheckpointStore`).
const CHECKPOINT_TABLE: &str = "cano_checkpoints";

/// A store named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `redb:PATH`.
    Redb(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
}

impl FromStr for StoreSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("redb:") {
            // `redb://` is read as `redb:` followed by a path that starts with `//`: allow
            // the URL-looking form for absolute paths too.
            let path = path
                .strip_prefix("//")
                .filter(|p| p.starts_with('/'))
                .unwrap_or(path);
            if path.is_empty() {
                return Err(format!("`{s}` names no file; expected {ACCEPTED}"));
            }
            return Ok(Self::Redb(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_string()));
        }
        let hint = match s.split_once(':') {
            Some((scheme, _)) if !scheme.is_empty() && !scheme.contains('/') => {
                format!("unknown store kind `{scheme}`")
            }
            _ => "no store kind given (a bare path? write `redb:PATH`)".to_string(),
        };
        Err(format!("`{}`: {hint}; expected {ACCEPTED}", redact(s)))
    }
}

impl StoreSpec {
    /// The store as messages name it: the file's path, or the URL without its password.
    pub fn name(&self) -> String {
        match self {
            Self::Redb(path) => path.display().to_string(),
            Self::Postgres(url) => redact(url),
        }
    }

    /// Whether other processes may be running runs in the store while the CLI works on
    /// it: a database may be shared; a redb file is opened only when no process has it.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Open the store for a command.
    ///
    /// # Errors
    /// See [`open_redb`] and [`open_postgres`].
    pub async fn open(&self) -> Result<Box<dyn Store>, Failure> {
        Ok(match self {
            Self::Redb(path) => Box::new(open_redb(path)?),
            Self::Postgres(url) => Box::new(open_postgres(url).await?),
        })
    }
}

/// Connect to the PostgreSQL database at `url`, which must hold cano's tables.
///
/// # Errors
/// Naming the database (without its password): the URL does not parse, the server cannot
/// be reached, the credentials are refused, the database does not exist, or it has no cano
/// tables or tables of another version (nothing is created or upgraded).
async fn open_postgres(url: &str) -> Result<PostgresCheckpointStore, Failure> {
    PostgresCheckpointStore::builder(url)
        .with_max_connections(PG_CONNECTIONS)
        .with_migrations(false)
        .connect()
        .await
        .map_err(|e| {
            // The library's text never holds the URL; keep the password out all the same.
            let text = e.message().replace(url, &redact(url));
            let text = text.strip_prefix("postgres: ").unwrap_or(&text);
            Failure::error(format!("store {}: {text}", redact(url)))
        })
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Open the cano redb checkpoint file at `path`, refusing anything else.
///
/// # Errors
/// Naming the file: it does not exist (nothing is created), is a directory or empty, is
/// not a redb database, is a redb database without cano's checkpoint table, or is open
/// in another process.
pub fn open_redb(path: &Path) -> Result<RedbCheckpointStore, Failure> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Failure::error(format!(
            "{shown}: no such file (nothing was created: give the path of an existing cano \
             redb checkpoint file)"
        )),
        _ => Failure::error(format!("{shown}: cannot read it: {e}")),
    })?;
    if meta.is_dir() {
        return Err(Failure::error(format!(
            "{shown} is a directory, not a cano redb checkpoint file"
        )));
    }
    if meta.len() == 0 {
        return Err(Failure::error(format!(
            "{shown} is an empty file, not a cano redb checkpoint file"
        )));
    }
    check_redb(path)?;
    RedbCheckpointStore::new(path).map_err(|e| {
        let text = e.to_string();
        if text.contains("already open") {
            held_open(path)
        } else {
            Failure::error(format!("{shown}: cannot open it as a cano store: {text}"))
        }
    })
}

/// Whether `path` is a redb database holding cano's checkpoint table, without creating or
/// adding anything.
fn check_redb(path: &Path) -> Result<(), Failure> {
    let shown = path.display();
    let not_redb = |why: &dyn std::fmt::Display| {
        Failure::error(format!(
            "{shown} is not a cano checkpoint store: it is not a redb database file, or it \
             is damaged ({why}); nothing was changed"
        ))
    };
    // Read-only first: it changes nothing, whatever the file holds. A file whose last
    // writer did not close it cleanly (a killed process) must be repaired before it can be
    // read; redb does that when the file is opened for writing, as cano would.
    let tables = match guarded(|| redb::ReadOnlyDatabase::open(path)) {
        Err(redb::DatabaseError::RepairAborted) => {
            guarded(|| redb::Database::builder().open(path)).and_then(|db| table_names(&db))
        }
        opened => opened.and_then(|db| table_names(&db)),
    };
    let tables = match tables {
        Ok(tables) => tables,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(held_open(path)),
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
            if e.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            return Err(Failure::error(format!(
                "{shown}: permission denied (opening a redb file needs read and write access)"
            )));
        }
        Err(e) => return Err(not_redb(&e)),
    };
    if !tables.iter().any(|t| t == CHECKPOINT_TABLE) {
        return Err(Failure::error(format!(
            "{shown} is a redb database but not a cano checkpoint store (it has no \
             `{CHECKPOINT_TABLE}` table); nothing was changed"
        )));
    }
    Ok(())
}

/// `open`'s result; a panic inside redb (it trusts a file's header) as an error.
fn guarded<T>(
    open: impl FnOnce() -> Result<T, redb::DatabaseError> + std::panic::UnwindSafe,
) -> Result<T, redb::DatabaseError> {
    std::panic::catch_unwind(open).unwrap_or_else(|_| {
        Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(
            "redb could not read it".into(),
        )))
    })
}

/// The names of a database's tables.
fn table_names(db: &impl ReadableDatabase) -> Result<Vec<String>, redb::DatabaseError> {
    let storage = |e: redb::StorageError| redb::DatabaseError::Storage(e);
    let txn = db.begin_read().map_err(|e| match e {
        redb::TransactionError::Storage(e) => storage(e),
        other => storage(redb::StorageError::Corrupted(other.to_string())),
    })?;
    let tables = txn.list_tables().map_err(storage)?;
    Ok(tables.map(|t| t.name().to_string()).collect())
}
/// The error for a file another process has open.
fn held_open(path: &Path) -> Failure {
    Failure::error(format!(
        "{} is open in another process (a program running its workflows?): redb lets one \
         process open a file at a time. Stop that process, or act through it, and try \
         again; nothing was read or changed",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_or_say_what_is_accepted() {
        assert_eq!(
            "redb:/tmp/a.redb".parse(),
            Ok(StoreSpec::Redb("/tmp/a.redb".into()))
        );
        assert_eq!(
            "redb:rel/a.redb".parse(),
            Ok(StoreSpec::Redb("rel/a.redb".into()))
        );
        assert_eq!(
            "redb:///tmp/a.redb".parse(),
            Ok(StoreSpec::Redb("/tmp/a.redb".into()))
        );
        assert!(matches!(
            "postgres://u@h/db".parse(),
            Ok(StoreSpec::Postgres(_))
        ));
        for (bad, says) in [
            ("rdb:/tmp/a", "unknown store kind `rdb`"),
            ("/tmp/a.redb", "no store kind"),
            ("redb:", "names no file"),
        ] {
            let err = bad.parse::<StoreSpec>().unwrap_err();
            assert!(err.contains(says), "{err}");
            assert!(err.contains("redb:PATH"), "{err}");
        }
    }

    #[test]
    fn passwords_are_not_repeated() {
        assert_eq!(
            redact("postgres://ana:secret@db:5432/cano"),
            "postgres://ana:***@db:5432/cano"
        );
        assert_eq!(redact("postgres://db/cano"), "postgres://db/cano");
    }
}
