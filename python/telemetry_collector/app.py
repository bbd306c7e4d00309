"""The public edge: an aiohttp application that takes reports in and nothing else.

POST /v1/report  a report in, the version answer out (telemetry_protocol)
GET  /healthz    200 when PostgreSQL answers
GET  /           the landing page: what this is, who runs it, what a report holds (landing.py)

Every other answer is JSON, whatever the request.  The client's address is used for
the per-address new-database budget (as a keyed hash, in memory) and for the
optional country lookup, and goes nowhere else: not into a table, not into a
log line (listener.py keeps aiohttp's own logs free of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import psycopg_pool
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from telemetry_collector import advisories, landing, operator_metrics, storage
from telemetry_collector.config import Settings
from telemetry_collector.country import default_lookup
from telemetry_collector.geo import CountryLookup, coarse_country
from telemetry_collector.ingest import IngestError, check_content_type, parse_report, read_capped
from telemetry_collector.ratelimit import NewDatabaseBudget, RateLimiter, without_port
from telemetry_collector.validation import Allowlist
from telemetry_collector.writer import BatchWriter

log = logging.getLogger(__name__)

DB_RETRY_AFTER_SECONDS = 30

SETTINGS = web.AppKey("settings", Settings)
GEO = web.AppKey("geo", CountryLookup)
ALLOWLIST = web.AppKey("allowlist", Allowlist)
LIMITER = web.AppKey("limiter", RateLimiter)
BUDGET = web.AppKey("budget", NewDatabaseBudget)
COUNTERS = web.AppKey("counters", dict[str, int])
POOL = web.AppKey("pool", psycopg_pool.AsyncConnectionPool)
WRITER = web.AppKey("writer", BatchWriter)
ANSWERS = web.AppKey("answers", advisories.AnswerCache)


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


class MalformedForwardedFor(ValueError):
    """The trusted proxy's X-Forwarded-For ends with an empty entry: no client to key on."""


def client_address(request: web.Request, trust_x_forwarded_for: bool) -> str | None:
    """The client's address, without a port a proxy may have appended (ratelimit.without_port)."""
    if trust_x_forwarded_for:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        if forwarded:
            last = without_port(forwarded[-1].split(",")[-1])
            if not last:
                raise MalformedForwardedFor("the last X-Forwarded-For entry is empty")
            return last
    return request.remote


