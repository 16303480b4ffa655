//! get_telemetry_report(): every key against its real source, on a real cluster.

use crate::common::{wait_until, Cluster};
use std::process::Command;
use std::time::Duration;

fn uname(flag: &str) -> String {
    let out = Command::new("uname").arg(flag).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn host_and_build_keys_match_uname_os_release_and_the_server() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("app");
    let r = c.report("app");
    assert_eq!(r["os_name"], uname("-s"));
    assert_eq!(r["os_release"], uname("-r"));
    assert_eq!(r["os_version"], uname("-v"));
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    let pretty = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string());
    assert_eq!(r["os_name_pretty"].as_str().map(String::from), pretty);
    let server_version = c.psql("app", "SHOW server_version");
    assert_eq!(r["postgresql_version"], server_version.split_whitespace().next().unwrap());
    let extversion =
        c.psql("app", "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb_telemetry'");
    assert_eq!(r["timescaledb_version"], extversion);
    assert_eq!(r["build_architecture"], std::env::consts::ARCH);
    assert_eq!(r["build_architecture_bit_size"], usize::BITS.to_string());
    assert_eq!(r["build_os_name"], uname("-s"));
    assert_eq!(r["build_os_version"], uname("-r"));
    assert_eq!(r["install_method"], "source");
    assert_eq!(r["license"]["edition"], "community");
    assert_eq!(r["num_hypertables"], "0");
    assert_eq!(r["related_extensions"]["timescaledb"], "false");
}

#[test]
fn data_volume_equals_pg_database_size() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("app");
    c.psql("app", "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS x FROM generate_series(1, 20000) g");
    // Enough files (each table: heap, TOAST table and index, primary key) that the
    // directory is stat-ed by several threads.
    c.psql(
        "app",
        "DO $$ BEGIN FOR i IN 1..700 LOOP
           EXECUTE format('CREATE TABLE many%s (id int PRIMARY KEY, body text)', i);
         END LOOP; END $$",
    );
    let files: i64 = c
        .psql(
            "app",
            "SELECT count(*) FROM pg_ls_dir('base/' || (SELECT oid FROM pg_database WHERE datname = 'app'))",
        )
        .parse()
        .unwrap();
    assert!(files > 2048, "only {files} files");
    c.psql("app", "CHECKPOINT");
    let same = c.psql(
        "app",
        "SELECT (get_telemetry_report()->>'data_volume')::bigint = pg_database_size(current_database())",
    );
    assert_eq!(same, "t");
}

