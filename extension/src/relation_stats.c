/*
 * relation_stats.c -- relation statistics by kind and by access method.
 *
 * _telemetry.relation_stats(skip_namespaces, skip_relations) reads them in one
 * pass over pg_class and one over pg_index, without opening any relation
 * (sizes are relpages, as of the last VACUUM, ANALYZE or CREATE INDEX); as SQL
 * joins they cost about half of the floor the report is measured against.
 * Owners are relations of kind r, p, v, m and f outside skip_namespaces and
 * not in skip_relations; their TOAST table, the TOAST table's index and their
 * own indexes count towards them.
 *
 * Rows: ('relation', relkind, is_partition, 0, count, reltuples, heap, toast, index, indexes)
 *       ('table_am', NULL, NULL, am, count, NULL, pages, NULL, NULL, NULL)
 *       ('index_am', NULL, NULL, am, count, NULL, pages, NULL, NULL, NULL)
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

/* 15.0 names it SetSingleFuncCall; 15.1 renamed it, keeping the old name. */
#if PG_VERSION_NUM < 150001
#define InitMaterializedSRF SetSingleFuncCall
#endif

/*
 * Positions of the result's columns, as the function's SQL declaration
 * (sql/idempotent/050-metrics.sql) names them.  No metric of 0.2.0 reads num_indexes,
 * but 0.1.0 declared the column and databases not yet updated still call this
 * function with that declaration, so it stays and is filled.
 */
typedef enum RelationStatsColumn
{
	COL_WHAT,
	COL_RELKIND,
	COL_IS_PARTITION,
	COL_AM,
	COL_NUM_RELATIONS,
	COL_RELTUPLES,
	COL_HEAP_PAGES,
	COL_TOAST_PAGES,
	COL_INDEX_PAGES,
	COL_NUM_INDEXES,
	RELATION_STATS_COLUMNS
} RelationStatsColumn;

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

/* What the passes add up: the rows of the result. */
typedef struct Totals
{
	KindTotals	kinds[lengthof(owner_kinds) * 2];
	AmTotals	table_ams[MAX_AMS];
	AmTotals	index_ams[MAX_AMS];
	int			ntable_ams;
	int			nindex_ams;
} Totals;

/* Totals slot of an owner kind: two per kind (not a partition, a partition); -1 for no owner kind. */
static int
kind_slot(char relkind, bool is_partition)
{
	for (int i = 0; i < (int) lengthof(owner_kinds); i++)
		if (owner_kinds[i] == relkind)
			return i * 2 + (is_partition ? 1 : 0);
	return -1;
}

/* OIDs sorted for bsearch: the skip lists. */
typedef struct OidSet
{
	Oid		   *oids;
	int			n;
} OidSet;

static OidSet
sorted_oids(ArrayType *array)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	OidSet		set = {NULL, 0};

	deconstruct_array(array, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &elems, &nulls, &nelems);
	set.oids = palloc(sizeof(Oid) * (nelems + 1));
	for (int i = 0; i < nelems; i++)
		if (!nulls[i])
			set.oids[set.n++] = DatumGetObjectId(elems[i]);
	qsort(set.oids, set.n, sizeof(Oid), oid_cmp);
	return set;
}

