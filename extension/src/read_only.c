/*
 * read_only.c -- makes the rest of the current (sub)transaction read-only.
 *
 * A registered metric's query is code a superuser supplied; it must not write,
 * not even through a volatile function it calls or nextval().  The transaction's
 * read-only flag stops all of that.  It cannot be set from SQL for part of a
 * transaction: a SET clause on a function is refused for transaction_read_only
 * from PostgreSQL 17 on, and a set_config() from PL/Python is undone with the
 * subtransaction PL/Python wraps around each statement.  This sets the flag for
 * the (sub)transaction it is called in; PostgreSQL itself puts the outer level's
 * flag back when that subtransaction ends, committed or not, so it can only make
 * things stricter, never make a read-only transaction (a standby's, a
 * BEGIN READ ONLY) writable.  _telemetry.registered_value() calls it from
 * PL/pgSQL, which runs its statements at the caller's level.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"

PG_FUNCTION_INFO_V1(telemetry_read_only);

Datum
telemetry_read_only(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	XactReadOnly = true;
	PG_RETURN_VOID();
}