#[test]
fn relation_counts_and_sizes_equal_the_size_functions() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("app");
    c.psql(
        "app",
        "CREATE SCHEMA s;
         CREATE TABLE s.big (id int PRIMARY KEY, doc text);
         ALTER TABLE s.big ALTER COLUMN doc SET STORAGE EXTERNAL;
         INSERT INTO s.big SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 500) g;
         CREATE INDEX ON s.big (md5(doc));
         CREATE UNLOGGED TABLE u (id int PRIMARY KEY);
         INSERT INTO u SELECT generate_series(1, 1000);
         CREATE TABLE p (id int, at date) PARTITION BY RANGE (at);
         CREATE TABLE p1 PARTITION OF p FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
         INSERT INTO p SELECT g, '2020-06-01' FROM generate_series(1, 100) g;
         CREATE VIEW v AS SELECT * FROM s.big;
         CREATE VIEW v2 AS SELECT 1;
         CREATE MATERIALIZED VIEW mv AS SELECT id, doc FROM s.big;
         CREATE INDEX ON mv (id);",
    );
    c.psql("app", "VACUUM"); // gives the tables free-space and visibility-map forks
                             // The same figures, one size function call per relation.
    let expected = c.psql(
        "app",
        "WITH r AS (
           SELECT c.oid, c.relkind, c.reltoastrelid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
              AND n.nspname !~ '^(pg_temp_|pg_toast_temp_|_timescaledb_)')
         SELECT jsonb_build_object(
           'tables', (SELECT jsonb_build_object('num_relations', count(*)::text,
                 'heap_size', coalesce(sum(pg_table_size(oid) - coalesce(pg_total_relation_size(nullif(reltoastrelid, 0)), 0)), 0)::text,
                 'toast_size', coalesce(sum(coalesce(pg_total_relation_size(nullif(reltoastrelid, 0)), 0)), 0)::text,
                 'indexes_size', coalesce(sum(pg_indexes_size(oid)), 0)::text) FROM r WHERE relkind = 'r'),
           'materialized_views', (SELECT jsonb_build_object('num_relations', count(*)::text,
                 'heap_size', coalesce(sum(pg_table_size(oid) - coalesce(pg_total_relation_size(nullif(reltoastrelid, 0)), 0)), 0)::text,
                 'toast_size', coalesce(sum(coalesce(pg_total_relation_size(nullif(reltoastrelid, 0)), 0)), 0)::text,
                 'indexes_size', coalesce(sum(pg_indexes_size(oid)), 0)::text) FROM r WHERE relkind = 'm'),
           'partitioned_tables', jsonb_build_object('num_relations', (SELECT count(*) FROM r WHERE relkind = 'p')::text),
           'views', jsonb_build_object('num_relations', (SELECT count(*) FROM r WHERE relkind = 'v')::text),
           'indexes', jsonb_build_object('num_relations', (SELECT count(*) FROM r WHERE relkind = 'i')::text))",
    );
    let expected: serde_json::Value = serde_json::from_str(&expected).unwrap();
    let r = c.report("app");
    assert_eq!(r["relations"], expected);
    // And the figures are not trivially zero.
    assert_eq!(r["relations"]["tables"]["num_relations"], "3");
    assert_eq!(r["relations"]["views"]["num_relations"], "2");
    assert_eq!(r["relations"]["partitioned_tables"]["num_relations"], "1");
    assert_ne!(r["relations"]["tables"]["toast_size"], "0");
    assert_ne!(r["relations"]["materialized_views"]["indexes_size"], "0");
}

/// An empty directory the server may use as a tablespace's location.
fn tablespace_dir(c: &Cluster) -> std::path::PathBuf {
    let spc = c.dir.join("spc");
    std::fs::create_dir_all(&spc).unwrap();
    Command::new("chown").arg("postgres").arg(&spc).status().unwrap();
    spc
}

#[test]
fn relations_in_a_second_tablespace_are_sized() {
    let c = Cluster::preloaded("");
    let spc = tablespace_dir(&c);
    c.create_db_with_extension("app");
    c.psql("app", &format!("CREATE TABLESPACE elsewhere LOCATION '{}'", spc.display()));
    c.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY USING INDEX TABLESPACE elsewhere) TABLESPACE elsewhere;
         INSERT INTO t SELECT generate_series(1, 5000)",
    );
    let r = c.report("app");
    let heap = c.psql("app", "SELECT pg_table_size(oid) - coalesce(pg_total_relation_size(nullif(reltoastrelid, 0)), 0) FROM pg_class WHERE relname = 't'");
    assert_eq!(r["relations"]["tables"]["heap_size"], heap);
    assert_eq!(r["relations"]["tables"]["indexes_size"], c.psql("app", "SELECT pg_indexes_size('t')"));
    assert_eq!(r["data_volume"], c.psql("app", "SELECT pg_database_size(current_database())"));
}

