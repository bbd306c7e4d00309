"""Builds the report from the declared metrics."""

from __future__ import annotations

import json
from typing import Any

from telemetry.db import Database
from telemetry.metrics import METRICS, Context
from telemetry.settings import Level, effective_level


def build_report(db: Database, level: Level | None = None) -> dict[str, Any]:
    ctx = Context(db, level or effective_level(db))
    return {metric.key: metric.collect(ctx) for metric in METRICS}


def to_json(report: dict[str, Any]) -> str:
    """The exact bytes that are sent (and what get_report() shows)."""
    return json.dumps(report, sort_keys=True, separators=(",", ":"))
