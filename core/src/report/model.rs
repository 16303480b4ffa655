//! The report as plain data and its JSON form. Every key name is written once, here.
//!
//! Scalars are JSON strings, as in TimescaleDB's own report: the endpoint's parser expects that.
#![forbid(unsafe_code)]

use serde_json::{json, Map, Value};

use crate::functions::table::Usage;

/// Sizes and counts of one kind of user relation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelationStats {
    pub num_relations: i64,
    /// Main, free-space, visibility and init forks of the relations themselves.
    pub heap_size: i64,
    /// TOAST tables and their indexes.
    pub toast_size: i64,
    /// All indexes on the relations.
    pub indexes_size: i64,
}

/// The user relations of a database, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relations {
    pub tables: RelationStats,
    pub partitioned_tables: RelationStats,
    pub views: RelationStats,
    pub materialized_views: RelationStats,
    pub indexes: RelationStats,
}

/// Relations of one access method (`access_methods.<amname>`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessMethodStats {
    pub instances: i64,
    /// Sum of `pg_class.relpages` (as of the last VACUUM or ANALYZE).
    pub pages: i64,
}

/// Whether the server streams WAL to standbys, or from a primary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replication {
    pub num_wal_senders: i64,
    pub is_wal_receiver: bool,
}

/// The `functions_used` part of a report (level `basic` only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionsUsed {
    /// (key, times planned), each key once; `counts[i]` is `usage.counts[i]` named.
    pub counts: Vec<(String, u64)>,
    /// New functions went uncounted because the usage table was full.
    pub truncated: bool,
    /// What these counts are in the usage table: subtracted once the report is accepted.
    pub usage: Usage,
    /// Counted functions that cannot be named any more (dropped since, or no longer a
    /// related extension's): never shown, but subtracted with the report all the same, so
    /// that their slots come back.
    pub unnamed: Vec<(u32, u64)>,
}

impl FunctionsUsed {
    /// What to subtract from the usage table once the report is accepted.
    pub fn to_acknowledge(&self) -> Usage {
        let mut usage = self.usage.clone();
        usage.counts.extend_from_slice(&self.unnamed);
        usage.counts.sort_unstable();
        usage
    }
}

/// What `license.edition` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edition {
    ApacheOnly,
    Community,
}

/// Facts about the host and the build, independent of any database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemFacts {
    pub os_name: String,
    pub os_release: String,
    pub os_version: String,
    pub os_name_pretty: Option<String>,
    pub install_method: String,
    pub build_architecture: String,
    pub build_architecture_bit_size: String,
    pub build_os_name: String,
    pub build_os_version: String,
}

/// The anonymous usage report of one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub db_uuid: Option<String>,
    pub exported_db_uuid: Option<String>,
    pub installed_time: Option<String>,
    pub last_tuned_time: Option<String>,
    pub last_tuned_version: Option<String>,
    pub system: SystemFacts,
    pub postgresql_version: String,
    pub timescaledb_version: String,
    pub data_volume: i64,
    pub num_hypertables: i64,
    pub num_continuous_aggs: i64,
    pub num_reorder_policies: i64,
    pub num_drop_chunks_policies: i64,
    pub relations: Relations,
    pub edition: Edition,
    /// User rows of the metadata table flagged `include_in_telemetry`, by key.
    pub db_metadata: Vec<(String, String)>,
    /// Some rows or values were left out or cut (see [`MAX_METADATA_ROWS`]).
    pub db_metadata_truncated: bool,
    /// (name in the report, installed?) for each extension we look for.
    pub related_extensions: Vec<(&'static str, bool)>,
    pub cloud: Option<String>,
    /// `None` below level `basic`: the key is left out.
    pub functions_used: Option<FunctionsUsed>,
    pub replication: Replication,
    /// By access method name.
    pub access_methods: Vec<(String, AccessMethodStats)>,
    /// This database is a copy whose `db_uuid` was derived but not yet written into its
    /// metadata (see `identity`). Not part of the JSON.
    pub unsettled_copy: bool,
}

pub use crate::related::RELATED_EXTENSIONS;

/// The most bytes of JSON a report has, whatever the database holds (SPEC §4.2).
pub const MAX_REPORT_BYTES: usize = 512 * 1024;
/// The most `db_metadata` rows a report carries (the first by key).
pub const MAX_METADATA_ROWS: usize = 100;
/// The most bytes of one `db_metadata` value (UTF-8); a longer one is cut at a character
/// boundary.
pub const MAX_METADATA_VALUE_BYTES: usize = 1024;

