"""Per-db_uuid rate limiting: a token bucket per key, kept in memory.

A database reports once a day and retries on failure, so the default allows a
burst of 10 and 10 more per hour.  Keys whose bucket has refilled are dropped
in periodic sweeps, so memory follows the databases seen in the last refill
period (about an hour), not the whole fleet.  The state is per process; see
docs/collector.md for running several.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        burst: int,
        per_hour: float,
        clock: Callable[[], float] = time.monotonic,
        sweep_every: float = 60.0,
    ) -> None:
        if burst < 1 or per_hour <= 0:
            raise ValueError("rate limit needs burst >= 1 and per_hour > 0")
        self.burst = float(burst)
        self.rate = per_hour / 3600.0  # tokens per second
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._sweep_every = sweep_every
        self._last_sweep = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: str) -> int | None:
        """None if `key` may go on, else the whole seconds until it may (Retry-After)."""
        now = self._clock()
        if now - self._last_sweep >= self._sweep_every:
            self._sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = _Bucket(self.burst - 1.0, now)
            return None
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}
        self._last_sweep = now
