"""Running the edge: the listener, its limits, its logs, its worker processes.

aiohttp's public API does it all (web.AppRunner and its options, its server as
a protocol factory behind our own asyncio listener, an access logger class, a
filter on its logger) but one thing: see _aiohttp_protocol_answering_json.
What aiohttp does by default and what this changes:
- aiohttp logs "Error handling request from <address>" with a traceback for
  malformed requests and failures, and answers them in text/plain.  Here they
  are answered in JSON with one log line naming the error's class
  (_json_error_answer), and every log record of aiohttp's server logger loses
  its arguments and traceback (a filter), so no client address or client
  bytes reach a log.
- The access log names the route a request matched, never the path it asked
  for, and never the address.
- Headers must arrive within `header_timeout` (aiohttp's keep-alive timer,
  armed at connect, closes a connection whose request is not complete by
  then); the body within `body_timeout` (app.py).
- Every connection is counted as it is accepted, before anything is read (a
  TLS connection before its handshake): at most `max_connections` per process
  and `max_connections_per_address` per client address (ratelimit.client_key:
  an IPv4 address in any notation, an IPv6 /64) and `max_connections_per_network`
  per IPv6 /48 (network_key), so one address holding idle connections cannot
  take every slot.  Past either cap a connection is closed
  at once, with a JSON 503 (process) or 429 (address) on plain HTTP.  The TLS
  handshake must end within `tls_handshake_timeout`.  The open-file soft limit
  is raised to the hard limit at start-up.
- `workers` > 1 forks that many processes, each with its own listener on the
  same port (SO_REUSEPORT: the kernel spreads connections over them); one
  gone, the others are stopped, for the supervisor to restart all.
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
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

import uvloop
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from telemetry_collector import operator_metrics
from telemetry_collector.app import make_app
from telemetry_collector.config import Settings
from telemetry_collector.geo import CountryLookup
from telemetry_collector.ratelimit import client_key, network_key
from telemetry_collector.web import json_error, route_of

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


def _json_error_answer(request: web.BaseRequest, status: int, exc: BaseException | None) -> web.StreamResponse:
    """aiohttp's own error answer (a request it could not parse, a handler's 500 or 504): one log line
    with the status and the error's class, and JSON; the connection is closed after it."""
    name = type(exc).__name__ if exc is not None else "-"
    if status >= 500:
        log.error("request failed with %d (%s)", status, name)
    else:
        log.info("refused a malformed request with %d (%s)", status, name)
    if request.writer.output_size > 0:
        raise ConnectionError("an answer was sent already")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    response = json_error(status, _ERROR_CODES.get(status, "error"), phrase, headers={"Connection": "close"})
    response.force_close()
    return response


def _aiohttp_protocol_answering_json(server: web.Server, kwargs: dict[str, Any]) -> Callable[[], asyncio.Protocol]:
    """A factory of aiohttp's protocol for one connection, like `server` itself, whose own error answers
    are _json_error_answer's.

    The one use of aiohttp API that is not public, checked against aiohttp 3.14.5
    (requirements-collector.txt): aiohttp answers a request it cannot parse from
    RequestHandler.handle_error, in text/plain and with a log line naming the client's address,
    before any application, middleware or signal sees the request, and has no option to change
    either.  So this subclasses web.RequestHandler (exported by aiohttp.web, not documented),
    overrides handle_error alone and builds it as web.Server.__call__ does.  Everything else here
    (counting, TLS, the socket, the timeouts) uses public API.  If an aiohttp upgrade breaks this,
    test_edge.py and test_fleet_service.py fail on the malformed requests."""

    class JsonErrors(web.RequestHandler):
        __slots__ = ()

        def handle_error(
            self,
            request: web.BaseRequest,
            status: int = 500,
            exc: BaseException | None = None,
            message: str | None = None,
        ) -> web.StreamResponse:
            return _json_error_answer(request, status, exc)

    loop = asyncio.get_running_loop()
    return lambda: JsonErrors(server, loop=loop, **kwargs)


def _refusal(status: bytes, error: bytes, message: bytes) -> bytes:
    body = b'{"error": "' + error + b'", "message": "' + message + b'"}'
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


_OVERLOADED = _refusal(b"503 Service Unavailable", b"overloaded", b"too many open connections; retry later")
_TOO_MANY_FROM_ADDRESS = _refusal(
    b"429 Too Many Requests", b"too_many_connections", b"too many open connections from this address; retry later"
)


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    # 0: no cap per address or network (behind a trusted proxy every connection comes from the proxy).
    max_per_address: int
    tls_handshake_timeout: float
    max_per_network: int = 0

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        if settings.trust_x_forwarded_for:
            return cls(settings.max_connections, 0, settings.tls_handshake_timeout)
        return cls(
            settings.max_connections,
            settings.max_connections_per_address,
            settings.tls_handshake_timeout,
            settings.max_connections_per_network,
        )


