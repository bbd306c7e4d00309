"""The vendor service: the fleet page, its JSON and CSV exports, read from roll-ups only.

GET /                        the fleet page (static HTML + JS; uPlot and SVG charts)
GET /v1/fleet?days=N         the fleet views as JSON (telemetry_collector.fleet.views)
GET /v1/export/activity.csv  per day: reporting, active 7/30 days, new, gone quiet, up to date
GET /v1/export/daily.csv     per day, dimension and value: databases that reported that day
GET /healthz                 200 when PostgreSQL answers (no authentication: says nothing else)

It runs as its own process (`serve-fleet`) with its own pool, whose sessions
are read-only and carry a statement timeout, so a vendor read can neither
write nor take connections or time from ingestion; a whole read's waits (for
a pooled connection and for each of its queries) are cut at that timeout too.
The work on the rows after the last query is not: asyncio cannot interrupt
work that does not wait, so that part is bounded by the size of the roll-ups
it reads (a cap on distinct values per day), not by the timeout.  Its listener is the
edge's (telemetry_collector.listener): JSON answers to malformed requests, no
address in a log.  Without a token, only requests whose Host header names the
loopback address it listens on (or localhost) are answered: a page elsewhere
cannot reach it by DNS rebinding.  Query parameters are checked as ASCII digits
and nothing a client sent is echoed.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import ipaddress
import logging
import re
import socket
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import psycopg
import psycopg_pool
from aiohttp import web

from telemetry_collector import operator_metrics
from telemetry_collector import web as shared
from telemetry_collector.fleet import rollup, views
from telemetry_collector.fleet.auth import REALM, TokenCheck
from telemetry_collector.fleet.config import FleetSettings

log = logging.getLogger(__name__)

APPLICATION_NAME = "telemetry_vendor"

SETTINGS = web.AppKey("settings", FleetSettings)
CHECK = web.AppKey("check", TokenCheck)
HOSTS = web.AppKey("hosts", frozenset[str])

_STATIC = {
    "/": ("index.html", "text/html"),
    "/fleet.js": ("fleet.js", "text/javascript"),
    "/fleet.css": ("fleet.css", "text/css"),
    "/uplot/uPlot.iife.min.js": ("third_party/uplot/uPlot.iife.min.js", "text/javascript"),
    "/uplot/uPlot.min.css": ("third_party/uplot/uPlot.min.css", "text/css"),
}
# The page loads nothing but its own files and /v1/fleet.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# A spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


_DAYS = re.compile(r"[0-9]{1,5}")  # ASCII digits only: str.isdigit() also takes "²"


def _days(request: web.Request) -> int:
    text = request.query.get("days", str(views.DEFAULT_DAYS))
    if not _DAYS.fullmatch(text) or not 1 <= int(text) <= views.MAX_DAYS:
        raise web.HTTPBadRequest(reason=f"days must be a whole number from 1 to {views.MAX_DAYS}")
    return int(text)


def _read_timeout(request: web.Request) -> float:
    """A whole read's waits (the pool, its queries) share the statement timeout, not each query its own;
    work on the rows that does not wait cannot be cut by it."""
    return request.app[SETTINGS].statement_timeout_ms / 1000


@contextlib.asynccontextmanager
async def _session(request: web.Request) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A pooled read-only session for one read, whose waits together are cut at the statement timeout."""
    async with asyncio.timeout(_read_timeout(request)), request.app[shared.POOL].connection() as conn:
        yield conn


async def _fleet(request: web.Request) -> dict[str, Any]:
    days = _days(request)
    async with _session(request) as conn:
        return await views.fleet(conn, days)


async def get_fleet(request: web.Request) -> web.Response:
    return web.json_response(await _fleet(request))


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(name: str, header: list[str], rows: list[list[Any]]) -> web.Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


async def get_activity_csv(request: web.Request) -> web.Response:
    data = await _fleet(request)
    a = data["activity"]
    rows = [
        [
            day,
            a["reporting"][i],
            a["active_7_days"][i],
            a["active_30_days"][i],
            a["new"][i],
            a["gone_quiet"][i],
            data["up_to_date"]["share"][i],
        ]
        for i, day in enumerate(a["days"])
    ]
    header = ["day", "reporting", "active_7_days", "active_30_days", "new", "gone_quiet", "up_to_date_share"]
    return _csv("fleet-activity.csv", header, rows)


async def get_daily_csv(request: web.Request) -> web.Response:
    days = _days(request)
    async with _session(request) as conn:
        cur = await conn.execute(
            """SELECT d.day, d.dimension, d.value, d.databases
                 FROM collector.rollup_daily d, collector.rollup_state s
                WHERE d.day > (s.watermark AT TIME ZONE 'UTC')::date - %s
                ORDER BY d.day, d.dimension, d.databases DESC, d.value""",
            (days,),
        )
        found = await cur.fetchall()
    rows = [
        [day.isoformat(), "databases" if dim == rollup.ALL else dim, views.value_label(dim, value), n]
        for day, dim, value, n in found
    ]
    return _csv("fleet-daily.csv", ["day", "dimension", "value", "databases"], rows)


