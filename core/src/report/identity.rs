//! Which uuid a database reports (SPEC §3): its own `uuid` row, unless it is a copy.
//!
//! `CREATE DATABASE copy TEMPLATE t` copies t's metadata rows, its `uuid` among them. The row
//! `uuid_database_oid`, written by CREATE EXTENSION, says which database the `uuid` was
//! made for; a database whose oid differs is a copy. A copy's uuid is derived from t's uuid,
//! the cluster's system identifier and the copy's own oid: stable across calls and
//! restarts, different from t's and from every other copy's, and the same in every process
//! without anything written. The worker then writes it into the copy's own rows ("settles"
//! it), so that it survives what changes an oid or the system identifier (pg_upgrade,
//! dump and restore keep rows, not oids).
#![forbid(unsafe_code)]

/// Whether a database with oid `db_oid` holds metadata made for another database: the
/// recorded oid (`uuid_database_oid`) is present, a number, and not `db_oid`.
pub fn is_copy(recorded_oid: Option<&str>, db_oid: u32) -> bool {
    recorded_oid.and_then(|r| r.trim().parse::<u32>().ok()).is_some_and(|r| r != db_oid)
}

/// What is hashed to make a copy's uuid. The system identifier is written as
/// `pg_control_system()` shows it (an int8: past 2^63, negative), as it was when a query read
/// it: a copy not yet settled keeps its uuid across versions.
pub fn copy_seed(template_uuid: &str, system_identifier: u64, db_oid: u32) -> String {
    let system_identifier = system_identifier as i64;
    format!("timescaledb_telemetry copy/{template_uuid}/{system_identifier}/{db_oid}")
}

/// A version-4 uuid from the first 16 bytes of a digest (hex): the version and variant bits
/// are set as RFC 9562 asks for random uuids. `None` if `digest_hex` is not 32+ hex digits.
pub fn uuid_from_digest(digest_hex: &str) -> Option<String> {
    let hex = digest_hex.get(..32)?;
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
}

/// Normalises a stored `install_timestamp` to ISO 8601 in UTC. Accepts what we store
/// (RFC 3339) and PostgreSQL's ISO output (`2026-11-24 23:47:08.1+00`), so that rows written
/// by older tools or by hand still report; anything else is left out rather than guessed.
pub fn iso8601_utc(stored: &str) -> Option<String> {
    use chrono::{DateTime, SecondsFormat, Utc};
    let parsed = DateTime::parse_from_rfc3339(stored.trim())
        .or_else(|_| DateTime::parse_from_str(stored.trim(), "%Y-%m-%d %H:%M:%S%.f%#z"))
        .ok()?;
    Some(parsed.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Micros, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_writes_the_system_identifier_as_an_int8() {
        let seed = |id| copy_seed("u", id, 5);
        assert_eq!(seed(7_440_000_000_000_000_000), "timescaledb_telemetry copy/u/7440000000000000000/5");
        assert_eq!(seed(u64::MAX), "timescaledb_telemetry copy/u/-1/5");
        assert_eq!(seed(1 << 63), "timescaledb_telemetry copy/u/-9223372036854775808/5");
    }

    #[test]
    fn a_database_is_a_copy_only_when_the_recorded_oid_is_another() {
        assert!(!is_copy(Some("16384"), 16384));
        assert!(is_copy(Some("16384"), 16390));
        assert!(!is_copy(None, 16390), "no record (deleted): not a copy");
        assert!(!is_copy(Some("garbage"), 16390));
    }

    #[test]
    fn digests_become_version_4_uuids() {
        let digest = "ffffffffffffffffffffffffffffffff0000";
        assert_eq!(uuid_from_digest(digest).unwrap(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let zeros = "0".repeat(64);
        assert_eq!(uuid_from_digest(&zeros).unwrap(), "00000000-0000-4000-8000-000000000000");
        assert_eq!(uuid_from_digest("abc"), None);
        assert_eq!(uuid_from_digest(&"zz".repeat(16)), None);
    }

    #[test]
    fn seeds_differ_by_copy_and_by_cluster() {
        let a = copy_seed("u", 7300000000000000001, 16390);
        assert_ne!(a, copy_seed("u", 7300000000000000001, 16391));
        assert_ne!(a, copy_seed("u", 7300000000000000002, 16390));
        assert_eq!(a, copy_seed("u", 7300000000000000001, 16390));
    }

    #[test]
    fn stored_rfc3339_timestamp_is_kept() {
        assert_eq!(
            iso8601_utc("2026-11-24T23:47:08.123456Z").as_deref(),
            Some("2026-11-24T23:47:08.123456Z")
        );
    }

    #[test]
    fn postgres_iso_output_is_converted_to_utc() {
        assert_eq!(iso8601_utc("2026-11-25 01:47:08.5+02").as_deref(), Some("2026-11-24T23:47:08.500000Z"));
    }

    #[test]
    fn garbage_timestamp_is_none() {
        assert_eq!(iso8601_utc("yesterday-ish"), None);
    }
}
