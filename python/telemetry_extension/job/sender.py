"""POSTs one report, bounded in time and size, and never raises for network faults.

The exchange runs in a helper thread that touches nothing of PostgreSQL; the
calling (backend) thread waits in short slices and, between them, lets the
server act on a cancel or a shutdown (`check_interrupts`), so neither ever
waits on the network.  At the deadline (or a cancel) the caller shuts down the
exchange's sockets, which wakes the helper wherever it blocks, and joins it:
a send leaves no thread and no socket behind, whatever the peer does.

Only documented inputs shape the request: the endpoint, the CA file option
and the proxy variables (`https_proxy`/`HTTPS_PROXY` for an https endpoint,
`http_proxy`/`HTTP_PROXY` for http, `no_proxy`/`NO_PROXY`).  The session does
not trust the environment (`trust_env=False`): no ~/.netrc or $NETRC
credentials, no REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, no ALL_PROXY.  No
automatic retry: the HTTP library's Retry is off, and Retry-After is read here
(urllib3 would cut it to six hours).

The only module of the package that imports `requests`: the tick imports it
when a report is due, so a tick with nothing due never loads it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import telemetry_protocol as protocol
from telemetry_extension import pinned

with pinned.on_sys_path():
    import idna  # noqa: F401  # requests imports it late, for a non-ASCII host: load our pinned copy now
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.util.retry import Retry

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MAX_REDIRECTS = 3
WAIT_SLICE = 0.05  # seconds between two interrupt checks
JOIN_BOUND = 2.0  # seconds the caller waits for the helper once its sockets are shut
# No retry of any kind by the library: one POST per hop, Retry-After read by us.
NO_RETRY = Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, respect_retry_after_header=False)


@dataclass(frozen=True)
class Exchange:
    """What happened on the wire."""

    status: int | None  # HTTP status of the final answer, None when none came
    body: bytes  # the answer, at most protocol.MAX_ANSWER_BYTES
    error: str | None  # None only for a 2xx answer read completely
    retry_after: float | None  # seconds, from a 429 or 503 answer
    seconds: float


class _Failure(Exception):
    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def _retry_after(response: requests.Response) -> float | None:
    if response.status_code not in (429, 503):
        return None
    return parse_retry_after(response.headers.get("Retry-After"), time.time())


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or HTTP-date), capped at the protocol's cap."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(int(text[:12]))  # more digits are past the cap anyway
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            return None  # an HTTP-date is always GMT; anything else is not one
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), float(protocol.MAX_RETRY_AFTER_SECONDS))


def proxies_for(url: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    """The documented proxy variables for `url`'s scheme, unless no_proxy names its host."""
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        return {}

    def variable(name: str) -> str | None:
        return environ.get(name) or environ.get(name.upper()) or None

    proxy = variable(f"{scheme}_proxy")
    if proxy is None:
        return {}
    no_proxy = variable("no_proxy")
    host = urlsplit(url).netloc.rpartition("@")[2]
    bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if no_proxy and bypass(host, {"no": no_proxy}):
        return {}
    return {scheme: proxy}


