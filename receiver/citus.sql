-- Distributes the receiver's store on Citus, for a fleet beyond one machine's PostgreSQL.
-- Run once, as a superuser, on the coordinator, after the receiver has created its schema
-- (start it once against the coordinator) and before reports arrive in volume:
--   psql "$RECEIVER_DATABASE_URL" -f receiver/citus.sql
-- Both tables are distributed by db_uuid and co-located, so the statement that stores a
-- report and updates its database's latest row runs on one worker, as do a database's
-- history and chart. Partitions the receiver creates later are distributed with their
-- parent. The fleet page's aggregates run across the workers.
-- NOT tested here: no Citus is available on this project's machines (see the README).
CREATE EXTENSION IF NOT EXISTS citus;
SELECT create_distributed_table('receiver.databases', 'db_uuid');
SELECT create_distributed_table('receiver.reports', 'db_uuid', colocate_with => 'receiver.databases');
