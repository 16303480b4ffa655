-- The extension's catalog (SPEC §3). Loaded first by CREATE EXTENSION.
-- Not IF NOT EXISTS: a schema of that name made beforehand (by whoever could create schemas
-- in the database) would otherwise hold our table, and its owner could drop or replace it.
CREATE SCHEMA _timescaledb_catalog;

CREATE TABLE _timescaledb_catalog.metadata (
    key                  name PRIMARY KEY,
    value                text NOT NULL,
    include_in_telemetry boolean NOT NULL
);

-- pg_restore runs CREATE EXTENSION (which inserts fresh rows) before it copies the dumped
-- rows in. For the keys CREATE EXTENSION inserts, a dumped row replaces the fresh one instead
-- of failing on the primary key, so a restore finishes without errors and keeps the
-- original exported_uuid and install_timestamp. Every other key keeps plain insert semantics.
-- Security definer, so that a database owner restoring their own dump (who may insert but
-- not update, see the grants below) gets the same result as a superuser. Trust: runs as the
-- extension script's (superuser) role; search_path pinned; it reads and writes only this
-- table, which no other role owns, and calls nothing but built-in operators.
CREATE FUNCTION _timescaledb_catalog.metadata_insert_replaces_reserved()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.key IN ('exported_uuid', 'install_timestamp') THEN
        UPDATE _timescaledb_catalog.metadata
           SET value = NEW.value, include_in_telemetry = NEW.include_in_telemetry
         WHERE key = NEW.key;
        IF FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER metadata_insert_replaces_reserved
    BEFORE INSERT ON _timescaledb_catalog.metadata
    FOR EACH ROW EXECUTE FUNCTION _timescaledb_catalog.metadata_insert_replaces_reserved();

-- The database's owner (whoever it is now: pg_database_owner) can dump and restore the
-- database: pg_dump reads this configuration table's rows and pg_restore inserts them.
-- Nobody but the table's owner (the superuser that ran the script) updates or deletes a
-- row; other roles see only what get_telemetry_report() shows.
GRANT USAGE ON SCHEMA _timescaledb_catalog TO pg_database_owner;
GRANT SELECT, INSERT ON _timescaledb_catalog.metadata TO pg_database_owner;

-- gen_random_uuid() draws from pg_strong_random(), the server's cryptographic source.
-- install_timestamp is stored in ISO 8601 UTC so that reading it never depends on the
-- DateStyle or TimeZone of the session that wrote it.
INSERT INTO _timescaledb_catalog.metadata (key, value, include_in_telemetry) VALUES
    ('uuid', pg_catalog.gen_random_uuid()::text, true),
    ('exported_uuid', pg_catalog.gen_random_uuid()::text, true),
    ('install_timestamp',
     pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
     true),
    -- The database the uuid was made for: a database holding another's (a copy made by
    -- CREATE DATABASE ... TEMPLATE) reports a uuid of its own (src/report/identity.rs).
    ('uuid_database_oid',
     (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())::pg_catalog.text,
     false);

-- pg_dump keeps every row but uuid and uuid_database_oid: a restored copy is a new database
-- with its own uuid, which its own CREATE EXTENSION recorded.
SELECT pg_catalog.pg_extension_config_dump('_timescaledb_catalog.metadata',
                                           $$WHERE key NOT IN ('uuid', 'uuid_database_oid')$$);
