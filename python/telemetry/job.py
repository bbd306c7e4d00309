"""The reporting job: a cheap tick, a send when due, the answer handled, everything recorded.

No exception from the network or the peer escapes; a cancel or a shutdown of
the backend does (the server asked for it).  While the network step runs, the
backend holds no lock on any table or row: everything is read in a
subtransaction that is rolled back on purpose, which releases its locks, and
written after the exchange.  The only thing held is a try-only advisory lock,
which makes concurrent ticks skip instead of sending twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from telemetry import build_info, config, protocol, schedule
from telemetry.db import Database
from telemetry.options import Options, read_options
from telemetry.report import build_report, to_json
from telemetry.sender import Exchange, post_report
from telemetry.settings import Level, effective_level
from telemetry.versioncheck import Verdict, judge, store, tell

T = TypeVar("T")

# pg_try_advisory_xact_lock(key1, key2): per database; "tele", 1.
LOCK_KEYS = (0x74656C65, 1)


@dataclass(frozen=True)
class State:
    options: Options
    due: float  # epoch seconds
    failures: int
    jitter_fraction: float
    now: float


class _ReadDone(Exception):
    """Rolls back the read-only subtransaction, and with it its locks."""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def read_state(db: Database) -> State:
    options = read_options(db)
    row = db.row(
        """SELECT pg_catalog.date_part('epoch', s.next_due) AS next_due, s.failures, s.jitter_fraction,
                  pg_catalog.date_part('epoch', i.created_at) AS created_at,
                  pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) AS now
             FROM _telemetry.schedule AS s, _telemetry.instance AS i"""
    )
    assert row is not None
    due = row["next_due"]
    if due is None:
        due = schedule.first_due(row["created_at"], options, row["jitter_fraction"])
    return State(options, due, row["failures"], row["jitter_fraction"], row["now"])


def _without_keeping_locks(db: Database, read: Callable[[], T]) -> T:
    """`read()`, in a subtransaction rolled back afterwards so that its locks go with it."""
    found: list[T] = []
    try:
        with db.plpy.subtransaction():
            found.append(read())
            raise _ReadDone
    except _ReadDone:
        pass
    return found[0]


def _record(
    db: Database,
    trigger: str,
    state: State,
    body: bytes,
    started: float,
    exchange: Exchange,
    verdict: Verdict | None,
    error: str | None,
) -> float:
    """Writes the attempt and the next due time; returns the next due time."""
    now = time.time()
    if error is None:
        failures = 0
        due = schedule.after_success(now, state.options, state.jitter_fraction)
    else:
        failures = state.failures + 1
        due = schedule.after_failure(now, failures, state.options, exchange.retry_after, state.jitter_fraction)
    db.rows(
        """INSERT INTO _telemetry.attempts
               (started_at, duration_ms, trigger, endpoint, body, http_status, outcome, error, latest_version)
           VALUES (pg_catalog.to_timestamp($1), $2, $3, $4, $5, $6, $7, $8, $9)""",
        [
            started,
            round(exchange.seconds * 1000),
            trigger,
            state.options.endpoint,
            body.decode(),
            exchange.status,
            "failed" if error else "sent",
            error,
            verdict.latest if verdict else None,
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
        [config.AUDIT_MAX_AGE.days, config.AUDIT_MAX_ROWS],
        ["int4", "int4"],
    )
    return due


def _send(db: Database, level: Level, trigger: str) -> dict[str, Any]:
    state, body = _without_keeping_locks(db, lambda: (read_state(db), to_json(build_report(db, level)).encode()))
    if trigger == "job" and state.due > state.now:
        return {"outcome": "not_due", "next_due": iso(state.due)}
    started = time.time()
    exchange = post_report(
        state.options.endpoint,
        body,
        user_agent=protocol.user_agent(build_info.VERSION),
        deadline_seconds=state.options.deadline.total_seconds(),
        ca_file=state.options.ca_file,
        check_interrupts=lambda: db.rows("SELECT 1"),
    )
    error = exchange.error
    verdict: Verdict | None = None
    if error is None:
        try:
            verdict = judge(exchange.body)
        except protocol.ProtocolError as exc:
            error = f"invalid answer: {exc}"
    due = _record(db, trigger, state, body, started, exchange, verdict, error)
    endpoint = state.options.endpoint
    if error is not None:
        # The one log line of this failure.
        db.plpy.log(f"telemetry: report not sent to {endpoint}: {error}; next try after {iso(due)}")
        return {
            "outcome": "failed",
            "error": error,
            "http_status": exchange.status,
            "next_due": iso(due),
            "duration_ms": round(exchange.seconds * 1000),
        }
    assert verdict is not None
    store(db, verdict)
    tell(db, verdict)
    return {
        "outcome": "sent",
        "http_status": exchange.status,
        "latest_version": verdict.latest,
        "up_to_date": verdict.up_to_date,
        "next_due": iso(due),
        "duration_ms": round(exchange.seconds * 1000),
    }


def run(db: Database, trigger: str) -> dict[str, Any]:
    """One tick (trigger "job": sends only when due) or a send now (trigger "manual")."""
    level = _without_keeping_locks(db, lambda: effective_level(db, warn=trigger == "manual"))
    if not level.enabled:
        db.plpy.debug(f"telemetry: metrics level is off (from {level.source}); nothing sent")
        return {"outcome": "disabled", "metrics_level": level.level, "metrics_level_source": level.source}
    if trigger == "job":
        # The cheap path: nothing due, no lock, no network.
        state = _without_keeping_locks(db, lambda: read_state(db))
        if state.due > state.now:
            return {"outcome": "not_due", "next_due": iso(state.due)}
    if not db.value("SELECT pg_catalog.pg_try_advisory_xact_lock($1, $2)", LOCK_KEYS, ["int4", "int4"]):
        return {"outcome": "busy", "detail": "another session is sending the report right now"}
    return _send(db, level, trigger)
