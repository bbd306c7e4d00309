"""Builds the report from the declared metrics, each on its own.

Every metric runs in a subtransaction of its own under its deadline
(metrics.runner.run_isolated): one that fails is {"error": <code>} under its
key and the rest of the report is intact.  Their deadlines together are cut
to the report's (declaration.REPORT_DEADLINE_MS).  Metrics a superuser switched off
(telemetry_set_metric_enabled) are left out.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from telemetry_extension.db import Database
from telemetry_extension.level_setting import Level, effective_level
from telemetry_extension.metrics import METRICS
from telemetry_extension.metrics.declaration import Context
from telemetry_extension.metrics.runner import run_isolated
from telemetry_extension.metrics.switches import switched_off


def build_report(db: Database, level: Level | None = None) -> dict[str, Any]:
    ctx = Context(db, level or effective_level(db))
    ctx.switched_off = switched_off(db)
    return {
        metric.key: run_isolated(
            db, metric.key, ctx.budget_ms(metric.timeout_ms), functools.partial(metric.collect, ctx)
        )
        for metric in METRICS
        if metric.key not in ctx.switched_off
    }


def to_json(db: Database, report: dict[str, Any]) -> str:
    """The report as PostgreSQL writes a jsonb: get_report() returns that jsonb, so what it
    shows (psql, get_report()::text) and the body that is sent are the same bytes."""
    text = db.value(
        "SELECT $1::pg_catalog.jsonb::pg_catalog.text",
        [json.dumps(report, allow_nan=False)],
        ["text"],
    )
    assert isinstance(text, str)
    return text
