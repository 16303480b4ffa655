-- 0.2.0 -> 0.3.0: record which database the uuid was made for, so that a copy made by
-- CREATE DATABASE ... TEMPLATE reports a uuid of its own (SPEC §3, see sql/catalog.sql).
-- A database that is already such a copy cannot be told from its template any more: it
-- keeps the uuid it has. No other row is touched; the worker's state is a file.
INSERT INTO _timescaledb_catalog.metadata (key, value, include_in_telemetry)
SELECT 'uuid_database_oid', d.oid::pg_catalog.text, false
  FROM pg_catalog.pg_database d
 WHERE d.datname = pg_catalog.current_database()
ON CONFLICT (key) DO NOTHING;
SELECT pg_catalog.pg_extension_config_dump('_timescaledb_catalog.metadata',
                                           $$WHERE key NOT IN ('uuid', 'uuid_database_oid')$$);
