"""The tick: cheap when nothing is due; when due, the report sent, the answer handled, all recorded.

No exception from the network or the peer escapes; a cancel or a shutdown of
the backend does (the server asked for it).  While the network step runs, the
backend holds no lock on any table or row: everything is read in a
subtransaction that is rolled back on purpose, which releases its locks, and
written after the exchange.  The only thing held is a lock on
_telemetry.send_lock, an empty table that nobody reads and that only the
extension's owner can lock (LOCK TABLE needs privileges on it that no other
role has): a concurrent tick skips, logging one LOG line, instead of sending
twice, and no unprivileged role can take it to silence sends.

Nothing is sent where nothing can be recorded: on a standby or in a read-only
transaction the tick answers "read_only" before any network I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import telemetry_protocol as protocol
from telemetry_extension import build_info
from telemetry_extension.db import Database
from telemetry_extension.job import advisories
from telemetry_extension.job.audit import record
from telemetry_extension.job.copies import adopt_own_identity, is_copy
from telemetry_extension.job.options import Options, read_options
from telemetry_extension.job.schedule import State, iso, read_state
from telemetry_extension.job.version_check import Verdict, judge, store
from telemetry_extension.level_setting import Level, effective_level
from telemetry_extension.report import build_report, to_json

T = TypeVar("T")

LOCK_NOT_AVAILABLE = "55P03"
NO_ENDPOINT = (
    "nothing sent: this build of the extension has no endpoint; "
    "a superuser sets one with SELECT telemetry_set_option('endpoint', 'https://...')"
)


class _ReadDone(Exception):
    """Rolls back the read-only subtransaction, and with it its locks."""


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


def _read_only_reason(db: Database) -> str | None:
    """Why this transaction cannot record an attempt, or None when it can."""
    row = db.row(
        """SELECT pg_catalog.pg_is_in_recovery() AS standby,
                  pg_catalog.current_setting('transaction_read_only')::boolean AS read_only"""
    )
    assert row is not None
    if row["standby"]:
        return "this server is a standby (in recovery): the primary sends the report"
    if row["read_only"]:
        return "the transaction is read-only: the attempt could not be recorded"
    return None


def _take_send_lock(db: Database) -> bool:
    """The send lock until the end of the transaction, or False when another session holds it."""
    try:
        with db.plpy.subtransaction():
            db.rows("LOCK TABLE _telemetry.send_lock IN SHARE UPDATE EXCLUSIVE MODE NOWAIT")
    except Exception as exc:
        if getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return False
        raise
    return True


def _read_answer(answer: bytes, report: bytes) -> tuple[Verdict | None, list[advisories.Product], str | None]:
    """The verdict and the products' advisories, or why the answer cannot be read: whatever the
    parser raises is the peer's fault, recorded, and nothing of the answer is kept."""
    try:
        verdict = judge(answer)
        return verdict, advisories.judge(verdict, report), None
    except protocol.ProtocolError as exc:
        return None, [], f"invalid answer: {exc}"
    except Exception as exc:  # e.g. RecursionError: a failure like any other, never an ERROR
        return None, [], f"invalid answer: it could not be read ({type(exc).__name__})"


@dataclass(frozen=True)
class _Outcome:
    """What one exchange came to: the answer read (error None), or the failure, with what the wire told."""

    started: float
    error: str | None
    seconds: float = 0.0
    http_status: int | None = None
    retry_after: float | None = None
    verdict: Verdict | None = None
    products: list[advisories.Product] = field(default_factory=list)


def _exchange(db: Database, options: Options, body: bytes) -> _Outcome:
    """The exchange: the report posted and the answer read, or why not; nothing escapes but a cancel."""
    started = time.time()
    try:
        protocol.check_report_size(body)
    except protocol.ProtocolError as exc:
        return _Outcome(started, str(exc))
    from telemetry_extension.job.sender import post_report  # loads requests: only when sending

    exchange = post_report(
        options.endpoint,
        body,
        user_agent=protocol.user_agent(build_info.VERSION),
        deadline_seconds=options.deadline.total_seconds(),
        ca_file=options.ca_file,
        check_interrupts=lambda: db.rows("SELECT 1"),
    )
    on_the_wire = _Outcome(started, exchange.error, exchange.seconds, exchange.status, exchange.retry_after)
    if exchange.error is not None:
        return on_the_wire
    verdict, products, error = _read_answer(exchange.body, body)
    return replace(on_the_wire, error=error, verdict=verdict, products=products)


