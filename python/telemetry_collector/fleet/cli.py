"""The vendor side's commands: `rollup` and `serve-fleet` (added to telemetry_collector.cli)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys

import psycopg
import psycopg_pool

from telemetry_collector import listener
from telemetry_collector.fleet import rollup
from telemetry_collector.fleet.app import make_app
from telemetry_collector.fleet.auth import TOKEN_ENV, AuthConfigError, is_loopback
from telemetry_collector.fleet.config import FleetSettings
from telemetry_collector.options import ConfigError, add_options, from_args

# serve-vendor: the name serve-fleet had until 0.3.0, accepted until 0.4.0.
SERVE_ALIASES = ("serve-vendor",)
COMMANDS = ("rollup", "serve-fleet", *SERVE_ALIASES)

log = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    roll = sub.add_parser(
        "rollup",
        parents=[common],
        help="fold reports received since the last run into the daily roll-ups (run it on a timer)",
    )
    roll.add_argument(
        "--settle-seconds",
        type=float,
        default=rollup.SETTLE_SECONDS,
        help="leave reports younger than this for the next run, so transactions in flight can commit "
        f"(default {rollup.SETTLE_SECONDS:g})",
    )
    roll.add_argument(
        "--rebuild",
        action="store_true",
        help="empty the roll-ups and recompute them from every stored report (after importing old reports)",
    )
    serve = sub.add_parser(
        "serve-fleet",
        aliases=list(SERVE_ALIASES),
        parents=[common],
        help="run the vendor service: fleet page, JSON and CSV exports from the roll-ups",
    )
    add_options(serve, FleetSettings)


async def _rollup(dsn: str, settle_seconds: float, rebuild: bool) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, application_name="telemetry_rollup") as conn:
        result = await rollup.run(conn, settle_seconds, rebuild=rebuild)
    if result.skipped:
        print("another roll-up is running; nothing done")
    elif result.high is None or result.high == result.low:
        print("roll-ups are up to date")
    else:
        print(
            f"rolled up {result.database_days} database-days ({result.databases} databases) "
            f"received up to {result.high:%Y-%m-%d %H:%M:%S %Z} in {result.seconds:.2f} s"
        )


def _serve(args: argparse.Namespace) -> None:
    settings = from_args(FleetSettings, args, dsn=args.dsn)
    public = not is_loopback(settings.host)
    if settings.token is None and public:
        raise AuthConfigError(
            f"refusing to serve the fleet on {settings.host}, which is not a loopback address, without "
            f"authentication: set {TOKEN_ENV} or give --token-file"
        )
    settings.check()
    tls = settings.tls_context()
    if tls is None and public:
        log.warning("the token travels in clear text: give --tls-cert/--tls-key or put a TLS proxy in front")
    asyncio.run(_serve_until_signalled(settings, tls))


async def _serve_until_signalled(settings: FleetSettings, tls: ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # The edge's listener: JSON answers to malformed requests, no address or client bytes in a log.
    limits = listener.ConnectionLimits(settings.max_connections, 0, settings.tls_handshake_timeout)
    site = await listener.start_site(
        make_app(settings),
        settings.host,
        settings.port,
        limits,
        settings.header_timeout,
        tls,
        False,
        settings.access_log,
    )
    print(f"serving on {site.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await site.stop()


def run(args: argparse.Namespace) -> int:
    """Run a vendor command; the exit status (2: bad usage, 1: failure)."""
    try:
        if args.command == "rollup":
            asyncio.run(_rollup(args.dsn, args.settle_seconds, args.rebuild))
        else:
            _serve(args)
    except (AuthConfigError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (rollup.RollupMissing, psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
