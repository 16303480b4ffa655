//! What the fleet page says about versions: which installed versions are out of date or
//! affected by an advisory of the manifest, worst first. Decided with the extension's own
//! version ordering and OSV evaluation (core's `version` and `advisory`), so the page and
//! each server's log never disagree.
#![forbid(unsafe_code)]

use serde::Serialize;
use timescaledb_telemetry_core::advisory::{self, Advisory};
use timescaledb_telemetry_core::version::Version;

use crate::manifest::Manifest;

/// One installed version of the fleet and what the manifest says about it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VersionStatus {
    pub version: String,
    pub databases: i64,
    /// Older than the manifest's current version.
    pub out_of_date: bool,
    /// The advisories affecting it, in the manifest's order.
    pub advisories: Vec<Advisory>,
    /// The worst severity among them (`critical` … `low`, `unknown`), if any.
    pub worst: Option<String>,
}

impl VersionStatus {
    /// Whether the page lists its databases as needing attention.
    pub fn needs_attention(&self) -> bool {
        self.out_of_date || !self.advisories.is_empty()
    }

    /// Larger is worse: advisories by their worst severity, then out of date.
    /// (Low and unknown severities weigh the same.)
    fn badness(&self) -> u8 {
        let severity = self.worst.as_deref().map_or(0, |s| severity_rank(s).max(1) + 1);
        severity + u8::from(self.out_of_date)
    }
}

/// Each version with its count, judged against the manifest, worst first (then the oldest
/// first, then the most databases first). A version that does not parse is neither out of
/// date nor affected: the page shows it as reported.
pub fn judge(manifest: &Manifest, counts: &[(String, i64)]) -> Vec<VersionStatus> {
    let mut out: Vec<(Option<Version>, VersionStatus)> = counts
        .iter()
        .map(|(text, databases)| {
            let parsed = Version::parse(text);
            let (out_of_date, advisories) = match &parsed {
                Some(v) => (*v < manifest.current, advisory::read(Some(&manifest.advisories), v).affecting),
                None => (false, Vec::new()),
            };
            let worst =
                advisories.iter().max_by_key(|a| severity_rank(&a.severity)).map(|a| a.severity.clone());
            let status = VersionStatus {
                version: text.clone(),
                databases: *databases,
                out_of_date,
                advisories,
                worst,
            };
            (parsed, status)
        })
        .collect();
    out.sort_by(|(va, a), (vb, b)| {
        b.badness()
            .cmp(&a.badness())
            // Unreadable versions last.
            .then_with(|| (va.is_none(), va).cmp(&(vb.is_none(), vb)))
            .then_with(|| b.databases.cmp(&a.databases))
    });
    out.into_iter().map(|(_, s)| s).collect()
}

fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 4,
        "high" => 3,
        "moderate" => 2,
        "low" => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::from_json(
            r#"{"current_timescaledb_version": "0.5.0", "advisories": [
                {"id": "TST-LOW", "database_specific": {"severity": "LOW"},
                 "affected": [{"ranges": [{"type": "SEMVER", "events": [{"introduced": "0.4.0"}, {"fixed": "0.5.0"}]}]}]},
                {"id": "TST-CRIT", "database_specific": {"severity": "CRITICAL"},
                 "affected": [{"ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.3.1"}]}]}]}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn versions_are_judged_worst_first() {
        let counts = [
            ("0.5.0".to_string(), 50),
            ("0.4.0".to_string(), 7),
            ("0.2.0".to_string(), 3),
            ("0.4.5".to_string(), 9),
            ("weird".to_string(), 1),
            ("0.6.0-rc1".to_string(), 2),
        ];
        let judged = judge(&manifest(), &counts);
        let order: Vec<&str> = judged.iter().map(|s| s.version.as_str()).collect();
        assert_eq!(order, ["0.2.0", "0.4.0", "0.4.5", "0.5.0", "0.6.0-rc1", "weird"]);
        assert_eq!(judged[0].worst.as_deref(), Some("critical"));
        assert_eq!(judged[0].advisories[0].id, "TST-CRIT");
        assert_eq!(judged[1].worst.as_deref(), Some("low"));
        assert!(judged[1].out_of_date && judged[2].out_of_date);
        assert!(!judged[3].needs_attention() && !judged[4].needs_attention());
        assert!(!judged[5].needs_attention());
    }
}