#[test]
fn timescaledb_catalog_counts_come_from_its_tables_when_they_belong_to_timescaledb() {
    let c = Cluster::preloaded("");
    c.create_db_with_extension("app");
    let tables = "CREATE TABLE _timescaledb_catalog.hypertable (id int);
         INSERT INTO _timescaledb_catalog.hypertable VALUES (1), (2);
         CREATE TABLE _timescaledb_catalog.continuous_agg (id int);
         INSERT INTO _timescaledb_catalog.continuous_agg VALUES (1);
         CREATE SCHEMA _timescaledb_config;
         CREATE TABLE _timescaledb_config.bgw_job (proc_name name);
         INSERT INTO _timescaledb_config.bgw_job VALUES ('policy_reorder'), ('policy_retention'), ('policy_retention'), ('other');";
    c.psql("app", tables);
    // Tables of those names that are not TimescaleDB's own are not its catalog.
    let r = c.report("app");
    for key in ["num_hypertables", "num_continuous_aggs", "num_reorder_policies", "num_drop_chunks_policies"]
    {
        assert_eq!(r[key], "0", "{key}");
    }
    // A stand-in timescaledb extension (only pg_extension and pg_depend matter), made by a
    // superuser, which then owns its tables.
    c.psql(
        "app",
        "INSERT INTO pg_extension (oid, extname, extowner, extnamespace, extrelocatable, extversion)
              SELECT 99998, 'timescaledb', 10, 'public'::regnamespace, false, '2.19.3';
         ALTER EXTENSION timescaledb ADD TABLE _timescaledb_catalog.hypertable;
         ALTER EXTENSION timescaledb ADD TABLE _timescaledb_catalog.continuous_agg;
         ALTER EXTENSION timescaledb ADD SCHEMA _timescaledb_config;
         ALTER EXTENSION timescaledb ADD TABLE _timescaledb_config.bgw_job;",
    );
    let r = c.report("app");
    assert_eq!(r["num_hypertables"], "2");
    assert_eq!(r["num_continuous_aggs"], "1");
    assert_eq!(r["num_reorder_policies"], "1");
    assert_eq!(r["num_drop_chunks_policies"], "2");
    // Once a non-superuser owns one of them, it is no longer trusted.
    c.psql("app", "CREATE ROLE someone; ALTER TABLE _timescaledb_catalog.hypertable OWNER TO someone");
    assert_eq!(c.report("app")["num_hypertables"], "0");
}

#[test]
fn related_extensions_follow_pg_extension() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    // A stand-in "vector" extension: only pg_extension matters to the report.
    c.psql("app", "CREATE SCHEMA fake; INSERT INTO pg_extension (oid, extname, extowner, extnamespace, extrelocatable, extversion)
                   SELECT 99999, 'vector', 10, 'fake'::regnamespace, false, '0.8.0'");
    let r = c.report("app");
    assert_eq!(r["related_extensions"]["vector"], "true");
    assert_eq!(r["related_extensions"]["PostGIS"], "false");
}

#[test]
fn the_report_works_without_shared_preload_libraries() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    c.psql("app", "SELECT upper('x')");
    let r = c.report("app");
    assert!(r["db_uuid"].is_string());
    // No shared memory, no counting: an empty object.
    assert_eq!(r["functions_used"], serde_json::json!({}));
    assert!(
        c.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'timescaledb_telemetry%'"
        ) == "0"
    );
}

#[test]
fn reading_the_report_changes_nothing() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    let rows = "SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM _timescaledb_catalog.metadata";
    let before = c.psql("app", rows);
    // A read-only transaction refuses any write the report might attempt.
    // (The transaction is left open and rolled back at exit: psql before 15 shows only the
    // last statement's result.)
    let report = c.psql("app", "BEGIN READ ONLY; SELECT get_telemetry_report()");
    assert!(report.contains("db_uuid"));
    assert_eq!(before, c.psql("app", rows));
}

/// Heap (all forks) of each user table, its TOAST and its indexes, from the size functions.
const SIZES_BY_FUNCTIONS: &str = "SELECT sum(pg_table_size(c.oid) - coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0)) || '|' ||
            sum(coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0)) || '|' || sum(pg_indexes_size(c.oid))
       FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace";

