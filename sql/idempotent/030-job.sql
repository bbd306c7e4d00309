-- Runs on every install and update: the job's entry points and its status.

-- The tick's first step, in plain SQL: "off" and "nothing due" are answered
-- here, so that a tick in a new backend (pg_cron starts one for every run)
-- never loads Python for them.  NULL: due, a template copy, or no due time
-- recorded yet; the Python tick (_telemetry.run_tick) decides, with the
-- same rules, and is the only step that may send.  The due time is the one
-- the Python code wrote (telemetry_extension/job/schedule.py owns the
-- schedule's rules and the options' defaults; plan_first_report below writes
-- the first one).
CREATE OR REPLACE FUNCTION _telemetry.tick_check()
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    state record;
    found_state boolean;
BEGIN
    -- The kill switch first, on its own: calling the C module also declares the setting read next.
    IF _telemetry.disabled_by_environment()
       OR _telemetry.metrics_level_spelled(pg_catalog.current_setting('telemetry.metrics_level', true))
          IS DISTINCT FROM 'basic' THEN
        RETURN pg_catalog.jsonb_build_object('outcome', 'disabled', 'metrics_level', 'off',
            'metrics_level_source', (SELECT l.source FROM _telemetry.effective_level() AS l));
    END IF;
    -- Read in a subtransaction rolled back on purpose, which releases its
    -- locks: when the Python step sends, no lock of ours is held during the
    -- network step (the variables keep what was read).
    BEGIN
        SELECT s.next_due, s.last_tick, i.database_oid = d.oid AS own INTO state
          FROM _telemetry.schedule AS s, _telemetry.instance AS i, pg_catalog.pg_database AS d
         WHERE d.datname = pg_catalog.current_database();
        found_state := FOUND;
        RAISE SQLSTATE 'TLRD0';
    EXCEPTION WHEN SQLSTATE 'TLRD0' THEN
        NULL;
    END;
    IF NOT found_state OR NOT state.own OR state.next_due IS NULL OR state.next_due <= pg_catalog.clock_timestamp() THEN
        RETURN NULL;
    END IF;
    -- Seen: telemetry_status tells from it whether anything calls the tick.
    -- At most once an hour, never in a read-only transaction (a standby).
    IF (state.last_tick IS NULL OR state.last_tick < pg_catalog.now() - interval '1 hour')
       AND pg_catalog.current_setting('transaction_read_only') = 'off' THEN
        UPDATE _telemetry.schedule SET last_tick = pg_catalog.now()
         WHERE last_tick IS NULL OR last_tick < pg_catalog.now() - interval '1 hour';
    END IF;
    RETURN pg_catalog.jsonb_build_object('outcome', 'not_due', 'next_due',
        pg_catalog.to_char(state.next_due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'));
END
$$;

-- The tick's second step: the Python tick (sends when due).
CREATE OR REPLACE FUNCTION _telemetry.run_tick()
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").tick(plpy)
$python$;

-- The tick, its two steps in order: cheap when nothing is due; sends when
-- due.  Called by its two entry points below.
CREATE OR REPLACE FUNCTION _telemetry.tick_steps()
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN COALESCE(_telemetry.tick_check(), _telemetry.run_tick());
END
$$;

-- The tick, as schedulers and DBAs call it.
CREATE OR REPLACE FUNCTION @extschema@.telemetry_tick()
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN _telemetry.tick_steps();
END
$$;

-- The same tick under a fixed name, so the pg_cron command is a constant
-- whatever schema the extension was created in.  Its messages go to the
-- server log only: pg_cron would log a client-side copy of each again.
-- It calls nothing in the extension's schema, which a role that is not a
-- superuser may own (public: pg_database_owner).
CREATE OR REPLACE FUNCTION _telemetry.tick()
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET client_min_messages = error
AS $$
BEGIN
    RETURN _telemetry.tick_steps();
END
$$;

-- Writes the first due time (grace and jitter from CREATE EXTENSION, options
-- in force) while no report has been attempted, so that tick_check() can read
-- it.  Run on every install and update, and whenever the options change (a
-- trigger on _telemetry.options: telemetry_set_option, a restore's rows).
CREATE OR REPLACE FUNCTION _telemetry.plan_first_report()
RETURNS void
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
GD["telemetry_extension"].checked("@EXTVERSION@").plan_first_report(plpy)
$python$;

-- Send now, whatever the schedule (never when off).
CREATE OR REPLACE FUNCTION @extschema@.telemetry_send_report()
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").send_report(plpy)
$python$;

-- Change a run-time option; NULL goes back to the default.
CREATE OR REPLACE FUNCTION @extschema@.telemetry_set_option(name text, value text)
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").set_option(plpy, name, value)
$python$;

CREATE OR REPLACE FUNCTION _telemetry.status(
    OUT metrics_level text, OUT metrics_level_source text, OUT endpoint text,
    OUT last_attempt timestamptz, OUT last_outcome text, OUT last_success timestamptz, OUT last_error text,
    OUT next_due timestamptz, OUT installed_version text, OUT newest_version text, OUT up_to_date boolean)
LANGUAGE plpython3u
STABLE
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").status(plpy)
$python$;

-- Whether anything calls the tick in this database, and when nothing does,
-- the exact command that makes something call it.
CREATE OR REPLACE FUNCTION _telemetry.tick_callers(
    OUT tick_caller text, OUT tick_last_seen timestamptz, OUT tick_command text)
LANGUAGE plpython3u
STABLE
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").tick_callers(plpy)
$python$;

-- Whether a pg_cron entry's command calls the tick: the extension's own
-- entry's command, or the tick's public name.
CREATE OR REPLACE FUNCTION _telemetry.cron_calls_tick(command text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT command IN ('SELECT _telemetry.tick()', 'SELECT telemetry_tick()')
$$;

-- Whether pg_cron, installed in this database, has an active entry that
-- calls the tick here.  SECURITY DEFINER because pg_cron shows each role only
-- its own jobs, and the tick's job is a superuser's: it answers one boolean,
-- takes no argument, and reads cron.job only when that table is pg_cron's own
-- (not a look-alike some role created), so no role's code runs with its rights.
CREATE OR REPLACE FUNCTION _telemetry.cron_entry_exists()
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT _telemetry.pg_cron_here() THEN
        RETURN false;
    END IF;
    RETURN EXISTS (SELECT FROM cron.job AS j
                    WHERE j.database = pg_catalog.current_database() AND j.active
                      AND _telemetry.cron_calls_tick(j.command));
END
$$;

-- The newer version this server has installed (pg_available_extensions'
-- default_version) when this database runs an older one: ALTER EXTENSION
-- telemetry UPDATE brings it.  NULL when there is none.  A version that is not
-- digits and dots is compared for equality only, so no version string errs.
CREATE OR REPLACE FUNCTION _telemetry.update_available(OUT update_available text)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT a.default_version
  FROM pg_catalog.pg_available_extensions AS a
 WHERE a.name = 'telemetry'
   AND CASE WHEN a.default_version ~ '^[0-9]+(\.[0-9]+)*$' AND a.installed_version ~ '^[0-9]+(\.[0-9]+)*$'
            THEN pg_catalog.string_to_array(a.default_version, '.')::int[]
                 > pg_catalog.string_to_array(a.installed_version, '.')::int[]
            ELSE a.default_version <> a.installed_version END
$$;

-- The message of pg_cron's latest run of the tick's entry in this database
-- when that run failed (NULL when it succeeded or none is recorded): a caller
-- that fails is no caller.  SECURITY DEFINER for the same reasons as above.
CREATE OR REPLACE FUNCTION _telemetry.cron_last_failure()
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT _telemetry.pg_cron_here() OR pg_catalog.to_regclass('cron.job_run_details') IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT CASE WHEN r.status = 'failed' THEN COALESCE(r.return_message, 'failed') END
              FROM cron.job_run_details AS r JOIN cron.job AS j ON j.jobid = r.jobid
             WHERE j.database = pg_catalog.current_database() AND j.active
               AND _telemetry.cron_calls_tick(j.command)
               AND r.status IN ('succeeded', 'failed')
             ORDER BY r.runid DESC LIMIT 1);
END
$$;

-- Appended columns only: an update keeps the earlier ones (see 012-define-view.sql).
SELECT _telemetry.define_view('@extschema@.telemetry_status',
    'SELECT s.*, c.*, u.*, v.* FROM _telemetry.status() AS s, _telemetry.tick_callers() AS c, '
    '_telemetry.update_available() AS u, _telemetry.versions_summary() AS v');
COMMENT ON VIEW @extschema@.telemetry_status IS
'Telemetry at a glance: level, endpoint, last and next send, newest version, what calls the tick, an update installed, products behind (telemetry_versions)';

REVOKE ALL ON FUNCTION @extschema@.telemetry_tick(), _telemetry.tick(), _telemetry.tick_steps(), _telemetry.tick_check(),
    _telemetry.run_tick(), _telemetry.plan_first_report(), @extschema@.telemetry_send_report(),
    @extschema@.telemetry_set_option(text, text), _telemetry.status(), _telemetry.tick_callers(),
    _telemetry.cron_calls_tick(text), _telemetry.cron_entry_exists(), _telemetry.cron_last_failure(),
    _telemetry.update_available() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _telemetry.status(), _telemetry.tick_callers(), _telemetry.cron_entry_exists(),
    _telemetry.cron_last_failure(), _telemetry.update_available() TO pg_monitor;
REVOKE ALL ON @extschema@.telemetry_status FROM PUBLIC;
GRANT SELECT ON @extschema@.telemetry_status TO pg_monitor;

SELECT _telemetry.plan_first_report();
