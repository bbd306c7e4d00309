/*
 * telemetry.c -- declares the extension's configuration parameters.
 *
 * Everything else in the extension is PL/Python.  This file exists because
 * PostgreSQL 15 and 16 reject ALTER SYSTEM SET for a parameter that no loaded
 * module declares ("unrecognized configuration parameter").  Loaded through
 * shared_preload_libraries (or session_preload_libraries), it makes
 * telemetry.metrics_level a real parameter in every session: ALTER SYSTEM
 * works, SHOW works, pg_settings reports where the value came from, and only
 * superusers may change it (so no unprivileged role can turn sending on).
 *
 * The value is a free string on purpose: the PL/Python side validates it and
 * treats anything but "off" or "basic" as off, with a WARNING, so that a typo
 * in postgresql.conf never silently leaves telemetry on.
 *
 * Two helpers of the report's metrics live here too, because PL/Python cannot
 * do them (see docs/metrics.md): metric_deadline arms the backend's statement
 * timer for one metric (a statement_timeout set inside a function is never
 * armed), and relation_stats reads relation statistics in one pass over
 * pg_class and pg_index (as SQL joins they cost about half of the floor the
 * report is measured against).
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static char *metrics_level = NULL;

void
_PG_init(void)
{
	DefineCustomStringVariable("telemetry.metrics_level",
							   "Anonymous usage telemetry: off or basic.",
							   "off stops reports and version checks; any value other than basic counts as off.",
							   &metrics_level,
							   "basic",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);
}

PG_FUNCTION_INFO_V1(telemetry_declare_settings);

/*
 * Called once per session by the PL/Python code: calling any function of
 * this module loads it, which declares the parameter in sessions where it
 * was not preloaded.
 */
Datum
telemetry_declare_settings(PG_FUNCTION_ARGS)
{
	PG_RETURN_VOID();
}

/* ---- report metrics (issue 4): see python/telemetry/metrics_*.py and docs/metrics.md ---- */

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

/*
 * Per-metric deadline.  A statement_timeout set with set_config() inside a
 * function never arms the timer (PostgreSQL arms it when a top-level
 * statement starts), so each metric arms the backend's statement timer here
 * and puts the caller's own deadline back afterwards.  An outer deadline that
 * comes first is left alone.
 */
static bool deadline_armed = false;
static bool deadline_outer_active = false;
static TimestampTz deadline_outer = 0;
static TimestampTz deadline_ours = 0;

PG_FUNCTION_INFO_V1(telemetry_metric_deadline);

/*
 * metric_deadline(ms): ms > 0 arms a deadline ms from now and returns true
 * (false when the caller's deadline comes first); ms <= 0 disarms, restores
 * the caller's deadline, and returns whether our deadline has passed.  A
 * timeout that fired after the metric's last statement but before the disarm
 * is raised here, so that it lands inside the metric's subtransaction.
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
	else
	{
		bool		fired = false;

		if (deadline_armed)
		{
			fired = get_timeout_indicator(STATEMENT_TIMEOUT, false) && QueryCancelPending;
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
}

/*
 * relation_stats(skip_namespaces, skip_relations): relation statistics by
 * kind and by access method, in one pass over pg_class and one over
 * pg_index, without opening any relation (sizes are relpages, as of the last
 * VACUUM, ANALYZE or CREATE INDEX).  Owners are relations of kind r, p, v, m
 * and f outside skip_namespaces and not in skip_relations; their TOAST table,
 * the TOAST table's index and their own indexes count towards them.
 *
 * Rows: ('relation', relkind, is_partition, 0, count, reltuples, heap, toast, index, indexes)
 *       ('table_am', NULL, NULL, am, count, NULL, pages, NULL, NULL, NULL)
 *       ('index_am', NULL, NULL, am, count, NULL, pages, NULL, NULL, NULL)
 */
typedef struct RelEntry
{
	Oid			oid;			/* hash key */
	char		relkind;
	bool		is_partition;
	bool		owner;
	Oid			relam;
	int32		relpages;
	float4		reltuples;
	Oid			toastrelid;
	Oid			toast_owner;	/* for a TOAST table: the owner it belongs to */
} RelEntry;

