"""The web plumbing the edge (app.py) and the fleet service (fleet/app.py) share.

JSON error answers, the error middleware, GET /healthz, the PostgreSQL pool's
lifecycle with the service's background tasks, and the route a request matched
(what logs name instead of the path a client typed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

import psycopg
import psycopg_pool
from aiohttp import web
from aiohttp.typedefs import Middleware

RETRY_AFTER_SECONDS = 30
# How long opening the pool waits for its first connections.
POOL_OPEN_SECONDS = 30

POOL = web.AppKey("pool", psycopg_pool.AsyncConnectionPool)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """`{"error": code, "message": message}`: code is stable for programs, message is for people."""
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


def error_code(status: int) -> str:
    """The code of an answer with this status: its phrase in snake case (`not_found`), `error` if unknown."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_")
    except ValueError:
        return "error"


def route_of(request: web.BaseRequest) -> str:
    """The route a request matched, never the path the client typed ("-" for none)."""
    try:
        resource = request.match_info.route.resource  # type: ignore[attr-defined]
    except (AssertionError, AttributeError):  # a request aiohttp could not parse has no match_info
        return "-"
    return resource.canonical if resource is not None else "-"


@dataclass(frozen=True)
class Failures:
    """How a service answers what its handlers raise, besides HTTP errors (JSON, code from the status).

    `unavailable`: storage away or too slow, answered 503 storage_unavailable with Retry-After and
    logged as a warning that names the exception's class.  `refused`: storage refused what was sent,
    answered the same and logged as an error with the SQLSTATE (never the message: it may quote the
    request).  Anything else is the service's bug: 500, logged with its traceback and the route."""

    log: logging.Logger
    unavailable: tuple[type[Exception], ...]
    unavailable_log: str
    unavailable_message: str
    internal_code: str
    internal_message: str
    refused: tuple[type[psycopg.Error], ...] = ()


def error_middleware(failures: Failures) -> Middleware:
    """JSON for every error a handler raises or aiohttp's router answers (404, 405, 413)."""
    retry_later = {"Retry-After": str(RETRY_AFTER_SECONDS)}

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return json_error(exc.status, error_code(exc.status), exc.reason)
        except failures.unavailable as exc:
            failures.log.warning("%s: %s", failures.unavailable_log, type(exc).__name__)
            return json_error(503, "storage_unavailable", failures.unavailable_message, retry_later)
        except failures.refused as exc:
            failures.log.error("storage refused a report: %s (SQLSTATE %s)", type(exc).__name__, exc.sqlstate)
            return json_error(503, "storage_unavailable", failures.unavailable_message, retry_later)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception:
            # Logged by the route, not the path a client typed; aiohttp's own line would name its address.
            failures.log.exception("internal error answering %s %s", request.method, route_of(request))
            return json_error(500, failures.internal_code, failures.internal_message)

    return errors


async def get_health(request: web.Request) -> web.Response:
    """GET /healthz: 200 when PostgreSQL answers (within the pool's timeout), 503 otherwise."""
    async with request.app[POOL].connection() as conn:
        await conn.execute("SELECT 1")
    return web.json_response({"status": "ok"})


class PoolSettings(Protocol):
    @property
    def dsn(self) -> str: ...
    @property
    def pool_min_size(self) -> int: ...
    @property
    def pool_max_size(self) -> int: ...
    @property
    def pool_timeout(self) -> float: ...


@contextlib.asynccontextmanager
async def open_pool(
    settings: PoolSettings, application_name: str, options: str | None = None
) -> AsyncIterator[psycopg_pool.AsyncConnectionPool[Any]]:
    """The service's pool, its first connections made, open until the block ends: autocommit sessions
    named `application_name`, with libpq's `options` if given.  A connection is waited for at most
    `pool_timeout` unless a caller says otherwise."""
    session: dict[str, Any] = {"autocommit": True, "application_name": application_name}
    if options is not None:
        session["options"] = options
    pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
        settings.dsn,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        kwargs=session,
        timeout=settings.pool_timeout,
        open=False,
        name=application_name,
    )
    await pool.open(wait=True, timeout=POOL_OPEN_SECONDS)
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def background(*jobs: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """`jobs` run as tasks until the block ends; then they are cancelled and awaited."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
