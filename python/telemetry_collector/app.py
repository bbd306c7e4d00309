"""The aiohttp application: routes, and what each request does.

POST /v1/report  a report in, the version answer out (telemetry.protocol)
GET  /healthz    200 when PostgreSQL answers
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import psycopg_pool
from aiohttp import web

from telemetry_collector import releases, storage
from telemetry_collector.config import Settings
from telemetry_collector.geo import CountryLookup, NoCountry, coarse_country
from telemetry_collector.ingest import (
    IngestError,
    check_content_type,
    parse_report,
    read_capped,
)
from telemetry_collector.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# No %a (remote address) and no %{User-Agent}i: the access log must not keep
# the client's address either.
ACCESS_LOG_FORMAT = '"%r" %s %b %Tfs'
DB_RETRY_AFTER_SECONDS = 30

SETTINGS = web.AppKey("settings", Settings)
GEO = web.AppKey("geo", CountryLookup)
LIMITER = web.AppKey("limiter", RateLimiter)
POOL = web.AppKey("pool", psycopg_pool.AsyncConnectionPool)
NEWEST = web.AppKey("newest", releases.NewestCache)


def _json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


def client_address(request: web.Request, trust_x_forwarded_for: bool) -> str | None:
    if trust_x_forwarded_for:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        if forwarded:
            return forwarded[-1].split(",")[-1].strip() or None
    return request.remote


async def post_report(request: web.Request) -> web.Response:
    app = request.app
    try:
        check_content_type(request.content_type)
        body = await read_capped(request.content, request.content_length, app[SETTINGS].max_body_bytes)
        report = parse_report(body)
    except IngestError as exc:
        return web.json_response(exc.as_json(), status=exc.status)

    retry_after = app[LIMITER].acquire(str(report.db_uuid))
    if retry_after is not None:
        return _json_error(
            429, "rate_limited", f"too many reports from this database; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    # The address is used for the country lookup and goes no further.
    country = coarse_country(app[GEO], client_address(request, app[SETTINGS].trust_x_forwarded_for))

    async with app[POOL].connection(timeout=app[SETTINGS].pool_timeout) as conn:
        await storage.store_report(conn, report, country)
    answer = releases.answer(await app[NEWEST].get(), report.extension_version)
    if answer is None:
        return _json_error(
            503, "no_release", "no release is listed yet",
            headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
        )
    return web.json_response(answer)


async def get_health(request: web.Request) -> web.Response:
    async with request.app[POOL].connection(timeout=request.app[SETTINGS].pool_timeout) as conn:
        await conn.execute("SELECT 1")
    return web.json_response({"status": "ok"})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON errors under /v1/, and 503 + Retry-After when PostgreSQL is away."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/v1/") or exc.status < 400:
            raise
        return _json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except (psycopg_pool.PoolTimeout, psycopg.OperationalError) as exc:
        log.warning("storage unavailable: %s", exc)
        return _json_error(
            503, "storage_unavailable", "storage is unavailable; retry later",
            headers={"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
        )


async def _keep_partitions(app: web.Application) -> None:
    while True:
        await asyncio.sleep(app[SETTINGS].partition_check_seconds)
        try:
            async with app[POOL].connection() as conn:
                created = await storage.ensure_partitions(conn, months_ahead=1)
            if created:
                log.info("created partitions %s", ", ".join(created))
        except Exception:
            log.exception("partition check failed; retrying later")


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

        async def load_versions() -> list[str]:
            async with pool.connection() as conn:
                return [r.version for r in await releases.list_releases(conn)]

        app[NEWEST] = releases.NewestCache(load_versions, settings.release_cache_seconds)
        keeper = asyncio.create_task(_keep_partitions(app))
        try:
            yield
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
    finally:
        await pool.close()


def make_app(settings: Settings, geo: CountryLookup | None = None) -> web.Application:
    # client_max_size also caps what aiohttp itself would buffer for other routes.
    app = web.Application(middlewares=[errors], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[GEO] = geo or NoCountry()
    app[LIMITER] = RateLimiter(settings.rate_limit_burst, settings.rate_limit_per_hour)
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_post("/v1/report", post_report)
    app.router.add_get("/healthz", get_health)
    return app
