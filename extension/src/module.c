/*
 * module.c -- telemetry.so's entry point.
 *
 * The rest of the extension is SQL and PL/Python; this module does only what
 * they cannot, one job per file:
 *   metrics_level.c   the setting telemetry.metrics_level
 *   metric_deadline.c a statement timer armed for one metric
 *   relation_stats.c  relation statistics in one pass over the catalog
 *   read_only.c       makes a registered metric's query read-only
 *   kill_switch.c     DISABLE_TELEMETRY, read with the fail-closed rule
 *   worker_launcher.c the background worker: telemetry.tick_interval, the launcher
 *   worker_visit.c    one visit: the tick in one database
 *   worker_state.c    what the launcher, its visitor and the utility hook share
 *   utility_hook.c    ends a visit that would make a DBA's database command fail
 * docs/metrics.md says how the report uses metric_deadline.c and relation_stats.c.
 */
#include "postgres.h"

#include "fmgr.h"

#include "metrics_level.h"
#include "miscadmin.h"
#include "worker.h"

/*
 * PostgreSQL 18 can record the module's name and version, shown by
 * pg_get_loaded_modules(); TELEMETRY_VERSION comes from telemetry.control
 * (see the Makefile).
 */
#if PG_VERSION_NUM >= 180000
PG_MODULE_MAGIC_EXT(.name = "telemetry", .version = TELEMETRY_VERSION);
#else
PG_MODULE_MAGIC;
#endif

/* fmgr.h declares _PG_init from PostgreSQL 16 on. */
#if PG_VERSION_NUM < 160000
extern void _PG_init(void);
#endif

void
_PG_init(void)
{
	telemetry_define_metrics_level();
	telemetry_define_tick_interval();
	telemetry_install_utility_hook();
	/* A worker and shared memory can be had only while shared_preload_libraries loads. */
	if (process_shared_preload_libraries_in_progress)
	{
		telemetry_request_worker_state();
		telemetry_register_launcher();
	}
}
