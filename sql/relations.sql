-- User relations of the current database, for the report's "relations" object.
-- User = not in pg_catalog, information_schema, pg_toast, temporary schemas or _timescaledb_*.
-- Returns two kinds of rows:
--   (relkind, 'count', NULL, NULL, n)                 number of relations of that kind
--   (relkind, part, tablespaces[], filenodes[], NULL) the files whose sizes make up `part`
--     ('heap' | 'toast' | 'indexes') of the tables and materialized views of that kind.
-- A relfilenode's tablespace 0 means the database's default tablespace.
WITH db AS (
    SELECT dattablespace AS spc FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()
), user_rel AS (
    SELECT c.oid, c.relkind, c.reltablespace, c.relfilenode, c.reltoastrelid
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'i')
       AND c.relpersistence <> 't'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
       AND n.nspname !~ '^(pg_temp_|pg_toast_temp_|_timescaledb_)'
), storage_rel AS (
    SELECT * FROM user_rel WHERE relkind IN ('r', 'm')
), piece AS (
    SELECT r.relkind, 'heap' AS part, r.reltablespace AS spc, r.relfilenode AS node
      FROM storage_rel r
    UNION ALL
    SELECT r.relkind, 'toast', t.reltablespace, t.relfilenode
      FROM storage_rel r JOIN pg_catalog.pg_class t ON t.oid = r.reltoastrelid
    UNION ALL
    SELECT r.relkind, 'toast', ti.reltablespace, ti.relfilenode
      FROM storage_rel r
      JOIN pg_catalog.pg_index x ON x.indrelid = r.reltoastrelid
      JOIN pg_catalog.pg_class ti ON ti.oid = x.indexrelid
     WHERE r.reltoastrelid <> 0
    UNION ALL
    SELECT r.relkind, 'indexes', i.reltablespace, i.relfilenode
      FROM storage_rel r
      JOIN pg_catalog.pg_index x ON x.indrelid = r.oid
      JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
)
SELECT p.relkind::text, p.part,
       pg_catalog.array_agg((CASE WHEN p.spc = 0 THEN db.spc ELSE p.spc END)::int8),
       pg_catalog.array_agg(p.node::int8),
       NULL::bigint
  FROM piece p, db
 GROUP BY p.relkind, p.part
UNION ALL
SELECT relkind::text, 'count', NULL, NULL, pg_catalog.count(*)
  FROM user_rel
 GROUP BY relkind
