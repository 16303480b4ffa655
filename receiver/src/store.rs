//! The store: PostgreSQL through a pool of tokio-postgres connections (deadpool).
//!
//! A report is stored by one statement (its row in the day's partition and its database's
//! latest row together), so when `insert` returns the report is committed: the web layer
//! answers 2xx only then. Whatever keeps the store from answering — it is down, restarting,
//! out of connections, too slow — is `StoreError::Unavailable`, a 503 the extension retries;
//! broken connections are dropped by the pool and new ones made on the next request, so the
//! receiver recovers by itself when the store comes back.
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::report::Report;

/// The migrations, in order; each runs once, in a transaction, recorded in
/// `receiver.migrations` (in the schema `receiver`, which holds everything of the store).
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../migrations/001_store.sql"))];
/// Days of partitions made ahead of today.
const DAYS_AHEAD: i64 = 2;
/// The advisory lock key under which schema changes (migrations, partitions) are made, so
/// that several receivers on one store do not make them twice.
const SCHEMA_LOCK: i64 = 0x7473_6462_7265_6376; // "tsdbrecv"
/// How long a request waits for a pooled connection, or to make one; then the statement
/// timeout. Together (2 + 2 + 5 s) below the request's 10 s, so a slow store is a 503.
const WAIT: Duration = Duration::from_secs(2);
const STATEMENT_TIMEOUT: &str = "5s";
/// What storing a report may take in all, by our own clock: a store that vanished without a
/// reset (no server left to enforce the statement timeout) is a 503, not a hang.
const INSERT_BUDGET: Duration = Duration::from_secs(8);
/// Rows of forgotten databases deleted per statement by the retention.
const DELETE_BATCH: i64 = 5000;
/// Window of "currently reporting" on the page: versions, largest databases, attention.
const WEEK: &str = "7 days";
/// Rows the page lists at most, per table.
pub const PAGE_ROWS: i64 = 50;

/// Why the store could not do something.
#[derive(Debug)]
pub enum StoreError {
    /// Down, restarting, out of connections or too slow: try again later (503).
    Unavailable(String),
    /// PostgreSQL refused the data itself (400).
    Rejected(String),
    /// Anything else: a bug or a broken store (500).
    Failed(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        let Some(db) = e.as_db_error() else {
            // No answer from the server: the connection is gone.
            return StoreError::Unavailable(format!("store unreachable: {e}"));
        };
        let code = db.code().code();
        let message = format!("{}: {}", db.severity(), db.message());
        // Connection problems, resources, shutdown or timeouts, a lock not available (the
        // retention dropping a partition), serialization or deadlock: all worth a retry.
        let retry = ["55P03", "40001", "40P01"];
        if code.starts_with("08") || code.starts_with("53") || code.starts_with("57") || retry.contains(&code)
        {
            StoreError::Unavailable(message)
        } else if code.starts_with("22") {
            StoreError::Rejected(message)
        } else {
            StoreError::Failed(format!("{message} ({code})"))
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::from(e),
            other => StoreError::Unavailable(format!("no connection to the store: {other}")),
        }
    }
}

