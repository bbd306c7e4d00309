-- Run once: the reporting job's state, options, audit trail and version check.

-- Superuser-set options (endpoint, interval, grace, ...); absent means default.
-- Dumped, so a restored database keeps its DBA's choices; nothing is seeded,
-- so the restore never collides.
CREATE TABLE _telemetry.options (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('_telemetry.options', '');

-- When the next report is due.  next_due NULL: the first report, due after
-- the grace period from CREATE EXTENSION.  jitter_fraction is this database's
-- own random share of the jitter.
CREATE TABLE _telemetry.schedule (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    next_due        timestamptz,
    failures        integer NOT NULL DEFAULT 0,
    jitter_fraction float8 NOT NULL DEFAULT pg_catalog.random(),
    last_attempt    timestamptz,
    last_success    timestamptz
);
INSERT INTO _telemetry.schedule DEFAULT VALUES;

-- Every attempt, kept for audit: the exact body sent and what came back.
CREATE TABLE _telemetry.attempts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at     timestamptz NOT NULL,
    duration_ms    integer NOT NULL,
    trigger        text NOT NULL CHECK (trigger IN ('job', 'manual')),
    endpoint       text NOT NULL,
    body           text NOT NULL,
    http_status    integer,
    outcome        text NOT NULL CHECK (outcome IN ('sent', 'failed')),
    error          text,
    latest_version text
);

-- The newest release, as the last answer told it.
CREATE TABLE _telemetry.latest_version (
    singleton            boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    latest_version       text NOT NULL,
    installed_version    text NOT NULL,
    up_to_date           boolean NOT NULL,
    collector_up_to_date boolean,
    learned_at           timestamptz NOT NULL
);

REVOKE ALL ON _telemetry.options, _telemetry.schedule, _telemetry.attempts, _telemetry.latest_version FROM PUBLIC;
GRANT SELECT ON _telemetry.options, _telemetry.schedule, _telemetry.attempts, _telemetry.latest_version
    TO pg_monitor;