#[test]
fn sizes_are_right_in_a_database_whose_default_is_another_tablespace() {
    let c = Cluster::plain("");
    let spc = tablespace_dir(&c);
    c.psql("postgres", &format!("CREATE TABLESPACE elsewhere LOCATION '{}'", spc.display()));
    c.psql("postgres", "CREATE DATABASE app TABLESPACE elsewhere");
    c.psql("app", "CREATE EXTENSION timescaledb_telemetry");
    // One table in pg_default (base/), one in the database's default; both with TOAST and
    // indexes on the other side.
    c.psql(
        "app",
        "CREATE TABLE in_default (id int PRIMARY KEY USING INDEX TABLESPACE elsewhere, t text) TABLESPACE pg_default;
         INSERT INTO in_default SELECT i, repeat('x', i % 3000) FROM generate_series(1, 3000) i;
         CREATE TABLE in_elsewhere (id int PRIMARY KEY USING INDEX TABLESPACE pg_default, t text);
         INSERT INTO in_elsewhere SELECT i, repeat('y', 3000 + i) FROM generate_series(1, 2000) i;",
    );
    let r = c.report("app");
    let t = &r["relations"]["tables"];
    let reported = format!(
        "{}|{}|{}",
        t["heap_size"].as_str().unwrap(),
        t["toast_size"].as_str().unwrap(),
        t["indexes_size"].as_str().unwrap()
    );
    assert_eq!(reported, c.psql("app", SIZES_BY_FUNCTIONS));
    assert_eq!(r["data_volume"], c.psql("app", "SELECT pg_database_size(current_database())"));
}

#[test]
fn an_unreadable_tablespace_directory_counts_zero_as_in_pg_database_size() {
    let c = Cluster::plain("");
    let spc = tablespace_dir(&c);
    c.create_db_with_extension("app");
    c.psql("app", &format!("CREATE TABLESPACE elsewhere LOCATION '{}'", spc.display()));
    c.psql(
        "app",
        "CREATE TABLE t (id int) TABLESPACE elsewhere; INSERT INTO t SELECT generate_series(1, 1000)",
    );
    let oid = c.psql("app", "SELECT oid FROM pg_database WHERE datname = 'app'");
    let version_dir = std::fs::read_dir(&spc).unwrap().next().unwrap().unwrap().path();
    let db_dir = version_dir.join(&oid);
    // The server runs as postgres, which can then not list it (root, running this, still can).
    Command::new("chmod").arg("000").arg(&db_dir).status().unwrap();
    let r = c.try_psql("app", "SELECT get_telemetry_report()->>'data_volume'");
    let expected = c.psql("app", "SELECT pg_database_size(current_database())");
    Command::new("chmod").arg("700").arg(&db_dir).status().unwrap();
    assert_eq!(r.as_deref(), Ok(expected.as_str()));
    // The directory did hold something: readable again, it counts.
    assert_ne!(c.psql("app", "SELECT pg_database_size(current_database())"), expected);
}

#[test]
fn a_report_over_many_files_answers_statement_timeout_at_once() {
    // Timed inside the server, psql's own start-up left out: from the statement's log line
    // (log_statement) to its duration's or its error's, in epoch milliseconds (%n).
    let c = Cluster::plain("log_statement = 'all'\nlog_duration = on\nlog_line_prefix = '%n [%p] '");
    c.create_db_with_extension("app");
    let oid = c.psql("app", "SELECT oid FROM pg_database WHERE datname = 'app'");
    let dir = c.data.join("base").join(&oid);
    // Files pg_database_size counts but no relation owns: only the walk's length matters.
    for i in 0..400_000 {
        std::fs::File::create(dir.join(format!("t0_{i}"))).unwrap();
    }
    let timed = |sql: &str| {
        let before = c.server_log().len();
        let result = c.try_psql("app", sql);
        (result, server_time(&c.server_log()[before..]))
    };
    let (full, whole_walk) = timed("SELECT get_telemetry_report()->>'data_volume'");
    assert!(full.is_ok(), "{full:?}");
    let (cut, cut_after) = timed("SET statement_timeout = '20ms'; SELECT get_telemetry_report()");
    let err = cut.unwrap_err();
    assert!(err.contains("canceling statement due to statement timeout"), "{err}");
    // Only meaningful when the whole walk is long enough to tell the two apart.
    assert!(whole_walk > Duration::from_millis(250), "the walk took only {whole_walk:?}: add files");
    assert!(cut_after < whole_walk / 3, "cut after {cut_after:?}, the whole walk takes {whole_walk:?}");
}

