-- Runs on every install and update: keeping the pg_cron entry in step with the extension.
-- Where telemetry's background worker runs (telemetry in shared_preload_libraries),
-- it calls the tick: no entry is made, and the one an earlier release made is removed.

-- The job's command is a constant: no SQL is built from names.  The tick
-- runs every 15 minutes, but not every database on the same minute: this
-- database's minute (0-14) is drawn from its jitter, so a fleet's due reports
-- do not all arrive in the same second.  A tick with nothing due costs one
-- small query.
-- True when cron.job is pg_cron's own table.  Everything here that touches
-- cron.* runs as a superuser (CREATE EXTENSION, DROP, the status view's
-- definer), so a look-alike schema "cron" made by a role with CREATE on the
-- database must never be read, written or called.
CREATE OR REPLACE FUNCTION _telemetry.pg_cron_here()
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                     JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND d.objid = pg_catalog.to_regclass('cron.job')
                      AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                      AND d.deptype = 'e' AND e.extname = 'pg_cron')
$$;

CREATE OR REPLACE FUNCTION _telemetry.cron_register()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    every_minutes CONSTANT integer := 15;
BEGIN
    -- Only where pg_cron is installed in this same database; for pg_cron in
    -- another database see the README (cron.schedule_in_database).
    IF NOT _telemetry.pg_cron_here() THEN
        RETURN;  -- (a separate test: cron.job must not even be planned without pg_cron)
    END IF;
    IF _telemetry.worker_running() THEN
        RETURN;  -- the background worker calls the tick
    END IF;
    IF NOT EXISTS (SELECT 1 FROM cron.job
                    WHERE jobname = 'telemetry' AND database = pg_catalog.current_database()) THEN
        PERFORM cron.schedule('telemetry',
                              pg_catalog.format('%s-59/%s * * * *',
                                                (SELECT pg_catalog.floor(jitter_fraction * every_minutes)::int
                                                   FROM _telemetry.schedule),
                                                every_minutes),
                              'SELECT _telemetry.tick()');
    END IF;
END
$$;

-- No code runs when an extension itself is dropped, and an event trigger that
-- is dropped with it does not fire.  So: before any DROP that might take the
-- extension with it, take the entry out; after it, if the extension is still
-- here (this trigger only fires then), put it back.  Both never fail the DDL.
-- Only a role that could drop the extension (it owns the extension or its
-- schema) and may use _telemetry acts: any other role's DROP SCHEMA or DROP
-- OWNED (a database owner's, whose pg_database_owner owns public, included)
-- is left alone and logs nothing.  Only pg_catalog is read before that is known.
CREATE OR REPLACE FUNCTION _telemetry.cron_before_drop()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed int;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension AS e
                     JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
                    WHERE e.extname = 'telemetry'
                      AND (pg_catalog.pg_has_role(e.extowner, 'USAGE')
                           OR pg_catalog.pg_has_role(n.nspowner, 'USAGE')))
       OR NOT pg_catalog.has_schema_privilege('_telemetry', 'USAGE') THEN
        RETURN;
    END IF;
    IF NOT _telemetry.pg_cron_here() THEN
        RETURN;
    END IF;
    DELETE FROM cron.job WHERE jobname = 'telemetry' AND database = pg_catalog.current_database()
        AND command = 'SELECT _telemetry.tick()';
    GET DIAGNOSTICS removed = ROW_COUNT;
    IF removed > 0 THEN
        PERFORM pg_catalog.set_config('telemetry.cron_entry_removed', 'yes', true);
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE LOG 'telemetry: could not update the pg_cron entry: %', SQLERRM;
END
$$;

CREATE OR REPLACE FUNCTION _telemetry.cron_after_drop()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.current_setting('telemetry.cron_entry_removed', true) = 'yes' THEN
        PERFORM pg_catalog.set_config('telemetry.cron_entry_removed', '', true);
        PERFORM _telemetry.cron_register();
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE LOG 'telemetry: could not update the pg_cron entry: %', SQLERRM;
END
$$;

-- Where the background worker calls the tick, the extension's own pg_cron
-- entry (an earlier release made it) would tick twice and log pg_cron's lines:
-- it goes.  Entries a DBA made under other names stay.
CREATE OR REPLACE FUNCTION _telemetry.cron_retire()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    entry bigint;
BEGIN
    IF NOT _telemetry.worker_running() OR NOT _telemetry.pg_cron_here() THEN
        RETURN;
    END IF;
    FOR entry IN SELECT j.jobid FROM cron.job AS j
                  WHERE j.jobname = 'telemetry' AND j.database = pg_catalog.current_database()
                    AND _telemetry.cron_calls_tick(j.command) LOOP
        PERFORM cron.unschedule(entry);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION _telemetry.cron_retire() FROM PUBLIC;
REVOKE ALL ON FUNCTION _telemetry.pg_cron_here(), _telemetry.cron_register(), _telemetry.cron_before_drop(),
    _telemetry.cron_after_drop() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _telemetry.pg_cron_here() TO pg_monitor;

-- Created once, with the extension (an update finds them there already).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger AS t
                    WHERE t.evtname OPERATOR(pg_catalog.=) 'telemetry_cron_before_drop') THEN
        CREATE EVENT TRIGGER telemetry_cron_before_drop ON ddl_command_start
            WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED')
            EXECUTE FUNCTION _telemetry.cron_before_drop();
        CREATE EVENT TRIGGER telemetry_cron_after_drop ON ddl_command_end
            WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED')
            EXECUTE FUNCTION _telemetry.cron_after_drop();
        PERFORM _telemetry.cron_register();
    END IF;
END
$$;

SELECT _telemetry.cron_retire();
