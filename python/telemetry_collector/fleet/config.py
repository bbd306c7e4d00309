"""The fleet service's settings (the `serve-fleet` command's options; telemetry_collector.options)."""

from __future__ import annotations

from dataclasses import dataclass

from telemetry_collector.config import ServiceSettings
from telemetry_collector.fleet.auth import MIN_TOKEN_CHARS, TOKEN_ENV, load_token
from telemetry_collector.fleet.rollup import SETTLE_SECONDS
from telemetry_collector.options import option


@dataclass(frozen=True, kw_only=True)
class FleetSettings(ServiceSettings):
    host: str = option("127.0.0.1", "address to listen on ({default}); a non-loopback address needs a token")
    port: int = 8081
    # One process, a few vendors: a small pool and few connections.
    max_connections: int = 256
    pool_min_size: int = 1
    pool_max_size: int = 4
    # None: no authentication (only allowed on a loopback address), and then only requests whose
    # Host header names this address (or localhost) are answered: no DNS rebinding.
    token: str | None = option(
        None,
        f"file whose first line is the access token (at least {MIN_TOKEN_CHARS} characters; default: ${TOKEN_ENV}); "
        "clients send it as 'Authorization: Bearer TOKEN' or as the Basic password",
        flag="--token-file",
        metavar="PATH",
        read=load_token,
    )
    # Every vendor query is cancelled after this long; roll-up reads take milliseconds.
    statement_timeout_ms: int = option(5000, "cancel any vendor query running longer ({default})", minimum=1)
    # Run the roll-up every this many seconds in this process (0: never; use the
    # `rollup` command on a timer instead).
    rollup_every_seconds: float = option(
        300.0,
        "also run the roll-up this often, on a connection of its own; 0: never, leave it to a timer ({default})",
        minimum=0,
    )
    settle_seconds: float = option(SETTLE_SECONDS, "the periodic roll-up's --settle-seconds ({default})")