static bool
has_oid(const OidSet *set, Oid oid)
{
	return set->n > 0 && bsearch(&oid, set->oids, set->n, sizeof(Oid), oid_cmp) != NULL;
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
put_kind_rows(ReturnSetInfo *rsinfo, const KindTotals *kinds, int nkinds)
{
	for (int slot = 0; slot < nkinds; slot++)
	{
		Datum		values[RELATION_STATS_COLUMNS];
		bool		nulls[RELATION_STATS_COLUMNS] = {false};
		char		relkind[2] = {owner_kinds[slot / 2], '\0'};
		const KindTotals *k = &kinds[slot];

		values[COL_WHAT] = CStringGetTextDatum("relation");
		values[COL_RELKIND] = CStringGetTextDatum(relkind);
		values[COL_IS_PARTITION] = BoolGetDatum(slot % 2 == 1);
		values[COL_AM] = ObjectIdGetDatum(InvalidOid);
		values[COL_NUM_RELATIONS] = Int64GetDatum(k->count);
		values[COL_RELTUPLES] = Float8GetDatum(k->reltuples);
		values[COL_HEAP_PAGES] = Int64GetDatum(k->heap_pages);
		values[COL_TOAST_PAGES] = Int64GetDatum(k->toast_pages);
		values[COL_INDEX_PAGES] = Int64GetDatum(k->index_pages);
		values[COL_NUM_INDEXES] = Int64GetDatum(k->indexes);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* An access method's row: its pages go in heap_pages; the other totals are NULL. */
static void
put_am_rows(ReturnSetInfo *rsinfo, const char *what, const AmTotals *ams, int nams)
{
	for (int i = 0; i < nams; i++)
	{
		Datum		values[RELATION_STATS_COLUMNS] = {0};
		bool		nulls[RELATION_STATS_COLUMNS];

		memset(nulls, true, sizeof(nulls));
		values[COL_WHAT] = CStringGetTextDatum(what);
		nulls[COL_WHAT] = false;
		values[COL_AM] = ObjectIdGetDatum(ams[i].am);
		nulls[COL_AM] = false;
		values[COL_NUM_RELATIONS] = Int64GetDatum(ams[i].count);
		nulls[COL_NUM_RELATIONS] = false;
		values[COL_HEAP_PAGES] = Int64GetDatum(ams[i].pages);
		nulls[COL_HEAP_PAGES] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * The pass over pg_class: every relation that is, or holds storage for, an
 * owner, in a hash table by OID allocated in `work`.
 */
static HTAB *
read_relations(MemoryContext work, const OidSet *skip_ns, const OidSet *skip_rel)
{
	HASHCTL		ctl;
	HTAB	   *rels;
	Relation	catalog;
	SysScanDesc scan;
	HeapTuple	tuple;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(RelEntry);
	ctl.hcxt = work;
	rels = hash_create("telemetry relations", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	catalog = table_open(RelationRelationId, AccessShareLock);
	scan = systable_beginscan(catalog, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_class rel = (Form_pg_class) GETSTRUCT(tuple);
		bool		is_owner = kind_slot(rel->relkind, false) >= 0;
		RelEntry   *entry;

		if (!is_owner && rel->relkind != RELKIND_TOASTVALUE && rel->relkind != RELKIND_INDEX &&
			rel->relkind != RELKIND_PARTITIONED_INDEX)
			continue;
		CHECK_FOR_INTERRUPTS();
		entry = hash_search(rels, &rel->oid, HASH_ENTER, NULL);
		entry->relkind = rel->relkind;
		entry->is_partition = rel->relispartition;
		entry->owner = is_owner && !has_oid(skip_ns, rel->relnamespace) && !has_oid(skip_rel, rel->oid);
		entry->relam = rel->relam;
		entry->relpages = rel->relpages;
		entry->reltuples = rel->reltuples;
		entry->toastrelid = rel->reltoastrelid;
		entry->toast_owner = InvalidOid;
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
	return rels;
}

/* Owners: counts, rows, heap and TOAST; each TOAST table learns its owner. */
static void
add_owners(HTAB *rels, Totals *totals)
{
	HASH_SEQ_STATUS seq;
	RelEntry   *entry;

	hash_seq_init(&seq, rels);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		KindTotals *k;

		if (!entry->owner)
			continue;
		k = &totals->kinds[kind_slot(entry->relkind, entry->is_partition)];
		k->count++;
		/* Partitioned tables hold no rows of their own (their reltuples sums the partitions'). */
		if (RELKIND_HAS_STORAGE(entry->relkind))
		{
			if (entry->reltuples > 0)
				k->reltuples += entry->reltuples;
			k->heap_pages += Max(entry->relpages, 0);
		}
		if (OidIsValid(entry->relam))
			am_add(totals->table_ams, &totals->ntable_ams, entry->relam, Max(entry->relpages, 0));
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
}

/* The pass over pg_index: each index counts towards its table's owner. */
static void
add_indexes(HTAB *rels, Totals *totals)
{
	Relation	catalog;
	SysScanDesc scan;
	HeapTuple	tuple;

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
			KindTotals *k = &totals->kinds[kind_slot(table->relkind, table->is_partition)];

			k->index_pages += Max(idx->relpages, 0);
			k->indexes++;
			am_add(totals->index_ams, &totals->nindex_ams, idx->relam, Max(idx->relpages, 0));
		}
		else if (table->relkind == RELKIND_TOASTVALUE && OidIsValid(table->toast_owner))
		{
			RelEntry   *owner = hash_search(rels, &table->toast_owner, HASH_FIND, NULL);

			if (owner != NULL)
				totals->kinds[kind_slot(owner->relkind, owner->is_partition)].toast_pages += Max(idx->relpages, 0);
		}
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
}

PG_FUNCTION_INFO_V1(telemetry_relation_stats);

Datum
telemetry_relation_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext work;
	MemoryContext old;
	OidSet		skip_ns;
	OidSet		skip_rel;
	HTAB	   *rels;
	Totals		totals;

	InitMaterializedSRF(fcinfo, 0);
	/* The rows are built from RELATION_STATS_COLUMNS values: refuse any other declaration. */
	if (rsinfo->setDesc->natts != RELATION_STATS_COLUMNS)
		elog(ERROR, "telemetry_relation_stats: declared with %d result columns, expected %d",
			 rsinfo->setDesc->natts, (int) RELATION_STATS_COLUMNS);

	/* Everything but the result lives in `work`, deleted at the end. */
	work = AllocSetContextCreate(CurrentMemoryContext, "telemetry relation_stats",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	skip_ns = sorted_oids(PG_GETARG_ARRAYTYPE_P(0));
	skip_rel = sorted_oids(PG_GETARG_ARRAYTYPE_P(1));
	memset(&totals, 0, sizeof(totals));
	rels = read_relations(work, &skip_ns, &skip_rel);
	add_owners(rels, &totals);
	add_indexes(rels, &totals);
	MemoryContextSwitchTo(old);

	put_kind_rows(rsinfo, totals.kinds, lengthof(totals.kinds));
	put_am_rows(rsinfo, "table_am", totals.table_ams, totals.ntable_ams);
	put_am_rows(rsinfo, "index_am", totals.index_ams, totals.nindex_ams);
	MemoryContextDelete(work);
	return (Datum) 0;
}
