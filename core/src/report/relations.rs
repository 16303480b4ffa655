//! The report's `relations` object from rows of pg_class and pg_index and the sizes of the
//! database's files: counts by kind, and for tables and materialized views the sizes of
//! their own files, their TOAST tables (with TOAST indexes) and their indexes; and the
//! report's `access_methods`, the same relations grouped by the access method storing them.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use super::model::{AccessMethodStats, RelationStats, Relations};
use super::sizes::{FileKey, FileSizes, OidMap, OidSet};

/// The pg_class fields the summary needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassRow {
    pub oid: u32,
    pub namespace: u32,
    /// `relkind`: b'r' table, b'p' partitioned table, b'v' view, b'm' materialized view,
    /// b'i' index, b't' TOAST table, ...
    pub kind: u8,
    /// 0: the database's default tablespace.
    pub tablespace: u32,
    pub filenode: u32,
    /// 0: none.
    pub toast: u32,
    /// `relam`; 0: none (views, and partitioned tables before PostgreSQL 17).
    pub access_method: u32,
    /// `relpages`.
    pub pages: i64,
}

/// A pg_index row: `index` is an index on `indexed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexRow {
    pub index: u32,
    pub indexed: u32,
}

/// Whether relations in the schema `name` are the user's: not PostgreSQL's own schemas,
/// not temporary ones, not TimescaleDB's internal `_timescaledb_*`.
pub fn is_user_schema(name: &str) -> bool {
    !matches!(name, "pg_catalog" | "information_schema" | "pg_toast")
        && !name.starts_with("pg_temp_")
        && !name.starts_with("pg_toast_temp_")
        && !name.starts_with("_timescaledb_")
}

/// The relation kinds that `relations` counts.
fn is_counted_kind(kind: u8) -> bool {
    matches!(kind, b'r' | b'p' | b'v' | b'm' | b'i')
}

/// The user relations (those `summarise` counts) with an access method, grouped by its
/// name (`am_names`: pg_am oid -> amname): how many, and their pages.
pub fn access_methods(
    classes: &[ClassRow],
    user_schemas: &OidSet<u32>,
    am_names: &OidMap<u32, String>,
) -> Vec<(String, AccessMethodStats)> {
    let mut by_name: BTreeMap<String, AccessMethodStats> = BTreeMap::new();
    for c in classes.iter().filter(|c| user_schemas.contains(&c.namespace) && is_counted_kind(c.kind)) {
        let Some(name) = am_names.get(&c.access_method) else { continue };
        let stats = by_name.entry(name.clone()).or_default();
        stats.instances += 1;
        stats.pages += c.pages.max(0);
    }
    by_name.into_iter().collect()
}

/// Which size of its owner a relation's files count towards.
#[derive(Clone, Copy)]
enum Part {
    Heap,
    Toast,
    Indexes,
}