typedef struct KindTotals
{
	int64		count;
	double		reltuples;
	int64		heap_pages;
	int64		toast_pages;
	int64		index_pages;
	int64		indexes;
} KindTotals;

#define MAX_AMS 64

typedef struct AmTotals
{
	Oid			am;
	int64		count;
	int64		pages;
} AmTotals;

static const char owner_kinds[] = {RELKIND_RELATION, RELKIND_PARTITIONED_TABLE, RELKIND_VIEW, RELKIND_MATVIEW,
RELKIND_FOREIGN_TABLE};

static int
kind_slot(char relkind, bool is_partition)
{
	for (int i = 0; i < (int) lengthof(owner_kinds); i++)
		if (owner_kinds[i] == relkind)
			return i * 2 + (is_partition ? 1 : 0);
	return -1;
}

static Oid *
sorted_oids(ArrayType *array, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	Oid		   *oids;
	int			count = 0;

	deconstruct_array(array, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &elems, &nulls, n);
	oids = palloc(sizeof(Oid) * (*n + 1));
	for (int i = 0; i < *n; i++)
		if (!nulls[i])
			oids[count++] = DatumGetObjectId(elems[i]);
	qsort(oids, count, sizeof(Oid), oid_cmp);
	*n = count;
	return oids;
}

static bool
has_oid(const Oid *oids, int n, Oid oid)
{
	return n > 0 && bsearch(&oid, oids, n, sizeof(Oid), oid_cmp) != NULL;
}

static void
am_add(AmTotals *ams, int *nams, Oid am, int32 pages)
{
	for (int i = 0; i < *nams; i++)
	{
		if (ams[i].am == am)
		{
			ams[i].count++;
			ams[i].pages += pages;
			return;
		}
	}
	if (*nams < MAX_AMS)
	{
		ams[*nams].am = am;
		ams[*nams].count = 1;
		ams[*nams].pages = pages;
		(*nams)++;
	}
}