/// How long the one statement logged in `log` ran, by the server's clock: from its
/// `statement:` line to the next `duration:` or `ERROR:` line (each starting with %n).
fn server_time(log: &str) -> Duration {
    let stamp = |line: &str| line.split_whitespace().next().and_then(|t| t.parse::<f64>().ok());
    let mut lines = log.lines().skip_while(|l| !l.contains("LOG:  statement: "));
    let start = lines.next().and_then(stamp).unwrap_or_else(|| panic!("no statement in {log}"));
    let end = lines
        .find(|l| l.contains("LOG:  duration: ") || l.contains("ERROR:  "))
        .and_then(stamp)
        .unwrap_or_else(|| panic!("no end of the statement in {log}"));
    Duration::from_secs_f64(end - start)
}

#[test]
fn temporary_relations_are_left_out() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    let counts = c.psql(
        "app",
        "CREATE TEMP TABLE scratch (id int PRIMARY KEY, t text);
         INSERT INTO scratch SELECT i, repeat('x', 5000) FROM generate_series(1, 100) i;
         CREATE TEMP VIEW scratch_view AS SELECT * FROM scratch;
         SELECT get_telemetry_report()->'relations'",
    );
    let relations: serde_json::Value = serde_json::from_str(&counts).unwrap();
    for kind in ["tables", "views", "indexes"] {
        assert_eq!(relations[kind]["num_relations"], "0", "{kind}: {relations}");
    }
    assert_eq!(relations["tables"]["heap_size"], "0");
}

#[test]
fn replication_counts_wal_senders_on_the_primary_and_the_receiver_on_the_standby() {
    let primary = Cluster::preloaded("");
    primary.create_db_with_extension("app");
    assert_eq!(
        primary.report("app")["replication"],
        serde_json::json!({"num_wal_senders": "0", "is_wal_receiver": "false"})
    );
    let standby = Cluster::standby_of(&primary);
    assert!(
        wait_until(Duration::from_secs(20), || {
            standby.psql("app", "SELECT get_telemetry_report()->'replication'->>'is_wal_receiver'") == "true"
        }),
        "the standby's report: {}",
        standby.report("app")
    );
    assert_eq!(standby.report("app")["replication"]["num_wal_senders"], "0");
    assert_eq!(primary.report("app")["replication"]["num_wal_senders"], "1");
    assert_eq!(primary.report("app")["replication"]["is_wal_receiver"], "false");
}

#[test]
fn access_methods_group_user_relations_as_pg_class_does() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    c.psql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, tags int[], body text);
         INSERT INTO t SELECT g, ARRAY[g], repeat('x', g % 100) FROM generate_series(1, 20000) g;
         CREATE INDEX ON t USING gin (tags); CREATE INDEX ON t USING brin (id); CREATE INDEX ON t USING hash (id);
         CREATE MATERIALIZED VIEW m AS SELECT id FROM t; CREATE VIEW v AS SELECT 1;
         CREATE SCHEMA _timescaledb_internal; CREATE TABLE _timescaledb_internal.hidden (x int);
         CREATE TEMPORARY TABLE scratch (x int);",
    );
    c.psql("app", "VACUUM ANALYZE t");
    c.psql("app", "VACUUM ANALYZE m");
    // What pg_class says, for the relations the report counts.
    let expected: serde_json::Value = serde_json::from_str(&c.psql(
        "app",
        "SELECT coalesce(jsonb_object_agg(amname, jsonb_build_object('instances', n::text, 'pages', p::text)), '{}')
           FROM (SELECT a.amname, count(*) n, sum(greatest(c.relpages, 0)) p
                   FROM pg_class c JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace s ON s.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'i')
                    AND s.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                    AND s.nspname NOT LIKE 'pg\\_temp\\_%' AND s.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
                    AND s.nspname NOT LIKE '\\_timescaledb\\_%'
                  GROUP BY a.amname) x",
    ))
    .unwrap();
    let reported = c.report("app")["access_methods"].clone();
    assert_eq!(reported, expected);
    for am in ["heap", "btree", "gin", "brin", "hash"] {
        assert!(reported.get(am).is_some(), "{am} missing from {reported}");
    }
    assert_eq!(
        reported["heap"]["instances"], "2",
        "t and m; not the view, the hidden or the temporary table"
    );
    assert_ne!(reported["heap"]["pages"], "0");
}

