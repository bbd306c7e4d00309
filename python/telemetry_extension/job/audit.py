"""Every attempt recorded: the exact body sent, what came back, and the next due time.

The audit trail (_telemetry.attempts) keeps at most AUDIT_MAX_ROWS rows, none
older than AUDIT_MAX_AGE.
"""

from __future__ import annotations

import time
from datetime import timedelta

from telemetry_extension.db import Database
from telemetry_extension.job import schedule
from telemetry_extension.job.schedule import State

AUDIT_MAX_ROWS = 1000
AUDIT_MAX_AGE = timedelta(days=90)


def record(
    db: Database,
    trigger: str,
    state: State,
    body: bytes,
    started: float,
    *,
    seconds: float,
    http_status: int | None,
    retry_after: float | None,
    latest_version: str | None,
    error: str | None,
) -> float:
    """Writes the attempt and the next due time; returns the next due time."""
    now = time.time()
    if error is None:
        failures = 0
        due = schedule.after_success(now, state.options, state.jitter_fraction)
    else:
        failures = state.failures + 1
        due = schedule.after_failure(now, failures, state.options, retry_after, state.jitter_fraction)
    db.rows(
        """INSERT INTO _telemetry.attempts
               (started_at, duration_ms, trigger, endpoint, body, http_status, outcome, error, latest_version)
           VALUES (pg_catalog.to_timestamp($1), $2, $3, $4, $5, $6, $7, $8, $9)""",
        [
            started,
            round(seconds * 1000),
            trigger,
            state.options.endpoint,
            body.decode(),
            http_status,
            "failed" if error else "sent",
            error,
            latest_version,
        ],
        ["float8", "int4", "text", "text", "text", "int4", "text", "text", "text"],
    )
    db.rows(
        """UPDATE _telemetry.schedule
              SET next_due = pg_catalog.to_timestamp($1), failures = $2,
                  last_attempt = pg_catalog.to_timestamp($3),
                  last_success = CASE WHEN $4 THEN pg_catalog.to_timestamp($3) ELSE last_success END""",
        [due, failures, started, error is None],
        ["float8", "int4", "float8", "boolean"],
    )
    db.rows(
        """DELETE FROM _telemetry.attempts
            WHERE started_at < pg_catalog.clock_timestamp() - pg_catalog.make_interval(days => $1)
               OR id <= (SELECT id FROM _telemetry.attempts ORDER BY id DESC OFFSET $2 LIMIT 1)""",
        [AUDIT_MAX_AGE.days, AUDIT_MAX_ROWS],
        ["int4", "int4"],
    )
    return due
