-- Runs on every install and update: the job's entry points and its status.

-- The tick: cheap when nothing is due; sends when due.  What schedulers call.
CREATE OR REPLACE FUNCTION @extschema@.telemetry_tick()
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").tick(plpy)
$python$;

-- The same tick under a fixed name, so the pg_cron command is a constant
-- whatever schema the extension was created in.  Its messages go to the
-- server log only: pg_cron would log a client-side copy of each again.
CREATE OR REPLACE FUNCTION _telemetry.tick()
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
SET client_min_messages = error
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").tick(plpy)
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

CREATE OR REPLACE VIEW @extschema@.telemetry_status AS SELECT * FROM _telemetry.status();
COMMENT ON VIEW @extschema@.telemetry_status IS 'Telemetry at a glance: level, endpoint, last and next send, newest version';

REVOKE ALL ON FUNCTION @extschema@.telemetry_tick(), _telemetry.tick(), @extschema@.telemetry_send_report(),
    @extschema@.telemetry_set_option(text, text), _telemetry.status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _telemetry.status() TO pg_monitor;
REVOKE ALL ON @extschema@.telemetry_status FROM PUBLIC;
GRANT SELECT ON @extschema@.telemetry_status TO pg_monitor;
