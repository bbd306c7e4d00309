-- Bad input gets an error that says what is wrong and how to do it right,
-- and changes nothing.
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS telemetry CASCADE;
\set VERBOSITY default
-- Line numbers of the Python traceback are not part of the interface.
\set SHOW_CONTEXT never

-- Options.
SELECT telemetry_set_option('nonsense', 'x');
SELECT telemetry_set_option('deadline', '0');
SELECT telemetry_set_option('endpoint', 'ftp://example.com/');
SELECT telemetry_set_option('endpoint', 'https://user:secret@example.com/');
SELECT count(*) AS options_stored FROM _telemetry.options;

-- Metric registration.
SELECT telemetry_register_metric('Bad Key', 'SELECT 1 AS n', 'Bad key.');
SELECT telemetry_register_metric('words', 'SELECT ''a''::text AS t', 'Words.');
SELECT telemetry_register_metric('two_rows', 'SELECT 1 AS n FROM generate_series(1, 2)', 'Two rows.');
SELECT telemetry_register_metric('loud', 'SELECT 1 AS n', 'Loud.', 1000, 'loud');
SELECT telemetry_register_metric('slow', 'SELECT 1 AS n', 'Slow.', 0);
SELECT count(*) AS registered FROM _telemetry.vendor_metrics;
SELECT telemetry_set_metric_enabled('nonexistent', false);
SELECT telemetry_unregister_metric('nonexistent');

-- The level: a typo is a WARNING naming the valid values, and counts as off.
SET telemetry.metrics_level = 'loud';
SELECT get_report() ->> 'metrics_level' AS level;
RESET telemetry.metrics_level;
SELECT get_report() ->> 'metrics_level' AS level;

DROP EXTENSION telemetry;
