"""TimescaleDB, when installed: hypertables, chunks, compression, continuous aggregates, policies.

Read from TimescaleDB's own catalog views and tables.  Their columns differ
between versions, so each part is a list of constant queries tried in order
(newest layout first), each in a subtransaction of its own: a query that
names a relation or column this version lacks is skipped, and a part no
query can read is null.  Without TimescaleDB every value is 0.

Tests cannot install TimescaleDB here: tests/fake_extensions/ is a small SQL
extension named timescaledb that mimics the 2.x catalog (see docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import telemetry_protocol as protocol
from telemetry_extension.metrics.declaration import Context, Field, Metric
from telemetry_extension.metrics.values import approx

# What "this TimescaleDB has no such view or column" looks like.
_MISSING = {"42P01", "42703", "42883", "3F000"}


def _chunk_totals(ctx: Context, hypertables: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Chunks and their sizes for the hypertables found (whichever catalog listed them)."""
    return ctx.db.row(
        """
WITH h AS (
    -- the multi-array unnest is syntax, unqualified by necessity (search_path is pinned anyway)
    SELECT * FROM unnest($1::oid[], $2::boolean[]) AS h(oid, compression_enabled)
), ch AS (
    SELECT c.oid, c.relpages, c.reltuples, c.reltoastrelid
      FROM pg_catalog.pg_inherits AS i
      JOIN h ON h.oid = i.inhparent
      JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
)
SELECT (SELECT count(*) FROM h WHERE h.compression_enabled) AS num_compressed_hypertables,
       (SELECT count(*) FROM ch) AS num_chunks,
       (SELECT sum(ch.reltuples) FROM ch WHERE ch.reltuples > 0) AS reltuples,
       (SELECT sum(ch.relpages) FROM ch) AS heap_pages,
       (SELECT coalesce(sum(t.relpages), 0) FROM ch JOIN pg_catalog.pg_class AS t ON t.oid = ch.reltoastrelid)
     + (SELECT coalesce(sum(ic.relpages), 0) FROM ch
          JOIN pg_catalog.pg_index AS i ON i.indrelid = ch.reltoastrelid
          JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid) AS toast_pages,
       (SELECT sum(ic.relpages) FROM ch
          JOIN pg_catalog.pg_index AS i ON i.indrelid = ch.oid
          JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid) AS index_pages
""",
        [[h["oid"] for h in hypertables], [h["compression_enabled"] for h in hypertables]],
        ["oid[]", "boolean[]"],
    )


def _hypertables_2x(ctx: Context) -> dict[str, Any] | None:
    return _chunk_totals(
        ctx,
        ctx.db.rows("""
SELECT c.oid, h.compression_enabled
  FROM timescaledb_information.hypertables AS h
  JOIN pg_catalog.pg_namespace AS n ON n.nspname = h.hypertable_schema
  JOIN pg_catalog.pg_class AS c ON c.relnamespace = n.oid AND c.relname = h.hypertable_name
"""),
    )


# 1.x: the internal catalog, where compressed hypertables are flagged.
def _hypertables_1x(ctx: Context) -> dict[str, Any] | None:
    return _chunk_totals(
        ctx,
        ctx.db.rows("""
SELECT c.oid, h.compressed_hypertable_id IS NOT NULL AS compression_enabled
  FROM _timescaledb_catalog.hypertable AS h
  JOIN pg_catalog.pg_namespace AS n ON n.nspname = h.schema_name
  JOIN pg_catalog.pg_class AS c ON c.relnamespace = n.oid AND c.relname = h.table_name
 WHERE NOT h.compressed
"""),
    )


def _compression(ctx: Context) -> dict[str, Any] | None:
    return ctx.db.row("""
SELECT count(*) AS num_compressed_chunks,
       coalesce(sum(uncompressed_heap_size), 0) AS uncompressed_heap_size,
       coalesce(sum(uncompressed_toast_size), 0) AS uncompressed_toast_size,
       coalesce(sum(uncompressed_index_size), 0) AS uncompressed_index_size,
       coalesce(sum(compressed_heap_size), 0) AS compressed_heap_size,
       coalesce(sum(compressed_toast_size), 0) AS compressed_toast_size,
       coalesce(sum(compressed_index_size), 0) AS compressed_index_size,
       coalesce(sum(numrows_pre_compression), 0) AS uncompressed_row_count,
       coalesce(sum(numrows_post_compression), 0) AS compressed_row_count
  FROM _timescaledb_catalog.compression_chunk_size
""")


