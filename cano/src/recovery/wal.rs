//! The write-ahead log of a [`RedbCheckpointStore`](super::RedbCheckpointStore).
//!
//! A row must be on disk before `append` returns, so every commit costs a disk sync. A redb
//! commit writes a copy-on-write path of the table (leaf, branches, header) and then
//! syncs; appending the row's few bytes to a log file and syncing that costs the sync
//! alone. So writes go to a log beside the database (`<database file>-wal`), one record
//! per write, one `fdatasync` per batch of writes; what the log holds is kept in memory
//! ([`Pending`]) and folded into the database in one durable redb transaction every few
//! thousand writes, when the store is dropped, and when the file is next opened after a
//! crash.
//!
//! Log file: a header of the 8-byte [`MAGIC`] and the log's epoch (`u64` LE), then
//! records `[body length: u32 LE][CRC-32C of epoch and body: u32 LE][body]`, with body
//! `[tag: u8][id length: u32 LE][id: UTF-8]` and then, by tag:
//!
//! * 1, an append: `[sequence: u64 LE][value: the rest]`;
//! * 2, a clear: nothing;
//! * 3, the clock of the batch of writes that follows (id empty): `[ms since the Unix
//!   epoch: u64 LE]`; the appends after it were written at that time;
//! * 4, a run's failure mark ([`RunStatus::Failed`](crate::recovery::RunStatus::Failed)):
//!   `[the error's text: UTF-8, the rest]`.
//!
//! Tags 3 and 4 came with run times and failure marks; a log holding them is refused
//! (unchanged) by a cano that predates them, so open a crashed database with the cano
//! that wrote it. A record cut short or failing its checksum ends the log: it was being
//! written when the process died, so its write never returned `Ok`. A zero length ends it
//! too.
//!
//! The file is allocated ahead ([`PREALLOCATE`] bytes, zeros) and reused after each fold:
//! a sync of bytes written inside a file's allocated length is a data sync only, while a
//! sync that grows the file also commits the file system's journal (measured on ext4:
//! ~55–65 µs against ~85 µs per sync). Reuse leaves the old records behind the new ones,
//! so a fold bumps the epoch in the header: old records fail the checksum under the new
//! epoch and end the log there.
//!
//! Replaying is idempotent: [`Pending`] holds the net effect of the logged writes (per
//! id: whether its earlier rows were cleared, and the rows appended since), and applying a
//! net effect to a database that already holds some or all of it gives the same table.
//! So a crash between a fold and the log's reset loses nothing and repeats nothing.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
#[cfg(not(unix))]
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The first bytes of every log file (format version 1).
pub(super) const MAGIC: &[u8; 8] = b"CANOWAL\x01";
/// Magic and epoch.
pub(super) const HEADER_LEN: usize = 16;
/// Bytes the log file is given up front.
pub(super) const PREALLOCATE: u64 = FOLD_BYTES + (1 << 20);

const TAG_APPEND: u8 = 1;
const TAG_CLEAR: u8 = 2;
const TAG_CLOCK: u8 = 3;
const TAG_FAILED: u8 = 4;

/// Fold the log into the database once it holds this many writes...
pub(super) const FOLD_WRITES: usize = 4096;
/// ...or this many bytes.
pub(super) const FOLD_BYTES: u64 = 4 << 20;

/// The log file that belongs to the database at `db_path`: `<file name>-wal`, beside it.
pub(super) fn log_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_os_string();
    name.push("-wal");
    PathBuf::from(name)
}

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC32C: [u32; 256] = crc32c_table();

/// Feed `bytes` to a running CRC-32C (Castagnoli) state.
fn crc32c_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC32C[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

/// CRC-32C of `bytes`.
#[cfg(test)]
fn crc32c(bytes: &[u8]) -> u32 {
    !crc32c_update(!0, bytes)
}

/// A record's checksum: CRC-32C of the log's epoch and the record's body.
fn checksum(epoch: u64, body: &[u8]) -> u32 {
    !crc32c_update(crc32c_update(!0, &epoch.to_le_bytes()), body)
}

/// A log header for `epoch`.
fn header(epoch: u64) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&epoch.to_le_bytes());
    h
}

