-- Facts of the current database that the report needs, in one round trip:
-- database oid and default tablespace (to find its files), the server version, this
-- extension's installed version, and the names of all installed extensions.
SELECT d.oid::int8,
       d.dattablespace::int8,
       pg_catalog.current_setting('server_version'),
       (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'timescaledb_telemetry'),
       ARRAY(SELECT e.extname::text FROM pg_catalog.pg_extension e)
  FROM pg_catalog.pg_database d
 WHERE d.datname = pg_catalog.current_database()
