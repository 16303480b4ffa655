-- The metadata rows a report needs: the reserved rows, then the rows flagged for telemetry
-- in key order, at most $2 of them. Each value is cut by the server to at most $1
-- characters before anything else reads it (substr of a TOASTed value reads only that
-- slice; but an LZ4-compressed one is fetched whole to decompress its start, so one over
-- 64 KiB compressed comes as NULL: left out, and the report says so), and keys and values come as the database's own bytes (converted to nothing: the
-- conversion to UTF-8 is encoding.rs's, which never fails).
-- Trust: runs elevated (see collect.rs) after search_path is pinned to pg_catalog, pg_temp;
-- reads only our own table (ONLY: no child a superuser may have added), with pg_catalog's
-- functions and operators.
SELECT pg_catalog.convert_to(m.key::pg_catalog.text, pg_catalog.getdatabaseencoding()::pg_catalog.name),
       CASE WHEN pg_catalog.pg_column_compression(m.value) = 'lz4' AND pg_catalog.pg_column_size(m.value) > 65536
            THEN NULL
            ELSE pg_catalog.convert_to(pg_catalog.substr(m.value, 1, $1), pg_catalog.getdatabaseencoding()::pg_catalog.name)
       END
  FROM ONLY _timescaledb_catalog.metadata m
 WHERE m.key IN ('uuid', 'exported_uuid', 'install_timestamp', 'uuid_database_oid')
UNION ALL
(SELECT pg_catalog.convert_to(m.key::pg_catalog.text, pg_catalog.getdatabaseencoding()::pg_catalog.name),
        CASE WHEN pg_catalog.pg_column_compression(m.value) = 'lz4' AND pg_catalog.pg_column_size(m.value) > 65536
            THEN NULL
            ELSE pg_catalog.convert_to(pg_catalog.substr(m.value, 1, $1), pg_catalog.getdatabaseencoding()::pg_catalog.name)
       END
   FROM ONLY _timescaledb_catalog.metadata m
  WHERE m.include_in_telemetry
    AND m.key NOT IN ('uuid', 'exported_uuid', 'install_timestamp', 'uuid_database_oid')
  ORDER BY m.key
  LIMIT $2)
