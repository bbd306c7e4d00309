/*
 * worker_launcher.c -- the launcher: every telemetry.tick_interval, a round
 * over the databases, one short-lived visit at a time (worker_visit.c).
 *
 * Registered only when telemetry is in shared_preload_libraries.  It connects
 * to no database (it reads the shared catalog pg_database), so it never stands
 * in the way of a DBA's command; the visitor, connected to one database, is
 * stopped by the utility hook when it would.  At most two worker slots are
 * used: the launcher and one visitor.  With no slot free, the rest of the
 * round waits for the next one, and the log says so once, not every round.
 *
 * A visit is ended after VISIT_LIMIT_MS (one line), so no database holds up
 * the others.  Quiet: an idle round logs nothing.  Nothing is visited while
 * DISABLE_TELEMETRY turns telemetry off or while the server is a standby
 * (the launcher starts only once recovery has finished).  An error in a round
 * is logged once and the next round tries again; should the launcher die, the
 * postmaster restarts it after RESTART_SECONDS, not at once.
 */
#include "postgres.h"

#include <limits.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "fmgr.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "kill_switch.h"
#include "worker.h"

#define RESTART_SECONDS 60
#define POLL_MS 100
/*
 * The longest a visit may take: a send ends within its deadline (60 s at
 * most) and each metric within its own; a visitor stuck longer (e.g. its
 * connection waits on a DBA's lock) is ended, so no database stalls the rest.
 */
#define VISIT_LIMIT_MS (5 * 60 * 1000)

PGDLLEXPORT void telemetry_launcher_main(Datum main_arg);

static int	tick_interval_seconds = 15 * 60;
static bool said_no_slot = false;

/*
 * Databases whose last visit failed: skipped for 1, 3, 7, ... rounds (at most
 * an hour's worth), so that a tick that fails every time is one log line now
 * and then, not every round.  Kept in TopMemoryContext, across rounds.
 */
#define BACKOFF_CAP_SECONDS 3600
typedef struct Backoff
{
	Oid			dboid;
	int			failures;
	int			rounds_to_skip;
} Backoff;
static List *backoffs = NIL;

void
telemetry_define_tick_interval(void)
{
	DefineCustomIntVariable("telemetry.tick_interval",
							"How often the background worker visits each database to run the telemetry tick.",
							"A visit where nothing is due costs one small query; reports still follow their own schedule.",
							&tick_interval_seconds,
							15 * 60, 1, INT_MAX / 1000,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

void
telemetry_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = RESTART_SECONDS;
	snprintf(worker.bgw_library_name, sizeof(worker.bgw_library_name), "telemetry");
	snprintf(worker.bgw_function_name, sizeof(worker.bgw_function_name), "telemetry_launcher_main");
	snprintf(worker.bgw_name, sizeof(worker.bgw_name), "telemetry launcher");
	snprintf(worker.bgw_type, sizeof(worker.bgw_type), "telemetry launcher");
	RegisterBackgroundWorker(&worker);
}

/* The databases a round visits: those that accept connections, templates aside. */
static List *
databases_to_visit(void)
{
	List	   *found = NIL;
	MemoryContext outer = CurrentMemoryContext;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);
		MemoryContext previous;

		if (!db->datallowconn || db->datistemplate || database_is_invalid_form(db))
			continue;
		previous = MemoryContextSwitchTo(outer);
		found = lappend_oid(found, db->oid);
		MemoryContextSwitchTo(previous);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return found;
}

/*
 * Whether the database still accepts a visit: it may have been dropped or
 * closed to connections since the round read the list (the visitor would
 * then fail with a FATAL line).
 */
static bool
still_visitable(Oid dboid)
{
	HeapTuple	tuple;
	bool		visitable = false;

	StartTransactionCommand();
	tuple = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		visitable = db->datallowconn && !db->datistemplate && !database_is_invalid_form(db);
		ReleaseSysCache(tuple);
	}
	CommitTransactionCommand();
	return visitable;
}

static Backoff *
backoff_of(Oid dboid)
{
	ListCell   *cell;

	foreach(cell, backoffs)
	{
		Backoff    *backoff = lfirst(cell);

		if (backoff->dboid == dboid)
			return backoff;
	}
	return NULL;
}

/* Whether this round skips the database (its last visit failed). */
static bool
backing_off(Oid dboid)
{
	Backoff    *backoff = backoff_of(dboid);

	if (backoff == NULL || backoff->rounds_to_skip == 0)
		return false;
	backoff->rounds_to_skip--;
	return true;
}

static void
record_outcome(Oid dboid, bool failed)
{
	Backoff    *backoff = backoff_of(dboid);
	int			cap = Max(1, BACKOFF_CAP_SECONDS / tick_interval_seconds);

	if (!failed)
	{
		if (backoff != NULL)
		{
			backoffs = list_delete_ptr(backoffs, backoff);
			pfree(backoff);
		}
		return;
	}
	if (backoff == NULL)
	{
		MemoryContext previous = MemoryContextSwitchTo(TopMemoryContext);

		backoff = palloc0(sizeof(Backoff));
		backoff->dboid = dboid;
		backoffs = lappend(backoffs, backoff);
		MemoryContextSwitchTo(previous);
	}
	backoff->failures = Min(backoff->failures + 1, 30);
	backoff->rounds_to_skip = Min((1 << backoff->failures) - 1, cap);
}

