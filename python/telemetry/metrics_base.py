"""What every metric module shares: the declaration, the per-report context, value helpers.

A metric is declared once (telemetry.metrics.METRICS): its key, level,
one-line summary, where its value comes from, an example, the function that
collects it and, for objects, the documented fields inside.  The report
(report.py), the field dictionary (fields_doc.py) and the tests all read the
declarations.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from packaging.version import InvalidVersion, Version

from telemetry.db import Database
from telemetry.identity import Identity, read_identity
from telemetry.settings import Level

JSONValue = Any

# Every metric that runs SQL gets this deadline unless it declares its own.
DEFAULT_TIMEOUT_MS = 10_000


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
    level: str = "basic"
    # Deadline of the metric's subtransaction; None: the metric runs no SQL.
    timeout_ms: int | None = DEFAULT_TIMEOUT_MS
    # The wire protocol requires the key (telemetry.protocol): it cannot be switched off.
    required: bool = False
    fields: tuple[Field, ...] = ()


class Context:
    """What several metrics share, read at most once per report."""

    def __init__(self, db: Database, level: Level) -> None:
        self.db = db
        self.level = level
        self._shared: dict[str, Any] = {}
        # Keys a superuser switched off (set_metric_enabled); report.py fills it in.
        self.switched_off: frozenset[str] = frozenset()

    def shared(self, name: str, read: Callable[[], Any]) -> Any:
        """`read()` once per report, for metrics that come from the same catalog query."""
        if name not in self._shared:
            self._shared[name] = read()
        return self._shared[name]

    @cached_property
    def identity(self) -> Identity:
        return read_identity(self.db)

    @cached_property
    def extensions(self) -> dict[str, str]:
        rows = self.db.rows("SELECT extname::text AS name, extversion AS version FROM pg_catalog.pg_extension")
        return {row["name"]: row["version"] for row in rows}

    @cached_property
    def uname(self) -> os.uname_result:
        return os.uname()

    @cached_property
    def block_size(self) -> int:
        return int(self.db.value("SELECT pg_catalog.current_setting('block_size')::int"))


def public_version(text: str | None) -> str | None:
    """A version string as vocabulary: PEP 440 public part only, else None.

    Extension versions come from control files; a local build could put
    anything there, so only the numeric public version is sent.
    """
    if text is None:
        return None
    try:
        return Version(text).public
    except InvalidVersion:
        return None


SIGNIFICANT_DIGITS = 2


def approx(value: int | float | Decimal | None) -> int:
    """A count or size that could single a database out, kept to two significant digits.

    0..99 stay exact; 12_345 becomes 12_000; 987_654_321 becomes 990_000_000.
    See docs/metrics.md for why two digits and not Citus's powers of two.
    """
    if value is None:
        return 0
    number = round(float(value))
    if number < 0:
        return 0
    if number < 10**SIGNIFICANT_DIGITS:
        return number
    digits = len(str(number)) - SIGNIFICANT_DIGITS
    return int(round(number, -digits))


def as_number(value: Any) -> int | float | None:
    """A SQL number as a JSON number: int when integral, float when finite, else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**63 else value
    return None
