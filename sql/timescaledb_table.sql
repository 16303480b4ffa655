-- The oid of TimescaleDB's catalog table $1 ('schema.table') when, and only when, it may be
-- read with elevated rights: a plain table (no view, no rules, no children of its own
-- making) that belongs to the installed timescaledb extension (pg_depend 'e'), and that a
-- superuser owns, as one owns its schema. No other role can then create, replace, alter,
-- rename or drop it between this check and the count. No row otherwise.
-- Trust: runs with search_path pinned to pg_catalog, pg_temp (operators and functions
-- resolve in pg_catalog only) and reads only pg_catalog's own tables.
SELECT c.oid
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_authid table_owner ON table_owner.oid = c.relowner
  JOIN pg_catalog.pg_authid schema_owner ON schema_owner.oid = n.nspowner
 WHERE c.oid = pg_catalog.to_regclass($1)
   AND c.relkind = 'r'
   AND table_owner.rolsuper
   AND schema_owner.rolsuper
   AND EXISTS (SELECT
                 FROM pg_catalog.pg_depend d
                 JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                  AND d.objid = c.oid
                  AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                  AND d.deptype = 'e'
                  AND e.extname = 'timescaledb')
