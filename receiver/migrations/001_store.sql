-- The store (SPEC §10). Every report as received, partitioned by day of arrival (UTC) so
-- that retention drops whole partitions; the latest report of each database, kept up to date
-- in the same statement that stores a report. Partitions are made by the receiver (a few
-- days ahead, and at once for a day that has none).
CREATE TABLE receiver.reports (
    received_at timestamptz NOT NULL DEFAULT now(),
    db_uuid uuid NOT NULL,
    -- Read from the report for the page's queries; NULL when the report has no usable value.
    version text,
    postgresql_version text,
    data_bytes bigint,
    report jsonb NOT NULL
) PARTITION BY RANGE (received_at);
-- A database's history, and its growth for the chart.
CREATE INDEX reports_db_uuid_received_at ON receiver.reports (db_uuid, received_at);

CREATE TABLE receiver.databases (
    db_uuid uuid PRIMARY KEY,
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    reports bigint NOT NULL DEFAULT 1,
    version text,
    postgresql_version text,
    data_bytes bigint,
    report jsonb NOT NULL
);
CREATE INDEX databases_last_seen ON receiver.databases (last_seen);
CREATE INDEX databases_data_bytes ON receiver.databases (data_bytes DESC NULLS LAST);
CREATE INDEX databases_version ON receiver.databases (version);

-- The latest report per database, as a view for whoever queries the store by hand.
CREATE VIEW receiver.latest AS
    SELECT db_uuid, last_seen AS received_at, version, postgresql_version, data_bytes, report
    FROM receiver.databases;
