-- Runs on every install and update: what the declared metrics need, vendor
-- registration, switching metrics off, and the run-time list of metrics.

-- Arms (ms > 0) or disarms (ms = 0) a metric's deadline; see the C module in extension/.
CREATE OR REPLACE FUNCTION _telemetry.metric_deadline(ms integer)
RETURNS boolean
LANGUAGE C
VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'telemetry_metric_deadline';

-- Relation statistics by kind and by access method in one pass over pg_class
-- and pg_index; see the C module in extension/ and python/telemetry_extension/metrics/relations.py.
CREATE OR REPLACE FUNCTION _telemetry.relation_stats(
    skip_namespaces oid[], skip_relations oid[],
    OUT what text, OUT relkind text, OUT is_partition boolean, OUT am oid, OUT num_relations bigint,
    OUT reltuples float8, OUT heap_pages bigint, OUT toast_pages bigint, OUT index_pages bigint,
    OUT num_indexes bigint)
RETURNS SETOF record
LANGUAGE C
STABLE STRICT
ROWS 20
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'telemetry_relation_stats';

-- Another extension's metric: one row of numbers under vendor_metrics.<key>.
-- Superuser only (it changes what is sent).  Runs the query once and refuses
-- it unless it returns numbers; returns that value.  The defaults and the
-- limits are python/telemetry_extension/metrics/registered.py's (tested).
CREATE OR REPLACE FUNCTION @extschema@.telemetry_register_metric(
    key text, query text, summary text, timeout_ms integer DEFAULT 1000, level text DEFAULT 'basic')
RETURNS jsonb
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").register_metric(plpy, key, query, summary, timeout_ms, level)
$python$;

COMMENT ON FUNCTION @extschema@.telemetry_register_metric(text, text, text, integer, text) IS
'Registers a metric (an aggregate query returning one row of numbers) reported under vendor_metrics.<key>';

-- Makes the rest of the calling (sub)transaction read-only; see extension/src/read_only.c.
CREATE OR REPLACE FUNCTION _telemetry.read_only()
RETURNS void
LANGUAGE C
VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'telemetry_read_only';

-- A registered metric's value as JSON ({"value": ...} or {"invalid": why}),
-- the one way it runs at registration, in get_report() and in a send: the
-- stored query of `key` only, as one statement, read-only (neither it nor
-- anything it calls can write).  PL/pgSQL, because it runs at its caller's
-- (sub)transaction level: the read-only flag holds for the Python part and ends
-- with the subtransaction PL/Python runs the calling statement in (called from
-- plain SQL, with the transaction).  See
-- python/telemetry_extension/metrics/registered.py.
CREATE OR REPLACE FUNCTION _telemetry.registered_value(key text)
RETURNS text
LANGUAGE plpgsql
STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM _telemetry.read_only();
    RETURN _telemetry.registered_query_value(key);
END
$$;

CREATE OR REPLACE FUNCTION _telemetry.registered_query_value(key text)
RETURNS text
LANGUAGE plpython3u
STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").registered_value(plpy, key)
$python$;

CREATE OR REPLACE FUNCTION @extschema@.telemetry_unregister_metric(key text)
RETURNS boolean
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").unregister_metric(plpy, key)
$python$;

-- Switches any metric off (enabled = false) or on again: a declared key, or
-- vendor_metrics.<key>.  Superuser only.
CREATE OR REPLACE FUNCTION @extschema@.telemetry_set_metric_enabled(key text, enabled boolean)
RETURNS boolean
LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").set_metric_enabled(plpy, key, enabled)
$python$;

CREATE OR REPLACE FUNCTION _telemetry.metrics_list(
    OUT key text, OUT origin text, OUT level text, OUT summary text, OUT source text, OUT timeout_ms integer,
    OUT can_switch_off boolean, OUT enabled boolean)
RETURNS SETOF record
LANGUAGE plpython3u
STABLE
SET search_path = pg_catalog, pg_temp
AS $python$
if "telemetry_extension" not in GD: plpy.execute("SELECT _telemetry.load_python()")
return GD["telemetry_extension"].checked("@EXTVERSION@").metrics_list(plpy)
$python$;

SELECT _telemetry.define_view('@extschema@.telemetry_metrics', 'SELECT * FROM _telemetry.metrics_list()');
COMMENT ON VIEW @extschema@.telemetry_metrics IS
'Every metric of the report: declared ones and registered ones, with summaries and whether each is on';

REVOKE ALL ON FUNCTION _telemetry.metric_deadline(integer), _telemetry.relation_stats(oid[], oid[]),
    _telemetry.read_only(), _telemetry.registered_value(text), _telemetry.registered_query_value(text),
    @extschema@.telemetry_register_metric(text, text, text, integer, text), @extschema@.telemetry_unregister_metric(text),
    @extschema@.telemetry_set_metric_enabled(text, boolean), _telemetry.metrics_list() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _telemetry.metric_deadline(integer), _telemetry.relation_stats(oid[], oid[]),
    _telemetry.read_only(), _telemetry.registered_value(text), _telemetry.registered_query_value(text), _telemetry.metrics_list() TO pg_monitor;
REVOKE ALL ON @extschema@.telemetry_metrics FROM PUBLIC;
GRANT SELECT ON @extschema@.telemetry_metrics TO pg_monitor;
