-- What a plain role and a pg_monitor member may call and read.
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS telemetry CASCADE;
\set VERBOSITY default
CREATE ROLE regress_telemetry_plain;
CREATE ROLE regress_telemetry_monitor IN ROLE pg_monitor;

-- Every function of the extension, and who may execute it.
SELECT p.oid::regprocedure AS function,
       has_function_privilege('regress_telemetry_plain', p.oid, 'EXECUTE') AS plain,
       has_function_privilege('regress_telemetry_monitor', p.oid, 'EXECUTE') AS monitor
FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'telemetry')
ORDER BY p.oid::regprocedure::text;

-- Every table and view, and who may read it; nobody else may write.
SELECT c.oid::regclass AS relation,
       has_table_privilege('regress_telemetry_plain', c.oid, 'SELECT') AS plain,
       has_table_privilege('regress_telemetry_monitor', c.oid, 'SELECT') AS monitor,
       has_table_privilege('regress_telemetry_monitor', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE') AS monitor_writes
FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'telemetry')
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
