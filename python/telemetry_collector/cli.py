"""Command line: migrate, release add|remove|list, serve; rollup and serve-vendor (the vendor side).

The DSN comes from --dsn or the TELEMETRY_COLLECTOR_DSN environment variable
(libpq syntax, e.g. "host=/var/run/postgresql dbname=telemetry").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg_pool
from aiohttp import web

from telemetry_collector import releases, storage
from telemetry_collector.app import ACCESS_LOG_FORMAT, make_app
from telemetry_collector.config import Settings
from telemetry_collector.geo import CountryLookup, load_lookup
from telemetry_collector.vendor import cli as vendor_cli

DSN_ENV = "TELEMETRY_COLLECTOR_DSN"


class UsageError(ValueError):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m telemetry_collector", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=f"PostgreSQL DSN (default: ${DSN_ENV})")
    sub = parser.add_subparsers(dest="command", required=True)

    migrate = sub.add_parser("migrate", parents=[common], help="create or update the schema and partitions")
    migrate.add_argument("--months-ahead", type=int, default=1, help="partitions after the current month (1)")
    migrate.add_argument("--months-back", type=int, default=0, help="partitions before it, to import old reports (0)")

    release = sub.add_parser("release", help="manage the release list")
    rsub = release.add_subparsers(dest="release_command", required=True)
    add = rsub.add_parser("add", parents=[common], help="list a new release")
    add.add_argument("version")
    remove = rsub.add_parser("remove", parents=[common], help="withdraw a release")
    remove.add_argument("version")
    rsub.add_parser("list", parents=[common], help="releases, newest first; * marks the one reports are told")

    defaults = Settings(dsn="")
    serve = sub.add_parser("serve", parents=[common], help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    serve.add_argument("--rate-limit-burst", type=int, default=defaults.rate_limit_burst)
    serve.add_argument("--rate-limit-per-hour", type=float, default=defaults.rate_limit_per_hour)
    serve.add_argument("--release-cache-seconds", type=float, default=defaults.release_cache_seconds)
    serve.add_argument("--pool-min-size", type=int, default=defaults.pool_min_size)
    serve.add_argument("--pool-max-size", type=int, default=defaults.pool_max_size)
    serve.add_argument(
        "--geo-lookup", metavar="MODULE:NAME",
        help="country lookup: a CountryLookup object or factory (default: none, no country stored)",
    )
    serve.add_argument(
        "--trust-x-forwarded-for", action="store_true",
        help="behind a reverse proxy: take the client's address (for the country only) from X-Forwarded-For",
    )
    serve.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain ...")
    serve.add_argument("--tls-key", metavar="PEM", help="... and this private key")
    serve.add_argument("--no-access-log", action="store_true", help="no per-request log lines")
    vendor_cli.add_commands(sub, common)
    return parser


async def _connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True)


async def _migrate(dsn: str, months_ahead: int, months_back: int) -> None:
    async with await _connect(dsn) as conn:
        applied = await storage.migrate(conn, months_ahead, months_back)
        partitions = await storage.list_partitions(conn)
    print(f"schema steps applied: {', '.join(map(str, applied)) or 'none (up to date)'}")
    print(f"partitions: {', '.join(partitions)}")


async def _release(dsn: str, command: str, version: str | None) -> None:
    async with await _connect(dsn) as conn:
        if command == "add":
            assert version is not None
            print(f"added {await releases.add_release(conn, version)}")
        elif command == "remove":
            assert version is not None
            print(f"removed {await releases.remove_release(conn, version)}")
        else:
            listed = await releases.list_releases(conn)
            newest = releases.newest(r.version for r in listed)
            for release in listed:
                mark = "*" if release.version == newest else " "
                print(f"{mark} {release.version:<20} added {release.added_at:%Y-%m-%d %H:%M %Z}")
            if not listed:
                print("no releases listed")


def _serve(args: argparse.Namespace) -> None:
    geo: CountryLookup | None = load_lookup(args.geo_lookup) if args.geo_lookup else None
    settings = Settings(
        dsn=args.dsn,
        max_body_bytes=args.max_body_bytes,
        rate_limit_burst=args.rate_limit_burst,
        rate_limit_per_hour=args.rate_limit_per_hour,
        release_cache_seconds=args.release_cache_seconds,
        pool_min_size=args.pool_min_size,
        pool_max_size=args.pool_max_size,
        trust_x_forwarded_for=args.trust_x_forwarded_for,
    )
    tls: ssl.SSLContext | None = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise UsageError("--tls-cert and --tls-key go together")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    web.run_app(
        make_app(settings, geo),
        host=args.host,
        port=args.port,
        access_log=None if args.no_access_log else logging.getLogger("aiohttp.access"),
        access_log_format=ACCESS_LOG_FORMAT,
        ssl_context=tls,
        print=lambda text: print(text, flush=True),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.dsn:
        print(f"error: give --dsn or set {DSN_ENV}", file=sys.stderr)
        return 2
    if args.command in vendor_cli.COMMANDS:
        return vendor_cli.run(args)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(args.dsn, args.months_ahead, args.months_back))
        elif args.command == "release":
            asyncio.run(_release(args.dsn, args.release_command, getattr(args, "version", None)))
        else:
            _serve(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (releases.ReleaseError, storage.SchemaMissing, psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
