-- Runs on every install and update: the effective telemetry.metrics_level, in
-- plain SQL so that the tick answers "off" without loading Python.  Python
-- (telemetry_extension/level_setting.py) reads the same functions: one owner per rule.

-- DISABLE_TELEMETRY, read with the fail-closed rule (extension/src/kill_switch.c).
-- Calling it loads the C module, which declares telemetry.metrics_level.
CREATE OR REPLACE FUNCTION _telemetry.disabled_by_environment()
RETURNS boolean
LANGUAGE C
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'telemetry_disabled_by_environment';

-- How a value of telemetry.metrics_level is read: surrounding white space
-- ignored, any case; 'off' or 'basic', NULL for anything else (which counts as off).
CREATE OR REPLACE FUNCTION _telemetry.metrics_level_spelled(value text)
RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
-- A quoted body, not RETURN ...: pgspot (make lint) reads only quoted bodies.
AS $$
    SELECT CASE pg_catalog.lower(pg_catalog.btrim(value, E' \t\n\r\f\v') COLLATE "C")
               WHEN 'off' THEN 'off'
               WHEN 'basic' THEN 'basic'
           END
$$;

-- The effective level and where it came from: PostgreSQL's pg_settings.source
-- vocabulary as is, 'alter system' (postgresql.auto.conf, told apart by the
-- file's name, never sent), 'environment' (DISABLE_TELEMETRY) or 'other'.
CREATE OR REPLACE FUNCTION _telemetry.effective_level(OUT level text, OUT source text, OUT valid boolean)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    setting record;
BEGIN
    -- First, and on its own: it also declares the setting read next.
    IF _telemetry.disabled_by_environment() THEN
        level := 'off';
        source := 'environment';
        valid := true;
        RETURN;
    END IF;
    SELECT s.setting, s.source, s.sourcefile INTO setting
      FROM pg_catalog.pg_settings AS s WHERE s.name = 'telemetry.metrics_level';
    level := _telemetry.metrics_level_spelled(setting.setting);
    valid := level IS NOT NULL;
    level := COALESCE(level, 'off');
    source := CASE
        WHEN setting.source = 'configuration file' AND setting.sourcefile LIKE '%postgresql.auto.conf' THEN 'alter system'
        WHEN setting.source = ANY (ARRAY['default', 'configuration file', 'command line', 'environment variable',
                                         'global', 'database', 'user', 'database user', 'client', 'override',
                                         'interactive', 'test', 'session']) THEN setting.source
        ELSE 'other'
    END;
END
$$;

REVOKE ALL ON FUNCTION _telemetry.disabled_by_environment(), _telemetry.metrics_level_spelled(text),
    _telemetry.effective_level() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _telemetry.disabled_by_environment(), _telemetry.metrics_level_spelled(text),
    _telemetry.effective_level() TO pg_monitor;