/// The most a backend's peak memory (VmHWM, read by the backend itself) grew by while it
/// built one report of `db`, in bytes.
fn report_memory_growth(c: &Cluster, db: &str) -> u64 {
    let hwm =
        "SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\\s+(\\d+) kB'))[1]::int8 * 1024";
    // Three -c in one session (psql 14 shows only the last result of a multi-statement -c).
    let out = c
        .client("psql", "postgres")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db])
        .args(["-c", hwm, "-c", "SELECT length(get_telemetry_report()::text) > 0", "-c", hwm])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<u64> = out.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    lines[1].saturating_sub(lines[0])
}

#[test]
fn nothing_an_owner_writes_makes_the_report_big_or_the_backend_hold_it() {
    // SPEC §4.2 (issue: a 50 MB metadata value made a 54 MB report, sent at every interval).
    let ep = crate::common::endpoint::Endpoint::start(crate::common::endpoint::Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "1h", "");
    c.psql("postgres", "CREATE ROLE owner LOGIN");
    c.psql("postgres", "CREATE DATABASE app OWNER owner");
    c.psql("app", "CREATE EXTENSION timescaledb_telemetry");
    let uuid = c.report("app")["db_uuid"].as_str().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(15), || ep.requests_for(&uuid).len() == 1));
    c.try_psql_as(
        "app",
        "owner",
        "INSERT INTO _timescaledb_catalog.metadata VALUES ('blob', repeat('x', 50 * 1024 * 1024), true);
         INSERT INTO _timescaledb_catalog.metadata SELECT 'k' || lpad(i::text, 3, '0'), repeat('é', 600), true
           FROM generate_series(1, 150) i;",
    )
    .unwrap();
    // An LZ4-compressed value cannot be read by slices: one over 64 KiB compressed is left
    // out (6.4 MB that LZ4 compresses to 3.5 MB), where the server has LZ4.
    let lz4 = c.try_psql_as(
        "app",
        "owner",
        "SET default_toast_compression = lz4;
         INSERT INTO _timescaledb_catalog.metadata
             SELECT 'a_lz4', string_agg(md5(i::text) || repeat('0', 32), ''), true FROM generate_series(1, 100000) i",
    );
    let text = c.psql("app", "SELECT get_telemetry_report()::text");
    assert!(text.len() <= 512 * 1024, "{} bytes", text.len());
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let metadata = r["db_metadata"].as_object().unwrap();
    // The first 100 rows by key; "a_lz4" and "blob" sort before "k...".
    assert_eq!(metadata.len(), 100);
    if lz4.is_ok() {
        assert!(metadata.get("a_lz4").is_none(), "an LZ4 value was read");
    }
    assert_eq!(metadata["blob"].as_str().unwrap().len(), 1024);
    // 600 two-byte characters are cut at a character boundary: 512 of them.
    assert_eq!(metadata["k001"].as_str().unwrap(), "é".repeat(512));
    assert!(metadata.get("k100").is_none());
    assert_eq!(r["db_metadata_truncated"], "true");
    // The backend never held the value whole (50 MB), let alone copies of it.
    let growth = report_memory_growth(&c, "app");
    assert!(growth < 16 * 1024 * 1024, "the report took {growth} bytes");
    // The worker sends the same bounded report.
    // (A new uuid, with the value in the same transaction, so that the visit CREATE
    // EXTENSION wakes already sees it.)
    c.psql(
        "app",
        "DROP EXTENSION timescaledb_telemetry; CREATE EXTENSION timescaledb_telemetry;
         INSERT INTO _timescaledb_catalog.metadata VALUES ('blob', repeat('x', 50 * 1024 * 1024), true)",
    );
    let uuid = c.report("app")["db_uuid"].as_str().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(15), || !ep.requests_for(&uuid).is_empty()), "{}", c.server_log());
    let sent = &ep.requests_for(&uuid)[0];
    assert!(sent.body.len() <= 512 * 1024);
    assert_eq!(sent.json()["db_metadata"]["blob"].as_str().unwrap().len(), 1024);
}

