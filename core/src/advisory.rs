//! Security advisories in the answer (SPEC §9): OSV records (the Open Source
//! Vulnerabilities schema of GitHub's advisory database and osv.dev), and which of them
//! affect the installed version, decided with our version ordering (`version`).
//!
//! Only the fields we use are read, each leniently: an advisory that cannot be understood
//! is skipped with its reason (one DEBUG line), never the whole answer. The OSV crates on
//! crates.io model the whole schema strictly (one unknown enum value fails the record),
//! which is the opposite of what an answer from outside needs.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::one_line;
use crate::version::Version;

/// Most advisories read from one answer; the rest are ignored.
pub const MAX_ADVISORIES: usize = 100;
/// The severities we name; anything else is `unknown`.
const SEVERITIES: [&str; 4] = ["low", "moderate", "high", "critical"];

/// An advisory that affects the installed version: what the log and
/// `get_telemetry_advisories()` say about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    pub id: String,
    pub aliases: Vec<String>,
    /// `low`, `moderate`, `high`, `critical` or `unknown`.
    pub severity: String,
    pub summary: String,
    /// The first version after the installed one that fixes it, if any is known.
    pub fixed_in: Option<String>,
    /// The first reference's URL.
    pub url: Option<String>,
}

/// What one answer's `advisories` say about the installed version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// Those affecting it, in the answer's order.
    pub affecting: Vec<Advisory>,
    /// Why each advisory that could not be understood was skipped.
    pub skipped: Vec<String>,
}

#[derive(Deserialize)]
struct Osv {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    severity: Value,
    #[serde(default)]
    database_specific: Value,
    #[serde(default)]
    affected: Vec<Affected>,
    #[serde(default)]
    references: Vec<Reference>,
    #[serde(default)]
    withdrawn: Option<String>,
}

#[derive(Deserialize)]
struct Affected {
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize)]
struct Event {
    introduced: Option<String>,
    fixed: Option<String>,
    last_affected: Option<String>,
    limit: Option<String>,
}

#[derive(Deserialize)]
struct Reference {
    url: String,
}

/// Reads the answer's `advisories` (absent: none; anything but an array: skipped).
pub fn read(advisories: Option<&Value>, installed: &Version) -> Reading {
    let mut reading = Reading::default();
    let Some(value) = advisories else {
        return reading;
    };
    let Some(list) = value.as_array() else {
        reading.skipped.push("advisories is not an array".to_string());
        return reading;
    };
    for (i, item) in list.iter().take(MAX_ADVISORIES).enumerate() {
        match affecting(item, installed) {
            Ok(Some(advisory)) => reading.affecting.push(advisory),
            Ok(None) => {}
            Err(why) => reading.skipped.push(format!("advisory {} skipped: {why}", i + 1)),
        }
    }
    if list.len() > MAX_ADVISORIES {
        reading.skipped.push(format!(
            "{} advisories past the first {MAX_ADVISORIES} ignored",
            list.len() - MAX_ADVISORIES
        ));
    }
    reading
}

/// The advisory if it affects `installed`; `None` if it does not (or was withdrawn).
fn affecting(item: &Value, installed: &Version) -> Result<Option<Advisory>, String> {
    if !item.is_object() {
        return Err("not a JSON object".to_string());
    }
    let osv: Osv = serde_json::from_value(item.clone()).map_err(|e| one_line(&e.to_string()))?;
    let id = one_line(&osv.id);
    if id.trim().is_empty() {
        return Err("no id".to_string());
    }
    if osv.withdrawn.is_some() {
        return Ok(None);
    }
    let mut affected = false;
    let mut fixed_in: Option<Version> = None;
    for entry in &osv.affected {
        for text in &entry.versions {
            // Explicit versions are compared as versions; one we cannot read names no
            // version of ours.
            if Version::parse(text).is_some_and(|v| v == *installed) {
                affected = true;
            }
        }
        for range in &entry.ranges {
            if range.kind != "SEMVER" && range.kind != "ECOSYSTEM" {
                continue; // GIT ranges name commits, not versions.
            }
            let (hit, fix) = in_range(range, installed).map_err(|e| format!("{id}: {e}"))?;
            if hit {
                affected = true;
                if let Some(fix) = fix {
                    fixed_in = Some(fixed_in.map_or(fix.clone(), |f| f.min(fix)));
                }
            }
        }
    }
    if !affected {
        return Ok(None);
    }
    let summary = osv.summary.or(osv.details).unwrap_or_default();
    Ok(Some(Advisory {
        id,
        aliases: osv.aliases.iter().map(|a| one_line(a)).collect(),
        severity: severity(&osv.database_specific, &osv.severity),
        summary: one_line(summary.lines().next().unwrap_or_default()),
        fixed_in: fixed_in.map(|v| v.as_str().to_string()),
        url: osv.references.first().map(|r| one_line(&r.url)),
    }))
}

