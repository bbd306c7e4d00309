"""Running the edge: the listener, its limits, its logs, its worker processes.

What aiohttp does by default and what this changes:
- aiohttp logs "Error handling request from <address>" with a traceback for
  malformed requests and failures, and answers them in text/plain.  Here
  EdgeRequestHandler answers JSON and logs one line with the error's class,
  and every log record of aiohttp's server logger loses its arguments and
  traceback (a filter), so no client address or client bytes reach a log.
- The access log names the route a request matched, never the path it asked
  for, and never the address.
- Headers must arrive within `header_timeout` (aiohttp's keep-alive timer,
  armed at connect, closes a connection whose request is not complete by
  then); the body within `body_timeout` (app.py).
- At most `max_connections` connections are open per process; a connection
  past that gets a JSON 503 and is closed at once.  The open-file soft limit
  is raised to the hard limit at start-up.
- `workers` > 1 forks that many processes, each with its own listener on the
  same port (SO_REUSEPORT: the kernel spreads connections over them).
- The event loop is uvloop's (libuv) unless `event_loop="asyncio"`: the same
  asyncio API, with socket I/O and scheduling in C, which costs the edge
  markedly less CPU per request (docs/collector.md, "Load: measured").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import ssl
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import uvloop
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from telemetry_collector import operator_metrics
from telemetry_collector.app import json_error, make_app, route_of
from telemetry_collector.config import Settings
from telemetry_collector.geo import CountryLookup

log = logging.getLogger(__name__)
access_log = logging.getLogger("telemetry_collector.access")
# Handed to aiohttp as its server logger: see _Scrub.
server_log = logging.getLogger("telemetry_collector.http")

EVENT_LOOPS = ("uvloop", "asyncio")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"})


class _Scrub(logging.Filter):
    """A record of aiohttp's server logger keeps its fixed text only: no arguments, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        record.msg = str(record.msg) + (f" ({type(exc).__name__})" if exc is not None else "")
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


server_log.addFilter(_Scrub())