async def get_static(request: web.Request) -> web.Response:
    name, content_type = _STATIC[request.path]
    text = resources.files("telemetry_collector.fleet").joinpath("static", name).read_text(encoding="utf-8")
    return web.Response(
        text=text,
        content_type=content_type,
        charset="utf-8",
        headers={"Content-Security-Policy": PAGE_CSP},
    )


def loopback_names(host: str) -> frozenset[str]:
    """The Host names a loopback listener on `host` answers to: localhost, `host` and its addresses."""
    names = {"localhost", _host_name(host)}
    with contextlib.suppress(OSError):
        names |= {_host_name(str(info[4][0]).split("%")[0]) for info in socket.getaddrinfo(host, None)}
    return frozenset(names)


def _host_name(text: str) -> str:
    """A Host header's name, without port or brackets, lower case, without a trailing dot."""
    text = text.strip().lower()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":")[0]
    with contextlib.suppress(ValueError):
        text = str(ipaddress.ip_address(text))
    return text.rstrip(".")


@web.middleware
async def check_host(request: web.Request, handler: shared.Handler) -> web.StreamResponse:
    """Without a token: the Host must name this loopback service (a rebound name is another Host)."""
    hosts = request.app.get(HOSTS)
    host = request.headers.get("Host")
    if hosts is not None and host is not None and _host_name(host) not in hosts:
        return shared.json_error(
            421, "misdirected_request", "this service answers only to localhost and the address it listens on"
        )
    return await handler(request)


@web.middleware
async def authenticate(request: web.Request, handler: shared.Handler) -> web.StreamResponse:
    check = request.app.get(CHECK)
    if check is not None and request.path != "/healthz" and not check.allows(request.headers.get("Authorization")):
        return shared.json_error(
            401,
            "unauthorized",
            "give the vendor token (Bearer, or as the Basic password)",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )
    return await handler(request)


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(_SECURITY_HEADERS)


_ERRORS = shared.error_middleware(
    shared.Failures(
        log,
        # QueryCanceled (the statement timeout) is an OperationalError; TimeoutError is the whole read's.
        unavailable=(psycopg_pool.PoolTimeout, psycopg.OperationalError, TimeoutError),
        unavailable_log="fleet read failed",
        unavailable_message="the roll-ups could not be read in time; retry later",
        internal_code="internal",
        internal_message="internal error",
    )
)


async def _roll_up_periodically(settings: FleetSettings) -> None:
    """The roll-up on its own connection (writes; no statement timeout), never the readers' pool."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                settings.dsn, autocommit=True, application_name="telemetry_rollup"
            ) as conn:
                result = await rollup.run(conn, settings.settle_seconds)
            if not result.skipped and result.database_days:
                log.info(
                    "rolled up %d database-days (%d databases) in %.1f s",
                    result.database_days,
                    result.databases,
                    result.seconds,
                )
        except Exception:
            log.exception("roll-up failed; retrying later")
        await asyncio.sleep(settings.rollup_every_seconds)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    options = f"-c statement_timeout={int(settings.statement_timeout_ms)} -c default_transaction_read_only=on"
    async with shared.open_pool(settings, APPLICATION_NAME, options) as pool:
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT to_regclass('collector.rollup_state') IS NOT NULL")
            row = await cur.fetchone()
            if not row or not row[0]:
                raise rollup.RollupMissing(
                    "the roll-up tables are missing: run `python -m telemetry_collector migrate`"
                )
        app[shared.POOL] = pool
        rolling = [_roll_up_periodically(settings)] if settings.rollup_every_seconds > 0 else []
        async with shared.background(*rolling):
            yield


def make_app(settings: FleetSettings) -> web.Application:
    app = web.Application(middlewares=[_ERRORS, check_host, authenticate], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    if settings.token is not None:
        app[CHECK] = TokenCheck(settings.token)
    else:
        app[HOSTS] = loopback_names(settings.host)
    app.cleanup_ctx.append(_lifecycle)
    app.on_response_prepare.append(_add_security_headers)
    operator_metrics.attach_vendor(app, settings.metrics_port)
    app.router.add_get("/v1/fleet", get_fleet)
    app.router.add_get("/v1/export/activity.csv", get_activity_csv)
    app.router.add_get("/v1/export/daily.csv", get_daily_csv)
    app.router.add_get("/healthz", shared.get_health)
    for path in _STATIC:
        app.router.add_get(path, get_static)
    return app