/// Whether `installed` is in the range, and the fix that ends the affected stretch it is in.
/// OSV's evaluation: events in version order; `introduced` at or below it starts an affected
/// stretch, `fixed` or `limit` at or below it ends one, `last_affected` below it ends one.
fn in_range(range: &Range, installed: &Version) -> Result<(bool, Option<Version>), String> {
    let mut events = Vec::new();
    for event in &range.events {
        let (kind, text) = match (&event.introduced, &event.fixed, &event.last_affected, &event.limit) {
            (Some(v), None, None, None) => ("introduced", v),
            (None, Some(v), None, None) => ("fixed", v),
            (None, None, Some(v), None) => ("last_affected", v),
            (None, None, None, Some(v)) => ("limit", v),
            _ => return Err("an event is not exactly one of introduced, fixed, last_affected, limit".into()),
        };
        let version =
            Version::parse(text).ok_or_else(|| format!("{kind} \"{}\" is not a version", one_line(text)))?;
        events.push((version, kind));
    }
    if !events.iter().any(|(_, kind)| *kind == "introduced") {
        return Err("a range without introduced".into());
    }
    events.sort_by(|a, b| a.0.cmp(&b.0));
    let mut affected = false;
    for (version, kind) in &events {
        match *kind {
            "introduced" if version <= installed => affected = true,
            "fixed" | "limit" if version <= installed => affected = false,
            "last_affected" if version < installed => affected = false,
            _ => {}
        }
    }
    let fix = affected
        .then(|| events.iter().find(|(v, kind)| *kind == "fixed" && v > installed).map(|(v, _)| v.clone()))
        .flatten();
    Ok((affected, fix))
}

/// GitHub's `database_specific.severity` (LOW, MODERATE, HIGH, CRITICAL), else a plain
/// string in `severity`; a CVSS vector alone is `unknown` (we do not score vectors).
fn severity(database_specific: &Value, severity: &Value) -> String {
    let named = database_specific.get("severity").and_then(Value::as_str).or(severity.as_str());
    named
        .map(str::to_ascii_lowercase)
        .map(|s| if s == "medium" { "moderate".to_string() } else { s })
        .filter(|s| SEVERITIES.contains(&s.as_str()))
        .unwrap_or_else(|| "unknown".to_string())
}

