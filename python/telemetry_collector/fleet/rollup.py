"""Daily roll-ups of collector.reports, maintained incrementally from a watermark.

Each run reads the reports received after the watermark and up to `settle`
seconds ago (a report's received_at is its transaction's start; the margin lets
transactions still in flight commit), keeps each database's latest report per
UTC day, and folds it into small tables keyed by day and dimension:

- rollup_daily:    databases that reported on a day, by dimension value;
- rollup_latest:   databases by the day of their latest report and its values
                   (the fleet "now": sum the days of a window);
- rollup_counters: per day, new databases, restored ones, and the active_7 /
                   active_30 deltas whose running sum is the exact number of
                   distinct databases with a report in the trailing window;
- rollup_databases: per database, first and latest day and that report's
                   dimensions (what a same-day report must subtract), the only
                   table whose size grows with the fleet; never read by views.

What a run groups is bounded whatever senders invent: extension versions are
grouped by PEP 440 normal form (the edge stores that form; older reports are
normalized here, and text that is no version is one value, UNPARSABLE), and a
dimension keeps at most MAX_VALUES_PER_DAY distinct values per day: values new
to a day past that are counted as OTHER (the most widespread of a run go first;
a value a day holds keeps its row).  Versions the vendor has released
(collector.releases, the extension's own) always keep their own row and take no room under the cap,
so versions invented early in a day cannot push a real release into OTHER.  The
values a database's report was counted under are what rollup_databases keeps,
so a same-day report takes its counts back from the same rows.

The advisory dimensions (a security fix outstanding, an end-of-life series,
PostgreSQL minor releases behind) come from the release list as it stands when
the day is rolled up (telemetry_collector.advisories, the answer's rules).

One run is one transaction under an advisory lock: a concurrent run skips, an
interrupted run leaves nothing half done, and a repeated run finds nothing new.
A report whose day is before its database's latest rolled-up day (possible only
if it committed later than `settle`) is ignored; `--rebuild` recomputes all.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

import telemetry_protocol as protocol
from telemetry_collector import advisories

ADVISORY_DIMENSIONS = ("security", "end_of_life", "postgresql_minor_lag")
# Dimensions a vendor filters on; each report contributes "dimension:value" strings.
DIMENSIONS = (
    "extension_version",
    "postgresql_major",
    "os_name",
    "install_method",
    "size",
    "timescaledb",
    "timescaledb_version",
    "extension",
    "country",
    *ADVISORY_DIMENSIONS,
)
ALL = "all"  # the dimension every report has once: totals
# The protocol's install_method vocabulary; anything else is counted as "other".
INSTALL_METHODS = protocol.INSTALL_METHODS
# data_volume buckets: the value stored is width_bucket's index (0 below the first bound).
SIZE_BOUNDS = (10**7, 10**8, 10**9, 10**10, 10**11, 10**12)
# Installed everywhere (plpgsql) or by definition (telemetry): no information.
IGNORED_EXTENSIONS = ("plpgsql", "telemetry")
MAX_EXTENSIONS_PER_REPORT = 64
# TimescaleDB usage, from least to most.
TIMESCALEDB_LEVELS = ("none", "installed", "hypertables", "compression")
ACTIVE_WINDOWS = {"active_7": 7, "active_30": 30}
# Distinct values one dimension keeps per day; past them, OTHER.  Neither label can be a value
# a report holds in the dimensions it applies to (versions are PEP 440, names [a-z0-9_-]).
MAX_VALUES_PER_DAY = 100
OTHER = "(other)"
UNPARSABLE = "(not a version)"
# PEP 440's normal form of a public version: what str(Version(text)) gives.
_NORMAL_VERSION = (
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*((a|b|rc)(0|[1-9][0-9]*))?"
    r"(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?$"
)
SETTLE_SECONDS = 60.0

_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('telemetry_collector rollup'))"

# One report's dimensions, as "dimension:value" text (values are cut short:
# the ingest edge validates them, this keeps a hostile one from bloating a roll-up).
_DIMS = f"""
array_remove(ARRAY[
    '{ALL}:',
    'extension_version:' || left(r.extension_version, 64),
    'postgresql_major:' || CASE
        WHEN r.postgresql_version ~ '^[1-9][0-9]{{1,3}}(\\.|$)' THEN substring(r.postgresql_version from '^[0-9]+')
        WHEN r.postgresql_version ~ '^[0-9]\\.[0-9]{{1,2}}' THEN substring(r.postgresql_version from '^[0-9]\\.[0-9]+')
        ELSE 'other' END,
    'os_name:' || left(r.os_name, 32),
    'install_method:' || CASE WHEN r.report->>'install_method' = ANY(%(install_methods)s::text[])
                              THEN r.report->>'install_method' ELSE 'other' END,
    'size:' || CASE WHEN jsonb_typeof(r.report->'data_volume') = 'number'
                         AND (r.report->>'data_volume')::numeric >= 0
                    THEN width_bucket((r.report->>'data_volume')::numeric, %(size_bounds)s::numeric[])::text
                    ELSE 'unknown' END,
    'timescaledb:' || CASE
        WHEN jsonb_typeof(r.report #> '{{timescaledb,hypertables,num_compressed_hypertables}}') = 'number'
             AND (r.report #>> '{{timescaledb,hypertables,num_compressed_hypertables}}')::numeric > 0
            THEN 'compression'
        WHEN jsonb_typeof(r.report->'num_hypertables') = 'number' AND (r.report->>'num_hypertables')::numeric > 0
            THEN 'hypertables'
        WHEN jsonb_typeof(r.report->'timescaledb_version') = 'string'
             OR r.report #> '{{related_extensions,timescaledb}}' = 'true'
            THEN 'installed'
        ELSE 'none' END,
    'timescaledb_version:' || substring(r.report->>'timescaledb_version' from '^[0-9]{{1,4}}\\.[0-9]{{1,4}}'),
    'country:' || coalesce(r.country, 'unknown')
], NULL)
|| ARRAY(
    SELECT 'extension:' || e.name
      FROM (SELECT key AS name
              FROM jsonb_each(CASE WHEN jsonb_typeof(r.report->'related_extensions') = 'object'
                                   THEN r.report->'related_extensions' END)
             WHERE value = 'true'
            UNION
            SELECT key
              FROM jsonb_each(CASE WHEN jsonb_typeof(r.report #> '{{extensions,versions}}') = 'object'
                                   THEN r.report #> '{{extensions,versions}}' END)) e
     WHERE e.name ~ '^[a-z][a-z0-9_-]{{0,62}}$' AND e.name <> ALL(%(ignored_extensions)s::text[])
     ORDER BY e.name
     LIMIT {MAX_EXTENSIONS_PER_REPORT})
"""

# A report's versions of the products the vendor lists releases of.
_VERSIONS = f"""
jsonb_build_object('{protocol.PRODUCT_SELF}', left(r.extension_version, 64),
                   '{protocol.PRODUCT_POSTGRESQL}', left(r.postgresql_version, 64))
|| coalesce((SELECT jsonb_object_agg(e.key, left(e.value #>> '{{}}', 64))
               FROM jsonb_each(CASE WHEN jsonb_typeof(r.report #> '{{extensions,versions}}') = 'object'
                                    THEN r.report #> '{{extensions,versions}}' END) e
              WHERE e.key = ANY(%(products)s::text[]) AND jsonb_typeof(e.value) = 'string'
                AND e.key NOT IN ('{protocol.PRODUCT_SELF}', '{protocol.PRODUCT_POSTGRESQL}')), '{{}}')
"""

_BATCH = f"""
INSERT INTO rollup_batch (db_uuid, exported_db_uuid, day, dims, versions)
SELECT DISTINCT ON (db_uuid, day) db_uuid, exported_db_uuid, day, dims, versions
  FROM (SELECT r.db_uuid, r.exported_db_uuid, r.received_at,
               (r.received_at AT TIME ZONE 'UTC')::date AS day,
               {_DIMS} AS dims, {_VERSIONS} AS versions
          FROM collector.reports r
         WHERE r.received_at > %(low)s AND r.received_at <= %(high)s) s
 ORDER BY db_uuid, day, received_at DESC
"""

# Each (database, day) in order, with what was known before it: the previous
# report day (in this batch or rolled up earlier) and whether it repeats the
# database's latest rolled-up day (then its earlier values are subtracted).
_STEPS = """
INSERT INTO rollup_steps
SELECT j.db_uuid, j.exported_db_uuid, j.day, j.dims,
       coalesce(lag(j.day) OVER w, j.known_last),
       j.known_last IS NOT NULL,
       j.known_first, j.known_last, j.known_dims,
       lag(j.day) OVER w IS NULL AND coalesce(j.day = j.known_last, false),
       lead(j.day) OVER w IS NULL
  FROM (SELECT b.*, d.first_day AS known_first, d.last_day AS known_last, d.dims AS known_dims
          FROM rollup_batch b LEFT JOIN collector.rollup_databases d USING (db_uuid)
         WHERE d.last_day IS NULL OR b.day >= d.last_day) j
WINDOW w AS (PARTITION BY j.db_uuid ORDER BY j.day)
"""

_SPLIT = "split_part(dim, ':', 1), substr(dim, strpos(dim, ':') + 1)"

# Extension versions in the batch that are not in PEP 440's normal form (reports stored before the
# edge normalized them): normalized in Python (packaging), then replaced in the batch.
_ODD_VERSIONS = """
SELECT DISTINCT d FROM rollup_batch, unnest(dims) d
 WHERE split_part(d, ':', 1) = 'extension_version' AND substr(d, strpos(d, ':') + 1) !~ %(normal)s
"""
_REPLACE = """
UPDATE rollup_batch b
   SET dims = ARRAY(SELECT DISTINCT coalesce(m.new, u.dim)
                      FROM unnest(b.dims) u(dim)
                      LEFT JOIN unnest(%(old)s::text[], %(new)s::text[]) m(old, new) ON m.old = u.dim)
 WHERE b.dims && %(old)s::text[]
"""

# Per day and dimension, the values the day does not hold yet, most databases first; those past
# the room left under the cap are counted as OTHER instead.  Released versions (%(released)s, as
# "extension_version:<version>") are never capped, nor count against the cap.
_OVERFLOW = f"""
INSERT INTO rollup_overflow (day, dim, bucket)
SELECT day, dim, dimension || ':' || %(other)s
  FROM (SELECT n.day, n.dimension, n.dim,
               row_number() OVER (PARTITION BY n.day, n.dimension ORDER BY n.databases DESC, n.dim) AS rank,
               (SELECT count(*) FROM collector.rollup_daily k
                 WHERE k.day = n.day AND k.dimension = n.dimension AND k.value <> %(other)s
                   AND k.dimension || ':' || k.value <> ALL(%(released)s::text[])) AS held
          FROM (SELECT b.day, split_part(u.dim, ':', 1) AS dimension, u.dim, count(*) AS databases
                  FROM rollup_batch b, unnest(b.dims) u(dim)
                 WHERE u.dim <> ALL(%(released)s::text[])
                 GROUP BY 1, 2, 3) n
         WHERE n.dimension <> '{ALL}'
           AND NOT EXISTS (SELECT 1 FROM collector.rollup_daily d
                            WHERE d.day = n.day AND d.dimension = n.dimension
                              AND d.value = substr(n.dim, strpos(n.dim, ':') + 1))) r
 WHERE held + rank > %(max_values)s
"""
_FOLD = """
UPDATE rollup_batch b
   SET dims = ARRAY(SELECT DISTINCT coalesce(o.bucket, u.dim)
                      FROM unnest(b.dims) u(dim)
                      LEFT JOIN rollup_overflow o ON o.day = b.day AND o.dim = u.dim)
 WHERE EXISTS (SELECT 1 FROM rollup_overflow o WHERE o.day = b.day AND o.dim = ANY(b.dims))
"""

_DAILY = f"""
INSERT INTO collector.rollup_daily AS t (day, dimension, value, databases)
SELECT day, {_SPLIT}, sum(delta)
  FROM (SELECT day, unnest(dims) AS dim, 1 AS delta FROM rollup_steps
        UNION ALL
        SELECT known_last, unnest(known_dims), -1 FROM rollup_steps WHERE same_day) x
 GROUP BY 1, 2, 3
ON CONFLICT (day, dimension, value) DO UPDATE SET databases = t.databases + excluded.databases
"""

_LATEST = f"""
INSERT INTO collector.rollup_latest AS t (last_day, dimension, value, databases)
SELECT day, {_SPLIT}, sum(delta)
  FROM (SELECT day, unnest(dims) AS dim, 1 AS delta FROM rollup_steps WHERE final
        UNION ALL
        SELECT known_last, unnest(known_dims), -1 FROM rollup_steps WHERE final AND known) x
 GROUP BY 1, 2, 3
ON CONFLICT (last_day, dimension, value) DO UPDATE SET databases = t.databases + excluded.databases
"""

_WINDOWS = "(VALUES " + ", ".join(f"('{name}', {days})" for name, days in ACTIVE_WINDOWS.items()) + ") w(counter, days)"

# A report on `day` keeps its database active through day + window - 1; only
# the days not already covered by its previous report are added.
_COUNTERS = f"""
INSERT INTO collector.rollup_counters AS t (day, counter, value)
SELECT day, counter, sum(delta)
  FROM (SELECT CASE WHEN s.prev_day IS NULL THEN s.day ELSE greatest(s.day, s.prev_day + w.days) END AS day,
               w.counter, 1 AS delta
          FROM rollup_steps s CROSS JOIN {_WINDOWS}
         WHERE NOT s.same_day
        UNION ALL
        SELECT s.day + w.days, w.counter, -1
          FROM rollup_steps s CROSS JOIN {_WINDOWS}
         WHERE NOT s.same_day
        UNION ALL
        SELECT day, 'new_databases', 1 FROM rollup_steps WHERE prev_day IS NULL) x
 GROUP BY 1, 2
ON CONFLICT (counter, day) DO UPDATE SET value = t.value + excluded.value
"""

# A database new to the roll-up whose exported_db_uuid is already known under
# another db_uuid was restored from a dump.
_RESTORES = """
WITH fresh AS (
    SELECT exported_db_uuid, day,
           row_number() OVER (PARTITION BY exported_db_uuid ORDER BY day, db_uuid) AS rank
      FROM rollup_steps WHERE prev_day IS NULL
), known AS (
    SELECT f.exported_db_uuid, coalesce(e.databases, 0) AS before
      FROM (SELECT DISTINCT exported_db_uuid FROM fresh) f
      LEFT JOIN collector.rollup_exports e USING (exported_db_uuid)
), counted AS (
    INSERT INTO collector.rollup_exports AS t (exported_db_uuid, databases)
    SELECT exported_db_uuid, count(*) FROM fresh GROUP BY 1
    ON CONFLICT (exported_db_uuid) DO UPDATE SET databases = t.databases + excluded.databases
)
INSERT INTO collector.rollup_counters AS t (day, counter, value)
SELECT f.day, c.counter, count(*)
  FROM fresh f JOIN known k USING (exported_db_uuid)
       CROSS JOIN LATERAL (VALUES ('restored_databases', k.before + f.rank > 1),
                                  ('restored_exports', k.before + f.rank = 2)) c(counter, applies)
 WHERE c.applies
 GROUP BY 1, 2
ON CONFLICT (counter, day) DO UPDATE SET value = t.value + excluded.value
"""

_DATABASES = """
INSERT INTO collector.rollup_databases AS t (db_uuid, first_day, last_day, dims)
SELECT s.db_uuid, coalesce(s.known_first, f.first_day), s.day, s.dims
  FROM rollup_steps s JOIN (SELECT db_uuid, min(day) AS first_day FROM rollup_steps GROUP BY 1) f USING (db_uuid)
 WHERE s.final
ON CONFLICT (db_uuid) DO UPDATE SET last_day = excluded.last_day, dims = excluded.dims
"""

_TIDY = """
DELETE FROM collector.rollup_daily WHERE databases = 0
   AND day IN (SELECT known_last FROM rollup_steps WHERE same_day);
DELETE FROM collector.rollup_latest WHERE databases = 0
   AND last_day IN (SELECT known_last FROM rollup_steps WHERE known);
"""

_TEMP_TABLES = """
CREATE TEMP TABLE rollup_batch (
    db_uuid uuid, exported_db_uuid uuid, day date, dims text[], versions jsonb
) ON COMMIT DROP;
CREATE TEMP TABLE rollup_overflow (day date, dim text, bucket text) ON COMMIT DROP;
CREATE TEMP TABLE rollup_advice (versions jsonb, dims text[]) ON COMMIT DROP;
CREATE TEMP TABLE rollup_steps (
    db_uuid uuid, exported_db_uuid uuid, day date, dims text[], prev_day date, known boolean,
    known_first date, known_last date, known_dims text[], same_day boolean, final boolean
) ON COMMIT DROP;
"""

# Block ranges filled since the last summary would be read whatever their times:
# summarize them first (cheap; only new ranges) so the run reads only new reports.
_SUMMARIZE = """
SELECT brin_summarize_new_values(i.inhrelid::regclass)
  FROM pg_inherits i
 WHERE i.inhparent = 'collector.reports_received_at'::regclass
"""

_ROLLUP_TABLES = (
    "collector.rollup_daily",
    "collector.rollup_latest",
    "collector.rollup_counters",
    "collector.rollup_databases",
    "collector.rollup_exports",
)


async def _add_advice(conn: psycopg.AsyncConnection[Any], book: advisories.Book) -> None:
    """The advisory dimensions, once per distinct combination of versions (a fleet runs a handful)."""
    cur = await conn.execute("SELECT DISTINCT versions FROM rollup_batch")
    combinations = [row[0] for row in await cur.fetchall()]
    async with conn.cursor() as copy_cur, copy_cur.copy("COPY rollup_advice (versions, dims) FROM STDIN") as copy:
        for versions in combinations:
            await copy.write_row((Jsonb(versions), advisories.rollup_dimensions(book, versions)))
    await conn.execute(
        """UPDATE rollup_batch b SET dims = b.dims || a.dims
             FROM rollup_advice a WHERE a.versions = b.versions"""
    )


class RollupMissing(RuntimeError):
    """The database has no roll-up tables: `migrate` has not run."""


@dataclass(frozen=True)
class RollupResult:
    skipped: bool  # another run held the lock
    low: dt.datetime | None
    high: dt.datetime | None
    database_days: int
    databases: int
    seconds: float


async def run(
    conn: psycopg.AsyncConnection[Any],
    settle_seconds: float = SETTLE_SECONDS,
    rebuild: bool = False,
    until: dt.datetime | None = None,
    max_values_per_day: int = MAX_VALUES_PER_DAY,
) -> RollupResult:
    """One roll-up run on an autocommit connection (it opens its own transaction).

    `until` replaces "now - settle" as the upper bound (tests and benchmarks replaying time)."""
    started = time.perf_counter()
    cur = await conn.execute("SELECT to_regclass('collector.rollup_state') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        raise RollupMissing("the roll-up tables are missing: run `python -m telemetry_collector migrate`")
    async with conn.transaction():
        cur = await conn.execute(_LOCK)
        locked = await cur.fetchone()
        if not locked or not locked[0]:
            return RollupResult(True, None, None, 0, 0, time.perf_counter() - started)
        if rebuild:
            await conn.execute(f"TRUNCATE {', '.join(_ROLLUP_TABLES)}")
            await conn.execute("UPDATE collector.rollup_state SET watermark = NULL")
        cur = await conn.execute(
            "SELECT watermark, now() - make_interval(secs => %s) FROM collector.rollup_state",
            (settle_seconds,),
        )
        state = await cur.fetchone()
        assert state is not None
        low, high = state
        if until is not None:
            high = until
        if low is not None and high <= low:
            return RollupResult(False, low, low, 0, 0, time.perf_counter() - started)
        params = {
            "low": low if low is not None else dt.datetime.min.replace(tzinfo=dt.UTC),
            "high": high,
            "install_methods": list(INSTALL_METHODS),
            "size_bounds": list(SIZE_BOUNDS),
            "ignored_extensions": list(IGNORED_EXTENSIONS),
        }
        await conn.execute(_SUMMARIZE)
        await conn.execute(_TEMP_TABLES)
        book = await advisories.load_book(conn)
        await conn.execute(_BATCH, {**params, "products": sorted(book.listed_products())})
        await _add_advice(conn, book)
        await _bound_values(conn, max_values_per_day)
        await conn.execute("ANALYZE rollup_batch")
        await conn.execute(_STEPS)
        await conn.execute("ANALYZE rollup_steps")
        for statement in (_DAILY, _LATEST, _COUNTERS, _RESTORES, _DATABASES, _TIDY):
            await conn.execute(statement)
        cur = await conn.execute("SELECT count(*), count(DISTINCT db_uuid) FROM rollup_steps")
        counts = await cur.fetchone()
        assert counts is not None
        await conn.execute("UPDATE collector.rollup_state SET watermark = %s, updated_at = now()", (high,))
    return RollupResult(False, low, high, counts[0], counts[1], time.perf_counter() - started)


def normal_version(text: str) -> str:
    """PEP 440's normal form of `text`, or UNPARSABLE for text that is no release version (the protocol's rule)."""
    return protocol.normal_version(text) or UNPARSABLE


async def _bound_values(conn: psycopg.AsyncConnection[Any], max_values_per_day: int) -> None:
    """The batch's dimension values, normalized and capped per day (see the module's text)."""
    cur = await conn.execute(_ODD_VERSIONS, {"normal": _NORMAL_VERSION})
    odd = [row[0] for row in await cur.fetchall()]
    if odd:
        prefix = "extension_version:"
        new = [prefix + normal_version(dim[len(prefix) :]) for dim in odd]
        await conn.execute(_REPLACE, {"old": odd, "new": new})
    cur = await conn.execute("SELECT version FROM collector.releases WHERE product = %s", (protocol.PRODUCT_SELF,))
    versions = {normal_version(row[0]) for row in await cur.fetchall()} - {UNPARSABLE}
    released = sorted("extension_version:" + version for version in versions)
    await conn.execute(_OVERFLOW, {"other": OTHER, "max_values": max_values_per_day, "released": released})
    await conn.execute(_FOLD)