# Before row counts were recorded.
def _compression_no_rows(ctx: Context) -> dict[str, Any] | None:
    return ctx.db.row("""
SELECT count(*) AS num_compressed_chunks,
       coalesce(sum(uncompressed_heap_size), 0) AS uncompressed_heap_size,
       coalesce(sum(uncompressed_toast_size), 0) AS uncompressed_toast_size,
       coalesce(sum(uncompressed_index_size), 0) AS uncompressed_index_size,
       coalesce(sum(compressed_heap_size), 0) AS compressed_heap_size,
       coalesce(sum(compressed_toast_size), 0) AS compressed_toast_size,
       coalesce(sum(compressed_index_size), 0) AS compressed_index_size,
       NULL::bigint AS uncompressed_row_count,
       NULL::bigint AS compressed_row_count
  FROM _timescaledb_catalog.compression_chunk_size
""")


def _caggs(ctx: Context) -> dict[str, Any] | None:
    return ctx.db.row("""
SELECT count(*) AS num_continuous_aggregates, count(*) FILTER (WHERE NOT materialized_only) AS num_realtime
  FROM timescaledb_information.continuous_aggregates
""")


def _caggs_count_only(ctx: Context) -> dict[str, Any] | None:
    return ctx.db.row("""
SELECT count(*) AS num_continuous_aggregates, NULL::bigint AS num_realtime
  FROM timescaledb_information.continuous_aggregates
""")


# Jobs below 1000 are TimescaleDB's own (its telemetry, log retention).
def _policies_2x(ctx: Context) -> dict[str, Any] | None:
    return ctx.db.row("""
SELECT count(*) FILTER (WHERE proc_name = 'policy_compression') AS compression,
       count(*) FILTER (WHERE proc_name = 'policy_retention') AS retention,
       count(*) FILTER (WHERE proc_name = 'policy_reorder') AS reorder,
       count(*) FILTER (WHERE proc_name = 'policy_refresh_continuous_aggregate') AS continuous_aggregate_refresh,
       count(*) FILTER (WHERE proc_schema NOT IN ('_timescaledb_internal', '_timescaledb_functions'))
           AS user_defined
  FROM timescaledb_information.jobs
 WHERE job_id >= 1000
""")


def _policies_1x(ctx: Context) -> dict[str, Any] | None:
    return ctx.db.row("""
SELECT count(*) FILTER (WHERE job_type = 'compress_chunks') AS compression,
       count(*) FILTER (WHERE job_type = 'drop_chunks') AS retention,
       count(*) FILTER (WHERE job_type = 'reorder') AS reorder,
       count(*) FILTER (WHERE job_type = 'continuous_aggregate') AS continuous_aggregate_refresh,
       0::bigint AS user_defined
  FROM _timescaledb_config.bgw_job
 WHERE id >= 1000
""")


def _num_hypertables_2x(ctx: Context) -> dict[str, Any] | None:
    return ctx.db.row("SELECT count(*) FROM timescaledb_information.hypertables")


def _num_hypertables_1x(ctx: Context) -> dict[str, Any] | None:
    return ctx.db.row("SELECT count(*) FROM timescaledb_information.hypertable")


HYPERTABLE_KEYS = (
    "num_hypertables",
    "num_compressed_hypertables",
    "num_chunks",
    "num_reltuples",
    "heap_size",
    "toast_size",
    "indexes_size",
)
COMPRESSION_KEYS = (
    "num_compressed_chunks",
    "uncompressed_heap_size",
    "uncompressed_toast_size",
    "uncompressed_index_size",
    "compressed_heap_size",
    "compressed_toast_size",
    "compressed_index_size",
    "uncompressed_row_count",
    "compressed_row_count",
)
CAGG_KEYS = ("num_continuous_aggregates", "num_realtime")
POLICY_KEYS = ("compression", "retention", "reorder", "continuous_aggregate_refresh", "user_defined")


def _first_row(ctx: Context, which: str) -> dict[str, Any] | None:
    """The row of the first alternative this TimescaleDB can answer, else None.

    Each alternative is a constant statement: no SQL is built from the names
    the catalog holds.
    """
    for alternative in _ALTERNATIVES[which]:
        try:
            with ctx.db.plpy.subtransaction():
                return alternative(ctx)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) not in _MISSING:
                raise
    return None


_ALTERNATIVES: dict[str, tuple[Callable[[Context], dict[str, Any] | None], ...]] = {
    "hypertables": (_hypertables_2x, _hypertables_1x),
    "compression": (_compression, _compression_no_rows),
    "caggs": (_caggs, _caggs_count_only),
    "policies": (_policies_2x, _policies_1x),
    "count": (_num_hypertables_2x, _num_hypertables_1x),
}


def num_hypertables(ctx: Context) -> int:
    """Exact (not rounded): the top-level key, and timescaledb.hypertables.num_hypertables."""
    if "timescaledb" not in ctx.extensions:
        return 0
    row = ctx.shared("timescaledb_count", lambda: _first_row(ctx, "count"))
    if row is None:
        raise RuntimeError("no hypertable view in this TimescaleDB")
    return int(next(iter(row.values())))


def _maybe(value: Any, rounded: bool = True) -> int | None:
    if value is None:
        return None
    return approx(value) if rounded else int(value)


