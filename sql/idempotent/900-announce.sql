-- Last on every install and update: tell the DBA what this extension sends, or that it is off.

CREATE OR REPLACE FUNCTION _telemetry.announce()
RETURNS void
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
-- CREATE EXTENSION raises client_min_messages to WARNING while its script
-- runs; this one NOTICE is the point of the call, so let it through.
SET client_min_messages = notice
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
GD["telemetry_extension"].checked("@EXTVERSION@").announce(plpy)
$python$;
REVOKE ALL ON FUNCTION _telemetry.announce() FROM PUBLIC;

SELECT _telemetry.announce();