/// One logged write.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record<'a> {
    Append {
        workflow_id: &'a str,
        sequence: u64,
        value: &'a [u8],
    },
    Clear {
        workflow_id: &'a str,
    },
    /// The time the appends after it were written at.
    Clock {
        ms: u64,
    },
    /// The run returned an error; its log stays.
    Failed {
        workflow_id: &'a str,
        error: &'a str,
    },
}

/// Append the encoding of `record`, for a log at `epoch`, to `out`.
pub(super) fn encode(record: &Record<'_>, epoch: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]); // length and checksum, filled in below
    let (tag, id) = match record {
        Record::Append { workflow_id, .. } => (TAG_APPEND, *workflow_id),
        Record::Clear { workflow_id } => (TAG_CLEAR, *workflow_id),
        Record::Clock { .. } => (TAG_CLOCK, ""),
        Record::Failed { workflow_id, .. } => (TAG_FAILED, *workflow_id),
    };
    out.push(tag);
    out.extend_from_slice(&len_u32(id.len()).to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    match record {
        Record::Append {
            sequence, value, ..
        } => {
            out.extend_from_slice(&sequence.to_le_bytes());
            out.extend_from_slice(value);
        }
        Record::Clock { ms } => out.extend_from_slice(&ms.to_le_bytes()),
        Record::Failed { error, .. } => out.extend_from_slice(error.as_bytes()),
        Record::Clear { .. } => {}
    }
    let body = &out[start + 8..];
    let (len, crc) = (len_u32(body.len()), checksum(epoch, body));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A length as stored in the log. Rows reach the log through `append`, whose values are
/// far below 4 GiB; a larger one is refused before it gets here ([`fits`]).
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Whether a write of an id and a value of these lengths can be logged (a record's body
/// length is a `u32`).
pub(super) fn fits(id_len: usize, value_len: usize) -> bool {
    // Tag (1), id length (4), id, sequence (8), value.
    id_len
        .checked_add(value_len)
        .and_then(|n| n.checked_add(13))
        .is_some_and(|n| u32::try_from(n).is_ok())
}

/// The records of a log file's contents, up to the first one that was cut short, fails
/// its checksum, or has length zero.
///
/// # Errors
/// The file does not start with [`MAGIC`], or a record with a valid checksum does not
/// parse (it was not written by this code): a description of what is wrong.
pub(super) fn decode(bytes: &[u8]) -> Result<Vec<Record<'_>>, String> {
    if !bytes.starts_with(MAGIC) {
        // A log whose creation was cut short (part of the magic, then zeros or nothing)
        // never had a record synced: it is empty.
        let matched = bytes.iter().zip(MAGIC).take_while(|(a, b)| a == b).count();
        let unfinished = bytes[matched..bytes.len().min(HEADER_LEN)]
            .iter()
            .all(|&b| b == 0);
        if unfinished {
            return Ok(Vec::new());
        }
        return Err("it does not start with the cano checkpoint log header".to_string());
    }
    let Some(epoch) = bytes.get(8..HEADER_LEN) else {
        return Ok(Vec::new()); // the same, cut inside the epoch
    };
    let epoch = u64::from_le_bytes(epoch.try_into().map_err(|_| "short header".to_string())?);
    let mut rest = &bytes[HEADER_LEN..];
    let mut records = Vec::new();
    while rest.len() >= 8 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len == 0 {
            break; // the zeros after the last record
        }
        let Some(body) = rest.get(8..8 + len) else {
            break; // cut short
        };
        if checksum(epoch, body) != crc {
            break; // torn write, or a record of an earlier epoch
        }
        let offset = bytes.len() - rest.len();
        records.push(parse_body(body).ok_or_else(|| {
            format!("the record at byte {offset} has a valid checksum but does not parse")
        })?);
        rest = &rest[8 + len..];
    }
    Ok(records)
}

fn parse_body(body: &[u8]) -> Option<Record<'_>> {
    let (&tag, rest) = body.split_first()?;
    let id_len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let id = std::str::from_utf8(rest.get(4..4 + id_len)?).ok()?;
    let rest = &rest[4 + id_len..];
    match tag {
        TAG_APPEND => {
            let sequence = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
            Some(Record::Append {
                workflow_id: id,
                sequence,
                value: &rest[8..],
            })
        }
        TAG_CLEAR if rest.is_empty() => Some(Record::Clear { workflow_id: id }),
        TAG_CLOCK if id.is_empty() && rest.len() == 8 => Some(Record::Clock {
            ms: u64::from_le_bytes(rest.try_into().ok()?),
        }),
        TAG_FAILED => Some(Record::Failed {
            workflow_id: id,
            error: std::str::from_utf8(rest).ok()?,
        }),
        _ => None,
    }
}