class _Sockets:
    """Every socket an exchange opened, so that the caller can shut them from its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._shut = False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.append(sock)
            shut = self._shut
        if shut:
            self._shutdown(sock)

    def shut_all(self) -> None:
        """Wakes the helper from any blocking read or write: its socket reads EOF or fails."""
        with self._lock:
            self._shut = True
            found = list(self._open)
        for sock in found:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed: nothing to wake
            sock.shutdown(socket.SHUT_RDWR)


class _Adapter(HTTPAdapter):
    """requests' adapter whose connections report their sockets, and which never retries."""

    def __init__(self, sockets: _Sockets) -> None:
        class Connection(HTTPConnection):
            def connect(self) -> None:
                super().connect()
                sockets.add(self.sock)

        class TLSConnection(HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                sockets.add(self.sock)

        class Pool(HTTPConnectionPool):
            ConnectionCls = Connection

        class TLSPool(HTTPSConnectionPool):
            ConnectionCls = TLSConnection

        self._pools: dict[str, Any] = {"http": Pool, "https": TLSPool}
        super().__init__(max_retries=NO_RETRY, pool_connections=1, pool_maxsize=1)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._pools
        return manager


def _read_capped(response: requests.Response, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > protocol.MAX_ANSWER_BYTES:
        raise _Failure(f"answer of {declared} bytes refused (limit {protocol.MAX_ANSWER_BYTES})", response.status_code)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.raw.stream(8192, decode_content=False):
        size += len(chunk)
        if size > protocol.MAX_ANSWER_BYTES:
            raise _Failure(f"answer larger than {protocol.MAX_ANSWER_BYTES} bytes refused", response.status_code)
        if time.monotonic() > deadline:
            raise _Failure("no complete answer within the deadline", response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


def _session(sockets: _Sockets) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no .netrc, no *_CA_BUNDLE, no proxies but the ones passed per request
    adapter = _Adapter(sockets)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _exchange(
    url: str, body: bytes, user_agent: str, verify: str | bool, deadline: float, sockets: _Sockets
) -> Exchange:
    started = time.monotonic()
    headers = {
        "Content-Type": protocol.CONTENT_TYPE,
        "User-Agent": user_agent,
        "Accept": protocol.CONTENT_TYPE,
        "Accept-Encoding": "identity",  # no decompression: the size cap holds for what we parse
    }
    with _session(sockets) as session:
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            remaining = max(deadline - time.monotonic(), 0.001)
            with session.post(
                target,
                data=body,
                headers=headers,
                timeout=(remaining, remaining),
                verify=verify,
                proxies=proxies_for(target),
                allow_redirects=False,
                stream=True,
            ) as response:
                if response.is_redirect:
                    location = urljoin(target, response.headers.get("Location", ""))
                    if not _same_origin(target, location) or response.status_code not in (307, 308):
                        raise _Failure("redirect to another location not followed", response.status_code)
                    target = location
                    continue
                answer = _read_capped(response, deadline)
                if not 200 <= response.status_code < 300:
                    raise _Failure(f"HTTP {response.status_code}", response.status_code, _retry_after(response))
                return Exchange(response.status_code, answer, None, None, time.monotonic() - started)
        raise _Failure("too many redirects")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _Failure):
        return str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS verification failed"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "proxy refused the connection"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection not established within the deadline"
    if isinstance(exc, requests.exceptions.Timeout):
        return "no complete answer within the deadline"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed"
    return f"request failed ({type(exc).__name__})"


def post_report(
    url: str,
    body: bytes,
    *,
    user_agent: str,
    deadline_seconds: float,
    ca_file: str | None,
    check_interrupts: Callable[[], object],
) -> Exchange:
    """POST `body` to `url`; returns within the deadline (plus one wait slice) whatever the peer does."""
    started = time.monotonic()
    deadline = started + deadline_seconds
    verify: str | bool = ca_file or (SYSTEM_CA_BUNDLE if os.path.isfile(SYSTEM_CA_BUNDLE) else True)
    outcome: list[Exchange] = []
    sockets = _Sockets()

    def work() -> None:
        # Signals belong to the backend's own thread, which handles cancel and shutdown.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            outcome.append(_exchange(url, body, user_agent, verify, deadline, sockets))
        except BaseException as exc:
            failure = exc if isinstance(exc, _Failure) else None
            outcome.append(
                Exchange(
                    failure.status if failure else None,
                    b"",
                    _describe(exc),
                    failure.retry_after if failure else None,
                    time.monotonic() - started,
                )
            )

    worker = threading.Thread(target=work, name="telemetry-send", daemon=True)
    worker.start()
    cut = True
    try:
        while worker.is_alive() and time.monotonic() < deadline:
            worker.join(WAIT_SLICE)
            check_interrupts()  # raises when the server wants this backend to stop
        cut = worker.is_alive()
    finally:
        # Whatever the peer does (never answers, drips, half-closes), its sockets
        # are shut now, so the helper returns and closes them.  Only a name
        # lookup that hangs can outlast JOIN_BOUND: it holds no socket to shut.
        sockets.shut_all()
        worker.join(JOIN_BOUND)
    if outcome and not cut:
        return outcome[0]
    return Exchange(None, b"", "no complete answer within the deadline", None, time.monotonic() - started)