/// The store's handle: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// A pool of at most `size` connections to `url` (nothing is connected yet). Each
    /// connection runs with a statement timeout, so a stuck store is a 503, not a hang.
    pub fn new(url: &str, size: usize) -> Result<Store, String> {
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| format!("RECEIVER_DATABASE_URL: {e}"))?;
        let options = format!(
            "{} -c statement_timeout={STATEMENT_TIMEOUT} -c lock_timeout={STATEMENT_TIMEOUT}",
            config.get_options().unwrap_or("")
        );
        config
            .options(options.trim())
            .connect_timeout(WAIT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .tcp_user_timeout(Duration::from_secs(30))
            .application_name("timescaledb-telemetry-receiver");
        let manager =
            Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .recycle_timeout(Some(WAIT))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Store { pool })
    }

    /// Creates or migrates the schema, then makes today's partitions and drops those past
    /// retention.
    pub async fn migrate(&self, retention_days: u32) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // A migration takes what it takes (the pool's statement timeout is for requests).
        tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
        tx.execute("SELECT pg_catalog.pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
        tx.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS receiver; \
             CREATE TABLE IF NOT EXISTS receiver.migrations \
             (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
        let done: Vec<i32> = tx
            .query("SELECT version FROM receiver.migrations", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (version, sql) in MIGRATIONS {
            if !done.contains(version) {
                tx.batch_execute(sql).await?;
                tx.execute("INSERT INTO receiver.migrations (version) VALUES ($1)", &[version]).await?;
                tracing::info!(version, "store migrated");
            }
        }
        tx.commit().await?;
        drop(client);
        self.maintain(retention_days).await
    }

    /// Makes the partitions from yesterday to two days ahead (by the store's clock, UTC), then
    /// drops whole partitions older than `retention_days` (each in a transaction of its own,
    /// waiting at most 2 s for its lock: ingest is never held longer, and a drop that could
    /// not get its lock is tried at the next maintenance) and forgets the databases not seen
    /// since, in batches. No statement timeout: dropping and deleting take what they take.
    pub async fn maintain(&self, retention_days: u32) -> Result<(), StoreError> {
        let today = self.maintain_partitions_only().await?;
        let cutoff = today - chrono::Duration::days(i64::from(retention_days));
        let mut client = self.pool.get().await?;
        let partitions = client
            .query(
                "SELECT c.relname::text FROM pg_catalog.pg_inherits i \
                 JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'receiver.reports'::regclass",
                &[],
            )
            .await?;
        for row in partitions {
            let name: String = row.get(0);
            let Some(day) = partition_day(&name) else { continue };
            if day >= cutoff {
                continue;
            }
            let tx = client.transaction().await?;
            let dropped = tx
                .batch_execute(&format!(
                    "SET LOCAL lock_timeout = '2s'; SET LOCAL statement_timeout = 0; DROP TABLE receiver.{name}"
                ))
                .await;
            match dropped {
                Ok(()) => {
                    tx.commit().await?;
                    tracing::info!(partition = %name, "reports past retention dropped");
                }
                Err(e) => {
                    tracing::warn!(partition = %name, "not dropped now (tried again at the next maintenance): {e}")
                }
            }
        }
        let cutoff_time = cutoff.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        loop {
            let deleted = client
                .execute(
                    "DELETE FROM receiver.databases WHERE db_uuid IN \
                     (SELECT db_uuid FROM receiver.databases WHERE last_seen < $1 LIMIT $2)",
                    &[&cutoff_time, &DELETE_BATCH],
                )
                .await?;
            if deleted == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Stores a report: committed when this returns `Ok`. Past `INSERT_BUDGET` it is
    /// `Unavailable` (the report may then be stored even so: the extension's retry stores it
    /// twice, never not at all).
    pub async fn insert(&self, report: &Report) -> Result<(), StoreError> {
        tokio::time::timeout(INSERT_BUDGET, self.insert_retrying(report)).await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!("the store did not answer within {INSERT_BUDGET:?}")))
        })
    }

    async fn insert_retrying(&self, report: &Report) -> Result<(), StoreError> {
        match self.insert_once(report).await {
            // No partition for the store's today (the clock passed the days made ahead, or
            // the maintenance did not run): make them, then once more.
            Err(StoreError::Failed(why))
                if why.ends_with(&format!("({})", SqlState::CHECK_VIOLATION.code())) =>
            {
                tracing::warn!("no partition for a report; making today's");
                self.maintain_partitions_only().await?;
                self.insert_once(report).await
            }
            other => other,
        }
    }

    async fn insert_once(&self, report: &Report) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "WITH stored AS ( \
                   INSERT INTO receiver.reports (db_uuid, version, postgresql_version, data_bytes, report) \
                   VALUES ($1, $2, $3, $4, $5) RETURNING received_at) \
                 INSERT INTO receiver.databases AS d \
                   (db_uuid, first_seen, last_seen, version, postgresql_version, data_bytes, report) \
                 SELECT $1, received_at, received_at, $2, $3, $4, $5 FROM stored \
                 ON CONFLICT (db_uuid) DO UPDATE SET last_seen = excluded.last_seen, \
                   reports = d.reports + 1, version = excluded.version, \
                   postgresql_version = excluded.postgresql_version, \
                   data_bytes = excluded.data_bytes, report = excluded.report",
            )
            .await?;
        client
            .execute(
                &statement,
                &[
                    &report.db_uuid,
                    &report.version,
                    &report.postgresql_version,
                    &report.data_bytes,
                    &report.json,
                ],
            )
            .await?;
        Ok(())
    }

    /// Makes the partitions from yesterday to `DAYS_AHEAD` days ahead; returns the store's
    /// today.
    async fn maintain_partitions_only(&self) -> Result<NaiveDate, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let today = make_partitions(&tx).await?;
        tx.commit().await?;
        Ok(today)
    }

    /// Everything the fleet page shows but the judgement of versions (`fleet::judge`), which
    /// needs `versions` first: see `attention`.
    pub async fn overview(&self) -> Result<Overview, StoreError> {
        let client = self.pool.get().await?;
        let counts = client
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE last_seen > now() - interval '1 day'), \
                            count(*) FILTER (WHERE last_seen > now() - interval '{WEEK}'), count(*) \
                     FROM receiver.databases"
                ),
                &[],
            )
            .await?;
        let by = |column: &str| {
            format!(
                "SELECT coalesce({column}, '(not reported)'), count(*) FROM receiver.databases \
                 WHERE last_seen > now() - interval '{WEEK}' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 100"
            )
        };
        let pairs = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, i64)> {
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        };
        let versions = pairs(client.query(&by("version"), &[]).await?);
        let postgresql_versions = pairs(client.query(&by("postgresql_version"), &[]).await?);
        let largest = client
            .query(
                &format!(
                    "SELECT db_uuid, version, postgresql_version, data_bytes, last_seen FROM receiver.databases \
                     WHERE last_seen > now() - interval '{WEEK}' AND data_bytes IS NOT NULL \
                     ORDER BY data_bytes DESC LIMIT 10"
                ),
                &[],
            )
            .await?
            .iter()
            .map(Database::from_row)
            .collect::<Vec<_>>();
        let ids: Vec<Uuid> = largest.iter().map(|d| d.db_uuid).collect();
        let growth = growth(&client, &ids).await?;
        Ok(Overview {
            last_day: counts.get(0),
            last_week: counts.get(1),
            known: counts.get(2),
            versions,
            postgresql_versions,
            largest,
            growth,
        })
    }

    /// The databases reporting one of `versions` (worst first, as given) in the last week,
    /// at most `PAGE_ROWS`.
    pub async fn attention(&self, versions: &[String]) -> Result<Vec<Database>, StoreError> {
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT db_uuid, version, postgresql_version, data_bytes, last_seen FROM receiver.databases \
                     WHERE version = ANY($1) AND last_seen > now() - interval '{WEEK}' \
                     ORDER BY array_position($1, version), last_seen DESC LIMIT {PAGE_ROWS}"
                ),
                &[&versions],
            )
            .await?;
        Ok(rows.iter().map(Database::from_row).collect())
    }

    /// One database: its latest row, its history (newest first, at most `PAGE_ROWS`), its
    /// growth, and the report received at `at` (the latest when `None`).
    pub async fn database(
        &self,
        db_uuid: Uuid,
        at: Option<DateTime<Utc>>,
    ) -> Result<Option<DatabaseDetail>, StoreError> {
        let client = self.pool.get().await?;
        let Some(latest) = client
            .query_opt(
                "SELECT db_uuid, version, postgresql_version, data_bytes, last_seen, first_seen, reports, report \
                 FROM receiver.databases WHERE db_uuid = $1",
                &[&db_uuid],
            )
            .await?
        else {
            return Ok(None);
        };
        let history = client
            .query(
                &format!(
                    "SELECT received_at, version, postgresql_version, data_bytes FROM receiver.reports \
                     WHERE db_uuid = $1 ORDER BY received_at DESC LIMIT {PAGE_ROWS}"
                ),
                &[&db_uuid],
            )
            .await?
            .iter()
            .map(|r| HistoryRow {
                received_at: r.get(0),
                version: r.get(1),
                postgresql_version: r.get(2),
                data_bytes: r.get(3),
            })
            .collect();
        let shown: Option<Value> = match at {
            None => Some(latest.get(7)),
            Some(at) => client
                .query_opt(
                    "SELECT report FROM receiver.reports WHERE db_uuid = $1 AND received_at = $2 LIMIT 1",
                    &[&db_uuid, &at],
                )
                .await?
                .map(|r| r.get(0)),
        };
        let growth = growth(&client, &[db_uuid]).await?;
        Ok(Some(DatabaseDetail {
            database: Database::from_row(&latest),
            first_seen: latest.get(5),
            reports: latest.get(6),
            history,
            report: shown,
            report_at: at,
            growth,
        }))
    }
}

