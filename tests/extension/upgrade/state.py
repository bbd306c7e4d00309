"""Helpers for the update tests: a database on an earlier release, its state, its update."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql

from tests.cluster import Cluster
from tests.extension.upgrade.names import Names

# Every table of state the extension keeps (the ledger is compared by catalog.py).
STATE_TABLES = (
    "instance",
    "lineage",
    "options",
    "schedule",
    "attempts",
    "latest_version",
    "metrics_off",
    "vendor_metrics",
)


def call(conn: psycopg.Connection[Any], function: str, *args: Any) -> Any:
    """SELECT function(args) by its name in a Names; returns the one value."""
    placeholders = sql.SQL(", ").join(sql.Placeholder() * len(args))
    query = sql.SQL("SELECT {}({})").format(sql.Identifier(function), placeholders)
    row = conn.execute(query, args).fetchone()
    assert row is not None
    return row[0]


def configure(conn: psycopg.Connection[Any], names: Names, endpoint: str, **options: str) -> None:
    settings = {"endpoint": endpoint, "grace": "0", "jitter": "0", "deadline": "2 s", **options}
    for name, value in settings.items():
        call(conn, names.set_option, name, value)


def state(conn: psycopg.Connection[Any]) -> dict[str, list[dict[str, Any]]]:
    """Every row of every state table, as JSON text values (exact, comparable)."""
    snapshot: dict[str, list[dict[str, Any]]] = {}
    for table in STATE_TABLES:
        query = sql.SQL("SELECT to_jsonb(t)::text FROM _telemetry.{} AS t ORDER BY 1").format(sql.Identifier(table))
        snapshot[table] = [json.loads(row[0]) for row in conn.execute(query).fetchall()]
    return snapshot


def cron_jobs(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str, str]]:
    return conn.execute("SELECT jobname, schedule, command, database FROM cron.job ORDER BY jobid").fetchall()


def extension_version(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'telemetry'").fetchone()
    assert row is not None
    return str(row[0])


def update(cluster: Cluster, dbname: str) -> list[str]:
    """ALTER EXTENSION telemetry UPDATE in a new session, as the README says; returns its NOTICEs."""
    notices: list[str] = []
    with cluster.connect(dbname) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("ALTER EXTENSION telemetry UPDATE")
    return notices


def kept(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """`after` limited to the columns `before` had: a later migration may add columns, never lose values."""
    return {
        table: [{key: row.get(key) for key in was} for row, was in zip(after[table], before[table], strict=False)]
        + after[table][len(before[table]) :]
        for table in before
    }
