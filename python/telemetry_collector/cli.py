"""Command line: migrate, release add|remove|eol|list, serve, prune, erase; rollup and serve-fleet (the vendor side).

The DSN comes from --dsn or the TELEMETRY_COLLECTOR_DSN environment variable
(libpq syntax, e.g. "host=/var/run/postgresql dbname=telemetry").
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import re
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg_pool

import telemetry_protocol as protocol
from telemetry_collector import country, listener, operator_metrics, releases, storage
from telemetry_collector.config import Settings
from telemetry_collector.fleet import cli as fleet_cli
from telemetry_collector.geo import CountryLookup, load_lookup
from telemetry_collector.options import ConfigError, add_options, from_args, option

DSN_ENV = "TELEMETRY_COLLECTOR_DSN"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True, kw_only=True)
class EdgeProcess:
    """`serve`'s options for its processes, beside the service's Settings."""

    workers: int = option(
        1, "processes sharing the port with SO_REUSEPORT ({default}); per-client limits are per process"
    )
    geo_lookup: str | None = option(
        None,
        "country lookup: a CountryLookup object or factory; `none` for no country "
        "(default: the Regional Internet Registries' allocations shipped in iptocc)",
        metavar="MODULE:NAME",
    )
    event_loop: str = option(
        listener.EVENT_LOOPS[0],
        "uvloop (libuv, less CPU per request; the default) or Python's own asyncio loop",
        choices=listener.EVENT_LOOPS,
    )
    log_level: str = option(
        "INFO", "least severe log lines written ({default}); none of them holds a client's address", choices=LOG_LEVELS
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telemetry-collector", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=f"PostgreSQL DSN (default: ${DSN_ENV})")
    sub = parser.add_subparsers(dest="command", required=True)

    migrate = sub.add_parser("migrate", parents=[common], help="create or update the schema and partitions")
    migrate.add_argument("--months-ahead", type=int, default=1, help="partitions after the current month (1)")
    migrate.add_argument("--months-back", type=int, default=0, help="partitions before it, to import old reports (0)")

    _release_commands(sub, common)

    prune = sub.add_parser("prune", parents=[common], help="drop the monthly partitions older than an age")
    prune.add_argument(
        "--older-than",
        required=True,
        type=_age,
        metavar="AGE",
        help="drop a month once all of it is older than this: 400d, 13m (months of 30 days), 2y, 52w",
    )
    prune.add_argument("--dry-run", action="store_true", help="only print what would be dropped")
    erase = sub.add_parser("erase", parents=[common], help="delete every report of one database (erasure request)")
    erase.add_argument("--db-uuid", required=True, type=_uuid, help="the database's db_uuid (SELECT get_report())")

    serve = sub.add_parser(
        "serve", parents=[common], help="run the public edge: POST /v1/report, GET /healthz and the landing page GET /"
    )
    add_options(serve, Settings)
    add_options(serve, EdgeProcess)
    fleet_cli.add_commands(sub, common)
    return parser


def _release_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """release add|remove|eol|list."""
    release = sub.add_parser("release", help="manage the release list")
    rsub = release.add_subparsers(dest="release_command", required=True)
    product = argparse.ArgumentParser(add_help=False)
    product.add_argument(
        "--product",
        default=protocol.PRODUCT_SELF,
        help=f"whose release: {protocol.PRODUCT_SELF} (the default), {protocol.PRODUCT_POSTGRESQL}, "
        "or an extension's name as reports carry it in extensions.versions",
    )
    add = rsub.add_parser("add", parents=[common, product], help="list a new release")
    add.add_argument("version")
    add.add_argument("--security", action="store_true", help="the release fixes security issues")
    add.add_argument("--notes-url", metavar="URL", help="its release notes (https)")
    remove = rsub.add_parser("remove", parents=[common, product], help="withdraw a release")
    remove.add_argument("version")
    eol = rsub.add_parser(
        "eol", parents=[common, product], help="declare a release series end of life (0.1: every 0.1.x; 13: 13.x)"
    )
    eol.add_argument("series")
    eol.add_argument("--withdraw", action="store_true", help="the series is supported again")
    rsub.add_parser(
        "list", parents=[common], help="releases by product, newest first; * marks the newest one reports are told"
    )


_AGE = re.compile(r"([0-9]+)\s*(d|w|m|y)")
_AGE_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}


def _age(text: str) -> dt.timedelta:
    match = _AGE.fullmatch(text.strip())
    if match is None or int(match[1]) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age such as 400d, 13m, 2y or 52w")
    return dt.timedelta(days=int(match[1]) * _AGE_DAYS[match[2]])


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UUID") from None


async def _connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True)


async def _migrate(dsn: str, months_ahead: int, months_back: int) -> None:
    async with await _connect(dsn) as conn:
        applied = await storage.migrate(conn, months_ahead, months_back)
        partitions = await storage.list_partitions(conn)
    print(f"schema steps applied: {', '.join(map(str, applied)) or 'none (up to date)'}")
    print(f"partitions: {', '.join(partitions)}")


async def _release(dsn: str, args: argparse.Namespace) -> None:
    command = args.release_command
    async with await _connect(dsn) as conn:
        if command == "add":
            added = await releases.add_release(conn, args.version, args.product, args.security, args.notes_url)
            print(f"added {_product_prefix(args.product)}{added}{' (security)' if args.security else ''}")
        elif command == "remove":
            removed = await releases.remove_release(conn, args.version, args.product)
            print(f"removed {_product_prefix(args.product)}{removed}")
        elif command == "eol":
            series = await releases.declare_end_of_life(conn, args.series, args.product, args.withdraw)
            verb = "supported again" if args.withdraw else "end of life"
            print(f"{args.product} {series}.x: {verb}")
        else:
            await _list_releases(conn)


def _product_prefix(product: str) -> str:
    return "" if product == protocol.PRODUCT_SELF else f"{product} "


async def _list_releases(conn: psycopg.AsyncConnection[Any]) -> None:
    listed = await releases.list_releases(conn, product=None)
    ended = await releases.list_end_of_life(conn)
    for product in dict.fromkeys([r.product for r in listed] + [e.product for e in ended]):
        of_product = [r for r in listed if r.product == product]
        newest = releases.newest(r.version for r in of_product)
        eol = ", ".join(f"{e.series}.x" for e in ended if e.product == product)
        print(f"{product}{f' (end of life: {eol})' if eol else ''}")
        for release in of_product:
            mark = "*" if release.version == newest else " "
            flags = f"{'security' if release.security else '':<8}  {release.notes_url or '-'}"
            print(f"{mark} {release.version:<20} {flags}  added {release.added_at:%Y-%m-%d %H:%M %Z}")
    if not listed and not ended:
        print("no releases listed")


async def _prune(dsn: str, older_than: dt.timedelta, dry_run: bool) -> None:
    async with await _connect(dsn) as conn:
        dropped = await storage.prune(conn, older_than, dry_run)
    verb = "would drop" if dry_run else "dropped"
    print(f"{verb}: {', '.join(dropped)}" if dropped else "nothing to drop")


async def _erase(dsn: str, db_uuid: uuid.UUID) -> None:
    async with await _connect(dsn) as conn:
        count = await storage.erase(conn, db_uuid)
    print(f"erased {count} report{'s' if count != 1 else ''} of {db_uuid}")


def _serve(args: argparse.Namespace) -> int:
    process = from_args(EdgeProcess, args)
    settings = from_args(Settings, args, dsn=args.dsn)
    settings.check()
    # Built here, before `--workers` forks: the table is loaded once and shared.
    geo: CountryLookup = load_lookup(process.geo_lookup) if process.geo_lookup else country.default_lookup()
    if not (settings.operator_name and settings.operator_contact):
        logging.getLogger(__name__).warning(
            "the landing page names no operator: give --operator-name and --operator-contact"
        )
    tls = settings.tls_context()
    metrics_dir = operator_metrics.use_multiprocess_dir() if settings.metrics_port and process.workers > 1 else None
    try:
        return listener.serve(
            settings, geo, settings.host, settings.port, tls, process.workers, settings.access_log, process.event_loop
        )
    finally:
        if metrics_dir is not None:
            operator_metrics.remove_multiprocess_dir(metrics_dir)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.dsn:
        print(f"error: give --dsn or set {DSN_ENV}", file=sys.stderr)
        return 2
    if args.command in fleet_cli.COMMANDS:
        return fleet_cli.run(args)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(args.dsn, args.months_ahead, args.months_back))
        elif args.command == "release":
            asyncio.run(_release(args.dsn, args))
        elif args.command == "prune":
            asyncio.run(_prune(args.dsn, args.older_than, args.dry_run))
        elif args.command == "erase":
            asyncio.run(_erase(args.dsn, args.db_uuid))
        else:
            return _serve(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (releases.ReleaseError, storage.SchemaMissing, psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
