-- Runs on every install and update: how the SQL reaches the Python package.

-- Declares telemetry.metrics_level in this session (see extension/telemetry.c).
CREATE OR REPLACE FUNCTION _telemetry.declare_settings()
RETURNS void
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'telemetry_declare_settings';

-- Puts this version's package directory on sys.path and keeps the module in
-- GD, shared by this session's PL/Python functions.  Every other function
-- starts with: if "telemetry" not in GD: plpy.execute("SELECT _telemetry.load_python()")
CREATE OR REPLACE FUNCTION _telemetry.load_python()
RETURNS void
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
import os
import sys

# PostgreSQL finds its own files relative to its binary; so do we, so that a
# relocated tree (a package build, a test installation) loads its own copy.
bindir = os.path.dirname(os.path.realpath("/proc/self/exe"))
candidates = [os.path.normpath(os.path.join(bindir, @PYTHON_DIR_FROM_BINDIR@)), @PYTHON_DIR@]
found = [d for d in candidates if os.path.isfile(os.path.join(d, "telemetry", "_build.py"))]
if found:
    if found[0] not in sys.path:
        sys.path.insert(0, found[0])
    import telemetry.entry
    GD["telemetry"] = telemetry.entry
else:
    # Raised from the calling function (not through this SPI call), so the
    # user reads our message, not a nested exception; tried again next call.
    class Missing:
        def checked(self, sql_version):
            del GD["telemetry"]
            plpy.error(
                "telemetry: the Python package for extension version @EXTVERSION@ is not installed",
                detail="Looked in: " + ", ".join(candidates),
                hint="Run make install for telemetry @EXTVERSION@, or ALTER EXTENSION telemetry UPDATE to the installed version.",
            )
    GD["telemetry"] = Missing()
$python$;

REVOKE ALL ON FUNCTION _telemetry.declare_settings(), _telemetry.load_python() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _telemetry.declare_settings(), _telemetry.load_python() TO pg_monitor;
