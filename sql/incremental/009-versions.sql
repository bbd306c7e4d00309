-- Run once: what the last answer said of each product this database runs
-- (python/telemetry_extension/job/advisories.py writes it; the
-- telemetry_versions view shows it).  One row per product, replaced by each
-- answer.  security and end_of_life NULL: the collector did not say (a
-- collector before 0.3.0 tells only the extension's newest release).
CREATE TABLE _telemetry.versions (
    product          text PRIMARY KEY,
    installed        text NOT NULL,
    newest           text NOT NULL,
    newest_in_series text,
    security         boolean,
    end_of_life      boolean,
    notes_url        text CHECK (notes_url ~ '^https://'),
    up_to_date       boolean NOT NULL,
    checked_at       timestamptz NOT NULL
);
REVOKE ALL ON _telemetry.versions FROM PUBLIC;
GRANT SELECT ON _telemetry.versions TO pg_monitor;
