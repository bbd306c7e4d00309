"""Defaults of the job's run-time options (see options.py); superusers override them."""

from __future__ import annotations

from datetime import timedelta

# PMM's grace: the first report waits a day, time enough to turn telemetry off.
DEFAULT_GRACE = timedelta(hours=24)
DEFAULT_INTERVAL = timedelta(hours=24)
# After a failure: 1 hour, doubling, never more than the interval.
DEFAULT_RETRY_BASE = timedelta(hours=1)
# A fleet installed together must not call in the same minute.
DEFAULT_JITTER = timedelta(hours=1)
# Every network step of one send together, so a tick is bounded.
DEFAULT_DEADLINE = timedelta(seconds=10)
# The scheduler's tick (pg_cron syntax, %s = this database's minute, 0-14, drawn
# from its jitter): every 15 minutes, but not every database on the same minute,
# so a fleet's due reports do not all arrive in the same second.  A tick with
# nothing due costs one small query.
CRON_SCHEDULE = "%s-59/15 * * * *"
# The audit trail keeps at most this much.
AUDIT_MAX_ROWS = 1000
AUDIT_MAX_AGE = timedelta(days=90)
