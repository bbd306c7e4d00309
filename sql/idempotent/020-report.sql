-- Runs on every install and update: the report.

CREATE OR REPLACE FUNCTION @extschema@.get_report()
RETURNS jsonb
LANGUAGE plpython3u
STABLE
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").get_report(plpy)
$python$;

COMMENT ON FUNCTION @extschema@.get_report() IS
'The exact report this database sends, as JSON (see docs/report-fields.md)';

REVOKE ALL ON FUNCTION @extschema@.get_report() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.get_report() TO pg_monitor;

-- pg_monitor members read the report (and telemetry_status, telemetry_metrics)
-- wherever the extension was created, not only in a schema everyone may use.
-- USAGE lets them look names up in the schema and nothing more: every object
-- in it keeps its own privileges, and CREATE is not granted.  A schema is not
-- the extension's (it existed before CREATE EXTENSION), so DROP EXTENSION
-- leaves this grant in place; it gives nothing once our objects are gone.
GRANT USAGE ON SCHEMA @extschema@ TO pg_monitor;