class AccessLog(AbstractAccessLogger):
    """`POST /v1/report 200 57 0.004s`: method, matched route, status, bytes, seconds."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        method = request.method if request.method in _METHODS else "-"
        self.logger.info("%s %s %d %d %.4fs", method, route_of(request), response.status, response.body_length, time)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


_ERROR_CODES = {
    400: "bad_request",
    408: "request_timeout",
    413: "body_too_large",
    431: "headers_too_large",
    500: "internal_error",
    504: "timeout",
}


class EdgeRequestHandler(RequestHandler):
    """aiohttp's connection handler, with JSON error answers that log no client detail."""

    __slots__ = ("_site",)

    def __init__(self, manager: web.Server, site: EdgeSite, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._site.open_connections += 1
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._site is not None:
            self._site.open_connections -= 1
            self._site = None  # type: ignore[assignment]
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        name = type(exc).__name__ if exc is not None else "-"
        if status >= 500:
            log.error("request failed with %d (%s)", status, name)
        else:
            log.info("refused a malformed request with %d (%s)", status, name)
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was sent already")
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        response = json_error(status, _ERROR_CODES.get(status, "error"), phrase, headers={"Connection": "close"})
        response.force_close()
        return response


def _refusal() -> bytes:
    body = b'{"error": "overloaded", "message": "too many open connections; retry later"}'
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class _Refuse(asyncio.Protocol):
    """Past max_connections: a JSON 503, then close, without reading the request."""

    ANSWER = _refusal()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A socket transport (uvloop's does not subclass asyncio.WriteTransport, so no isinstance check).
        stream = cast(asyncio.WriteTransport, transport)
        stream.write(self.ANSWER)
        stream.close()


class EdgeSite(web.BaseSite):
    __slots__ = ("_backlog_", "_handler_kwargs", "_host", "_port", "_reuse_port", "max_connections", "open_connections")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        handler_kwargs: dict[str, Any],
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool = False,
        backlog: int = 1024,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self._handler_kwargs = handler_kwargs
        self.max_connections = max_connections
        self.open_connections = 0

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    def _protocol(self) -> asyncio.Protocol:
        if self.open_connections >= self.max_connections:
            return _Refuse()
        server = self._runner.server
        assert server is not None
        return EdgeRequestHandler(server, self, loop=asyncio.get_running_loop(), **self._handler_kwargs)

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.get_running_loop().create_server(
            self._protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self._reuse_port or None,
        )
        if self._port == 0 and self._server.sockets:
            self._port = self._server.sockets[0].getsockname()[1]


def handler_kwargs(settings: Settings, with_access_log: bool) -> dict[str, Any]:
    return {
        "logger": server_log,
        "access_log_class": AccessLog,
        "access_log": access_log if with_access_log else None,
        # Armed at connect and after each answer: a request whose headers are not in by then is closed.
        "keepalive_timeout": settings.header_timeout,
        "max_line_size": 8190,
        "max_field_size": 8190,
        "max_headers": 64,
        # After an answer sent before the whole body (413, 408), read and drop the rest this long so the
        # client sees the answer rather than a reset; aiohttp's default is 10 s.
        "lingering_time": 2.0,
    }


@dataclass
class Edge:
    runner: web.AppRunner
    site: EdgeSite

    @property
    def url(self) -> str:
        return self.site.name

    async def stop(self) -> None:
        await self.runner.cleanup()


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's default handler prints the context (transports, sockets); this keeps its message and class."""
    exc = context.get("exception")
    log.error("asyncio: %s%s", context.get("message", "error"), f" ({type(exc).__name__})" if exc else "")


async def start_edge(
    settings: Settings,
    geo: CountryLookup | None,
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
    reuse_port: bool = False,
    with_access_log: bool = True,
) -> Edge:
    asyncio.get_running_loop().set_exception_handler(_quiet_exception_handler)
    kwargs = handler_kwargs(settings, with_access_log)
    runner = web.AppRunner(make_app(settings, geo), handle_signals=False, **kwargs)
    await runner.setup()
    site = EdgeSite(runner, host, port, kwargs, settings.max_connections, ssl_context=tls, reuse_port=reuse_port)
    runner.app[operator_metrics.EDGE].connections = lambda: site.open_connections
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return Edge(runner, site)


def raise_open_file_limit() -> tuple[int, int]:
    """Soft limit of open files up to the hard limit (each connection is a file); the limits now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d (%s)", soft, type(exc).__name__)
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def _serve_until_signalled(
    settings: Settings,
    geo: CountryLookup | None,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    reuse_port: bool,
    with_access_log: bool,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    edge = await start_edge(settings, geo, host, port, tls, reuse_port, with_access_log)
    print(f"serving on {edge.url} (process {os.getpid()})", flush=True)
    for url in edge.runner.app.get(operator_metrics.LISTENER, []):
        print(f"metrics on {url} (process {os.getpid()})", flush=True)
    try:
        await stop.wait()
    finally:
        await edge.stop()


def serve(
    settings: Settings,
    geo: CountryLookup | None,
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
    workers: int = 1,
    with_access_log: bool = True,
    event_loop: str = "uvloop",
) -> int:
    """Serve until SIGINT or SIGTERM; the exit status."""
    if event_loop not in EVENT_LOOPS:
        raise ValueError(f"event_loop must be one of {', '.join(EVENT_LOOPS)}, not {event_loop!r}")
    soft, _ = raise_open_file_limit()
    log.info("open-file limit %d, at most %d connections per process", soft, settings.max_connections)
    if settings.max_connections + settings.pool_max_size + 64 > soft:
        log.warning(
            "max connections %d is near the open-file limit %d: new connections may fail to be accepted",
            settings.max_connections,
            soft,
        )
    if workers <= 1:
        _run(_serve_until_signalled(settings, geo, host, port, tls, False, with_access_log), event_loop)
        return 0
    return _serve_workers(settings, geo, host, port, tls, workers, with_access_log, event_loop)


def _run(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if event_loop == "uvloop" else None) as runner:
        runner.run(main)


def _serve_workers(
    settings: Settings,
    geo: CountryLookup | None,
    host: str,
    port: int,
    tls: ssl.SSLContext | None,
    workers: int,
    with_access_log: bool,
    event_loop: str,
) -> int:
    children: list[int] = []
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            status = 0
            try:
                _run(_serve_until_signalled(settings, geo, host, port, tls, True, with_access_log), event_loop)
            except BaseException as exc:
                print(f"error: worker failed: {exc}", file=sys.stderr, flush=True)
                status = 1
            finally:
                logging.shutdown()
                os._exit(status)
        children.append(pid)
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.remove(pid)
        if os.waitstatus_to_exitcode(code) != 0 or not stopping:
            status = 1
            stop(signal.SIGTERM, None)  # one worker gone: stop the others, let the supervisor restart all
    return status