/// The net effect of the writes logged since the last fold, per workflow id.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) runs: HashMap<String, PendingRun>,
    /// Writes logged since the last fold.
    pub(super) writes: usize,
    /// When the writes being logged (or replayed) were written: the last
    /// [`Record::Clock`]'s time (`None` before any, as in a log of an earlier cano).
    pub(super) clock: Option<u64>,
}

/// What a run's logged writes say about its failure mark.
#[derive(Default, Debug, Clone, PartialEq)]
pub(super) enum Mark {
    /// Nothing: the table's mark (if any) stands.
    #[default]
    Keep,
    /// The run failed with this error.
    Set(String),
    /// A row came after the failure (or the log was cleared): no mark.
    Unset,
}

/// When a run was written, and its failure mark, as its logged writes say.
#[derive(Default, Debug, Clone, PartialEq)]
pub(super) struct PendingMeta {
    /// When the first row logged since the run's last clear (or since the last fold, for a
    /// run not cleared) was written.
    pub(super) started_ms: Option<u64>,
    /// When the last logged row was written.
    pub(super) updated_ms: Option<u64>,
    pub(super) failed: Mark,
}

/// The net effect of the logged writes of one id.
#[derive(Default, Debug, PartialEq)]
pub(super) struct PendingRun {
    /// The id's rows in the database are gone (a clear was logged).
    pub(super) cleared: bool,
    /// Whether the database held any row of this id when it was first asked (`None`: not
    /// asked). The database changes only at folds, which start over, so the answer holds.
    pub(super) stored: Option<bool>,
    /// Rows appended since the last clear (or fold), by sequence: encoded values.
    pub(super) rows: BTreeMap<u64, Vec<u8>>,
    /// Times and failure mark.
    pub(super) meta: PendingMeta,
}

/// How to take back one write of a batch whose log write failed. Borrows the id from the
/// write, so staging a write allocates nothing for it.
pub(super) enum Undo<'a> {
    Append {
        workflow_id: &'a str,
        sequence: u64,
        before: PendingMeta,
    },
    Clear {
        workflow_id: &'a str,
        before: Option<PendingRun>,
    },
    Failed {
        workflow_id: &'a str,
        before: Mark,
    },
}

