-- What names the functions counted in this database (SPEC §4.1), for each oid in $1: the
-- extension it belongs to (NULL: none, or a function a role that is no superuser owns, which
-- an extension's script never made: see hook.rs, owned_by_a_superuser), its name, and its argument types, each written as
-- format_type() writes a built-in type, as `<extension>.<type>` (`[]` for an array of it)
-- for an extension's type, NULL for any other. No schema name can appear: built-in types
-- live in pg_catalog, always on the search path, and an extension's types are named by
-- their extension, never by the schema it was installed into.
-- Trust: runs elevated after search_path is pinned to pg_catalog, pg_temp; reads only
-- pg_catalog, so its operators and functions are pg_catalog's.
SELECT p.oid::int8,
       (SELECT e.extname::text
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
         WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
           AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
           AND EXISTS (SELECT FROM pg_catalog.pg_authid r WHERE r.oid = p.proowner AND r.rolsuper)),
       p.proname::text,
       ARRAY(SELECT CASE
                      WHEN a.t < 10000 THEN pg_catalog.format_type(a.t, NULL)
                      ELSE (SELECT e.extname::text || '.' || b.typname::text
                                   || CASE WHEN b.oid = t.oid THEN '' ELSE '[]' END
                              FROM pg_catalog.pg_type t
                              JOIN pg_catalog.pg_type b
                                ON b.oid = CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem ELSE t.oid END
                              JOIN pg_catalog.pg_depend d
                                ON d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = b.oid
                               AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
                              JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                             WHERE t.oid = a.t)
                    END
               FROM pg_catalog.unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY a(t, n)
              ORDER BY a.n)
  FROM pg_catalog.pg_proc p
 WHERE p.oid = ANY ($1::pg_catalog.oid[])