/// The WARNING's message and DETAIL for `advisory` (SPEC §9), each one line.
pub fn log_lines(advisory: &Advisory, installed: &str) -> (String, String) {
    let message = format!(
        "the installed \"timescaledb_telemetry\" {installed} is affected by security advisory {} ({}): {}",
        advisory.id, advisory.severity, advisory.summary
    );
    let fixed = match &advisory.fixed_in {
        Some(v) => format!("Fixed in {v}."),
        None => "No fixed version is known yet.".to_string(),
    };
    let detail = match &advisory.url {
        Some(url) => format!("{fixed} {url}"),
        None => fixed,
    };
    (one_line(&message), one_line(&detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn ranged(events: Value) -> Value {
        json!({"id": "GHSA-test", "summary": "bad", "database_specific": {"severity": "HIGH"},
               "affected": [{"ranges": [{"type": "ECOSYSTEM", "events": events}]}],
               "references": [{"url": "https://example.com/a"}, {"url": "https://example.com/b"}]})
    }

    fn affects(advisory: &Value, installed: &str) -> bool {
        let reading = read(Some(&json!([advisory])), &v(installed));
        assert!(reading.skipped.is_empty(), "{:?}", reading.skipped);
        !reading.affecting.is_empty()
    }

    #[test]
    fn introduced_and_fixed_bound_the_affected_versions() {
        // As GHSA-hcfx-29v5-2rcw: 2.7.0 up to, not including, 2.29.1.
        let a = ranged(json!([{"introduced": "2.7.0"}, {"fixed": "2.29.1"}]));
        assert!(!affects(&a, "2.6.9"));
        assert!(affects(&a, "2.7.0"));
        assert!(affects(&a, "2.29.0"));
        assert!(!affects(&a, "2.29.1"));
        assert!(!affects(&a, "3.0.0"));
        // Pre-releases order before their release.
        assert!(affects(&a, "2.29.1-rc1"));
        assert!(!affects(&a, "2.7.0-beta"));
    }

    #[test]
    fn last_affected_is_inclusive_and_zero_is_the_beginning() {
        let a = ranged(json!([{"introduced": "0"}, {"last_affected": "0.3.0"}]));
        assert!(affects(&a, "0.0.1"));
        assert!(affects(&a, "0.3.0"));
        assert!(!affects(&a, "0.3.1"));
        let reading = read(Some(&json!([a])), &v("0.2.0"));
        assert_eq!(reading.affecting[0].fixed_in, None);
    }

    #[test]
    fn limit_ends_the_range_and_is_no_fix() {
        let a = ranged(json!([{"introduced": "0"}, {"limit": "0.3.0"}]));
        assert!(affects(&a, "0.2.9"));
        assert!(!affects(&a, "0.3.0"));
        assert_eq!(read(Some(&json!([a])), &v("0.2.9")).affecting[0].fixed_in, None);
    }

    #[test]
    fn several_stretches_and_the_fix_of_the_one_we_are_in() {
        let a = ranged(
            json!([{"introduced": "0.1.0"}, {"fixed": "0.2.0"}, {"introduced": "0.3.0"}, {"fixed": "0.3.2"}]),
        );
        assert!(affects(&a, "0.1.5"));
        assert!(!affects(&a, "0.2.5"));
        assert!(affects(&a, "0.3.1"));
        let fix = |installed: &str| read(Some(&json!([a])), &v(installed)).affecting[0].fixed_in.clone();
        assert_eq!(fix("0.1.5").as_deref(), Some("0.2.0"));
        assert_eq!(fix("0.3.1").as_deref(), Some("0.3.2"));
    }

    #[test]
    fn explicit_versions_withdrawn_and_git_ranges() {
        let listed = json!({"id": "OSV-1", "affected": [{"versions": ["0.2.0", "0.3.0", "garbage!"]}]});
        assert!(affects(&listed, "0.3.0"));
        assert!(!affects(&listed, "0.3.1"));
        let mut withdrawn = listed.clone();
        withdrawn["withdrawn"] = json!("2026-01-01T00:00:00Z");
        assert!(!affects(&withdrawn, "0.3.0"));
        let git = json!({"id": "OSV-2", "affected": [{"ranges": [{"type": "GIT", "events": [{"introduced": "abc123"}]}]}]});
        assert!(!affects(&git, "0.3.0"));
    }

    #[test]
    fn what_the_log_and_the_function_say() {
        let reading =
            read(Some(&json!([ranged(json!([{"introduced": "0"}, {"fixed": "0.3.1"}]))])), &v("0.3.0"));
        let a = &reading.affecting[0];
        assert_eq!(
            (a.severity.as_str(), a.fixed_in.as_deref(), a.url.as_deref()),
            ("high", Some("0.3.1"), Some("https://example.com/a"))
        );
        let (message, detail) = log_lines(a, "0.3.0");
        assert_eq!(
            message,
            "the installed \"timescaledb_telemetry\" 0.3.0 is affected by security advisory GHSA-test (high): bad"
        );
        assert_eq!(detail, "Fixed in 0.3.1. https://example.com/a");
    }

    #[test]
    fn text_from_outside_is_one_bounded_line_and_odd_severities_are_unknown() {
        let mut a = ranged(json!([{"introduced": "0"}]));
        a["summary"] = json!(format!("first line\u{7}{}\nsecond line", "x".repeat(500)));
        a["database_specific"] = json!({"severity": "apocalyptic"});
        let reading = read(Some(&json!([a])), &v("0.3.0"));
        let advisory = &reading.affecting[0];
        assert_eq!(advisory.severity, "unknown");
        assert!(
            advisory.summary.chars().count() <= 200 && !advisory.summary.contains('\n'),
            "{}",
            advisory.summary
        );
        let (message, _) = log_lines(advisory, "0.3.0");
        assert!(message.chars().count() <= 200 && !message.chars().any(char::is_control));
        a["database_specific"] = json!({});
        a["severity"] = json!("Moderate");
        assert_eq!(read(Some(&json!([a])), &v("0.3.0")).affecting[0].severity, "moderate");
    }

    #[test]
    fn bad_advisories_are_skipped_one_by_one_and_the_rest_still_count() {
        let good = ranged(json!([{"introduced": "0"}]));
        let list = json!([
            1, "text", null, [], {"summary": "no id"},
            ranged(json!([{"introduced": "0"}, {"fixed": "not a version!"}])),
            ranged(json!([{"fixed": "1.0.0"}])),
            ranged(json!([{"introduced": "0", "fixed": "1.0.0"}])),
            {"id": "x", "affected": "everything"},
            good
        ]);
        let reading = read(Some(&list), &v("0.3.0"));
        assert_eq!(reading.affecting.len(), 1);
        assert_eq!(reading.skipped.len(), 9, "{:?}", reading.skipped);
        assert!(reading.skipped[5].contains("\"not a version!\" is not a version"), "{}", reading.skipped[5]);
        assert_eq!(read(Some(&json!({"a": 1})), &v("0.3.0")).skipped, ["advisories is not an array"]);
        assert_eq!(read(None, &v("0.3.0")), Reading::default());
    }

    #[test]
    fn at_most_a_hundred_are_read() {
        let many = json!(vec![ranged(json!([{"introduced": "0"}])); 10_000]);
        let reading = read(Some(&many), &v("0.3.0"));
        assert_eq!(reading.affecting.len(), MAX_ADVISORIES);
        assert_eq!(reading.skipped, ["9900 advisories past the first 100 ignored"]);
    }
}