impl Pending {
    /// Record a logged append.
    pub(super) fn append<'a>(
        &mut self,
        workflow_id: &'a str,
        sequence: u64,
        value: Vec<u8>,
    ) -> Undo<'a> {
        let run = match self.runs.get_mut(workflow_id) {
            Some(run) => run,
            None => self.runs.entry(workflow_id.to_owned()).or_default(),
        };
        run.rows.insert(sequence, value);
        let before = run.meta.clone_times();
        let meta = &mut run.meta;
        if let Some(now) = self.clock {
            meta.started_ms.get_or_insert(now);
            meta.updated_ms = Some(meta.updated_ms.map_or(now, |t| t.max(now)));
        }
        let before = PendingMeta {
            failed: std::mem::replace(&mut meta.failed, Mark::Unset),
            ..before
        };
        self.writes += 1;
        Undo::Append {
            workflow_id,
            sequence,
            before,
        }
    }

    /// Record a logged failure mark.
    pub(super) fn fail<'a>(&mut self, workflow_id: &'a str, error: String) -> Undo<'a> {
        let run = match self.runs.get_mut(workflow_id) {
            Some(run) => run,
            None => self.runs.entry(workflow_id.to_owned()).or_default(),
        };
        let before = std::mem::replace(&mut run.meta.failed, Mark::Set(error));
        self.writes += 1;
        Undo::Failed {
            workflow_id,
            before,
        }
    }

    /// Record a logged clear.
    pub(super) fn clear<'a>(&mut self, workflow_id: &'a str) -> Undo<'a> {
        let cleared = PendingRun {
            cleared: true,
            stored: None,
            rows: BTreeMap::new(),
            meta: PendingMeta {
                failed: Mark::Unset,
                ..PendingMeta::default()
            },
        };
        let before = match self.runs.get_mut(workflow_id) {
            Some(run) => {
                let before = std::mem::replace(run, cleared);
                // What is known about the table stays true.
                run.stored = before.stored;
                Some(before)
            }
            None => {
                self.runs.insert(workflow_id.to_owned(), cleared);
                None
            }
        };
        self.writes += 1;
        Undo::Clear {
            workflow_id,
            before,
        }
    }

    /// Note whether the table held rows of `workflow_id` (see [`PendingRun::stored`]).
    pub(super) fn set_stored(&mut self, workflow_id: &str, stored: bool) {
        match self.runs.get_mut(workflow_id) {
            Some(run) => run.stored = Some(stored),
            None => {
                let run = PendingRun {
                    stored: Some(stored),
                    ..PendingRun::default()
                };
                self.runs.insert(workflow_id.to_owned(), run);
            }
        }
    }

    /// Take back writes, the last one first.
    pub(super) fn undo(&mut self, undo: Vec<Undo<'_>>) {
        for step in undo.into_iter().rev() {
            self.writes = self.writes.saturating_sub(1);
            match step {
                Undo::Append {
                    workflow_id,
                    sequence,
                    before,
                } => {
                    if let Some(run) = self.runs.get_mut(workflow_id) {
                        run.rows.remove(&sequence);
                        run.meta = before;
                    }
                }
                Undo::Failed {
                    workflow_id,
                    before,
                } => {
                    if let Some(run) = self.runs.get_mut(workflow_id) {
                        run.meta.failed = before;
                    }
                }
                Undo::Clear {
                    workflow_id,
                    before: Some(before),
                } => {
                    self.runs.insert(workflow_id.to_owned(), before);
                }
                Undo::Clear {
                    workflow_id,
                    before: None,
                } => {
                    self.runs.remove(workflow_id);
                }
            }
        }
    }

    /// Replay a record read back from the log.
    pub(super) fn replay(&mut self, record: &Record<'_>) {
        match *record {
            Record::Append {
                workflow_id,
                sequence,
                value,
            } => {
                self.append(workflow_id, sequence, value.to_vec());
            }
            Record::Clear { workflow_id } => {
                self.clear(workflow_id);
            }
            Record::Clock { ms } => self.clock = Some(ms),
            Record::Failed { workflow_id, error } => {
                self.fail(workflow_id, error.to_owned());
            }
        }
    }
}

impl PendingMeta {
    /// The times, without the failure mark.
    fn clone_times(&self) -> Self {
        Self {
            started_ms: self.started_ms,
            updated_ms: self.updated_ms,
            failed: Mark::Keep,
        }
    }
}

/// The open log file.
pub(super) struct Log {
    path: PathBuf,
    file: File,
    /// The epoch in the header: every record's checksum covers it.
    epoch: u64,
    /// Bytes of valid log, header included: the next records are written here.
    len: u64,
    /// Set when a write or a disk sync failed: what reached the disk is unknown, so nothing
    /// more is written (the next open replays what did).
    broken: Option<String>,
}

impl Log {
    /// Create (or empty) the log at `path`, durably: header written, space allocated,
    /// directory entry synced.
    ///
    /// # Errors
    /// The I/O error, as text.
    pub(super) fn create(path: &Path) -> Result<Self, String> {
        let epoch = 1;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .map_err(|e| e.to_string())?;
        file.write_all(&header(epoch)).map_err(|e| e.to_string())?;
        file.set_len(PREALLOCATE).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        sync_parent(path);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            epoch,
            len: HEADER_LEN as u64,
            broken: None,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The epoch records written now must be encoded for.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Bytes of log, header included.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Write `bytes` (whole records) at the end of the log and sync them to disk.
    ///
    /// # Errors
    /// What went wrong, ready for the user: the write or the sync failed, and the log
    /// refuses every later write.
    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let written =
            write_at(&mut self.file, bytes, self.len).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Part of it may be on disk: whole records, readable on the next open. Writing
            // on after it could leave some of them behind valid new records, so stop here.
            let why = format!(
                "checkpoint log {}: a write failed ({e}); whether it reached the disk is unknown, so the store refuses further writes: drop it and open the file again (the rows whose writes failed may or may not be there)",
                self.path.display()
            );
            self.broken = Some(why.clone());
            return Err(why);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Start the log over after a fold (its records are in the database now): a new epoch
    /// in the header, records from just after it. The header reaches the disk with the
    /// next write's sync; until then the old header and records are there, and replay to
    /// the same result. If the header cannot be written, the log goes on as it was.
    pub(super) fn reset(&mut self) {
        let epoch = self.epoch.wrapping_add(1);
        if write_at(&mut self.file, &header(epoch), 0).is_ok() {
            self.epoch = epoch;
            self.len = HEADER_LEN as u64;
        }
    }
}

/// Write all of `bytes` at `offset`.
#[cfg(unix)]
fn write_at(file: &mut File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, offset)
}

