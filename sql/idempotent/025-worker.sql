-- Runs on every install and update: the background worker, as SQL sees it.

-- Whether this server registered telemetry's background worker: true when
-- telemetry is in shared_preload_libraries (extension/src/worker_launcher.c).
-- Where it is, the worker calls the tick and no pg_cron entry is made.
CREATE OR REPLACE FUNCTION _telemetry.worker_registered()
RETURNS boolean
LANGUAGE C
STABLE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'telemetry_worker_registered';

-- Whether the worker's launcher runs right now (not on a standby, nor after a
-- DBA ended it): what telemetry_status names as the tick's caller.
CREATE OR REPLACE FUNCTION _telemetry.worker_running()
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT _telemetry.worker_registered()
       AND EXISTS (SELECT FROM pg_catalog.pg_stat_activity AS a WHERE a.backend_type = 'telemetry launcher')
$$;

REVOKE ALL ON FUNCTION _telemetry.worker_registered(), _telemetry.worker_running() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _telemetry.worker_registered(), _telemetry.worker_running() TO pg_monitor;
