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
import ssl
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
import trustme
from port_for import get_port

from tests.collector.helpers import cli_env, make_report

SERVER = "127.0.0.1"
# Far past the edge's 1 s header and body timeouts, short of the client's own 10 s: only a hang fails.
CUT_BEFORE_THE_CLIENT_GIVES_UP = 9
CLIENT = "127.0.0.7"  # loopback answers all of 127/8: a source address no other line has a reason to hold
OTHER = "127.0.0.8"  # another client


@dataclass
class Edge:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    client_ports: list[int] = field(default_factory=list)

    def connect(self, timeout: float = 10, source: str = CLIENT) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
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


def start_edge(dsn: str, tmp_path: Path, *args: str, preexec: Any = None, ca: Path | None = None) -> Edge:
    """`serve` on SERVER and a free port; `ca`: it serves TLS with a certificate that CA issued."""
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
            url = f"{'https' if ca else 'http'}://{SERVER}:{port}/healthz"
            if requests.get(url, timeout=5, verify=str(ca) if ca else True).status_code == 200:
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


def test_the_new_database_budget_is_per_ipv4_address_whatever_its_notation(
    collector_dsn: str, collector_db: psycopg.Connection[Any], tmp_path: Path
) -> None:
    edge = start_edge(collector_dsn, tmp_path, "--trust-x-forwarded-for", "--new-databases-per-address", "2")

    def new_database_from(forwarded: str) -> int:
        url = f"http://{SERVER}:{edge.port}/v1/report"
        headers = {"X-Forwarded-For": forwarded}
        return requests.post(url, json=make_report(), headers=headers, timeout=10).status_code

    try:
        # 192.0.2.1 as a dual-stack proxy writes it, then plainly: its budget of 2 is spent.
        assert [new_database_from("::ffff:192.0.2.1"), new_database_from("192.0.2.1")] == [200, 200]
        # The same IPv4 address in every other notation: IPv4-mapped in hex, IPv4-compatible, 6to4, NAT64.
        for same in ("::ffff:c000:201", "[::ffff:192.0.2.1]", "::192.0.2.1", "2002:c000:201::1", "64:ff9b::c000:201"):
            assert new_database_from(same) == 429, same
        # Other IPv4 addresses behind the same proxy keep their own budgets.
        for other in ("::ffff:198.51.100.2", "::ffff:198.51.100.3", "198.51.100.4"):
            assert new_database_from(other) == 200, other
        assert new_database_from("198.51.100.2") == 200  # its second
        assert new_database_from("::ffff:198.51.100.2") == 429  # its third
        # With a port a proxy appended, and in SIIT's and local-use NAT64's notations (RFC 7915, 8215).
        for same in ("192.0.2.1:5678", "[::ffff:192.0.2.1]:443", "::ffff:0:192.0.2.1", "64:ff9b:1::c000:201"):
            assert new_database_from(same) == 429, same
        assert [new_database_from("203.0.113.9:1000"), new_database_from("203.0.113.9:1001")] == [200, 200]
        assert new_database_from("[::ffff:0:203.0.113.9]:1002") == 429
        assert [new_database_from(f"64:ff9b:1::{n}.{n}.{n}.{n}") for n in (5, 6, 7)] == [200, 200, 200]
        # IPv6 is still budgeted by its /64, with or without a port.
        assert [new_database_from(f"2001:db8::{n}") for n in (1, 2)] == [200, 200]
        assert new_database_from("[2001:db8::3]:443") == 429
        # An empty last entry names no client: refused, not waved past the budget.
        url = f"http://{SERVER}:{edge.port}/v1/report"
        for empty in ("192.0.2.1, ", ","):
            answer = requests.post(url, json=make_report(), headers={"X-Forwarded-For": empty}, timeout=10)
            assert (answer.status_code, answer.json()["error"]) == (400, "bad_forwarded_for"), empty
    finally:
        output = edge.stop()
    assert collector_db.execute("SELECT count(*) FROM collector.reports").fetchone() == (13,)
    for address in ("192.0.2.1", "198.51.100", "203.0.113", "2001:db8", "64:ff9b"):
        assert address not in output, address


