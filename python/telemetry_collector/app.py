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
import logging
import time
from collections.abc import AsyncIterator

import psycopg
import psycopg_pool
from aiohttp import web

from telemetry_collector import advisories, landing, operator_metrics, storage
from telemetry_collector import web as shared
from telemetry_collector.config import Settings
from telemetry_collector.country import default_lookup
from telemetry_collector.geo import CountryLookup, coarse_country
from telemetry_collector.ingest import IngestError, Report, check_content_type, parse_report, read_capped
from telemetry_collector.ratelimit import NewDatabaseBudget, RateLimiter, without_port
from telemetry_collector.validation import Allowlist
from telemetry_collector.writer import BatchWriter

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
GEO = web.AppKey("geo", CountryLookup)
ALLOWLIST = web.AppKey("allowlist", Allowlist)
LIMITER = web.AppKey("limiter", RateLimiter)
BUDGET = web.AppKey("budget", NewDatabaseBudget)
COUNTERS = web.AppKey("counters", dict[str, int])
WRITER = web.AppKey("writer", BatchWriter)
ANSWERS = web.AppKey("answers", advisories.AnswerCache)


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


class _Answered(Exception):
    """A step of post_report that answers the request itself: a refusal."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def post_report(request: web.Request) -> web.Response:
    """A report in: read and validated, admitted by the budgets, stored; the version answer out."""
    try:
        report = await _read_report(request)
        country = _admit(request, report)
    except _Answered as answered:
        return answered.response
    await _store(request.app, report, country)
    return await _answer(request.app, report)


async def _read_report(request: web.Request) -> Report:
    """The body, read within the body timeout and the size cap, and validated; dropped keys counted."""
    app = request.app
    settings = app[SETTINGS]
    try:
        check_content_type(request.content_type)
        async with asyncio.timeout(settings.body_timeout):
            body = await read_capped(request.content, request.content_length, settings.max_body_bytes)
        report = parse_report(body, app[ALLOWLIST])
    except IngestError as exc:
        raise _Answered(web.json_response(exc.as_json(), status=exc.status)) from None
    except TimeoutError:
        message = f"the body did not arrive within {settings.body_timeout:g} s"
        raise _Answered(shared.json_error(408, "request_timeout", message, headers=_CLOSE)) from None
    except (ConnectionError, web.RequestPayloadError):
        # The client went away or broke the body off: nobody reads this answer, but the log says what happened.
        message = "the body ended before its declared length"
        raise _Answered(shared.json_error(400, "incomplete_body", message, headers=_CLOSE)) from None
    if report.dropped_keys:
        app[operator_metrics.EDGE].dropped_keys.inc(report.dropped_keys)
        app[COUNTERS]["dropped_keys"] += report.dropped_keys
        app[COUNTERS]["reports_with_dropped_keys"] += 1
    return report


_CLOSE = {"Connection": "close"}


def _admit(request: web.Request, report: Report) -> str | None:
    """Within the new-database budget of its address and the rate of its database: the sender's
    coarse country.  The address is used here and for the country, and goes no further."""
    app = request.app
    try:
        address = client_address(request, app[SETTINGS].trust_x_forwarded_for)
    except MalformedForwardedFor as exc:
        raise _Answered(shared.json_error(400, "bad_forwarded_for", str(exc))) from None
    if not app[BUDGET].allow(address, report.db_uuid.int):
        app[COUNTERS]["over_new_database_budget"] += 1
        raise _too_many("too many new databases from this address today; retry tomorrow", _seconds_to_utc_midnight())
    retry_after = app[LIMITER].acquire(str(report.db_uuid))
    if retry_after is not None:
        raise _too_many(f"too many reports from this database; retry in {retry_after} s", retry_after)
    return coarse_country(app[GEO], address)


def _too_many(message: str, retry_after: int) -> _Answered:
    return _Answered(shared.json_error(429, "rate_limited", message, headers={"Retry-After": str(retry_after)}))


async def _store(app: web.Application, report: Report, country: str | None) -> None:
    """Returns once the report is committed (writer.py batches them)."""
    row = (
        report.db_uuid,
        report.exported_db_uuid,
        report.extension_version,
        report.postgresql_version,
        report.os_name,
        country,
        report.json_text,
    )
    await app[WRITER].store(row)


async def _answer(app: web.Application, report: Report) -> web.Response:
    """What the vendor knows about the releases the report names, or 503 when no release is listed."""
    answer = await app[ANSWERS].answer(report.extension_version, report.postgresql_version, report.extension_versions)
    if answer is None:
        retry_later = {"Retry-After": str(shared.RETRY_AFTER_SECONDS)}
        return shared.json_error(503, "no_release", "no release is listed yet", headers=retry_later)
    return web.Response(body=answer, content_type="application/json", charset="utf-8")


def _seconds_to_utc_midnight() -> int:
    return max(1, 86400 - int(time.time()) % 86400)


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
            async with app[shared.POOL].connection() as conn:
                created = await storage.ensure_partitions(conn, months_ahead=1)
            if created:
                log.info("created partitions %s", ", ".join(created))
        except Exception as exc:
            log.warning("partition check failed (%s); retrying later", type(exc).__name__)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with shared.open_pool(settings, "telemetry_collector") as pool:
        async with pool.connection() as conn:
            await storage.check_schema(conn)
            await storage.ensure_partitions(conn, months_ahead=1)
        app[shared.POOL] = pool
        writer = app[WRITER] = BatchWriter(
            pool, settings.pool_timeout, flushers=settings.writers, observe=app[operator_metrics.EDGE].observe_write
        )

        async def load_book() -> advisories.Book:
            async with pool.connection() as conn:
                return await advisories.load_book(conn)

        app[ANSWERS] = advisories.AnswerCache(load_book, settings.release_cache_seconds)
        try:
            async with shared.background(_keep_partitions(app), _log_counters(app)):
                yield
        finally:
            await writer.close()


_ERRORS = shared.error_middleware(
    shared.Failures(
        log,
        unavailable=(psycopg_pool.PoolTimeout, psycopg.OperationalError),
        unavailable_log="storage unavailable",
        unavailable_message="storage is unavailable; retry later",
        # The message may quote the report; the SQLSTATE says enough.
        refused=(psycopg.Error,),
        internal_code="internal_error",
        internal_message="the collector failed; this is its bug, not the report's",
    )
)


def make_app(settings: Settings, geo: CountryLookup | None = None) -> web.Application:
    # client_max_size also caps what aiohttp itself would buffer for other routes.
    app = web.Application(middlewares=[_ERRORS], client_max_size=settings.max_body_bytes)
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
    app.router.add_get("/healthz", shared.get_health)
    landing.add_route(app, settings, app[GEO])
    return app
