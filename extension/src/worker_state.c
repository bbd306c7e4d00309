/*
 * worker_state.c -- what the launcher, its visitor and the utility hook share.
 *
 * One small struct in shared memory: the database being visited and the
 * visitor's process, and the databases DBA commands are about to drop,
 * rename or copy.  The utility hook asks the visitor of that database to stop
 * (a cancel, which the visitor ends quietly on) and waits until it is gone;
 * for a while afterwards no visit starts there, so the command never finds
 * our session connected.
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
/* How long a DBA command waits for the visitor to be gone (it ends at once on SIGINT). */
#define STOP_WAIT_MS 10000
#define STOP_POLL_MS 10
/* A visitor the cancel did not end by then (still connecting) gets SIGTERM. */
#define CANCEL_GRACE_MS 2000
/* Databases refused at once: several DBAs' commands may overlap. */
#define REFUSED_SLOTS 8

typedef struct Refusal
{
	Oid			dboid;			/* no visit starts here until `until` */
	TimestampTz until;
} Refusal;

typedef struct WorkerState
{
	slock_t		mutex;
	Oid			visiting;		/* the database being visited, InvalidOid when none */
	pid_t		pid;			/* its visitor, 0 until it has started */
	bool		failed;			/* the visit ended with an error */
	Refusal		refused[REFUSED_SLOTS];
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
		state->failed = false;
		memset(state->refused, 0, sizeof(state->refused));
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
refused_locked(Oid dboid, TimestampTz now)
{
	for (int i = 0; i < REFUSED_SLOTS; i++)
		if (state->refused[i].dboid == dboid && now < state->refused[i].until)
			return true;
	return false;
}

/* Refuses dboid until `until`: its own slot, else an expired one, else the oldest. */
static void
refuse_locked(Oid dboid, TimestampTz until)
{
	Refusal    *slot = &state->refused[0];

	for (int i = 0; i < REFUSED_SLOTS; i++)
	{
		Refusal    *candidate = &state->refused[i];

		if (candidate->dboid == dboid)
		{
			slot = candidate;
			break;
		}
		if (candidate->until < slot->until)
			slot = candidate;
	}
	slot->dboid = dboid;
	slot->until = until;
}

/*
 * Whether dboid is refused now; when it is not and `begin` is true, the visit
 * of dboid begins, in the same critical section.
 */
static bool
refused_now(Oid dboid, bool begin)
{
	bool		refused;
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&state->mutex);
	refused = refused_locked(dboid, now);
	if (!refused && begin)
	{
		state->visiting = dboid;
		state->pid = 0;
		state->failed = false;
	}
	SpinLockRelease(&state->mutex);
	return refused;
}

/* The launcher, before it starts a visit: false when that database is refused now. */
bool
telemetry_visit_begin(Oid dboid)
{
	return !refused_now(dboid, true);
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
	return refused_now(dboid, false);
}

/*
 * The utility hook, before DROP/RENAME/copy of a database: no visit starts
 * there for a while, and the one under way (if any) is ended and waited for.
 */
void
telemetry_stop_visit_of(Oid dboid)
{
	pid_t		canceled = 0;
	pid_t		terminated = 0;
	int			canceled_at = 0;
	TimestampTz until;

	if (state == NULL || !OidIsValid(dboid))
		return;
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), REFUSE_MS);
	SpinLockAcquire(&state->mutex);
	refuse_locked(dboid, until);
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
		if (pid != 0 && pid != canceled && BackendPidGetProc(pid) != NULL)
		{
			/* A cancel: the visitor sees the refusal and ends quietly (worker_visit.c). */
			kill(pid, SIGINT);
			canceled = pid;
			canceled_at = waited;
		}
		else if (pid != 0 && pid == canceled && pid != terminated
				 && waited - canceled_at >= CANCEL_GRACE_MS && BackendPidGetProc(pid) != NULL)
		{
			kill(pid, SIGTERM);
			terminated = pid;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, STOP_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}
