"""Run-time defaults of the schedule (the reporting job reads and overrides them)."""

from __future__ import annotations

from datetime import timedelta

# PMM's grace: the first report waits a day, time enough to turn telemetry off.
DEFAULT_GRACE = timedelta(hours=24)
DEFAULT_INTERVAL = timedelta(hours=24)
