-- The metadata rows a report needs: the reserved rows, then the rows flagged for telemetry
-- in key order, at most $2 of them. Each value is cut by the server to at most $1
-- characters before anything else reads it (substr of a TOASTed value reads only that
-- slice), and keys and values come as bytes in encoding $3: UTF-8, whatever the database's
-- encoding, except in a SQL_ASCII database, which knows no conversion and so gives its
-- bytes as they are (see model::text_from_bytes).
-- Trust: runs elevated (see collect.rs) after search_path is pinned to pg_catalog, pg_temp;
-- reads only our own table (ONLY: no child a superuser may have added), with pg_catalog's
-- functions and operators.
SELECT pg_catalog.convert_to(m.key::pg_catalog.text, $3::pg_catalog.name),
       pg_catalog.convert_to(pg_catalog.substr(m.value, 1, $1), $3::pg_catalog.name)
  FROM ONLY _timescaledb_catalog.metadata m
 WHERE m.key IN ('uuid', 'exported_uuid', 'install_timestamp', 'uuid_database_oid')
UNION ALL
(SELECT pg_catalog.convert_to(m.key::pg_catalog.text, $3::pg_catalog.name),
        pg_catalog.convert_to(pg_catalog.substr(m.value, 1, $1), $3::pg_catalog.name)
   FROM ONLY _timescaledb_catalog.metadata m
  WHERE m.include_in_telemetry
    AND m.key NOT IN ('uuid', 'exported_uuid', 'install_timestamp', 'uuid_database_oid')
  ORDER BY m.key
  LIMIT $2)
