"""Relations by kind and access methods in use: one pass over pg_class and pg_index.

Both metrics come from one call of `_telemetry.relation_stats` (the C
module in extension/), which reads the catalog rows without opening any
relation: sizes are `relpages` (as of the last VACUUM, ANALYZE or CREATE
INDEX) times the block size, rows are `reltuples`.  Counting only user
relations: schemas pg_* (pg_catalog, pg_toast, temporary schemas),
information_schema, every schema that belongs to an extension (our
_telemetry, TimescaleDB's internal schemas, ...) and every relation that
belongs to an extension are left out.  See docs/metrics.md.
"""

from __future__ import annotations

from typing import Any

from telemetry_extension.metrics.declaration import Context, Field, Metric, prefixed
from telemetry_extension.metrics.values import approx

# Access methods reported by name; any other is counted under "other".
KNOWN_ACCESS_METHODS = (
    # PostgreSQL's own
    "heap",
    "btree",
    "hash",
    "gist",
    "gin",
    "spgist",
    "brin",
    # well-known public extensions
    "bloom",
    "columnar",
    "hypercore",
    "ivfflat",
    "hnsw",
    "diskann",
    "rum",
    "pgroonga",
    "bm25",
    "zombodb",
    "orioledb",
    "tde_heap",
)


def _read_stats(ctx: Context) -> list[dict[str, Any]]:
    return ctx.db.rows("""
SELECT s.what, s.relkind, s.is_partition, a.amname::text AS am, s.num_relations, s.reltuples,
       s.heap_pages, s.toast_pages, s.index_pages
  FROM _telemetry.relation_stats(
         ARRAY(SELECT n.oid FROM pg_catalog.pg_namespace AS n
                WHERE pg_catalog.starts_with(n.nspname::text, 'pg_') OR n.nspname = 'information_schema'
                   OR EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                               WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                                 AND d.objid = n.oid AND d.deptype = 'e')),
         ARRAY(SELECT d.objid FROM pg_catalog.pg_depend AS d
                WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                  AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'e')) AS s
  LEFT JOIN pg_catalog.pg_am AS a ON a.oid = s.am
""")


def _stats(ctx: Context) -> list[dict[str, Any]]:
    return ctx.shared("relation_stats", lambda: _read_stats(ctx))  # type: ignore[no-any-return]


def _storage(ctx: Context, rows: list[dict[str, Any]]) -> dict[str, int]:
    block = ctx.block_size
    return {
        "num_reltuples": approx(sum(row["reltuples"] for row in rows)),
        "heap_size": approx(sum(row["heap_pages"] for row in rows) * block),
        "toast_size": approx(sum(row["toast_pages"] for row in rows) * block),
        "indexes_size": approx(sum(row["index_pages"] for row in rows) * block),
    }


def relations(ctx: Context) -> dict[str, Any]:
    rows = [row for row in _stats(ctx) if row["what"] == "relation"]

    def of(kinds: str, partition: bool | None = None) -> list[dict[str, Any]]:
        return [
            row for row in rows if row["relkind"] in kinds and (partition is None or row["is_partition"] is partition)
        ]

    def count(selected: list[dict[str, Any]]) -> int:
        return approx(sum(row["num_relations"] for row in selected))

    tables = of("r", False)
    leaves = of("r", True) + of("p")
    return {
        "tables": {"num_relations": count(tables), **_storage(ctx, tables)},
        "partitioned_tables": {
            "num_relations": count(of("p")),
            "num_child_tables": count(of("rpf", True)),
            **_storage(ctx, leaves),
        },
        "materialized_views": {"num_relations": count(of("m")), **_storage(ctx, of("m"))},
        "views": {"num_relations": count(of("v"))},
        "foreign_tables": {"num_relations": count(of("f"))},
    }


def access_methods(ctx: Context) -> dict[str, dict[str, int]]:
    totals: dict[str, list[int]] = {}
    for row in _stats(ctx):
        if row["what"] not in ("table_am", "index_am"):
            continue
        name = row["am"] if row["am"] in KNOWN_ACCESS_METHODS else "other"
        entry = totals.setdefault(name, [0, 0])
        entry[0] += row["num_relations"]
        entry[1] += row["heap_pages"]
    return {name: {"num_relations": approx(n), "pages": approx(pages)} for name, (n, pages) in sorted(totals.items())}


_STORAGE_DOC = (
    Field("num_reltuples", "integer", "Estimated rows (sum of pg_class.reltuples; never-analyzed relations count 0)."),
    Field("heap_size", "integer", "Main-fork bytes: relpages × block_size."),
    Field("toast_size", "integer", "Bytes of the TOAST tables and their indexes (relpages × block_size)."),
    Field("indexes_size", "integer", "Bytes of the indexes (relpages × block_size)."),
)


RELATIONS_FIELDS: tuple[Field, ...] = (
    Field("tables.num_relations", "integer", "Plain tables that are not partitions."),
    *prefixed("tables", _STORAGE_DOC),
    Field("partitioned_tables.num_relations", "integer", "Partitioned tables (every level)."),
    Field(
        "partitioned_tables.num_child_tables",
        "integer",
        "Partitions (tables, partitioned tables and foreign tables attached to a partitioned table).",
    ),
    *prefixed("partitioned_tables", _STORAGE_DOC),
    Field("materialized_views.num_relations", "integer", "Materialized views."),
    *prefixed("materialized_views", _STORAGE_DOC),
    Field("views.num_relations", "integer", "Views."),
    Field("foreign_tables.num_relations", "integer", "Foreign tables (partitions among them too)."),
)

ACCESS_METHODS_FIELDS: tuple[Field, ...] = (
    Field(
        "*.num_relations",
        "integer",
        f"Relations and indexes using the access method; * is one of {', '.join(KNOWN_ACCESS_METHODS)} or other.",
    ),
    Field("*.pages", "integer", "Their pages (relpages)."),
)


METRICS: tuple[Metric, ...] = (
    Metric(
        "relations",
        "object",
        "User relations by kind: counts, estimated rows, heap, TOAST and index bytes (rounded, see docs/metrics.md).",
        "pg_class, pg_index (relpages, reltuples) via _telemetry.relation_stats",
        {
            "tables": {
                "num_relations": 12,
                "num_reltuples": 340000,
                "heap_size": 41000000,
                "toast_size": 8192,
                "indexes_size": 9800000,
            },
            "views": {"num_relations": 3},
        },
        relations,
        fields=RELATIONS_FIELDS,
    ),
    Metric(
        "access_methods",
        "object",
        "Access methods used by user relations and their indexes: how many, how many pages (rounded).",
        "pg_class.relam, pg_am via _telemetry.relation_stats",
        {"heap": {"num_relations": 12, "pages": 5000}, "btree": {"num_relations": 15, "pages": 1200}},
        access_methods,
        fields=ACCESS_METHODS_FIELDS,
    ),
)
