-- Facts of the current database that the report needs, in one round trip:
-- database oid and default tablespace (to find its files), the server version, this
-- extension's installed version, the names of all installed extensions, the replication
-- facts (WAL senders with a process; a WAL receiver with a process), and the cluster's
-- system identifier (for a copy's uuid, see collect.rs).
-- Trust: runs elevated (see collect.rs) after search_path is pinned to pg_catalog, pg_temp;
-- reads only pg_catalog's tables and functions, so its operators and functions are pg_catalog's.
SELECT d.oid::int8,
       d.dattablespace::int8,
       pg_catalog.current_setting('server_version'),
       (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'timescaledb_telemetry'),
       ARRAY(SELECT e.extname::text FROM pg_catalog.pg_extension e),
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_get_wal_senders() s WHERE s.pid IS NOT NULL),
       EXISTS (SELECT FROM pg_catalog.pg_stat_get_wal_receiver() r WHERE r.pid IS NOT NULL),
       (SELECT c.system_identifier::text FROM pg_catalog.pg_control_system() c)
  FROM pg_catalog.pg_database d
 WHERE d.datname = pg_catalog.current_database()