/// The data volume of `ids` over the last 30 days, in at most about 200 steps per database
/// (the largest value of each step).
async fn growth(client: &deadpool_postgres::Client, ids: &[Uuid]) -> Result<Vec<Growth>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "WITH recent AS ( \
               SELECT db_uuid, received_at, data_bytes FROM receiver.reports \
               WHERE db_uuid = ANY($1) AND received_at > now() - interval '30 days' AND data_bytes IS NOT NULL), \
             step AS (SELECT greatest(60, extract(epoch FROM now() - min(received_at)) / 200) AS secs FROM recent) \
             SELECT db_uuid, (floor(extract(epoch FROM received_at) / step.secs) * step.secs)::bigint AS t, \
                    max(data_bytes) \
             FROM recent, step GROUP BY 1, 2 ORDER BY 1, 2",
            &[&ids],
        )
        .await?;
    let mut out: Vec<Growth> = ids.iter().map(|id| Growth { db_uuid: *id, points: Vec::new() }).collect();
    for row in rows {
        let id: Uuid = row.get(0);
        if let Some(g) = out.iter_mut().find(|g| g.db_uuid == id) {
            g.points.push((row.get(1), row.get(2)));
        }
    }
    Ok(out)
}

/// Makes the partitions from yesterday to `DAYS_AHEAD` days ahead, by the store's clock
/// (UTC), under the schema lock (creating a partition locks its parent briefly: at most 2 s
/// of waiting for it); returns the store's today.
async fn make_partitions(tx: &deadpool_postgres::Transaction<'_>) -> Result<NaiveDate, StoreError> {
    tx.batch_execute("SET LOCAL lock_timeout = '2s'; SET LOCAL statement_timeout = 0").await?;
    tx.execute("SELECT pg_catalog.pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
    let today: NaiveDate = tx.query_one("SELECT (now() AT TIME ZONE 'UTC')::date", &[]).await?.get(0);
    for offset in -1..=DAYS_AHEAD {
        tx.batch_execute(&partition_ddl(today + chrono::Duration::days(offset))).await?;
    }
    Ok(today)
}

fn partition_ddl(day: NaiveDate) -> String {
    let next = day + chrono::Duration::days(1);
    format!(
        "CREATE TABLE IF NOT EXISTS receiver.reports_p{} PARTITION OF receiver.reports \
         FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00')",
        day.format("%Y%m%d")
    )
}

/// The day of a partition the receiver made (`reports_pYYYYMMDD`); `None` for any other
/// table, which retention leaves alone.
fn partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("reports_p")?;
    (digits.len() == 8).then(|| NaiveDate::parse_from_str(digits, "%Y%m%d").ok()).flatten()
}

