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
import ssl
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg_pool

import telemetry_protocol as protocol
from telemetry_collector import country, listener, operator_metrics, releases, storage
from telemetry_collector.config import Settings
from telemetry_collector.fleet import cli as fleet_cli
from telemetry_collector.geo import CountryLookup, load_lookup

DSN_ENV = "TELEMETRY_COLLECTOR_DSN"


class UsageError(ValueError):
    pass


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

    defaults = Settings(dsn="")
    serve = sub.add_parser(
        "serve", parents=[common], help="run the public edge: POST /v1/report, GET /healthz and the landing page GET /"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port with SO_REUSEPORT (1); per-client limits are per process",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=defaults.max_body_bytes,
        help=f"largest report accepted, in bytes ({defaults.max_body_bytes}); larger ones get 413",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=defaults.header_timeout,
        help=f"seconds for a request's headers to arrive, and an idle connection's life ({defaults.header_timeout:g})",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=defaults.body_timeout,
        help=f"seconds for the body to arrive once the headers are in ({defaults.body_timeout:g}); then 408",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        help=f"open connections per process ({defaults.max_connections}); past it a 503 and close",
    )
    serve.add_argument(
        "--max-connections-per-address",
        type=int,
        default=defaults.max_connections_per_address,
        help=f"open connections per client address (an IPv6 /64) and process "
        f"({defaults.max_connections_per_address}); past it a 429 and close; off with --trust-x-forwarded-for",
    )
    serve.add_argument(
        "--max-connections-per-network",
        type=int,
        default=defaults.max_connections_per_network,
        help=f"open connections per IPv6 /48 and process ({defaults.max_connections_per_network}); "
        "past it a 429 and close; off with --trust-x-forwarded-for",
    )
    serve.add_argument(
        "--tls-handshake-timeout",
        type=float,
        default=defaults.tls_handshake_timeout,
        help=f"seconds for a TLS client to complete its handshake ({defaults.tls_handshake_timeout:g}); then close",
    )
    serve.add_argument(
        "--rate-limit-burst",
        type=int,
        default=defaults.rate_limit_burst,
        help=f"reports one db_uuid may send at once ({defaults.rate_limit_burst}); then 429",
    )
    serve.add_argument(
        "--rate-limit-per-hour",
        type=float,
        default=defaults.rate_limit_per_hour,
        help=f"reports one db_uuid may send per hour after its burst ({defaults.rate_limit_per_hour:g})",
    )
    serve.add_argument(
        "--new-databases-per-address",
        type=int,
        default=defaults.new_databases_per_address_per_day,
        help=f"distinct db_uuids one source address may report per UTC day "
        f"({defaults.new_databases_per_address_per_day}); then 429",
    )
    serve.add_argument(
        "--new-databases-per-network",
        type=int,
        default=defaults.new_databases_per_network_per_day,
        help=f"distinct db_uuids one IPv6 /48 may report per UTC day "
        f"({defaults.new_databases_per_network_per_day}); then 429",
    )
    serve.add_argument(
        "--release-cache-seconds",
        type=float,
        default=defaults.release_cache_seconds,
        help=f"how soon `release add` reaches the answers ({defaults.release_cache_seconds:g})",
    )
    serve.add_argument(
        "--pool-min-size",
        type=int,
        default=defaults.pool_min_size,
        help=f"PostgreSQL connections kept open per process ({defaults.pool_min_size})",
    )
    serve.add_argument(
        "--pool-max-size",
        type=int,
        default=defaults.pool_max_size,
        help=f"PostgreSQL connections at most per process ({defaults.pool_max_size})",
    )
    serve.add_argument(
        "--writers",
        type=int,
        default=defaults.writers,
        help=f"concurrent batched writes per process, each one COPY and one commit ({defaults.writers})",
    )
    serve.add_argument(
        "--geo-lookup",
        metavar="MODULE:NAME",
        help="country lookup: a CountryLookup object or factory; `none` for no country "
        "(default: the Regional Internet Registries' allocations shipped in iptocc)",
    )
    serve.add_argument(
        "--trust-x-forwarded-for",
        action="store_true",
        help="behind a reverse proxy: take the client's address (for the limits and the country only) "
        "from the last X-Forwarded-For entry",
    )
    serve.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate chain ...")
    serve.add_argument("--tls-key", metavar="PEM", help="... and this private key")
    serve.add_argument("--no-access-log", action="store_true", help="no per-request log lines")
    _add_public_face(serve, defaults)
    serve.add_argument(
        "--event-loop",
        choices=listener.EVENT_LOOPS,
        default=listener.EVENT_LOOPS[0],
        help="uvloop (libuv, less CPU per request; the default) or Python's own asyncio loop",
    )
    serve.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="least severe log lines written (INFO); none of them holds a client's address",
    )
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


def _add_public_face(serve: argparse.ArgumentParser, defaults: Settings) -> None:
    """What the landing page states, and the operator's metrics listener."""
    serve.add_argument("--operator-name", default="", help="who runs this collector, stated on the landing page")
    serve.add_argument(
        "--operator-contact", default="", help="where to ask about it or for erasure (an e-mail address or URL)"
    )
    serve.add_argument(
        "--retention-days",
        type=int,
        default=defaults.retention_days,
        help=f"how long reports are kept, as the landing page states it ({defaults.retention_days}); "
        "keep it equal to prune --older-than",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics (loopback only; default: none)",
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
    # Built here, before `--workers` forks: the table is loaded once and shared.
    geo: CountryLookup = load_lookup(args.geo_lookup) if args.geo_lookup else country.default_lookup()
    settings = Settings(
        dsn=args.dsn,
        max_body_bytes=args.max_body_bytes,
        rate_limit_burst=args.rate_limit_burst,
        rate_limit_per_hour=args.rate_limit_per_hour,
        new_databases_per_address_per_day=args.new_databases_per_address,
        new_databases_per_network_per_day=args.new_databases_per_network,
        release_cache_seconds=args.release_cache_seconds,
        pool_min_size=args.pool_min_size,
        pool_max_size=args.pool_max_size,
        writers=args.writers,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        max_connections_per_address=args.max_connections_per_address,
        max_connections_per_network=args.max_connections_per_network,
        tls_handshake_timeout=args.tls_handshake_timeout,
        trust_x_forwarded_for=args.trust_x_forwarded_for,
        operator_name=args.operator_name,
        operator_contact=args.operator_contact,
        retention_days=args.retention_days,
        metrics_port=args.metrics_port,
    )
    if args.metrics_port is not None and args.metrics_port == args.port:
        raise UsageError("--metrics-port must differ from --port: metrics are never served on the public port")
    if not (args.operator_name and args.operator_contact):
        logging.getLogger(__name__).warning(
            "the landing page names no operator: give --operator-name and --operator-contact"
        )
    tls: ssl.SSLContext | None = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise UsageError("--tls-cert and --tls-key go together")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    multiprocess_dir = operator_metrics.use_multiprocess_dir() if args.metrics_port and args.workers > 1 else None
    try:
        return listener.serve(
            settings, geo, args.host, args.port, tls, args.workers, not args.no_access_log, args.event_loop
        )
    finally:
        if multiprocess_dir is not None:
            operator_metrics.remove_multiprocess_dir(multiprocess_dir)


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
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (releases.ReleaseError, storage.SchemaMissing, psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
