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
from telemetry_collector.fleet.auth import TOKEN_ENV, AuthConfigError, is_loopback, load_token
from telemetry_collector.fleet.config import FleetSettings

# serve-vendor: the name serve-fleet had until 0.3.0, accepted until 0.4.0.
SERVE_ALIASES = ("serve-vendor",)
COMMANDS = ("rollup", "serve-fleet", *SERVE_ALIASES)
DEFAULT_PORT = 8081

log = logging.getLogger(__name__)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    defaults = FleetSettings(dsn="")
    roll = sub.add_parser(
        "rollup",
        parents=[common],
        help="fold reports received since the last run into the daily roll-ups (run it on a timer)",
    )
    roll.add_argument(
        "--settle-seconds",
        type=float,
        default=defaults.settle_seconds,
        help="leave reports younger than this for the next run, so transactions in flight can commit "
        f"(default {defaults.settle_seconds:g})",
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
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1); a non-loopback address needs a token",
    )
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"file whose first line is the access token (at least 16 characters; default: ${TOKEN_ENV}); "
        "clients send it as 'Authorization: Bearer TOKEN' or as the Basic password",
    )
    serve.add_argument(
        "--statement-timeout-ms",
        type=int,
        default=defaults.statement_timeout_ms,
        help=f"cancel any vendor query running longer (default {defaults.statement_timeout_ms})",
    )
    serve.add_argument(
        "--pool-min-size",
        type=int,
        default=defaults.pool_min_size,
        help=f"connections kept open for vendor reads (default {defaults.pool_min_size})",
    )
    serve.add_argument(
        "--pool-max-size",
        type=int,
        default=defaults.pool_max_size,
        help=f"most connections vendor reads may hold (default {defaults.pool_max_size})",
    )
    serve.add_argument(
        "--pool-timeout",
        type=float,
        default=defaults.pool_timeout,
        help=f"seconds a request waits for a connection before a 503 (default {defaults.pool_timeout:g})",
    )
    serve.add_argument(
        "--rollup-every-seconds",
        type=float,
        default=defaults.rollup_every_seconds,
        help="also run the roll-up this often, on a connection of its own; 0: never, leave it to a timer "
        f"(default {defaults.rollup_every_seconds:g})",
    )
    serve.add_argument(
        "--settle-seconds",
        type=float,
        default=defaults.settle_seconds,
        help=f"the periodic roll-up's --settle-seconds (default {defaults.settle_seconds:g})",
    )
    serve.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain ...")
    serve.add_argument("--tls-key", metavar="PEM", help="... and this private key")
    serve.add_argument("--no-access-log", action="store_true", help="no per-request log lines")
    serve.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics (loopback only; default: none)",
    )


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
    token = load_token(args.token_file)
    if token is None and not is_loopback(args.host):
        raise AuthConfigError(
            f"refusing to serve the fleet on {args.host}, which is not a loopback address, without "
            f"authentication: set {TOKEN_ENV} or give --token-file"
        )
    if args.rollup_every_seconds < 0 or args.statement_timeout_ms <= 0:
        raise AuthConfigError("--rollup-every-seconds must be >= 0 and --statement-timeout-ms > 0")
    tls: ssl.SSLContext | None = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise AuthConfigError("--tls-cert and --tls-key go together")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    elif token is not None and not is_loopback(args.host):
        log.warning("the token travels in clear text: give --tls-cert/--tls-key or put a TLS proxy in front")
    settings = FleetSettings(
        dsn=args.dsn,
        token=token,
        host=args.host,
        statement_timeout_ms=args.statement_timeout_ms,
        pool_min_size=args.pool_min_size,
        pool_max_size=args.pool_max_size,
        pool_timeout=args.pool_timeout,
        rollup_every_seconds=args.rollup_every_seconds,
        settle_seconds=args.settle_seconds,
        metrics_port=args.metrics_port,
    )
    if args.metrics_port is not None and args.metrics_port == args.port:
        raise AuthConfigError("--metrics-port must differ from --port")
    asyncio.run(_serve_until_signalled(settings, args.port, tls, not args.no_access_log))


async def _serve_until_signalled(
    settings: FleetSettings, port: int, tls: ssl.SSLContext | None, with_access_log: bool
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # The edge's listener: JSON answers to malformed requests, no address or client bytes in a log.
    limits = listener.ConnectionLimits(settings.max_connections, 0, settings.tls_handshake_timeout)
    site = await listener.start_site(
        make_app(settings), settings.host, port, limits, settings.header_timeout, tls, False, with_access_log
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
    except AuthConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (rollup.RollupMissing, psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