async def post_report(request: web.Request) -> web.Response:
    app = request.app
    settings = app[SETTINGS]
    try:
        check_content_type(request.content_type)
        async with asyncio.timeout(settings.body_timeout):
            body = await read_capped(request.content, request.content_length, settings.max_body_bytes)
        report = parse_report(body, app[ALLOWLIST])
    except IngestError as exc:
        return web.json_response(exc.as_json(), status=exc.status)
    except TimeoutError:
        return json_error(
            408,
            "request_timeout",
            f"the body did not arrive within {settings.body_timeout:g} s",
            headers={"Connection": "close"},
        )
    except (ConnectionError, RequestPayloadError):
        # The client went away or broke the body off: nobody reads this answer, but the log says what happened.
        return json_error(
            400, "incomplete_body", "the body ended before its declared length", headers={"Connection": "close"}
        )
    if report.dropped_keys:
        app[operator_metrics.EDGE].dropped_keys.inc(report.dropped_keys)
        app[COUNTERS]["dropped_keys"] += report.dropped_keys
        app[COUNTERS]["reports_with_dropped_keys"] += 1

    # The address is used here and for the country, and goes no further.
    try:
        address = client_address(request, settings.trust_x_forwarded_for)
    except MalformedForwardedFor as exc:
        return json_error(400, "bad_forwarded_for", str(exc))
    if not app[BUDGET].allow(address, report.db_uuid.int):
        app[COUNTERS]["over_new_database_budget"] += 1
        return json_error(
            429,
            "rate_limited",
            "too many new databases from this address today; retry tomorrow",
            headers={"Retry-After": str(_seconds_to_utc_midnight())},
        )
    retry_after = app[LIMITER].acquire(str(report.db_uuid))
    if retry_after is not None:
        return json_error(
            429,
            "rate_limited",
            f"too many reports from this database; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
    country = coarse_country(app[GEO], address)
    del address

    await app[WRITER].store(
        (
            report.db_uuid,
            report.exported_db_uuid,
            report.extension_version,
            report.postgresql_version,
            report.os_name,
            country,
            report.json_text,
        )
    )
    answer = await app[ANSWERS].answer(report.extension_version, report.postgresql_version, report.extension_versions)
    if answer is None:
        return json_error(
            503,
            "no_release",
            "no release is listed yet",
            headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
        )
    return web.Response(body=answer, content_type="application/json", charset="utf-8")


def _seconds_to_utc_midnight() -> int:
    return max(1, 86400 - int(time.time()) % 86400)


async def get_health(request: web.Request) -> web.Response:
    async with request.app[POOL].connection(timeout=request.app[SETTINGS].pool_timeout) as conn:
        await conn.execute("SELECT 1")
    return web.json_response({"status": "ok"})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer but the landing page JSON: aiohttp's 404/405/413, storage outages (503), and our own bugs (500)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except (psycopg_pool.PoolTimeout, psycopg.OperationalError) as exc:
        log.warning("storage unavailable: %s", type(exc).__name__)
        return _storage_unavailable()
    except psycopg.Error as exc:
        # The message may quote the report; the SQLSTATE says enough.
        log.error("storage refused a report: %s (SQLSTATE %s)", type(exc).__name__, exc.sqlstate)
        return _storage_unavailable()
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("internal error answering %s %s", request.method, route_of(request))
        return json_error(500, "internal_error", "the collector failed; this is its bug, not the report's")


def _storage_unavailable() -> web.Response:
    return json_error(
        503,
        "storage_unavailable",
        "storage is unavailable; retry later",
        headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
    )


def route_of(request: web.BaseRequest) -> str:
    """The route a request matched, never the path the client typed ("-" for none)."""
    try:
        resource = request.match_info.route.resource  # type: ignore[attr-defined]
    except (AssertionError, AttributeError):  # a request aiohttp could not parse has no match_info
        return "-"
    return resource.canonical if resource is not None else "-"


async def _log_counters(app: web.Application) -> None:
    """One line a minute with what was dropped or refused (counts only, no client data)."""
    counters = app[COUNTERS]
    while True:
        await asyncio.sleep(app[SETTINGS].counters_log_seconds)
        if any(counters.values()):
            log.info(
                "last %gs: %s",
                app[SETTINGS].counters_log_seconds,
                ", ".join(f"{key} {value}" for key, value in sorted(counters.items())),
            )
            for key in counters:
                counters[key] = 0


async def _keep_partitions(app: web.Application) -> None:
    while True:
        await asyncio.sleep(app[SETTINGS].partition_check_seconds)
        try:
            async with app[POOL].connection() as conn:
                created = await storage.ensure_partitions(conn, months_ahead=1)
            if created:
                log.info("created partitions %s", ", ".join(created))
        except Exception as exc:
            log.warning("partition check failed (%s); retrying later", type(exc).__name__)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
        settings.dsn,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        kwargs={"autocommit": True, "application_name": "telemetry_collector"},
        open=False,
        name="telemetry_collector",
    )
    await pool.open(wait=True, timeout=30)
    try:
        async with pool.connection() as conn:
            await storage.check_schema(conn)
            await storage.ensure_partitions(conn, months_ahead=1)
        app[POOL] = pool
        app[WRITER] = BatchWriter(
            pool, settings.pool_timeout, flushers=settings.writers, observe=app[operator_metrics.EDGE].observe_write
        )

        async def load_book() -> advisories.Book:
            async with pool.connection(timeout=settings.pool_timeout) as conn:
                return await advisories.load_book(conn)

        app[ANSWERS] = advisories.AnswerCache(load_book, settings.release_cache_seconds)
        tasks = [asyncio.create_task(_keep_partitions(app)), asyncio.create_task(_log_counters(app))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app[WRITER].close()
    finally:
        await pool.close()


def make_app(settings: Settings, geo: CountryLookup | None = None) -> web.Application:
    # client_max_size also caps what aiohttp itself would buffer for other routes.
    app = web.Application(middlewares=[errors], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[GEO] = geo if geo is not None else default_lookup()
    app[ALLOWLIST] = Allowlist.load()
    app[LIMITER] = RateLimiter(
        settings.rate_limit_burst, settings.rate_limit_per_hour, max_keys=settings.rate_limit_max_keys
    )
    app[BUDGET] = NewDatabaseBudget(
        settings.new_databases_per_address_per_day,
        per_network_per_day=settings.new_databases_per_network_per_day,
    )
    app[COUNTERS] = {"dropped_keys": 0, "reports_with_dropped_keys": 0, "over_new_database_budget": 0}
    app.cleanup_ctx.append(_lifecycle)
    operator_metrics.attach_edge(app, settings.metrics_port)
    app.router.add_post("/v1/report", post_report)
    app.router.add_get("/healthz", get_health)
    landing.add_route(app, settings, app[GEO])
    return app
