//! The worker's persistent state: per database, the outcome of the last attempt and when
//! the next is due. The launcher is the only writer; `get_telemetry_status()` reads it.
//!
//! It lives in one small JSON file in the data directory (the working directory of every
//! server process), replaced atomically, so it survives restarts without a database
//! connection: the launcher is connected to no database.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::advisory::Advisory;

/// The state file, relative to the data directory.
pub const STATE_FILE: &str = "timescaledb_telemetry.state";
/// The directory of each database's last sent report, relative to the data directory:
/// `<oid>.json` (the last the endpoint has), `<oid>.sending` (the one in flight).
pub const SENT_DIR: &str = "timescaledb_telemetry.sent";

/// A file of [`SENT_DIR`]: database `oid`'s report, `extension` `json` or `sending`.
pub fn sent_path(oid: u32, extension: &str) -> std::path::PathBuf {
    Path::new(SENT_DIR).join(format!("{oid}.{extension}"))
}

/// How many attempts a database's history keeps (SPEC §9).
pub const HISTORY_LEN: usize = 30;

/// One attempt to report a database (SPEC §9, `get_telemetry_history()`). Times are Unix
/// seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: f64,
    /// The endpoint has the report (2xx, or written to the directory).
    pub ok: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// Size and SHA-256 (hex) of the exact body sent; none when no report was sent (the
    /// collector failed).
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
    /// How long the exchange took.
    pub ms: Option<u64>,
}

/// An advisory affecting the installed version, from the latest answer that carried
/// advisories, and when the launcher first saw it and last logged it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeenAdvisory {
    #[serde(flatten)]
    pub advisory: Advisory,
    pub first_seen: f64,
    pub last_logged: f64,
}

/// What is known about one database's reporting. Times are Unix seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DbStatus {
    /// Telemetry level in effect for the worker at the last attempt.
    pub level: Option<String>,
    /// Endpoint of the last attempt.
    pub endpoint: Option<String>,
    pub last_attempt: Option<f64>,
    pub last_success: Option<f64>,
    /// HTTP status of the last answer, if there was one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed; `None` after a success.
    pub last_error: Option<String>,
    pub latest_version: Option<String>,
    pub next_attempt: Option<f64>,
    /// Failures in a row, for the backoff.
    #[serde(default)]
    pub failures: u32,
    /// The last [`HISTORY_LEN`] attempts, oldest first.
    #[serde(default)]
    pub history: VecDeque<Attempt>,
}

impl DbStatus {
    /// Adds an attempt to the history, forgetting the oldest beyond [`HISTORY_LEN`].
    pub fn record(&mut self, attempt: Attempt) {
        self.history.push_back(attempt);
        while self.history.len() > HISTORY_LEN {
            self.history.pop_front();
        }
    }
}

/// Every database's status, keyed by database oid.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub databases: BTreeMap<u32, DbStatus>,
    /// The advisories that affect the installed version (cluster-wide: one library).
    #[serde(default)]
    pub advisories: Vec<SeenAdvisory>,
    /// The newest signature time of a signed answer used (Unix seconds): an older one is a
    /// replay.
    #[serde(default)]
    pub signed_at: Option<u64>,
}

impl State {
    /// Reads the state in `dir`; a missing file is an empty state (the worker then simply
    /// reports at once, as on a first start). A file that cannot be read or parsed is an
    /// error saying why: the launcher says so once and starts afresh (its next save replaces
    /// the file); the status shows an empty state meanwhile.
    pub fn load(dir: &Path) -> Result<State, String> {
        let path = dir.join(STATE_FILE);
        match fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        }
    }

    /// Writes the state to `dir` atomically.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        write_json_atomically(&dir.join(STATE_FILE), self)
    }
}

/// Replaces `path` with `value` as JSON (see [`write_atomically`]).
pub fn write_json_atomically(path: &Path, value: &impl Serialize) -> io::Result<()> {
    write_atomically(path, &serde_json::to_vec(value).map_err(io::Error::other)?)
}

/// Replaces `path` with `bytes`: written to a new temporary file, flushed to disk, then
/// renamed over it, and the directory flushed too (the rename itself is durable only then),
/// so a reader, a crash or a power loss never sees half a file.
///
/// The temporary file is created new (`O_EXCL`, never through a link someone placed in a
/// shared directory, such as an air-gapped endpoint's) under a name of this process's own,
/// and the rename replaces whatever `path` was, a link included, without following it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// As [`write_atomically`], but not flushed to disk: a reader still never sees half a file,
/// but after a power loss the file may be empty or gone. For what lives only while the
/// server runs (a collector's findings for the launcher): two flushes per visit were a
/// twentieth of a collector's life.
pub fn replace_transient(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if !durable {
        return Ok(());
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("tt_state_{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut state = State::default();
        state.databases.insert(5, DbStatus { last_status: Some(200), failures: 2, ..Default::default() });
        state.save(&dir).unwrap();
        assert_eq!(State::load(&dir), Ok(state));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A file as 0.1.0 and 0.2.0 wrote it (their `DbStatus` had these fields; the second
    /// entry, without `failures`, is as a hand-edited file might be).
    #[test]
    fn the_state_files_of_released_versions_load() {
        let dir = std::env::temp_dir().join(format!("tt_state_old_{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(STATE_FILE),
            br#"{"databases":{"16384":{"level":"basic","endpoint":"http://127.0.0.1:8099/v1/metrics",
                "last_attempt":1764000000.5,"last_success":1764000000.5,"last_status":200,
                "last_error":null,"latest_version":"0.1.0","next_attempt":1764086400.25,"failures":0},
              "16385":{"level":"off","endpoint":null,"last_attempt":null,"last_success":null,
                "last_status":null,"last_error":"HTTP status 503","latest_version":null,
                "next_attempt":1764000300.0}}}"#,
        )
        .unwrap();
        let state = State::load(&dir).unwrap();
        let a = &state.databases[&16384];
        assert_eq!(
            (a.latest_version.as_deref(), a.next_attempt, a.last_status),
            (Some("0.1.0"), Some(1764086400.25), Some(200))
        );
        let b = &state.databases[&16385];
        assert_eq!((b.last_error.as_deref(), b.failures), (Some("HTTP status 503"), 0));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_atomic_write_never_writes_through_a_planted_link() {
        let dir = std::env::temp_dir().join(format!("tt_state_link_{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, b"precious").unwrap();
        // Links at the target's name and at the names a temporary file had before.
        std::os::unix::fs::symlink(&victim, dir.join("out.json")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("out.json.tmp")).unwrap();
        write_atomically(&dir.join("out.json"), b"{}").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(dir.join("out.json")).unwrap(), b"{}");
        assert!(!fs::symlink_metadata(dir.join("out.json")).unwrap().file_type().is_symlink());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_an_empty_state_and_a_corrupt_one_says_why() {
        let dir = std::env::temp_dir().join(format!("tt_state_bad_{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(State::load(&dir), Ok(State::default()));
        fs::write(dir.join(STATE_FILE), b"{garbage").unwrap();
        let why = State::load(&dir).unwrap_err();
        assert!(why.contains(STATE_FILE) && why.contains("key must be a string"), "{why}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
