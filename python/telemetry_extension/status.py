"""The at-a-glance answer of the telemetry_status view."""

from __future__ import annotations

from typing import Any

from telemetry_extension import build_info
from telemetry_extension.db import Database
from telemetry_extension.job.schedule import iso, read_state
from telemetry_extension.level_setting import effective_level


def status(db: Database) -> dict[str, Any]:
    level = effective_level(db)
    state = read_state(db)
    row = db.row(
        """SELECT s.last_attempt, s.last_success,
                  (SELECT a.outcome FROM _telemetry.attempts a ORDER BY a.id DESC LIMIT 1) AS last_outcome,
                  (SELECT a.error FROM _telemetry.attempts a WHERE a.error IS NOT NULL
                    ORDER BY a.id DESC LIMIT 1) AS last_error,
                  v.latest_version, v.up_to_date
             FROM _telemetry.schedule s LEFT JOIN _telemetry.latest_version v ON true"""
    )
    assert row is not None
    no_endpoint = build_info.is_no_endpoint(state.options.endpoint)
    return {
        "metrics_level": level.level,
        "metrics_level_source": level.source,
        # A build without a collector says so where the endpoint would be; nothing is ever due.
        "endpoint": f"none: this build has no endpoint ({state.options.endpoint})"
        if no_endpoint
        else state.options.endpoint,
        "last_attempt": row["last_attempt"],
        "last_outcome": row["last_outcome"],
        "last_success": row["last_success"],
        "last_error": row["last_error"],
        "next_due": None if not level.enabled or no_endpoint else iso(state.due),
        "installed_version": build_info.VERSION,
        "newest_version": row["latest_version"],
        "up_to_date": row["up_to_date"],
    }