class ConnectionCounts:
    """The open connections of one process, in all and per client_key and network_key (in memory only,
    while they are open), against their limits."""

    __slots__ = ("limits", "open_connections", "per_address")

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open_connections = 0
        self.per_address: dict[str, int] = {}

    def admission(self, host: str | None) -> tuple[tuple[str, ...], bytes | None]:
        """The keys a connection from `host` is counted under, and the refusal to send if a cap is reached."""
        limits = self.limits
        caps: list[tuple[str, int]] = []
        if limits.max_per_address > 0 and host is not None:
            caps.append((client_key(host), limits.max_per_address))
            network = network_key(host)
            if network is not None and limits.max_per_network > 0:
                caps.append((network, limits.max_per_network))
        keys = tuple(key for key, _ in caps)
        if self.open_connections >= limits.max_connections:
            return keys, _OVERLOADED
        if any(self.per_address.get(key, 0) >= cap for key, cap in caps):
            return keys, _TOO_MANY_FROM_ADDRESS
        return keys, None


class Slot:
    """One accepted connection's place in the counts; released once, whatever ends it."""

    __slots__ = ("_counts", "_keys")

    def __init__(self, counts: ConnectionCounts, keys: tuple[str, ...]) -> None:
        self._counts: ConnectionCounts | None = counts
        self._keys = keys
        counts.open_connections += 1
        for key in keys:
            counts.per_address[key] = counts.per_address.get(key, 0) + 1

    def release(self) -> None:
        counts, self._counts = self._counts, None
        if counts is None:
            return
        counts.open_connections -= 1
        for key in self._keys:
            left = counts.per_address.pop(key) - 1
            if left:
                counts.per_address[key] = left


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, which frees the connection's slot when it ends."""

    __slots__ = ("_inner", "_slot", "transport")

    def __init__(self, inner: asyncio.Protocol, slot: Slot) -> None:
        self._inner = inner
        self._slot = slot
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._slot.release()
        self._inner.connection_lost(exc)


@dataclass
class _Listening:
    """What each accepted connection needs, and the TLS handshakes under way (cancelled at stop)."""

    counts: ConnectionCounts
    protocol: Callable[[], asyncio.Protocol]
    tls: ssl.SSLContext | None
    handshakes: set[asyncio.Task[None]] = field(default_factory=set)


class _Gate(asyncio.Protocol):
    """Takes each accepted connection: counts it or refuses it, then hands it to aiohttp's protocol,
    after the TLS handshake (bounded by its timeout) when serving TLS."""

    def __init__(self, listening: _Listening) -> None:
        self._listening = listening

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listening = self._listening
        # A socket transport (uvloop's does not subclass asyncio.Transport, so no isinstance check).
        stream = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        keys, refusal = listening.counts.admission(str(peer[0]) if peer else None)
        if refusal is not None:
            if listening.tls is None:
                stream.write(refusal)
                stream.close()
            else:
                stream.abort()
            return
        if listening.tls is None:
            self._hand_over(stream, Slot(listening.counts, keys))
            return
        # The handshake runs on the same socket, taken over before a byte is read (uvloop starts
        # reading once this returns, whatever pause_reading says): a duplicate of its descriptor
        # outlives this transport, which is dropped without a shutdown.  Duplicated before the
        # connection is counted: out of descriptors (EMFILE), it is dropped uncounted, unlogged.
        try:
            sock = socket.socket(fileno=os.dup(transport.get_extra_info("socket").fileno()))
        except OSError:
            stream.abort()
            return
        stream.abort()
        slot = Slot(listening.counts, keys)
        try:
            task = asyncio.get_running_loop().create_task(self._handshake(sock, slot, listening.tls))
        except BaseException:
            slot.release()
            sock.close()
            raise
        listening.handshakes.add(task)
        task.add_done_callback(listening.handshakes.discard)

    def _hand_over(self, stream: asyncio.Transport, slot: Slot) -> None:
        """The plain connection to aiohttp's protocol; whatever fails on the way frees its slot."""
        try:
            protocol = _Counted(self._listening.protocol(), slot)
            stream.set_protocol(protocol)
            protocol.connection_made(stream)
        except BaseException:
            slot.release()
            stream.abort()
            raise

    async def _handshake(self, sock: socket.socket, slot: Slot, tls: ssl.SSLContext) -> None:
        timeout = self._listening.counts.limits.tls_handshake_timeout
        try:
            protocol = _Counted(self._listening.protocol(), slot)
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: protocol, sock, ssl=tls, ssl_handshake_timeout=timeout
            )
        except asyncio.CancelledError:
            slot.release()
            sock.close()
            raise
        except Exception as exc:  # the connection is closed
            slot.release()
            sock.close()
            log.debug("TLS handshake failed (%s)", type(exc).__name__)
            return
        if protocol.transport is None:  # closed by the client as the handshake ended
            slot.release()


