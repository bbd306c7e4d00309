"""The services' settings, each declared once with its default and help: they are also the options.

ServiceSettings holds what the ingest edge (`serve`, Settings here) and the
fleet service (`serve-fleet`, fleet/config.py) both have: where they listen,
TLS, the listener's bounds, the PostgreSQL pool, the metrics port.  Each
`option()` field is an option of its command (telemetry_collector.options).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from telemetry_collector.ingest import DEFAULT_MAX_BODY_BYTES
from telemetry_collector.options import ConfigError, option


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    dsn: str  # the commands' common --dsn
    host: str = option("127.0.0.1", "address to listen on ({default}; 0.0.0.0 for all)")
    port: int = option(8080, "port to listen on ({default})")
    tls_cert: str | None = option(None, "serve HTTPS with this certificate chain ...", metavar="PEM")
    tls_key: str | None = option(None, "... and this private key", metavar="PEM")
    access_log: bool = option(True, "no per-request log lines", flag="--no-access-log")
    # A request's headers must arrive within header_timeout (also how long an idle connection
    # stays open); the listener's bounds (telemetry_collector.listener).
    header_timeout: float = option(
        10.0, "seconds for a request's headers to arrive, and an idle connection's life ({default})"
    )
    tls_handshake_timeout: float = option(
        10.0, "seconds for a TLS client to complete its handshake ({default}); then close"
    )
    max_connections: int = option(4096, "open connections per process ({default}); past it a 503 and close")
    pool_min_size: int = option(2, "PostgreSQL connections kept open per process ({default})")
    pool_max_size: int = option(10, "PostgreSQL connections at most per process ({default})")
    pool_timeout: float = option(5.0, "seconds a request waits for a pooled connection ({default}); then 503")
    # Loopback port of the Prometheus listener (operator_metrics.py); None: none.
    metrics_port: int | None = option(
        None,
        "serve Prometheus metrics at http://127.0.0.1:PORT/metrics (loopback only; default: none)",
        metavar="PORT",
    )

    def check(self) -> None:
        """Refuse settings that do not go together (ConfigError)."""
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ConfigError("--metrics-port must differ from --port: metrics are never served on the public port")

    def tls_context(self) -> ssl.SSLContext | None:
        """The server's TLS context when a certificate is given (after check()); None: plain HTTP."""
        if not (self.tls_cert and self.tls_key):
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context


@dataclass(frozen=True, kw_only=True)
class Settings(ServiceSettings):
    """The ingest edge's settings (the `serve` command)."""

    max_body_bytes: int = option(
        DEFAULT_MAX_BODY_BYTES, "largest report accepted, in bytes ({default}); larger ones get 413"
    )
    body_timeout: float = option(10.0, "seconds for the body to arrive once the headers are in ({default}); then 408")
    # Open connections per client address (an IPv4 address, an IPv6 /64) and per IPv6 /48 (a home
    # or site holds many /64s), per worker process.  Neither cap applies with trust_x_forwarded_for
    # (the connections are the proxy's).
    max_connections_per_address: int = option(
        64,
        "open connections per client address (an IPv6 /64) and process ({default}); "
        "past it a 429 and close; off with --trust-x-forwarded-for",
    )
    max_connections_per_network: int = option(
        256,
        "open connections per IPv6 /48 and process ({default}); past it a 429 and close; "
        "off with --trust-x-forwarded-for",
    )
    # Per db_uuid: a burst, then this many reports per hour; at most this many db_uuids remembered.
    rate_limit_burst: int = option(10, "reports one db_uuid may send at once ({default}); then 429")
    rate_limit_per_hour: float = option(10.0, "reports one db_uuid may send per hour after its burst ({default})")
    rate_limit_max_keys: int = 100_000
    # Distinct db_uuids one source address, and one IPv6 /48 (a home or site is often given a
    # /56 or /48, many /64s), may report per UTC day (per worker process).
    new_databases_per_address_per_day: int = option(
        1000,
        "distinct db_uuids one source address may report per UTC day ({default}); then 429",
        flag="--new-databases-per-address",
    )
    new_databases_per_network_per_day: int = option(
        4000,
        "distinct db_uuids one IPv6 /48 may report per UTC day ({default}); then 429",
        flag="--new-databases-per-network",
    )
    release_cache_seconds: float = option(5.0, "how soon `release add` reaches the answers ({default})")
    # Concurrent batched writes (each one COPY and one commit; see writer.py).
    writers: int = option(2, "concurrent batched writes per process, each one COPY and one commit ({default})")
    # Behind a reverse proxy (TLS termination), the client's address is the last entry of
    # X-Forwarded-For, the one the proxy appended.  Only set this when every request comes
    # through such a proxy.
    trust_x_forwarded_for: bool = option(
        False,
        "behind a reverse proxy: take the client's address (for the limits and the country only) "
        "from the last X-Forwarded-For entry",
    )
    # Seconds between partition checks (the month after the current one is kept ready).
    partition_check_seconds: float = 3600.0
    # Seconds between log lines counting dropped keys and refused reports.
    counters_log_seconds: float = 60.0
    # Who runs this collector and how to reach them, and how long reports are kept
    # (the prune timer's --older-than): stated on the landing page, GET /.
    operator_name: str = option("", "who runs this collector, stated on the landing page")
    operator_contact: str = option("", "where to ask about it or for erasure (an e-mail address or URL)")
    retention_days: int = option(
        400,
        "how long reports are kept, as the landing page states it ({default}); keep it equal to prune --older-than",
    )
