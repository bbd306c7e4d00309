/*
 * metrics_level.c -- declares the setting telemetry.metrics_level.
 *
 * PostgreSQL 15 and 16 reject ALTER SYSTEM SET for a parameter that no loaded
 * module declares ("unrecognized configuration parameter").  Loaded through
 * shared_preload_libraries (or session_preload_libraries), this module makes
 * telemetry.metrics_level a real parameter in every session: ALTER SYSTEM
 * works, SHOW works, pg_settings reports where the value came from, and only
 * superusers may change it (so no unprivileged role can turn sending on).
 *
 * The value is a free string on purpose: _telemetry.metrics_level_spelled()
 * (sql/idempotent/015-level.sql) reads it, trimmed and in any case, as off or
 * basic, and anything else as off (get_report() and the NOTICE warn), so that
 * a typo in postgresql.conf never silently leaves telemetry on.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "metrics_level.h"

/* A distributor's build may make it off (make TELEMETRY_DEFAULT_LEVEL=off). */
#ifndef TELEMETRY_DEFAULT_LEVEL
#define TELEMETRY_DEFAULT_LEVEL "basic"
#endif

static char *metrics_level = NULL;

void
telemetry_define_metrics_level(void)
{
	DefineCustomStringVariable("telemetry.metrics_level",
							   "Anonymous usage telemetry: off or basic.",
							   "off stops reports and version checks; any value other than basic counts as off.",
							   &metrics_level,
							   TELEMETRY_DEFAULT_LEVEL,
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
}

PG_FUNCTION_INFO_V1(telemetry_declare_settings);

/*
 * _telemetry.declare_settings(), called once per session by the PL/Python
 * code: calling any function of this module loads it, which declares the
 * setting in sessions where the module was not preloaded.
 */
Datum
telemetry_declare_settings(PG_FUNCTION_ARGS)
{
	(void) fcinfo;				/* the calling convention passes it; no argument is read */
	PG_RETURN_VOID();
}