/// Counts and sizes of the user relations.
pub fn summarise(
    classes: &[ClassRow],
    indexes: &[IndexRow],
    user_schemas: &OidSet<u32>,
    db_tablespace: u32,
    files: &FileSizes,
) -> Relations {
    let mut relations = Relations::default();
    // Relation oid -> (owner is a materialized view, which size of the owner it feeds).
    let mut part_of: OidMap<u32, (bool, Part)> = OidMap::default();
    for c in classes.iter().filter(|c| user_schemas.contains(&c.namespace) && is_counted_kind(c.kind)) {
        let stats: &mut RelationStats = match c.kind {
            b'r' => &mut relations.tables,
            b'p' => &mut relations.partitioned_tables,
            b'v' => &mut relations.views,
            b'm' => &mut relations.materialized_views,
            b'i' => &mut relations.indexes,
            _ => continue,
        };
        stats.num_relations += 1;
        if matches!(c.kind, b'r' | b'm') {
            let matview = c.kind == b'm';
            part_of.insert(c.oid, (matview, Part::Heap));
            if c.toast != 0 {
                part_of.insert(c.toast, (matview, Part::Toast));
            }
        }
    }
    // An index counts towards its table's indexes, or, on a TOAST table, towards the toast.
    for ix in indexes {
        if let Some(&(matview, part)) = part_of.get(&ix.indexed) {
            let part = if matches!(part, Part::Toast) { Part::Toast } else { Part::Indexes };
            part_of.insert(ix.index, (matview, part));
        }
    }
    for c in classes {
        let Some(&(matview, part)) = part_of.get(&c.oid) else { continue };
        let key: FileKey = (if c.tablespace == 0 { db_tablespace } else { c.tablespace }, c.filenode);
        let size = files.sum([key]);
        let stats = if matview { &mut relations.materialized_views } else { &mut relations.tables };
        match part {
            Part::Heap => stats.heap_size += size,
            Part::Toast => stats.toast_size += size,
            Part::Indexes => stats.indexes_size += size,
        }
    }
    relations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(oid: u32, namespace: u32, kind: u8, filenode: u32, toast: u32) -> ClassRow {
        ClassRow { oid, namespace, kind, tablespace: 0, filenode, toast, access_method: 0, pages: 0 }
    }

    #[test]
    fn access_methods_group_the_user_relations_by_their_method() {
        let user: OidSet<u32> = [2200].into_iter().collect();
        let am_names: OidMap<u32, String> =
            [(2, "heap".to_string()), (403, "btree".to_string())].into_iter().collect();
        let with_am = |oid, namespace, kind, am, pages| ClassRow {
            access_method: am,
            pages,
            ..class(oid, namespace, kind, oid, 0)
        };
        let classes = [
            with_am(1, 2200, b'r', 2, 10),
            with_am(2, 2200, b'm', 2, 5),
            with_am(3, 2200, b'i', 403, 3),
            with_am(4, 2200, b'v', 0, 0),
            with_am(5, 11, b'r', 2, 1000), // pg_catalog
            with_am(6, 2200, b'S', 2, 1),  // a sequence is not a counted kind
            with_am(7, 2200, b'r', 2, -1), // never analysed
        ];
        let found = access_methods(&classes, &user, &am_names);
        assert_eq!(
            found,
            vec![
                ("btree".to_string(), AccessMethodStats { instances: 1, pages: 3 }),
                ("heap".to_string(), AccessMethodStats { instances: 3, pages: 15 }),
            ]
        );
    }

    #[test]
    fn schemas_of_postgres_temporary_and_timescaledb_are_not_the_users() {
        for name in ["public", "app", "pg_catalogue", "timescaledb_x"] {
            assert!(is_user_schema(name), "{name}");
        }
        for name in [
            "pg_catalog",
            "information_schema",
            "pg_toast",
            "pg_temp_3",
            "pg_toast_temp_3",
            "_timescaledb_catalog",
        ] {
            assert!(!is_user_schema(name), "{name}");
        }
    }

    #[test]
    fn sizes_go_to_heap_toast_and_indexes_of_the_owner_kind() {
        const USER: u32 = 2200;
        const TOAST_NS: u32 = 99;
        let classes = [
            class(10, USER, b'r', 110, 20),    // table with TOAST table 20
            class(20, TOAST_NS, b't', 120, 0), // its TOAST table
            class(21, TOAST_NS, b'i', 121, 0), // the TOAST index
            class(30, USER, b'i', 130, 0),     // an index on the table
            class(40, USER, b'm', 140, 0),     // a materialized view
            class(41, USER, b'i', 141, 0),     // an index on it
            class(50, USER, b'v', 0, 0),       // a view
            class(60, USER, b'p', 0, 0),       // a partitioned table
            class(70, 11, b'r', 170, 0),       // a catalog table: not counted
        ];
        let indexes = [
            IndexRow { index: 21, indexed: 20 },
            IndexRow { index: 30, indexed: 10 },
            IndexRow { index: 41, indexed: 40 },
        ];
        let mut files = FileSizes::default();
        for (node, size) in
            [(110, 1), (120, 10), (121, 100), (130, 1000), (140, 10_000), (141, 100_000), (170, 7)]
        {
            files.by_node.insert((1663, node), size);
        }
        let r = summarise(&classes, &indexes, &OidSet::from_iter([USER]), 1663, &files);
        assert_eq!(
            (r.tables.num_relations, r.tables.heap_size, r.tables.toast_size, r.tables.indexes_size),
            (1, 1, 110, 1000)
        );
        assert_eq!(
            (
                r.materialized_views.num_relations,
                r.materialized_views.heap_size,
                r.materialized_views.indexes_size
            ),
            (1, 10_000, 100_000)
        );
        assert_eq!(
            (r.views.num_relations, r.partitioned_tables.num_relations, r.indexes.num_relations),
            (1, 1, 2)
        );
    }

    #[test]
    fn tablespace_zero_is_the_databases_default() {
        let mut files = FileSizes::default();
        files.by_node.insert((5000, 110), 42);
        let classes = [class(10, 1, b'r', 110, 0)];
        let r = summarise(&classes, &[], &OidSet::from_iter([1]), 5000, &files);
        assert_eq!(r.tables.heap_size, 42);
    }
}
