//! What a collector hands to the launcher: one small file per database in the data
//! directory, written atomically by the collector just before it exits and taken (read and
//! removed) by the launcher once the collector has stopped. A file, rather than shared
//! memory, because a report has no fixed size bound and the exchange happens once a cycle.
//!
//! Each visit has a number, given to the collector when it is started and written into the
//! file: findings of an earlier visit (a collector stopped after writing, a crash) are never
//! taken for those of a later one.
#![forbid(unsafe_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::functions::table::Usage;
use crate::state::replace_transient;

/// The collector's findings in one database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Collected {
    /// The database does not have the extension.
    Absent,
    /// The level in effect is `off`: nothing is sent.
    Off,
    /// The report to send, the level in effect, and the function usage the report carries
    /// (subtracted from the shared counts once the endpoint accepts it).
    Report {
        level: String,
        report: serde_json::Value,
        #[serde(default)]
        usage: Usage,
    },
    /// Collecting failed; the reason.
    Failed { error: String },
}

/// The file's content: the findings of visit number `visit`.
#[derive(Serialize, Deserialize)]
struct Handover {
    visit: u32,
    collected: Collected,
}

fn path(dir: &Path, db_oid: u32) -> PathBuf {
    dir.join(format!("timescaledb_telemetry.collected.{db_oid}"))
}

/// Writes the findings of visit `visit` to `db_oid`, atomically (not flushed to disk: they
/// live only until the launcher takes them, and no other visit ever takes them).
pub fn put(dir: &Path, db_oid: u32, visit: u32, collected: Collected) -> io::Result<()> {
    let json = serde_json::to_vec(&Handover { visit, collected }).map_err(io::Error::other)?;
    replace_transient(&path(dir, db_oid), &json)
}

/// Takes the findings of visit `visit` to `db_oid`, if its collector left any. Whatever the
/// file holds is removed.
pub fn take(dir: &Path, db_oid: u32, visit: u32) -> Option<Collected> {
    let p = path(dir, db_oid);
    let bytes = fs::read(&p).ok();
    discard(dir, db_oid);
    let found: Handover = serde_json::from_slice(&bytes?).ok()?;
    (found.visit == visit).then_some(found.collected)
}

/// Removes any findings left for `db_oid`, before a new visit starts.
pub fn discard(dir: &Path, db_oid: u32) {
    let _ = fs::remove_file(path(dir, db_oid));
}

/// Packs a database oid and a visit number into a worker's argument.
pub fn worker_argument(db_oid: u32, visit: u32) -> u64 {
    (u64::from(visit) << 32) | u64::from(db_oid)
}

/// The database oid and visit number of a worker's argument.
pub fn from_worker_argument(arg: u64) -> (u32, u32) {
    (arg as u32, (arg >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_taken_once() {
        let dir = std::env::temp_dir().join(format!("tt_handover_{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let usage = Usage { counts: vec![(2147, 3)], dropped: 1, dropped_unattributed: false };
        let report =
            Collected::Report { level: "basic".into(), report: serde_json::json!({"db_uuid": "x"}), usage };
        put(&dir, 7, 1, report.clone()).unwrap();
        assert_eq!(take(&dir, 7, 1), Some(report));
        assert_eq!(take(&dir, 7, 1), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn findings_of_an_earlier_visit_are_never_taken_for_a_later_one() {
        let dir = std::env::temp_dir().join(format!("tt_handover_stale_{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        put(&dir, 7, 41, Collected::Off).unwrap();
        assert_eq!(take(&dir, 7, 42), None);
        // ... and the stale file is gone.
        put(&dir, 7, 41, Collected::Off).unwrap();
        discard(&dir, 7);
        assert_eq!(take(&dir, 7, 41), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn worker_arguments_carry_the_oid_and_the_visit() {
        assert_eq!(from_worker_argument(worker_argument(4_000_000_000, 7)), (4_000_000_000, 7));
        assert_eq!(from_worker_argument(worker_argument(5, u32::MAX)), (5, u32::MAX));
    }
}
