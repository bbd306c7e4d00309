"""Running one metric on its own: a subtransaction, a deadline, an error marker.

Each metric runs in a subtransaction that is always rolled back (what it
read is kept in Python; whatever it locked or changed goes), under a
deadline armed by `_telemetry.metric_deadline` (the C module in extension/:
a statement_timeout set from inside a function does not arm PostgreSQL's
timer, so the C module arms it and restores the caller's own afterwards).

A metric that fails becomes {"error": <code>} in the report, where code is
the error's SQLSTATE (five characters, never a message: messages can name
relations), "timeout", "invalid_result", "internal", or "other" for an SQLSTATE
PostgreSQL does not define (RAISE ... USING ERRCODE lets a user make one up).  A cancel that is not
our deadline (pg_cancel_backend, the caller's own statement_timeout) is not
swallowed: it ends the report as it would end any statement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from telemetry_extension.db import Database

TIMEOUT = "timeout"
INVALID_RESULT = "invalid_result"
INTERNAL = "internal"
OTHER = "other"
ERROR_CODES_DOC = (
    'a failed metric appears as {"error": code}: code is the error\'s SQLSTATE (for example 42501), '
    f'"{TIMEOUT}" (the metric exceeded its deadline), "{INVALID_RESULT}" (a registered query returned '
    f'something other than one row of numbers), "{INTERNAL}" (an error in the extension itself) or '
    f'"{OTHER}" (an SQLSTATE that PostgreSQL does not define)'
)

QUERY_CANCELED = "57014"
_SQLSTATE = re.compile(r"[0-9A-Z]{5}")


class InvalidResult(Exception):
    """A registered metric's query returned something other than numbers."""


class _Rollback(Exception):
    """Ends the metric's subtransaction by rolling it back, on purpose."""


def marker(code: str) -> dict[str, str]:
    return {"error": code}


def is_marker(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"error"}


def error_code(exc: BaseException, timed_out: bool) -> str | None:
    """The marker's code, or None for an error that must not be swallowed."""
    if isinstance(exc, InvalidResult):
        return INVALID_RESULT
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == QUERY_CANCELED:
        return TIMEOUT if timed_out else None
    if isinstance(sqlstate, str) and sqlstate.startswith("57"):
        return None  # operator intervention: shutdown, crash, ...
    # PL/Python raises a subclass of SPIError (plpy.spiexceptions) for every
    # SQLSTATE PostgreSQL defines, and SPIError itself for one it does not:
    # a code a user made up is theirs, not vocabulary.
    if type(exc).__name__ == "SPIError":
        return OTHER
    if isinstance(sqlstate, str) and _SQLSTATE.fullmatch(sqlstate):
        return sqlstate
    return INTERNAL


def run_isolated(
    db: Database,
    label: str,
    timeout_ms: int | None,
    collect: Callable[[], Any],
    on_error: Callable[[str, BaseException], Any] | None = None,
) -> Any:
    """`collect()` in a rolled-back subtransaction under a deadline; a marker if it fails.

    `on_error(code, exc)`, when given, decides what a failure returns (or raises).
    A deadline of 0 (the report's deadline is spent) is a timeout without running.
    """
    if timeout_ms == 0:
        db.plpy.log(f"telemetry: metric {label} not run ({TIMEOUT}): the report's deadline is spent")
        return marker(TIMEOUT)
    found: list[Any] = []
    armed = False
    try:
        with db.plpy.subtransaction():
            if timeout_ms is not None:
                db.rows(
                    "SELECT _telemetry.metric_deadline($1), pg_catalog.set_config('jit', 'off', true)",
                    [timeout_ms],
                    ["int4"],
                )
                armed = True
            found.append(collect())
            if armed:
                # A deadline that fired after the last statement raises here, inside.
                db.rows("SELECT _telemetry.metric_deadline(0)")
                armed = False
            raise _Rollback
    except _Rollback:
        return found[0]
    except Exception as exc:
        timed_out = bool(db.value("SELECT _telemetry.metric_deadline(0)")) if armed else False
        code = error_code(exc, timed_out)
        if code is None:
            raise
        if on_error is not None:
            return on_error(code, exc)
        db.plpy.log(f"telemetry: metric {label} failed ({code}): {exc}")
        return marker(code)
