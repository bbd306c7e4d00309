"""Switching metrics off and on, and the run-time list of every metric (telemetry_metrics view)."""

from __future__ import annotations

from typing import Any

from telemetry_extension.db import Database
from telemetry_extension.metrics import METRICS
from telemetry_extension.metrics.registered import KEY, PREFIX, registered


class InvalidSwitch(ValueError):
    """telemetry_set_metric_enabled() on a key that cannot be switched."""


def switched_off(db: Database) -> frozenset[str]:
    """Keys switched off; the report reads them outside any metric, so that a failure here fails it (closed)."""
    return frozenset(row["key"] for row in db.rows("SELECT key FROM _telemetry.metrics_off"))


def set_metric_enabled(db: Database, key: str | None, enabled: bool | None) -> bool:
    """Switches a metric off (enabled false) or back on; returns the new state.

    Any declared key, or vendor_metrics.<key> (registered or not yet: a DBA
    may switch a vendor's metric off before it arrives).  The keys the wire
    protocol requires cannot be switched off: a collector refuses a report
    without them, so the way to send none of them is telemetry.metrics_level = off.
    """
    if key is None or enabled is None:
        raise InvalidSwitch("key and enabled must not be null")
    declared = {metric.key: metric for metric in METRICS}
    if key in declared:
        if declared[key].required and not enabled:
            raise InvalidSwitch(
                f"{key} is required by the collector protocol; to send nothing, set telemetry.metrics_level = off"
            )
    elif not (key.startswith(PREFIX) and KEY.fullmatch(key[len(PREFIX) :])):
        raise InvalidSwitch(f"unknown metric {key!r}: see SELECT key FROM telemetry_metrics")
    if enabled:
        db.rows("DELETE FROM _telemetry.metrics_off WHERE key = $1", [key], ["text"])
    else:
        db.rows("INSERT INTO _telemetry.metrics_off (key) VALUES ($1) ON CONFLICT (key) DO NOTHING", [key], ["text"])
    return enabled


def metrics_list(db: Database) -> list[dict[str, Any]]:
    """Every metric: declared ones, then registered ones, with whether each is on."""
    off = switched_off(db)
    rows = [
        {
            "key": m.key,
            "origin": "declared",
            "level": m.level,
            "summary": m.summary,
            "source": m.source,
            "timeout_ms": m.timeout_ms,
            "can_switch_off": not m.required,
            "enabled": m.key not in off,
        }
        for m in METRICS
    ]
    for vendor in registered(db):
        key = PREFIX + vendor["key"]
        rows.append(
            {
                "key": key,
                "origin": "registered",
                "level": vendor["level"],
                "summary": vendor["summary"],
                "source": "registered query",
                "timeout_ms": vendor["timeout_ms"],
                "can_switch_off": True,
                "enabled": key not in off and "vendor_metrics" not in off,
            }
        )
    return rows
