//! Process-level crash testing: the test binary re-executes itself as a child driver,
//! which the test kills with SIGKILL at random points.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Set in the child: which role it plays (`fresh`, `resume`, …).
pub const MODE_VAR: &str = "CANO_CRASH_MODE";
/// Set in the child: the directory holding the database and the side-effect log.
pub const DIR_VAR: &str = "CANO_CRASH_DIR";

/// A command re-running this test binary as a driver: only the test named `entry` runs,
/// with `mode` and `dir` in its environment.
pub fn driver(entry: &str, mode: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", entry, "--nocapture", "--test-threads=1"])
        .env(MODE_VAR, mode)
        .env(DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// Run the driver to completion; returns its stdout. Panics if it exits non-zero.
pub fn run_to_end(entry: &str, mode: &str, dir: &Path) -> String {
    let out = driver(entry, mode, dir).output().expect("run driver");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{mode} driver failed: {stdout}");
    stdout
}

/// Start the driver, SIGKILL it after `delay`, and return what it printed.
pub fn run_and_kill(entry: &str, mode: &str, dir: &Path, delay: std::time::Duration) -> String {
    let mut child = driver(entry, mode, dir).spawn().expect("spawn");
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL on unix; the child may already have exited
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Start the driver, wait until it prints a line containing `marker` (or ends), then
/// SIGKILL it after `delay`; returns everything it printed.
pub fn run_and_kill_after(
    entry: &str,
    mode: &str,
    dir: &Path,
    marker: &str,
    delay: std::time::Duration,
) -> String {
    use std::io::{BufRead, BufReader, Read};
    let mut child = driver(entry, mode, dir).spawn().expect("spawn");
    let mut printed = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap_or(0) > 0 {
        printed.push_str(&line);
        let seen = line.contains(marker);
        line.clear();
        if seen {
            break;
        }
    }
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = stdout.read_to_string(&mut printed);
    let _ = child.wait();
    printed
}

/// How long a whole run takes after the driver printed `marker`: used to spread kill
/// delays over the run on this machine, however fast its disk is.
pub fn run_length_after(entry: &str, mode: &str, marker: &str) -> std::time::Duration {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = driver(entry, mode, dir.path()).spawn().expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let mut started = None;
    while stdout.read_line(&mut line).unwrap_or(0) > 0 {
        if started.is_none() && line.contains(marker) {
            started = Some(std::time::Instant::now());
        }
        line.clear();
    }
    let _ = child.wait();
    started.map_or(std::time::Duration::from_millis(20), |t| t.elapsed())
}

/// Append one line to the side-effect log, in one write call (a kill never leaves half
/// a line).
pub fn record(dir: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sidefx.log"))?;
    f.write_all(format!("{line}\n").as_bytes())
}

/// The side-effect log, one entry per line.
pub fn side_effects(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("sidefx.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Fold adjacent repeats (the state at a crash point runs again on resume).
pub fn folded(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        if out.last() != Some(l) {
            out.push(l.clone());
        }
    }
    out
}

/// A small xorshift generator: random kill delays, reproducible from a seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `CANO_CRASH_SEED` if set, else the clock; `salt` separates tests.
    pub fn from_env(salt: u64) -> Self {
        let seed = std::env::var("CANO_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            ^ salt;
        eprintln!("crash suite seed {seed} (set CANO_CRASH_SEED to repeat)");
        Self(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A current-thread runtime for driver bodies and post-crash checks.
/// Milliseconds since the Unix epoch (what drivers print, to compare across processes).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Print `line` to stdout and flush it at once (the parent reads it to time a kill).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The number after `marker` in `printed` (the last word of its line).
pub fn number_after(printed: &str, marker: &str) -> Option<u64> {
    printed
        .lines()
        .find_map(|l| l.split_once(marker).map(|(_, rest)| rest))
        .and_then(|rest| rest.split_whitespace().last())
        .and_then(|n| n.parse().ok())
}

/// The body of a `*_driver_entry` test. In a normal test run (no [`MODE_VAR`]) it does
/// nothing. In a driver it starts a watchdog (a hung driver must not hang the suite),
/// runs `run(mode, dir)` on a fresh runtime — it opens the store and starts or resumes
/// the workflow — and ends the process: `COMPLETED <state>` and exit 0 when the run
/// reached an exit state, `NO_ROWS` and exit 0 when a resume found the run already
/// finished, `FAILED <error>` and exit 1 otherwise.
pub fn drive<S, F>(run: impl FnOnce(String, std::path::PathBuf) -> F)
where
    S: std::fmt::Debug,
    F: std::future::Future<Output = Result<S, cano::CanoError>>,
{
    let Ok(mode) = std::env::var(MODE_VAR) else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var(DIR_VAR).expect("crash dir"));
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_secs(60));
        say("WATCHDOG");
        std::process::exit(99);
    });
    let resuming = mode == "resume";
    let code = runtime().block_on(async {
        match run(mode, dir).await {
            Ok(state) => {
                say(&format!("COMPLETED {state:?}"));
                0
            }
            Err(e) if resuming && e.message().contains("no checkpoint rows") => {
                say("NO_ROWS");
                0
            }
            Err(e) => {
                say(&format!("FAILED {e}"));
                1
            }
        }
    });
    std::process::exit(code);
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A driver process whose stdout is read line by line, to kill it at a marker.
pub struct Driver {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
    /// Everything it printed so far.
    pub printed: String,
}

impl Driver {
    /// Spawn `cmd` (a [`driver`] command, with any extra environment set).
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("spawn driver");
        let out = std::io::BufReader::new(child.stdout.take().expect("driver stdout"));
        Self {
            child,
            out,
            printed: String::new(),
        }
    }

    /// Read until a line holding `marker`; returns the rest of that line, or `None` if
    /// the driver ended first.
    pub fn until(&mut self, marker: &str) -> Option<String> {
        use std::io::BufRead;
        let mut line = String::new();
        loop {
            line.clear();
            if self.out.read_line(&mut line).unwrap_or(0) == 0 {
                return None;
            }
            self.printed.push_str(&line);
            // (The test harness prints the driver's first line after its own text.)
            if let Some((_, rest)) = line.trim_end().split_once(marker) {
                return Some(rest.trim().to_string());
            }
        }
    }

    /// SIGKILL the driver (it may have ended already); returns all it printed.
    pub fn kill(mut self) -> String {
        use std::io::Read;
        let _ = self.child.kill();
        let _ = self.out.read_to_string(&mut self.printed);
        let _ = self.child.wait();
        std::mem::take(&mut self.printed)
    }

    /// Let the driver run to its end; returns all it printed. Panics if it failed.
    pub fn finish(mut self) -> String {
        use std::io::Read;
        let _ = self.out.read_to_string(&mut self.printed);
        let status = self.child.wait().expect("wait for driver");
        assert!(
            status.success(),
            "driver failed ({status}):\n{}",
            self.printed
        );
        std::mem::take(&mut self.printed)
    }
}

/// A test that fails midway does not leave its driver running.
impl Drop for Driver {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
