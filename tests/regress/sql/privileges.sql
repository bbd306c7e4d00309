-- What a plain role and a pg_monitor member may call and read.
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS telemetry CASCADE;
\set VERBOSITY default
CREATE ROLE regress_telemetry_plain;
CREATE ROLE regress_telemetry_monitor IN ROLE pg_monitor;

-- What the extension owns: its members, by catalog.
CREATE TEMP VIEW regress_members AS
SELECT d.classid, d.objid FROM pg_depend d
WHERE d.deptype = 'e' AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'telemetry');
-- Every function of the extension, and who may execute it.
SELECT p.oid::regprocedure AS function,
       has_function_privilege('regress_telemetry_plain', p.oid, 'EXECUTE') AS plain,
       has_function_privilege('regress_telemetry_monitor', p.oid, 'EXECUTE') AS monitor
FROM regress_members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
ORDER BY p.oid::regprocedure::text;

-- Every table and view, and who may read it; nobody else may write.
SELECT c.oid::regclass AS relation,
       has_table_privilege('regress_telemetry_plain', c.oid, 'SELECT') AS plain,
       has_table_privilege('regress_telemetry_monitor', c.oid, 'SELECT') AS monitor,
       has_table_privilege('regress_telemetry_monitor', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE') AS monitor_writes
FROM regress_members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
ORDER BY c.oid::regclass::text;

-- Line numbers of the Python traceback are not part of the interface.
\set SHOW_CONTEXT never

SET ROLE regress_telemetry_plain;
SELECT get_report();
SELECT * FROM telemetry_status;
SELECT count(*) FROM _telemetry.attempts;
SET telemetry.metrics_level = off;
RESET ROLE;

SET ROLE regress_telemetry_monitor;
SELECT get_report() ->> 'extension_version' = extversion AS monitor_reads_report
FROM pg_extension WHERE extname = 'telemetry';
SELECT count(*) AS status_rows FROM telemetry_status;
SELECT count(*) > 0 AS metrics_listed FROM telemetry_metrics;
SELECT count(*) AS attempts FROM _telemetry.attempts;
SELECT telemetry_send_report();
SELECT telemetry_tick();
SELECT telemetry_set_option('endpoint', 'http://127.0.0.1:1/');
SELECT telemetry_set_metric_enabled('relations', false);
SELECT telemetry_register_metric('widgets', 'SELECT 1 AS n', 'Widgets.');
SET telemetry.metrics_level = off;
RESET ROLE;

DROP ROLE regress_telemetry_plain, regress_telemetry_monitor;
DROP EXTENSION telemetry;