/// Write all of `bytes` at `offset`.
#[cfg(not(unix))]
fn write_at(file: &mut File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// The directory `path` is in: its parent, or `.` for a bare file name.
pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Make a new directory entry in `path`'s directory durable (best effort: not every
/// platform can open a directory).
fn sync_parent(path: &Path) {
    if let Ok(d) = File::open(parent_dir(path)) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: u64 = 7;

    /// Three records. Their last bytes are not zero, so a copy cut inside one and padded
    /// with zeros never reads back as whole.
    fn sample() -> Vec<u8> {
        let mut log = header(EPOCH).to_vec();
        encode(
            &Record::Append {
                workflow_id: "run-1",
                sequence: 0,
                value: &[1, 65, 1, 116, 0, 3],
            },
            EPOCH,
            &mut log,
        );
        encode(
            &Record::Clear {
                workflow_id: "run-1",
            },
            EPOCH,
            &mut log,
        );
        encode(
            &Record::Append {
                workflow_id: "ünï",
                sequence: u64::MAX,
                value: &[],
            },
            EPOCH,
            &mut log,
        );
        log
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn the_record_format_is_fixed() {
        // Logs written by one version must read in the next: these bytes were computed
        // independently (a bitwise CRC-32C over the epoch's 8 bytes and the body).
        let mut out = Vec::new();
        encode(&Record::Clear { workflow_id: "a" }, 1, &mut out);
        assert_eq!(out, [6, 0, 0, 0, 185, 189, 92, 82, 2, 1, 0, 0, 0, 97]);
        out.clear();
        encode(
            &Record::Append {
                workflow_id: "r",
                sequence: 5,
                value: &[9, 8],
            },
            1,
            &mut out,
        );
        assert_eq!(
            out,
            [
                16, 0, 0, 0, 32, 14, 114, 249, 1, 1, 0, 0, 0, 114, 5, 0, 0, 0, 0, 0, 0, 0, 9, 8
            ]
        );
        assert_eq!(header(1), *b"CANOWAL\x01\x01\0\0\0\0\0\0\0");
    }

    #[test]
    fn records_round_trip() {
        let log = sample();
        assert_eq!(
            decode(&log).unwrap(),
            [
                Record::Append {
                    workflow_id: "run-1",
                    sequence: 0,
                    value: &[1, 65, 1, 116, 0, 3],
                },
                Record::Clear {
                    workflow_id: "run-1"
                },
                Record::Append {
                    workflow_id: "ünï",
                    sequence: u64::MAX,
                    value: &[],
                },
            ]
        );
    }

    #[test]
    fn a_log_cut_anywhere_reads_back_as_its_whole_records() {
        let log = sample();
        let all = decode(&log).unwrap();
        let mut ends = vec![HEADER_LEN];
        ends.extend(record_ends(&log));
        for cut in 0..=log.len() {
            let whole = ends.iter().filter(|&&e| e <= cut).count().saturating_sub(1);
            // Cut short, or followed by the zeros of the allocated space: the same.
            let mut padded = log[..cut].to_vec();
            padded.resize(log.len() + 64, 0);
            assert_eq!(
                decode(&padded).unwrap(),
                all[..whole],
                "cut at {cut}, zeros after"
            );
            let read = decode(&log[..cut]).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(read, all[..whole], "cut at {cut}");
        }
    }

    /// Where each record of `log` ends.
    fn record_ends(log: &[u8]) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut at = HEADER_LEN;
        while at < log.len() {
            let len = u32::from_le_bytes(log[at..at + 4].try_into().unwrap()) as usize;
            at += 8 + len;
            ends.push(at);
        }
        ends
    }

    #[test]
    fn a_damaged_record_ends_the_log() {
        let log = sample();
        let ends = record_ends(&log);
        assert_eq!(ends.len(), 3);
        for at in HEADER_LEN..log.len() {
            let mut damaged = log.clone();
            damaged[at] ^= 0x40;
            // The records before the damaged one are read; nothing from it on. (A flip in
            // a length field may also make the record look cut short: the same.)
            let intact = ends.iter().filter(|&&end| end <= at).count();
            let read = decode(&damaged).unwrap_or_else(|e| panic!("flip at {at}: {e}"));
            assert_eq!(read.len(), intact, "flip at {at}");
        }
    }

    #[test]
    fn records_of_an_earlier_epoch_end_the_log() {
        // A reused log: a new header and one new record over the old ones.
        let old = sample();
        let mut log = header(EPOCH + 1).to_vec();
        encode(&Record::Clear { workflow_id: "x" }, EPOCH + 1, &mut log);
        let mut reused = old.clone();
        reused[..log.len()].copy_from_slice(&log);
        // The old records after the new one are not read.
        assert_eq!(
            decode(&reused).unwrap(),
            [Record::Clear { workflow_id: "x" }]
        );
        // Nor are old records under a new header with nothing written yet.
        let mut fresh = old;
        fresh[..HEADER_LEN].copy_from_slice(&header(EPOCH + 1));
        assert_eq!(decode(&fresh).unwrap(), []);
    }

    #[test]
    fn a_foreign_file_is_refused() {
        assert!(decode(b"SQLite format 3\0").is_err());
        assert!(decode(b"CANOWAL\x02\0\0\0\0\0\0\0\0").is_err());
        // A header cut short while the log was being created is an empty log.
        assert_eq!(decode(b"CANO").unwrap(), []);
        assert_eq!(decode(b"").unwrap(), []);
    }

    #[test]
    fn a_checksummed_record_that_does_not_parse_is_an_error() {
        let mut log = header(EPOCH).to_vec();
        let body = [9u8, 0, 0, 0, 0]; // unknown tag
        log.extend_from_slice(&(body.len() as u32).to_le_bytes());
        log.extend_from_slice(&checksum(EPOCH, &body).to_le_bytes());
        log.extend_from_slice(&body);
        let err = decode(&log).unwrap_err();
        assert!(err.contains("byte 16"), "{err}");
        // A clear with bytes after its id is not one either.
        let mut log = header(EPOCH).to_vec();
        let body = [TAG_CLEAR, 1, 0, 0, 0, b'a', 0];
        log.extend_from_slice(&(body.len() as u32).to_le_bytes());
        log.extend_from_slice(&checksum(EPOCH, &body).to_le_bytes());
        log.extend_from_slice(&body);
        assert!(decode(&log).is_err());
    }

    #[test]
    fn pending_keeps_the_net_effect_and_undoes_in_reverse() {
        let mut p = Pending::default();
        p.append("a", 0, vec![1]);
        p.append("a", 1, vec![2]);
        let before = p.runs.get("a").map(|r| r.rows.clone());
        let undo = vec![p.clear("a"), p.append("a", 0, vec![3])];
        assert_eq!(
            p.runs["a"],
            PendingRun {
                cleared: true,
                stored: None,
                rows: BTreeMap::from([(0, vec![3])]),
                meta: PendingMeta {
                    failed: Mark::Unset,
                    ..PendingMeta::default()
                },
            }
        );
        assert_eq!(p.writes, 4);
        p.undo(undo);
        assert_eq!(p.runs.get("a").map(|r| r.rows.clone()), before);
        assert!(!p.runs["a"].cleared);
        assert_eq!(p.writes, 2);
        // Undoing a clear of an id never seen removes it again.
        let undo = vec![p.clear("b")];
        p.undo(undo);
        assert!(!p.runs.contains_key("b"));
    }

    #[test]
    fn times_follow_the_clock_and_marks_are_taken_back_by_appends_and_undone() {
        let mut p = Pending::default();
        // Replayed from a log of an earlier cano: no clock, no times.
        p.append("a", 0, vec![1]);
        assert_eq!(
            p.runs["a"].meta,
            PendingMeta {
                failed: Mark::Unset,
                ..PendingMeta::default()
            }
        );
        p.clock = Some(10);
        p.append("a", 1, vec![2]);
        p.clock = Some(20);
        p.append("a", 2, vec![3]);
        let meta = &p.runs["a"].meta;
        assert_eq!((meta.started_ms, meta.updated_ms), (Some(10), Some(20)));
        let undo = vec![p.fail("a", "boom".into())];
        assert_eq!(p.runs["a"].meta.failed, Mark::Set("boom".into()));
        p.undo(undo);
        assert_eq!(p.runs["a"].meta.failed, Mark::Unset);
        p.fail("a", "boom".into());
        p.clock = Some(30);
        let undo = vec![p.append("a", 3, vec![4])];
        assert_eq!(p.runs["a"].meta.failed, Mark::Unset);
        assert_eq!(p.runs["a"].meta.updated_ms, Some(30));
        p.undo(undo);
        let meta = &p.runs["a"].meta;
        assert_eq!(meta.failed, Mark::Set("boom".into()));
        assert_eq!((meta.started_ms, meta.updated_ms), (Some(10), Some(20)));
        // A clear starts the times over and drops the mark.
        p.clear("a");
        p.append("a", 0, vec![5]);
        let meta = &p.runs["a"].meta;
        assert_eq!((meta.started_ms, meta.updated_ms), (Some(30), Some(30)));
        assert_eq!(meta.failed, Mark::Unset);
    }

    #[test]
    fn clock_and_failure_records_round_trip() {
        let mut log = header(EPOCH).to_vec();
        encode(
            &Record::Clock {
                ms: 1_764_950_400_123,
            },
            EPOCH,
            &mut log,
        );
        encode(
            &Record::Failed {
                workflow_id: "run-1",
                error: "Task execution error: ünï",
            },
            EPOCH,
            &mut log,
        );
        assert_eq!(
            decode(&log).unwrap(),
            [
                Record::Clock {
                    ms: 1_764_950_400_123
                },
                Record::Failed {
                    workflow_id: "run-1",
                    error: "Task execution error: ünï",
                },
            ]
        );
        // The format is fixed: a clock record, byte for byte.
        let mut out = Vec::new();
        encode(&Record::Clock { ms: 1 }, 1, &mut out);
        assert_eq!(&out[..4], &[13, 0, 0, 0]);
        assert_eq!(&out[8..], &[3, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_clear_keeps_what_is_known_about_the_database() {
        let mut p = Pending::default();
        p.set_stored("a", false);
        p.clear("a");
        assert_eq!(p.runs["a"].stored, Some(false));
    }

    #[test]
    fn the_log_lives_beside_its_database() {
        assert_eq!(
            log_path(Path::new("/var/lib/app/ckpt.redb")),
            Path::new("/var/lib/app/ckpt.redb-wal")
        );
        assert_eq!(log_path(Path::new("ckpt.redb")), Path::new("ckpt.redb-wal"));
    }

    #[test]
    fn only_lengths_that_fit_a_record_are_accepted() {
        assert!(fits(10, 1 << 20));
        assert!(!fits(usize::MAX, 0));
        assert!(!fits(0, u32::MAX as usize));
    }

    #[test]
    fn appends_are_read_back_and_reset_starts_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-wal");
        let mut log = Log::create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PREALLOCATE);
        let record = |log: &Log| {
            let mut bytes = Vec::new();
            encode(&Record::Clear { workflow_id: "a" }, log.epoch(), &mut bytes);
            bytes
        };
        let bytes = record(&log);
        log.append(&bytes).unwrap();
        log.append(&bytes).unwrap();
        assert_eq!(log.len(), (HEADER_LEN + 2 * bytes.len()) as u64);
        assert_eq!(decode(&std::fs::read(&path).unwrap()).unwrap().len(), 2);
        log.reset();
        assert_eq!(log.len(), HEADER_LEN as u64);
        assert_eq!(decode(&std::fs::read(&path).unwrap()).unwrap(), []);
        log.append(&record(&log)).unwrap();
        assert_eq!(decode(&std::fs::read(&path).unwrap()).unwrap().len(), 1);
        // The space stays allocated.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), PREALLOCATE);
    }
}
