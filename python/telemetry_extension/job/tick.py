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
from typing import Any, TypeVar

import telemetry_protocol as protocol
from telemetry_extension import build_info
from telemetry_extension.db import Database
from telemetry_extension.job import advisories
from telemetry_extension.job.audit import record
from telemetry_extension.job.copies import adopt_own_identity, is_copy
from telemetry_extension.job.options import read_options
from telemetry_extension.job.schedule import iso, read_state
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


def _send(db: Database, level: Level, trigger: str) -> dict[str, Any]:
    state, body = _without_keeping_locks(db, lambda: (read_state(db), to_json(db, build_report(db, level)).encode()))
    if trigger == "job" and state.due > state.now:
        return {"outcome": "not_due", "next_due": iso(state.due)}
    started = time.time()
    http_status: int | None = None
    retry_after: float | None = None
    seconds = 0.0
    verdict: Verdict | None = None
    products: list[advisories.Product] = []
    try:
        protocol.check_report_size(body)
    except protocol.ProtocolError as exc:
        error: str | None = str(exc)
    else:
        from telemetry_extension.job.sender import post_report  # loads requests: only when sending

        exchange = post_report(
            state.options.endpoint,
            body,
            user_agent=protocol.user_agent(build_info.VERSION),
            deadline_seconds=state.options.deadline.total_seconds(),
            ca_file=state.options.ca_file,
            check_interrupts=lambda: db.rows("SELECT 1"),
        )
        error, http_status, seconds = exchange.error, exchange.status, exchange.seconds
        retry_after = exchange.retry_after
        if error is None:
            verdict, products, error = _read_answer(exchange.body, body)
    # A copy's first send went out under the identity get_report() shows (derived, not yet
    # written); now that no network step remains, the copy writes it, then records the attempt.
    if adopt_own_identity(db):
        state = read_state(db)
    due = record(
        db,
        trigger,
        state,
        body,
        started,
        seconds=seconds,
        http_status=http_status,
        retry_after=retry_after,
        latest_version=verdict.latest if verdict else None,
        error=error,
    )
    endpoint = state.options.endpoint
    if error is not None:
        # The one log line of this failure.
        db.plpy.log(f"telemetry: report not sent to {endpoint}: {error}; next try after {iso(due)}")
        return {
            "outcome": "failed",
            "error": error,
            "http_status": http_status,
            "next_due": iso(due),
            "duration_ms": round(seconds * 1000),
        }
    assert verdict is not None
    store(db, verdict)
    advisories.store(db, products)
    advisories.tell(db, verdict, products)
    return {
        "outcome": "sent",
        "http_status": http_status,
        "latest_version": verdict.latest,
        "up_to_date": verdict.up_to_date,
        "next_due": iso(due),
        "duration_ms": round(seconds * 1000),
    }


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
