/*
 * module.c -- telemetry.so's entry point.
 *
 * Everything else in the extension is PL/Python; this module does only what
 * PL/Python cannot, one job per file:
 *   metrics_level.c   the setting telemetry.metrics_level
 *   metric_deadline.c a statement timer armed for one metric
 *   relation_stats.c  relation statistics in one pass over the catalog
 *   kill_switch.c     DISABLE_TELEMETRY, read with the fail-closed rule
 * See docs/metrics.md for how the report uses the last two.
 */
#include "postgres.h"

#include "fmgr.h"

#include "metrics_level.h"

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
}
