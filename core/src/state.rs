//! The worker's persistent state: per database, the outcome of the last attempt and when
//! the next is due. The launcher is the only writer; `get_telemetry_status()` reads it.
//!
//! It lives in one small JSON file in the data directory (the working directory of every
//! server process), replaced atomically, so it survives restarts without a database
//! connection: the launcher is connected to no database.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The state file, relative to the data directory.
pub const STATE_FILE: &str = "timescaledb_telemetry.state";

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
}

/// Every database's status, keyed by database oid.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub databases: BTreeMap<u32, DbStatus>,
}

impl State {
    /// Reads the state in `dir`; a missing or unreadable file is an empty state (the worker
    /// then simply reports at once, as on a first start).
    pub fn load(dir: &Path) -> State {
        fs::read(dir.join(STATE_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Writes the state to `dir` atomically.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        write_json_atomically(&dir.join(STATE_FILE), self)
    }
}

/// Replaces `path` with `value` as JSON: written to a temporary file, flushed to disk, then
/// renamed over it, and the directory flushed too (the rename itself is durable only then),
/// so a reader, a crash or a power loss never sees half a file.
pub fn write_json_atomically(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(value).map_err(io::Error::other)?)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
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
        assert_eq!(State::load(&dir), state);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_or_corrupt_file_is_an_empty_state() {
        let dir = std::env::temp_dir().join(format!("tt_state_bad_{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(State::load(&dir), State::default());
        fs::write(dir.join(STATE_FILE), b"{garbage").unwrap();
        assert_eq!(State::load(&dir), State::default());
        fs::remove_dir_all(&dir).unwrap();
    }
}
