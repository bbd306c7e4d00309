"""Metrics that another extension's vendor registers: an aggregate query returning numbers.

    SELECT telemetry_register_metric('myext_widgets', 'SELECT count(*) FROM myext.widgets',
                                     'Widgets defined with myext.');

A superuser (in practice the vendor's extension script) registers a key, a
one-line summary and a query; the report carries the query's result under
vendor_metrics.<key>.  The query must be one SELECT returning one row of
numbers: one column gives a number, several give an object by column name.
A number must be finite and within the JSON-safe integer range
(|n| <= 2**53 - 1, the protocol's MAX_SAFE_INTEGER), so that every JSON reader gets it exactly.
Anything else is an error at registration and {"error": "invalid_result"} in
a report.

It runs as the role building the report, the same way at registration, in
get_report() and in a send, so that what is shown is what is sent: through
_telemetry.registered_value(key), read-only (_telemetry.read_only, in the C
module), as a cursor (which PostgreSQL opens only for a
single query that returns rows: no second statement, no SELECT INTO).  In
read-only mode PostgreSQL refuses every write: data-modifying CTEs, locking
clauses (FOR UPDATE), nextval(), a function that writes.  Around it, a
subtransaction that is always rolled back and the metric's own deadline, itself
capped by the report's (REPORT_DEADLINE_MS).  Registrations are listed, with
their summaries, in the telemetry_metrics view: the run-time part of the field
dictionary.

The limits below are also CHECKs of _telemetry.vendor_metrics and defaults of
telemetry_register_metric() in SQL; tests/test_one_owner.py proves they agree.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import telemetry_protocol as protocol
from telemetry_extension.db import Database
from telemetry_extension.level_setting import LEVELS
from telemetry_extension.metrics.declaration import NO_SQL, Context, Field, Metric
from telemetry_extension.metrics.runner import InvalidResult, run_isolated
from telemetry_extension.metrics.values import OutOfRange, json_safe_number

PREFIX = "vendor_metrics."
KEY = re.compile(r"[a-z][a-z0-9_]{0,62}")
MAX_METRICS = 50
MAX_COLUMNS = 8
MAX_SUMMARY = 200
DEFAULT_TIMEOUT_MS = 1000
MAX_TIMEOUT_MS = 60_000


class InvalidRegistration(ValueError):
    """telemetry_register_metric() arguments that cannot be accepted."""


def numeric_value(rows: list[dict[str, Any]]) -> int | float | dict[str, int | float | None] | None:
    """The report's value for a registered query's rows, or InvalidResult."""
    if len(rows) != 1:
        raise InvalidResult(f"the query must return exactly one row, not {'none' if not rows else 'several'}")
    row = rows[0]
    if not row or len(row) > MAX_COLUMNS:
        raise InvalidResult(f"the query must return 1 to {MAX_COLUMNS} columns")
    values: dict[str, int | float | None] = {}
    for name, raw in row.items():
        try:
            number = json_safe_number(raw)
        except OutOfRange:
            raise InvalidResult(
                f"column {name!r} is outside -{protocol.MAX_SAFE_INTEGER}..{protocol.MAX_SAFE_INTEGER}"
            ) from None
        if number is None and raw is not None:
            raise InvalidResult(f"column {name!r} is not a finite number ({type(raw).__name__})")
        values[name] = number
    if len(values) == 1:
        return next(iter(values.values()))
    for name in values:
        if not KEY.fullmatch(name):
            raise InvalidResult(f"column name {name!r} must match {KEY.pattern} (it becomes a key of the report)")
    return values


def value_json(db: Database, key: str) -> str:
    """Body of _telemetry.registered_query_value(key): the stored query's value, as JSON.

    Called only through _telemetry.registered_value(key), which has made the
    (sub)transaction read-only (_telemetry.read_only, in the C module): neither
    the query nor anything it calls can write.
    """
    query = db.value("SELECT query FROM _telemetry.vendor_metrics WHERE key = $1", [key], ["text"])
    if query is None:
        return json.dumps({"invalid": "no such registered metric"})
    if db.value("SELECT pg_catalog.current_setting('transaction_read_only')") != "on":
        return json.dumps({"invalid": "not run read-only (call _telemetry.registered_value)"})
    try:
        return json.dumps({"value": numeric_value(db.registered_query_rows(query, 2))})
    except InvalidResult as exc:
        return json.dumps({"invalid": str(exc)})


def run_query(db: Database, key: str) -> Any:
    """The registered metric's value, run the one way (see the module's docstring)."""
    answer = json.loads(db.value("SELECT _telemetry.registered_value($1)", [key], ["text"]))
    if "invalid" in answer:
        raise InvalidResult(answer["invalid"])
    return answer["value"]


def registered(db: Database) -> list[dict[str, Any]]:
    return db.rows("SELECT key, level, summary, query, timeout_ms FROM _telemetry.vendor_metrics ORDER BY key")


def vendor_metrics(ctx: Context) -> dict[str, Any]:
    """Each registered metric, each on its own: one that fails is an error marker."""
    result: dict[str, Any] = {}
    for row in registered(ctx.db):
        if PREFIX + row["key"] in ctx.switched_off:
            continue
        result[row["key"]] = run_isolated(
            ctx.db,
            PREFIX + row["key"],
            ctx.budget_ms(row["timeout_ms"]),
            functools.partial(run_query, ctx.db, row["key"]),
        )
    return result


def validate(
    key: str | None, query: str | None, summary: str | None, timeout_ms: int | None, level: str | None
) -> None:
    if key is None or not KEY.fullmatch(key):
        raise InvalidRegistration(f"key must match {KEY.pattern}")
    if not query or not query.strip():
        raise InvalidRegistration("query must be a non-empty SELECT returning one row of numbers")
    if not summary or not summary.strip() or len(summary) > MAX_SUMMARY or "\n" in summary:
        raise InvalidRegistration(f"summary must be one line of 1 to {MAX_SUMMARY} characters")
    if timeout_ms is None or not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
        raise InvalidRegistration(f"timeout_ms must be between 1 and {MAX_TIMEOUT_MS}")
    if level is None or level == "off" or level not in LEVELS:
        raise InvalidRegistration(f"level must be one of {', '.join(v for v in LEVELS if v != 'off')}")


def register(db: Database, key: str, query: str, summary: str, timeout_ms: int, level: str) -> Any:
    """Validates, runs the query once (it must return numbers), stores it; returns its value now."""
    validate(key, query, summary, timeout_ms, level)
    others = int(db.value("SELECT count(*) FROM _telemetry.vendor_metrics WHERE key <> $1", [key], ["text"]))
    if others >= MAX_METRICS:
        raise InvalidRegistration(f"at most {MAX_METRICS} metrics can be registered")

    def refuse(code: str, exc: BaseException) -> Any:
        raise InvalidRegistration(f"the query failed ({code}): {exc}")

    def store() -> None:
        db.rows(
            """INSERT INTO _telemetry.vendor_metrics (key, level, summary, query, timeout_ms)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (key) DO UPDATE
                  SET level = EXCLUDED.level, summary = EXCLUDED.summary, query = EXCLUDED.query,
                      timeout_ms = EXCLUDED.timeout_ms, registered_by = EXCLUDED.registered_by,
                      registered_at = EXCLUDED.registered_at""",
            [key, level, summary.strip(), query, timeout_ms],
            ["text", "text", "text", "text", "int4"],
        )

    def trial() -> Any:
        # Stored first, inside the metric's subtransaction (rolled back), so
        # that it runs exactly as a report will run it.
        store()
        return run_query(db, key)

    value = run_isolated(db, PREFIX + key, timeout_ms, trial, on_error=refuse)
    store()
    return value


def unregister(db: Database, key: str) -> bool:
    return (
        db.value(
            "WITH d AS (DELETE FROM _telemetry.vendor_metrics WHERE key = $1 RETURNING 1) SELECT count(*) > 0 FROM d",
            [key],
            ["text"],
        )
        is True
    )


METRICS: tuple[Metric, ...] = (
    Metric(
        "vendor_metrics",
        "object",
        "Metrics other extensions registered with telemetry_register_metric(): key and summary in the "
        "telemetry_metrics view; each a number, or an object of numbers.",
        "_telemetry.vendor_metrics (registered queries)",
        {"myext_widgets": 42},
        vendor_metrics,
        timeout_ms=NO_SQL,
        fields=(
            Field(
                "*",
                "number, null or object",
                "A registered metric's value: its key and summary are in the telemetry_metrics view.",
            ),
        ),
    ),
)