def test_one_address_holding_idle_connections_does_not_starve_others(collector_dsn: str, tmp_path: Path) -> None:
    edge = start_edge(
        collector_dsn, tmp_path, "--max-connections", "8", "--max-connections-per-address", "3", "--header-timeout", "1"
    )
    health = b"GET /healthz HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n\r\n"

    def other_address_is_served() -> None:
        with edge.connect(source=OTHER) as sock:
            sock.sendall(health)
            assert parse(read_all(sock)) == (200, {"status": "ok"})
        with edge.connect(source=OTHER) as sock:
            sock.sendall(request(json.dumps(make_report()).encode()))  # a database of its own: no rate limit
            assert parse(read_all(sock))[0] == 200

    try:
        # CLIENT asks for every slot there is, and re-opens what the header timeout closes.
        held = [edge.connect() for _ in range(8)]
        time.sleep(0.3)
        other_address_is_served()
        for sock in held[3:]:
            status, body = parse(read_all(sock))
            assert (status, body["error"]) == (429, "too_many_connections")
            sock.close()
        held = held[:3]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            held = [edge.connect() if _closed(sock) else sock for sock in held]
            other_address_is_served()
            time.sleep(0.2)
        for sock in held:
            sock.close()
    finally:
        output = edge.stop()
    assert CLIENT not in output and OTHER not in output
    assert "Traceback" not in output


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed `sock` (which is then closed here too), without waiting."""
    timeout = sock.gettimeout()
    sock.setblocking(False)  # with a timeout, recv would wait for data up to it, MSG_DONTWAIT or not
    try:
        closed = sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        sock.settimeout(timeout)
        return False
    except OSError:
        closed = True
    if closed:
        sock.close()
    return closed


def _tls_edge(collector_dsn: str, tmp_path: Path, *args: str) -> tuple[Edge, ssl.SSLContext]:
    """`serve` with TLS (a certificate from a fresh CA), and a client context trusting that CA."""
    ca = trustme.CA()
    ca.issue_cert(SERVER).private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    tls = ["--tls-cert", str(tmp_path / "server.pem"), "--tls-key", str(tmp_path / "server.pem")]
    edge = start_edge(collector_dsn, tmp_path, *tls, *args, ca=tmp_path / "ca.pem")
    return edge, ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))


def _closed_by_server(sock: socket.socket) -> bool:
    """Waits (up to the socket's timeout) for the server to close `sock`; False if it did not."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_tls_connections_that_never_say_hello_are_counted(collector_dsn: str, tmp_path: Path) -> None:
    edge, client_tls = _tls_edge(
        collector_dsn, tmp_path, "--max-connections-per-address", "3", "--tls-handshake-timeout", "600"
    )
    try:
        silent = [edge.connect() for _ in range(3)]  # TCP, then not a byte: no ClientHello
        with edge.connect(timeout=30) as fourth:  # counted before any handshake: past its 3, closed at once
            assert _closed_by_server(fourth)
        # Another address completes its handshake and is answered meanwhile.
        with client_tls.wrap_socket(edge.connect(source=OTHER), server_hostname=SERVER) as other_sock:
            other_sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n\r\n")
            assert parse(read_all(other_sock)) == (200, {"status": "ok"})
        # The silent ones are still open (the handshake timeout is 10 minutes): the 4th was refused by the cap.
        assert not [sock for sock in silent if _closed(sock)]
        for sock in silent:
            sock.close()
        # Their slots are freed as the edge sees them closed.
        with _handshake_when_free(edge, client_tls) as sock:
            sock.sendall(request(json.dumps(make_report()).encode()))
            assert parse(read_all(sock))[0] == 200
    finally:
        output = edge.stop()
    assert CLIENT not in output and OTHER not in output
    assert "Traceback" not in output and " ERROR " not in output, output


def test_tls_connections_that_never_say_hello_are_closed_at_the_handshake_timeout(
    collector_dsn: str, tmp_path: Path
) -> None:
    edge, client_tls = _tls_edge(
        collector_dsn,
        tmp_path,
        "--max-connections-per-address",
        "1",
        "--tls-handshake-timeout",
        "1",
        "--header-timeout",
        "600",
    )
    try:
        # Closed well within a generous bound, and long before the header timeout (10 minutes).
        with edge.connect(timeout=60) as silent:
            assert _closed_by_server(silent)
        # Its slot is free again (the cap is 1).
        with _handshake_when_free(edge, client_tls) as sock:
            sock.sendall(request(json.dumps(make_report()).encode()))
            assert parse(read_all(sock))[0] == 200
    finally:
        output = edge.stop()
    assert CLIENT not in output
    assert "Traceback" not in output and " ERROR " not in output, output


@pytest.mark.parametrize(
    ("number", "status"),
    [
        (b"1e-20000", 422),  # Python reads 0.0; jsonb refuses the text
        (b"1.5e-16383", 422),  # 16384 decimal places
        (b"0." + b"0" * 16383 + b"1", 422),
        (b"1e-16383", 200),  # numeric's most: 16383 decimal places
        (b"1." + b"0" * 16383, 200),
        (b"-2.5e-300", 200),
    ],
)
def test_numbers_jsonb_cannot_store_are_refused_before_storage(
    collector_dsn: str, collector_db: psycopg.Connection[Any], tmp_path: Path, number: bytes, status: int
) -> None:
    edge = start_edge(collector_dsn, tmp_path)
    template = json.dumps(make_report(vendor_metrics={"acme_ratio": 12345})).encode()
    with_unknown = json.dumps(make_report(acme_unknown=12345)).encode()
    try:
        got, body = edge.exchange(request(template.replace(b'"acme_ratio": 12345', b'"acme_ratio": ' + number)))
        assert got == status, body
        if status == 422:
            assert body["error"] == "invalid_report" and "vendor_metrics" in body["message"], body
            assert number.decode()[:20] not in body["message"]
        # In a key the dictionary does not name, the number is dropped with its key.
        unknown = with_unknown.replace(b'"acme_unknown": 12345', b'"acme_unknown": ' + number)
        assert edge.exchange(request(unknown))[0] == 200
    finally:
        output = edge.stop()
    stored = collector_db.execute(
        "SELECT report->'vendor_metrics'->'acme_ratio' FROM collector.reports ORDER BY received_at"
    ).fetchall()
    assert len(stored) == (2 if status == 200 else 1)
    assert " ERROR " not in output and "one by one" not in output and "storage refused" not in output, output


def test_connections_refused_for_want_of_file_descriptors_free_their_slots(collector_dsn: str, tmp_path: Path) -> None:
    """Out of descriptors while taking a TLS connection over, the connection is dropped uncounted:
    once they are closed, every slot is free again, and no ERROR is written."""
    slots = 8
    edge, client_tls = _tls_edge(
        collector_dsn, tmp_path, "--max-connections", str(slots), "--tls-handshake-timeout", "600"
    )
    soft, hard = resource.prlimit(edge.process.pid, resource.RLIMIT_NOFILE)
    try:
        # Room for 4 more descriptors: past a few silent connections, each accepted one cannot be duplicated.
        in_use = len(os.listdir(f"/proc/{edge.process.pid}/fd"))
        resource.prlimit(edge.process.pid, resource.RLIMIT_NOFILE, (in_use + 4, hard))
        flood = [edge.connect() for _ in range(4 * slots)]
        _wait_until_closed(flood[-slots:])  # the last ones are refused whatever happens
        for sock in flood:
            sock.close()
        resource.prlimit(edge.process.pid, resource.RLIMIT_NOFILE, (soft, hard))
        # Every slot is free: as many connections as there are slots are each answered, from the same address.
        held = [_handshake_when_free(edge, client_tls) for _ in range(slots)]
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n\r\n")
        for sock in held:
            assert parse(read_all(sock)) == (200, {"status": "ok"})
            sock.close()
    finally:
        output = edge.stop()
    assert CLIENT not in output
    assert "Traceback" not in output and " ERROR " not in output, output


def _handshake_when_free(edge: Edge, client_tls: ssl.SSLContext) -> ssl.SSLSocket:
    """A TLS connection from CLIENT, retried while the edge is still closing the flood's (their slots
    are freed as it sees them closed); a slot that is never freed fails it after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return client_tls.wrap_socket(edge.connect(), server_hostname=SERVER)
        except (ssl.SSLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait_until_closed(socks: list[socket.socket]) -> None:
    deadline = time.monotonic() + 30
    for sock in socks:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        assert read_all(sock) == b""
