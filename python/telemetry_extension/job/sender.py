"""POSTs one report, bounded in time and size, and never raises for network faults.

The exchange runs in a helper thread that touches nothing of PostgreSQL; the
calling (backend) thread waits in short slices and, between them, lets the
server act on a cancel or a shutdown (`check_interrupts`), so neither ever
waits on the network.  At the deadline (or a cancel) the caller shuts down the
exchange's sockets and kills its name lookups, which wakes the helper wherever
it blocks, and joins it: a send leaves no thread, no socket and no process
behind, whatever the peer or the DNS does.  A name is looked up by the
system's resolver (/etc/hosts, DNS, as nsswitch.conf says) through `getent
ahosts` in a child process, because a lookup inside the backend cannot be
interrupted; the connection then goes to the addresses it printed, the name
still in the Host header and the TLS check.

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
import ipaddress
import os
import signal
import socket
import subprocess
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
    from urllib3.exceptions import ConnectTimeoutError
    from urllib3.util.retry import Retry

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MAX_REDIRECTS = 3
WAIT_SLICE = 0.05  # seconds between two interrupt checks
JOIN_BOUND = 2.0  # seconds the caller waits for the helper once its sockets are shut
# The system's resolver as a program (libc-bin, on every glibc system).
GETENT = "/usr/bin/getent"
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


def _may_follow(target: str, location: str) -> bool:
    """A redirect to the same origin, carrying no credentials (requests would send them as Basic auth)."""
    pa, pb = urlsplit(target), urlsplit(location)
    if "@" in pb.netloc:
        return False
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


class _Handles:
    """Every socket and name lookup an exchange opened, so that the caller can end them from its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._lookups: list[subprocess.Popen[bytes]] = []
        self._shut = False

    def add_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            shut = self._shut
        if shut:
            self._shutdown(sock)

    def add_lookup(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._lookups.append(process)
            shut = self._shut
        if shut:
            process.kill()

    def shut_all(self) -> None:
        """Wakes the helper from any blocking read or write (its socket reads EOF or fails) or lookup (killed)."""
        with self._lock:
            self._shut = True
            sockets, lookups = list(self._sockets), list(self._lookups)
        for sock in sockets:
            self._shutdown(sock)
        for process in lookups:
            process.kill()  # nothing when it has ended already

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed: nothing to wake
            sock.shutdown(socket.SHUT_RDWR)


def _literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def lookup(name: str, deadline: float, handles: _Handles) -> list[str]:
    """The addresses of `name` (TCP), looked up in a child process that the deadline or the caller ends."""
    literal = _literal_address(name)
    if literal is not None:
        return [literal]
    if not os.path.isfile(GETENT):
        return [name]  # no resolver program: the HTTP library looks the name up itself
    process = subprocess.Popen(
        [GETENT, "ahosts", "--", name], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    handles.add_lookup(process)
    try:
        printed, _ = process.communicate(timeout=max(deadline - time.monotonic(), 0.001))
    except subprocess.TimeoutExpired:
        raise _Failure("name lookup not finished within the deadline") from None
    finally:
        process.kill()  # nothing when it has ended already
        process.wait()
    if process.returncode < 0:
        raise _Failure("name lookup not finished within the deadline")
    addresses: list[str] = []
    for line in printed.decode(errors="replace").splitlines():
        fields = line.split()
        address = _literal_address(fields[0]) if len(fields) >= 2 and fields[1] == "STREAM" else None
        if address is not None and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _Failure("name lookup failed")
    return addresses


def _connect_to_looked_up(
    conn: HTTPConnection, connect: Callable[[], socket.socket], deadline: float, handles: _Handles
) -> socket.socket:
    """urllib3's own connect, to each address of the connection's host in turn; Host and TLS keep the name."""
    name = conn._dns_host
    failure: ConnectTimeoutError | None = None
    for address in lookup(name, deadline, handles):
        conn._dns_host = address
        try:
            return connect()
        except ConnectTimeoutError as exc:  # and NewConnectionError, its subclass: the next address
            failure = exc
        finally:
            conn._dns_host = name
    assert failure is not None
    raise failure


class _LookingUp(HTTPConnection):
    """A connection that looks its host up as above and reports its socket; the deadline and the
    handles are those of one send (class attributes of the subclasses _pool_classes makes)."""

    deadline: float
    handles: _Handles

    def _new_conn(self) -> socket.socket:
        return _connect_to_looked_up(self, super()._new_conn, self.deadline, self.handles)

    def connect(self) -> None:
        super().connect()
        self.handles.add_socket(self.sock)


def _pool_classes(handles: _Handles, deadline: float) -> dict[str, Any]:
    """urllib3's pool classes by scheme, their connections _LookingUp for this send."""
    send = {"deadline": deadline, "handles": handles}
    schemes = (("http", HTTPConnectionPool, HTTPConnection), ("https", HTTPSConnectionPool, HTTPSConnection))
    pools: dict[str, Any] = {}
    for scheme, pool, connection in schemes:
        connection_class = type(f"{scheme}_connection", (_LookingUp, connection), send)
        pools[scheme] = type(f"{scheme}_pool", (pool,), {"ConnectionCls": connection_class})
    return pools


class _Adapter(HTTPAdapter):
    """requests' adapter whose connections look names up as above, report their sockets and never retry."""

    def __init__(self, handles: _Handles, deadline: float) -> None:
        self._pools = _pool_classes(handles, deadline)
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


def _session(handles: _Handles, deadline: float) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no .netrc, no *_CA_BUNDLE, no proxies but the ones passed per request
    adapter = _Adapter(handles, deadline)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _exchange(
    url: str, body: bytes, user_agent: str, verify: str | bool, deadline: float, handles: _Handles
) -> Exchange:
    started = time.monotonic()
    headers = {
        "Content-Type": protocol.CONTENT_TYPE,
        "User-Agent": user_agent,
        "Accept": protocol.CONTENT_TYPE,
        "Accept-Encoding": "identity",  # no decompression: the size cap holds for what we parse
    }
    with _session(handles, deadline) as session:
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
                    if not _may_follow(target, location) or response.status_code not in (307, 308):
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
    handles = _Handles()

    def work() -> None:
        # Signals belong to the backend's own thread, which handles cancel and shutdown.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            outcome.append(_exchange(url, body, user_agent, verify, deadline, handles))
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
        # Whatever the peer or the DNS does (never answers, drips, half-closes),
        # its sockets are shut and its lookups killed now, so the helper returns.
        handles.shut_all()
        worker.join(JOIN_BOUND)
    if outcome and not cut:
        return outcome[0]
    return Exchange(None, b"", "no complete answer within the deadline", None, time.monotonic() - started)
