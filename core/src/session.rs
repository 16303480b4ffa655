//! The collector's own session (SPEC §5 "The collector's session is ours"): the settings it
//! forces before its first transaction, whatever `ALTER DATABASE … SET` or `ALTER ROLE …
//! SET` gave every session of its database. A database owner may set any user-settable
//! parameter for her database; these are the ones that would change who the collector runs
//! as, how it waits, what it starts, or what its SQL means.
#![forbid(unsafe_code)]

/// Forced before the collector connects, so that its connection obeys them too (and again
/// with the others after it). What it costs: the catalogs a collector reads are not the
/// database's activity, and counting them made every collector create and flush a shared
/// statistics entry for each catalog it touched, connecting included (a tenth of its CPU
/// when a thousand databases are visited at start).
pub const BEFORE_CONNECTING: [(&str, &str); 1] = [("track_counts", "off")];

/// (parameter, value), in the order they are applied. `major` is the server's major version:
/// some parameters exist only in some majors.
pub fn collector_settings(major: u32) -> Vec<(&'static str, &'static str)> {
    let mut settings = BEFORE_CONNECTING.to_vec();
    settings.extend([
        // Who it runs as: the superuser it connected as, not a role the owner named.
        ("role", "none"),
        // What names mean: pg_catalog only (every query is qualified as well).
        ("search_path", "pg_catalog, pg_temp"),
        // How it waits: a plain read-committed read-write transaction never waits for a
        // safe snapshot (deferrable + serializable + read only) and can write a copy's uuid.
        ("default_transaction_isolation", "read committed"),
        ("default_transaction_read_only", "off"),
        ("default_transaction_deferrable", "off"),
        // The collector arms its own statement timeout; a lock it cannot get soon is a
        // failure of this visit, not a queue behind someone else's lock.
        ("statement_timeout", "0"),
        ("lock_timeout", "2s"),
        ("idle_in_transaction_session_timeout", "0"),
        // A commit (a copy's uuid) waits for no standby.
        ("synchronous_commit", "local"),
        // Triggers and rules behave as for any other session.
        ("session_replication_role", "origin"),
        // What it starts: no parallel workers (they would take worker slots), no JIT.
        ("max_parallel_workers_per_gather", "0"),
        ("max_parallel_maintenance_workers", "0"),
        ("jit", "off"),
        // An ERROR stays an ERROR (a failed visit), never an exit that leaves nothing behind.
        ("exit_on_error", "off"),
        // Memory: the server's defaults, not an owner's.
        ("work_mem", "4MB"),
        ("hash_mem_multiplier", "2"),
        ("temp_buffers", "8MB"),
        ("temp_tablespaces", ""),
        // What its plans cost: an owner's `enable_* = off` would make its catalog lookups
        // scan whole catalogs (she can make pg_depend big), up to the statement timeout.
        ("enable_seqscan", "on"),
        ("enable_indexscan", "on"),
        ("enable_indexonlyscan", "on"),
        ("enable_bitmapscan", "on"),
        // What it writes to the server log: no plan trees of a superuser's queries.
        ("debug_print_parse", "off"),
        ("debug_print_rewritten", "off"),
        ("debug_print_plan", "off"),
        // What its SQL and its values mean (format_type() quotes every name with
        // quote_all_identifiers, which would change the report's function keys).
        ("quote_all_identifiers", "off"),
        ("standard_conforming_strings", "on"),
        ("transform_null_equals", "off"),
        ("row_security", "on"),
        ("DateStyle", "ISO, MDY"),
        ("IntervalStyle", "postgres"),
        ("TimeZone", "UTC"),
        ("extra_float_digits", "1"),
        ("bytea_output", "hex"),
    ]);
    settings.push(if major >= 16 { ("debug_parallel_query", "off") } else { ("force_parallel_mode", "off") });
    if major >= 17 {
        settings.push(("transaction_timeout", "0"));
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::collector_settings;

    #[test]
    fn every_parameter_the_spec_names_is_forced_on_every_major() {
        for major in 14..=18 {
            let names: Vec<&str> = collector_settings(major).iter().map(|(n, _)| *n).collect();
            for needed in [
                "role",
                "search_path",
                "default_transaction_isolation",
                "default_transaction_read_only",
                "default_transaction_deferrable",
                "statement_timeout",
                "lock_timeout",
                "idle_in_transaction_session_timeout",
                "session_replication_role",
                "max_parallel_workers_per_gather",
                "quote_all_identifiers",
                "enable_indexscan",
            ] {
                assert!(names.contains(&needed), "{needed} on {major}");
            }
            let parallel = if major >= 16 { "debug_parallel_query" } else { "force_parallel_mode" };
            assert!(names.contains(&parallel), "{parallel} on {major}");
            assert_eq!(names.contains(&"transaction_timeout"), major >= 17);
        }
    }

    #[test]
    fn no_parameter_is_forced_twice() {
        let settings = collector_settings(17);
        let mut names: Vec<&str> = settings.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), settings.len());
    }
}
