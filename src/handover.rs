//! What a collector hands to the launcher: one small file per database in the data
//! directory, written atomically by the collector just before it exits and taken (read and
//! removed) by the launcher once the collector has stopped. A file, rather than shared
//! memory, because a report has no fixed size bound and the exchange happens once a cycle.
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::write_json_atomically;

/// The collector's findings in one database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Collected {
    /// The database does not have the extension.
    Absent,
    /// The level in effect is `off`: nothing is sent.
    Off,
    /// The report to send, and the level in effect.
    Report { level: String, report: serde_json::Value },
    /// Collecting failed; the reason.
    Failed { error: String },
}

fn path(dir: &Path, db_oid: u32) -> PathBuf {
    dir.join(format!("timescaledb_telemetry.collected.{db_oid}"))
}

/// Writes the findings for `db_oid`, atomically.
pub(crate) fn put(dir: &Path, db_oid: u32, collected: &Collected) -> io::Result<()> {
    write_json_atomically(&path(dir, db_oid), collected)
}

/// Takes the findings for `db_oid`, if the collector left any.
pub(crate) fn take(dir: &Path, db_oid: u32) -> Option<Collected> {
    let p = path(dir, db_oid);
    let bytes = fs::read(&p).ok();
    let _ = fs::remove_file(&p);
    bytes.and_then(|b| serde_json::from_slice(&b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_taken_once() {
        let dir = std::env::temp_dir().join(format!("tt_handover_{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let report = Collected::Report { level: "basic".into(), report: serde_json::json!({"db_uuid": "x"}) };
        put(&dir, 7, &report).unwrap();
        assert_eq!(take(&dir, 7), Some(report));
        assert_eq!(take(&dir, 7), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
