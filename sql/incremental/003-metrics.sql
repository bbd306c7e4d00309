-- Run once: metrics a superuser switched off, and metrics other extensions registered.

-- A row per key switched off with set_metric_enabled(key, false); no row: on.
-- Dumped, so that a restored database keeps its DBA's choice; nothing is
-- seeded, so the restore never collides.
CREATE TABLE _telemetry.metrics_off (
    key             text PRIMARY KEY,
    switched_off_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('_telemetry.metrics_off', '');

-- Metrics registered with register_metric(): an aggregate query returning one
-- row of numbers, reported under vendor_metrics.<key>.  Not dumped: the
-- vendor's extension registers again when it is created in the restored
-- database (restoring the rows too would collide with that registration).
CREATE TABLE _telemetry.vendor_metrics (
    key           text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$'),
    level         text NOT NULL DEFAULT 'basic' CHECK (level = 'basic'),
    summary       text NOT NULL CHECK (summary <> '' AND pg_catalog.length(summary) <= 200),
    query         text NOT NULL,
    timeout_ms    integer NOT NULL CHECK (timeout_ms BETWEEN 1 AND 60000),
    registered_by text NOT NULL DEFAULT CURRENT_USER,
    registered_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

REVOKE ALL ON _telemetry.metrics_off, _telemetry.vendor_metrics FROM PUBLIC;
GRANT SELECT ON _telemetry.metrics_off, _telemetry.vendor_metrics TO pg_monitor;
