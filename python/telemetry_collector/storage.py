"""The collector's PostgreSQL schema, its monthly partitions, and storing reports.

Everything lives in the schema `collector`.  `reports` is range-partitioned by
month on received_at (UTC month bounds); partitions are created ahead by
`migrate`, hourly by the running service, and on demand when an insert finds
none.  Old months are dropped with DROP TABLE on their partition (`prune`);
one database's reports are deleted on request (`erase`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import sql

SCHEMA = "collector"


class SchemaMissing(RuntimeError):
    """The database has not been migrated."""


# Serializes DDL of concurrent migrators and collectors.
_DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('telemetry_collector ddl'))"

# Each step runs once, in order, and is recorded in collector.schema_migrations.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE collector.reports (
            received_at        timestamptz NOT NULL,
            db_uuid            uuid        NOT NULL,
            exported_db_uuid   uuid        NOT NULL,
            extension_version  text        NOT NULL,
            postgresql_version text        NOT NULL,
            os_name            text        NOT NULL,
            country            text        CHECK (country ~ '^[A-Z]{2}$'),
            report             jsonb       NOT NULL
        ) PARTITION BY RANGE (received_at);
        COMMENT ON TABLE collector.reports IS
            'Reports as received (no client address is ever stored), partitioned by month';
        -- The latest report of a database: DISTINCT ON (db_uuid) ... ORDER BY db_uuid, received_at DESC.
        CREATE INDEX reports_latest ON collector.reports (db_uuid, received_at DESC);
        -- Databases restored from a dump: the same exported_db_uuid under several db_uuids.
        CREATE INDEX reports_exported ON collector.reports (exported_db_uuid, db_uuid);
        CREATE TABLE collector.releases (
            version  text        PRIMARY KEY,
            added_at timestamptz NOT NULL DEFAULT now()
        );
        COMMENT ON TABLE collector.releases IS
            'Releases of the extension, managed by: python -m telemetry_collector release add|remove';
        """,
    ),
    (
        2,
        # The commit time of a batch: COPY leaves the column out.
        "ALTER TABLE collector.reports ALTER COLUMN received_at SET DEFAULT now()",
    ),
    # The vendor side's roll-ups: telemetry_collector.fleet.rollup maintains
    # them, the fleet views read only them.
    (
        3,
        """
        -- The roll-up reads new reports by time range: a BRIN index costs next to
        -- nothing on insert (received_at only grows) and spares a scan of the month.
        CREATE INDEX reports_received_at ON collector.reports USING brin (received_at)
            WITH (autosummarize = on);
        CREATE TABLE collector.rollup_state (
            singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
            watermark  timestamptz,            -- reports received up to here are rolled up
            updated_at timestamptz
        );
        INSERT INTO collector.rollup_state DEFAULT VALUES;
        -- One row per database: its first and latest report day and that report's dimensions.
        CREATE TABLE collector.rollup_databases (
            db_uuid   uuid   PRIMARY KEY,
            first_day date   NOT NULL,
            last_day  date   NOT NULL,
            dims      text[] NOT NULL
        );
        -- How many databases share an exported_db_uuid (restores from a dump); never shown.
        CREATE TABLE collector.rollup_exports (
            exported_db_uuid uuid    PRIMARY KEY,
            databases        integer NOT NULL
        );
        -- Databases that reported on `day`, by dimension value of their latest report that day.
        CREATE TABLE collector.rollup_daily (
            day       date    NOT NULL,
            dimension text    NOT NULL,
            value     text    NOT NULL,
            databases integer NOT NULL,
            PRIMARY KEY (day, dimension, value)
        );
        -- Databases whose latest report is on `last_day`, by its dimension values.
        CREATE TABLE collector.rollup_latest (
            last_day  date    NOT NULL,
            dimension text    NOT NULL,
            value     text    NOT NULL,
            databases integer NOT NULL,
            PRIMARY KEY (last_day, dimension, value)
        );
        -- Per-day counters: active_7/active_30 as deltas (a running sum gives the
        -- distinct databases with a report in the window), new and restored databases.
        CREATE TABLE collector.rollup_counters (
            day     date   NOT NULL,
            counter text   NOT NULL,
            value   bigint NOT NULL,
            PRIMARY KEY (counter, day)
        );
        COMMENT ON TABLE collector.rollup_daily IS
            'Daily roll-up of collector.reports, maintained by: python -m telemetry_collector rollup';
        """,
    ),
    # Releases with meaning: per product, security fixes, release notes; series
    # declared end of life (telemetry_collector.advisories answers from them).
    (
        4,
        """
        ALTER TABLE collector.releases
            ADD COLUMN product text NOT NULL DEFAULT 'telemetry' CHECK (product ~ '^[a-z][a-z0-9_-]{0,62}$'),
            ADD COLUMN security boolean NOT NULL DEFAULT false,
            ADD COLUMN notes_url text CHECK (notes_url ~ '^https://' AND length(notes_url) <= 512),
            DROP CONSTRAINT releases_pkey,
            ADD PRIMARY KEY (product, version);
        COMMENT ON TABLE collector.releases IS
            'Releases per product, managed by: python -m telemetry_collector release add|remove|eol';
        CREATE TABLE collector.end_of_life (
            product     text        NOT NULL CHECK (product ~ '^[a-z][a-z0-9_-]{0,62}$'),
            series      text        NOT NULL CHECK (series ~ '^[0-9]{1,6}(\\.[0-9]{1,6}){0,2}$'),
            declared_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (product, series)
        );
        COMMENT ON TABLE collector.end_of_life IS
            'Release series no longer supported (0.1: every 0.1.x), managed by: release eol';
        """,
    ),
]