static void
put_am_rows(ReturnSetInfo *rsinfo, const char *what, AmTotals *ams, int nams)
{
	for (int i = 0; i < nams; i++)
	{
		Datum		values[10] = {0};
		bool		nulls[10] = {false, true, true, false, false, true, false, true, true, true};

		values[0] = CStringGetTextDatum(what);
		values[3] = ObjectIdGetDatum(ams[i].am);
		values[4] = Int64GetDatum(ams[i].count);
		values[6] = Int64GetDatum(ams[i].pages);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

PG_FUNCTION_INFO_V1(telemetry_relation_stats);

Datum
telemetry_relation_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext work = AllocSetContextCreate(CurrentMemoryContext, "telemetry relation_stats",
											   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	int			nskip_ns,
				nskip_rel;
	Oid		   *skip_ns,
			   *skip_rel;
	HASHCTL		ctl;
	HTAB	   *rels;
	HASH_SEQ_STATUS seq;
	RelEntry   *entry;
	Relation	catalog;
	SysScanDesc scan;
	HeapTuple	tuple;
	KindTotals	kinds[lengthof(owner_kinds) * 2];
	AmTotals	table_ams[MAX_AMS],
				index_ams[MAX_AMS];
	int			ntable_ams = 0,
				nindex_ams = 0;

	InitMaterializedSRF(fcinfo, 0);

	old = MemoryContextSwitchTo(work);
	skip_ns = sorted_oids(PG_GETARG_ARRAYTYPE_P(0), &nskip_ns);
	skip_rel = sorted_oids(PG_GETARG_ARRAYTYPE_P(1), &nskip_rel);
	memset(kinds, 0, sizeof(kinds));

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(RelEntry);
	ctl.hcxt = work;
	rels = hash_create("telemetry relations", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	/* One pass over pg_class: every relation that is, or holds storage for, an owner. */
	catalog = table_open(RelationRelationId, AccessShareLock);
	scan = systable_beginscan(catalog, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_class rel = (Form_pg_class) GETSTRUCT(tuple);
		bool		is_owner = kind_slot(rel->relkind, false) >= 0;
		bool		found;

		if (!is_owner && rel->relkind != RELKIND_TOASTVALUE && rel->relkind != RELKIND_INDEX &&
			rel->relkind != RELKIND_PARTITIONED_INDEX)
			continue;
		CHECK_FOR_INTERRUPTS();
		entry = hash_search(rels, &rel->oid, HASH_ENTER, &found);
		entry->relkind = rel->relkind;
		entry->is_partition = rel->relispartition;
		entry->owner = is_owner && !has_oid(skip_ns, nskip_ns, rel->relnamespace) &&
			!has_oid(skip_rel, nskip_rel, rel->oid);
		entry->relam = rel->relam;
		entry->relpages = rel->relpages;
		entry->reltuples = rel->reltuples;
		entry->toastrelid = rel->reltoastrelid;
		entry->toast_owner = InvalidOid;
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);

	/* Owners: counts, rows, heap and TOAST; each TOAST table learns its owner. */
	hash_seq_init(&seq, rels);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		KindTotals *k;

		if (!entry->owner)
			continue;
		k = &kinds[kind_slot(entry->relkind, entry->is_partition)];
		k->count++;
		/* Partitioned tables hold no rows of their own (their reltuples sums the partitions'). */
		if (RELKIND_HAS_STORAGE(entry->relkind))
		{
			if (entry->reltuples > 0)
				k->reltuples += entry->reltuples;
			k->heap_pages += Max(entry->relpages, 0);
		}
		if (OidIsValid(entry->relam))
			am_add(table_ams, &ntable_ams, entry->relam, Max(entry->relpages, 0));
		if (OidIsValid(entry->toastrelid))
		{
			RelEntry   *toast = hash_search(rels, &entry->toastrelid, HASH_FIND, NULL);

			if (toast != NULL)
			{
				k->toast_pages += Max(toast->relpages, 0);
				toast->toast_owner = entry->oid;
			}
		}
	}

	/* One pass over pg_index: each index counts towards its table's owner. */
	catalog = table_open(IndexRelationId, AccessShareLock);
	scan = systable_beginscan(catalog, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_index index = (Form_pg_index) GETSTRUCT(tuple);
		RelEntry   *idx = hash_search(rels, &index->indexrelid, HASH_FIND, NULL);
		RelEntry   *table = hash_search(rels, &index->indrelid, HASH_FIND, NULL);

		CHECK_FOR_INTERRUPTS();
		if (idx == NULL || table == NULL)
			continue;
		if (table->owner)
		{
			KindTotals *k = &kinds[kind_slot(table->relkind, table->is_partition)];

			k->index_pages += Max(idx->relpages, 0);
			k->indexes++;
			am_add(index_ams, &nindex_ams, idx->relam, Max(idx->relpages, 0));
		}
		else if (table->relkind == RELKIND_TOASTVALUE && OidIsValid(table->toast_owner))
		{
			RelEntry   *owner = hash_search(rels, &table->toast_owner, HASH_FIND, NULL);

			if (owner != NULL)
				kinds[kind_slot(owner->relkind, owner->is_partition)].toast_pages += Max(idx->relpages, 0);
		}
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);

	MemoryContextSwitchTo(old);
	for (int slot = 0; slot < (int) lengthof(kinds); slot++)
	{
		Datum		values[10];
		bool		nulls[10] = {false};
		char		relkind[2] = {owner_kinds[slot / 2], '\0'};
		KindTotals *k = &kinds[slot];

		values[0] = CStringGetTextDatum("relation");
		values[1] = CStringGetTextDatum(relkind);
		values[2] = BoolGetDatum(slot % 2 == 1);
		values[3] = ObjectIdGetDatum(InvalidOid);
		values[4] = Int64GetDatum(k->count);
		values[5] = Float8GetDatum(k->reltuples);
		values[6] = Int64GetDatum(k->heap_pages);
		values[7] = Int64GetDatum(k->toast_pages);
		values[8] = Int64GetDatum(k->index_pages);
		values[9] = Int64GetDatum(k->indexes);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	put_am_rows(rsinfo, "table_am", table_ams, ntable_ams);
	put_am_rows(rsinfo, "index_am", index_ams, nindex_ams);
	MemoryContextDelete(work);
	return (Datum) 0;
}
