"""What a metric is: its declaration, the documented fields inside it, the per-report context.

Each module of this package declares the metrics of one source of facts,
complete; `telemetry_extension.metrics` assembles them into METRICS.  The
report (report.py), the field dictionary (fields_doc.py), the telemetry_metrics
view and the tests all read the declarations.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import telemetry_protocol as protocol
from telemetry_extension.db import Database
from telemetry_extension.level_setting import DEFAULT_LEVEL, Level

JSONValue = Any

# Every metric that runs SQL gets this deadline unless it declares its own.
DEFAULT_TIMEOUT_MS = 10_000
NO_SQL = None  # timeout_ms of a metric that runs no SQL
# The whole report's deadline: the metrics' own deadlines (declared and
# registered, up to registered.MAX_TIMEOUT_MS each) are cut to what is left of
# it; a metric reached after it is {"error": "timeout"} without running.
REPORT_DEADLINE_MS = 30_000


@dataclass(frozen=True)
class Field:
    """A documented value inside an object metric.

    `path` is dotted from the metric's key; `*` stands for a key that is
    vocabulary listed in the summary (an access method, an extension, ...).
    """

    path: str
    json_type: str
    summary: str


@dataclass(frozen=True)
class Metric:
    key: str
    json_type: str  # as written in the field dictionary: string, integer, boolean, object, "string or null"
    summary: str
    source: str
    example: JSONValue
    collect: Callable[[Context], JSONValue]
    level: str = DEFAULT_LEVEL
    # Deadline of the metric's subtransaction; NO_SQL: the metric runs no SQL.
    timeout_ms: int | None = DEFAULT_TIMEOUT_MS
    fields: tuple[Field, ...] = ()

    @property
    def required(self) -> bool:
        """The wire protocol requires the key: it cannot be switched off."""
        return self.key in protocol.REQUIRED_REPORT_FIELDS


def prefixed(prefix: str, fields: tuple[Field, ...]) -> tuple[Field, ...]:
    return tuple(Field(f"{prefix}.{f.path}", f.json_type, f.summary) for f in fields)


class Context:
    """What several metrics share, read at most once per report."""

    def __init__(self, db: Database, level: Level) -> None:
        self.db = db
        self.level = level
        self._shared: dict[str, Any] = {}
        # Keys a superuser switched off (telemetry_set_metric_enabled); report.py fills it in.
        self.switched_off: frozenset[str] = frozenset()
        self.ends_at = time.monotonic() + REPORT_DEADLINE_MS / 1000

    def budget_ms(self, timeout_ms: int | None) -> int | None:
        """A metric's deadline cut to what is left of the report's; 0 when nothing is left."""
        if timeout_ms is None:
            return None
        left = int((self.ends_at - time.monotonic()) * 1000)
        return max(min(timeout_ms, left), 0)

    def shared(self, name: str, read: Callable[[], Any]) -> Any:
        """`read()` once per report, for metrics that come from the same source."""
        if name not in self._shared:
            self._shared[name] = read()
        return self._shared[name]

    @cached_property
    def extensions(self) -> dict[str, str]:
        rows = self.db.rows("SELECT extname::text AS name, extversion AS version FROM pg_catalog.pg_extension")
        return {row["name"]: row["version"] for row in rows}

    @cached_property
    def block_size(self) -> int:
        return int(self.db.value("SELECT pg_catalog.current_setting('block_size')::int"))