async def migrate(conn: psycopg.AsyncConnection[Any], months_ahead: int = 1, months_back: int = 0) -> list[int]:
    """Bring the schema up to date and create partitions; idempotent. Returns the steps applied."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute(_DDL_LOCK)
        await conn.execute("CREATE SCHEMA IF NOT EXISTS collector")
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS collector.schema_migrations (
                   version    integer     PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        cur = await conn.execute("SELECT version FROM collector.schema_migrations")
        done = {row[0] for row in await cur.fetchall()}
        for version, statements in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(statements)  # no parameters: several statements in one go
            await conn.execute("INSERT INTO collector.schema_migrations (version) VALUES (%s)", (version,))
            applied.append(version)
    await ensure_partitions(conn, months_ahead, months_back)
    return applied


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def partition_name(month: dt.date) -> str:
    return f"reports_y{month.year:04d}m{month.month:02d}"


def previous_month(month: dt.date) -> dt.date:
    return (month - dt.timedelta(days=1)).replace(day=1)


async def ensure_partitions(
    conn: psycopg.AsyncConnection[Any], months_ahead: int = 1, months_back: int = 0
) -> list[str]:
    """Partitions for the database clock's current UTC month, `months_ahead` after
    and `months_back` before it (for importing older reports); the names created."""
    cur = await conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date")
    row = await cur.fetchone()
    assert row is not None
    month = month_start(row[0])
    for _ in range(months_back):
        month = previous_month(month)
    created: list[str] = []
    async with conn.transaction():
        await conn.execute(_DDL_LOCK)
        for _ in range(months_back + months_ahead + 1):
            name = partition_name(month)
            cur = await conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{name}",))
            found = await cur.fetchone()
            if found is None or found[0] is None:
                await conn.execute(
                    sql.SQL("CREATE TABLE {} PARTITION OF collector.reports FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(SCHEMA, name),
                        sql.Literal(f"{month.isoformat()} 00:00:00+00"),
                        sql.Literal(f"{next_month(month).isoformat()} 00:00:00+00"),
                    )
                )
                created.append(name)
            month = next_month(month)
    return created


async def list_partitions(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    cur = await conn.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'collector.reports'::regclass ORDER BY c.relname"""
    )
    return [row[0] for row in await cur.fetchall()]


# The columns a stored report fills, in the order BatchWriter rows carry them.
COLUMNS = ("db_uuid", "exported_db_uuid", "extension_version", "postgresql_version", "os_name", "country", "report")
_COPY = sql.SQL("COPY collector.reports ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def _no_partition(exc: psycopg.Error) -> bool:
    return isinstance(exc, psycopg.errors.CheckViolation) and "no partition" in str(exc)


async def copy_reports(conn: psycopg.AsyncConnection[Any], rows: list[tuple[Any, ...]]) -> None:
    """Store rows (COLUMNS) in one COPY and one commit; creates this month's partition if it is missing.

    On an autocommit connection (the collector's pool) the COPY is its own transaction: all rows
    or none, one commit, without the two round trips of BEGIN and COMMIT.
    """
    for attempt in (1, 2):
        try:
            async with (
                conn.transaction() if not conn.autocommit else _nothing(),
                conn.cursor() as cur,
                cur.copy(_COPY) as copy,
            ):
                for row in rows:
                    await copy.write_row(row)
            return
        except psycopg.Error as exc:
            if attempt == 2 or not _no_partition(exc):
                raise
        await ensure_partitions(conn, months_ahead=1)


def partition_month(name: str) -> dt.date | None:
    """The month a partition named by partition_name() holds, or None for any other name."""
    match = re.fullmatch(r"reports_y([0-9]{4})m([0-9]{2})", name)
    if match is None:
        return None
    return dt.date(int(match[1]), int(match[2]), 1)


async def prune(conn: psycopg.AsyncConnection[Any], older_than: dt.timedelta, dry_run: bool = False) -> list[str]:
    """Drop the monthly partitions whose every report is older than `older_than`; the names dropped.

    A partition goes only once its whole month is past the cut-off (now() - older_than),
    so no report younger than the cut-off is ever lost.
    """
    cur = await conn.execute("SELECT now() - %s::interval", (older_than,))
    row = await cur.fetchone()
    assert row is not None
    cutoff: dt.datetime = row[0]
    dropped: list[str] = []
    async with conn.transaction():
        await conn.execute(_DDL_LOCK)
        for name in await list_partitions(conn):
            month = partition_month(name)
            if month is None:
                continue
            end = dt.datetime.combine(next_month(month), dt.time(), tzinfo=dt.UTC)
            if end <= cutoff:
                if not dry_run:
                    await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(SCHEMA, name)))
                dropped.append(name)
    return dropped


async def erase(conn: psycopg.AsyncConnection[Any], db_uuid: uuid.UUID) -> int:
    """Delete every report of one database (an erasure request); how many there were.

    A database's reports are those with its db_uuid.  Its exported_db_uuid is
    also carried by other databases restored from the same dump, so those
    other databases' reports stay.  The roll-ups' one row that names the
    database goes too; their counts name no one and stay.
    """
    async with conn.transaction():
        cur = await conn.execute("DELETE FROM collector.reports WHERE db_uuid = %s", (db_uuid,))
        await conn.execute("DELETE FROM collector.rollup_databases WHERE db_uuid = %s", (db_uuid,))
    return cur.rowcount


async def check_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    cur = await conn.execute("SELECT to_regclass('collector.reports') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        raise SchemaMissing("the collector's schema is missing: run `python -m telemetry_collector migrate`")
