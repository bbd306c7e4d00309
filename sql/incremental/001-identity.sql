-- Run once, when the extension is created: internal schema and identity.

-- Internal state lives in a fixed schema of its own; user-facing functions go
-- into the schema the extension is created in (@extschema@).
CREATE SCHEMA _telemetry;
REVOKE ALL ON SCHEMA _telemetry FROM PUBLIC;
GRANT USAGE ON SCHEMA _telemetry TO pg_monitor;

-- This database's own identity.  Not dumped: a database restored from a dump
-- gets a new db_uuid from its own CREATE EXTENSION.
CREATE TABLE _telemetry.instance (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    db_uuid    uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
INSERT INTO _telemetry.instance DEFAULT VALUES;

-- Lineage that travels with pg_dump.  Every CREATE EXTENSION adds a row; a
-- restore adds the dumped rows beside it.  Random keys never collide, so the
-- restore runs clean, and the oldest row is the original installation: its
-- exported_db_uuid and installed_time are what the report carries.
CREATE TABLE _telemetry.lineage (
    exported_db_uuid uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    installed_time   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
INSERT INTO _telemetry.lineage DEFAULT VALUES;
SELECT pg_catalog.pg_extension_config_dump('_telemetry.lineage', '');

REVOKE ALL ON _telemetry.instance, _telemetry.lineage FROM PUBLIC;
GRANT SELECT ON _telemetry.instance, _telemetry.lineage TO pg_monitor;
