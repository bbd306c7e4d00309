-- Every install and update: the ledger of migrations (sql/incremental/), made
-- here if this database does not have it yet.  Written after the migrations
-- because the first of them makes the private schema; see extension/migrations.py.

-- A row per migration this database has run.  Not dumped: a restored
-- database records its own from its own CREATE EXTENSION.
-- (Checked, not CREATE TABLE IF NOT EXISTS, which pgspot in make lint refuses;
-- only _telemetry's owner may create in it.)
DO $$
BEGIN
    IF pg_catalog.to_regclass('_telemetry.migrations') IS NULL THEN
        CREATE TABLE _telemetry.migrations (
            name               text PRIMARY KEY,
            checksum           text NOT NULL,
            applied_at         timestamptz,
            applied_by_version text NOT NULL
        );
    END IF;
END
$$;
COMMENT ON TABLE _telemetry.migrations IS
'Migrations (sql/incremental/) this database has run: file name, sha256 as shipped, when (NULL: by a release that kept no ledger), by which version';

REVOKE ALL ON _telemetry.migrations FROM PUBLIC;
GRANT SELECT ON _telemetry.migrations TO pg_monitor;
