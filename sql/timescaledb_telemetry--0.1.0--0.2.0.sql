-- 0.1.0 -> 0.2.0: the database's owner can dump and restore the database (SPEC §3), and
-- the restore trigger runs as the script's superuser role (see sql/catalog.sql). The
-- metadata rows, both uuids and the worker's state (a file outside the database) are kept:
-- nothing here touches a row.
ALTER FUNCTION _timescaledb_catalog.metadata_insert_replaces_reserved() SECURITY DEFINER;
GRANT USAGE ON SCHEMA _timescaledb_catalog TO pg_database_owner;
GRANT SELECT, INSERT ON _timescaledb_catalog.metadata TO pg_database_owner;
