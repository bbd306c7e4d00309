/*
 * worker_state.c -- what the launcher, its visitor and the utility hook share.
 *
 * One small struct in shared memory: the database being visited and the
 * visitor's process, and the database a DBA's command is about to drop,
 * rename or copy.  The utility hook asks the visitor of that database to stop
 * and waits until it is gone; for a while afterwards no visit starts there,
 * so the command never finds our session connected.
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "worker.h"

/* How long no visit starts in a database a DBA command is about to change. */
#define REFUSE_MS 60000
/* How long a DBA command waits for the visitor to be gone (it ends at once on SIGTERM). */
#define STOP_WAIT_MS 10000
#define STOP_POLL_MS 10

typedef struct WorkerState
{
	slock_t		mutex;
	Oid			visiting;		/* the database being visited, InvalidOid when none */
	pid_t		pid;			/* its visitor, 0 until it has started */
	bool		failed;			/* the visit ended with an error */
	Oid			refused;		/* no visit starts here until refused_until */
	TimestampTz refused_until;
} WorkerState;

static WorkerState *state = NULL;
static shmem_request_hook_type previous_request = NULL;
static shmem_startup_hook_type previous_startup = NULL;

static void
request_state(void)
{
	if (previous_request)
		previous_request();
	RequestAddinShmemSpace(MAXALIGN(sizeof(WorkerState)));
}

static void
attach_state(void)
{
	bool		found;

	if (previous_startup)
		previous_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	state = ShmemInitStruct("telemetry worker", sizeof(WorkerState), &found);
	if (!found)
	{
		SpinLockInit(&state->mutex);
		state->visiting = InvalidOid;
		state->pid = 0;
		state->refused = InvalidOid;
		state->refused_until = 0;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init, only while shared_preload_libraries is processed. */
void
telemetry_request_worker_state(void)
{
	previous_request = shmem_request_hook;
	shmem_request_hook = request_state;
	previous_startup = shmem_startup_hook;
	shmem_startup_hook = attach_state;
}

static bool
refused_locked(Oid dboid)
{
	return state->refused == dboid && GetCurrentTimestamp() < state->refused_until;
}

/* The launcher, before it starts a visit: false when that database is refused now. */
bool
telemetry_visit_begin(Oid dboid)
{
	bool		refused;

	SpinLockAcquire(&state->mutex);
	refused = refused_locked(dboid);
	if (!refused)
	{
		state->visiting = dboid;
		state->pid = 0;
		state->failed = false;
	}
	SpinLockRelease(&state->mutex);
	return !refused;
}

void
telemetry_visit_started(pid_t pid)
{
	SpinLockAcquire(&state->mutex);
	state->pid = pid;
	SpinLockRelease(&state->mutex);
}

void
telemetry_visit_end(void)
{
	if (state == NULL)
		return;
	SpinLockAcquire(&state->mutex);
	state->visiting = InvalidOid;
	state->pid = 0;
	SpinLockRelease(&state->mutex);
}

/* The visitor, after an error: the launcher backs off from this database. */
void
telemetry_visit_failed(void)
{
	SpinLockAcquire(&state->mutex);
	state->failed = true;
	SpinLockRelease(&state->mutex);
}

/* The launcher, once the visit has ended: did it fail? */
bool
telemetry_visit_has_failed(void)
{
	bool		failed;

	SpinLockAcquire(&state->mutex);
	failed = state->failed;
	SpinLockRelease(&state->mutex);
	return failed;
}

/* The visitor, once connected: a DBA command wants this database to itself. */
bool
telemetry_visit_refused(Oid dboid)
{
	bool		refused;

	SpinLockAcquire(&state->mutex);
	refused = refused_locked(dboid);
	SpinLockRelease(&state->mutex);
	return refused;
}

/*
 * The utility hook, before DROP/RENAME/copy of a database: no visit starts
 * there for a while, and the one under way (if any) is ended and waited for.
 */
void
telemetry_stop_visit_of(Oid dboid)
{
	pid_t		signaled = 0;

	if (state == NULL || !OidIsValid(dboid))
		return;
	SpinLockAcquire(&state->mutex);
	state->refused = dboid;
	state->refused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), REFUSE_MS);
	SpinLockRelease(&state->mutex);
	for (int waited = 0; waited < STOP_WAIT_MS; waited += STOP_POLL_MS)
	{
		Oid			visiting;
		pid_t		pid;

		SpinLockAcquire(&state->mutex);
		visiting = state->visiting;
		pid = state->pid;
		SpinLockRelease(&state->mutex);
		if (visiting != dboid)
			return;
		if (pid != 0 && pid != signaled && BackendPidGetProc(pid) != NULL)
		{
			kill(pid, SIGTERM);
			signaled = pid;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, STOP_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}
