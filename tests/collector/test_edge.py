"""The public edge as a hostile client sees it: `serve` as its own process, raw sockets from 127.0.0.7.

Every malformed request gets a JSON answer or a closed connection in bounded
time, and no line the service writes holds the client's address or port.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from port_for import get_port

from tests.collector.helpers import cli_env, make_report

SERVER = "127.0.0.1"
# Far past the edge's 1 s header and body timeouts, short of the client's own 10 s: only a hang fails.
CUT_BEFORE_THE_CLIENT_GIVES_UP = 9
CLIENT = "127.0.0.7"  # loopback answers all of 127/8: a source address no other line has a reason to hold


@dataclass
class Edge:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    client_ports: list[int] = field(default_factory=list)

    def connect(self, timeout: float = 10) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((CLIENT, 0))
        sock.settimeout(timeout)
        sock.connect((SERVER, self.port))
        self.client_ports.append(sock.getsockname()[1])
        return sock

    def exchange(self, data: bytes, timeout: float = 10) -> tuple[int, dict[str, Any]]:
        """Send `data`, read until the server closes; the status and the JSON body."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            answer = read_all(sock)
        return parse(answer)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(30)
        return self.log.read_text()


def poll(condition: Any, seconds: float = 60.0) -> bool:
    """Whether `condition()` came true within `seconds` (a bound that only catches a hang)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def healthz(port: int) -> int:
    try:
        return requests.get(f"http://{SERVER}:{port}/healthz", timeout=5).status_code
    except requests.ConnectionError:
        return 0


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert headers[b"Content-Type"].startswith(b"application/json"), head
    return status, json.loads(body)


def request(body: bytes, content_type: bytes = b"application/json", extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/report HTTP/1.1\r\nHost: collector\r\nConnection: close\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


def start_edge(dsn: str, tmp_path: Path, *args: str, preexec: Any = None) -> Edge:
    port = get_port(None)
    assert port is not None
    log = tmp_path / f"edge-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "telemetry_collector",
                "serve",
                "--dsn",
                dsn,
                "--host",
                SERVER,
                "--port",
                str(port),
                "--log-level",
                "DEBUG",
                *args,
            ],
            env=cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
        )
    edge = Edge(process, port, log)
    for _ in range(300):
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(f"http://{SERVER}:{port}/healthz", timeout=5).status_code == 200:
                return edge
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"the edge did not start:\n{log.read_text()}")


@pytest.fixture
def edge(collector_dsn: str, tmp_path: Path) -> Iterator[Edge]:
    started = start_edge(
        collector_dsn,
        tmp_path,
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
        "--geo-lookup",
        "tests.collector.geo_double:leaky",
    )
    yield started
    started.stop()


def test_malformed_requests_get_json_and_no_log_line_holds_the_address(
    edge: Edge, collector_db: psycopg.Connection[Any]
) -> None:
    valid = json.dumps(make_report()).encode()
    cases: dict[str, tuple[bytes, int, str]] = {
        "valid": (request(valid), 200, ""),
        "bad request line": (b"GARBAGE\x00\xff nonsense\r\n\r\n", 400, "bad_request"),
        "not HTTP at all": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64), 400, "bad_request"),
        "header overflow": (request(valid, extra=b"X-Big: " + b"a" * 9000 + b"\r\n"), 400, "bad_request"),
        "too many headers": (
            request(valid, extra=b"".join(b"X-%d: 1\r\n" % i for i in range(100))),
            400,
            "bad_request",
        ),
        "invalid JSON": (request(b'{"db_uuid": '), 400, "invalid_json"),
        "huge number": (request(valid[:-1] + b', "extra": 1e200000}'), 200, ""),
        "huge number in a documented key": (
            request(valid.replace(b'"data_volume": 7789927', b'"data_volume": 1e200000')),
            422,
            "invalid_report",
        ),
        "wrong content type": (request(valid, content_type=b"text/plain"), 415, "unsupported_media_type"),
        "chunked garbage": (
            b"POST /v1/report HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "bad_request",
        ),
        "unknown path": (
            b"GET /admin/../../etc/passwd HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n",
            404,
            "not_found",
        ),
    }
    for name, (data, status, error) in cases.items():
        got, body = edge.exchange(data)
        assert got == status, (name, body)
        if error:
            assert body["error"] == error, (name, body)

    # A body cut off mid-way: the client goes away; the edge answers 400 (logged) and stores nothing.
    cut_off_before = edge.log.read_text().count("POST /v1/report 400")
    stored_before = collector_db.execute("SELECT count(*) FROM collector.reports").fetchone()
    with edge.connect() as sock:
        sock.sendall(request(valid)[: len(request(valid)) - 100])
    assert poll(lambda: edge.log.read_text().count("POST /v1/report 400") == cut_off_before + 1), edge.log.read_text()
    assert collector_db.execute("SELECT count(*) FROM collector.reports").fetchone() == stored_before
    # A body that stalls: 408 once the body timeout passes.
    started = time.monotonic()
    with edge.connect() as sock:
        sock.sendall(request(valid)[:300])
        status, body = parse(read_all(sock))
    assert (status, body["error"]) == (408, "request_timeout")
    assert time.monotonic() - started < CUT_BEFORE_THE_CLIENT_GIVES_UP
    # Slowloris: headers trickling in are cut off at the header timeout.
    started = time.monotonic()
    with edge.connect() as sock:
        sock.sendall(b"POST /v1/report HTTP/1.1\r\nHost: c\r\n")
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                sock.sendall(b"X")
                time.sleep(0.1)
                if sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                    raise ConnectionResetError("closed by the server")
    assert time.monotonic() - started < CUT_BEFORE_THE_CLIENT_GIVES_UP

    assert requests.get(f"http://{SERVER}:{edge.port}/healthz", timeout=5).json() == {"status": "ok"}
    output = edge.stop()
    stored = collector_db.execute("SELECT count(*) FROM collector.reports").fetchone()
    assert stored == (2,)  # the valid one and the one whose unknown key held a huge number

    lines = output.splitlines()
    assert any("refused a malformed request with 400 (BadHttpMethod)" in line for line in lines), output
    assert any("POST /v1/report 400" in line for line in lines), output  # the body cut off
    assert any("country lookup failed (LookupError)" in line for line in lines), output
    assert any("POST /v1/report 200" in line for line in lines), output
    assert not [line for line in lines if CLIENT in line], "the client's address was written"
    ports = {f":{port}" for port in edge.client_ports} | {f" {port} " for port in edge.client_ports}
    assert not [line for line in lines if any(port in line for port in ports)], "the client's port was written"
    assert "Traceback" not in output
    assert " ERROR " not in output, output


def test_open_files_are_raised_and_connections_past_the_limit_are_refused_gracefully(
    collector_dsn: str, tmp_path: Path
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))

    edge = start_edge(
        collector_dsn, tmp_path, "--max-connections", "3", "--header-timeout", "5", preexec=low_soft_limit
    )
    try:
        limits = Path(f"/proc/{edge.process.pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert line.split()[3] == line.split()[4] == str(hard), line
        idle = [edge.connect() for _ in range(3)]
        answers: list[tuple[int, dict[str, Any]]] = []

        def overloaded() -> bool:
            answers.append(edge.exchange(request(json.dumps(make_report()).encode())))
            return answers[-1][0] == 503

        # Until the edge has taken the three idle connections: then a fourth is one too many.
        assert poll(overloaded), answers
        assert answers[-1][1]["error"] == "overloaded"
        for sock in idle:
            sock.close()
        assert poll(lambda: healthz(edge.port) == 200)
    finally:
        output = edge.stop()
    assert CLIENT not in output


def test_workers_share_the_port(collector_dsn: str, collector_db: psycopg.Connection[Any], tmp_path: Path) -> None:
    edge = start_edge(collector_dsn, tmp_path, "--workers", "2")
    try:
        for _ in range(20):
            assert requests.post(f"http://{SERVER}:{edge.port}/v1/report", json=make_report(), timeout=10).ok
    finally:
        output = edge.stop()
    assert edge.process.returncode == 0, output
    assert len({line.split("process ")[1] for line in output.splitlines() if "serving on" in line}) == 2
    assert collector_db.execute("SELECT count(*) FROM collector.reports").fetchone() == (20,)


def test_a_flood_of_invented_databases_from_one_address_is_bounded(
    start_collector: Any, collector_db: psycopg.Connection[Any]
) -> None:
    collector = start_collector(new_databases_per_address_per_day=3)
    known = str(uuid.uuid4())
    statuses = [collector.post(make_report(db_uuid=known)).status_code]
    statuses += [collector.post(make_report(os_name="TempleOS")).status_code for _ in range(10)]
    statuses.append(collector.post(make_report(db_uuid=known)).status_code)  # a database already counted

    assert statuses == [200, 200, 200] + [429] * 8 + [200]
    rows = collector_db.execute("SELECT os_name, count(DISTINCT db_uuid) FROM collector.reports GROUP BY 1").fetchall()
    assert sorted(rows) == [("Linux", 1), ("TempleOS", 2)]
