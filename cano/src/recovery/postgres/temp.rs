//! [`TempPostgres`]: a private PostgreSQL server in a temporary directory, for tests and
//! demos.

use crate::error::CanoError;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The account the server runs under when this process is root (PostgreSQL refuses to
/// run as root).
const SERVER_USER: &str = "postgres";

/// The server's `max_connections` (PostgreSQL's default, 100, is soon used up by tests
/// that run in parallel, each with a pool of its own).
const MAX_CONNECTIONS: u32 = 300;

/// A throwaway PostgreSQL server, **for tests and demos**: a new cluster in a temporary
/// directory, made with the system's `initdb` and run with its `pg_ctl`, listening on
/// `127.0.0.1` on a free port (its Unix socket in the temporary directory). It never
/// touches a server already running on the machine.
///
/// The binaries are looked for on `PATH`, then in `/usr/lib/postgresql/*/bin` (the newest
/// version first). When this process runs as root, the server runs as the `postgres`
/// user (through `runuser`), which owns the temporary directory.
///
/// The superuser is `postgres`, with a random password that [`url`](Self::url) carries
/// (TCP connections must give it). The server's defaults are kept, `fsync` and
/// `synchronous_commit` included, except `max_connections`, which is 300: tests running
/// in parallel each open a pool. Dropping the value stops the server (`pg_ctl stop -m fast`) and deletes the
/// directory; should the process die first (a crash, `SIGKILL`, or a value kept in a
/// `static` that is never dropped), a small watcher process started with the server does
/// the same as soon as this process is gone.
///
/// ```no_run
/// use cano::recovery::postgres::{PostgresCheckpointStore, TempPostgres};
///
/// # #[tokio::main] async fn main() -> Result<(), cano::CanoError> {
/// let pg = TempPostgres::start().await?; // an error names the package to install
/// let url = pg.create_database("demo").await?;
/// let store = PostgresCheckpointStore::connect(&url).await?;
/// // … run workflows on `store` …
/// # drop(store);
/// pg.stop().await?; // or just drop it
/// # Ok(()) }
/// ```
pub struct TempPostgres {
    /// The temporary directory: `data/`, the server's log and socket.
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    /// `Some(user)` when the server's commands run as another user (this process is root).
    run_as: Option<&'static str>,
    /// Stops the server and removes `dir` when this process is gone (its stdin is ours).
    watcher: Option<Child>,
}

impl std::fmt::Debug for TempPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempPostgres")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl TempPostgres {
    /// Make and start a server (on tokio's blocking pool: `initdb` takes a second or
    /// two). See [`start_blocking`](Self::start_blocking).
    ///
    /// # Errors
    /// As [`start_blocking`](Self::start_blocking).
    ///
    /// Dropping the future does not stop the start: the server is stopped and removed
    /// once it is up (by the value's drop on the blocking pool).
    pub async fn start() -> Result<Self, CanoError> {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .unwrap_or_else(|e| {
                Err(CanoError::checkpoint_store(format!(
                    "postgres: starting the throwaway server failed: {e}"
                )))
            })
    }

    /// Make and start a server, blocking the calling thread until it accepts connections
    /// (use it outside async code, or [`start`](Self::start) inside).
    ///
    /// # Errors
    /// [`CanoError::CheckpointStore`] when no PostgreSQL installation is found (the text
    /// names the package to install, `postgresql`), when this process is root and there
    /// is no `postgres` user or no `runuser`, or when `initdb` or `pg_ctl` fails (with
    /// their output, or the tail of the server's log).
    pub fn start_blocking() -> Result<Self, CanoError> {
        let bin = Self::find_binaries()?;
        let run_as = if is_root() { Some(SERVER_USER) } else { None };
        let dir = make_temp_dir()?;
        let mut pg = Self {
            dir,
            bin,
            port: 0,
            password: format!("{:016x}{:016x}", random_u64(), random_u64()),
            run_as,
            watcher: None,
        };
        // From here on, dropping `pg` removes the directory (and stops the server).
        pg.init()?;
        pg.watcher = pg.start_watcher().ok();
        pg.start_server()?;
        Ok(pg)
    }

    /// Where `initdb` and `pg_ctl` are: the first directory of `PATH` that has both, else
    /// the newest `/usr/lib/postgresql/<version>/bin`.
    ///
    /// # Errors
    /// [`CanoError::CheckpointStore`] naming the package to install when neither has them.
    pub fn find_binaries() -> Result<PathBuf, CanoError> {
        find_binaries_in(
            std::env::var_os("PATH").as_deref(),
            Path::new("/usr/lib/postgresql"),
        )
    }

    /// The TCP port the server listens on (on `127.0.0.1`).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding the cluster (`data/`), its log (`postgres.log`) and
    /// its Unix socket.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A connection URL for the database `postgres`, as the superuser `postgres`.
    #[must_use]
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A connection URL for `database`, as the superuser `postgres`.
    #[must_use]
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Create the database `name` (ASCII letters, digits and `_`, at most 63) and return
    /// its URL: one database per test keeps tests apart on one server.
    ///
    /// # Errors
    /// [`CanoError::CheckpointStore`] for a bad name, or when the server refuses (the
    /// database exists, say).
    pub async fn create_database(&self, name: &str) -> Result<String, CanoError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(CanoError::checkpoint_store(format!(
                "postgres: {name:?} is not a database name TempPostgres makes; use 1 to 63 \
                 ASCII letters, digits and `_`"
            )));
        }
        let failed = |e: tokio_postgres::Error| {
            CanoError::checkpoint_store(format!("postgres: create database {name:?}: {e}"))
        };
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .map_err(failed)?;
        let io = tokio::spawn(connection);
        let created = client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .map_err(failed);
        drop(client);
        let _ = io.await;
        created.map(|()| self.url_for(name))
    }

    /// Restart the server the way a crash would: `pg_ctl restart -m immediate` (no
    /// checkpoint; the server recovers from its write-ahead log), on the same port, on
    /// tokio's blocking pool. Every open connection is cut. For tests of what clients do
    /// when their database goes away and comes back.
    ///
    /// # Errors
    /// [`CanoError::CheckpointStore`] when `pg_ctl` fails, with the tail of the server's
    /// log.
    ///
    /// Dropping the future does not stop the restart.
    pub async fn restart(&self) -> Result<(), CanoError> {
        let mut cmd = self.command("pg_ctl");
        let log = self.dir.join("postgres.log");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .args(["-m", "immediate", "-w", "-t", "60", "-s", "restart"]);
        let as_other_user = self.run_as.is_some();
        tokio::task::spawn_blocking(move || {
            run_command(cmd, "pg_ctl restart", as_other_user).map_err(|e| {
                CanoError::checkpoint_store(format!(
                    "{}; server log ({}): {}",
                    e.message(),
                    log.display(),
                    log_tail(&log)
                ))
            })
        })
        .await
        .unwrap_or_else(|e| {
            Err(CanoError::checkpoint_store(format!(
                "postgres: restarting the throwaway server failed: {e}"
            )))
        })
    }

    /// Stop the server (`pg_ctl stop -m fast`) and delete its directory, on tokio's
    /// blocking pool.
    ///
    /// # Errors
    /// [`CanoError::CheckpointStore`] when `pg_ctl` fails or the directory cannot be
    /// removed; everything else is still attempted.
    pub async fn stop(self) -> Result<(), CanoError> {
        let mut this = self;
        tokio::task::spawn_blocking(move || this.shutdown())
            .await
            .unwrap_or_else(|e| {
                Err(CanoError::checkpoint_store(format!(
                    "postgres: stopping the throwaway server failed: {e}"
                )))
            })
    }

    /// A command for one of the server's programs, as the server's user.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Run `cmd`, with its output in the error when it fails.
    fn run(&self, cmd: Command, what: &str) -> Result<(), CanoError> {
        run_command(cmd, what, self.run_as.is_some())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `initdb`: the cluster, with password logins over TCP.
    fn init(&mut self) -> Result<(), CanoError> {
        if let Some(user) = self.run_as {
            let (uid, gid) = user_ids(user)?;
            std::os::unix::fs::chown(&self.dir, Some(uid), Some(gid)).map_err(|e| {
                CanoError::checkpoint_store(format!(
                    "postgres: cannot hand {} to the `{user}` user: {e}",
                    self.dir.display()
                ))
            })?;
        }
        let pwfile = self.dir.join("pwfile");
        let written = std::fs::File::create(&pwfile)
            .and_then(|mut f| writeln!(f, "{}", self.password))
            .and_then(|()| {
                std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644))
            });
        written.map_err(|e| {
            CanoError::checkpoint_store(format!("postgres: cannot write {}: {e}", pwfile.display()))
        })?;
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()));
        let result = self.run(cmd, "initdb");
        let _ = std::fs::remove_file(&pwfile);
        result
    }

    /// `pg_ctl start` on a free port (another port when it was taken meanwhile).
    fn start_server(&mut self) -> Result<(), CanoError> {
        let log = self.dir.join("postgres.log");
        let mut last = None;
        for _ in 0..5 {
            self.port = free_port()?;
            let mut cmd = self.command("pg_ctl");
            cmd.arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-s", "-o"])
                // pg_ctl hands these to a shell: the directory is quoted.
                .arg(format!(
                    "-p {} -k '{}' -c listen_addresses=127.0.0.1 -c max_connections={MAX_CONNECTIONS}",
                    self.port,
                    self.dir.display()
                ))
                .arg("start");
            match self.run(cmd, "pg_ctl start") {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let tail = log_tail(&log);
                    let port_taken = tail.contains("could not bind")
                        || tail.contains("could not create any TCP/IP sockets");
                    last = Some(CanoError::checkpoint_store(format!(
                        "{}; server log ({}): {tail}",
                        e.message(),
                        log.display()
                    )));
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| CanoError::checkpoint_store("postgres: pg_ctl start failed")))
    }

    /// A process that waits for this one to end (its stdin closes then) and stops the
    /// server and removes the directory: the cleanup for a process that never drops us.
    fn start_watcher(&self) -> std::io::Result<Child> {
        let script = r#"trap '' INT HUP QUIT
cat >/dev/null
if [ -n "$4" ]; then runuser -u "$4" -- "$1" -D "$2" -m immediate -w stop; else "$1" -D "$2" -m immediate -w stop; fi >/dev/null 2>&1
rm -rf "$3""#;
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("cano-temp-postgres-watcher")
            .arg(self.bin.join("pg_ctl"))
            .arg(self.data_dir())
            .arg(&self.dir)
            .arg(self.run_as.unwrap_or(""))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C meant for this program does not reach it.
            .process_group(0)
            .spawn()
    }

    /// Stop the server and remove the directory; report the first failure.
    fn shutdown(&mut self) -> Result<(), CanoError> {
        if let Some(mut watcher) = self.watcher.take() {
            let _ = watcher.kill();
            let _ = watcher.wait();
        }
        let mut result = Ok(());
        if self.data_dir().join("postmaster.pid").exists() {
            let mut cmd = self.command("pg_ctl");
            cmd.arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-t", "60", "-s", "stop"]);
            result = self.run(cmd, "pg_ctl stop");
        }
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
            && result.is_ok()
        {
            result = Err(CanoError::checkpoint_store(format!(
                "postgres: cannot remove {}: {e}",
                self.dir.display()
            )));
        }
        result
    }
}

