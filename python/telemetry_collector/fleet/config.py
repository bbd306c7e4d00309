"""The vendor service's settings (the `serve-fleet` command's options)."""

from __future__ import annotations

from dataclasses import dataclass

from telemetry_collector.fleet.rollup import SETTLE_SECONDS


@dataclass(frozen=True)
class FleetSettings:
    dsn: str
    # None: no authentication (only allowed on a loopback address), and then only requests whose
    # Host header names this address (or localhost) are answered: no DNS rebinding.
    token: str | None = None
    host: str = "127.0.0.1"
    # Every vendor query is cancelled after this long; roll-up reads take milliseconds.
    statement_timeout_ms: int = 5000
    pool_min_size: int = 1
    pool_max_size: int = 4
    # Seconds a request waits for a pooled connection before a 503.
    pool_timeout: float = 5.0
    # Run the roll-up every this many seconds in this process (0: never; use the
    # `rollup` command on a timer instead).
    rollup_every_seconds: float = 300.0
    settle_seconds: float = SETTLE_SECONDS
    # The listener's bounds (telemetry_collector.listener): headers, TLS handshake, open connections.
    header_timeout: float = 10.0
    tls_handshake_timeout: float = 10.0
    max_connections: int = 256
    # Loopback port of the Prometheus listener (operator_metrics.py); None: none.
    metrics_port: int | None = None
