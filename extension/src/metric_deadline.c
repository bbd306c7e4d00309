/*
 * metric_deadline.c -- a deadline for one metric of the report.
 *
 * A statement_timeout set with set_config() inside a function never arms the
 * timer (PostgreSQL arms it when a top-level statement starts), so each
 * metric arms the backend's statement timer here and puts the caller's own
 * deadline back afterwards.  An outer deadline that comes first is left
 * alone.  See python/telemetry_extension/metrics/runner.py and docs/metrics.md.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

static bool deadline_armed = false;
static bool deadline_outer_active = false;
static TimestampTz deadline_outer = 0;
static TimestampTz deadline_ours = 0;

PG_FUNCTION_INFO_V1(telemetry_metric_deadline);

/*
 * _telemetry.metric_deadline(ms): ms > 0 arms a deadline ms from now and
 * returns true (false when the caller's deadline comes first); ms <= 0
 * disarms, restores the caller's deadline, and returns whether our deadline
 * has passed.  A timeout that fired after the metric's last statement but
 * before the disarm is raised here, so that it lands inside the metric's
 * subtransaction.
 */
Datum
telemetry_metric_deadline(PG_FUNCTION_ARGS)
{
	int32		ms = PG_GETARG_INT32(0);
	TimestampTz now = GetCurrentTimestamp();

	if (ms > 0)
	{
		TimestampTz fin = TimestampTzPlusMilliseconds(now, ms);

		deadline_ours = fin;
		deadline_outer_active = get_timeout_active(STATEMENT_TIMEOUT);
		deadline_outer = deadline_outer_active ? get_timeout_finish_time(STATEMENT_TIMEOUT) : 0;
		if (deadline_outer_active && deadline_outer <= fin)
		{
			deadline_armed = false;
			PG_RETURN_BOOL(false);
		}
		enable_timeout_at(STATEMENT_TIMEOUT, fin);
		deadline_armed = true;
		PG_RETURN_BOOL(true);
	}

	if (deadline_armed)
	{
		bool		fired = get_timeout_indicator(STATEMENT_TIMEOUT, false) && QueryCancelPending;
		deadline_armed = false;
		if (deadline_outer_active)
			enable_timeout_at(STATEMENT_TIMEOUT, deadline_outer);
		else
			disable_timeout(STATEMENT_TIMEOUT, false);
		if (fired)
		{
			/* The pending cancel is ours: raise it here, as the timeout it is. */
			QueryCancelPending = false;
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("canceling statement due to statement timeout")));
		}
	}
	PG_RETURN_BOOL(deadline_ours != 0 && now >= deadline_ours);
}
