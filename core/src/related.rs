//! The related extensions: the report's `related_extensions` and the functions counted
//! besides PostgreSQL's built-ins (SPEC §4, §4.1) are about the same list, kept here, below
//! both.
#![forbid(unsafe_code)]

/// The extensions `related_extensions` reports on: (key in the report, `pg_extension.extname`).
pub const RELATED_EXTENSIONS: [(&str, &str); 6] = [
    ("pg_prometheus", "pg_prometheus"),
    ("PostGIS", "postgis"),
    ("promscale", "promscale"),
    ("timescaledb", "timescaledb"),
    ("timescaledb_toolkit", "timescaledb_toolkit"),
    ("vector", "vector"),
];