/// The length of `value` as text in the longer of its two forms: compact JSON (what the
/// worker sends) plus the space `jsonb` writes after each `:` and `,` (what
/// `get_telemetry_report()::text` shows).
pub fn text_len(value: &Value) -> usize {
    fn spaces(value: &Value) -> usize {
        match value {
            Value::Object(map) => (2 * map.len()).saturating_sub(1) + map.values().map(spaces).sum::<usize>(),
            Value::Array(items) => items.len().saturating_sub(1) + items.iter().map(spaces).sum::<usize>(),
            _ => 0,
        }
    }
    serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0) + spaces(value)
}

/// Text read from the database as bytes (converted to UTF-8 by the server where it could
/// be) as a string: bytes that are not UTF-8 (a `SQL_ASCII` database holds anything) are
/// written `\xNN`, so nothing is lost silently and nothing fails.
pub fn text_from_bytes(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for b in chunk.invalid() {
            text.push_str(&format!("\\x{b:02x}"));
        }
    }
    text
}

/// `value` cut to at most `max` bytes at a character boundary, and whether it was cut.
pub fn cut(mut value: String, max: usize) -> (String, bool) {
    if value.len() <= max {
        return (value, false);
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.truncate(end);
    (value, true)
}

fn relation_stats(stats: &RelationStats, with_sizes: bool) -> Value {
    let mut map = Map::new();
    map.insert("num_relations".into(), stats.num_relations.to_string().into());
    if with_sizes {
        map.insert("heap_size".into(), stats.heap_size.to_string().into());
        map.insert("toast_size".into(), stats.toast_size.to_string().into());
        map.insert("indexes_size".into(), stats.indexes_size.to_string().into());
    }
    Value::Object(map)
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(value) = value {
        map.insert(key.to_string(), Value::String(value.clone()));
    }
}

impl Report {
    /// Makes the report's JSON fit in [`MAX_REPORT_BYTES`]: the least-used functions go
    /// first (and are then not subtracted once the report is accepted, so they are counted
    /// on), then metadata rows from the last key; each with its `_truncated` key.
    pub fn fit(&mut self) {
        loop {
            let size = text_len(&self.to_json());
            if size <= MAX_REPORT_BYTES {
                return;
            }
            let mut excess = size - MAX_REPORT_BYTES;
            if let Some(used) = self.functions_used.as_mut().filter(|u| !u.counts.is_empty()) {
                // Least used first; among equals, the last key first.
                let mut order: Vec<usize> = (0..used.counts.len()).collect();
                order.sort_by(|a, b| {
                    let (ka, na) = &used.counts[*a];
                    let (kb, nb) = &used.counts[*b];
                    na.cmp(nb).then(kb.cmp(ka))
                });
                let mut dropped = vec![false; used.counts.len()];
                for i in order {
                    if excess == 0 {
                        break;
                    }
                    let (key, n) = &used.counts[i];
                    // `"key": "n", `
                    let entry = serde_json::to_string(key).map(|k| k.len()).unwrap_or(key.len())
                        + n.to_string().len()
                        + 6;
                    excess = excess.saturating_sub(entry);
                    dropped[i] = true;
                }
                let mut keep = dropped.iter().map(|d| !d);
                used.counts.retain(|_| keep.next().unwrap_or(true));
                let mut keep = dropped.iter().map(|d| !d);
                used.usage.counts.retain(|_| keep.next().unwrap_or(true));
                used.truncated = true;
            } else if self.db_metadata.pop().is_some() {
                self.db_metadata_truncated = true;
            } else {
                return; // nothing a tenant wrote is left to cut
            }
        }
    }

    /// The report as the JSON object that is shown and sent.
    pub fn to_json(&self) -> Value {
        let s = &self.system;
        let r = &self.relations;
        let mut map = Map::new();
        insert_opt(&mut map, "db_uuid", &self.db_uuid);
        insert_opt(&mut map, "exported_db_uuid", &self.exported_db_uuid);
        insert_opt(&mut map, "installed_time", &self.installed_time);
        insert_opt(&mut map, "last_tuned_time", &self.last_tuned_time);
        insert_opt(&mut map, "last_tuned_version", &self.last_tuned_version);
        insert_opt(&mut map, "os_name_pretty", &s.os_name_pretty);
        let scalars = [
            ("install_method", s.install_method.clone()),
            ("os_name", s.os_name.clone()),
            ("os_release", s.os_release.clone()),
            ("os_version", s.os_version.clone()),
            ("postgresql_version", self.postgresql_version.clone()),
            ("timescaledb_version", self.timescaledb_version.clone()),
            ("build_architecture", s.build_architecture.clone()),
            ("build_architecture_bit_size", s.build_architecture_bit_size.clone()),
            ("build_os_name", s.build_os_name.clone()),
            ("build_os_version", s.build_os_version.clone()),
            ("data_volume", self.data_volume.to_string()),
            ("num_hypertables", self.num_hypertables.to_string()),
            ("num_continuous_aggs", self.num_continuous_aggs.to_string()),
            ("num_reorder_policies", self.num_reorder_policies.to_string()),
            ("num_drop_chunks_policies", self.num_drop_chunks_policies.to_string()),
        ];
        for (key, value) in scalars {
            map.insert(key.to_string(), Value::String(value));
        }
        map.insert(
            "relations".into(),
            json!({
                "tables": relation_stats(&r.tables, true),
                "partitioned_tables": relation_stats(&r.partitioned_tables, false),
                "views": relation_stats(&r.views, false),
                "materialized_views": relation_stats(&r.materialized_views, true),
                "indexes": relation_stats(&r.indexes, false),
            }),
        );
        let edition = match self.edition {
            Edition::ApacheOnly => "apache_only",
            Edition::Community => "community",
        };
        map.insert("license".into(), json!({ "edition": edition }));
        let metadata: Map<String, Value> =
            self.db_metadata.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        map.insert("db_metadata".into(), Value::Object(metadata));
        if self.db_metadata_truncated {
            map.insert("db_metadata_truncated".into(), "true".into());
        }
        let related: Map<String, Value> = self
            .related_extensions
            .iter()
            .map(|(name, installed)| (name.to_string(), Value::String(installed.to_string())))
            .collect();
        map.insert("related_extensions".into(), Value::Object(related));
        if let Some(cloud) = &self.cloud {
            map.insert("instance_metadata".into(), json!({ "cloud": cloud }));
        }
        if let Some(used) = &self.functions_used {
            let counts: Map<String, Value> =
                used.counts.iter().map(|(k, n)| (k.clone(), Value::String(n.to_string()))).collect();
            map.insert("functions_used".into(), Value::Object(counts));
            if used.truncated {
                map.insert("functions_used_truncated".into(), "true".into());
            }
        }
        map.insert(
            "replication".into(),
            json!({
                "num_wal_senders": self.replication.num_wal_senders.to_string(),
                "is_wal_receiver": self.replication.is_wal_receiver.to_string(),
            }),
        );
        let access_methods: Map<String, Value> = self
            .access_methods
            .iter()
            .map(|(name, am)| {
                (name.clone(), json!({"instances": am.instances.to_string(), "pages": am.pages.to_string()}))
            })
            .collect();
        map.insert("access_methods".into(), Value::Object(access_methods));
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            db_uuid: Some("u".into()),
            exported_db_uuid: Some("e".into()),
            installed_time: Some("2026-11-24T23:47:08.000000Z".into()),
            last_tuned_time: None,
            last_tuned_version: None,
            system: SystemFacts::default(),
            postgresql_version: "15.18".into(),
            timescaledb_version: "0.1.0".into(),
            data_volume: 7_000_000,
            num_hypertables: 0,
            num_continuous_aggs: 0,
            num_reorder_policies: 0,
            num_drop_chunks_policies: 0,
            relations: Relations::default(),
            edition: Edition::Community,
            db_metadata: vec![("team".into(), "blue".into())],
            db_metadata_truncated: false,
            related_extensions: vec![("PostGIS", true), ("vector", false)],
            cloud: None,
            functions_used: None,
            replication: Replication::default(),
            access_methods: vec![("heap".into(), AccessMethodStats { instances: 2, pages: 10 })],
            unsettled_copy: false,
        }
    }

    #[test]
    fn scalars_are_json_strings() {
        let json = sample().to_json();
        assert_eq!(json["data_volume"], "7000000");
        assert_eq!(json["relations"]["tables"]["num_relations"], "0");
        assert_eq!(json["related_extensions"]["PostGIS"], "true");
        assert_eq!(json["db_metadata"]["team"], "blue");
    }

    #[test]
    fn unset_optional_keys_are_omitted() {
        let json = sample().to_json();
        assert!(json.get("last_tuned_time").is_none());
        assert!(json.get("instance_metadata").is_none());
        assert!(json.get("os_name_pretty").is_none());
    }

    #[test]
    fn cloud_appears_as_instance_metadata() {
        let mut report = sample();
        report.cloud = Some("aws".into());
        report.edition = Edition::ApacheOnly;
        let json = report.to_json();
        assert_eq!(json["instance_metadata"]["cloud"], "aws");
        assert_eq!(json["license"]["edition"], "apache_only");
    }

    #[test]
    fn views_carry_no_sizes_but_tables_do() {
        let json = sample().to_json();
        assert!(json["relations"]["views"].get("heap_size").is_none());
        assert_eq!(json["relations"]["tables"]["toast_size"], "0");
    }

    #[test]
    fn functions_used_appears_only_at_basic_and_says_when_truncated() {
        let mut report = sample();
        assert!(report.to_json().get("functions_used").is_none());
        report.functions_used = Some(FunctionsUsed::default());
        let json = report.to_json();
        assert_eq!(json["functions_used"], json!({}));
        assert!(json.get("functions_used_truncated").is_none());
        report.functions_used = Some(FunctionsUsed {
            counts: vec![("pg_catalog.count()".into(), 12)],
            truncated: true,
            usage: Usage::default(),
            unnamed: Vec::new(),
        });
        let json = report.to_json();
        assert_eq!(json["functions_used"]["pg_catalog.count()"], "12");
        assert_eq!(json["functions_used_truncated"], "true");
    }

    fn size(report: &Report) -> usize {
        text_len(&report.to_json())
    }

    #[test]
    fn the_length_counts_jsonbs_spaces() {
        let v = json!({"a": "b", "c": ["d", "e"]});
        // {"a": "b", "c": ["d", "e"]}
        assert_eq!(text_len(&v), r#"{"a": "b", "c": ["d", "e"]}"#.len());
    }

    #[test]
    fn a_report_over_the_cap_keeps_its_most_used_functions_and_says_so() {
        let mut report = sample();
        let n = 20_000u32;
        report.functions_used = Some(FunctionsUsed {
            counts: (0..n)
                .map(|i| (format!("pg_catalog.function_number_{i:05}(integer,text)"), u64::from(i) + 1))
                .collect(),
            truncated: false,
            usage: Usage { counts: (0..n).map(|i| (i + 1, u64::from(i) + 1)).collect(), ..Usage::default() },
            unnamed: vec![(99_999, 4)],
        });
        assert!(size(&report) > MAX_REPORT_BYTES);
        report.fit();
        assert!(size(&report) <= MAX_REPORT_BYTES, "{}", size(&report));
        let used = report.functions_used.as_ref().unwrap();
        assert!(used.truncated);
        // Not more cut than needed, and the most used kept.
        assert!(size(&report) > MAX_REPORT_BYTES - 200, "{}", size(&report));
        assert_eq!(used.counts.last().unwrap().1, u64::from(n));
        let least_kept = used.counts.iter().map(|(_, c)| *c).min().unwrap();
        assert!(used.counts.len() as u64 == u64::from(n) - least_kept + 1, "a gap in what was kept");
        // What is subtracted once accepted is exactly what the report carries.
        assert_eq!(used.usage.counts.len(), used.counts.len());
        assert!(used.usage.counts.iter().zip(&used.counts).all(|((_, a), (_, b))| a == b));
        // ... and what can no longer be named goes too.
        assert!(used.to_acknowledge().counts.contains(&(99_999, 4)));
        assert_eq!(report.to_json()["functions_used_truncated"], "true");
    }

    #[test]
    fn metadata_that_escapes_to_more_than_the_cap_is_cut_from_the_last_key() {
        let mut report = sample();
        // 100 rows of 1 KiB of control characters: each byte escapes to six.
        report.db_metadata =
            (0..MAX_METADATA_ROWS).map(|i| (format!("k{i:03}"), "\u{1}".repeat(1024))).collect();
        report.fit();
        assert!(size(&report) <= MAX_REPORT_BYTES);
        assert!(report.db_metadata_truncated);
        assert_eq!(report.db_metadata[0].0, "k000");
        assert_eq!(report.to_json()["db_metadata_truncated"], "true");
    }

    #[test]
    fn a_small_report_is_left_alone() {
        let mut report = sample();
        let before = report.clone();
        report.fit();
        assert_eq!(report, before);
        assert!(report.to_json().get("db_metadata_truncated").is_none());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_escaped_and_cuts_keep_characters_whole() {
        assert_eq!(text_from_bytes("Müller".as_bytes()), "Müller");
        assert_eq!(text_from_bytes(b"M\xfcller"), "M\\xfcller");
        assert_eq!(text_from_bytes(b"a\xff\xfeb"), "a\\xff\\xfeb");
        assert_eq!(cut("abc".into(), 3), ("abc".into(), false));
        // "ü" is two bytes: a cut inside it leaves it out.
        assert_eq!(cut("aü".into(), 2), ("a".into(), true));
        assert_eq!(cut("aü".into(), 3), ("aü".into(), false));
    }

    #[test]
    fn replication_and_access_methods_are_strings() {
        let mut report = sample();
        report.replication = Replication { num_wal_senders: 2, is_wal_receiver: false };
        let json = report.to_json();
        assert_eq!(json["replication"], json!({"num_wal_senders": "2", "is_wal_receiver": "false"}));
        assert_eq!(json["access_methods"]["heap"], json!({"instances": "2", "pages": "10"}));
    }
}
