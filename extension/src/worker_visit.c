/*
 * worker_visit.c -- one visit: a short-lived worker connected to one database.
 *
 * Started by the launcher (worker_launcher.c) with the database's OID.  When
 * the extension is installed there it runs the tick, _telemetry.tick(): its
 * plain-SQL first step answers "nothing due" without loading Python.  It runs
 * as the bootstrap superuser (the role initdb created), so the settings in
 * force are the server's, ALTER DATABASE's and ALTER USER's for that role.
 *
 * Quiet by design: it ends with exit code 0, which the postmaster logs only
 * at DEBUG1.  An error is written once (the tick's own failures are one LOG
 * line of the tick's) and the visit ends, still with code 0; the launcher
 * then backs off from this database (worker_launcher.c).  SIGTERM (a fast
 * shutdown, pg_terminate_backend) is die(): the next interrupt check ends the
 * process, and the tick checks for interrupts while it waits on the network.
 * SIGINT is a cancel: the utility hook sends it before a DBA's command needs
 * the database alone, and the visit then ends without a line and without a
 * failure (it was asked to go, nothing went wrong).
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "worker.h"

PGDLLEXPORT void telemetry_visit_main(Datum main_arg);

/* Whether this database's telemetry has a tick to call (an old release's may not). */
static bool
tick_exists(void)
{
	bool		isnull;

	if (!OidIsValid(get_extension_oid("telemetry", true)))
		return false;
	if (SPI_execute("SELECT pg_catalog.to_regprocedure('_telemetry.tick()') IS NOT NULL", true, 1) != SPI_OK_SELECT
		|| SPI_processed != 1)
		return false;
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
}

static void
run_tick(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (tick_exists())
	{
		pgstat_report_activity(STATE_RUNNING, "SELECT _telemetry.tick()");
		SPI_execute("SELECT _telemetry.tick()", false, 0);
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

void
telemetry_visit_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext context;

	pqsignal(SIGTERM, die);
	pqsignal(SIGINT, StatementCancelHandler);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	if (telemetry_visit_refused(MyDatabaseId) || RecoveryInProgress())
		proc_exit(0);
	context = CurrentMemoryContext;
	PG_TRY();
	{
		run_tick();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		/* Canceled for a DBA's command on this database: no line, no failure. */
		if (telemetry_visit_refused(MyDatabaseId))
		{
			FlushErrorState();
			AbortCurrentTransaction();
			proc_exit(0);
		}
		/* The one line of this failure; the visit ends quietly. */
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		telemetry_visit_failed();
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
