-- The report's top-level keys (docs/report-fields.md has each one's meaning).
\set VERBOSITY terse
CREATE EXTENSION IF NOT EXISTS telemetry CASCADE;
\set VERBOSITY default
SELECT jsonb_object_keys(get_report()) AS key ORDER BY 1;
SELECT get_report() ->> 'extension_version' = extversion AS version_reported,
       get_report() ->> 'report_format_version' IS NOT NULL AS format_reported
FROM pg_extension WHERE extname = 'telemetry';
DROP EXTENSION telemetry;
