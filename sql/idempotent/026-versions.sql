-- Runs on every install and update: what the version check learned, per product.

-- Appended columns only: an update keeps the earlier ones (see 012-define-view.sql).
SELECT _telemetry.define_view('@extschema@.telemetry_versions',
    'SELECT v.product, v.installed, v.newest, v.newest_in_series, v.security, v.end_of_life, v.notes_url, '
    '       v.up_to_date, v.checked_at '
    '  FROM _telemetry.versions AS v '
    ' ORDER BY v.product OPERATOR(pg_catalog.<>) ''telemetry'', v.product');
COMMENT ON VIEW @extschema@.telemetry_versions IS
'Per product this database runs (telemetry, postgresql, listed extensions): installed, newest, newest in its series, security fix outstanding, end of life, release notes, as the last answer said';
REVOKE ALL ON @extschema@.telemetry_versions FROM PUBLIC;
GRANT SELECT ON @extschema@.telemetry_versions TO pg_monitor;

-- telemetry_status's summary of it: products out of date, and those with a
-- security fix outstanding or on a series past its end of life.
CREATE OR REPLACE FUNCTION _telemetry.versions_summary(
    OUT versions_behind integer, OUT security_fixes_for text[], OUT end_of_life_for text[])
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.count(*) FILTER (WHERE NOT v.up_to_date)::integer,
           pg_catalog.array_agg(v.product ORDER BY v.product) FILTER (WHERE v.security),
           pg_catalog.array_agg(v.product ORDER BY v.product) FILTER (WHERE v.end_of_life)
      FROM _telemetry.versions AS v
$$;
REVOKE ALL ON FUNCTION _telemetry.versions_summary() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _telemetry.versions_summary() TO pg_monitor;
