-- Runs on every install and update: the background worker, as SQL sees it.

-- Whether the worker's launcher runs right now (not on a standby, nor after a
-- DBA ended it, nor where telemetry is not preloaded): what telemetry_status
-- names as the tick's caller, and where no pg_cron entry is made or kept.
-- Plain SQL, not the C module: after a package upgrade the server runs the
-- module it started with until it restarts, and ALTER EXTENSION UPDATE must
-- need no symbol that module lacks.  And a pg_cron entry goes only once a
-- launcher really calls the tick instead (after that restart).
CREATE OR REPLACE FUNCTION _telemetry.worker_running()
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity AS a WHERE a.backend_type = 'telemetry launcher')
$$;

REVOKE ALL ON FUNCTION _telemetry.worker_running() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _telemetry.worker_running() TO pg_monitor;