/*
 * Waits until the visitor has gone; on a shutdown request, or once it has
 * taken VISIT_LIMIT_MS, ends it first.  True when it was ended for its time.
 */
static bool
wait_for_visit(BackgroundWorkerHandle *handle)
{
	bool		started = false;
	bool		overdue = false;
	TimestampTz limit = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), VISIT_LIMIT_MS);

	for (;;)
	{
		pid_t		pid;
		BgwHandleStatus status = GetBackgroundWorkerPid(handle, &pid);

		if (status == BGWH_STOPPED || status == BGWH_POSTMASTER_DIED)
			return overdue;
		if (status == BGWH_STARTED && !started)
		{
			telemetry_visit_started(pid);
			started = true;
		}
		if (!overdue && GetCurrentTimestamp() >= limit)
		{
			overdue = true;
			TerminateBackgroundWorker(handle);
		}
		if (ShutdownRequestPending)
			TerminateBackgroundWorker(handle);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* One visit; false when no worker slot is free. */
static bool
visit(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	snprintf(worker.bgw_library_name, sizeof(worker.bgw_library_name), "telemetry");
	snprintf(worker.bgw_function_name, sizeof(worker.bgw_function_name), "telemetry_visit_main");
	snprintf(worker.bgw_name, sizeof(worker.bgw_name), "telemetry visit");
	snprintf(worker.bgw_type, sizeof(worker.bgw_type), "telemetry visit");
	if (!still_visitable(dboid) || !telemetry_visit_begin(dboid))
		return true;			/* gone, closed, or a DBA command is changing it: next round */
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		telemetry_visit_end();
		return false;
	}
	if (wait_for_visit(handle))
	{
		ereport(LOG,
				(errmsg("telemetry: the visit of database %u took longer than %d s and was ended; trying again in a later round",
						dboid, VISIT_LIMIT_MS / 1000)));
		record_outcome(dboid, true);
	}
	else
		record_outcome(dboid, telemetry_visit_has_failed());
	telemetry_visit_end();
	pfree(handle);
	return true;
}

static void
say_no_slot_once(void)
{
	if (said_no_slot)
		return;
	said_no_slot = true;
	ereport(LOG,
			(errmsg("telemetry: no background worker slot free to visit a database; trying again next round"),
			 errdetail("The telemetry launcher needs one slot of max_worker_processes (%d) for each visit.",
					   max_worker_processes),
			 errhint("Raise max_worker_processes (a restart is needed). This is said once, until a visit starts again.")));
}

static void
round_over_databases(void)
{
	List	   *databases = databases_to_visit();
	ListCell   *cell;

	foreach(cell, databases)
	{
		Oid			dboid = lfirst_oid(cell);

		if (ShutdownRequestPending)
			break;
		if (backing_off(dboid))
			continue;
		if (!visit(dboid))
		{
			say_no_slot_once();
			break;
		}
		said_no_slot = false;
	}
	list_free(databases);
}

/* A round that fails is logged once; the next one tries again. */
static void
run_round(MemoryContext round_context)
{
	MemoryContext previous = MemoryContextSwitchTo(round_context);

	PG_TRY();
	{
		round_over_databases();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(round_context);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		telemetry_visit_end();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(previous);
	MemoryContextReset(round_context);
}

static void
launcher_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	telemetry_visit_end();
}

/*
 * Sleeps until the next round is due.  The latch also wakes for a reload (the
 * interval may have changed) and for the end of a visit: neither starts a round.
 */
static void
wait_for_next_round(TimestampTz round_started)
{
	while (!ShutdownRequestPending)
	{
		TimestampTz next = TimestampTzPlusMilliseconds(round_started, (int64) tick_interval_seconds * 1000);
		long		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next);

		if (remaining <= 0)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, remaining, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}

void
telemetry_launcher_main(Datum main_arg)
{
	MemoryContext round_context;

	(void) main_arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	/* No statement to cancel: pg_cancel_backend() must not end the launcher. */
	pqsignal(SIGINT, SIG_IGN);
	BackgroundWorkerUnblockSignals();
	before_shmem_exit(launcher_exit, (Datum) 0);
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	round_context = AllocSetContextCreate(TopMemoryContext, "telemetry round", ALLOCSET_DEFAULT_SIZES);
	while (!ShutdownRequestPending)
	{
		TimestampTz round_started = GetCurrentTimestamp();

		if (!telemetry_kill_switch_on() && !RecoveryInProgress())
			run_round(round_context);
		wait_for_next_round(round_started);
	}
	/* Code 0: the postmaster logs a shutdown's exit only at DEBUG1. */
	proc_exit(0);
}
