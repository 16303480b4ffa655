//! An incoming report: what the receiver checks before storing it, and the few fields the
//! fleet page needs, read from either shape that reaches it — this extension's and
//! TimescaleDB 1.x's string-valued report, or TimescaleDB 2.x's typed one
//! (`"telemetry_version": 2`, numbers as JSON numbers).
#![forbid(unsafe_code)]

use serde_json::Value;
use timescaledb_telemetry_core::version::MAX_VERSION_LEN;
use uuid::Uuid;

/// Largest report accepted, in bytes (the extension never sends more, SPEC §4.2).
pub const MAX_REPORT_BYTES: usize = 512 * 1024;

/// A report that passed the checks, with the fields the store indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub db_uuid: Uuid,
    /// `timescaledb_version`: this extension's (or TimescaleDB's) installed version.
    pub version: Option<String>,
    /// `postgresql_version`.
    pub postgresql_version: Option<String>,
    /// `data_volume` in bytes.
    pub data_bytes: Option<i64>,
    /// The whole report as received.
    pub json: Value,
}

/// Why a report was refused: one line, sent back with a 4xx and nothing stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal(pub String);

impl Report {
    /// Checks `body` and reads it. Refused: anything but a JSON object, a missing or
    /// non-v4 `db_uuid`, and a NUL character anywhere (PostgreSQL's jsonb cannot hold one).
    /// The size limit is the web layer's (it stops reading past it).
    pub fn parse(body: &[u8]) -> Result<Report, Refusal> {
        let json: Value =
            serde_json::from_slice(body).map_err(|e| Refusal(format!("the report is not JSON: {e}")))?;
        let Some(object) = json.as_object() else {
            return Err(Refusal("the report is not a JSON object".to_string()));
        };
        let db_uuid = match object.get("db_uuid") {
            None => return Err(Refusal("the report has no db_uuid".to_string())),
            Some(Value::String(text)) => Uuid::parse_str(text)
                .ok()
                .filter(|u| u.get_version_num() == 4)
                .ok_or_else(|| Refusal("db_uuid is not a version 4 UUID".to_string()))?,
            Some(_) => return Err(Refusal("db_uuid is not a string".to_string())),
        };
        if has_nul(&json) {
            return Err(Refusal("the report contains a NUL character (\\u0000)".to_string()));
        }
        let text = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_str)
                // A longer version than the extension accepts stays in the report only.
                .filter(|s| !s.is_empty() && s.len() <= MAX_VERSION_LEN)
                .map(str::to_string)
        };
        let data_bytes = match object.get("data_volume") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse::<i64>().ok(),
            _ => None,
        }
        .filter(|n| *n >= 0);
        Ok(Report {
            db_uuid,
            version: text("timescaledb_version"),
            postgresql_version: text("postgresql_version"),
            data_bytes,
            json,
        })
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "735377dd-c6e8-41a9-9c39-c34fd42fb1c1";

    #[test]
    fn the_extensions_string_valued_report_is_read() {
        let body = format!(
            r#"{{"db_uuid":"{UUID}","timescaledb_version":"0.4.0","postgresql_version":"15.20",
               "data_volume":"7814503","relations":{{"tables":{{"num_relations":"2"}}}}}}"#
        );
        let r = Report::parse(body.as_bytes()).unwrap();
        assert_eq!(r.db_uuid.to_string(), UUID);
        assert_eq!(r.version.as_deref(), Some("0.4.0"));
        assert_eq!(r.postgresql_version.as_deref(), Some("15.20"));
        assert_eq!(r.data_bytes, Some(7_814_503));
    }

    #[test]
    fn timescaledbs_typed_report_is_read() {
        let body = format!(
            r#"{{"db_uuid":"{UUID}","telemetry_version":2,"timescaledb_version":"2.29.2",
               "postgresql_version":"17.11","data_volume":123456789,
               "relations":{{"tables":{{"num_relations":3,"heap_size":8192}}}}}}"#
        );
        let r = Report::parse(body.as_bytes()).unwrap();
        assert_eq!(r.version.as_deref(), Some("2.29.2"));
        assert_eq!(r.data_bytes, Some(123_456_789));
        assert_eq!(r.json["relations"]["tables"]["heap_size"], 8192);
    }

    #[test]
    fn odd_fields_are_left_out_of_the_columns_not_refused() {
        let body = format!(
            r#"{{"db_uuid":"{UUID}","timescaledb_version":{},"postgresql_version":7,
               "data_volume":"-5"}}"#,
            serde_json::to_string(&"9".repeat(65)).unwrap()
        );
        let r = Report::parse(body.as_bytes()).unwrap();
        assert_eq!((r.version, r.postgresql_version, r.data_bytes), (None, None, None));
    }

    #[test]
    fn each_malformed_report_is_refused_with_one_line() {
        let cases: [(&[u8], &str); 8] = [
            (b"not json", "the report is not JSON"),
            (b"[1,2]", "not a JSON object"),
            (b"{}", "has no db_uuid"),
            (br#"{"db_uuid": 5}"#, "db_uuid is not a string"),
            (br#"{"db_uuid": "nope"}"#, "not a version 4 UUID"),
            // A version 1 UUID.
            (br#"{"db_uuid": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}"#, "not a version 4 UUID"),
            (br#"{"db_uuid": "735377dd-c6e8-41a9-9c39-c34fd42fb1c1", "x": "a\u0000b"}"#, "NUL"),
            (b"", "the report is not JSON"),
        ];
        for (body, want) in cases {
            let Refusal(why) = Report::parse(body).unwrap_err();
            assert!(why.contains(want), "{why:?} for {:?}", String::from_utf8_lossy(body));
            assert!(!why.contains('\n'), "{why:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let body = format!(r#"{{"db_uuid":"{UUID}","x":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(Report::parse(body.as_bytes()).unwrap_err().0.contains("not JSON"));
    }
}
