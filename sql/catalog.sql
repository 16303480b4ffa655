-- The extension's catalog (SPEC §3). Loaded first by CREATE EXTENSION.
CREATE SCHEMA IF NOT EXISTS _timescaledb_catalog;

CREATE TABLE _timescaledb_catalog.metadata (
    key                  name PRIMARY KEY,
    value                text NOT NULL,
    include_in_telemetry boolean NOT NULL
);

-- pg_restore runs CREATE EXTENSION (which inserts fresh rows) before it copies the dumped
-- rows in. For the keys CREATE EXTENSION inserts, a dumped row replaces the fresh one instead
-- of failing on the primary key, so a restore finishes without errors and keeps the
-- original exported_uuid and install_timestamp. Every other key keeps plain insert semantics.
CREATE FUNCTION _timescaledb_catalog.metadata_insert_replaces_reserved()
RETURNS trigger
LANGUAGE plpgsql
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

-- gen_random_uuid() draws from pg_strong_random(), the server's cryptographic source.
-- install_timestamp is stored in ISO 8601 UTC so that reading it never depends on the
-- DateStyle or TimeZone of the session that wrote it.
INSERT INTO _timescaledb_catalog.metadata (key, value, include_in_telemetry) VALUES
    ('uuid', pg_catalog.gen_random_uuid()::text, true),
    ('exported_uuid', pg_catalog.gen_random_uuid()::text, true),
    ('install_timestamp',
     pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
     true);

-- pg_dump keeps every row but uuid: a restored copy is a new database with its own uuid.
SELECT pg_catalog.pg_extension_config_dump('_timescaledb_catalog.metadata', $$WHERE key <> 'uuid'$$);
