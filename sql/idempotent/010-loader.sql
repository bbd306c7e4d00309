-- Runs on every install and update: how the SQL reaches the Python package.

-- Declares telemetry.metrics_level in this session (see the C module in extension/).
CREATE OR REPLACE FUNCTION _telemetry.declare_settings()
RETURNS void
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'telemetry_declare_settings';

-- Imports this version's package and keeps its entry module in
-- GD["telemetry_extension"], shared by this session's PL/Python functions.
-- Every other function starts with:
--   if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
-- The package directory is on sys.path only during the import: another
-- PL/Python function of the session never finds our packages (or our pinned
-- requests, urllib3, ...) before its own.  Modules already imported are the
-- process's, as always in Python.  A session that already loaded another
-- version of the package (an update ran since) is told to reconnect: two
-- versions never mix in one process.
CREATE OR REPLACE FUNCTION _telemetry.load_python()
RETURNS void
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
import os
import sys

# Raised from the calling function (not through this SPI call), so the user
# reads our message, not a nested exception; tried again on the next call.
class Refused:
    def __init__(self, message, detail, hint):
        self.message, self.detail, self.hint = message, detail, hint

    def checked(self, sql_version):
        del GD["telemetry_extension"]
        plpy.error(self.message, detail=self.detail, hint=self.hint)

# PostgreSQL finds its own files relative to its binary; so do we, so that a
# relocated tree (a package build, a test installation) loads its own copy.
bindir = os.path.dirname(os.path.realpath("/proc/self/exe"))
candidates = [os.path.normpath(os.path.join(bindir, @PYTHON_DIR_FROM_BINDIR@)), @PYTHON_DIR@]
found = [d for d in candidates if os.path.isfile(os.path.join(d, "telemetry_extension", "_build.py"))]
loaded = sys.modules.get("telemetry_extension")
other = None
if hasattr(GD.get("telemetry"), "checked"):
    other = "telemetry " + str(getattr(GD["telemetry"], "VERSION", "0.1.0"))  # 0.1.0's package, module telemetry
elif loaded is not None and (not found or os.path.dirname(os.path.dirname(os.path.abspath(loaded.__file__))) != found[0]):
    other = "from " + os.path.dirname(os.path.dirname(os.path.abspath(loaded.__file__)))
if other is not None:
    GD["telemetry_extension"] = Refused(
        "telemetry: this session already runs another version of the extension's Python package",
        "Loaded: " + other + "; this database's extension is @EXTVERSION@.",
        "Reconnect: a new session loads the package of version @EXTVERSION@.",
    )
elif found:
    inserted = found[0] not in sys.path
    if inserted:
        sys.path.insert(0, found[0])
    try:
        import telemetry_extension.entry
    finally:
        if inserted:
            sys.path.remove(found[0])
    GD["telemetry_extension"] = telemetry_extension.entry
else:
    GD["telemetry_extension"] = Refused(
        "telemetry: the Python package for extension version @EXTVERSION@ is not installed",
        "Looked in: " + ", ".join(candidates),
        "Run make install for telemetry @EXTVERSION@, or ALTER EXTENSION telemetry UPDATE to the installed version.",
    )
$python$;

REVOKE ALL ON FUNCTION _telemetry.declare_settings(), _telemetry.load_python() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _telemetry.declare_settings(), _telemetry.load_python() TO pg_monitor;