#[test]
fn non_ascii_metadata_reports_in_every_server_encoding() {
    // SPEC §4.2 (issue: one non-ASCII value in a LATIN1 database failed every report).
    let ep = crate::common::endpoint::Endpoint::start(crate::common::endpoint::Answer::version("0.1.0"));
    let c = Cluster::reporting_to(&ep, "1h", "");
    for (db, encoding) in [("latin", "LATIN1"), ("win", "WIN1252"), ("ascii", "SQL_ASCII")] {
        c.psql(
            "postgres",
            &format!(
                "CREATE DATABASE {db} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ),
        );
        if encoding == "SQL_ASCII" {
            // Database settings whose bytes are not UTF-8 (SQL_ASCII takes any byte) beside
            // the level: the collector reads the level among them, and its visit does not fail.
            c.psql(
                db,
                "ALTER DATABASE ascii SET app.site = E'M\\xfcller';
                 ALTER DATABASE ascii SET timescaledb.telemetry_level = 'no_functions'",
            );
        }
        // "Müller" and "Köln" as LATIN1 bytes, which are the same characters in LATIN1 and
        // WIN1252, and bytes that are not UTF-8 in SQL_ASCII (which takes any byte).
        c.psql(
            db,
            &format!(
                "CREATE EXTENSION timescaledb_telemetry;
                 INSERT INTO _timescaledb_catalog.metadata VALUES
                     ('site', convert_from('\\x4dfc6c6c6572'::bytea, '{encoding}'), true),
                     ('city', convert_from('\\x4bf66c6e'::bytea, '{encoding}'), true),
                     ('odd', convert_from('\\x6181'::bytea, '{encoding}'), true)"
            ),
        );
        let r = c.report(db);
        let expected =
            if encoding == "SQL_ASCII" { ("M\\xfcller", "K\\xf6ln") } else { ("Müller", "Köln") };
        assert_eq!(r["db_metadata"]["site"], expected.0, "{db}: {r}");
        // 0x81: LATIN1 has it (a control character, U+0081); WIN1252 stores it but
        // PostgreSQL cannot convert it to UTF-8; SQL_ASCII's bytes are not UTF-8.
        let odd = if encoding == "LATIN1" { "a\u{81}" } else { "a\\x81" };
        assert_eq!(r["db_metadata"]["odd"], odd, "{db}: {r}");
        let uuid = r["db_uuid"].as_str().unwrap().to_string();
        assert!(
            wait_until(Duration::from_secs(15), || !ep.requests_for(&uuid).is_empty()),
            "{db} was not reported:\n{}",
            c.server_log()
        );
        let sent = ep.requests_for(&uuid)[0].json();
        assert_eq!(sent["db_metadata"]["site"], expected.0, "{db}");
        assert_eq!(sent["db_metadata"]["city"], expected.1, "{db}");
        assert_eq!(sent["db_metadata"]["odd"], odd, "{db}");
        assert_eq!(sent.get("functions_used").is_none(), encoding == "SQL_ASCII", "{db}: {sent}");
    }
}

#[test]
fn one_session_reports_across_drop_and_create_extension() {
    let c = Cluster::plain("");
    c.create_db_with_extension("app");
    // One session: the report (its queries planned once and kept for the session), the
    // extension dropped and made again with a metadata row, the report once more: the kept
    // plans read the new table, not the dropped one.
    let out = c.psql(
        "app",
        "SELECT get_telemetry_report()->>'db_uuid'; \
         DROP EXTENSION timescaledb_telemetry; CREATE EXTENSION timescaledb_telemetry; \
         INSERT INTO _timescaledb_catalog.metadata VALUES ('team', 'blue', true); \
         SELECT (get_telemetry_report()->>'db_uuid') || ' ' || (get_telemetry_report()->'db_metadata'->>'team')",
    );
    let uuid = c.psql("app", "SELECT value FROM _timescaledb_catalog.metadata WHERE key = 'uuid'");
    assert_eq!(out.lines().last(), Some(format!("{uuid} blue").as_str()), "{out}");
}
