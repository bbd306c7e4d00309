-- CREATE EXTENSION, its NOTICE (terse here and in every test: the detail
-- carries the date of the first report), and every object the extension owns.
\set VERBOSITY terse
CREATE EXTENSION telemetry CASCADE;
\set VERBOSITY default
\dx+ telemetry
SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'telemetry') AS default_version_installed
FROM pg_extension WHERE extname = 'telemetry';
DROP EXTENSION telemetry;
SELECT count(*) AS schemas_left FROM pg_namespace WHERE nspname = '_telemetry';