def _record(db: Database, trigger: str, state: State, body: bytes, outcome: _Outcome) -> float:
    """The attempt kept for audit; the next due time."""
    return record(
        db,
        trigger,
        state,
        body,
        outcome.started,
        seconds=outcome.seconds,
        http_status=outcome.http_status,
        retry_after=outcome.retry_after,
        latest_version=outcome.verdict.latest if outcome.verdict else None,
        error=outcome.error,
    )


def _judge(db: Database, trigger: str, state: State, body: bytes, outcome: _Outcome) -> dict[str, Any]:
    """The judgement: the attempt recorded, then a failure's one log line, or the answer stored and told."""
    # A copy's first send went out under the identity get_report() shows (derived, not yet
    # written); now that no network step remains, the copy writes it, then records the attempt.
    if adopt_own_identity(db):
        state = read_state(db)
    due = _record(db, trigger, state, body, outcome)
    timing = {"next_due": iso(due), "duration_ms": round(outcome.seconds * 1000)}
    if outcome.error is not None:
        # The one log line of this failure.
        db.plpy.log(
            f"telemetry: report not sent to {state.options.endpoint}: {outcome.error}; next try after {iso(due)}"
        )
        return {"outcome": "failed", "error": outcome.error, "http_status": outcome.http_status, **timing}
    verdict = outcome.verdict
    assert verdict is not None
    store(db, verdict)
    advisories.store(db, outcome.products)
    advisories.tell(db, verdict, outcome.products)
    return {
        "outcome": "sent",
        "http_status": outcome.http_status,
        "latest_version": verdict.latest,
        "up_to_date": verdict.up_to_date,
        **timing,
    }


def _send(db: Database, level: Level, trigger: str) -> dict[str, Any]:
    """The report built (without keeping locks), exchanged, and judged."""
    state, body = _without_keeping_locks(db, lambda: (read_state(db), to_json(db, build_report(db, level)).encode()))
    if trigger == "job" and state.due > state.now:
        return {"outcome": "not_due", "next_due": iso(state.due)}
    return _judge(db, trigger, state, body, _exchange(db, state.options, body))


def run(db: Database, trigger: str) -> dict[str, Any]:
    """One tick (trigger "job": sends only when due) or a send now (trigger "manual")."""
    level = _without_keeping_locks(db, lambda: effective_level(db, warn=trigger == "manual"))
    if not level.enabled:
        db.plpy.debug(f"telemetry: metrics level is off (from {level.source}); nothing sent")
        return {"outcome": "disabled", "metrics_level": level.level, "metrics_level_source": level.source}
    endpoint = _without_keeping_locks(db, lambda: read_options(db).endpoint)
    if build_info.is_no_endpoint(endpoint):
        # A build without a real endpoint: nothing to send to, and nothing worth a log line.
        db.plpy.debug(f"telemetry: this build has no endpoint ({endpoint}); nothing sent")
        return {"outcome": "no_endpoint", "detail": NO_ENDPOINT}
    # Read without keeping its locks.  A send now (manual) in a copy takes the identity after the
    # network step (see _send): rows written before it would stay locked while sending.
    if trigger == "job" and _without_keeping_locks(db, lambda: is_copy(db)) and adopt_own_identity(db):
        # A template copy just took its own identity: its first report waits its own grace period.
        return {
            "outcome": "not_due",
            "next_due": iso(read_state(db).due),
            "detail": "a copy: it has its own identity now",
        }
    if trigger == "job":
        # The cheap path: nothing due, no lock, no network.
        state = _without_keeping_locks(db, lambda: read_state(db))
        if state.due > state.now:
            return {"outcome": "not_due", "next_due": iso(state.due)}
    reason = _read_only_reason(db)
    if reason is not None:
        return {"outcome": "read_only", "detail": f"nothing sent: {reason}"}
    if not _take_send_lock(db):
        # The one line of this skip: who holds the lock is another tick or send.
        db.plpy.log(f"telemetry: report not sent ({trigger}): another session is sending it right now")
        return {"outcome": "busy", "detail": "another session is sending the report right now"}
    return _send(db, level, trigger)