/// A database as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Database {
    pub db_uuid: Uuid,
    pub version: Option<String>,
    pub postgresql_version: Option<String>,
    pub data_bytes: Option<i64>,
    pub last_seen: DateTime<Utc>,
}

impl Database {
    fn from_row(row: &tokio_postgres::Row) -> Database {
        Database {
            db_uuid: row.get(0),
            version: row.get(1),
            postgresql_version: row.get(2),
            data_bytes: row.get(3),
            last_seen: row.get(4),
        }
    }
}

/// A database's data volume over time: (Unix seconds, bytes).
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    pub db_uuid: Uuid,
    pub points: Vec<(i64, i64)>,
}

/// What the fleet page shows, from the store.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Databases whose latest report arrived in the last day, the last week, ever (within
    /// retention).
    pub last_day: i64,
    pub last_week: i64,
    pub known: i64,
    /// Versions of the extension and of PostgreSQL among the databases of the last week,
    /// with counts, most common first.
    pub versions: Vec<(String, i64)>,
    pub postgresql_versions: Vec<(String, i64)>,
    /// The ten largest databases of the last week.
    pub largest: Vec<Database>,
    pub growth: Vec<Growth>,
}

/// One report of a database's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub received_at: DateTime<Utc>,
    pub version: Option<String>,
    pub postgresql_version: Option<String>,
    pub data_bytes: Option<i64>,
}

/// One database's page.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseDetail {
    pub database: Database,
    pub first_seen: DateTime<Utc>,
    pub reports: i64,
    pub history: Vec<HistoryRow>,
    /// The report shown (the latest, or the one asked for; `None` when that one is gone).
    pub report: Option<Value>,
    pub report_at: Option<DateTime<Utc>>,
    pub growth: Vec<Growth>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_by_day_and_only_ours_are_read_back() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 31).unwrap();
        let ddl = partition_ddl(day);
        assert!(ddl.contains("receiver.reports_p20261231 PARTITION OF"), "{ddl}");
        assert!(ddl.contains("FROM ('2026-12-31 00:00:00+00') TO ('2027-01-01 00:00:00+00')"), "{ddl}");
        assert_eq!(partition_day("reports_p20261231"), Some(day));
        for other in ["reports_p2026123", "reports_default", "reports_p20261399", "x_p20261231"] {
            assert_eq!(partition_day(other), None, "{other}");
        }
    }
}
