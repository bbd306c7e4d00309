"""When the next report is due: grace, interval, back-off and jitter (pure functions)."""

from __future__ import annotations

from telemetry.options import Options


def first_due(created_at: float, options: Options, fraction: float) -> float:
    """The first report waits the grace period, plus this database's share of the jitter."""
    return created_at + options.grace.total_seconds() + fraction * options.jitter.total_seconds()


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
