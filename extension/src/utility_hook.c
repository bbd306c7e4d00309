/*
 * utility_hook.c -- a visit never makes a DBA's command fail.
 *
 * DROP DATABASE, ALTER DATABASE ... RENAME, ALTER DATABASE ... SET TABLESPACE
 * and CREATE DATABASE ... TEMPLATE refuse to run while another session is
 * connected to the database they change (PostgreSQL ends only autovacuum
 * workers by itself).  Before such a command, this hook ends our visitor of
 * that database, if any, and waits until it is gone; the launcher starts no
 * new visit there for a while (worker_state.c).  Only for a command that can
 * succeed: one a role without the privilege runs, or one inside a transaction
 * block that refuses it, fails anyway and must not stop or delay a send.
 * Everything else passes through untouched.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "commands/defrem.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"

#include "worker.h"

static ProcessUtility_hook_type previous_hook = NULL;

static const char *
option_value(List *options, const char *name)
{
	ListCell   *cell;

	foreach(cell, options)
	{
		DefElem    *option = lfirst_node(DefElem, cell);

		if (strcmp(option->defname, name) == 0 && option->arg != NULL)
			return defGetString(option);
	}
	return NULL;
}

/* The database a command needs to itself, or NULL. */
static const char *
database_needed_alone(Node *statement)
{
	switch (nodeTag(statement))
	{
		case T_DropdbStmt:
			return ((DropdbStmt *) statement)->dbname;
		case T_CreatedbStmt:
			return option_value(((CreatedbStmt *) statement)->options, "template");
		case T_AlterDatabaseStmt:
			if (option_value(((AlterDatabaseStmt *) statement)->options, "tablespace") != NULL)
				return ((AlterDatabaseStmt *) statement)->dbname;
			return NULL;
		case T_RenameStmt:
			if (((RenameStmt *) statement)->renameType == OBJECT_DATABASE)
				return ((RenameStmt *) statement)->subname;
			return NULL;
		default:
			return NULL;
	}
}

static void
telemetry_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
						  ProcessUtilityContext context, ParamListInfo params,
						  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	const char *database = database_needed_alone(pstmt->utilityStmt);

	if (database != NULL)
	{
		Oid			dboid = get_database_oid(database, true);

		/*
		 * Only for a command that can succeed: the database's owner (or a
		 * superuser), outside a transaction block where one is required.
		 */
		if (OidIsValid(dboid)
#if PG_VERSION_NUM >= 160000
			&& object_ownercheck(DatabaseRelationId, dboid, GetUserId())
#else
			&& pg_database_ownercheck(dboid, GetUserId())
#endif
			&& (nodeTag(pstmt->utilityStmt) == T_RenameStmt
				|| (context == PROCESS_UTILITY_TOPLEVEL && !IsTransactionBlock())))
			telemetry_stop_visit_of(dboid);
	}
	if (previous_hook)
		previous_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
telemetry_install_utility_hook(void)
{
	previous_hook = ProcessUtility_hook;
	ProcessUtility_hook = telemetry_process_utility;
}
