"""The service's settings (the `serve` command's options); every default lives here."""

from __future__ import annotations

from dataclasses import dataclass

from telemetry_collector.ingest import DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True)
class Settings:
    dsn: str
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Per db_uuid: a burst, then this many reports per hour; at most this many db_uuids remembered.
    rate_limit_burst: int = 10
    rate_limit_per_hour: float = 10.0
    rate_limit_max_keys: int = 100_000
    # Distinct db_uuids one source address may report per UTC day (per worker process).
    new_databases_per_address_per_day: int = 1000
    # The same per IPv6 /48 (a home or site is often given a /56 or /48, many /64s).
    new_databases_per_network_per_day: int = 4000
    # How long the newest release is cached; `release add` shows within this.
    release_cache_seconds: float = 5.0
    pool_min_size: int = 2
    pool_max_size: int = 10
    # Seconds a request waits for a pooled connection before a 503.
    pool_timeout: float = 5.0
    # Concurrent batched writes (each one COPY and one commit; see writer.py).
    writers: int = 2
    # Seconds for a request's headers to arrive (also how long an idle connection stays open),
    # and for its body once the headers are in.
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    # Open connections per worker process; past it a new connection gets a 503 and is closed.
    max_connections: int = 4096
    # Open connections per client address (an IPv4 address, an IPv6 /64) and worker process;
    # past it a 429 and close.  Neither cap applies with trust_x_forwarded_for (the proxy's connections).
    max_connections_per_address: int = 64
    # Open connections per IPv6 /48 and worker process (a home or site holds many /64s); past it a 429.
    max_connections_per_network: int = 256
    # Seconds for a TLS client to complete its handshake (the header timeout starts after it).
    tls_handshake_timeout: float = 10.0
    # Behind a reverse proxy (TLS termination), the client's address is the
    # last entry of X-Forwarded-For, the one the proxy appended.  Only set this
    # when every request comes through such a proxy.
    trust_x_forwarded_for: bool = False
    # Seconds between partition checks (the month after the current one is kept ready).
    partition_check_seconds: float = 3600.0
    # Seconds between log lines counting dropped keys and refused reports.
    counters_log_seconds: float = 60.0
    # Who runs this collector and how to reach them, and how long reports are kept
    # (the prune timer's --older-than): stated on the landing page, GET /.
    operator_name: str = ""
    operator_contact: str = ""
    retention_days: int = 400
    # Loopback port of the Prometheus listener (operator_metrics.py); None: none.
    metrics_port: int | None = None
