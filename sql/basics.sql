-- Facts of the current database that the report needs, in one round trip:
-- database oid and default tablespace (to find its files), the server version, this
-- extension's installed version, and the names of all installed extensions.
-- Trust: runs elevated (see collect.rs) after search_path is pinned to pg_catalog, pg_temp;
-- reads only pg_catalog's tables, so its operators and functions are pg_catalog's.
SELECT d.oid::int8,
       d.dattablespace::int8,
       pg_catalog.current_setting('server_version'),
       (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'timescaledb_telemetry'),
       ARRAY(SELECT e.extname::text FROM pg_catalog.pg_extension e)
  FROM pg_catalog.pg_database d
 WHERE d.datname = pg_catalog.current_database()