def _zeros() -> dict[str, dict[str, int | None]]:
    return {
        "hypertables": dict.fromkeys(HYPERTABLE_KEYS, 0),
        "compression": dict.fromkeys(COMPRESSION_KEYS, 0),
        "continuous_aggregates": dict.fromkeys(CAGG_KEYS, 0),
        "policies": dict.fromkeys(POLICY_KEYS, 0),
    }


def timescaledb(ctx: Context) -> dict[str, dict[str, int | None]]:
    if "timescaledb" not in ctx.extensions:
        return _zeros()
    block = ctx.block_size
    result: dict[str, dict[str, int | None]] = {}

    ht = _first_row(ctx, "hypertables")
    hypertables: dict[str, int | None] = dict.fromkeys(HYPERTABLE_KEYS)
    hypertables["num_hypertables"] = num_hypertables(ctx)
    if ht is not None:
        hypertables["num_compressed_hypertables"] = _maybe(ht["num_compressed_hypertables"])
        hypertables["num_chunks"] = _maybe(ht["num_chunks"])
        hypertables["num_reltuples"] = approx(ht["reltuples"])
        for key, pages in (("heap_size", "heap_pages"), ("toast_size", "toast_pages"), ("indexes_size", "index_pages")):
            hypertables[key] = approx((ht[pages] or 0) * block)
    result["hypertables"] = hypertables

    compression = _first_row(ctx, "compression")
    result["compression"] = {key: _maybe(compression[key]) if compression else None for key in COMPRESSION_KEYS}
    caggs = _first_row(ctx, "caggs")
    result["continuous_aggregates"] = {key: _maybe(caggs[key]) if caggs else None for key in CAGG_KEYS}
    policies = _first_row(ctx, "policies")
    result["policies"] = {key: _maybe(policies[key]) if policies else None for key in POLICY_KEYS}
    return result


_SIZES = "relpages × block_size, summed over the chunks"
TIMESCALEDB_FIELDS: tuple[Field, ...] = (
    Field("hypertables.num_hypertables", "integer", "Hypertables; exact, the same number as num_hypertables."),
    Field("hypertables.num_compressed_hypertables", "integer or null", "Hypertables with compression enabled."),
    Field("hypertables.num_chunks", "integer or null", "Chunks of the hypertables."),
    Field("hypertables.num_reltuples", "integer or null", "Estimated rows in the chunks (reltuples)."),
    Field("hypertables.heap_size", "integer or null", f"Main-fork bytes of the chunks ({_SIZES})."),
    Field("hypertables.toast_size", "integer or null", f"TOAST bytes of the chunks ({_SIZES})."),
    Field("hypertables.indexes_size", "integer or null", f"Index bytes of the chunks ({_SIZES})."),
    Field("compression.num_compressed_chunks", "integer or null", "Compressed chunks."),
    *(
        Field(
            f"compression.{key}",
            "integer or null",
            f"Bytes {'before' if key.startswith('un') else 'after'} compression, "
            f"{key.split('_')[1]} part, summed over compressed chunks "
            "(_timescaledb_catalog.compression_chunk_size).",
        )
        for key in COMPRESSION_KEYS[1:7]
    ),
    Field("compression.uncompressed_row_count", "integer or null", "Rows before compression."),
    Field("compression.compressed_row_count", "integer or null", "Rows after compression."),
    Field("continuous_aggregates.num_continuous_aggregates", "integer or null", "Continuous aggregates."),
    Field(
        "continuous_aggregates.num_realtime",
        "integer or null",
        "Continuous aggregates that are real-time (materialized_only = false).",
    ),
    Field("policies.compression", "integer or null", "Compression policies."),
    Field("policies.retention", "integer or null", "Retention policies."),
    Field("policies.reorder", "integer or null", "Reorder policies."),
    Field("policies.continuous_aggregate_refresh", "integer or null", "Continuous aggregate refresh policies."),
    Field("policies.user_defined", "integer or null", "User-defined actions (jobs running a user's procedure)."),
)


METRICS: tuple[Metric, ...] = (
    Metric(
        "timescaledb_version",
        "string or null",
        "TimescaleDB version when it is installed in this database.",
        "pg_extension",
        "2.17.2",
        lambda ctx: protocol.public_version(ctx.extensions.get("timescaledb")),
    ),
    Metric(
        "num_hypertables",
        "integer",
        "Number of TimescaleDB hypertables; 0 without TimescaleDB.",
        "timescaledb_information.hypertables",
        3,
        num_hypertables,
    ),
    Metric(
        "timescaledb",
        "object",
        "TimescaleDB hypertables, chunks, compression, continuous aggregates and policies; zeros without it.",
        "timescaledb_information.*, _timescaledb_catalog.*, _timescaledb_config.*",
        {"hypertables": {"num_hypertables": 3, "num_chunks": 120}, "policies": {"compression": 2}},
        timescaledb,
        fields=TIMESCALEDB_FIELDS,
    ),
)
