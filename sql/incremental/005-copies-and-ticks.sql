-- Run once: what tells a template copy from its original, and when a tick was last seen.

-- The database this identity belongs to (pg_database.oid).  CREATE DATABASE
-- ... TEMPLATE copies the row into a database with another oid; there the
-- first tick or send gives the copy an identity of its own (see
-- python/telemetry_extension/job/copies.py).  pg_upgrade keeps database oids
-- (PostgreSQL 15 and later), so an upgraded cluster keeps its identity.
ALTER TABLE _telemetry.instance ADD COLUMN database_oid oid;
UPDATE _telemetry.instance
   SET database_oid = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database());
ALTER TABLE _telemetry.instance ALTER COLUMN database_oid SET NOT NULL;
-- Never sent.  A copy's db_uuid and jitter are derived from it and the copy's
-- oid, so get_report() shows a copy's identity before the tick writes it, and
-- the collector, which never learns the salt, cannot link a copy to its original.
ALTER TABLE _telemetry.instance ADD COLUMN copy_salt uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid();

-- When a tick with nothing due was last seen, so that telemetry_status can say
-- whether anything calls the tick.  Written at most once an hour, so that a
-- tick with nothing due writes nothing the other 3 times in 4.
ALTER TABLE _telemetry.schedule ADD COLUMN last_tick timestamptz;
