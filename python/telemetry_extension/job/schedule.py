"""When the next report is due: grace, interval, back-off and jitter, and the schedule's state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from telemetry_extension.db import Database
from telemetry_extension.job.options import Options, read_options


@dataclass(frozen=True)
class State:
    options: Options
    due: float  # epoch seconds
    failures: int
    jitter_fraction: float
    now: float


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
        due = first_due(row["created_at"], options, row["jitter_fraction"])
    return State(options, due, row["failures"], row["jitter_fraction"], row["now"])


def first_due(created_at: float, options: Options, fraction: float) -> float:
    """The first report waits the grace period, plus this database's share of the jitter."""
    return created_at + options.grace.total_seconds() + fraction * options.jitter.total_seconds()


def plan_first_report(db: Database) -> None:
    """Writes the first due time while no report has been attempted.

    The tick's plain-SQL check (_telemetry.tick_check) compares the recorded
    due time with the clock and never computes one: the rules and the
    options' defaults stay here.  Run on every install and update, whenever
    an option changes, and when a template copy takes its own identity.
    """
    options = read_options(db)
    row = db.row(
        """SELECT pg_catalog.date_part('epoch', i.created_at) AS created_at, s.jitter_fraction
             FROM _telemetry.schedule AS s, _telemetry.instance AS i
            WHERE s.last_attempt IS NULL"""
    )
    if row is None:
        return
    due = first_due(row["created_at"], options, row["jitter_fraction"])
    db.rows(
        "UPDATE _telemetry.schedule SET next_due = pg_catalog.to_timestamp($1) WHERE last_attempt IS NULL",
        [due],
        ["float8"],
    )


def after_success(now: float, options: Options, fraction: float) -> float:
    return now + options.interval.total_seconds() + fraction * options.jitter.total_seconds()


def backoff(failures: int, options: Options) -> float:
    """retry_base, doubling with each failure in a row, never more than the interval."""
    interval = options.interval.total_seconds()
    exponent = min(max(failures - 1, 0), 32)
    return min(options.retry_base.total_seconds() * float(2**exponent), interval)


def after_failure(now: float, failures: int, options: Options, retry_after: float | None, fraction: float) -> float:
    delay = max(backoff(failures, options), retry_after or 0.0)
    # A little jitter, proportionate to the delay, so retries spread too.
    return now + delay + fraction * min(options.jitter.total_seconds(), delay / 10)