impl Drop for TempPostgres {
    /// Stops the server and removes its directory, blocking until done (a fraction of a
    /// second); errors are ignored (use [`stop`](TempPostgres::stop) to see them).
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// [`TempPostgres::find_binaries`] over the search path `path` and the versioned
/// installations in `versions_dir` (`<dir>/<major>/bin`).
fn find_binaries_in(
    path: Option<&std::ffi::OsStr>,
    versions_dir: &Path,
) -> Result<PathBuf, CanoError> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = path
        && let Some(dir) = std::env::split_paths(path).find(|d| has_both(d))
    {
        return Ok(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(versions_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        CanoError::checkpoint_store(format!(
            "postgres: no PostgreSQL installation found (`initdb` and `pg_ctl` are neither \
             on PATH nor in {}/*/bin); install the `postgresql` package \
             (Debian/Ubuntu: `apt-get install postgresql`)",
            versions_dir.display()
        ))
    })
}

/// Run `cmd` (through `runuser` when `as_other_user`), with its output in the error when
/// it fails.
fn run_command(mut cmd: Command, what: &str, as_other_user: bool) -> Result<(), CanoError> {
    let output = cmd.output().map_err(|e| {
        let hint = if as_other_user && e.kind() == std::io::ErrorKind::NotFound {
            " (as root the server runs through `runuser`, from util-linux: install it)"
        } else {
            ""
        };
        CanoError::checkpoint_store(format!("postgres: cannot run {what}: {e}{hint}"))
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(CanoError::checkpoint_store(format!(
        "postgres: {what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim(),
        String::from_utf8_lossy(&output.stdout).trim(),
    )))
}

/// Whether this process runs as root.
fn is_root() -> bool {
    match std::fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0"),
    }
}

/// The uid and gid of `user`.
fn user_ids(user: &str) -> Result<(u32, u32), CanoError> {
    let id = |flag: &str| -> Option<u32> {
        let output = Command::new("id").args([flag, user]).output().ok()?;
        if !output.status.success() {
            return None;
        }
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    match (id("-u"), id("-g")) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err(CanoError::checkpoint_store(format!(
            "postgres: this process is root, and PostgreSQL does not run as root, but there \
             is no `{user}` user to run it as; create one (`useradd --system {user}`, which \
             the `postgresql` package does) or run as another user"
        ))),
    }
}

/// A fresh, private directory under the system's temporary directory.
fn make_temp_dir() -> Result<PathBuf, CanoError> {
    let base = std::env::temp_dir();
    if base.to_string_lossy().contains('\'') {
        return Err(CanoError::checkpoint_store(format!(
            "postgres: the temporary directory {} has a `'` in its path, which pg_ctl's \
             options cannot carry; set TMPDIR to another directory",
            base.display()
        )));
    }
    let mut last = None;
    for _ in 0..16 {
        let dir = base.join(format!(
            "cano-pg-{}-{:08x}",
            std::process::id(),
            random_u64() as u32
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(
                    |e| {
                        CanoError::checkpoint_store(format!(
                            "postgres: cannot set the mode of {}: {e}",
                            dir.display()
                        ))
                    },
                )?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    Err(CanoError::checkpoint_store(format!(
        "postgres: cannot make a temporary directory in {}: {}",
        base.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, CanoError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| CanoError::checkpoint_store(format!("postgres: no free TCP port: {e}")))
}

/// The last lines of the server's log.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}

/// 64 unpredictable bits (the standard library's per-process random hash keys).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_install(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for program in ["initdb", "pg_ctl"] {
            std::fs::write(dir.join(program), "").unwrap();
        }
    }

    #[test]
    fn binaries_come_from_path_first_then_the_newest_versioned_install() {
        let root = std::env::temp_dir().join(format!("cano-find-pg-{:x}", random_u64()));
        let versions = root.join("lib");
        fake_install(&versions.join("9").join("bin"));
        fake_install(&versions.join("16").join("bin"));
        fake_install(&versions.join("15").join("bin"));
        std::fs::create_dir_all(versions.join("notes")).unwrap();
        assert_eq!(
            find_binaries_in(None, &versions).unwrap(),
            versions.join("16").join("bin")
        );
        let on_path = root.join("path-bin");
        fake_install(&on_path);
        let path = std::env::join_paths([root.join("nothing"), on_path.clone()]).unwrap();
        assert_eq!(find_binaries_in(Some(&path), &versions).unwrap(), on_path);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn no_installation_names_the_package_to_install() {
        let missing = std::env::temp_dir().join(format!("cano-no-pg-{:x}", random_u64()));
        let err = find_binaries_in(Some(std::ffi::OsStr::new("")), &missing).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CanoError::CheckpointStore(_)), "{err:?}");
        assert!(text.contains("install the `postgresql` package"), "{text}");
    }
}