def handler_kwargs(header_timeout: float, with_access_log: bool) -> dict[str, Any]:
    """aiohttp's options for each connection (web.AppRunner's keyword arguments)."""
    return {
        "logger": server_log,
        "access_log_class": AccessLog,
        "access_log": access_log if with_access_log else None,
        # Armed at connect and after each answer: a request whose headers are not in by then is closed.
        "keepalive_timeout": header_timeout,
        "max_line_size": 8190,
        "max_field_size": 8190,
        "max_headers": 64,
        # After an answer sent before the whole body (413, 408), read and drop the rest this long so the
        # client sees the answer rather than a reset; aiohttp's default is 10 s.
        "lingering_time": 2.0,
    }


@dataclass(frozen=True)
class Endpoint:
    """Where and how a service listens."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    # SO_REUSEPORT: pre-forked workers each listen on the same port.
    reuse_port: bool = False
    access_log: bool = True


@dataclass
class Edge:
    """An application behind this module's listener, running."""

    runner: web.AppRunner
    url: str
    _server: asyncio.Server
    _listening: _Listening

    async def stop(self) -> None:
        """No new connection; the handshakes under way cancelled; then aiohttp's graceful shutdown."""
        self._server.close()
        for task in list(self._listening.handshakes):
            task.cancel()
        await self.runner.cleanup()


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's default handler prints the context (transports, sockets); this keeps its message and class."""
    exc = context.get("exception")
    log.error("asyncio: %s%s", context.get("message", "error"), f" ({type(exc).__name__})" if exc else "")


async def start_edge(settings: Settings, geo: CountryLookup | None, endpoint: Endpoint) -> Edge:
    return await _start(make_app(settings, geo), endpoint, ConnectionLimits.of(settings), settings.header_timeout)


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    limits: ConnectionLimits,
    header_timeout: float,
    tls: ssl.SSLContext | None = None,
    reuse_port: bool = False,
    with_access_log: bool = True,
) -> Edge:
    """`app` behind this module's listener: its caps, timeouts, JSON errors and logs without addresses
    (the edge's, and the fleet service's)."""
    return await _start(app, Endpoint(host, port, tls, reuse_port, with_access_log), limits, header_timeout)


async def _start(app: web.Application, endpoint: Endpoint, limits: ConnectionLimits, header_timeout: float) -> Edge:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_exception_handler)
    kwargs = handler_kwargs(header_timeout, endpoint.access_log)
    runner = web.AppRunner(app, handle_signals=False, **kwargs)
    await runner.setup()
    try:
        assert runner.server is not None  # set up
        listening = _Listening(
            ConnectionCounts(limits), _aiohttp_protocol_answering_json(runner.server, kwargs), endpoint.tls
        )
        # The listener itself is plain TCP: _Gate does the TLS handshake once a connection is counted.
        server = await loop.create_server(
            lambda: _Gate(listening),
            endpoint.host,
            endpoint.port,
            backlog=1024,
            reuse_address=True,
            reuse_port=endpoint.reuse_port or None,
        )
    except BaseException:
        await runner.cleanup()
        raise
    if operator_metrics.EDGE in runner.app:  # the edge's metrics count its open connections
        runner.app[operator_metrics.EDGE].connections = lambda: listening.counts.open_connections
    port = server.sockets[0].getsockname()[1] if server.sockets else endpoint.port
    url = f"{'https' if endpoint.tls else 'http'}://{endpoint.host}:{port}"
    return Edge(runner, url, server, listening)


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


async def _serve_until_signalled(settings: Settings, geo: CountryLookup | None, endpoint: Endpoint) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    edge = await start_edge(settings, geo, endpoint)
    _say(f"serving on {edge.url} (process {os.getpid()})")
    for url in edge.runner.app.get(operator_metrics.LISTENER, []):
        _say(f"metrics on {url} (process {os.getpid()})")
    try:
        await stop.wait()
    finally:
        await edge.stop()


def _say(line: str) -> None:
    # One write per line: print() writes the text and its newline apart, and the workers share stdout.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


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
        _run(_serve_until_signalled(settings, geo, Endpoint(host, port, tls, False, with_access_log)), event_loop)
        return 0
    return _serve_workers(settings, geo, Endpoint(host, port, tls, True, with_access_log), workers, event_loop)


def _run(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if event_loop == "uvloop" else None) as runner:
        runner.run(main)


def _serve_workers(
    settings: Settings, geo: CountryLookup | None, endpoint: Endpoint, workers: int, event_loop: str
) -> int:
    """`workers` forked processes, each serving `endpoint` on the same port; until one stops or a signal."""
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
                _run(_serve_until_signalled(settings, geo, endpoint), event_loop)
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
