"""POSTs one report, bounded in time and size, and never raises for network faults.

The exchange runs in a helper thread that touches nothing of PostgreSQL; the
calling (backend) thread waits in short slices and, between them, lets the
server act on a cancel or a shutdown (`check_interrupts`), so neither ever
waits on the network.  After the deadline the caller stops waiting.

The only module of the package that imports `requests`: the tick imports it
when a report is due, so a tick with nothing due never loads it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import telemetry_protocol as protocol
from telemetry_extension import pinned

with pinned.on_sys_path():
    import idna  # noqa: F401  # requests imports it late, for a non-ASCII host: load our pinned copy now
    import requests
    from urllib3.util.retry import Retry

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MAX_REDIRECTS = 3
MAX_RETRY_AFTER = 7 * 24 * 3600.0
WAIT_SLICE = 0.05  # seconds between two interrupt checks


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
    value = response.headers.get("Retry-After")
    if response.status_code not in (429, 503) or not value:
        return None
    try:
        seconds = Retry().parse_retry_after(value)
    except Exception:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


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


def _exchange(url: str, body: bytes, user_agent: str, verify: str | bool, deadline: float) -> Exchange:
    started = time.monotonic()
    headers = {
        "Content-Type": protocol.CONTENT_TYPE,
        "User-Agent": user_agent,
        "Accept": protocol.CONTENT_TYPE,
        "Accept-Encoding": "identity",  # no decompression: the size cap holds for what we parse
    }
    with requests.Session() as session:  # trust_env: HTTPS_PROXY and NO_PROXY from the server's environment
        target = url
        for _ in range(MAX_REDIRECTS + 1):
            remaining = max(deadline - time.monotonic(), 0.001)
            with session.post(
                target,
                data=body,
                headers=headers,
                timeout=(remaining, remaining),
                verify=verify,
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

    def work() -> None:
        # Signals belong to the backend's own thread, which handles cancel and shutdown.
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            outcome.append(_exchange(url, body, user_agent, verify, deadline))
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
    while worker.is_alive() and time.monotonic() < deadline:
        worker.join(WAIT_SLICE)
        check_interrupts()  # raises when the server wants this backend to stop
    if outcome:
        return outcome[0]
    return Exchange(None, b"", "no complete answer within the deadline", None, time.monotonic() - started)
